// Ancestral sampling: Algorithm 2 of Ho et al. 2020 (section 3.2). x_T ~ N(0, I); for t = T..1:
// x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) + sigma_t z, z = 0 at t = 1.
// With `steps` the chain is first respaced (respace.ts), e.g. "50" for 50 evenly strided steps.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion, SampleLoopOptions } from './gaussianDiffusion.js';
import { respacedDiffusion, spacedTimesteps } from './respace.js';
import type { Denoiser } from './types.js';

/** Steps of the respaced chain that `ddpm sample` and the trainer's sample grids use by default. */
export const DEFAULT_RESPACED_STEPS = 100;

export interface AncestralOptions extends SampleLoopOptions {
  /**
   * Fewer steps: a spacedTimesteps spec ("50", "ddim50", "10,20"), or a count of evenly strided steps
   * (T or more = all T steps, the chain itself). Default all T steps.
   */
  readonly steps?: string | number;
}

/** Samples of shape [N, C, H, W]; deterministic for a given rng state. */
export function ancestralSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: AncestralOptions = {},
): Promise<Tensor> {
  const T = diffusion.numTimesteps;
  const spec =
    typeof opts.steps === 'number' ? (opts.steps < T ? String(opts.steps) : undefined) : opts.steps;
  const chain = spec === undefined ? diffusion : respacedDiffusion(diffusion, spacedTimesteps(T, spec));
  return chain.pSampleLoop(denoise, shape, rng, opts);
}
