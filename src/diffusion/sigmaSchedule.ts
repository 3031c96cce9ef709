// The noise levels of a discrete diffusion seen as the probability-flow ODE of Karras et al. 2022
// ("Elucidating the Design Space of Diffusion-Based Generative Models", section 2 and Table 1): the scaled
// sample x_t / sqrt(abar_t) = x_0 + sigma_t eps has sigma_t = sqrt((1 - abar_t) / abar_t), and the ODE
// dx/dsigma = (x - D(x; sigma)) / sigma (their eq. 3 with s = 1) has the x_0 prediction D as its only model
// term. This file holds what the ODE samplers (DPM-Solver++, Euler, Heun) share: the step schedules, the
// x_0 prediction at a timestep (every parameterisation, through GaussianDiffusion.predictXstart), and the
// float64 linear combination of tensors that their updates are.
//
// Timesteps: the network is trained on integer t in [0, T) only, and the Denoiser takes integers. Every
// sigma of a spacing is snapped to the training timestep nearest in log-sigma (k-diffusion's
// `quantize=True` choice of t; diffusers' DPMSolverMultistepScheduler also rounds t), and, unlike either,
// the solver then steps between the snapped sigmas themselves, so the network always sees x at exactly the
// noise level of the t it is given (no mismatch between t and sigma); snapped duplicates are dropped. The
// ODE is integrated exactly as far as the chosen nodes allow; only the spacing of the nodes changes.
// The chain starts from x_T ~ N(0, I) at the first node, t = T - 1 for the 'karras' and 'logSnr' spacings
// (x / sqrt(abar) then has standard deviation sqrt(1 + sigma_max^2), diffusers' init_noise_sigma): the
// same starting point as Algorithm 2 (and as DDIM, at DDIM's first timestep, for 'uniform').

import type { Tensor } from '../util/tensor.js';
import { ddimTimesteps } from './ddim.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { batchOf, fullT, randomTensor } from './ops.js';
import { type Denoiser, type NoiseFn, type ProgressFn, type StepFn, unreachable } from './types.js';

/**
 * How the nodes between sigma_max and sigma_min are spread: 'karras' = Karras et al. eq. 5 (rho = 7 by
 * default); 'logSnr' = uniform in log sigma (uniform in lambda = log SNR / 2, Lu et al. 2022's choice for
 * pixel-space models); 'uniform' = DDIM's evenly strided timesteps.
 */
export type SigmaSpacing = 'karras' | 'logSnr' | 'uniform';

/** Options every ODE sampler takes. */
export interface OdeSamplerOptions {
  /** Nodes with a network call (default 20); snapped duplicates are dropped, so at most this many. */
  readonly steps?: number;
  readonly spacing?: SigmaSpacing;
  /** Karras et al.'s rho (default 7). */
  readonly rho?: number;
  /** Clip x_0 predictions to [-1, 1] (default true, as Algorithm 2 and DDIM here). */
  readonly clipDenoised?: boolean;
  /** Starting point x_T at the first node; default standard normal noise from noiseFn. */
  readonly xT?: Tensor;
  /** Noise source of the starting point (default rng.normalArray; per-image streams: imageNoise.ts). */
  readonly noiseFn?: NoiseFn;
  readonly onStep?: StepFn;
  readonly onProgress?: ProgressFn;
}

/** The nodes of a run: timesteps (descending) and their sigmas, then the final sigma 0 (x_0). */
export interface SigmaSchedule {
  /** Timesteps with a network call, descending, distinct: [K]. */
  readonly timesteps: Int32Array;
  /** sigma of each timestep, then 0: [K + 1], descending. */
  readonly sigmas: Float64Array;
}

/** sigma_t = sqrt((1 - abar_t) / abar_t) for t in [0, T): ascending in t. */
export function diffusionSigmas(d: GaussianDiffusion): Float64Array {
  return Float64Array.from(d.alphasCumprod, (a) => Math.sqrt((1 - a) / a));
}

/** Karras et al. eq. 5: n sigmas from sigmaMax down to sigmaMin, evenly spaced in sigma^(1 / rho). */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number, rho = 7): Float64Array {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`karrasSigmas: n must be an integer >= 1, got ${n}`);
  const [lo, hi] = [sigmaMin ** (1 / rho), sigmaMax ** (1 / rho)];
  return Float64Array.from({ length: n }, (_, i) =>
    n === 1 ? sigmaMax : (hi + (i / (n - 1)) * (lo - hi)) ** rho,
  );
}

