// The --sampler, --steps and --var-type options shared by sample and eval, and where their defaults come
// from: the options when given, else the model's recommended sampling (config.json "sampling", chosen
// from that model's steps-versus-quality measurements; README "The default"), else Algorithm 2 on the
// chain respaced to DEFAULT_RESPACED_STEPS with the model's own variance. The best chain differs between
// models (on the shipped MNIST model the 50-step ancestral chain has the best FID, on the Fashion-MNIST
// model it is the worst row), so the default is per model, and a model without a measurement gets the
// conservative 100 steps.

import { DEFAULT_RESPACED_STEPS } from '../diffusion/ancestral.js';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { SAMPLER_NAMES, type SamplerName, samplerHelp, samplerLabel } from '../diffusion/samplers.js';
import { learnsVariance, type ModelVarType } from '../diffusion/types.js';
import {
  chainVarType,
  diffusionFromSpec,
  FIXED_VAR_TYPES,
  type FixedVarType,
  type ModelSpec,
} from '../model/spec.js';
import { type OptDef, UsageError } from './args.js';

export const SAMPLER_OPTION: OptDef = {
  kind: 'string',
  help: `${samplerHelp()}. Default: the model's recommended sampler (config.json "sampling"), else ddpm`,
  choices: [...SAMPLER_NAMES],
};

export const STEPS_OPTION: OptDef = {
  kind: 'int',
  help: `sampling steps (ddpm: on the chain respaced to this many steps when < T). Default: the model's recommended steps when its sampler is used, else ${DEFAULT_RESPACED_STEPS}`,
  min: 1,
};

export const VAR_TYPE_OPTION: OptDef = {
  kind: 'string',
  help: "the ancestral chain's variance for a fixed-variance model: fixedlarge = beta_t, fixedsmall = beta~_t, the posterior's (Ho et al. sec. 3.2: equal at T = 1000; on a respaced chain fixedlarge leaves grain, README). Default: the model's recommended one, else its own",
  choices: [...FIXED_VAR_TYPES],
};

export interface SamplingChoice {
  readonly sampler: SamplerName;
  /** At most the model's T. */
  readonly steps: number;
  /** The variance the chain samples with (the model's own unless --var-type or its "sampling" says). */
  readonly varType: ModelVarType;
  /** Whether varType is not the model's own (then results name it). */
  readonly varOverride: boolean;
  /** One line for the user when the model's config.json decided any of it, else undefined. */
  readonly note?: string;
}

/**
 * The sampler, steps and variance a command runs: parsed --sampler / --steps / --var-type, the model's
 * "sampling", the defaults.
 */
export function resolveSampling(
  cmd: string,
  o: { readonly sampler?: unknown; readonly steps?: unknown; readonly 'var-type'?: unknown },
  spec: Pick<ModelSpec, 'sampling' | 'diffusion'>,
): SamplingChoice {
  const own = spec.diffusion.modelVarType;
  const asked = o['var-type'] as FixedVarType | undefined;
  if (asked !== undefined && learnsVariance(own)) {
    throw new UsageError(
      `ddpm ${cmd}: --var-type ${asked}: this model learns its variance ("learned-range"), which the chain uses; --var-type is for fixed-variance models`,
    );
  }
  const rec = spec.sampling;
  const name = (o.sampler as SamplerName | undefined) ?? rec?.sampler ?? 'ddpm';
  if (asked !== undefined && name !== 'ddpm') {
    throw new UsageError(
      `ddpm ${cmd}: --var-type ${asked} is the ancestral chain's variance (--sampler ddpm); ${name} does not use it`,
    );
  }
  const fromModel = rec !== undefined && name === rec.sampler;
  const k = (o.steps as number | undefined) ?? (fromModel ? rec.steps : DEFAULT_RESPACED_STEPS);
  const varType = chainVarType(spec, name, asked);
  const choice = {
    sampler: name,
    steps: Math.min(k, spec.diffusion.T),
    varType,
    varOverride: varType !== own,
  };
  const filled = [
    o.sampler === undefined ? 'sampler' : '',
    o.steps === undefined ? 'steps' : '',
    asked === undefined && rec?.varType !== undefined ? 'variance' : '',
  ].filter(Boolean);
  if (!fromModel || filled.length === 0) return choice;
  const basis = rec.basis ? `; ${rec.basis}` : '';
  const which = filled.length === 1 ? filled[0] : `${filled.slice(0, -1).join(', ')} and ${filled.at(-1)}`;
  return {
    ...choice,
    note: `${cmd}: ${describeSampling(choice)}: the ${which} this model recommends (config.json "sampling"${basis}); --sampler, --steps and --var-type choose others`,
  };
}

/** 'ddpm, 50 steps' or 'ddpm, 50 steps, variance fixedsmall' (when not the model's own). */
export function describeSampling(s: Omit<SamplingChoice, 'note'>): string {
  return `${s.sampler}, ${s.steps} steps${s.varOverride ? `, variance ${s.varType}` : ''}`;
}

/** A result's name: samplerLabel's, with the variance when it is not the model's own ('ddpm-50-fixedsmall'). */
export function samplingLabel(s: Omit<SamplingChoice, 'note'>, eta: number, T: number): string {
  return `${samplerLabel(s.sampler, s.steps, eta, T)}${s.varOverride ? `-${s.varType}` : ''}`;
}

/** The diffusion the chain samples: the model's, with the chosen variance. */
export function samplingDiffusion(
  model: { readonly spec: Pick<ModelSpec, 'diffusion'>; readonly diffusion: GaussianDiffusion },
  s: Pick<SamplingChoice, 'varType' | 'varOverride'>,
): GaussianDiffusion {
  return s.varOverride
    ? diffusionFromSpec({ ...model.spec.diffusion, modelVarType: s.varType })
    : model.diffusion;
}
