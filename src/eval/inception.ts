// The FID Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture"), exactly as
// pytorch-fid runs it with its pt_inception-2015-12-05 weights (ported from TensorFlow's 2015-12-05 graph,
// which the FID of Heusel et al. 2017 uses): torchvision's Inception3 layout with 1008 classes, BatchNorm
// eps 0.001, and the TF-port's branch pools (average pools that do not count padding in Mixed_5b..5d,
// Mixed_6b..6e and Mixed_7b; a max pool in Mixed_7c). Input: images resized to 299x299 as PyTorch's
// F.interpolate(bilinear, align_corners=False) does, in [-1, 1]. Outputs pool_3 (2048-d features for FID,
// KID, precision/recall) and the fc logits (Inception Score). Built on the graph builder as a frozen
// inference graph: conv, BatchNorm (running statistics), ReLU as torchvision writes BasicConv2d (the
// fold-batchnorm graph pass folds each BatchNorm into its conv in float64), the resize as two constant matrices.
// reference/inception_fid.py is the independent PyTorch reference the tests compare against.

import { existsSync, readFileSync } from 'node:fs';
import type { Engine, EngineSession } from '../engine/engine.js';
import { Graph, GraphError, type Value } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { runPasses } from '../graph/passes/index.js';
import { fnv1a, type ParamStore } from '../nn/unet.js';
import { hashUniform } from '../util/rng.js';
import { parseSafeTensors, type SafeTensor } from '../util/safetensors.js';
import { readTorchStateDict } from '../util/torchCheckpoint.js';
import { sizeOf, type Tensor } from '../util/tensor.js';
import type { FeatureBatch, FeatureNet } from './featureNet.js';
import { paramsHash, sha256Hex8 } from './hash.js';

/** The network's input size and output widths. */
export const INCEPTION_SIZE = 299;
export const INCEPTION_DIMS = 2048;
export const INCEPTION_CLASSES = 1008;
/** pytorch-fid's weights file (the suffix is the start of its SHA-256, so its weightsHash is 6726825d). */
export const INCEPTION_WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth';
export const INCEPTION_PREPROCESS = 'bilinear-299 align_corners=False (pytorch-fid)';
const BN_EPS = 0.001;

export type InceptionParamKind =
  | 'convWeight'
  | 'bnWeight'
  | 'bnBias'
  | 'bnMean'
  | 'bnVar'
  | 'fcWeight'
  | 'fcBias';

export interface InceptionParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: InceptionParamKind;
}

export class InceptionWeightsError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'InceptionWeightsError';
  }
}

// ---- the layer list, written once for both the parameter list and the graph ----

interface Kernel {
  readonly k: readonly [number, number];
  readonly stride?: number;
  /** Symmetric [rows, cols] zero padding. */
  readonly pad?: readonly [number, number];
}

type BranchPool = 'avg' | 'max';

/** What flows through the layer list: channel counts (parameter list) or graph values. */
interface Layers<T> {
  /** BasicConv2d: conv (no bias), BatchNorm (eps 0.001, running statistics), ReLU. */
  conv(name: string, x: T, out: number, kernel: Kernel): T;
  /** max_pool2d(3, stride 2), no padding: the stem's pools and InceptionB/D's pool branch. */
  reduce(x: T): T;
  /** The 3x3 stride-1 pool of a branch: 'avg' does not count padding (TF), 'max' (Mixed_7c). */
  branchPool(x: T, kind: BranchPool): T;
  concat(xs: readonly T[]): T;
}

const K1: Kernel = { k: [1, 1] };
const K3: Kernel = { k: [3, 3] };
const K3P1: Kernel = { k: [3, 3], pad: [1, 1] };
const K3S2: Kernel = { k: [3, 3], stride: 2 };
const K5P2: Kernel = { k: [5, 5], pad: [2, 2] };
const K1x7: Kernel = { k: [1, 7], pad: [0, 3] };
const K7x1: Kernel = { k: [7, 1], pad: [3, 0] };
const K1x3: Kernel = { k: [1, 3], pad: [0, 1] };
const K3x1: Kernel = { k: [3, 1], pad: [1, 0] };

