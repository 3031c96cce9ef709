// Model files: a folder with config.json (ModelSpec) and model.safetensors (weights under diffusers'
// UNet2DModel names). Also reads diffusers' own folders (config.json + diffusion_pytorch_model.safetensors,
// e.g. google/ddpm-cifar10-32), including the legacy attention names of the 2022 checkpoints, and whole
// pipeline folders (model_index.json, unet/, scheduler/); and writes pipeline folders (saveDiffusers).

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ParamStore, unetParamSpecs } from '../nn/unet.js';
import { writeFilesAtomic, writePartsAtomic } from '../util/atomicFile.js';
import { encodeSafeTensors, parseSafeTensors } from '../util/safetensors.js';
import { readOnnx } from '../graph/onnx.js';
import { describeJson, JsonChecker } from '../util/jsonCheck.js';
import {
  DIFFUSERS_VERSION,
  diffusersSchedulerConfig,
  diffusersUnetConfig,
  diffusionFromScheduler,
  unetFromDiffusers,
} from './diffusers.js';
import { checkParams } from './params.js';
import { checkOutputChannels, type DiffusionSpec, type ModelSpec, validateSpec } from './spec.js';

export { checkParams, unetFromDiffusers };

export interface LoadedModel {
  readonly spec: ModelSpec;
  readonly params: ParamStore;
  readonly source: string;
}

export function saveModel(dir: string, spec: ModelSpec, params: ParamStore): void {
  mkdirSync(dir, { recursive: true });
  const specs = unetParamSpecs(spec.unet);
  const tensors = specs.map((s) => [s.name, { data: params.get(s.name)!, shape: s.shape }] as const);
  writePartsAtomic(
    join(dir, 'model.safetensors'),
    encodeSafeTensors(tensors, { format: 'ddpm-ts/weights/v1' }),
  );
  writePartsAtomic(join(dir, 'config.json'), [
    new TextEncoder().encode(`${JSON.stringify(spec, null, 2)}\n`),
  ]);
}

/** The metadata key under which `ddpm export --to onnx` stores the ModelSpec (config.json's content). */
export const ONNX_SPEC_KEY = 'ddpm-ts/model';

/** An ONNX file written by `ddpm export --to onnx`: its spec from the metadata, its weights from the initializers. */
function loadOnnxModel(path: string): LoadedModel {
  const { metadata, initializers } = readOnnx(readFileSync(path), path);
  const text = metadata[ONNX_SPEC_KEY];
  if (text === undefined)
    throw new Error(
      `model: ${path} has no "${ONNX_SPEC_KEY}" metadata; only ONNX files written by \`ddpm export --to onnx\` load as models`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `model: ${path}: the "${ONNX_SPEC_KEY}" metadata is not valid JSON (${(e as Error).message})`,
    );
  }
  const spec = validateSpec(raw, `${path} (metadata "${ONNX_SPEC_KEY}")`);
  const names = new Set(unetParamSpecs(spec.unet).map((s) => s.name));
  const weights = new Map([...initializers].filter(([k]) => names.has(k)));
  return { spec, params: checkParams(spec.unet, weights, path), source: path };
}

/** Parse a JSON file; errors name it. */
function readJson(p: string): unknown {
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`model: ${p} is not valid JSON (${(e as Error).message})`);
  }
}

/** The scheduler config beside a diffusers UNet folder (or in its pipeline's scheduler/), read exactly. */
function diffusionFromDiffusers(dir: string): DiffusionSpec {
  const p = [join(dir, 'scheduler_config.json'), join(dir, '..', 'scheduler', 'scheduler_config.json')].find(
    existsSync,
  );
  if (!p) return diffusionFromScheduler(null, `${dir} (no scheduler_config.json: DDPMScheduler's defaults)`);
  const chk = new JsonChecker(p);
  return diffusionFromScheduler(
    chk.object(readJson(p), '', 'a JSON object (a diffusers DDPMScheduler config)'),
    p,
  );
}

const PIPELINES = ['DDPMPipeline', 'DDIMPipeline'];
const PIPELINE_PARTS: Record<string, readonly string[]> = {
  unet: ['UNet2DModel'],
  scheduler: ['DDPMScheduler', 'DDIMScheduler'],
};

/** A diffusers pipeline folder's model_index.json, checked: the folder of its UNet. */
function unetOfPipeline(dir: string): string {
  const p = join(dir, 'model_index.json');
  const chk = new JsonChecker(p);
  const m = chk.object(readJson(p), '', 'a JSON object (a diffusers model_index.json)');
  if (!PIPELINES.includes(m._class_name as string))
    chk.fail(
      '_class_name',
      m._class_name,
      `one of ${PIPELINES.map((c) => `"${c}"`).join(', ')} (an unconditional UNet2DModel pipeline)`,
    );
  for (const [key, v] of Object.entries(m)) {
    if (key.startsWith('_')) continue;
    const classes = PIPELINE_PARTS[key];
    if (!classes)
      throw new Error(
        `${p}: the pipeline has a "${key}" component (${describeJson(v)}); supported: unet and scheduler only`,
      );
    if (!Array.isArray(v) || v.length !== 2 || !classes.includes(v[1]))
      chk.fail(key, v, classes.map((c) => `["diffusers", "${c}"]`).join(' or '));
  }
  if (!m.unet) chk.fail('unet', m.unet, '["diffusers", "UNet2DModel"]');
  return join(dir, 'unet');
}

