// The samplers by name, decided in one exhaustive switch: what `ddpm sample --sampler` and `ddpm eval
// --sampler` run, what each costs in network calls per image, and how its results are labelled.
//   ddpm     Algorithm 2 of Ho et al. 2020 (respaced, Nichol & Dhariwal 2021 section 4, when steps < T)
//   ddim     Song et al. 2021 (deterministic at eta = 0)
//            (these two visit the timesteps of the model's TimestepRule, timesteps.ts: this project's own
//            'improved-diffusion' or an imported diffusers scheduler's timestep_spacing / steps_offset)
//   dpm++2m  DPM-Solver++(2M), Lu et al. 2022 (Algorithm 2); dpm++3m its third-order multistep variant
//   euler    Karras et al. 2022 Algorithm 1 without the correction (first order)
//   heun     Karras et al. 2022 Algorithm 1 (second order, 2 calls per step except the last)
//            (the ODE samplers place their nodes by Karras sigmas between the schedule's extreme sigmas,
//            sigmaSchedule.ts, so timestep_spacing does not apply to them, by design: as diffusers'
//            DPMSolverMultistepScheduler with use_karras_sigmas, which drops the spaced timesteps; its
//            EulerDiscreteScheduler takes the Karras range's ends from them, which is not copied here)
// The deterministic ones draw noise once (x_T), so with per-image noise streams (imageNoise.ts) an image
// depends on its seed and index only, not on the batch it is drawn in.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { ancestralSample } from './ancestral.js';
import { ddimSample, ddimTimestepsFor } from './ddim.js';
import { dpmSolverSample } from './dpmSolver.js';
import { eulerSample } from './euler.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { heunCalls, heunSample } from './heun.js';
import { sigmaSchedule } from './sigmaSchedule.js';
import { ancestralChain } from './timesteps.js';
import { type Denoiser, type NoiseFn, type ProgressFn, type StepFn, unreachable } from './types.js';

export type SamplerName = 'ddpm' | 'ddim' | 'dpm++2m' | 'dpm++3m' | 'euler' | 'heun';

export const SAMPLER_NAMES: readonly SamplerName[] = ['ddpm', 'ddim', 'dpm++2m', 'dpm++3m', 'euler', 'heun'];

export interface SamplerRunOptions {
  /** Steps (default: each sampler's own: all T for ddpm, 50 for ddim, 20 for the ODE samplers). */
  readonly steps?: number;
  /** DDIM's noise (0 = deterministic); the other samplers ignore it. */
  readonly eta?: number;
  /** Clip x_0 predictions to [-1, 1] (default true). */
  readonly clipDenoised?: boolean;
  /** Noise source (default rng.normalArray; per-image streams: imageNoise.ts). */
  readonly noiseFn?: NoiseFn;
  readonly onProgress?: ProgressFn;
}

/** A sampler bound to its arguments: the timesteps it reports to onStep (in order), and the run. */
export interface SamplerPlan {
  /** StepInfo.t of the steps reported to onStep, in sampling order (one per node; Heun's corrections not). */
  readonly visited: readonly number[];
  run(onStep?: StepFn): Promise<Tensor>;
}

export interface SamplerEntry {
  readonly name: SamplerName;
  /** One line for --help: the method and its network calls per image. */
  readonly help: string;
  /** Whether --eta changes it. */
  readonly usesEta: boolean;
  /** Deterministic given x_T (at this eta): one draw of noise per image. */
  deterministic(eta: number): boolean;
  /** Network calls per image for `steps`. */
  calls(diffusion: GaussianDiffusion, steps: number): number;
  plan(
    diffusion: GaussianDiffusion,
    denoise: Denoiser,
    shape: readonly number[],
    rng: Rng,
    opts: SamplerRunOptions,
  ): SamplerPlan;
}

/** The ODE samplers' nodes (descending timesteps) for their options. */
const odeNodes = (d: GaussianDiffusion, steps: number | undefined) =>
  Array.from(sigmaSchedule(d, Math.min(steps ?? 20, d.numTimesteps)).timesteps);

