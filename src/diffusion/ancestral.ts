// Ancestral sampling: Algorithm 2 of Ho et al. 2020 (section 3.2). x_T ~ N(0, I); for t = T..1:
// x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) + sigma_t z, z = 0 at t = 1.
// With `steps` the chain is first respaced (respace.ts): a step count by the diffusion's timestep rule
// (timesteps.ts), or an explicit spacedTimesteps spec such as "ddim50" or "10,20".

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion, SampleLoopOptions } from './gaussianDiffusion.js';
import { respacedDiffusion, spacedTimesteps } from './respace.js';
import { ancestralChain } from './timesteps.js';
import type { Denoiser } from './types.js';

/** Steps of the respaced chain that `ddpm sample` and the trainer's sample grids use by default. */
export const DEFAULT_RESPACED_STEPS = 100;

export interface AncestralOptions extends SampleLoopOptions {
  /**
   * Fewer steps: a count, placed by the diffusion's timestep rule (T or more = all T steps, the chain
   * itself), or a spacedTimesteps spec ("50", "ddim50", "10,20"). Default all T steps.
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
  const chain =
    typeof opts.steps === 'string'
      ? respacedDiffusion(diffusion, spacedTimesteps(diffusion.numTimesteps, opts.steps))
      : ancestralChain(diffusion, opts.steps);
  return chain.pSampleLoop(denoise, shape, rng, opts);
}
