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
  /** A spacedTimesteps spec ("50", "ddim50", "10,20") to sample with fewer steps; default all T steps. */
  readonly steps?: string;
}

/** Samples of shape [N, C, H, W]; deterministic for a given rng state. */
export function ancestralSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: AncestralOptions = {},
): Promise<Tensor> {
  const chain =
    opts.steps === undefined
      ? diffusion
      : respacedDiffusion(diffusion, spacedTimesteps(diffusion.numTimesteps, opts.steps));
  return chain.pSampleLoop(denoise, shape, rng, opts);
}
