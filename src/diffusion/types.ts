// Shared types of the diffusion layer (Ho et al. 2020, "Denoising Diffusion Probabilistic Models").
// The layer never imports a network: everything takes a Denoiser, a function from (x_t, t) to the model output.

import type { Tensor } from '../util/tensor.js';

/**
 * The network as the diffusion layer sees it. x: [N, C, H, W]; t: per-sample timestep index 0..T-1
 * (0-based as in the original code: t = 0 is the paper's t = 1). Returns eps, x_0 or x_{t-1}
 * according to the ModelMeanType, with the same shape as x.
 */
export type Denoiser = (x: Tensor, t: Int32Array) => Promise<Tensor>;

/**
 * What the network predicts (paper Table 2): the noise eps, the clean image x_0, or the posterior mean mu~;
 * or 'v' = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, "Progressive Distillation", sec. 4).
 */
export type ModelMeanType = 'eps' | 'xstart' | 'xprev' | 'v';

/**
 * Reverse-process variance sigma_t^2: fixed (paper section 3.2) to beta_t ('fixedlarge') or beta~_t
 * ('fixedsmall'), or learned (Nichol & Dhariwal 2021, sec. 3.1, eq. 15): 'learned-range' = the network outputs
 * 2C channels, the last C a value v in [-1, 1] with log sigma^2 = frac log beta_t + (1 - frac) log beta~_t,
 * frac = (v + 1) / 2.
 */
export type ModelVarType = 'fixedlarge' | 'fixedsmall' | 'learned-range';

/**
 * Whether the network outputs its variance too ('learned-range': 2C channels, the mean output then the
 * variance values), for the layers that size or split the output (model config, training graph).
 */
export function learnsVariance(kind: ModelVarType): boolean {
  switch (kind) {
    case 'fixedlarge':
    case 'fixedsmall':
      return false;
    case 'learned-range':
      return true;
    default:
      return unreachable(kind, 'model variance type');
  }
}

/** Training loss: L_simple (eq. 14, 'mse') or the variational bound term L_{t-1} (eq. 5, 'kl'). */
export type LossType = 'mse' | 'kl';

/** Beta schedules: the paper's 'linear', Nichol & Dhariwal's 'cosine', and the original code's others. */
export type BetaScheduleKind = 'linear' | 'cosine' | 'quad' | 'sigmoid' | 'const' | 'jsd';

/**
 * Which timesteps a sampler that skips steps (respaced Algorithm 2, DDIM) visits for a step count K < T
 * (timesteps.ts). 'improved-diffusion' = Nichol & Dhariwal's space_timesteps, this project's own: ddpm takes
 * K steps evenly spread over [0, T-1] with both ends kept (halves rounded to even), ddim the integer stride
 * giving exactly K steps from 0 (else as ddpm). 'leading', 'trailing', 'linspace' = diffusers' schedulers'
 * timestep_spacing.
 */
export type TimestepSpacing = 'improved-diffusion' | 'leading' | 'trailing' | 'linspace';

/** A model's rule for inference timesteps: the spacing, diffusers' steps_offset and set_alpha_to_one. */
export interface TimestepRule {
  readonly spacing: TimestepSpacing;
  /** Added to every timestep of 'leading' (diffusers adds it there only; 'trailing' and 'linspace' ignore it). */
  readonly stepsOffset: number;
  /** DDIM's last step goes to abar = 1 (true) or to abar_0 (false: diffusers' final_alpha_cumprod). */
  readonly setAlphaToOne: boolean;
}

/** This project's own rule, the default: improved-diffusion's timesteps, DDIM ending at abar = 1. */
export const IMPROVED_DIFFUSION_RULE: TimestepRule = {
  spacing: 'improved-diffusion',
  stepsOffset: 0,
  setAlphaToOne: true,
};

/** Progress of a sampler or bound computation, for a CLI progress bar: step counts from 1 to total. */
export interface Progress {
  readonly step: number;
  readonly total: number;
}
export type ProgressFn = (p: Progress) => void;

/** One reverse step as seen by onStep callbacks (progressive generation, paper Fig. 6). */
export interface StepInfo {
  /** Timestep index of the diffusion being sampled (inner index for a respaced diffusion). */
  readonly t: number;
  /** Timestep the Denoiser received (the original 0..T-1 index). */
  readonly modelT: number;
  /** x_t, the input of this step: [N, C, H, W]. */
  readonly xt: Tensor;
  /** The model's prediction of x_0 from x_t (clipped if the sampler clips): [N, C, H, W]. */
  readonly predXstart: Tensor;
}
export type StepFn = (s: StepInfo) => void;

/** Source of standard normal noise: n values. Defaults to rng.normalArray. */
export type NoiseFn = (n: number) => Float32Array;

/** Exhaustiveness guard for the switches over the option unions (also catches bad strings from JS callers). */
export function unreachable(value: never, what: string): never {
  throw new Error(`unknown ${what}: ${String(value)}`);
}
