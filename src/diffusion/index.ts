// Public API of the diffusion layer (Ho et al. 2020): schedules, the Gaussian diffusion, the variational
// bound, and the samplers (ancestral, respaced, DDIM, DPM-Solver++, Euler, Heun, progressive, interpolation),
// by name in samplers.ts. Takes a Denoiser; no network.

export { type AncestralOptions, ancestralSample } from './ancestral.js';
export {
  type DdimOptions,
  type DdimSampleOptions,
  ddimReverse,
  ddimSample,
  ddimTimesteps,
  ddimTimestepsFor,
} from './ddim.js';
export { type DpmSolverOptions, dpmSolverCoefficients, dpmSolverSample } from './dpmSolver.js';
export { eulerCoefficients, eulerSample } from './euler.js';
export {
  GaussianDiffusion,
  type GaussianDiffusionConfig,
  type MeanVariance,
  type PMeanVariance,
  type PSampleResult,
  type SampleLoopOptions,
} from './gaussianDiffusion.js';
export { heunCalls, heunCoefficients, heunSample } from './heun.js';
export { type InterpolateOptions, type InterpolateResult, interpolate } from './interpolate.js';
export { approxStandardNormalCdf, discretizedGaussianLogLikelihood, normalKl } from './losses.js';
export {
  type ProgressiveOptions,
  type ProgressiveResult,
  type ProgressiveSampler,
  progressiveSample,
} from './progressive.js';
export { respacedDiffusion, spacedTimesteps } from './respace.js';
export {
  isSamplerName,
  runSampler,
  SAMPLER_NAMES,
  type SamplerEntry,
  type SamplerName,
  type SamplerPlan,
  type SamplerRunOptions,
  samplerEntry,
  samplerHelp,
  samplerLabel,
} from './samplers.js';
export {
  ancestralChain,
  ddimTargets,
  type SkippingSampler,
  samplingTimesteps,
  TIMESTEP_SPACINGS,
  timestepsOf,
} from './timesteps.js';
export {
  diffusionSigmas,
  karrasSigmas,
  nearestTimestep,
  type OdeSamplerOptions,
  type SigmaSchedule,
  type SigmaSpacing,
  sigmaSchedule,
} from './sigmaSchedule.js';
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
  TimestepRule,
  TimestepSpacing,
} from './types.js';
export { IMPROVED_DIFFUSION_RULE } from './types.js';
export {
  type BpdResult,
  calcBpdLoop,
  priorBpd,
  type TrainingLoss,
  trainingLosses,
  type VbTerms,
  vbTermsBpd,
} from './vlb.js';