type Block =
  | { readonly name: string; readonly kind: 'A'; readonly poolFeatures: number }
  | { readonly name: string; readonly kind: 'B' }
  | { readonly name: string; readonly kind: 'C'; readonly c7: number }
  | { readonly name: string; readonly kind: 'D' }
  | { readonly name: string; readonly kind: 'E'; readonly pool: BranchPool };

const BLOCKS: readonly Block[] = [
  { name: 'Mixed_5b', kind: 'A', poolFeatures: 32 }, // 192 -> 256 channels, 35x35
  { name: 'Mixed_5c', kind: 'A', poolFeatures: 64 }, // -> 288
  { name: 'Mixed_5d', kind: 'A', poolFeatures: 64 }, // -> 288
  { name: 'Mixed_6a', kind: 'B' }, // -> 768, 17x17
  { name: 'Mixed_6b', kind: 'C', c7: 128 },
  { name: 'Mixed_6c', kind: 'C', c7: 160 },
  { name: 'Mixed_6d', kind: 'C', c7: 160 },
  { name: 'Mixed_6e', kind: 'C', c7: 192 },
  { name: 'Mixed_7a', kind: 'D' }, // -> 1280, 8x8
  { name: 'Mixed_7b', kind: 'E', pool: 'avg' }, // -> 2048
  { name: 'Mixed_7c', kind: 'E', pool: 'max' }, // -> 2048 (the TF graph's max pool)
];

/** Input [N, 3, 299, 299] to the last 2048-channel map [N, 2048, 8, 8]; parameters in state_dict order. */
function trunk<T>(l: Layers<T>, x: T): T {
  x = l.conv('Conv2d_1a_3x3', x, 32, K3S2); // 149x149
  x = l.conv('Conv2d_2a_3x3', x, 32, K3); // 147x147
  x = l.conv('Conv2d_2b_3x3', x, 64, K3P1);
  x = l.reduce(x); // 73x73
  x = l.conv('Conv2d_3b_1x1', x, 80, K1);
  x = l.conv('Conv2d_4a_3x3', x, 192, K3); // 71x71
  x = l.reduce(x); // 35x35
  for (const b of BLOCKS) x = block(l, b, x);
  return x;
}

/** One Mixed block: its branches concatenated on channels in the order of the original graph. */
function block<T>(l: Layers<T>, b: Block, x: T): T {
  const c = (name: string, v: T, out: number, k: Kernel) => l.conv(`${b.name}.${name}`, v, out, k);
  switch (b.kind) {
    case 'A': {
      const b1 = c('branch1x1', x, 64, K1);
      const b5 = c('branch5x5_2', c('branch5x5_1', x, 48, K1), 64, K5P2);
      let b3 = c('branch3x3dbl_1', x, 64, K1);
      b3 = c('branch3x3dbl_3', c('branch3x3dbl_2', b3, 96, K3P1), 96, K3P1);
      return l.concat([b1, b5, b3, c('branch_pool', l.branchPool(x, 'avg'), b.poolFeatures, K1)]);
    }
    case 'B': {
      const b3 = c('branch3x3', x, 384, K3S2);
      let bd = c('branch3x3dbl_1', x, 64, K1);
      bd = c('branch3x3dbl_3', c('branch3x3dbl_2', bd, 96, K3P1), 96, K3S2);
      return l.concat([b3, bd, l.reduce(x)]);
    }
    case 'C': {
      const b1 = c('branch1x1', x, 192, K1);
      let b7 = c('branch7x7_1', x, b.c7, K1);
      b7 = c('branch7x7_3', c('branch7x7_2', b7, b.c7, K1x7), 192, K7x1);
      let bd = c('branch7x7dbl_1', x, b.c7, K1);
      bd = c('branch7x7dbl_3', c('branch7x7dbl_2', bd, b.c7, K7x1), b.c7, K1x7);
      bd = c('branch7x7dbl_5', c('branch7x7dbl_4', bd, b.c7, K7x1), 192, K1x7);
      return l.concat([b1, b7, bd, c('branch_pool', l.branchPool(x, 'avg'), 192, K1)]);
    }
    case 'D': {
      const b3 = c('branch3x3_2', c('branch3x3_1', x, 192, K1), 320, K3S2);
      let b7 = c('branch7x7x3_1', x, 192, K1);
      b7 = c('branch7x7x3_3', c('branch7x7x3_2', b7, 192, K1x7), 192, K7x1);
      b7 = c('branch7x7x3_4', b7, 192, K3S2);
      return l.concat([b3, b7, l.reduce(x)]);
    }
    case 'E': {
      const b1 = c('branch1x1', x, 320, K1);
      const s = c('branch3x3_1', x, 384, K1);
      const b3 = l.concat([c('branch3x3_2a', s, 384, K1x3), c('branch3x3_2b', s, 384, K3x1)]);
      const d = c('branch3x3dbl_2', c('branch3x3dbl_1', x, 448, K1), 384, K3P1);
      const bd = l.concat([c('branch3x3dbl_3a', d, 384, K1x3), c('branch3x3dbl_3b', d, 384, K3x1)]);
      return l.concat([b1, b3, bd, c('branch_pool', l.branchPool(x, b.pool), 192, K1)]);
    }
  }
}

