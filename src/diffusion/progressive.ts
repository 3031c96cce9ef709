// Progressive generation (Ho et al. 2020, section 4.3, Fig. 6): run a sampler and keep, at chosen steps,
// x_t and the model's prediction of x_0 from it (the original's p_sample_loop_progressive).

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { type SamplerName, samplerEntry } from './samplers.js';
import type { Denoiser, ProgressFn, StepInfo } from './types.js';

/** 'ancestral' = Algorithm 2 over every step of the given diffusion; or any sampler of samplers.ts. */
export type ProgressiveSampler = 'ancestral' | SamplerName;

export interface ProgressiveOptions {
  /** 'ancestral' (Algorithm 2, all T steps; default), 'ddim', 'dpm++2m', ... */
  readonly sampler?: ProgressiveSampler;
  /** Timesteps at which to record (each must be visited by the sampler). */
  readonly recordAt?: ArrayLike<number>;
  /** Without recordAt: this many frames evenly spread over the visited steps, first and last included (10). */
  readonly frames?: number;
  /** Step count of a named sampler (default: the sampler's own); ddimSteps is its older name. */
  readonly steps?: number;
  readonly ddimSteps?: number;
  /** DDIM's eta (sampler 'ddim'). */
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
  const plan = samplerEntry(kind === 'ancestral' ? 'ddpm' : kind).plan(diffusion, denoise, shape, rng, {
    steps: kind === 'ancestral' ? diffusion.numTimesteps : (opts.steps ?? opts.ddimSteps),
    eta: opts.eta,
    clipDenoised: opts.clipDenoised,
    onProgress: opts.onProgress,
  });
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
