// Model files: a folder with config.json (ModelSpec) and model.safetensors (weights under diffusers'
// UNet2DModel names). Also reads diffusers' own folders (config.json + diffusion_pytorch_model.safetensors,
// e.g. google/ddpm-cifar10-32), including the legacy attention names of the 2022 checkpoints.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ParamStore, type UNetConfig, unetParamSpecs } from '../nn/unet.js';
import { writePartsAtomic } from '../util/atomicFile.js';
import { encodeSafeTensors, parseSafeTensors } from '../util/safetensors.js';
import { type DiffusionSpec, type ModelSpec, PAPER_DIFFUSION, validateSpec } from './spec.js';

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

const LEGACY: [RegExp, string][] = [
  [/\.query\./, '.to_q.'],
  [/\.key\./, '.to_k.'],
  [/\.value\./, '.to_v.'],
  [/\.proj_attn\./, '.to_out.0.'],
];

/** Check names and shapes against the config; returns the store in spec order. */
export function checkParams(
  cfg: UNetConfig,
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>,
  source: string,
): ParamStore {
  const renamed = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [k, v] of tensors)
    renamed.set(
      LEGACY.reduce((s, [re, to]) => s.replace(re, to), k),
      v,
    );
  const store: ParamStore = new Map();
  const missing: string[] = [];
  for (const s of unetParamSpecs(cfg)) {
    const t = renamed.get(s.name);
    if (!t) {
      missing.push(s.name);
      continue;
    }
    // diffusers may store attention projections as 1x1 convs [C, C, 1, 1]; same numbers.
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new Error(`${source}: ${s.name} has shape [${t.shape}], the config needs [${s.shape}]`);
    }
    store.set(s.name, t.data);
    renamed.delete(s.name);
  }
  if (missing.length) {
    throw new Error(
      `${source}: ${missing.length} parameters missing (first: ${missing.slice(0, 3).join(', ')}); does config.json match the weights?`,
    );
  }
  if (renamed.size) {
    throw new Error(
      `${source}: ${renamed.size} unexpected tensors (first: ${[...renamed.keys()].slice(0, 3).join(', ')}); does config.json match the weights?`,
    );
  }
  return store;
}

/** diffusers UNet2DModel config.json -> UNetConfig. */
export function unetFromDiffusers(c: Record<string, unknown>, source: string): UNetConfig {
  const boc = c.block_out_channels as number[] | undefined;
  const down = c.down_block_types as string[] | undefined;
  if (!boc || !down)
    throw new Error(
      `${source}: not a diffusers UNet2DModel config (no block_out_channels / down_block_types)`,
    );
  const res = (c.sample_size as number) ?? 32;
  const ch = boc[0]!;
  if (c.flip_sin_to_cos === true || (c.freq_shift ?? 1) !== 1) {
    throw new Error(`${source}: only flip_sin_to_cos=false, freq_shift=1 (the DDPM embedding) is supported`);
  }
  return {
    inChannels: (c.in_channels as number) ?? 3,
    outChannels: (c.out_channels as number) ?? 3,
    resolution: res,
    ch,
    chMult: boc.map((b) => b / ch),
    numResBlocks: (c.layers_per_block as number) ?? 2,
    attnResolutions: down.flatMap((t, i) => (t.startsWith('Attn') ? [res / 2 ** i] : [])),
    dropout: (c.dropout as number) ?? 0,
    groups: (c.norm_num_groups as number) ?? 32,
    eps: (c.norm_eps as number) ?? 1e-6,
  };
}

function diffusionFromDiffusers(dir: string): DiffusionSpec {
  const p = [join(dir, 'scheduler_config.json'), join(dir, '..', 'scheduler', 'scheduler_config.json')].find(
    existsSync,
  );
  if (!p) return PAPER_DIFFUSION;
  const s = JSON.parse(readFileSync(p, 'utf8'));
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
    betaStart: s.beta_start ?? 1e-4,
    betaEnd: s.beta_end ?? 0.02,
    T: s.num_train_timesteps ?? 1000,
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
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new Error(`model: ${cfgPath} is not valid JSON (${(e as Error).message})`);
  }
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
  if (raw.format === 'ddpm-ts/model/v1') {
    const spec = validateSpec(raw as unknown as ModelSpec, cfgPath);
    return { spec, params: checkParams(spec.unet, file.tensors, wpath), source: dir };
  }
  const unet = unetFromDiffusers(raw, cfgPath);
  const spec: ModelSpec = { format: 'ddpm-ts/model/v1', unet, diffusion: diffusionFromDiffusers(dir) };
  return { spec, params: checkParams(unet, file.tensors, wpath), source: dir };
}
