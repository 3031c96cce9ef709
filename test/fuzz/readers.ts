// The reader fuzzer, shared by `npm test` (test/fuzz.test.ts: a bounded number of cases per reader) and
// `npm run fuzz` (scripts/fuzz.mjs: a long campaign). Every file reader of the project is fed inputs made
// from valid files generated here, then mutated (test/fuzz/mutate.ts): truncated, bit-flipped, headers
// overwritten with oversized or negative counts, JSON values of the wrong type or size, inner layers (a JSON
// header, a pickle, an .npy member, PNG scanlines) changed and wrapped again with valid lengths and checksums
// so the change reaches the parser. The property: each input either parses to a valid result or throws the
// reader's own error (its error class, a message naming the file, no "undefined"), never a JavaScript
// TypeError/RangeError/SyntaxError, never a hang (each case timed) and never a result or an allocation out of
// proportion to the file.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { encode as encodePngRaw } from 'fast-png';
import jpeg from 'jpeg-js';
import { UsageError } from '../../src/cli/args.js';
import { readPartial, referenceFromNpz } from '../../src/cli/eval.js';
import { loadCifar10 } from '../../src/data/cifar.js';
import {
  ClassifierError,
  classifierParamSpecs,
  loadClassifier,
  saveClassifier,
} from '../../src/eval/classifier.js';
import { readOnnx } from '../../src/graph/onnx.js';
import { DataError } from '../../src/data/dataset.js';
import { decodeImage, loadImageFile } from '../../src/data/folder.js';
import { loadIdx } from '../../src/data/idx.js';
import { type ModelSpec, validateSpec } from '../../src/model/spec.js';
import { loadModel, ONNX_SPEC_KEY } from '../../src/model/weights.js';
import { type UNetConfig, unetParamSpecs } from '../../src/nn/unet.js';
import { buildStandaloneModel } from '../../src/sample/denoiser.js';
import { loadCheckpoint, resumeState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { readEvalLog, readLog } from '../../src/train/trainer.js';
import { NpyError, readNpz, writeNpz } from '../../src/util/npy.js';
import { encodeSafeTensors, parseSafeTensors, SafeTensorsError } from '../../src/util/safetensors.js';
import { readTorchStateDict, TorchCheckpointError } from '../../src/util/torchCheckpoint.js';
import { crc32, readZip, writeZip, ZipError } from '../../src/util/zip.js';
import { applyByteOp, applyTextOp, type ByteOp, byteOp, type TextOp, textOp } from './mutate.js';

// ---------------------------------------------------------------------------------------------------------
// Targets

/** An inner part of a seed file that is mutated on its own and wrapped again (lengths, checksums redone). */
export interface Layer {
  readonly name: string;
  readonly inner: Uint8Array;
  /** Text (JSON or a Python literal): text-level changes apply too. */
  readonly text: boolean;
  wrap(inner: Uint8Array): Uint8Array;
}

export interface Seed {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly layers?: readonly Layer[];
  /** Redo checksums after a byte-level change of the whole file (PNG chunk CRCs), so the change gets past them. */
  fixup?(bytes: Uint8Array): Uint8Array;
}

export interface FuzzTarget {
  readonly name: string;
  /** The file (a path in the case's folder) that error messages must name. */
  readonly file: string;
  seeds(): readonly Seed[];
  /** Read the input (written to `path` first for readers of paths); throws the reader's own errors. */
  run(input: Uint8Array, path: string): unknown;
  /** Is this error the reader's own (its class)? */
  own(e: Error): boolean;
  /** What is wrong with a parsed result, if anything. */
  check?(result: unknown, input: Uint8Array): string | undefined;
  /** Bytes held by a parsed result (typed arrays), compared with the input's size. */
  resultBytes?(result: unknown): number;
  /** Reads every input to some result (log.jsonl: broken lines are skipped), so it never refuses one. */
  readonly tolerant?: boolean;
  /** Most result bytes an input of n bytes may give (default 8 n + 64 KiB). */
  maxResultBytes?(n: number): number;
}

const te = new TextEncoder();
const td = new TextDecoder();
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const u8 = (b: ArrayBufferView) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** Deterministic pseudo-random floats for seed files. */
function floats(n: number, k: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(1 + i * 12.9898 + k * 78.233) * 0.5;
  return out;
}

/** Bytes held by typed arrays anywhere in a value (maps, arrays, objects; shared buffers counted once). */
export function heldBytes(root: unknown): number {
  const seen = new Set<unknown>();
  const todo = [root];
  let n = 0;
  while (todo.length) {
    const v = todo.pop();
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      if (!seen.has(v.buffer)) n += v.byteLength;
      seen.add(v.buffer);
    } else todo.push(...(v instanceof Map ? v.values() : Array.isArray(v) ? v : Object.values(v)));
  }
  return n;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Tensors whose data length matches their shape. */
function checkTensors(
  m: Map<string, { shape: readonly number[]; data: ArrayLike<unknown> }>,
): string | undefined {
  for (const [k, t] of m) {
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      return `tensor ${k}: shape ${JSON.stringify(t.shape)}`;
    if (t.data.length !== prod(t.shape)) return `tensor ${k}: ${t.data.length} values for shape [${t.shape}]`;
  }
  return undefined;
}

// safetensors -----------------------------------------------------------------------------------------------

/** A safetensors file from a header object and the data bytes (the header length written as it is). */
function safetensorsFile(headerText: string, data: Uint8Array): Uint8Array {
  const h = te.encode(headerText);
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, BigInt(h.length), true);
  return concat(pre, h, data);
}

