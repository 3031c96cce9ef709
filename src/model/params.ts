// Weights against a U-Net config (browser-safe): names and sizes checked, diffusers' legacy attention
// names (query/key/value/proj_attn, 2022 checkpoints) mapped to the current ones. diffusers' configs are
// read in diffusers.ts.

import type { ParamStore, UNetConfig } from '../nn/unet.js';
import { unetParamSpecs } from '../nn/unet.js';

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

export { unetFromDiffusers } from './diffusers.js';
