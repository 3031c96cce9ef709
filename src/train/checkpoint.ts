// Training checkpoints: one safetensors file holding the weights, their EMA, Adam's moments and,
// as JSON metadata, everything else a resumed run needs (config, step, RNG and data-loader state).
// Written atomically (temporary file, fsync, rename, fsync of the folder): a run killed at any
// moment leaves either the previous checkpoint or the new one, never a torn file.

import { existsSync, readFileSync } from 'node:fs';
import type { ParamStore } from '../nn/unet.js';
import { writePartsAtomic } from '../util/atomicFile.js';
import { describeJson, isJsonObject } from '../util/jsonCheck.js';
import { encodeSafeTensors, parseSafeTensors, type SafeTensor } from '../util/safetensors.js';

export const CHECKPOINT_FORMAT = 'ddpm-ts/checkpoint/v1';

export interface CheckpointState {
  /** JSON-serialisable training state (config, step, rng and loader states, ...). */
  readonly meta: Record<string, unknown>;
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly adamM: ParamStore;
  readonly adamV: ParamStore;
}

export function saveCheckpoint(
  path: string,
  st: CheckpointState,
  shapes: ReadonlyMap<string, readonly number[]>,
): void {
  const tensors: [string, SafeTensor][] = [];
  const add = (prefix: string, store: ParamStore) => {
    for (const [k, v] of store) tensors.push([`${prefix}${k}`, { data: v, shape: shapes.get(k)! }]);
  };
  add('params.', st.params);
  add('ema.', st.ema);
  add('adam_m.', st.adamM);
  add('adam_v.', st.adamV);
  writePartsAtomic(
    path,
    encodeSafeTensors(tensors, { format: CHECKPOINT_FORMAT, state: JSON.stringify(st.meta) }),
  );
}

export function loadCheckpoint(path: string): CheckpointState {
  if (!existsSync(path)) throw new Error(`checkpoint: ${path} does not exist`);
  const f = parseSafeTensors(readFileSync(path), path);
  if (f.metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `checkpoint: ${path} is not a ddpm-ts training checkpoint (format ${f.metadata.format ?? 'missing'})`,
    );
  }
  const pick = (prefix: string): ParamStore => {
    const m: ParamStore = new Map();
    for (const [k, v] of f.tensors) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v.data);
    return m;
  };
  let meta: unknown;
  try {
    meta = JSON.parse(f.metadata.state ?? '{}');
  } catch (e) {
    throw new Error(
      `checkpoint: ${path}: its training state is not valid JSON (${(e as Error).message}): corrupt file?`,
    );
  }
  if (!isJsonObject(meta)) {
    throw new Error(
      `checkpoint: ${path}: its training state is ${describeJson(meta)}; expected a JSON object`,
    );
  }
  return {
    meta,
    params: pick('params.'),
    ema: pick('ema.'),
    adamM: pick('adam_m.'),
    adamV: pick('adam_v.'),
  };
}