/** The header text and data of a safetensors file (for its header layer). */
function safetensorsLayer(file: Uint8Array): Layer {
  const hlen = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const data = file.slice(8 + hlen);
  return {
    name: 'header JSON',
    inner: file.slice(8, 8 + hlen),
    text: true,
    wrap: (inner) => safetensorsFile(td.decode(inner), data),
  };
}

function safetensorsSeeds(): Seed[] {
  const f32 = (tensors: [string, number[]][], meta: Record<string, string> = {}) =>
    concat(
      ...encodeSafeTensors(
        tensors.map(([name, shape], k) => [name, { shape, data: floats(prod(shape), k) }] as const),
        meta,
      ),
    );
  const files: [string, Uint8Array][] = [
    [
      'f32',
      f32(
        [
          ['a', [2, 3]],
          ['b', [4]],
          ['scalar', []],
          ['empty', [0, 5]],
        ],
        { format: 'pt' },
      ),
    ],
    [
      'conv',
      f32([
        ['conv.weight', [4, 2, 3, 3]],
        ['conv.bias', [4]],
      ]),
    ],
  ];
  // F16, BF16 and F64 tensors (the encoder writes F32 only).
  const half = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x7e00]);
  const bf = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x0001]);
  const f64 = new Float64Array([1, -2.5, 1e300, Number.MIN_VALUE]);
  const header = JSON.stringify({
    __metadata__: { note: 'dtypes' },
    h: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] },
    b: { dtype: 'BF16', shape: [4], data_offsets: [12, 20] },
    d: { dtype: 'F64', shape: [2, 2], data_offsets: [20, 52] },
  });
  files.push(['dtypes', safetensorsFile(header, concat(u8(half), u8(bf), u8(f64)))]);
  return files.map(([name, bytes]) => ({ name, bytes, layers: [safetensorsLayer(bytes)] }));
}

// model folders -----------------------------------------------------------------------------------------------

const TINY: UNetConfig = {
  inChannels: 1,
  outChannels: 1,
  resolution: 8,
  ch: 8,
  chMult: [1, 2],
  numResBlocks: 1,
  attnResolutions: [4],
  dropout: 0,
  groups: 4,
  eps: 1e-6,
};

const SPEC: ModelSpec = {
  format: 'ddpm-ts/model/v1',
  unet: TINY,
  diffusion: {
    schedule: 'linear',
    betaStart: 1e-4,
    betaEnd: 0.02,
    T: 100,
    modelMeanType: 'eps',
    modelVarType: 'fixedlarge',
  },
  data: 'mnist',
};

function tinyWeights(cfg: UNetConfig = TINY, prefix = ''): Uint8Array {
  return concat(
    ...encodeSafeTensors(
      unetParamSpecs(cfg).map(
        (s, k) => [`${prefix}${s.name}`, { shape: s.shape, data: floats(prod(s.shape), k) }] as const,
      ),
      { format: 'ddpm-ts/weights/v1' },
    ),
  );
}

/** diffusers' UNet2DModel config of the same network. */
const DIFFUSERS_CONFIG = {
  _class_name: 'UNet2DModel',
  sample_size: 8,
  in_channels: 1,
  out_channels: 1,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  norm_num_groups: 4,
  norm_eps: 1e-6,
  dropout: 0,
  act_fn: 'silu',
  attention_head_dim: null,
  time_embedding_type: 'positional',
  flip_sin_to_cos: false,
  freq_shift: 1,
  downsample_padding: 0,
  center_input_sample: false,
  mid_block_scale_factor: 1,
  add_attention: true,
};

const jsonSeed = (name: string, o: unknown): Seed => {
  const bytes = te.encode(JSON.stringify(o, null, 2));
  return { name, bytes, layers: [{ name: 'JSON', inner: bytes, text: true, wrap: (b) => b }] };
};

/** A model folder (config.json + model.safetensors) in the case's folder; one of the two is the input. */
/** diffusers' DDPMScheduler config beside a diffusers UNet config. */
const SCHEDULER_CONFIG = {
  _class_name: 'DDPMScheduler',
  _diffusers_version: '0.30.0',
  num_train_timesteps: 100,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  variance_type: 'fixed_large',
  clip_sample: true,
  clip_sample_range: 1,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
};

