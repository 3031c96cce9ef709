// ModelSpec: everything needed to use a trained model (network config and diffusion config), saved
// as config.json beside the weights. `diffusionFromSpec` turns it into the diffusion layer's object.

import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import type { BetaScheduleKind, ModelMeanType, ModelVarType } from '../diffusion/types.js';
import { SMALL_UNET, type UNetConfig, validateConfig } from '../nn/unet.js';

export interface DiffusionSpec {
  readonly schedule: BetaScheduleKind;
  readonly betaStart: number;
  readonly betaEnd: number;
  readonly T: number;
  readonly modelMeanType: ModelMeanType;
  readonly modelVarType: ModelVarType;
}

export interface ModelSpec {
  readonly format: 'ddpm-ts/model/v1';
  readonly unet: UNetConfig;
  readonly diffusion: DiffusionSpec;
  /** The data it was trained on (informational: spec string, e.g. 'mnist'). */
  readonly data?: string;
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
  const betas = getBetaSchedule(d.schedule, { betaStart: d.betaStart, betaEnd: d.betaEnd, T: d.T });
  return new GaussianDiffusion({
    betas,
    modelMeanType: d.modelMeanType,
    modelVarType: d.modelVarType,
    lossType: 'mse',
  });
}

/** Check a parsed config.json; errors name the field and the file. */
export function validateSpec(s: ModelSpec, source: string): ModelSpec {
  const bad = (m: string): never => {
    throw new Error(`${source}: ${m}`);
  };
  if (!s || typeof s !== 'object') bad('not a JSON object');
  if (s.format !== 'ddpm-ts/model/v1')
    bad(`format is ${JSON.stringify(s.format)}, expected "ddpm-ts/model/v1"`);
  if (!s.unet || !s.diffusion) bad('missing "unet" or "diffusion"');
  try {
    validateConfig(s.unet);
  } catch (e) {
    bad((e as Error).message);
  }
  if (!Number.isInteger(s.diffusion.T) || s.diffusion.T < 1) bad(`diffusion.T must be a positive integer`);
  return s;
}
