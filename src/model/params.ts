// Weights against a U-Net config (browser-safe): names and sizes checked, diffusers' legacy attention
// names (query/key/value/proj_attn, 2022 checkpoints) mapped to the current ones; and diffusers'
// UNet2DModel config.json read as a UNetConfig.

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