/** A diffusers UNet folder whose scheduler_config.json is the input. */
function schedulerTarget(): FuzzTarget {
  const weights = tinyWeights();
  return {
    name: 'diffusers-scheduler',
    file: 'scheduler_config.json',
    seeds: () => [
      jsonSeed('DDPMScheduler', SCHEDULER_CONFIG),
      jsonSeed('DDIMScheduler trained_betas', {
        ...SCHEDULER_CONFIG,
        _class_name: 'DDIMScheduler',
        num_train_timesteps: 4,
        trained_betas: [0.1, 0.2, 0.3, 0.4],
        set_alpha_to_one: false,
      }),
    ],
    run(input, path) {
      const dir = join(path, '..');
      writeFileSync(join(dir, 'config.json'), JSON.stringify(DIFFUSERS_CONFIG));
      writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors'), weights);
      writeFileSync(path, input);
      return loadModel(dir);
    },
    own: (e) => !(e instanceof SafeTensorsError),
    maxResultBytes: (n) => 8 * n + 2 * weights.length,
    check(r) {
      const m = r as ReturnType<typeof loadModel>;
      validateSpec(JSON.parse(JSON.stringify(m.spec)), 'the loaded spec');
      return undefined;
    },
  };
}

function modelTarget(name: 'model-config' | 'model-weights'): FuzzTarget {
  const weights = tinyWeights();
  const configOf = (input: Uint8Array) => (name === 'model-config' ? input : te.encode(JSON.stringify(SPEC)));
  return {
    name,
    file: name === 'model-config' ? 'config.json' : 'model.safetensors',
    seeds: () =>
      name === 'model-config'
        ? [jsonSeed('ddpm-ts', SPEC), jsonSeed('diffusers', DIFFUSERS_CONFIG)]
        : [{ name: 'weights', bytes: weights, layers: [safetensorsLayer(weights)] }],
    run(input, path) {
      const dir = join(path, '..');
      writeFileSync(join(dir, 'config.json'), configOf(input));
      writeFileSync(join(dir, 'model.safetensors'), name === 'model-weights' ? input : weights);
      return loadModel(dir);
    },
    own: (e) => !(e instanceof SafeTensorsError) || name === 'model-weights',
    maxResultBytes: (n) => 8 * n + 2 * weights.length,
    check(r) {
      const m = r as ReturnType<typeof loadModel>;
      validateSpec(JSON.parse(JSON.stringify(m.spec)), 'the loaded spec');
      for (const s of unetParamSpecs(m.spec.unet)) {
        const d = m.params.get(s.name);
        if (!d || d.length !== prod(s.shape))
          return `parameter ${s.name}: ${d?.length} values for [${s.shape}]`;
      }
      return undefined;
    },
  };
}

// checkpoints -----------------------------------------------------------------------------------------------

function checkpointSeed(dir: string): Seed {
  const shapes = new Map(unetParamSpecs(TINY).map((s) => [s.name, s.shape]));
  const store = (k: number) =>
    new Map(unetParamSpecs(TINY).map((s, i) => [s.name, floats(prod(s.shape), k + i)]));
  const rng = { s: [1, 2, 3, 4], spare: null };
  const meta = {
    identity: { data: 'mnist', batch: 4 },
    state: {
      step: 7,
      trainRng: { s: [5, 6, 7, 8], spare: 0.25 },
      loader: { epoch: 0, index: 3, rngState: rng, n: 10 },
      adamStep: 7,
    },
  };
  const path = join(dir, 'seed.safetensors');
  saveCheckpoint(path, { meta, params: store(0), ema: store(1), adamM: store(2), adamV: store(3) }, shapes);
  const bytes = new Uint8Array(readFileSync(path));
  const header = safetensorsLayer(bytes);
  const headerObj = JSON.parse(td.decode(header.inner)) as { __metadata__: Record<string, string> };
  const stateLayer: Layer = {
    name: 'training state JSON',
    inner: te.encode(headerObj.__metadata__.state!),
    text: true,
    wrap(inner) {
      const h = { ...headerObj, __metadata__: { ...headerObj.__metadata__, state: td.decode(inner) } };
      return header.wrap(te.encode(JSON.stringify(h)));
    },
  };
  return { name: 'checkpoint', bytes, layers: [header, stateLayer] };
}

// IDX, CIFAR-10 ---------------------------------------------------------------------------------------------

function idxFile(magic: number, dims: number[], fill: (i: number) => number): Uint8Array {
  const h = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  h.setUint32(0, magic, false);
  for (const [i, d] of dims.entries()) h.setUint32(4 + 4 * i, d, false);
  const data = Uint8Array.from({ length: prod(dims) }, (_, i) => fill(i));
  return concat(new Uint8Array(h.buffer), data);
}

// PNG, JPEG -------------------------------------------------------------------------------------------------

/** PNG chunks: [type, data] from a file (stops at the first broken length). */
function pngChunks(b: Uint8Array): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let p = 8; p + 12 <= b.length; ) {
    const len = v.getUint32(p, false);
    if (p + 12 + len > b.length) break;
    out.push([td.decode(b.subarray(p + 4, p + 8)), b.slice(p + 8, p + 8 + len)]);
    p += 12 + len;
  }
  return out;
}

