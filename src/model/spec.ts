// ModelSpec: everything needed to use a trained model (network config and diffusion config), saved
// as config.json beside the weights. `diffusionFromSpec` turns it into the diffusion layer's object.

import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { SAMPLER_NAMES, type SamplerName } from '../diffusion/samplers.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { TIMESTEP_SPACINGS } from '../diffusion/timesteps.js';
import {
  type BetaScheduleKind,
  type ModelMeanType,
  learnsVariance,
  type ModelVarType,
  type TimestepRule,
  type TimestepSpacing,
} from '../diffusion/types.js';
import { ACTIVATIONS, SMALL_UNET, type UNetConfig, validateConfig } from '../nn/unet.js';
import { JsonChecker } from '../util/jsonCheck.js';

export interface DiffusionSpec {
  readonly schedule: BetaScheduleKind;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly T: number;
  readonly modelMeanType: ModelMeanType;
  readonly modelVarType: ModelVarType;
  /** Explicit betas (diffusers' trained_betas); they replace the schedule, betaStart and betaEnd. */
  readonly trainedBetas?: readonly number[];
  /** Sampling clips x_0 predictions to [-clipRange, clipRange]; 0 = never (clip_sample false). Absent = 1. */
  readonly clipRange?: number;
  /**
   * Which timesteps the samplers that skip steps (respaced ddpm, ddim) visit (diffusion/timesteps.ts):
   * absent = this project's own 'improved-diffusion'; a diffusers scheduler's timestep_spacing otherwise.
   */
  readonly timestepSpacing?: TimestepSpacing;
  /** diffusers' steps_offset (added to 'leading' timesteps only, as diffusers). Absent = 0. */
  readonly stepsOffset?: number;
  /** DDIMScheduler's set_alpha_to_one: false = DDIM's last step goes to abar_0, not 1. Absent = true. */
  readonly setAlphaToOne?: boolean;
}

/**
 * The sampler and step count a model's own measurements recommend (config.json "sampling"): `ddpm sample`
 * and `ddpm eval` use it when no --sampler / --steps is given. Chosen per model because the best chain
 * differs between models (README, "Steps versus quality"); `basis` says which measurement chose it.
 */
export interface SamplingSpec {
  readonly sampler: SamplerName;
  readonly steps: number;
  /**
   * The ancestral chain's variance for a fixed-variance model, when it is not the model's own (sec. 3.2:
   * beta_t and beta~_t did equally well at T = 1000; respaced chains differ, README "The default").
   */
  readonly varType?: FixedVarType;
  readonly basis?: string;
}

/** The variances a sampler may choose at sampling time: only a fixed one (a learned one is the network's). */
export type FixedVarType = Exclude<ModelVarType, 'learned-range'>;
export const FIXED_VAR_TYPES = ['fixedlarge', 'fixedsmall'] as const satisfies readonly FixedVarType[];

export interface ModelSpec {
  readonly format: 'ddpm-ts/model/v1';
  readonly unet: UNetConfig;
  readonly diffusion: DiffusionSpec;
  /** The data it was trained on (informational: spec string, e.g. 'mnist'). */
  readonly data?: string;
  /** The recommended sampling, when measured (absent: the commands' own defaults). */
  readonly sampling?: SamplingSpec;
}

/** The paper's diffusion: T = 1000, linear betas 1e-4..0.02, eps prediction, fixedlarge (as CIFAR-10). */
export const PAPER_DIFFUSION: DiffusionSpec = {
  schedule: 'linear',
  betaStart: 1e-4,
  betaEnd: 0.02,
  T: 1000,
  modelMeanType: 'eps',
  modelVarType: 'fixedlarge',
};

export function defaultSpec(): ModelSpec {
  return { format: 'ddpm-ts/model/v1', unet: SMALL_UNET, diffusion: PAPER_DIFFUSION, data: 'mnist' };
}

export function diffusionFromSpec(d: DiffusionSpec): GaussianDiffusion {
  const betas =
    d.trainedBetas ?? getBetaSchedule(d.schedule, { betaStart: d.betaStart, betaEnd: d.betaEnd, T: d.T });
  return new GaussianDiffusion({
    betas,
    modelMeanType: d.modelMeanType,
    modelVarType: d.modelVarType,
    lossType: 'mse',
    clipRange: d.clipRange ?? 1,
    timestepRule: timestepRuleOf(d),
  });
}

/** A spec's inference-timestep rule, its absent keys at this project's defaults. */
export function timestepRuleOf(d: DiffusionSpec): TimestepRule {
  return {
    spacing: d.timestepSpacing ?? 'improved-diffusion',
    stepsOffset: d.stepsOffset ?? 0,
    setAlphaToOne: d.setAlphaToOne ?? true,
  };
}

const SCHEDULES = [
  'linear',
  'cosine',
  'quad',
  'sigmoid',
  'const',
  'jsd',
] as const satisfies readonly BetaScheduleKind[];
const MEAN_TYPES = ['eps', 'xstart', 'xprev', 'v'] as const satisfies readonly ModelMeanType[];
const VAR_TYPES = ['fixedlarge', 'fixedsmall', 'learned-range'] as const satisfies readonly ModelVarType[];

