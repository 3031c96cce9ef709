// The denoiser of the commands that sample (sample, eval): --precision, float32 (the default), int8
// convolutions calibrated on the model's own sampling inputs first (src/sample/calibrate.ts, the
// quantize-int8 graph pass) or bf16 (the 3x3 convolutions' Winograd products in bfloat16 on CPUs with
// AVX-512 BF16: the winograd-bf16 graph pass), then --ep, --threads and the batch
// (src/sample/autoBatch.ts): commandDenoiser.

import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import type { Engine } from '../engine/engine.js';
import { hasBf16Winograd } from '../graph/passes/winogradBf16.js';
import type { ParamStore, UNetConfig } from '../nn/unet.js';
import { calibrateConvs } from '../sample/calibrate.js';
import { type DenoiserChoice, denoiserForJob } from '../sample/autoBatch.js';
import type { DenoiserOptions } from '../sample/denoiser.js';
import type { OptDef, Parsed } from './args.js';
import { openEpOption } from './epOption.js';

export type Precision = 'float32' | 'int8' | 'bf16';

export const PRECISION_OPTION: OptDef = {
  kind: 'string',
  help: 'float32, int8 convolutions (ONNX Runtime QLinearConv; calibrated on a short sampling run first) or bf16 (the 3x3 convolutions in bfloat16; CPUs with AVX-512 BF16); both approximate: see the README',
  default: 'float32',
  choices: ['float32', 'int8', 'bf16'],
};

/**
 * The denoiser options of a precision: float32 as is, int8 with its calibration (a few seconds), bf16 where the
 * engine has its kernels (else an error saying what is missing).
 */
async function precisionOptions(
  precision: Precision,
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  diffusion: GaussianDiffusion,
  session: DenoiserOptions,
  log: (line: string) => void,
): Promise<DenoiserOptions> {
  switch (precision) {
    case 'float32':
      return session;
    case 'int8': {
      const t0 = performance.now();
      const calibration = await calibrateConvs(engine, cfg, params, diffusion, session);
      log(
        `int8: ${calibration.size} convolutions calibrated in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      return { ...session, calibration };
    }
    case 'bf16': {
      const has = engine.fusedKernels ?? [];
      if (!hasBf16Winograd(has)) {
        throw new Error(
          `--precision bf16 needs the native engine's bfloat16 Winograd kernels, which run on CPUs with AVX-512 BF16, and ${bf16Missing(has)}; use --precision float32 (the default) or int8`,
        );
      }
      return { ...session, bf16: true };
    }
  }
}

/** Why the bf16 kernels are not there, for the error. */
function bf16Missing(has: readonly string[]): string {
  if (!has.includes('ConvWinograd'))
    return 'this engine has no Winograd kernels (onnxruntime-node, a GPU provider, or an AVX2 build without DDPM_WINOGRAD=1)';
  return 'this CPU (the native build is made for the machine that ran npm ci) has no AVX-512 BF16';
}

/**
 * The denoiser of a sampling command: its engine (--ep), threads, precision (--precision) and images per
 * network call (`job.batch`: a number, or auto as denoiserForJob decides); what it did goes to stderr.
 */
export async function commandDenoiser(
  cmd: string,
  o: Parsed,
  model: { readonly cfg: UNetConfig; readonly params: ParamStore; readonly diffusion: GaussianDiffusion },
  job: Parameters<typeof denoiserForJob>[4],
): Promise<DenoiserChoice & { readonly int8Convs?: number; readonly bf16?: boolean }> {
  const say = (line: string) => console.error(`ddpm ${cmd}: ${line}`);
  const engine = await openEpOption(o.ep);
  const session = await precisionOptions(
    o.precision as Precision,
    engine,
    model.cfg,
    model.params,
    model.diffusion,
    { threads: o.threads as number },
    say,
  );
  const choice = await denoiserForJob(engine, model.cfg, model.params, session, job, say);
  if (choice.measured) say(`network ${choice.how}`);
  if (session.calibration) return { ...choice, int8Convs: session.calibration.size };
  return session.bf16 ? { ...choice, bf16: true } : choice;
}