function pngFromChunks(chunks: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)];
  for (const [type, data] of chunks) {
    const h = new Uint8Array(8);
    new DataView(h.buffer).setUint32(0, data.length, false);
    h.set(te.encode(type), 4);
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, crc32(concat(h.subarray(4), data)), false);
    parts.push(h, data, crc);
  }
  return concat(...parts);
}

/** Every chunk CRC recomputed (lengths as they are): a changed IHDR or IDAT reaches the decoder. */
function fixPngCrcs(b: Uint8Array): Uint8Array {
  const out = b.slice();
  const v = new DataView(out.buffer);
  for (let p = 8; p + 12 <= out.length; ) {
    const len = v.getUint32(p, false);
    if (p + 12 + len > out.length) break;
    v.setUint32(p + 8 + len, crc32(out.subarray(p + 4, p + 8 + len)), false);
    p += 12 + len;
  }
  return out;
}

function pngSeed(name: string, width: number, height: number, channels: number, depth: 8 | 16): Seed {
  const n = width * height * channels;
  const data =
    depth === 8
      ? Uint8Array.from({ length: n }, (_, i) => (i * 37) & 255)
      : Uint16Array.from({ length: n }, (_, i) => (i * 4099) & 0xffff);
  const bytes = new Uint8Array(encodePngRaw({ width, height, channels, depth, data }));
  const chunks = pngChunks(bytes);
  const idat = concat(...chunks.filter(([t]) => t === 'IDAT').map(([, d]) => d));
  const scanlines = new Uint8Array(inflateSync(idat));
  const rest = chunks.filter(([t]) => t !== 'IDAT' && t !== 'IEND');
  return {
    name,
    bytes,
    fixup: fixPngCrcs,
    layers: [
      {
        name: 'scanlines',
        inner: scanlines,
        text: false,
        wrap: (inner) =>
          pngFromChunks([...rest, ['IDAT', new Uint8Array(deflateSync(inner))], ['IEND', new Uint8Array(0)]]),
      },
    ],
  };
}

function jpegSeed(name: string, width: number, height: number, quality: number): Seed {
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 29 + (i >> 7) * 3) & 255;
  const bytes = new Uint8Array(jpeg.encode({ width, height, data }, quality).data);
  return { name, bytes };
}

// npz, pth --------------------------------------------------------------------------------------------------

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
}

/** Layers of a zip archive's member: its bytes (stored again with a correct CRC), and for .npy its header. */
function zipMemberLayers(file: Uint8Array, member: RegExp): Layer[] {
  const zip = readZip(file, 'seed');
  const files = zip.entries.map((e) => ({ name: e.name, data: zip.read(e.name).slice() }));
  const m = files.find((f) => member.test(f.name));
  if (!m) return [];
  const rezip = (inner: Uint8Array) =>
    writeZip(files.map((f) => (f === m ? { name: f.name, data: inner } : f)));
  const layers: Layer[] = [{ name: m.name, inner: m.data, text: false, wrap: rezip }];
  if (m.name.endsWith('.npy')) {
    const v = new DataView(m.data.buffer, m.data.byteOffset);
    const [start, hlen] = m.data[6] === 1 ? [10, v.getUint16(8, true)] : [12, v.getUint32(8, true)];
    const prefix = m.data.slice(0, 8);
    const data = m.data.slice(start + hlen);
    layers.push({
      name: `${m.name} header`,
      inner: m.data.slice(start, start + hlen),
      text: true,
      wrap(inner) {
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(0, inner.length, true);
        const p = prefix.slice();
        p[6] = 2; // version 2.0: a u32 header length, so any changed header fits
        return rezip(concat(p, len, inner, data));
      },
    });
  }
  return layers;
}

function npzSeeds(): Seed[] {
  const made = writeNpz({
    mu: { data: Float64Array.of(1, 2, 3), shape: [3] },
    sigma: { data: new Float64Array(9).fill(0.5), shape: [3, 3] },
    idx: { data: BigInt64Array.of(1n, 2n), shape: [2] },
    half: { data: Float32Array.of(1, 2), shape: [1, 2] },
    b: { data: Uint8Array.of(1, 2, 3, 4), shape: [2, 2] },
    s: { data: Int32Array.of(7), shape: [] },
  });
  const files: [string, Uint8Array][] = [
    ['written', made],
    ['numpy stats', fixture('io_stats.npz')],
    ['numpy compressed', fixture('io_stats_compressed.npz')],
    ['numpy dtypes', fixture('io_dtypes.npz')],
  ];
  return files.map(([name, bytes]) => ({ name, bytes, layers: zipMemberLayers(bytes, /\.npy$/) }));
}

function pthSeeds(): Seed[] {
  const zips = ['io_state_dict.pth', 'io_rebuild_variants.pth', 'io_checkpoint_p4.pth'];
  const legacy = ['io_legacy_view.pth', 'io_state_dict_legacy.pth'];
  return [
    ...zips.map((f) => ({ name: f, bytes: fixture(f), layers: zipMemberLayers(fixture(f), /\/data\.pkl$/) })),
    ...legacy.map((f) => ({ name: f, bytes: fixture(f) })),
  ];
}