/**
 * The U-Net output channels a diffusion needs: the image channels C for a fixed variance, 2C for
 * 'learned-range' (the mean output, then the variance values; Nichol & Dhariwal 2021 sec. 3.1).
 */
export function outputChannelsFor(varType: ModelVarType, inChannels: number): number {
  return learnsVariance(varType) ? 2 * inChannels : inChannels;
}

/**
 * A learned-variance spec whose U-Net does not output twice the image channels is refused, saying what to
 * change. (A fixed-variance spec may load with other output channels, e.g. to run the network alone; the
 * diffusion layer refuses its output when it samples: GaussianDiffusion.splitOutput.)
 */
export function checkOutputChannels(spec: Pick<ModelSpec, 'unet' | 'diffusion'>, source: string): void {
  const { inChannels, outChannels } = spec.unet;
  const want = outputChannelsFor(spec.diffusion.modelVarType, inChannels);
  if (learnsVariance(spec.diffusion.modelVarType) && outChannels !== want) {
    throw new Error(
      `${source}: the U-Net outputs ${outChannels} channels for ${inChannels}-channel images, but the variance type "learned-range" needs ${want} (the mean output, then the variance values); set out_channels / outChannels to twice the image channels, or use a fixed variance type`,
    );
  }
}

/**
 * Check a parsed config.json against the ModelSpec schema (types, ranges, required keys) before any of it is
 * used; errors name the file, the key and what was expected. Returns the spec.
 */
