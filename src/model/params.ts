// Weights against a U-Net config (browser-safe): names and sizes checked, diffusers' legacy attention
// names (query/key/value/proj_attn, 2022 checkpoints) mapped to the current ones; and diffusers'
// UNet2DModel config.json read as a UNetConfig.

import type { ParamStore, UNetConfig } from '../nn/unet.js';
import { unetParamSpecs, validateConfig } from '../nn/unet.js';
import { JsonChecker } from '../util/jsonCheck.js';

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

/** diffusers UNet2DModel config.json -> UNetConfig; every key it uses is type-checked first. */
export function unetFromDiffusers(c: Record<string, unknown>, source: string): UNetConfig {
  if (c.block_out_channels === undefined || c.down_block_types === undefined)
    throw new Error(
      `${source}: not a diffusers UNet2DModel config (no block_out_channels / down_block_types)`,
    );
  const chk = new JsonChecker(source);
  const boc = chk.ints(c, 'block_out_channels', 'block_out_channels', true);
  const down = c.down_block_types;
  if (!Array.isArray(down) || down.length !== boc.length || !down.every((t) => typeof t === 'string'))
    chk.fail('down_block_types', down, `an array of ${boc.length} block names (one per block_out_channels)`);
  const downTypes = down as string[];
  /** An optional key: its default when absent (or null, as diffusers writes), else checked. */
  const opt = <T>(key: string, def: T, read: () => T): T =>
    c[key] === undefined || c[key] === null ? def : read();
  const res = opt('sample_size', 32, () => chk.int(c, 'sample_size', 'sample_size'));
  const ch = boc[0]!;
  if (boc.some((b) => b % ch !== 0))
    chk.fail(
      'block_out_channels',
      boc,
      'multiples of the first entry (the base channels), e.g. [128, 256, 256, 256]',
    );
  if (c.flip_sin_to_cos === true || (c.freq_shift ?? 1) !== 1) {
    throw new Error(`${source}: only flip_sin_to_cos=false, freq_shift=1 (the DDPM embedding) is supported`);
  }
  const cfg: UNetConfig = {
    inChannels: opt('in_channels', 3, () => chk.int(c, 'in_channels', 'in_channels')),
    outChannels: opt('out_channels', 3, () => chk.int(c, 'out_channels', 'out_channels')),
    resolution: res,
    ch,
    chMult: boc.map((b) => b / ch),
    numResBlocks: opt('layers_per_block', 2, () => chk.int(c, 'layers_per_block', 'layers_per_block')),
    attnResolutions: downTypes.flatMap((t, i) => (t.startsWith('Attn') ? [res / 2 ** i] : [])),
    dropout: opt('dropout', 0, () => chk.num(c, 'dropout', 'dropout', 0, 1, true)),
    groups: opt('norm_num_groups', 32, () => chk.int(c, 'norm_num_groups', 'norm_num_groups')),
    eps: opt('norm_eps', 1e-6, () => chk.num(c, 'norm_eps', 'norm_eps', 0, 1)),
  };
  try {
    validateConfig(cfg);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return cfg;
}
