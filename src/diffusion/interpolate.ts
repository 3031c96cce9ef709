// Interpolation in latent space (Ho et al. 2020, section 4.3, Fig. 8): encode x_0 and x_0' to x_t with the
// SAME noise (q(x_t | x_0), eq. 4), take xbar_t = (1 - lambda) x_t + lambda x_t', and decode each xbar_t
// with the reverse process from t down to 0 (Algorithm 2 started at t). The paper shows t = 500 of 1000.

import type { Rng } from '../util/rng.js';
import { concatBatch, sliceBatch, type Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { assertSameShape, batchOf, fullT } from './ops.js';
import type { Denoiser, ProgressFn } from './types.js';

export interface InterpolateOptions {
  /** Timestep index to encode to (0-based, default floor(T / 2): 500 of 1000). */
  readonly t?: number;
  /** Interpolation weights (default 0, 0.1, .., 1). */
  readonly lambdas?: readonly number[];
  readonly clipDenoised?: boolean;
  /** Use the same reverse-process noise for every lambda (default true), so only lambda varies. */
  readonly sharedReverseNoise?: boolean;
  readonly onProgress?: ProgressFn;
}

export interface InterpolateResult {
  readonly lambdas: number[];
  /** images[l]: the decoded interpolants for lambdas[l], shape of x0a ([N, C, H, W]). */
  readonly images: Tensor[];
}

export async function interpolate(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  x0a: Tensor,
  x0b: Tensor,
  rng: Rng,
  opts: InterpolateOptions = {},
): Promise<InterpolateResult> {
  assertSameShape(x0a, x0b, 'interpolate');
  const n = batchOf(x0a.shape);
  const t = opts.t ?? Math.floor(diffusion.numTimesteps / 2);
  if (!(Number.isInteger(t) && t >= 0 && t < diffusion.numTimesteps)) {
    throw new Error(`interpolate: t = ${t} is outside [0, ${diffusion.numTimesteps})`);
  }
  const lambdas = [...(opts.lambdas ?? Array.from({ length: 11 }, (_, i) => i / 10))];
  const L = lambdas.length;
  const noise: Tensor = { data: rng.normalArray(x0a.data.length), shape: [...x0a.shape] };
  const xta = diffusion.qSample(x0a, fullT(n, t), noise); // [N, C, H, W]
  const xtb = diffusion.qSample(x0b, fullT(n, t), noise); // [N, C, H, W]
  const mixed = concatBatch(
    lambdas.map((lam) => ({
      data: xta.data.map((a, i) => (1 - lam) * a + lam * xtb.data[i]!),
      shape: [...x0a.shape],
    })),
  ); // [L * N, C, H, W]
  const shared = opts.sharedReverseNoise ?? true;
  const tiledNoise = (k: number) => {
    const one = rng.normalArray(k / L);
    const out = new Float32Array(k);
    for (let l = 0; l < L; l++) out.set(one, l * one.length);
    return out;
  };
  const decoded = await diffusion.pSampleLoop(denoise, mixed.shape, rng, {
    xStart: mixed,
    startT: t,
    clipDenoised: opts.clipDenoised,
    noiseFn: shared ? tiledNoise : undefined,
    onProgress: opts.onProgress,
  }); // [L * N, C, H, W]
  return { lambdas, images: lambdas.map((_, l) => sliceBatch(decoded, l * n, (l + 1) * n)) };
}
