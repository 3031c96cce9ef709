// The --model option shared by sample, bpd and interpolate: default the MNIST model shipped in
// models/mnist, else a model folder (ours or a diffusers UNet2DModel folder).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { diffusionFromSpec } from '../model/spec.js';
import { type LoadedModel, loadModel } from '../model/weights.js';
import { type OptDef, UsageError } from './args.js';

export const SHIPPED_MODEL = fileURLToPath(new URL('../../models/mnist', import.meta.url));

const SHIPPED = 'the shipped MNIST model';

export const MODEL_OPTION: OptDef = {
  kind: 'string',
  help: 'model folder (ours or a diffusers UNet2DModel folder)',
  default: SHIPPED,
};

/** Load the model named by a parsed --model value, with its diffusion; a missing folder is a usage error. */
export function openModelOption(
  cmd: string,
  value: unknown,
): LoadedModel & { readonly diffusion: GaussianDiffusion } {
  const path = value === SHIPPED ? SHIPPED_MODEL : String(value);
  if (!existsSync(path)) {
    throw new UsageError(
      `ddpm ${cmd}: model ${path} does not exist; pass --model with a model folder (e.g. runs/mnist/model)`,
    );
  }
  const model = loadModel(path);
  return { ...model, diffusion: diffusionFromSpec(model.spec.diffusion) };
}