export function samplerEntry(name: SamplerName): SamplerEntry {
  const always = () => true;
  switch (name) {
    case 'ddpm':
      return {
        name,
        help: 'ddpm = Algorithm 2 (Ho et al. 2020; respaced when --steps < T): 1 network call per step',
        usesEta: false,
        deterministic: () => false,
        calls: (d, steps) => Math.min(steps, d.numTimesteps),
        plan: (d, denoise, shape, rng, o) => {
          const chain = ancestralChain(d, o.steps);
          const K = chain.numTimesteps;
          return {
            visited: Array.from({ length: K }, (_, i) => K - 1 - i),
            run: (onStep) => ancestralSample(chain, denoise, shape, rng, { ...common(o), onStep }),
          };
        },
      };
    case 'ddim':
      return {
        name,
        help: 'ddim = Song et al. 2021 (deterministic at --eta 0): 1 call per step',
        usesEta: true,
        deterministic: (eta) => eta === 0,
        calls: (d, steps) => ddimTimestepsFor(d, { steps }).length,
        plan: (d, denoise, shape, rng, o) => {
          const opts = { ...common(o), steps: o.steps, eta: o.eta };
          return {
            visited: Array.from(ddimTimestepsFor(d, opts)).reverse(),
            run: (onStep) => ddimSample(d, denoise, shape, rng, { ...opts, onStep }),
          };
        },
      };
    case 'dpm++2m':
    case 'dpm++3m': {
      const order = name === 'dpm++2m' ? 2 : 3;
      return {
        name,
        help:
          order === 2
            ? 'dpm++2m = DPM-Solver++(2M) (Lu et al. 2022), Karras sigmas: 1 call per step'
            : 'dpm++3m = DPM-Solver++(3M), Karras sigmas: 1 call per step (better than 2M from about 15 steps)',
        usesEta: false,
        deterministic: always,
        calls: (d, steps) => odeNodes(d, steps).length,
        plan: (d, denoise, shape, rng, o) => ({
          visited: odeNodes(d, o.steps),
          run: (onStep) => dpmSolverSample(d, denoise, shape, rng, { ...odeOptions(d, o), order, onStep }),
        }),
      };
    }
    case 'euler':
      return {
        name,
        help: 'euler = Karras et al. 2022 Euler (first order): 1 call per step',
        usesEta: false,
        deterministic: always,
        calls: (d, steps) => odeNodes(d, steps).length,
        plan: (d, denoise, shape, rng, o) => ({
          visited: odeNodes(d, o.steps),
          run: (onStep) => eulerSample(d, denoise, shape, rng, { ...odeOptions(d, o), onStep }),
        }),
      };
    case 'heun':
      return {
        name,
        help: 'heun = Karras et al. 2022 Heun (Algorithm 1): 2 calls per step except the last (2 steps - 1)',
        usesEta: false,
        deterministic: always,
        calls: (d, steps) => heunCalls(odeNodes(d, steps).length),
        plan: (d, denoise, shape, rng, o) => ({
          visited: odeNodes(d, o.steps),
          run: (onStep) => heunSample(d, denoise, shape, rng, { ...odeOptions(d, o), onStep }),
        }),
      };
    default:
      return unreachable(name, 'sampler');
  }
}

function common(o: SamplerRunOptions) {
  return { clipDenoised: o.clipDenoised, noiseFn: o.noiseFn, onProgress: o.onProgress };
}

function odeOptions(d: GaussianDiffusion, o: SamplerRunOptions) {
  return { ...common(o), steps: Math.min(o.steps ?? 20, d.numTimesteps) };
}

export function isSamplerName(s: string): s is SamplerName {
  return (SAMPLER_NAMES as readonly string[]).includes(s);
}

/** Samples of shape [N, C, H, W] from the named sampler. */
export function runSampler(
  name: SamplerName,
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: SamplerRunOptions & { readonly onStep?: StepFn } = {},
): Promise<Tensor> {
  return samplerEntry(name).plan(diffusion, denoise, shape, rng, opts).run(opts.onStep);
}

/** A run's name in results: 'ddpm-100', 'ddim-50', 'ddim-50-eta0.5', 'dpm++2m-15', 'heun-10'. */
export function samplerLabel(name: SamplerName, steps: number, eta: number, T: number): string {
  const e = samplerEntry(name);
  return `${name}-${Math.min(steps, T)}${e.usesEta && eta > 0 ? `-eta${eta}` : ''}`;
}

/** The --sampler help: every sampler with its network calls per image, and what a learned variance changes. */
export function samplerHelp(): string {
  return (
    `${SAMPLER_NAMES.map((n) => samplerEntry(n).help).join('; ')}. ` +
    "ddpm and ddim with fewer steps than T visit the model's timesteps (a diffusers model's timestep_spacing and steps_offset, else this project's own); the others place theirs by Karras sigmas over the whole schedule, where timestep_spacing does not apply. " +
    "A learned-variance model ('learned-range'): ddpm samples with its variance, the others use only its mean output"
  );
}
