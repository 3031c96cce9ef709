// The --model and --weights options shared by sample, bpd and interpolate. --model is the MNIST model
// shipped in models/mnist by default, else a model folder (ours or a diffusers UNet2DModel folder), a
// training run folder or its checkpoint.safetensors: "sample from this checkpoint" needs no export
// step. --weights picks a run's EMA weights (the default, as the paper samples) or its raw weights
// (useful early in a run, before the EMA has forgotten the initialisation).

import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { diffusionFromSpec } from '../model/spec.js';
import { type LoadedModel, loadModel } from '../model/weights.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { type OptDef, UsageError } from './args.js';

export const SHIPPED_MODEL = fileURLToPath(new URL('../../models/mnist', import.meta.url));

const SHIPPED = 'the shipped MNIST model';

export const MODEL_OPTION: OptDef = {
  kind: 'string',
  help: 'model folder (ours or diffusers UNet2DModel), or a training run folder / its checkpoint',
  default: SHIPPED,
};

export const WEIGHTS_OPTION: OptDef = {
  kind: 'string',
  help: "a run's weights: ema (as the paper samples) or raw (the optimiser's current weights)",
  default: 'ema',
  choices: ['ema', 'raw'],
};

export type WeightsKind = 'ema' | 'raw';

/** The run folder a path names (the folder, or the folder of its checkpoint file), else null. */
function runFolderOf(path: string): string | null {
  if (statSync(path).isDirectory()) return existsSync(join(path, 'checkpoint.safetensors')) ? path : null;
  return basename(path) === 'checkpoint.safetensors' ? dirname(path) : null;
}

/** Load the model named by parsed --model and --weights values, with its diffusion. */
export function openModelOption(
  cmd: string,
  value: unknown,
  weights: unknown = 'ema',
): LoadedModel & { readonly diffusion: GaussianDiffusion } {
  const path = value === SHIPPED ? SHIPPED_MODEL : String(value);
  if (!existsSync(path)) {
    throw new UsageError(
      `ddpm ${cmd}: model ${path} does not exist; pass --model with a model folder or a training run folder (e.g. runs/mnist)`,
    );
  }
  const run = runFolderOf(path);
  let model: LoadedModel;
  if (run) {
    // The trainer writes model/ (EMA weights + config.json) with every checkpoint.
    const exported = join(run, 'model');
    if (!existsSync(join(exported, 'config.json'))) {
      throw new UsageError(
        `ddpm ${cmd}: run ${run} has no model/ folder yet (it is written with the first checkpoint)`,
      );
    }
    model = loadModel(exported);
    if ((weights as WeightsKind) === 'raw') {
      const ck = loadCheckpoint(join(run, 'checkpoint.safetensors'));
      model = { ...model, params: ck.params, source: `${join(run, 'checkpoint.safetensors')} (raw weights)` };
    }
  } else {
    if ((weights as WeightsKind) === 'raw') {
      throw new UsageError(
        `ddpm ${cmd}: --weights raw needs a training run folder or checkpoint; ${path} is a model folder (one set of weights)`,
      );
    }
    model = loadModel(path);
  }
  return { ...model, diffusion: diffusionFromSpec(model.spec.diffusion) };
}
