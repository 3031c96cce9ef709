// Heun sampler of Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models",
// Algorithm 1, deterministic: S_churn = 0): an Euler step to sigma', then the trapezoidal correction
// x' = x + (sigma' - sigma) (d + d') / 2 with d' evaluated at the Euler point, except on the last step to
// sigma = 0 (where d' is undefined and the step stays Euler). Second order; 2 network calls per step
// except the last: 2 K - 1 for K steps. Sigmas spaced by their eq. 5 (rho = 7). Schedules, timestep
// snapping and the starting noise: sigmaSchedule.ts; every parameterisation through predictXstart.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { eulerCoefficients } from './euler.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { combine, denoisedAt, type OdeSamplerOptions, startOf, vpOf } from './sigmaSchedule.js';
import type { Denoiser } from './types.js';

/**
 * The corrected step on x_t = sqrt(abar) (x_0 + sigma eps) as x' = cx x + cd D + ce De, D the x_0 prediction at
 * (x, sigma), De the one at the Euler point (sigmaNext > 0). On y = x / sqrt(abar) (Algorithm 1, line 8):
 * y' = y + (s' - s) / 2 ((y - D) / s + (y_e - De) / s'), y_e = y + (s' - s) (y - D) / s, which is
 * y' = (s' / s) y + (s' - s)(s - 2 s') / (2 s s') D + (s - s') / (2 s') De.
 */
export function heunCoefficients(sigma: number, sigmaNext: number): { cx: number; cd: number; ce: number } {
  const [a, b] = [vpOf(sigma), vpOf(sigmaNext)];
  const [s, sn] = [sigma, sigmaNext];
  return {
    cx: b.sigmaVp / a.sigmaVp,
    cd: (b.alpha * (sn - s) * (s - 2 * sn)) / (2 * s * sn),
    ce: (b.alpha * (s - sn)) / (2 * sn),
  };
}

/** Network calls of a Heun run over K nodes (the last step has no correction). */
export function heunCalls(nodes: number): number {
  return 2 * nodes - 1;
}

/** Heun samples of shape [N, C, H, W]; deterministic given x_T (one draw of noise). */
export async function heunSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: OdeSamplerOptions = {},
): Promise<Tensor> {
  const noiseFn = opts.noiseFn ?? ((k: number) => rng.normalArray(k));
  const { schedule, x: xT } = startOf(diffusion, shape, noiseFn, opts, 'heunSample');
  const { timesteps, sigmas } = schedule;
  const K = timesteps.length;
  const total = heunCalls(K);
  let x = xT;
  let calls = 0;
  const report = () => opts.onProgress?.({ step: ++calls, total });
  for (let k = 0; k < K; k++) {
    const [s, sn] = [sigmas[k]!, sigmas[k + 1]!];
    const x0 = await denoisedAt(diffusion, denoise, x, timesteps[k]!, opts);
    report();
    const euler = eulerCoefficients(s, sn);
    const xe = combine([
      [euler.cx, x],
      [euler.cd, x0],
    ]);
    if (k === K - 1) {
      x = xe; // sigma' = 0: Euler (Algorithm 1, line 6)
      break;
    }
    // The correction's x_0 prediction is not reported to onStep (it belongs to the next node's t).
    const { predXstart: x0e } = await diffusion.predictXstart(
      denoise,
      xe,
      new Int32Array(x.shape[0]!).fill(timesteps[k + 1]!),
      opts.clipDenoised ?? true,
    );
    report();
    const { cx, cd, ce } = heunCoefficients(s, sn);
    x = combine([
      [cx, x],
      [cd, x0],
      [ce, x0e],
    ]);
  }
  return x;
}
