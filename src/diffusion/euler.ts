// Euler sampler of Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models",
// Algorithm 1 without its second-order correction, deterministic): with d = (x - D(x; sigma)) / sigma,
// x' = x + (sigma' - sigma) d on x / sqrt(abar), over sigmas spaced by their eq. 5 (rho = 7) between the
// model's sigma_max and sigma_min, then sigma = 0. One network call per step; first order. On the same
// nodes this is exactly DDIM with eta = 0 (Karras et al. Table 1). Schedules, timestep snapping and the
// starting noise: sigmaSchedule.ts; every parameterisation through GaussianDiffusion.predictXstart.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { combine, denoisedAt, type OdeSamplerOptions, startOf, vpOf } from './sigmaSchedule.js';
import type { Denoiser } from './types.js';

/**
 * The Euler step from sigma to sigmaNext on x_t = sqrt(abar) (x_0 + sigma eps), as x' = cx x + cd D:
 * x / sqrt(abar) moves by (sigmaNext - sigma) (x / sqrt(abar) - D) / sigma (Algorithm 1, line 5).
 */
export function eulerCoefficients(sigma: number, sigmaNext: number): { cx: number; cd: number } {
  const [a, b] = [vpOf(sigma), vpOf(sigmaNext)];
  return { cx: b.sigmaVp / a.sigmaVp, cd: b.alpha * (1 - sigmaNext / sigma) };
}

/** Euler samples of shape [N, C, H, W]; deterministic given x_T (one draw of noise). */
export async function eulerSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: OdeSamplerOptions = {},
): Promise<Tensor> {
  const noiseFn = opts.noiseFn ?? ((k: number) => rng.normalArray(k));
  const { schedule, x: xT } = startOf(diffusion, shape, noiseFn, opts, 'eulerSample');
  const { timesteps, sigmas } = schedule;
  let x = xT;
  for (let k = 0; k < timesteps.length; k++) {
    const x0 = await denoisedAt(diffusion, denoise, x, timesteps[k]!, opts);
    const { cx, cd } = eulerCoefficients(sigmas[k]!, sigmas[k + 1]!);
    x = combine([
      [cx, x],
      [cd, x0],
    ]);
    opts.onProgress?.({ step: k + 1, total: timesteps.length });
  }
  return x;
}
