// Progressive generation (Ho et al. 2020, section 4.3, Fig. 6): run a sampler and keep, at chosen steps,
// x_t and the model's prediction of x_0 from it (the original's p_sample_loop_progressive).

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { ancestralSample } from './ancestral.js';
import { ddimSample, ddimTimestepsFor } from './ddim.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { type Denoiser, type ProgressFn, type StepFn, type StepInfo, unreachable } from './types.js';

export type ProgressiveSampler = 'ancestral' | 'ddim';

export interface ProgressiveOptions {
  /** 'ancestral' (Algorithm 2, all T steps; default) or 'ddim'. */
  readonly sampler?: ProgressiveSampler;
  /** Timesteps at which to record (each must be visited by the sampler). */
  readonly recordAt?: ArrayLike<number>;
  /** Without recordAt: this many frames evenly spread over the visited steps, first and last included (10). */
  readonly frames?: number;
  /** DDIM step count and eta (sampler 'ddim'). */
  readonly ddimSteps?: number;
  readonly eta?: number;
  readonly clipDenoised?: boolean;
  readonly onProgress?: ProgressFn;
}

export interface ProgressiveResult {
  /** The final x_0: [N, C, H, W]. */
  readonly sample: Tensor;
  /** Recorded steps in sampling order (t descending). */
  readonly frames: StepInfo[];
}

function copy(x: Tensor): Tensor {
  return { data: x.data.slice(), shape: [...x.shape] };
}

export async function progressiveSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: ProgressiveOptions = {},
): Promise<ProgressiveResult> {
  const kind = opts.sampler ?? 'ancestral';
  const plan = samplerPlan(kind, diffusion, denoise, shape, rng, opts);
  const record = new Set<number>();
  if (opts.recordAt) {
    for (const t of Array.from(opts.recordAt)) {
      if (!plan.visited.includes(t))
        throw new Error(`progressiveSample: the ${kind} sampler never visits t = ${t}`);
      record.add(t);
    }
  } else {
    const L = plan.visited.length;
    const count = Math.min(opts.frames ?? 10, L);
    for (let j = 0; j < count; j++)
      record.add(plan.visited[count === 1 ? 0 : Math.round((j * (L - 1)) / (count - 1))]!);
  }
  const frames: StepInfo[] = [];
  const sample = await plan.run((s) => {
    if (record.has(s.t)) frames.push({ ...s, xt: copy(s.xt), predXstart: copy(s.predXstart) });
  });
  return { sample, frames };
}

/** The steps a sampler visits (descending) and how to run it. */
function samplerPlan(
  kind: ProgressiveSampler,
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: ProgressiveOptions,
): { visited: number[]; run: (onStep: StepFn) => Promise<Tensor> } {
  const common = { clipDenoised: opts.clipDenoised, onProgress: opts.onProgress };
  switch (kind) {
    case 'ancestral':
      return {
        visited: Array.from({ length: diffusion.numTimesteps }, (_, i) => diffusion.numTimesteps - 1 - i),
        run: (onStep) => ancestralSample(diffusion, denoise, shape, rng, { ...common, onStep }),
      };
    case 'ddim': {
      const ddimOpts = { ...common, steps: opts.ddimSteps, eta: opts.eta };
      return {
        visited: Array.from(ddimTimestepsFor(diffusion, ddimOpts)).reverse(),
        run: (onStep) => ddimSample(diffusion, denoise, shape, rng, { ...ddimOpts, onStep }),
      };
    }
    default:
      return unreachable(kind, 'progressive sampler');
  }
}