/**
 * Every tensor of the FID weights file that holds values, in its state_dict order (`*.num_batches_tracked`
 * left out): per BasicConv2d `conv.weight`, `bn.{weight,bias,running_mean,running_var}`; then `fc`.
 */
export function inceptionParamSpecs(): InceptionParamSpec[] {
  const specs: InceptionParamSpec[] = [];
  const counting: Layers<number> = {
    conv(name, cin, out, { k }) {
      specs.push({ name: `${name}.conv.weight`, shape: [out, cin, k[0], k[1]], kind: 'convWeight' });
      specs.push({ name: `${name}.bn.weight`, shape: [out], kind: 'bnWeight' });
      specs.push({ name: `${name}.bn.bias`, shape: [out], kind: 'bnBias' });
      specs.push({ name: `${name}.bn.running_mean`, shape: [out], kind: 'bnMean' });
      specs.push({ name: `${name}.bn.running_var`, shape: [out], kind: 'bnVar' });
      return out;
    },
    reduce: (c) => c,
    branchPool: (c) => c,
    concat: (cs) => cs.reduce((a, b) => a + b, 0),
  };
  const width = trunk(counting, 3);
  if (width !== INCEPTION_DIMS) throw new Error(`inception: the layer list ends in ${width} channels`);
  specs.push({ name: 'fc.weight', shape: [INCEPTION_CLASSES, INCEPTION_DIMS], kind: 'fcWeight' });
  specs.push({ name: 'fc.bias', shape: [INCEPTION_CLASSES], kind: 'fcBias' });
  return specs;
}

// ---- the graph ----

/**
 * Rows of PyTorch's bilinear resize (F.interpolate, align_corners=False, no antialias) from inSize to
 * outSize along one axis, [outSize, inSize] row-major in float64: output i samples the input at
 * (i + 0.5) * inSize / outSize - 0.5, clamped below at 0, between its two neighbours (the upper one
 * clamped to the last pixel). Every row sums to 1.
 */
export function bilinearResizeMatrix(inSize: number, outSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const frac = src - i0;
    m[i * inSize + i0] = m[i * inSize + i0]! + (1 - frac);
    m[i * inSize + i1] = m[i * inSize + i1]! + frac;
  }
  return m;
}