/**
 * Write a diffusers pipeline folder that DDPMPipeline.from_pretrained(dir) loads as it is: model_index.json,
 * unet/config.json, unet/diffusion_pytorch_model.safetensors (float32, current attention names) and
 * scheduler/scheduler_config.json; all four files or none.
 */
export function saveDiffusers(dir: string, spec: ModelSpec, params: ParamStore): void {
  const scheduler = diffusersSchedulerConfig(spec.diffusion); // refuses what diffusers cannot express, first
  const json = (o: unknown) => [new TextEncoder().encode(`${JSON.stringify(o, null, 2)}\n`)];
  const tensors = unetParamSpecs(spec.unet).map(
    (s) => [s.name, { data: params.get(s.name)!, shape: s.shape }] as const,
  );
  for (const sub of ['unet', 'scheduler']) mkdirSync(join(dir, sub), { recursive: true });
  writeFilesAtomic([
    {
      path: join(dir, 'unet', 'diffusion_pytorch_model.safetensors'),
      parts: encodeSafeTensors(tensors, { format: 'pt' }),
    },
    { path: join(dir, 'unet', 'config.json'), parts: json(diffusersUnetConfig(spec.unet)) },
    { path: join(dir, 'scheduler', 'scheduler_config.json'), parts: json(scheduler) },
    {
      path: join(dir, 'model_index.json'),
      parts: json({
        _class_name: 'DDPMPipeline',
        _diffusers_version: DIFFUSERS_VERSION,
        scheduler: ['diffusers', 'DDPMScheduler'],
        unet: ['diffusers', 'UNet2DModel'],
      }),
    },
  ]);
}

/**
 * Load a model folder (ours, a diffusers UNet folder or pipeline folder), a .safetensors file with config.json
 * beside it, or an .onnx file written by `ddpm export --to onnx`.
 */
export function loadModel(path: string): LoadedModel {
  if (!existsSync(path))
    throw new Error(`model: ${path} does not exist (pass a model folder or its model.safetensors)`);
  const isDir = statSync(path).isDirectory();
  if (!isDir && path.endsWith('.onnx')) return loadOnnxModel(path);
  if (isDir && existsSync(join(path, 'model_index.json'))) return loadModel(unetOfPipeline(path)); // a diffusers pipeline folder: its unet/ (scheduler/ read beside it)
  if (!isDir && !path.endsWith('.safetensors'))
    throw new Error(
      path.endsWith('.bin')
        ? `model: ${path} is a pickled PyTorch file, which runs Python code and is not read; convert it to safetensors`
        : `model: ${path} is not a model: pass a model folder (config.json and model.safetensors), a run folder, a .safetensors file with config.json beside it, or an .onnx file from ddpm export`,
    );
  const dir = isDir ? path : join(path, '..');
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath))
    throw new Error(`model: no config.json in ${dir}; a model folder holds config.json and the weights`);
  const parsed = readJson(cfgPath);
  // Ours (with "format") or diffusers' (with "block_out_channels"); checked before the weights are read.
  const raw = new JsonChecker(cfgPath).object(
    parsed,
    '',
    'a JSON object: a ddpm-ts model config or a diffusers UNet2DModel config',
  );
  let spec: ModelSpec;
  if ('format' in raw) spec = validateSpec(raw, cfgPath);
  else if ('block_out_channels' in raw) {
    spec = {
      format: 'ddpm-ts/model/v1',
      unet: unetFromDiffusers(raw, cfgPath),
      diffusion: diffusionFromDiffusers(dir),
    };
    checkOutputChannels(spec, `${cfgPath} with its scheduler config`);
  } else
    throw new Error(
      `${cfgPath}: neither a ddpm-ts model config (no "format": "ddpm-ts/model/v1") nor a diffusers UNet2DModel config (no "block_out_channels")`,
    );
  const candidates = isDir
    ? ['model.safetensors', 'diffusion_pytorch_model.safetensors'].map((f) => join(dir, f))
    : [path];
  const wpath = candidates.find(existsSync);
  if (!wpath) {
    const bin = join(dir, 'diffusion_pytorch_model.bin');
    throw new Error(
      existsSync(bin)
        ? `model: ${dir} has only the pickled diffusion_pytorch_model.bin; convert it to safetensors (the .bin format runs Python code and is not read)`
        : `model: no model.safetensors in ${dir}`,
    );
  }
  const file = parseSafeTensors(readFileSync(wpath), wpath);
  return { spec, params: checkParams(spec.unet, file.tensors, wpath), source: dir };
}
