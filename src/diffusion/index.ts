// Public API of the diffusion layer (Ho et al. 2020): schedules, the Gaussian diffusion, the variational
// bound, and the samplers (ancestral, respaced, DDIM, progressive, interpolation). Takes a Denoiser; no network.

export { type AncestralOptions, ancestralSample } from './ancestral.js';
export {
  type DdimOptions,
  type DdimSampleOptions,
  ddimReverse,
  ddimSample,
  ddimTimesteps,
  ddimTimestepsFor,
} from './ddim.js';
export {
  GaussianDiffusion,
  type GaussianDiffusionConfig,
  type MeanVariance,
  type PMeanVariance,
  type PSampleResult,
  type SampleLoopOptions,
} from './gaussianDiffusion.js';
export { type InterpolateOptions, type InterpolateResult, interpolate } from './interpolate.js';
export { approxStandardNormalCdf, discretizedGaussianLogLikelihood, normalKl } from './losses.js';
export {
  type ProgressiveOptions,
  type ProgressiveResult,
  type ProgressiveSampler,
  progressiveSample,
} from './progressive.js';
export { respacedDiffusion, spacedTimesteps } from './respace.js';
export { type DecoderTerms, type TrainingTerms, trainingTerms } from './trainingTerms.js';
export {
  type BetaScheduleOptions,
  betasForAlphaBar,
  cosineAlphaBar,
  getBetaSchedule,
  linspace,
} from './schedules.js';
export type {
  BetaScheduleKind,
  Denoiser,
  LossType,
  ModelMeanType,
  ModelVarType,
  NoiseFn,
  Progress,
  ProgressFn,
  StepFn,
  StepInfo,
} from './types.js';
export {
  type BpdResult,
  calcBpdLoop,
  priorBpd,
  type TrainingLoss,
  trainingLosses,
  type VbTerms,
  vbTermsBpd,
} from './vlb.js';
