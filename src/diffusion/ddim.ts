// DDIM sampling (Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12) over a subsequence
// tau_1 < .. < tau_S of the original timesteps, and its deterministic inversion (eta = 0, the ODE run
// forwards) which encodes x_0 to x_T, useful for interpolation. Works with every parameterisation: the
// x_0 prediction comes from GaussianDiffusion.predictXstart at the original t, and eps is derived from it.
//   x_{prev} = sqrt(abar_prev) x0Pred + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
//   sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).
// eta = 1 over all T steps is ancestral sampling with the 'fixedsmall' variance.
// Which timesteps are visited and which noise level each step moves to: the diffusion's TimestepRule
// (timesteps.ts): this project's own stride rule by default, or diffusers' DDIMScheduler (timestep_spacing,
// steps_offset, prev_timestep = t - T // K, final_alpha_cumprod per set_alpha_to_one). Unlike diffusers'
// DDIMPipeline (use_clipped_model_output off), eps is re-derived from the clipped x_0 prediction
// (improved-diffusion's ddim_sample); the two agree whenever clipping changes nothing.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { batchOf, fullT, randomTensor } from './ops.js';
import { ddimTargets, samplingTimesteps, timestepsOf } from './timesteps.js';
import type { Denoiser, NoiseFn, ProgressFn, StepFn } from './types.js';

export interface DdimOptions {
  /** Number of steps S (default 50, at most T), placed by the diffusion's timestep rule (timesteps.ts). */
  readonly steps?: number;
  /**
   * Explicit timesteps (any order; sorted and deduplicated); overrides steps. Each step then moves to the
   * previous given timestep, the last to abar = 1, whatever the diffusion's rule.
   */
  readonly timesteps?: ArrayLike<number>;
  /** 0 = deterministic (default), 1 = DDPM-like noise. */
  readonly eta?: number;
  /** Clip x_0 predictions to [-1, 1] (default true). */
  readonly clipDenoised?: boolean;
  readonly onStep?: StepFn;
  readonly onProgress?: ProgressFn;
}

export interface DdimSampleOptions extends DdimOptions {
  /** Starting point x_{tau_S}; default standard normal noise. */
  readonly xT?: Tensor;
  readonly noiseFn?: NoiseFn;
}

/**
 * This project's own DDIM timesteps for a step count: range(0, T, stride) if some stride gives exactly
 * `steps`, else "steps" evenly spread (the 'improved-diffusion' rule of timesteps.ts).
 */
export function ddimTimesteps(T: number, steps: number): Int32Array {
  return samplingTimesteps(T, steps, 'improved-diffusion', 0, 'ddim');
}

/** The ascending timesteps a DDIM run with these options visits. */
export function ddimTimestepsFor(diffusion: GaussianDiffusion, opts: DdimOptions): Int32Array {
  return ddimPlan(diffusion, opts).ts;
}

/** The visited timesteps (ascending) and the noise level abar each step moves to. */
function ddimPlan(diffusion: GaussianDiffusion, opts: DdimOptions): { ts: Int32Array; abarTo: Float64Array } {
  const T = diffusion.numTimesteps;
  const abar = diffusion.alphasCumprod;
  if (opts.timesteps) {
    const ts = Int32Array.from(new Set(Array.from(opts.timesteps))).sort();
    if (ts.length === 0 || ts[0]! < 0 || ts[ts.length - 1]! >= T) {
      throw new Error(`ddim: timesteps must be a non-empty subset of [0, ${T})`);
    }
    return { ts, abarTo: ddimTargets(abar, ts, null, true) };
  }
  const ts = timestepsOf(diffusion, opts.steps ?? 50, 'ddim');
  const rule = diffusion.timestepRule;
  return { ts, abarTo: ddimTargets(abar, ts, rule.spacing, rule.setAlphaToOne) };
}