export function validateSpec(raw: unknown, source: string): ModelSpec {
  const c = new JsonChecker(source);
  const s = c.object(raw, '', 'a JSON object with "format", "unet" and "diffusion"');
  if (s.format !== 'ddpm-ts/model/v1') c.fail('format', s.format, '"ddpm-ts/model/v1"');
  const u = c.object(s.unet, 'unet', 'an object (the U-Net configuration)');
  const d = c.object(s.diffusion, 'diffusion', 'an object (the diffusion configuration)');
  const unet: UNetConfig = {
    inChannels: c.int(u, 'inChannels', 'unet.inChannels'),
    outChannels: c.int(u, 'outChannels', 'unet.outChannels'),
    resolution: c.int(u, 'resolution', 'unet.resolution'),
    ch: c.int(u, 'ch', 'unet.ch'),
    chMult: c.ints(u, 'chMult', 'unet.chMult', true),
    numResBlocks: c.int(u, 'numResBlocks', 'unet.numResBlocks'),
    attnResolutions: c.ints(u, 'attnResolutions', 'unet.attnResolutions', false),
    dropout: c.num(u, 'dropout', 'unet.dropout', 0, 1, true),
    groups: c.int(u, 'groups', 'unet.groups'),
    eps: c.num(u, 'eps', 'unet.eps', 0, 1),
    ...optionalUnet(c, u),
  };
  try {
    validateConfig(unet);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  if (typeof d.T === 'number' && d.T > MAX_T)
    c.fail('diffusion.T', d.T, `at most ${MAX_T} timesteps (real models use 1000 to 4000)`);
  const diffusion: DiffusionSpec = {
    schedule: c.choice(d, 'schedule', 'diffusion.schedule', SCHEDULES),
    betaStart: c.num(d, 'betaStart', 'diffusion.betaStart', 0, 1),
    betaEnd: c.num(d, 'betaEnd', 'diffusion.betaEnd', 0, 1),
    T: c.int(d, 'T', 'diffusion.T'),
    modelMeanType: c.choice(d, 'modelMeanType', 'diffusion.modelMeanType', MEAN_TYPES),
    modelVarType: c.choice(d, 'modelVarType', 'diffusion.modelVarType', VAR_TYPES),
  };
  const extra: {
    trainedBetas?: number[];
    clipRange?: number;
    timestepSpacing?: TimestepSpacing;
    stepsOffset?: number;
    setAlphaToOne?: boolean;
  } = {};
  if (d.trainedBetas !== undefined) {
    const b = d.trainedBetas;
    if (
      !Array.isArray(b) ||
      b.length !== diffusion.T ||
      !b.every((x) => typeof x === 'number' && x > 0 && x <= 1)
    )
      c.fail('diffusion.trainedBetas', b, `an array of ${diffusion.T} (diffusion.T) numbers in (0, 1]`);
    extra.trainedBetas = b as number[];
  }
  if (d.clipRange !== undefined) extra.clipRange = c.num(d, 'clipRange', 'diffusion.clipRange', 0, 1e6);
  // The inference-timestep keys; "diffusersSampling" is how one commit of this project wrote them.
  const legacy =
    d.diffusersSampling === undefined
      ? undefined
      : c.object(d.diffusersSampling, 'diffusion.diffusersSampling', 'an object');
  const [keys, at] = legacy ? [legacy, 'diffusion.diffusersSampling.'] : [d, 'diffusion.'];
  if (keys.timestepSpacing !== undefined)
    extra.timestepSpacing = c.choice(keys, 'timestepSpacing', `${at}timestepSpacing`, TIMESTEP_SPACINGS);
  if (keys.stepsOffset !== undefined) {
    extra.stepsOffset = c.int(keys, 'stepsOffset', `${at}stepsOffset`, 0);
    if (extra.stepsOffset !== 0 && (extra.timestepSpacing ?? 'improved-diffusion') === 'improved-diffusion')
      c.fail(
        `${at}stepsOffset`,
        extra.stepsOffset,
        '0 with timestepSpacing "improved-diffusion" (an offset is diffusers\' steps_offset, for its spacings)',
      );
  }
  if (keys.setAlphaToOne !== undefined)
    extra.setAlphaToOne = bool(c, keys, 'setAlphaToOne', `${at}setAlphaToOne`);
  if (s.data !== undefined && typeof s.data !== 'string')
    c.fail('data', s.data, 'a data spec string, e.g. "mnist"');
  checkOutputChannels({ unet, diffusion }, source);
  const sampling = s.sampling === undefined ? undefined : samplingOf(c, s.sampling, diffusion);
  return {
    ...s,
    format: 'ddpm-ts/model/v1',
    unet,
    diffusion: { ...diffusion, ...extra },
    ...(sampling ? { sampling } : {}),
  } as ModelSpec;
}

/**
 * The variance a sampler's chain uses: the one asked for, else the model's recommended one when that
 * sampler is the recommended sampler (config.json "sampling"), else the model's own. The CLI and the page
 * both decide it here.
 */
export function chainVarType(
  spec: Pick<ModelSpec, 'sampling' | 'diffusion'>,
  sampler: SamplerName,
  asked?: FixedVarType,
): ModelVarType {
  const rec = spec.sampling;
  return asked ?? (rec?.sampler === sampler ? rec.varType : undefined) ?? spec.diffusion.modelVarType;
}

function samplingOf(c: JsonChecker, raw: unknown, d: DiffusionSpec): SamplingSpec {
  const o = c.object(raw, 'sampling', 'an object such as {"sampler": "ddpm", "steps": 50}');
  const steps = c.int(o, 'steps', 'sampling.steps');
  if (steps > d.T) c.fail('sampling.steps', steps, `at most diffusion.T = ${d.T}`);
  if (o.varType !== undefined && learnsVariance(d.modelVarType))
    c.fail('sampling.varType', o.varType, 'no varType: this model learns its variance ("learned-range")');
  if (o.varType !== undefined && o.sampler !== 'ddpm')
    c.fail('sampling.varType', o.varType, "no varType: only the ddpm sampler uses the chain's variance");
  if (o.basis !== undefined && typeof o.basis !== 'string')
    c.fail('sampling.basis', o.basis, 'a string (which measurement chose this sampling)');
  return {
    sampler: c.choice(o, 'sampler', 'sampling.sampler', SAMPLER_NAMES),
    steps,
    ...(o.varType === undefined
      ? {}
      : { varType: c.choice(o, 'varType', 'sampling.varType', FIXED_VAR_TYPES) }),
    ...(o.basis === undefined ? {} : { basis: o.basis as string }),
  };
}

/** Most diffusion timesteps a config may give (each costs memory in every schedule table). */
export const MAX_T = 100_000;

function bool(c: JsonChecker, o: Record<string, unknown>, key: string, path: string): boolean {
  if (typeof o[key] !== 'boolean') c.fail(path, o[key], 'true or false');
  return o[key] as boolean;
}

/** The optional (diffusers-variation) U-Net keys of our config.json, each checked when present. */
function optionalUnet(c: JsonChecker, u: Record<string, unknown>): Partial<UNetConfig> {
  const out: { -readonly [K in keyof UNetConfig]?: UNetConfig[K] } = {};
  if (u.headDim !== undefined) out.headDim = c.int(u, 'headDim', 'unet.headDim');
  if (u.flipSinToCos !== undefined) out.flipSinToCos = bool(c, u, 'flipSinToCos', 'unet.flipSinToCos');
  if (u.freqShift !== undefined) out.freqShift = c.int(u, 'freqShift', 'unet.freqShift', 0);
  if (u.downsamplePadding !== undefined) {
    if (u.downsamplePadding !== 0 && u.downsamplePadding !== 1)
      c.fail('unet.downsamplePadding', u.downsamplePadding, '0 or 1');
    out.downsamplePadding = u.downsamplePadding;
  }
  if (u.centerInput !== undefined) out.centerInput = bool(c, u, 'centerInput', 'unet.centerInput');
  if (u.act !== undefined) out.act = c.choice(u, 'act', 'unet.act', ACTIVATIONS);
  if (u.midScale !== undefined) out.midScale = c.num(u, 'midScale', 'unet.midScale', 1e-6, 1e6);
  if (u.midAttention !== undefined) out.midAttention = bool(c, u, 'midAttention', 'unet.midAttention');
  if (u.timeScaleShift !== undefined)
    out.timeScaleShift = bool(c, u, 'timeScaleShift', 'unet.timeScaleShift');
  if (u.midAttentionNorm !== undefined)
    out.midAttentionNorm = bool(c, u, 'midAttentionNorm', 'unet.midAttentionNorm');
  return out;
}