function transposed(m: Float64Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/**
 * x [N, C, H, W] resized to [N, C, size, size] as PyTorch's bilinear, align_corners=False: two MatMuls
 * with constant interpolation matrices (columns, then rows), not ONNX Resize, whose semantics differ
 * between runtimes. An axis already of the target size is left alone (its matrix is the identity).
 */
export function resizeBilinear(g: Graph, x: Value, size: number): Value {
  const [, , h, w] = x.shape as [number, number, number, number];
  let y = x;
  if (w !== size) y = g.matmul(y, g.constant(transposed(bilinearResizeMatrix(w, size), size, w), [w, size]));
  if (h !== size) y = g.matmul(g.constant(Float32Array.from(bilinearResizeMatrix(h, size)), [size, h]), y);
  return y;
}

function paramOf(params: ParamStore, name: string, n: number): Float32Array {
  const v = params.get(name);
  if (!v) throw new GraphError('inception', `parameter ${name} is missing`);
  if (v.length !== n)
    throw new GraphError('inception', `parameter ${name} has ${v.length} values, expected ${n}`);
  return v;
}

function graphLayers(g: Graph, params: ParamStore): Layers<Value> {
  const param = (name: string, shape: readonly number[]) =>
    g.param(name, shape, paramOf(params, name, sizeOf(shape)));
  return {
    conv(name, x, out, { k, stride = 1, pad = [0, 0] }) {
      const weight = param(`${name}.conv.weight`, [out, x.shape[1]!, k[0], k[1]]);
      const y = g.conv(x, weight, undefined, {
        strides: [stride, stride],
        pads: [pad[0], pad[1], pad[0], pad[1]],
      });
      const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((s) =>
        param(`${name}.bn.${s}`, [out]),
      ) as [Value, Value, Value, Value];
      return g.relu(g.batchNorm(y, gamma, beta, mean, variance, BN_EPS));
    },
    reduce: (x) => g.maxPool(x, { kernel: [3, 3], strides: [2, 2] }),
    branchPool(x, kind) {
      const window = { kernel: [3, 3], pads: [1, 1, 1, 1] } as const;
      switch (kind) {
        case 'avg':
          return g.averagePool(x, { ...window, countIncludePad: false });
        case 'max':
          return g.maxPool(x, window);
      }
    },
    concat: (xs) => g.concat(xs, 1),
  };
}

export interface FidInceptionOutputs {
  /** pool_3: [N, 2048], the features of FID, KID and precision/recall. */
  readonly pool: Value;
  /** fc(pool) with its bias: [N, 1008]. */
  readonly logits: Value;
  /** fc(pool) without the bias: [N, 1008], what the original Inception Score code and torch-fidelity use. */
  readonly logitsUnbiased: Value;
}

/**
 * The FID Inception on x [N, C, H, W] in [-1, 1], C = 3 or 1 (one channel is repeated to three), with the
 * weights `params` (inceptionParamSpecs names) baked in. pytorch-fid resizes [0, 1] images and then maps
 * them to 2x - 1; here the images are already in [-1, 1] and resized directly, which is the same: the
 * resize is linear and each output pixel's weights sum to 1, so resize(2x - 1) = 2 resize(x) - 1.
 */
export function buildFidInception(g: Graph, params: ParamStore, x: Value): FidInceptionOutputs {
  const [n, c] = x.shape as [number, number];
  if (x.shape.length !== 4 || (c !== 1 && c !== 3)) {
    throw new GraphError('inception', `takes [N, 1 or 3, H, W] images, got [${x.shape}]`);
  }
  const sized = resizeBilinear(g, x, INCEPTION_SIZE); // [N, C, 299, 299]
  const rgb = g.expand(sized, [n, 3, INCEPTION_SIZE, INCEPTION_SIZE]);
  const map = trunk(graphLayers(g, params), rgb); // [N, 2048, 8, 8]
  const pool = g.reduceMean(map, [2, 3], false); // [N, 2048]
  const fcW = g.param(
    'fc.weight',
    [INCEPTION_CLASSES, INCEPTION_DIMS],
    paramOf(params, 'fc.weight', INCEPTION_CLASSES * INCEPTION_DIMS),
  );
  const logitsUnbiased = g.linear(pool, fcW);
  const fcB = g.param('fc.bias', [INCEPTION_CLASSES], paramOf(params, 'fc.bias', INCEPTION_CLASSES));
  return { pool, logits: g.add(logitsUnbiased, fcB), logitsUnbiased };
}

// ---- weights ----

export interface InceptionWeights {
  /** Every tensor of inceptionParamSpecs, by name. */
  readonly params: ParamStore;
  /** First 8 hex digits of the SHA-256 of the weights file, or of the tensors (eval/hash.ts paramsHash). */
  readonly hash: string;
  /** Where they came from (a path, or a description). */
  readonly source: string;
}

/**
 * The FID Inception's tensors checked against inceptionParamSpecs (every key present, every shape
 * right; `*.num_batches_tracked` ignored, any other extra key refused: these are not the FID weights).
 * `fileHash` labels weights read from a file; without it the tensors themselves are hashed.
 */
export function inceptionWeightsFromTensors(
  tensors: ReadonlyMap<string, SafeTensor>,
  source: string,
  fileHash?: string,
): InceptionWeights {
  const specs = inceptionParamSpecs();
  const missing = specs.filter((s) => !tensors.has(s.name)).map((s) => s.name);
  if (missing.length) {
    throw new InceptionWeightsError(
      source,
      `${missing.length} tensor(s) missing, e.g. ${missing.slice(0, 3).join(', ')}: not the FID Inception weights (${INCEPTION_WEIGHTS_FILE})?`,
    );
  }
  const params: ParamStore = new Map();
  for (const s of specs) {
    const t = tensors.get(s.name)!;
    if (t.shape.join(',') !== s.shape.join(',')) {
      throw new InceptionWeightsError(source, `${s.name} has shape [${t.shape}], expected [${s.shape}]`);
    }
    params.set(s.name, t.data);
  }
  const extra = [...tensors.keys()].filter((k) => !params.has(k) && !k.endsWith('.num_batches_tracked'));
  if (extra.length) {
    throw new InceptionWeightsError(
      source,
      `unexpected tensor(s) ${extra.slice(0, 3).join(', ')}: not the FID Inception weights (${INCEPTION_WEIGHTS_FILE})?`,
    );
  }
  return { params, hash: fileHash ?? paramsHash(params), source };
}

/** What to do when the weights are not there: where pytorch-fid's file comes from and how to pass it. */
function whereToGetWeights(): string {
  return (
    `FID uses pytorch-fid's Inception-v3 weights, ${INCEPTION_WEIGHTS_FILE} (about 91 MB, a release asset ` +
    'of github.com/mseitzer/pytorch-fid; a .safetensors copy of it works too). This project downloads ' +
    'nothing: fetch the file yourself and pass its path with --inception PATH or the DDPM_INCEPTION ' +
    'environment variable'
  );
}

/**
 * Reads the FID Inception's weights: a `.safetensors` file, or a PyTorch checkpoint (pytorch-fid's
 * `.pth`) through src/util/torchCheckpoint.ts. The hash is that of the file's bytes.
 */
export function loadInceptionWeights(path: string): InceptionWeights {
  if (!existsSync(path)) throw new InceptionWeightsError(path, `no such file. ${whereToGetWeights()}.`);
  const bytes: Uint8Array = readFileSync(path);
  const tensors = path.endsWith('.safetensors')
    ? parseSafeTensors(bytes, path).tensors
    : readTorchStateDict(bytes, path);
  return inceptionWeightsFromTensors(tensors, path, sha256Hex8(bytes));
}

/**
 * Deterministic weights for tests and benchmarks (no file), mirrored by reference/inception_fid.py:
 * every tensor from hashUniform(fnv1a(name)), scaled so activations stay O(1) through the network
 * (He-uniform convs, BatchNorm near the identity).
 */
export function hashInceptionWeights(): InceptionWeights {
  const params: ParamStore = new Map();
  for (const s of inceptionParamSpecs()) params.set(s.name, hashValue(s));
  return { params, hash: paramsHash(params), source: 'hash weights (reference/inception_fid.py)' };
}

function hashValue(s: InceptionParamSpec): Float32Array {
  const n = sizeOf(s.shape);
  const u = (scale: number) => hashUniform(fnv1a(s.name), n, scale);
  const onePlus = (v: Float32Array) => v.map((x) => 1 + x);
  switch (s.kind) {
    case 'convWeight':
      return u(Math.sqrt(6 / sizeOf(s.shape.slice(1))));
    case 'bnWeight':
      return onePlus(u(0.1));
    case 'bnBias':
    case 'bnMean':
      return u(0.1);
    case 'bnVar':
      return onePlus(u(0.5));
    case 'fcWeight':
      return u(Math.sqrt(3 / INCEPTION_DIMS));
    case 'fcBias':
      return u(0.5);
  }
}

// ---- the feature network ----

export interface InceptionFeatureOptions {
  /** Images per run of the compiled session (other counts are split and padded); default 16. */
  readonly batch?: number;
  /** ONNX Runtime intra-op threads (0 = one per core). */
  readonly threads?: number;
}

/** The inference ONNX model for a fixed batch and image size: input x, outputs pool and logits (unbiased). */
export function buildInceptionModel(params: ParamStore, inputShape: readonly number[]): Uint8Array {
  const g = new Graph();
  const net = buildFidInception(g, params, g.input('x', inputShape));
  // BatchNorm folded into the convs in float64, and any other graph pass that matches (graph/passes).
  runPasses(g, [net.pool, net.logitsUnbiased], 'all', { constantWeights: true });
  return toOnnx(g, {
    outputs: { pool: net.pool, logits: net.logitsUnbiased },
    params: 'initializer',
    name: 'fid-inception-v3',
  });
}

/**
 * The FID Inception as a FeatureNet: features = pool_3 (2048), logits = the fc WITHOUT its bias (1008),
 * as the original Inception Score code and torch-fidelity compute IS. One session of a fixed batch is
 * compiled for the image size of the first call and rebuilt when the size changes. `weights`: loaded
 * weights, or the path of the weights file (undefined: an error saying where to get it).
 */
export async function inceptionFeatureNet(
  engine: Engine,
  weights: InceptionWeights | string | undefined,
  opts: InceptionFeatureOptions = {},
): Promise<FeatureNet> {
  if (weights === undefined)
    throw new InceptionWeightsError('inception', `no weights given. ${whereToGetWeights()}.`);
  const w = typeof weights === 'string' ? loadInceptionWeights(weights) : weights;
  const batch = opts.batch ?? 16;
  let current: { key: string; session: EngineSession; xbuf: Float32Array } | null = null;

  const sessionFor = async (shape: readonly number[]) => {
    const key = shape.join('x');
    if (current?.key === key) return current;
    await current?.session.release();
    current = null;
    const session = await engine.createSession(buildInceptionModel(w.params, [batch, ...shape]), {
      threads: opts.threads ?? 0,
    });
    engine.collectGarbage?.(); // the model's bytes (95 MB of weights in them): see src/engine/gc.ts
    current = { key, session, xbuf: new Float32Array(batch * sizeOf(shape)) };
    return current;
  };

  const extract = async (x: Tensor): Promise<FeatureBatch> => {
    const [n, c] = x.shape as [number, number];
    if (x.shape.length !== 4 || (c !== 1 && c !== 3)) {
      throw new Error(`inception-v3-fid: takes [N, 1 or 3, H, W] images in [-1, 1], got [${x.shape}]`);
    }
    if (n === 0) return { features: new Float32Array(0), logits: new Float32Array(0) };
    const s = await sessionFor(x.shape.slice(1));
    const per = s.xbuf.length / batch;
    const features = new Float32Array(n * INCEPTION_DIMS);
    const logits = new Float32Array(n * INCEPTION_CLASSES);
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      s.xbuf.fill(0, m * per);
      s.xbuf.set(x.data.subarray(start * per, (start + m) * per));
      const res = await s.session.run({ x: { data: s.xbuf, shape: [batch, ...x.shape.slice(1)] } });
      features.set(res.pool!.data.subarray(0, m * INCEPTION_DIMS), start * INCEPTION_DIMS);
      logits.set(res.logits!.data.subarray(0, m * INCEPTION_CLASSES), start * INCEPTION_CLASSES);
    }
    return { features, logits };
  };

  // One extraction at a time: they share the session's input buffer.
  let queue: Promise<unknown> = Promise.resolve();
  return {
    name: 'inception-v3-fid',
    weightsHash: w.hash,
    dims: INCEPTION_DIMS,
    classes: INCEPTION_CLASSES,
    preprocess: INCEPTION_PREPROCESS,
    channels: 3,
    extract(x) {
      const run = queue.then(() => extract(x));
      queue = run.catch(() => undefined);
      return run;
    },
    async release() {
      await queue;
      await current?.session.release();
      current = null;
    },
  };
}
