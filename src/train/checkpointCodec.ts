// The training checkpoint's format, without files (Ho et al. 2020, Algorithm 1 / Appendix B: the state
// of a run of the paper's recipe): one safetensors file holding the weights, their EMA and Adam's two
// moments, with everything else a resumed run needs (its options, step, RNG and data-loader states) as
// JSON in the metadata. Bytes in, bytes out, so the browser page (src/web/train.ts) writes and reads the
// very files `ddpm train` does; checkpoint.ts puts them on disk atomically.

import type { LoaderState } from '../data/loader.js';
import type { ParamStore } from '../nn/unet.js';
import { describeJson, isJsonObject } from '../util/jsonCheck.js';
import type { RngState } from '../util/rng.js';
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

/** A checkpoint's bytes, as parts to write one after another (params, ema, adam_m, adam_v by parameter name). */
export function encodeCheckpoint(
  st: CheckpointState,
  shapes: ReadonlyMap<string, readonly number[]>,
): Uint8Array[] {
  const tensors: [string, SafeTensor][] = [];
  const add = (prefix: string, store: ParamStore) => {
    for (const [k, v] of store) tensors.push([`${prefix}${k}`, { data: v, shape: shapes.get(k)! }]);
  };
  add('params.', st.params);
  add('ema.', st.ema);
  add('adam_m.', st.adamM);
  add('adam_v.', st.adamV);
  return encodeSafeTensors(tensors, { format: CHECKPOINT_FORMAT, state: JSON.stringify(st.meta) });
}

/** A checkpoint from its bytes; `path` names it in errors (a file path, or the name of an uploaded file). */
export function decodeCheckpoint(bytes: Uint8Array, path: string): CheckpointState {
  const f = parseSafeTensors(bytes, path);
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

/** The training state a run resumes from (checkpoint metadata "state"), checked. */
export interface ResumeState {
  readonly step: number;
  readonly adamStep: number;
  readonly trainRng: RngState;
  readonly loader: LoaderState;
}

/**
 * A loaded checkpoint's run options ("identity") and training state, checked before a run resumes from them:
 * every field's type and range, and the four weight stores against the network's parameter shapes. Errors name
 * the file and the field, and say how to start over.
 */
export function resumeState(
  ck: CheckpointState,
  path: string,
  shapes: ReadonlyMap<string, readonly number[]>,
): { identity: Record<string, unknown>; state: ResumeState } {
  const bad = (what: string, v: unknown, expected: string): never => {
    throw new Error(
      `checkpoint: ${path}: ${what} is ${describeJson(v)}; expected ${expected}. The run cannot resume from it; move it away to start the run over from step 0`,
    );
  };
  const count = (o: Record<string, unknown>, key: string, path: string, min = 0): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) bad(path, v, `an integer >= ${min}`);
    return v as number;
  };
  const rng = (v: unknown, what: string): RngState => {
    if (!isJsonObject(v)) return bad(what, v, 'an object {s, spare}');
    const s = v.s;
    if (
      !Array.isArray(s) ||
      s.length !== 4 ||
      !s.every((w) => Number.isInteger(w) && w >= -(2 ** 31) && w < 2 ** 32)
    )
      bad(`${what}.s`, s, 'four 32-bit integers');
    if (v.spare !== null && !(typeof v.spare === 'number' && Number.isFinite(v.spare)))
      bad(`${what}.spare`, v.spare, 'a number or null');
    return { s: s as unknown as RngState['s'], spare: v.spare as number | null };
  };
  const { identity, state } = ck.meta;
  if (!isJsonObject(identity)) bad('"identity" (the run\'s options)', identity, 'an object');
  if (!isJsonObject(state)) return bad('"state" (the training state)', state, 'an object');
  const loader = state.loader;
  if (!isJsonObject(loader)) return bad('state.loader', loader, 'an object {epoch, index, rngState, n}');
  const n = count(loader, 'n', 'state.loader.n', 1);
  const index = count(loader, 'index', 'state.loader.index');
  if (index > n) bad('state.loader.index', index, `at most state.loader.n = ${n}`);
  const resumed: ResumeState = {
    step: count(state, 'step', 'state.step'),
    adamStep: count(state, 'adamStep', 'state.adamStep'),
    trainRng: rng(state.trainRng, 'state.trainRng'),
    loader: {
      epoch: count(loader, 'epoch', 'state.loader.epoch'),
      index,
      rngState: rng(loader.rngState, 'state.loader.rngState'),
      n,
    },
  };
  for (const [prefix, store] of [
    ['params.', ck.params],
    ['ema.', ck.ema],
    ['adam_m.', ck.adamM],
    ['adam_v.', ck.adamV],
  ] as const) {
    for (const [name, shape] of shapes) {
      const d = store.get(name);
      const want = shape.reduce((a, b) => a * b, 1);
      if (!d || d.length !== want)
        bad(
          `tensor ${prefix}${name}`,
          d ? `${d.length} values` : undefined,
          `${want} values (shape [${shape}])`,
        );
    }
    for (const name of store.keys())
      if (!shapes.has(name)) bad(`tensor ${prefix}${name}`, 'present', 'no such parameter in this network');
  }
  return { identity: identity as Record<string, unknown>, state: resumed };
}
