// `ddpm export`: a model to the Python world. --to diffusers DIR writes a pipeline folder that diffusers'
// DDPMPipeline.from_pretrained(DIR) loads as it is (model_index.json, unet/config.json with _class_name,
// unet/diffusion_pytorch_model.safetensors, scheduler/scheduler_config.json); --to onnx FILE writes the
// denoiser as a standalone ONNX model (standard opset 17, no custom ops, symbolic batch, weights under
// their diffusers names, the model's config.json in its metadata). Both load back with --model, with
// bit-identical weights.

import { existsSync, statSync } from 'node:fs';
import { saveDiffusers, ONNX_SPEC_KEY } from '../model/weights.js';
import { exportTimestepNote } from '../model/diffusers.js';
import { buildStandaloneModel, STANDALONE_IO } from '../sample/denoiser.js';
import { writeFileAtomic } from '../util/atomicFile.js';
import { helpText, type OptTable, parseWithPositionals, UsageError } from './args.js';
import { MODEL_OPTION, openModelOption, WEIGHTS_OPTION } from './modelOption.js';

export type ExportTarget = 'diffusers' | 'onnx';

export const EXPORT_OPTIONS: OptTable = {
  model: MODEL_OPTION,
  weights: WEIGHTS_OPTION,
  to: {
    kind: 'string',
    help: 'diffusers: a DDPMPipeline folder (OUT is a folder) | onnx: a standalone ONNX model (OUT is a .onnx file)',
    choices: ['diffusers', 'onnx'],
  },
  out: {
    kind: 'string',
    help: 'OUT as an option, as sample and eval take it (ddpm export --to onnx --out mnist.onnx)',
  },
  threads: {
    kind: 'int',
    help: 'accepted like the other commands (export runs no network)',
    default: 0,
    min: 0,
  },
};

/** What OUT is for each target, and a name to show when it is missing. */
const OUTPUT_OF: Record<ExportTarget, { kind: string; example: string }> = {
  diffusers: { kind: 'a folder', example: 'pipeline-folder' },
  onnx: { kind: 'a .onnx file', example: 'model.onnx' },
};

export async function exportCommand(argv: readonly string[]): Promise<void> {
  const parsed = parseWithPositionals('export', argv, EXPORT_OPTIONS);
  if (parsed === 'help') {
    console.log(
      `${helpText(
        'export',
        'Write a model for diffusers or any ONNX Runtime: ddpm export --to diffusers|onnx OUT',
        EXPORT_OPTIONS,
        [
          'ddpm export --to diffusers cifar-pipeline        # then in Python: DDPMPipeline.from_pretrained("cifar-pipeline")',
          'ddpm export --model runs/mnist --to onnx mnist.onnx',
          'ddpm sample --model mnist.onnx                    # both load back, with bit-identical weights',
        ],
      )}\n\nThe ONNX model (opset 17, standard ops only, any batch size):\n${STANDALONE_IO}\n` +
        'metadata_props "ddpm-ts/model": the model\'s config.json (U-Net and diffusion) as JSON.',
    );
    return;
  }
  const { options: o, positionals } = parsed;
  const to = o.to as ExportTarget | undefined;
  if (!to) throw new UsageError('ddpm export: --to diffusers|onnx is required (see ddpm export --help)');
  const outs = o.out === undefined ? positionals : [o.out as string, ...positionals];
  if (outs.length !== 1) {
    const { kind, example } = OUTPUT_OF[to];
    throw new UsageError(
      `ddpm export: expected one output (${kind}), got ${outs.length}: ${outs.length ? outs.join(', ') : `name it, e.g. ddpm export --to ${to} ${example}`}`,
    );
  }
  const out = outs[0]!;
  const m = openModelOption('export', o.model, o.weights);
  switch (to) {
    case 'diffusers': {
      if (existsSync(out) && !statSync(out).isDirectory())
        throw new UsageError(`ddpm export: ${out} is a file; --to diffusers writes a folder`);
      try {
        saveDiffusers(out, m.spec, m.params);
      } catch (e) {
        if ((e as Error).message.startsWith('export:')) throw new UsageError(`ddpm ${(e as Error).message}`);
        throw e;
      }
      console.log(
        `wrote ${out}/ (model_index.json, unet/, scheduler/): DDPMPipeline.from_pretrained("${out}")`,
      );
      const note = exportTimestepNote(m.spec.diffusion);
      if (note) console.log(`note: ${note}`);
      break;
    }
    case 'onnx': {
      if (!out.endsWith('.onnx'))
        throw new UsageError(`ddpm export: ${out} must end in .onnx (--to onnx writes one file)`);
      const bytes = buildStandaloneModel(m.spec.unet, m.params, { [ONNX_SPEC_KEY]: JSON.stringify(m.spec) });
      writeFileAtomic(out, bytes);
      console.log(
        `wrote ${out} (${(bytes.length / 1e6).toFixed(1)} MB): inputs x [batch, C, H, W], t [batch]; output out`,
      );
      break;
    }
    default:
      throw new UsageError(`ddpm export: unknown --to ${String(to satisfies never)}`);
  }
}
