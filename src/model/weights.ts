// Model files: a folder with config.json (ModelSpec) and model.safetensors (weights under diffusers'
// UNet2DModel names). Also reads diffusers' own folders (config.json + diffusion_pytorch_model.safetensors,
// e.g. google/ddpm-cifar10-32), including the legacy attention names of the 2022 checkpoints.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ParamStore, unetParamSpecs } from '../nn/unet.js';
import { writePartsAtomic } from '../util/atomicFile.js';
import { encodeSafeTensors, parseSafeTensors } from '../util/safetensors.js';
import { checkParams, unetFromDiffusers } from './params.js';
import { JsonChecker } from '../util/jsonCheck.js';
import { type DiffusionSpec, type ModelSpec, PAPER_DIFFUSION, validateSpec } from './spec.js';

export { checkParams, unetFromDiffusers };

export interface LoadedModel {
  readonly spec: ModelSpec;
  readonly params: ParamStore;
  readonly source: string;
}

export function saveModel(dir: string, spec: ModelSpec, params: ParamStore): void {
  mkdirSync(dir, { recursive: true });
  const specs = unetParamSpecs(spec.unet);
  const tensors = specs.map((s) => [s.name, { data: params.get(s.name)!, shape: s.shape }] as const);
  writePartsAtomic(
    join(dir, 'model.safetensors'),
    encodeSafeTensors(tensors, { format: 'ddpm-ts/weights/v1' }),
  );
  writePartsAtomic(join(dir, 'config.json'), [
    new TextEncoder().encode(`${JSON.stringify(spec, null, 2)}\n`),
  ]);
}

function diffusionFromDiffusers(dir: string): DiffusionSpec {
  const p = [join(dir, 'scheduler_config.json'), join(dir, '..', 'scheduler', 'scheduler_config.json')].find(
    existsSync,
  );
  if (!p) return PAPER_DIFFUSION;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`model: ${p} is not valid JSON (${(e as Error).message})`);
  }
  const chk = new JsonChecker(p);
  const s = chk.object(parsed, '', 'a JSON object (a diffusers DDPMScheduler config)');
  const given = (k: string) => s[k] !== undefined && s[k] !== null;
  const vt = s.variance_type === 'fixed_small' ? 'fixedsmall' : 'fixedlarge';
  const pt = s.prediction_type === 'sample' ? 'xstart' : 'eps';
  const sched =
    s.beta_schedule === 'squaredcos_cap_v2'
      ? 'cosine'
      : s.beta_schedule === 'scaled_linear'
        ? 'quad'
        : 'linear';
  return {
    schedule: sched,
    betaStart: given('beta_start') ? chk.num(s, 'beta_start', 'beta_start', 0, 1) : 1e-4,
    betaEnd: given('beta_end') ? chk.num(s, 'beta_end', 'beta_end', 0, 1) : 0.02,
    T: given('num_train_timesteps') ? chk.int(s, 'num_train_timesteps', 'num_train_timesteps') : 1000,
    modelMeanType: pt,
    modelVarType: vt,
  };
}

/** Load a model folder (ours or diffusers'), or a .safetensors file with config.json beside it. */
export function loadModel(path: string): LoadedModel {
  if (!existsSync(path))
    throw new Error(`model: ${path} does not exist (pass a model folder or its model.safetensors)`);
  const dir = statSync(path).isDirectory() ? path : join(path, '..');
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath))
    throw new Error(`model: no config.json in ${dir}; a model folder holds config.json and the weights`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new Error(`model: ${cfgPath} is not valid JSON (${(e as Error).message})`);
  }
  // Ours (with "format") or diffusers' (with "block_out_channels"); checked before the weights are read.
  const raw = new JsonChecker(cfgPath).object(
    parsed,
    '',
    'a JSON object: a ddpm-ts model config or a diffusers UNet2DModel config',
  );
  let spec: ModelSpec;
  if ('format' in raw) spec = validateSpec(raw, cfgPath);
  else if ('block_out_channels' in raw)
    spec = {
      format: 'ddpm-ts/model/v1',
      unet: unetFromDiffusers(raw, cfgPath),
      diffusion: diffusionFromDiffusers(dir),
    };
  else
    throw new Error(
      `${cfgPath}: neither a ddpm-ts model config (no "format": "ddpm-ts/model/v1") nor a diffusers UNet2DModel config (no "block_out_channels")`,
    );
  const candidates = statSync(path).isDirectory()
    ? ['model.safetensors', 'diffusion_pytorch_model.safetensors'].map((f) => join(dir, f))
    : [path];
  const wpath = candidates.find(existsSync);
  if (!wpath) {
    const bin = join(dir, 'diffusion_pytorch_model.bin');
    throw new Error(
      existsSync(bin)
        ? `model: ${dir} has only the pickled diffusion_pytorch_model.bin; convert it to safetensors (the .bin format runs Python code and is not read)`
        : `model: no model.safetensors in ${dir}`,
    );
  }
  const file = parseSafeTensors(readFileSync(wpath), wpath);
  return { spec, params: checkParams(spec.unet, file.tensors, wpath), source: dir };
}