/** The index of the entry of `ascending` (positive sigmas) nearest to sigma in log-sigma. */
export function nearestTimestep(ascending: Float64Array, sigma: number): number {
  let [lo, hi] = [0, ascending.length - 1];
  if (sigma <= ascending[lo]!) return lo;
  if (sigma >= ascending[hi]!) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ascending[mid]! <= sigma) lo = mid;
    else hi = mid;
  }
  const ls = Math.log(sigma);
  return ls - Math.log(ascending[lo]!) <= Math.log(ascending[hi]!) - ls ? lo : hi;
}

/** The schedule of a run with `steps` network calls (at most; see the file header). */
export function sigmaSchedule(
  d: GaussianDiffusion,
  steps: number,
  spacing: SigmaSpacing = 'karras',
  rho = 7,
): SigmaSchedule {
  if (!(Number.isInteger(steps) && steps >= 1))
    throw new Error(`sigmaSchedule: steps must be an integer >= 1, got ${steps}`);
  const T = d.numTimesteps;
  const table = diffusionSigmas(d);
  const [sMin, sMax] = [table[0]!, table[T - 1]!];
  let wanted: number[];
  switch (spacing) {
    case 'karras':
      wanted = Array.from(karrasSigmas(sMin, sMax, steps, rho), (s) => nearestTimestep(table, s));
      break;
    case 'logSnr': {
      const [a, b] = [Math.log(sMax), Math.log(sMin)];
      wanted = Array.from({ length: steps }, (_, i) =>
        nearestTimestep(table, Math.exp(steps === 1 ? a : a + (i / (steps - 1)) * (b - a))),
      );
      break;
    }
    case 'uniform':
      wanted = Array.from(ddimTimesteps(T, Math.min(steps, T))).reverse();
      break;
    default:
      return unreachable(spacing, 'sigma spacing');
  }
  const timesteps = Int32Array.from(new Set(wanted)).sort().reverse();
  const sigmas = new Float64Array(timesteps.length + 1);
  timesteps.forEach((t, k) => {
    sigmas[k] = table[t]!;
  });
  return { timesteps, sigmas };
}

/** The schedule of a sampler's options, and the starting point x_T (checked against shape). */
export function startOf(
  d: GaussianDiffusion,
  shape: readonly number[],
  noiseFn: NoiseFn,
  opts: OdeSamplerOptions,
  what: string,
): { schedule: SigmaSchedule; x: Tensor } {
  batchOf(shape);
  const schedule = sigmaSchedule(d, opts.steps ?? 20, opts.spacing ?? 'karras', opts.rho ?? 7);
  const x = opts.xT ?? randomTensor(shape, noiseFn); // x_T: [N, C, H, W]
  if (x.shape.join() !== shape.join()) throw new Error(`${what}: xT has shape [${x.shape}], not [${shape}]`);
  return { schedule, x };
}

/** D(x; sigma_t): the x_0 prediction at timestep t for every sample, reported to onStep. */
export async function denoisedAt(
  d: GaussianDiffusion,
  denoise: Denoiser,
  x: Tensor,
  t: number,
  opts: OdeSamplerOptions,
): Promise<Tensor> {
  const { predXstart } = await d.predictXstart(denoise, x, fullT(x.shape[0]!, t), opts.clipDenoised ?? true);
  opts.onStep?.({ t, modelT: d.timestepMap[t]!, xt: x, predXstart });
  return predXstart;
}

/** sum_k c_k x_k elementwise in float64, rounded to float32 once. Terms with c = 0 are skipped. */
export function combine(terms: readonly (readonly [number, Tensor])[]): Tensor {
  const live = terms.filter(([c]) => c !== 0);
  const first = terms[0]![1];
  const out = new Float32Array(first.data.length);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (const [c, x] of live) acc += c * x.data[i]!;
    out[i] = acc;
  }
  return { data: out, shape: [...first.shape] };
}

/** alpha = sqrt(abar) and sigmaVp = sqrt(1 - abar) of a node given its ODE sigma (sigma = 0: alpha 1). */
export function vpOf(sigma: number): { alpha: number; sigmaVp: number } {
  const alpha = 1 / Math.sqrt(1 + sigma * sigma);
  return { alpha, sigmaVp: sigma * alpha };
}
