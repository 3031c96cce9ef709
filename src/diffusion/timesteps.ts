// The timesteps a sampler that skips steps visits (respaced Algorithm 2 and DDIM; the ODE samplers place
// their nodes by Karras sigmas instead: sigmaSchedule.ts), chosen by a model's TimestepRule (types.ts):
//   improved-diffusion  this project's own (Nichol & Dhariwal's space_timesteps): ddpm "K" = K steps evenly
//                       spread over [0, T-1], both ends kept, halves rounded to even; ddim "ddimK" =
//                       range(0, T, s) for the integer stride s giving exactly K steps, else as ddpm
//   leading             diffusers: i * (T // K) + steps_offset, i = 0..K-1
//   trailing            diffusers: round(T - i * T / K) - 1 (np.round(np.arange(T, 0, -T / K)) - 1)
//   linspace            diffusers: round(linspace(0, T - 1, K)) (numpy's linspace and half-to-even round)
// The diffusers rules are those of DDPMScheduler.set_timesteps and DDIMScheduler.set_timesteps (diffusers
// src/diffusers/schedulers/scheduling_ddpm.py, scheduling_ddim.py), computed with numpy's float64 steps:
// np.arange fills start + i * (fl(start + step) - start), linspace i * fl((T - 1) / (K - 1)) with the last
// entry exactly T - 1. One departure: for some K (61 of T = 1000, for one) numpy's arange length
// ceil(K + epsilon) gives diffusers' 'trailing' a (K+1)-th timestep, -1, which its scheduler then indexes as
// the last table entry; here 'trailing' is the K timesteps it means.
// How a step moves between them: respaced Algorithm 2 steps to the previous visited timestep (its posterior
// and variances at that timestep, as diffusers' DDPMScheduler.previous_timestep once set_timesteps has run);
// DDIM steps to the previous visited timestep under 'improved-diffusion' and to t - T // K under diffusers'
// spacings (DDIMScheduler.step's prev_timestep, which is the previous visited timestep for 'leading' and
// 'trailing' when K divides T, not always for 'linspace'), the last step to abar = 1 or, with
// set_alpha_to_one false, to abar_0.

import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { respacedDiffusion, roundHalfEven, spacedTimesteps } from './respace.js';
import { type TimestepSpacing, unreachable } from './types.js';

export const TIMESTEP_SPACINGS = [
  'improved-diffusion',
  'leading',
  'trailing',
  'linspace',
] as const satisfies readonly TimestepSpacing[];

/** The samplers that visit a subsequence of the T timesteps. */
export type SkippingSampler = 'ddpm' | 'ddim';

/**
 * The K = steps timesteps (ascending, distinct, each in [0, T)) that `sampler` visits under `spacing` with
 * diffusers' steps_offset `offset` (used by 'leading' only, as diffusers; 'improved-diffusion' has none).
 * Errors name what is wrong: K outside [1, T], an offset pushing a timestep past T - 1.
 */