// run logs --------------------------------------------------------------------------------------------------

function logSeed(): Seed {
  const lines = [
    { step: 1, loss: 0.9, lr: 1e-4, gradNorm: 2, stepsPerSec: 3, epoch: 0 },
    { step: 2, loss: 0.8, lr: 1e-4, gradNorm: 1.5, stepsPerSec: 3, epoch: 0 },
    { step: 2, eval: { 'fid(ddim 20)': 123.4 }, evalN: 64 },
    { step: 3, loss: 0.7, lr: 1e-4, gradNorm: 1, stepsPerSec: 3, epoch: 1 },
  ];
  const bytes = te.encode(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  return {
    name: 'log.jsonl',
    bytes,
    layers: lines.map((_, i) => ({
      name: `line ${i + 1}`,
      inner: te.encode(JSON.stringify(lines[i])),
      text: true,
      wrap: (inner: Uint8Array) =>
        te.encode(lines.map((l, j) => `${j === i ? td.decode(inner) : JSON.stringify(l)}\n`).join('')),
    })),
  };
}

// The .npz files of ddpm eval: reference statistics (--ref) and partial results of sharded runs ------------------

const NET = { name: 'fuzz-net', weightsHash: 'abcd1234', dims: 4 };

const metaBytes = (o: unknown) => {
  const b = te.encode(JSON.stringify(o));
  return { data: b, shape: [b.length] };
};

function referenceSeeds(): Seed[] {
  const d = NET.dims;
  const sigma = new Float64Array(d * d);
  for (let i = 0; i < d; i++) sigma[i * d + i] = 1;
  const files: [string, Uint8Array][] = [
    [
      'ours',
      writeNpz({
        mu: { data: Float64Array.of(0.1, 0.2, 0.3, 0.4), shape: [d] },
        sigma: { data: sigma, shape: [d, d] },
        features: { data: floats(3 * d, 1), shape: [3, d] },
        meta: metaBytes({ featureNet: `${NET.name}@${NET.weightsHash}`, n: 3 }),
      }),
    ],
    [
      'pytorch-fid style',
      writeNpz({
        mu: { data: Float64Array.of(1, 2, 3, 4), shape: [d] },
        sigma: { data: sigma, shape: [d, d] },
      }),
    ],
  ];
  return files.map(([name, bytes]) => ({ name, bytes, layers: zipMemberLayers(bytes, /^(mu|meta)\.npy$/) }));
}

function partialSeed(): Seed {
  const d = 3;
  const n = 2;
  const bytes = writeNpz({
    count: { data: Float64Array.of(n), shape: [] },
    sum: { data: Float64Array.of(1, 2, 3), shape: [d] },
    outer: { data: Float64Array.of(2, 1, 1, 1, 3, 1, 1, 1, 4), shape: [d, d] },
    indices: { data: BigInt64Array.of(4n, 9n), shape: [n] },
    meta: metaBytes({ shard: '1/2', featureNet: 'fuzz-net@abcd1234' }),
    features: { data: floats(n * d, 2), shape: [n, d] },
    logits: { data: floats(n * 5, 3), shape: [n, 5] },
  });
  return { name: 'shard', bytes, layers: zipMemberLayers(bytes, /^(count|indices|sum)\.npy$/) };
}

// ONNX models (ddpm export --to onnx), classifier folders -------------------------------------------------------

function onnxSeed(): Seed {
  const params = new Map(unetParamSpecs(TINY).map((s, k) => [s.name, floats(prod(s.shape), k)]));
  const bytes = buildStandaloneModel(TINY, params, { [ONNX_SPEC_KEY]: JSON.stringify(SPEC) });
  return { name: 'tiny model', bytes };
}

const CLASSIFIER = {
  format: 'ddpm-ts/classifier/v1',
  name: 'fuzz-classifier',
  architecture: { inChannels: 1, resolution: 8, widths: [4, 8], strides: [1, 2], groups: 2, classes: 3 },
};

/** A classifier folder in the case's folder; its config.json is the input. */
function classifierTarget(scratch: string): FuzzTarget {
  const seedDir = join(scratch, 'classifier-seed');
  let weights: Uint8Array | undefined;
  const seeds = () => {
    const arch = CLASSIFIER.architecture as Parameters<typeof saveClassifier>[1]['architecture'];
    const probe = join(seedDir, 'probe');
    // The parameter names and shapes of the architecture, then weights for them.
    saveClassifier(probe, CLASSIFIER as Parameters<typeof saveClassifier>[1], paramsFor(arch));
    weights = new Uint8Array(readFileSync(join(probe, 'model.safetensors')));
    return [jsonSeed('classifier', CLASSIFIER)];
  };
  return {
    name: 'classifier',
    file: 'config.json',
    seeds,
    run(input, path) {
      const dir = join(path, '..');
      writeFileSync(path, input);
      writeFileSync(join(dir, 'model.safetensors'), weights!);
      return loadClassifier(dir);
    },
    own: (e) => e instanceof ClassifierError,
    maxResultBytes: (n) => 8 * n + 2 * weights!.length,
  };
}

/** Weights for a classifier architecture (names and shapes from its parameter specs). */
function paramsFor(arch: Parameters<typeof saveClassifier>[1]['architecture']) {
  return new Map(classifierParamSpecs(arch).map((s, k) => [s.name, floats(prod(s.shape), k)]));
}

// ---------------------------------------------------------------------------------------------------------

const isData = (e: Error) => e instanceof DataError;

export function makeTargets(scratch: string): FuzzTarget[] {
  return [
    {
      name: 'safetensors',
      file: 'fuzz.safetensors',
      seeds: safetensorsSeeds,
      run: (input, path) => parseSafeTensors(input, path),
      own: (e) => e instanceof SafeTensorsError,
      check: (r) => checkTensors((r as ReturnType<typeof parseSafeTensors>).tensors),
      maxResultBytes: (n) => 2 * n + 1024, // F16 / BF16 widen to F32
    },
    modelTarget('model-config'),
    modelTarget('model-weights'),
    schedulerTarget(),
    {
      name: 'checkpoint',
      file: 'checkpoint.safetensors',
      seeds: () => [checkpointSeed(scratch)],
      run(input, path) {
        writeFileSync(path, input);
        const ck = loadCheckpoint(path);
        return resumeState(ck, path, new Map(unetParamSpecs(TINY).map((s) => [s.name, s.shape])));
      },
      own: () => true,
      maxResultBytes: (n) => 2 * n + 1024,
    },
    {
      name: 'run-log',
      file: 'log.jsonl',
      tolerant: true,
      seeds: () => [logSeed()],
      run(input, path) {
        writeFileSync(path, input);
        return { steps: readLog(path), evals: readEvalLog(path) };
      },
      own: () => true,
      check(r) {
        const { steps, evals } = r as {
          steps: { step: unknown; loss: unknown }[];
          evals: { step: unknown; value: unknown }[];
        };
        for (const s of steps)
          if (!Number.isFinite(s.step) || typeof s.loss !== 'number')
            return `a step record ${JSON.stringify(s)}`;
        for (const s of evals)
          if (!Number.isFinite(s.step) || typeof s.value !== 'number')
            return `an eval record ${JSON.stringify(s)}`;
        return undefined;
      },
    },
    {
      name: 'idx',
      file: 'train-images-idx3-ubyte',
      seeds: () => {
        const a = idxFile(0x803, [3, 28, 28], (i) => i & 255);
        const b = idxFile(0x803, [2, 5, 4], (i) => (i * 7) & 255);
        const gz = (x: Uint8Array): Layer => ({
          name: 'gunzipped',
          inner: x,
          text: false,
          wrap: (i) => new Uint8Array(gzipSync(i)),
        });
        return [
          { name: '3 x 28 x 28', bytes: a },
          { name: '2 x 5 x 4', bytes: b },
          { name: 'gzipped', bytes: new Uint8Array(gzipSync(b)), layers: [gz(b)] },
        ];
      },
      run(input, path) {
        writeFileSync(path, input);
        return loadIdx(path, { labelsPath: null });
      },
      own: isData,
      check(r) {
        const d = r as ReturnType<typeof loadIdx>;
        return d.n >= 1 && d.height >= 1 && d.width >= 1
          ? undefined
          : `a dataset of ${d.n} images of ${d.height} x ${d.width}`;
      },
      maxResultBytes: (n) => 4 * n + 4096, // 28x28 pads to 32x32
    },
    {
      name: 'idx-labels',
      file: 'train-labels-idx1-ubyte',
      seeds: () => [{ name: '3 labels', bytes: idxFile(0x801, [3], (i) => i) }],
      run(input, path) {
        const images = join(path, '..', 'train-images-idx3-ubyte');
        writeFileSync(
          images,
          idxFile(0x803, [3, 2, 2], (i) => i),
        );
        writeFileSync(path, input);
        return loadIdx(images, { labelsPath: path });
      },
      own: isData,
    },
    {
      name: 'cifar10',
      file: 'data_batch_1.bin',
      seeds: () =>
        [1, 2].map((n) => ({
          name: `${n} records`,
          bytes: Uint8Array.from({ length: n * 3073 }, (_, i) => (i % 3073 === 0 ? i % 10 : (i * 13) & 255)),
        })),
      run(input, path) {
        writeFileSync(path, input);
        return loadCifar10(path);
      },
      own: isData,
    },
    {
      name: 'png',
      file: 'image.png',
      seeds: () => [
        pngSeed('gray 5x3', 5, 3, 1, 8),
        pngSeed('rgb 4x4', 4, 4, 3, 8),
        pngSeed('rgba 3x2', 3, 2, 4, 8),
        pngSeed('gray+alpha 16-bit 2x3', 2, 3, 2, 16),
      ],
      run(input, path) {
        writeFileSync(path, input);
        decodeImage(input, path);
        return loadImageFile(path, 8, 3);
      },
      own: isData,
      check: (r) =>
        (r as Uint8Array).length === 3 * 8 * 8 ? undefined : `${(r as Uint8Array).length} bytes`,
    },
    {
      name: 'jpeg',
      file: 'image.jpg',
      seeds: () => [jpegSeed('9x7 q90', 9, 7, 90), jpegSeed('17x16 q50', 17, 16, 50)],
      run(input, path) {
        writeFileSync(path, input);
        decodeImage(input, path);
        return loadImageFile(path, 8, 1);
      },
      own: isData,
      check: (r) => ((r as Uint8Array).length === 8 * 8 ? undefined : `${(r as Uint8Array).length} bytes`),
    },
    {
      name: 'npz',
      file: 'stats.npz',
      seeds: npzSeeds,
      run: (input, path) => readNpz(input, path),
      own: (e) => e instanceof NpyError || e instanceof ZipError,
      check: (r) => checkTensors(r as ReturnType<typeof readNpz>),
      maxResultBytes: (n) => 2 * 1032 * n + 4096, // deflated members (ratio at most 1032:1), <f2 widened
    },
    {
      name: 'npz-reference',
      file: 'ref.npz',
      seeds: referenceSeeds,
      run(input, path) {
        writeFileSync(path, input);
        return referenceFromNpz(path, NET);
      },
      own: (e) => e instanceof UsageError,
      check(r) {
        const ref = r as ReturnType<typeof referenceFromNpz>;
        if (ref.mu.length !== NET.dims || ref.sigma.length !== NET.dims ** 2) return 'mu / sigma sizes';
        if (ref.features && ref.features.length % NET.dims !== 0)
          return `${ref.features.length} feature values`;
        return undefined;
      },
      maxResultBytes: (n) => 2 * 1032 * n + 4096,
    },
    {
      name: 'npz-partial',
      file: 'part.npz',
      seeds: () => [partialSeed()],
      run(input, path) {
        writeFileSync(path, input);
        return readPartial(path);
      },
      own: (e) => e instanceof UsageError,
      check(r) {
        const { set } = r as ReturnType<typeof readPartial>;
        if (set.stats.count !== set.indices.length)
          return `count ${set.stats.count} for ${set.indices.length} rows`;
        if (set.features && set.features.length !== set.indices.length * set.dims) return 'features size';
        if (!Number.isInteger(set.classes)) return `${set.classes} classes`;
        return undefined;
      },
      maxResultBytes: (n) => 2 * 1032 * n + 4096,
    },
    {
      name: 'onnx',
      file: 'model.onnx',
      seeds: () => [onnxSeed()],
      run(input, path) {
        writeFileSync(path, input);
        readOnnx(input, path);
        return loadModel(path);
      },
      own: (e) => !(e instanceof SafeTensorsError),
    },
    classifierTarget(scratch),
    {
      name: 'pth',
      file: 'weights.pth',
      seeds: pthSeeds,
      run: (input, path) => readTorchStateDict(input, path),
      own: (e) => e instanceof TorchCheckpointError || e instanceof ZipError,
      check: (r) => checkTensors(r as ReturnType<typeof readTorchStateDict>),
      maxResultBytes: (n) => 8 * 1032 * n + 4096, // deflated storages, int8 widened to float32
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Cases

export interface Case {
  readonly seed: number;
  /** 0: the whole file; i > 0: the seed's layer i - 1. */
  readonly layer: number;
  readonly textOps: readonly TextOp[];
  readonly byteOps: readonly ByteOp[];
  readonly fixup: boolean;
}

export const caseArbitrary: fc.Arbitrary<Case> = fc.record({
  seed: fc.nat(),
  layer: fc.nat(),
  textOps: fc.array(textOp, { maxLength: 3 }),
  byteOps: fc.array(byteOp, { maxLength: 4 }),
  fixup: fc.boolean(),
});

/** The input a case describes, and where its change went. */
export function materialize(seeds: readonly Seed[], c: Case): { input: Uint8Array; where: string } {
  const seed = seeds[c.seed % seeds.length]!;
  const layers = seed.layers ?? [];
  const li = c.layer % (layers.length + 1);
  if (li === 0) {
    let b = c.byteOps.reduce(applyByteOp, seed.bytes);
    if (c.fixup && seed.fixup) b = seed.fixup(b);
    return { input: b, where: `${seed.name}` };
  }
  const layer = layers[li - 1]!;
  let inner = layer.inner;
  if (layer.text && c.textOps.length) inner = te.encode(c.textOps.reduce(applyTextOp, td.decode(inner)));
  inner = c.byteOps.reduce(applyByteOp, inner);
  return { input: layer.wrap(inner), where: `${seed.name}: ${layer.name}` };
}

export type Verdict = 'parsed' | 'refused';

export interface Finding {
  readonly kind:
    | 'foreign error'
    | 'unclear message'
    | 'bad result'
    | 'oversized result'
    | 'slow'
    | 'large allocation';
  readonly detail: string;
  /** Digits and paths stripped: the same bug found twice has the same signature. */
  readonly signature: string;
}

export interface Outcome {
  readonly verdict: Verdict | 'finding';
  readonly finding?: Finding;
  readonly ms: number;
}

/** Per-case time limit (ms): a parse of a few KiB that takes longer is a hang in the making. */
export const CASE_MS = 2000;

const FOREIGN = [TypeError, RangeError, SyntaxError, ReferenceError, EvalError];

/** A finding's kind and message with the file's content left out (quotes, numbers): one bug, one signature. */
function signature(kind: string, text: string, dir: string): string {
  const plain = text
    .split(dir)
    .join('<dir>')
    .replace(/"[^"]*"|'[^']*'|\{.*\}|\[.*\]/g, '_')
    .replace(/\d+/g, 'N');
  return `${kind}: ${plain.slice(0, 70)}`;
}

/** One case against a target in a scratch folder (files of path readers are written there). */
export function runCase(t: FuzzTarget, input: Uint8Array, dir: string): Outcome {
  const path = join(dir, t.file);
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let result: unknown;
  let error: unknown;
  let threw = false;
  try {
    result = t.run(input, path);
  } catch (e) {
    error = e;
    threw = true;
  }
  const ms = performance.now() - t0;
  const grew = process.memoryUsage().arrayBuffers - before;
  const finding = (kind: Finding['kind'], detail: string): Outcome => ({
    verdict: 'finding',
    finding: { kind, detail, signature: signature(kind, detail, dir) },
    ms,
  });
  if (ms > CASE_MS) return finding('slow', `${ms.toFixed(0)} ms for ${input.length} bytes`);
  if (grew > 64 * 2 ** 20 + 64 * input.length)
    return finding('large allocation', `${(grew / 2 ** 20).toFixed(0)} MiB for ${input.length} bytes`);
  if (threw) {
    if (!(error instanceof Error))
      return finding('foreign error', `a thrown ${typeof error}: ${String(error)}`);
    const e = error;
    const first = e.message.split('\n')[0]!.slice(0, 300);
    if (FOREIGN.some((C) => e.constructor === C) || !t.own(e))
      return finding('foreign error', `${e.name}: ${first}`);
    if (!e.message.includes(t.file) && !e.message.includes(dir))
      return finding('unclear message', `${e.name} without the file's name: ${first}`);
    if (/\bundefined\b|\[object /.test(e.message)) return finding('unclear message', `${e.name}: ${first}`);
    return { verdict: 'refused', ms };
  }
  let problem: string | undefined;
  try {
    problem = t.check?.(result, input);
  } catch (e) {
    problem = `its check threw ${(e as Error).message}`;
  }
  if (problem) return finding('bad result', problem);
  const held = (t.resultBytes ?? heldBytes)(result);
  const max = (t.maxResultBytes ?? ((n) => 8 * n + 65536))(input.length);
  if (held > max) return finding('oversized result', `${held} bytes from ${input.length}`);
  return { verdict: 'parsed', ms };
}

export interface Fuzzer {
  readonly targets: readonly FuzzTarget[];
  seedsOf(t: FuzzTarget): readonly Seed[];
  /** The case's folder for a target. */
  dirOf(t: FuzzTarget): string;
  close(): void;
}

export function createFuzzer(): Fuzzer {
  const root = mkdtempSync(join(tmpdir(), 'ddpm-fuzz-'));
  const targets = makeTargets(root);
  const seeds = new Map<string, readonly Seed[]>();
  return {
    targets,
    seedsOf(t) {
      if (!seeds.has(t.name)) seeds.set(t.name, t.seeds());
      return seeds.get(t.name)!;
    },
    dirOf(t) {
      const d = join(root, t.name);
      mkdirSync(d, { recursive: true });
      return d;
    },
    close: () => rmSync(root, { recursive: true, force: true }),
  };
}

export interface Tally {
  readonly target: string;
  runs: number;
  parsed: number;
  refused: number;
  ms: number;
  /** Distinct findings by signature: how often, and one case that shows it. */
  readonly findings: Map<string, { count: number; example: Finding; where: string; case: Case }>;
}

/** Run `runs` generated cases of one target (fast-check's generator, a fixed seed); count, never stop. */
export function campaign(
  f: Fuzzer,
  t: FuzzTarget,
  runs: number,
  seed: number,
  onCase?: (i: number) => void,
): Tally {
  const seeds = f.seedsOf(t);
  const dir = f.dirOf(t);
  const tally: Tally = { target: t.name, runs: 0, parsed: 0, refused: 0, ms: 0, findings: new Map() };
  const chunk = 500;
  for (let done = 0; done < runs; done += chunk) {
    const cases = fc.sample(caseArbitrary, { numRuns: Math.min(chunk, runs - done), seed: seed + done });
    for (const c of cases) {
      const { input, where } = materialize(seeds, c);
      const o = runCase(t, input, dir);
      tally.runs++;
      tally.ms += o.ms;
      if (o.verdict === 'finding') {
        const k = o.finding!.signature;
        const prev = tally.findings.get(k);
        if (prev) prev.count++;
        else tally.findings.set(k, { count: 1, example: o.finding!, where, case: c });
      } else tally[o.verdict]++;
      onCase?.(tally.runs);
    }
  }
  return tally;
}