/** Move x from noise level abar (x at t) to level abarTo, given x_0 and eps predictions (eq. 12). */
function ddimMove(x0: Tensor, eps: Tensor, abarTo: number, sigma: number, z: Tensor | null): Tensor {
  const a = Math.sqrt(abarTo);
  const b = Math.sqrt(Math.max(0, 1 - abarTo - sigma * sigma));
  const out = new Float32Array(x0.data.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = a * x0.data[i]! + b * eps.data[i]! + (z ? sigma * z.data[i]! : 0);
  }
  return { data: out, shape: [...x0.shape] };
}

/** DDIM samples of shape [N, C, H, W] from tau_S down to x_0; deterministic given xT when eta = 0. */
export async function ddimSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: DdimSampleOptions = {},
): Promise<Tensor> {
  const { ts, abarTo } = ddimPlan(diffusion, opts);
  const eta = opts.eta ?? 0;
  const n = batchOf(shape);
  const noiseFn = opts.noiseFn ?? ((k: number) => rng.normalArray(k));
  let x = opts.xT ?? randomTensor(shape, noiseFn); // x_{tau_S}: [N, C, H, W]
  if (x.shape.join() !== shape.join())
    throw new Error(`ddimSample: xT has shape [${x.shape}], not [${shape}]`);
  const abar = diffusion.alphasCumprod;
  for (let k = ts.length - 1; k >= 0; k--) {
    const ti = ts[k]!;
    const t = fullT(n, ti);
    const { predXstart } = await diffusion.predictXstart(denoise, x, t, opts.clipDenoised ?? true);
    const eps = diffusion.predictEpsFromXstart(x, t, predXstart); // [N, C, H, W]
    const abarT = abar[ti]!;
    const abarPrev = abarTo[k]!;
    const sigma = eta * Math.sqrt((1 - abarPrev) / (1 - abarT)) * Math.sqrt(1 - abarT / abarPrev);
    // sigma is 0 on a last step to abar = 1; diffusers adds noise on a last step to abar_0 too
    const z = sigma > 0 ? randomTensor(shape, noiseFn) : null;
    opts.onStep?.({ t: ti, modelT: diffusion.timestepMap[ti]!, xt: x, predXstart });
    x = ddimMove(predXstart, eps, abarPrev, sigma, z);
    opts.onProgress?.({ step: ts.length - k, total: ts.length });
  }
  return x;
}

/**
 * Deterministic DDIM encoding of x0 (eta = 0): x0 is taken as x_{tau_1}, then for k = 1..S-1 the eps
 * predicted at (x_{tau_k}, tau_k) carries it to tau_{k+1}. Returns x at the last timestep tau_S, which
 * ddimSample with the same timesteps decodes back to about x0. It moves between the visited timesteps, the
 * inverse of ddimSample wherever each sampling step goes to the previous visited timestep (this project's
 * rule, explicit timesteps, diffusers' 'leading'; not 'linspace', whose steps go to t - T // K).
 */
export async function ddimReverse(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  x0: Tensor,
  opts: DdimOptions = {},
): Promise<{ xT: Tensor; t: number }> {
  const ts = ddimTimestepsFor(diffusion, opts);
  const n = batchOf(x0.shape);
  let x = x0; // x_{tau_1}: [N, C, H, W]
  for (let k = 0; k < ts.length - 1; k++) {
    const ti = ts[k]!;
    const t = fullT(n, ti);
    const { predXstart } = await diffusion.predictXstart(denoise, x, t, opts.clipDenoised ?? true);
    const eps = diffusion.predictEpsFromXstart(x, t, predXstart); // [N, C, H, W]
    opts.onStep?.({ t: ti, modelT: diffusion.timestepMap[ti]!, xt: x, predXstart });
    x = ddimMove(predXstart, eps, diffusion.alphasCumprod[ts[k + 1]!]!, 0, null);
    opts.onProgress?.({ step: k + 1, total: ts.length - 1 });
  }
  return { xT: x, t: ts[ts.length - 1]! };
}