export function samplingTimesteps(
  T: number,
  steps: number,
  spacing: TimestepSpacing,
  offset: number,
  sampler: SkippingSampler,
): Int32Array {
  if (!(Number.isSafeInteger(T) && T >= 1))
    throw new Error(`samplingTimesteps: T = ${T} is not a positive integer`);
  if (!(Number.isSafeInteger(steps) && steps >= 1 && steps <= T))
    throw new Error(
      `samplingTimesteps: ${steps} steps over T = ${T}; the steps must be an integer in [1, ${T}]`,
    );
  if (!(Number.isSafeInteger(offset) && offset >= 0))
    throw new Error(`samplingTimesteps: steps offset ${offset} is not an integer >= 0`);
  const K = steps;
  let ts: number[];
  switch (spacing) {
    case 'improved-diffusion':
      if (offset !== 0)
        throw new Error(
          `samplingTimesteps: steps offset ${offset} with 'improved-diffusion', which has none (diffusers adds steps_offset to 'leading' only)`,
        );
      return improvedDiffusion(T, K, sampler);
    case 'leading': {
      const ratio = Math.floor(T / K);
      ts = Array.from({ length: K }, (_, i) => i * ratio + offset);
      break;
    }
    case 'trailing': {
      // np.arange(T, 0, -T / K): buffer[0] = T, then T + i * delta with delta = fl(T - T / K) - T
      const delta = T + -(T / K) - T;
      ts = Array.from({ length: K }, (_, i) => roundHalfEven(T + i * delta) - 1);
      break;
    }
    case 'linspace': {
      const step = (T - 1) / (K - 1);
      ts = Array.from({ length: K }, (_, i) => (i === 0 ? 0 : i === K - 1 ? T - 1 : roundHalfEven(i * step)));
      break;
    }
    default:
      return unreachable(spacing, 'timestep spacing');
  }
  ts.sort((a, b) => a - b);
  const last = ts[K - 1]!;
  if (last > T - 1)
    throw new Error(
      `samplingTimesteps: '${spacing}' with steps offset ${offset} gives timestep ${last} for ${K} steps over T = ${T}, past the last timestep ${T - 1}; take fewer steps`,
    );
  if (ts[0]! < 0 || ts.some((t, i) => i > 0 && t === ts[i - 1]))
    throw new Error(`samplingTimesteps: '${spacing}' gives [${ts}] for ${K} steps over T = ${T}`);
  return Int32Array.from(ts);
}

function improvedDiffusion(T: number, K: number, sampler: SkippingSampler): Int32Array {
  switch (sampler) {
    case 'ddpm':
      return spacedTimesteps(T, String(K));
    case 'ddim':
      try {
        return spacedTimesteps(T, `ddim${K}`);
      } catch {
        return spacedTimesteps(T, String(K));
      }
    default:
      return unreachable(sampler, 'sampler');
  }
}

/** The timesteps of a diffusion's own rule for `steps` (at most T) of `sampler`. */
export function timestepsOf(d: GaussianDiffusion, steps: number, sampler: SkippingSampler): Int32Array {
  const r = d.timestepRule;
  return samplingTimesteps(d.numTimesteps, steps, r.spacing, r.stepsOffset, sampler);
}

/**
 * The chain Algorithm 2 runs for `steps`: the diffusion itself for all T steps (undefined or >= T: every rule
 * then keeps every timestep), else the diffusion respaced to its rule's timesteps (respace.ts).
 */
export function ancestralChain(d: GaussianDiffusion, steps: number | undefined): GaussianDiffusion {
  if (steps === undefined || steps >= d.numTimesteps) return d;
  return respacedDiffusion(d, timestepsOf(d, steps, 'ddpm'));
}

/**
 * The noise level abar each DDIM step moves to from the ascending visited timesteps ts ([K] -> [K]):
 * 'improved-diffusion' (and explicit timesteps: `spacing` null) the previous visited timestep; diffusers'
 * spacings the timestep t - T // K; the last step (or one below 0) to abar = 1, or abar_0 when setAlphaToOne
 * is false (diffusers' final_alpha_cumprod).
 */
export function ddimTargets(
  alphasCumprod: ArrayLike<number>,
  ts: Int32Array,
  spacing: TimestepSpacing | null,
  setAlphaToOne: boolean,
): Float64Array {
  const T = alphasCumprod.length;
  const K = ts.length;
  const final = setAlphaToOne ? 1 : alphasCumprod[0]!;
  const prevOf = (k: number): number => {
    switch (spacing) {
      case null:
      case 'improved-diffusion':
        return k > 0 ? ts[k - 1]! : -1;
      case 'leading':
      case 'trailing':
      case 'linspace':
        return ts[k]! - Math.floor(T / K);
      default:
        return unreachable(spacing, 'timestep spacing');
    }
  };
  return Float64Array.from({ length: K }, (_, k) => {
    const p = prevOf(k);
    return p >= 0 ? alphasCumprod[p]! : final;
  });
}
