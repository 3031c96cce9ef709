// The graph builder: symbolic tensors with static shapes and dtypes, recorded as ONNX-style nodes.
// One model definition is written against this API; `grad` (autodiff.ts) appends the backward
// nodes to the same graph, and `toOnnx` (onnx.ts) serialises any set of outputs. Every op checks
// its operand shapes when it is built and throws an error naming the op and the shapes.

/** int8, uint8, int32: quantized constants (QuantizeLinear / DequantizeLinear graphs; passes/quantizeInt8.ts). */
export type DType = 'float32' | 'int64' | 'int8' | 'uint8' | 'int32';

export type ConstData = Float32Array | BigInt64Array | Int8Array | Uint8Array | Int32Array;

/** The element type of a constant's values. */
function dtypeOf(data: ConstData): DType {
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int32Array) return 'int32';
  return 'float32';
}

/** The custom-op domain of this project's fused kernels (native/ortnative.cc registers it). */
export const FUSED_DOMAIN = 'ai.ddpm';

/** Fused kernels an engine may run beyond standard ONNX, by the name of their op in FUSED_DOMAIN. */
/**
 * The native engine's kernels (domain ai.ddpm, native/ortnative.cc), all that a graph may use, and its
 * capabilities: GroupNormSiluBlockedAnyGroups = the blocked GroupNormSilu takes groups that straddle blocks;
 * BlockedTraining = GroupNormSiluGrad, DropoutMul and ConvWeightGrad take the blocked layout too;
 * WinogradF4 = the Winograd kernels take F(4x4, 3x3) (36-position filters, attribute m = 4) beside F(2x2, 3x3);
 * WinogradBlock8 = they take the 8-channel NCHWc blocks of AVX2 builds (attribute block = 8) beside 16;
 * WinogradBf16 = ConvWinogradBf16 computes (a build for a CPU with AVX-512 BF16).
 */
export const FUSED_KERNELS = [
  'GroupNormSilu',
  'GroupNormSiluBlockedAnyGroups',
  'BlockedTraining',
  'GroupNormSiluShift',
  'GroupNormSiluRecompute',
  'Im2col',
  'DropoutMul',
  'BlockFilter',
  'SumTranspose',
  'ConvWeightGrad',
  'Attention',
  'ConvWinograd',
  'WinogradFilter',
  'ConvWinogradWeightGrad',
  'WinogradF4',
  'WinogradBlock8',
  'ConvWinogradBf16',
  'WinogradBf16',
] as const;
export type FusedKernel = (typeof FUSED_KERNELS)[number];

/** The output tile m of Winograd F(m x m, 3x3). */
export type WinogradTile = 2 | 4;

/**
 * Whether c channels in `groups` groups fit the fused GroupNorm's blocked form at this NCHWc block size
 * (8 or 16): whole blocks, and each group within one block or spanning whole blocks, or (`anyGroups`, a
 * kernel with GroupNormSiluBlockedAnyGroups) any groups.
 */
export function groupsTileBlocks(c: number, groups: number, block: number, anyGroups = false): boolean {
  const cg = c / groups;
  return (
    (block === 8 || block === 16) && c % block === 0 && (anyGroups || block % cg === 0 || cg % block === 0)
  );
}

/** Whether attention on q [N, C, L] and v [N, Cv, L] in `heads` heads fits the native Attention kernel. */
export function attentionFusable(q: readonly number[], v: readonly number[], heads: number): boolean {
  const [c, l] = [q[1]!, q[2]!];
  return (
    q.length === 3 && l % 16 === 0 && c % heads === 0 && (c / heads) % 8 === 0 && (v[1]! / heads) % 8 === 0
  );
}

export interface Value {
  readonly id: number;
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** The node that produced it; undefined for inputs, parameters and constants. */
  readonly producer?: Node;
}

export type Attr = number | string | readonly number[] | { readonly floats: readonly number[] };

/**
 * A composite whose gradient is one rule instead of its nodes' rules (autodiff.ts, FUSED_RULES): set
 * as `meta.fused` on the composite's last node; its inner nodes then get no gradient of their own.
 */
export interface Fused {
  readonly kind: 'groupNorm';
  /** The composite's inputs, in the order the rule returns their gradients. */
  readonly inputs: readonly Value[];
  /** Forward values the rule reuses. */
  readonly saved: Readonly<Record<string, Value>>;
  readonly attrs: Readonly<Record<string, number>>;
}

/** What a GroupNorm composite computes, on its last node as `meta.groupNorm` (Graph.groupNorm). */
export interface GroupNormOf {
  readonly x: Value;
  readonly gamma: Value;
  readonly beta: Value;
  readonly groups: number;
  readonly eps: number;
  readonly impl: 'inference' | 'training';
}

/** What an attention composite computes, on its last node as `meta.attention` (Graph.attention). */
export interface AttentionOf {
  readonly q: Value;
  readonly k: Value;
  readonly v: Value;
  readonly heads: number;
  readonly scale: number;
}

export interface Node {
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
  /** Node-local facts the gradient rule needs (e.g. which primitive this node implements). */
  readonly meta?: Readonly<Record<string, unknown>>;
  /** ONNX operator domain ('' = the default ai.onnx domain), for runtime-specific ops. */
  readonly domain?: string;
}

export type Leaf =
  | { readonly kind: 'input'; readonly value: Value }
  | { readonly kind: 'param'; readonly value: Value; readonly data: Float32Array }
  | {
      readonly kind: 'const';
      readonly value: Value;
      readonly data: ConstData;
      /** Serialised as an initializer that is also a graph input (see Graph.opaqueConstant). */
      readonly opaque?: boolean;
    };

export interface ConvOptions {
  readonly strides?: readonly [number, number];
  /** [top, left, bottom, right] as ONNX. */
  readonly pads?: readonly [number, number, number, number];
  /** Channel groups (ONNX `group`): input and output channels split into this many independent convs. */
  readonly group?: number;
}

/** A pooling window (MaxPool, AveragePool), as ONNX: no dilation, floor of the output size. */
export interface PoolOptions {
  readonly kernel: readonly [number, number];
  readonly strides?: readonly [number, number];
  /** [top, left, bottom, right] as ONNX. */
  readonly pads?: readonly [number, number, number, number];
}

export function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function numel(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

export class GraphError extends Error {
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'GraphError';
  }
}

/** Numpy-style broadcast of two shapes, or an error naming the op. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new GraphError(op, `cannot broadcast ${shapeStr(a)} with ${shapeStr(b)}`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly leaves: Leaf[] = [];
  private nextId = 0;
  private readonly names = new Set<string>();
  private readonly constCache = new Map<string, Value>();
  /**
   * The target engine's fused kernels (Engine.fusedKernels) that this graph's builders and gradient rules
   * may emit; empty = standard ONNX only. Set before building.
   */
  fused: readonly FusedKernel[] = [];
  /**
   * Largest im2col patch tensor (bytes) of one conv weight gradient (autodiff.ts); larger ones are made a
   * slice of the batch at a time. 64 MB: measured on the CIFAR-10 U-Net's training step at batch 64 (peak
   * resident memory 4601 MB at 128 MB, 3829 at 64, 3856 at 16 and 48; no slower at batch 16 or 64).
   */
  maxPatchBytes = 64 * 2 ** 20;
  /** The nodes that `grad` (autodiff.ts) recorded: a training graph's backward, for passes that treat it apart. */
  readonly gradientNodes = new Set<Node>();
  /**
   * Reshapes write their leading dimension as 0 (copy the input's) or -1 (the batch folded in), so a graph
   * built at one batch size runs at any (toOnnx's dynamicBatch; see reshapeTarget). Set before building.
   */
  keepLeadingDim = false;
  /** Prefix for auto-generated names, set by `scope`. */
  private prefix = '';

  private newValue(name: string | undefined, shape: readonly number[], dtype: DType, producer?: Node): Value {
    const id = this.nextId++;
    let nm = name ?? `${this.prefix}v${id}`;
    if (this.names.has(nm)) {
      if (name !== undefined) throw new GraphError('graph', `duplicate value name '${name}'`);
      nm = `${nm}_${id}`;
    }
    this.names.add(nm);
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new GraphError('graph', `bad dimension in ${shapeStr(shape)}`);
    }
    return { id, name: nm, shape: [...shape], dtype, producer };
  }

  /** Run fn with auto-generated names prefixed (readable ONNX graphs). */
  scope<T>(name: string, fn: () => T): T {
    const saved = this.prefix;
    this.prefix = `${saved}${name}/`;
    try {
      return fn();
    } finally {
      this.prefix = saved;
    }
  }

  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Value {
    const v = this.newValue(name, shape, dtype);
    this.leaves.push({ kind: 'input', value: v });
    return v;
  }

  /**
   * The dropout masks among the inputs (by value id): rate p and the site's index in the model, which
   * names its values' hash (src/train/dropoutMask.ts; the graph pass kernel-dropout makes them in-graph).
   */
  readonly dropoutMasks = new Map<number, { readonly p: number; readonly site: number }>();

  /** A dropout mask input (values 0 or 1/(1-p)) of the site-th dropout of the model. */
  dropoutMaskInput(name: string, shape: readonly number[], p: number, site: number): Value {
    const v = this.input(name, shape);
    this.dropoutMasks.set(v.id, { p, site });
    return v;
  }

  param(name: string, shape: readonly number[], data: Float32Array): Value {
    if (data.length !== numel(shape)) {
      throw new GraphError('param', `'${name}' has ${data.length} values but shape ${shapeStr(shape)}`);
    }
    const v = this.newValue(name, shape, 'float32');
    this.leaves.push({ kind: 'param', value: v, data });
    return v;
  }

  constant(data: ConstData, shape: readonly number[]): Value {
    if (data.length !== numel(shape)) {
      throw new GraphError('constant', `${data.length} values for shape ${shapeStr(shape)}`);
    }
    const dtype = dtypeOf(data);
    const small = data.length <= 16;
    const key = small
      ? `${dtype}|${shape.join(',')}|${Array.from(data as ArrayLike<number | bigint>).join(',')}`
      : '';
    if (small) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const v = this.newValue(undefined, shape, dtype);
    this.leaves.push({ kind: 'const', value: v, data });
    if (small) this.constCache.set(key, v);
    return v;
  }

  /**
   * A constant that ONNX Runtime must not see as one: an initializer that is also a graph input (it
   * could be overridden at run time), so no graph optimiser folds it or rewrites the nodes that use
   * it; it is never fed. For kernels that run faster as the plain op than as ORT's rewrite.
   */
  opaqueConstant(data: Float32Array, shape: readonly number[]): Value {
    if (data.length !== numel(shape)) {
      throw new GraphError('constant', `${data.length} values for shape ${shapeStr(shape)}`);
    }
    const make = () => {
      const v = this.newValue(undefined, shape, 'float32');
      this.leaves.push({ kind: 'const', value: v, data, opaque: true });
      return v;
    };
    // Small kernels: one input per distinct kernel.
    return data.length <= 256 ? this.memo(`opaque|${shape.join(',')}|${data.join(',')}`, make) : make();
  }

  /** The value `make` builds, built once per graph and key (shared constants of gradient rules). */
  memo(key: string, make: () => Value): Value {
    let v = this.constCache.get(key);
    if (!v) {
      v = make();
      this.constCache.set(key, v);
    }
    return v;
  }

  scalar(x: number): Value {
    return this.constant(Float32Array.of(x), []);
  }

  ints(xs: readonly number[]): Value {
    return this.constant(BigInt64Array.from(xs.map((x) => BigInt(x))), [xs.length]);
  }

  /** Record a node; outputs are created from the given shapes. */
  node(
    op: string,
    inputs: readonly Value[],
    outShapes: readonly (readonly number[])[],
    attrs: Record<string, Attr> = {},
    meta?: Record<string, unknown>,
    outDtypes?: readonly DType[],
    domain?: string,
  ): Value[] {
    const outputs: Value[] = [];
    const node: Node = domain
      ? { op, inputs, outputs, attrs, meta, domain }
      : { op, inputs, outputs, attrs, meta };
    outShapes.forEach((s, i) => {
      outputs.push(this.newValue(undefined, s, outDtypes?.[i] ?? 'float32', node));
    });
    this.nodes.push(node);
    return outputs;
  }

  private unary(op: string, x: Value): Value {
    return this.node(op, [x], [x.shape])[0]!;
  }

  private binary(op: string, a: Value, b: Value): Value {
    return this.node(op, [a, b], [broadcastShapes(op, a.shape, b.shape)])[0]!;
  }

  // ---- elementwise ----
  add(a: Value, b: Value): Value {
    return this.binary('Add', a, b);
  }
  sub(a: Value, b: Value): Value {
    return this.binary('Sub', a, b);
  }
  mul(a: Value, b: Value): Value {
    return this.binary('Mul', a, b);
  }
  div(a: Value, b: Value): Value {
    return this.binary('Div', a, b);
  }
  neg(x: Value): Value {
    return this.unary('Neg', x);
  }
  exp(x: Value): Value {
    return this.unary('Exp', x);
  }
  log(x: Value): Value {
    return this.unary('Log', x);
  }
  sqrt(x: Value): Value {
    return this.unary('Sqrt', x);
  }
  sin(x: Value): Value {
    return this.unary('Sin', x);
  }
  cos(x: Value): Value {
    return this.unary('Cos', x);
  }
  tanh(x: Value): Value {
    return this.unary('Tanh', x);
  }
  sigmoid(x: Value): Value {
    return this.unary('Sigmoid', x);
  }
  /** SiLU / swish: x * sigmoid(x). */
  silu(x: Value): Value {
    const s = this.sigmoid(x);
    return this.node('Mul', [x, s], [x.shape], {}, { silu: true })[0]!;
  }
  /** max(x, 0). Inference only: autodiff has no rule for it. */
  relu(x: Value): Value {
    return this.unary('Relu', x);
  }
  square(x: Value): Value {
    return this.mul(x, x);
  }
  scale(x: Value, s: number): Value {
    return this.mul(x, this.scalar(s));
  }

  // ---- linear algebra ----
  matmul(a: Value, b: Value): Value {
    if (a.shape.length < 2 || b.shape.length < 2) {
      throw new GraphError(
        'MatMul',
        `operands need rank >= 2, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`,
      );
    }
    const [m, k] = a.shape.slice(-2) as [number, number];
    const [k2, n] = b.shape.slice(-2) as [number, number];
    if (k !== k2)
      throw new GraphError('MatMul', `inner dimensions differ: ${shapeStr(a.shape)} @ ${shapeStr(b.shape)}`);
    const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.node('MatMul', [a, b], [[...batch, m, n]])[0]!;
  }

  /** y = x @ w^T + b with torch's Linear layout: x [..., in], w [out, in], b [out]. */
  linear(x: Value, w: Value, b?: Value): Value {
    const y = this.matmul(x, this.transpose(w, [1, 0]));
    return b ? this.add(y, b) : y;
  }

  conv(x: Value, w: Value, b: Value | undefined, opts: ConvOptions = {}): Value {
    const [sh, sw] = opts.strides ?? [1, 1];
    const [pt, pl, pb, pr] = opts.pads ?? [0, 0, 0, 0];
    if (x.shape.length !== 4 || w.shape.length !== 4) {
      throw new GraphError(
        'Conv',
        `expects 4-d input and weight, got ${shapeStr(x.shape)} and ${shapeStr(w.shape)}`,
      );
    }
    const [n, c, h, wd] = x.shape as [number, number, number, number];
    const [o, ci, kh, kw] = w.shape as [number, number, number, number];
    const group = opts.group ?? 1;
    if (ci * group !== c) {
      throw new GraphError(
        'Conv',
        `input has ${c} channels, weight ${shapeStr(w.shape)} with group ${group} expects ${ci * group}`,
      );
    }
    if (o % group !== 0)
      throw new GraphError('Conv', `${o} output channels not divisible into ${group} groups`);
    if (b && (b.shape.length !== 1 || b.shape[0] !== o)) {
      throw new GraphError('Conv', `bias ${shapeStr(b.shape)} does not match ${o} output channels`);
    }
    const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
    const ow = Math.floor((wd + pl + pr - kw) / sw) + 1;
    if (oh <= 0 || ow <= 0)
      throw new GraphError('Conv', `kernel ${kh}x${kw} larger than padded input ${shapeStr(x.shape)}`);
    const attrs = { kernel_shape: [kh, kw], strides: [sh, sw], pads: [pt, pl, pb, pr], group };
    return this.node('Conv', b ? [x, w, b] : [x, w], [[n, o, oh, ow]], attrs)[0]!;
  }

  /** ConvTranspose with ONNX semantics (used by the conv input-gradient rule). */
  convTranspose(
    x: Value,
    w: Value,
    opts: {
      strides: [number, number];
      pads: [number, number, number, number];
      outputPadding?: [number, number];
    },
  ): Value {
    const [n, c, h, wd] = x.shape as [number, number, number, number];
    const [ci, o, kh, kw] = w.shape as [number, number, number, number];
    if (ci !== c)
      throw new GraphError('ConvTranspose', `input has ${c} channels, weight ${shapeStr(w.shape)}`);
    const [sh, sw] = opts.strides;
    const [pt, pl, pb, pr] = opts.pads;
    const [oph, opw] = opts.outputPadding ?? [0, 0];
    const oh = sh * (h - 1) + oph + kh - pt - pb;
    const ow = sw * (wd - 1) + opw + kw - pl - pr;
    const attrs = {
      kernel_shape: [kh, kw],
      strides: [sh, sw],
      pads: [pt, pl, pb, pr],
      output_padding: [oph, opw],
    };
    return this.node('ConvTranspose', [x, w], [[n, o, oh, ow]], attrs)[0]!;
  }

  // ---- shape ops ----
  reshape(x: Value, shape: readonly number[]): Value {
    let known = 1;
    let infer = -1;
    const out = [...shape];
    out.forEach((d, i) => {
      if (d === -1) {
        if (infer >= 0) throw new GraphError('Reshape', `more than one -1 in ${shapeStr(shape)}`);
        infer = i;
      } else known *= d;
    });
    const total = numel(x.shape);
    if (infer >= 0) {
      if (total % known !== 0)
        throw new GraphError('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
      out[infer] = total / known;
    }
    if (numel(out) !== total)
      throw new GraphError('Reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    if (out.join(',') === x.shape.join(',')) return x;
    // A reshape of a reshape is one reshape of the original (fewer nodes for ORT to schedule).
    const src = x.producer?.op === 'Reshape' ? x.producer.inputs[0]! : x;
    if (out.join(',') === src.shape.join(',')) return src;
    return this.node('Reshape', [src, this.ints(this.reshapeTarget(src, out))], [out])[0]!;
  }

  /**
   * The shape a Reshape node is given: `out`, or with keepLeadingDim its leading dimension written as 0
   * (copied from the input) when they match, else as -1 (the batch folded into it: every other dimension
   * of the graphs built this way is independent of the batch size).
   */
  private reshapeTarget(src: Value, out: readonly number[]): number[] {
    if (!this.keepLeadingDim || out.length === 0) return [...out];
    return [out[0] === src.shape[0] ? 0 : -1, ...out.slice(1)];
  }

  transpose(x: Value, perm: readonly number[]): Value {
    if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      throw new GraphError(
        'Transpose',
        `perm [${perm}] is not a permutation of the axes of ${shapeStr(x.shape)}`,
      );
    }
    if (perm.every((p, i) => p === i)) return x;
    // A transpose of a transpose is one transpose of the original (none when they cancel).
    if (x.producer?.op === 'Transpose') {
      const inner = x.producer.attrs.perm as readonly number[];
      return this.transpose(
        x.producer.inputs[0]!,
        perm.map((p) => inner[p]!),
      );
    }
    return this.node('Transpose', [x], [perm.map((p) => x.shape[p]!)], { perm: [...perm] })[0]!;
  }

  concat(xs: readonly Value[], axis: number): Value {
    const r = xs[0]!.shape.length;
    const ax = axis < 0 ? axis + r : axis;
    const out = [...xs[0]!.shape];
    out[ax] = 0;
    for (const x of xs) {
      if (x.shape.length !== r || x.shape.some((d, i) => i !== ax && d !== xs[0]!.shape[i])) {
        throw new GraphError(
          'Concat',
          `shapes ${xs.map((v) => shapeStr(v.shape)).join(', ')} differ off axis ${ax}`,
        );
      }
      out[ax]! += x.shape[ax]!;
    }
    return this.node('Concat', xs, [out], { axis: ax })[0]!;
  }

  /** Zero padding; pads = [begin_0, ..., begin_{r-1}, end_0, ..., end_{r-1}] as ONNX. */
  pad(x: Value, pads: readonly number[]): Value {
    const r = x.shape.length;
    if (pads.length !== 2 * r) throw new GraphError('Pad', `needs ${2 * r} pads for ${shapeStr(x.shape)}`);
    const out = x.shape.map((d, i) => d + pads[i]! + pads[i + r]!);
    return this.node('Pad', [x, this.ints(pads)], [out])[0]!;
  }

  /** Slice with static starts/ends (clamped as ONNX), step 1 or -1. */
  slice(
    x: Value,
    axes: readonly number[],
    starts: readonly number[],
    ends: readonly number[],
    steps?: readonly number[],
    meta?: Record<string, unknown>,
  ): Value {
    const out = [...x.shape];
    const st = steps ?? axes.map(() => 1);
    axes.forEach((a, i) => {
      const d = x.shape[a]!;
      const step = st[i]!;
      if (step === 1) {
        const s = clamp(norm(starts[i]!, d), 0, d);
        const e = clamp(norm(ends[i]!, d), 0, d);
        out[a] = Math.max(0, e - s);
      } else if (step === -1) {
        const s = clamp(norm(starts[i]!, d), -1, d - 1);
        const e = clamp(norm(ends[i]!, d), -1, d - 1);
        out[a] = Math.max(0, s - e);
      } else throw new GraphError('Slice', `only steps of 1 and -1 are supported, got ${step}`);
    });
    const ins = [x, this.ints(starts), this.ints(ends), this.ints(axes), this.ints(st)];
    return this.node('Slice', ins, [out], {}, meta)[0]!;
  }

  expand(x: Value, shape: readonly number[]): Value {
    const out = broadcastShapes('Expand', x.shape, shape);
    if (out.join(',') === x.shape.join(',')) return x;
    return this.node('Expand', [x, this.ints(shape)], [out])[0]!;
  }

  reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
    const r = x.shape.length;
    const ax = axes.map((a) => (a < 0 ? a + r : a));
    const out = keepdims
      ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !ax.includes(i));
    if (ax.length === 0) return x;
    // Contiguous trailing-or-unit-inner axes reduce as the last axis of a 2-d view: ORT's ReduceSum over
    // a middle axis costs ~0.3 ms even on a few thousand values (GroupNorm's backward has ~100 such),
    // over the last axis of [outer, reduced] a third of that; a reduction of size 1 is a reshape.
    const sorted = [...ax].sort((a, b) => a - b);
    const [lo, hi] = [sorted[0]!, sorted.at(-1)!];
    if (hi - lo + 1 === sorted.length) {
      const red = numel(x.shape.slice(lo, hi + 1));
      if (red === 1) return this.reshape(x, out);
      if (numel(x.shape.slice(hi + 1)) === 1 && sorted.length < r) {
        const outer = numel(x.shape.slice(0, lo));
        const flat = this.reshape(x, [outer, red]);
        const s = this.node('ReduceSum', [flat, this.ints([1])], [[outer]], { keepdims: 0 })[0]!;
        return this.reshape(s, out);
      }
    }
    return this.node('ReduceSum', [x, this.ints(ax)], [out], { keepdims: keepdims ? 1 : 0 })[0]!;
  }

  reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
    const r = x.shape.length;
    const count = axes.reduce((a, ax) => a * x.shape[ax < 0 ? ax + r : ax]!, 1);
    return this.scale(this.reduceSum(x, axes, keepdims), 1 / count);
  }

  softmax(x: Value, axis = -1): Value {
    const ax = axis < 0 ? axis + x.shape.length : axis;
    return this.node('Softmax', [x], [x.shape], { axis: ax })[0]!;
  }

  /**
   * BatchNorm with running statistics (inference; torch's eval mode): gamma (x - mean) / sqrt(var + eps) +
   * beta per channel of x [N, C, ...], as ONNX BatchNormalization. Inference only: no gradient rule.
   */
  batchNorm(x: Value, gamma: Value, beta: Value, mean: Value, variance: Value, eps: number): Value {
    const c = x.shape[1]!;
    for (const v of [gamma, beta, mean, variance]) {
      if (v.shape.join(',') !== `${c}`)
        throw new GraphError('BatchNormalization', `parameter ${shapeStr(v.shape)} for ${c} channels`);
    }
    const attrs = { epsilon: { floats: [eps] } };
    return this.node('BatchNormalization', [x, gamma, beta, mean, variance], [x.shape], attrs)[0]!;
  }

  /** Normalise each (n, c) slice of x [N, C, ...] to zero mean, unit variance (no affine). */
  instanceNorm(x: Value, eps: number, scale?: Value, bias?: Value): Value {
    const c = x.shape[1]!;
    for (const v of [scale, bias]) {
      if (v && v.shape.join(',') !== `${c}`) {
        throw new GraphError('InstanceNormalization', `scale/bias ${shapeStr(v.shape)} for ${c} channels`);
      }
    }
    const sc = scale ?? this.constant(new Float32Array(c).fill(1), [c]);
    const bi = bias ?? this.constant(new Float32Array(c), [c]);
    return this.node('InstanceNormalization', [x, sc, bi], [x.shape], { epsilon: { floats: [eps] } })[0]!;
  }

  /**
   * Normalise x [..., D] over its last axis (no affine) with ONNX LayerNormalization, which also
   * outputs the inverse standard deviation [..., 1]: the gradient rule reuses it instead of
   * recomputing the statistics (four fewer passes over the activations per GroupNorm).
   */
  normalizeLastAxis(x: Value, eps: number): Value {
    const d = x.shape.at(-1)!;
    const ones = this.constant(new Float32Array(d).fill(1), [d]);
    const stat = [...x.shape.slice(0, -1), 1];
    const [y] = this.node('LayerNormalization', [x, ones], [x.shape, stat, stat], {
      axis: -1,
      epsilon: { floats: [eps] },
    });
    return y!;
  }

  /**
   * GroupNorm of x [N, C, H, W] with per-channel affine (gamma, beta [C]). `impl`:
   * - 'inference': one channel per group is InstanceNormalization with the affine built in (one
   *   kernel); wider groups normalise with LayerNormalization, which ORT runs on both threads where
   *   its InstanceNormalization runs on one ([64, 32, 2048]: 2.4 against 3.3 ms), then the affine.
   * - 'training': LayerNormalization, whose saved 1/sigma the fused backward rule reuses.
   */
  groupNorm(
    x: Value,
    groups: number,
    gamma: Value,
    beta: Value,
    eps: number,
    impl: 'inference' | 'training' = 'inference',
  ): Value {
    const [n, c] = x.shape as [number, number];
    if (c % groups !== 0)
      throw new GraphError('GroupNorm', `${c} channels not divisible into ${groups} groups`);
    const spatial = x.shape.slice(2);
    // The composite's last node records what it computes (graph passes match and rebuild it).
    const groupNorm: GroupNormOf = { x, gamma, beta, groups, eps, impl };
    if (groups === c && impl === 'inference') {
      for (const v of [gamma, beta]) {
        if (v.shape.join(',') !== `${c}`)
          throw new GraphError('GroupNorm', `scale/bias ${shapeStr(v.shape)} for ${c} channels`);
      }
      const attrs = { epsilon: { floats: [eps] } };
      return this.node('InstanceNormalization', [x, gamma, beta], [x.shape], attrs, { groupNorm })[0]!;
    }
    const xg = this.reshape(x, [n, groups, -1]); // [N, G, C/G*H*W]
    const yg = this.normalizeLastAxis(xg, eps); // [N, G, C/G*H*W]
    const y = this.reshape(yg, x.shape); // [N, C, H, W]
    const bshape = [c, ...spatial.map(() => 1)];
    const scaled = this.mul(y, this.reshape(gamma, bshape));
    const b = this.reshape(beta, bshape);
    switch (impl) {
      case 'inference':
        return this.node('Add', [scaled, b], [x.shape], {}, { groupNorm })[0]!;
      case 'training': {
        // The whole GroupNorm differentiates as one rule, reusing LayerNormalization's 1/sigma.
        const rstd = yg.producer!.outputs[2]!; // [N, G, 1]
        const fused: Fused = {
          kind: 'groupNorm',
          inputs: [x, gamma, beta],
          saved: { y, rstd },
          attrs: { groups },
        };
        return this.node('Add', [scaled, b], [x.shape], {}, { fused, groupNorm })[0]!;
      }
    }
  }

  /**
   * SiLU(GroupNorm(x) * gamma + beta) as one node of the custom-op domain 'ai.ddpm' (FUSED_DOMAIN),
   * which only the native engine runs (native/ortnative.cc: one pass over memory where ONNX Runtime
   * runs LayerNormalization, Mul, Add and QuickGelu); its gradient is that engine's GroupNormSiluGrad.
   * `block` 8 or 16: x and the result are in ORT's blocked NCHWc layout (blocked.ts emits that form;
   * see groupsTileBlocks), which has no gradient. With `shift` [N, C]: SiLU(GroupNorm(x + shift)), the
   * shift broadcast over the spatial axes and never written out (GroupNormSiluShift; no gradient).
   */
  groupNormSiluFused(
    x: Value,
    groups: number,
    gamma: Value,
    beta: Value,
    eps: number,
    block = 0,
    shift?: Value,
  ): Value {
    const c = x.shape[1]!;
    if (x.shape.length < 3 || c % groups !== 0) {
      throw new GraphError(
        'GroupNormSilu',
        `input ${shapeStr(x.shape)} does not split into ${groups} groups`,
      );
    }
    if (block && !groupsTileBlocks(c, groups, block, this.fused.includes('GroupNormSiluBlockedAnyGroups'))) {
      throw new GraphError(
        'GroupNormSilu',
        `${c} channels in ${groups} groups do not tile blocks of ${block}`,
      );
    }
    for (const v of [gamma, beta]) {
      if (shapeStr(v.shape) !== shapeStr([c])) {
        throw new GraphError('GroupNormSilu', `gamma/beta ${shapeStr(v.shape)} for ${c} channels`);
      }
    }
    if (shift && shapeStr(shift.shape) !== shapeStr([x.shape[0]!, c])) {
      throw new GraphError('GroupNormSilu', `shift ${shapeStr(shift.shape)} for input ${shapeStr(x.shape)}`);
    }
    const attrs = { groups, epsilon: { floats: [eps] }, block };
    return this.node(
      shift ? 'GroupNormSiluShift' : 'GroupNormSilu',
      shift ? [x, gamma, beta, shift] : [x, gamma, beta],
      [x.shape],
      attrs,
      undefined,
      undefined,
      FUSED_DOMAIN,
    )[0]!;
  }

  /**
   * Scaled dot-product attention (torch's F.scaled_dot_product_attention, diffusers' attention processor)
   * on channels-first q, k, v [N, C, L]: `heads` heads of d = C/heads channels (channel = head * d + j),
   * each softmax(scale q_h^T k_h) over the L keys applied to v_h; returns [N, C, L]. Channels-first, so no
   * activation is transposed: ORT folds the transposes of q and of the weights into its matmuls. The last
   * node records meta.attention (graph passes match and rebuild it). scale: default 1/sqrt(d).
   */
  attention(q: Value, k: Value, v: Value, heads = 1, scale?: number): Value {
    const [n, c, l] = q.shape as [number, number, number];
    if (q.shape.length !== 3 || k.shape.join(',') !== q.shape.join(',') || v.shape.length !== 3) {
      throw new GraphError(
        'attention',
        `q, k, v must be [N, C, L] (k as q): ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`,
      );
    }
    const cv = v.shape[1]!;
    if (v.shape[0] !== n || v.shape[2] !== l || c % heads !== 0 || cv % heads !== 0)
      throw new GraphError(
        'attention',
        `v ${shapeStr(v.shape)} or ${heads} heads do not fit q ${shapeStr(q.shape)}`,
      );
    const d = c / heads;
    const s = scale ?? 1 / Math.sqrt(d);
    const attention: AttentionOf = { q, k, v, heads, scale: s };
    const scaled = (x: Value) => (s === 1 ? x : this.scale(x, s));
    if (heads === 1) {
      const w = this.softmax(scaled(this.matmul(this.transpose(q, [0, 2, 1]), k)), -1); // [N, L(query), L(key)]
      const wt = this.transpose(w, [0, 2, 1]);
      return this.node('MatMul', [v, wt], [[n, cv, l]], {}, { attention })[0]!; // [N, C, L]
    }
    const split = (a: Value) => this.reshape(a, [n, heads, a.shape[1]! / heads, l]); // [N, heads, d, L]
    const scores = this.matmul(this.transpose(split(q), [0, 1, 3, 2]), split(k)); // [N, heads, L(q), L(k)]
    const w = this.softmax(scaled(scores), -1);
    const ctx = this.matmul(split(v), this.transpose(w, [0, 1, 3, 2])); // [N, heads, dv, L]
    const out = [n, cv, l];
    return this.node('Reshape', [ctx, this.ints(this.reshapeTarget(ctx, out))], [out], {}, { attention })[0]!;
  }

  /**
   * attention() as the native engine's one Attention kernel (graph pass fuse-attention): the same
   * softmax(scale q_h^T k_h) v_h per head, the heads as samples ([N heads, d, L]), the [L, L] weights never in
   * memory; in training graphs its gradient is one AttentionGrad. Needs L a multiple of 16 and d, dv multiples
   * of 8 (attentionFusable).
   */
  attentionFused(q: Value, k: Value, v: Value, heads: number, scale: number): Value {
    const [n, , l] = q.shape as [number, number, number];
    const cv = v.shape[1]!;
    if (!attentionFusable(q.shape, v.shape, heads)) {
      throw new GraphError(
        'Attention',
        `q ${shapeStr(q.shape)}, v ${shapeStr(v.shape)} in ${heads} heads: the kernel needs L a multiple of 16 and channels per head a multiple of 8`,
      );
    }
    const split = (a: Value) => (heads === 1 ? a : this.reshape(a, [n * heads, a.shape[1]! / heads, l])); // [N h, d, L]
    const [o] = this.node(
      'Attention',
      [split(q), split(k), split(v)],
      [
        [n * heads, cv / heads, l],
        [n * heads, l],
      ],
      { scale: { floats: [scale] } },
      undefined,
      undefined,
      FUSED_DOMAIN,
    ) as [Value, Value];
    return heads === 1 ? o : this.reshape(o, [n, cv, l]); // [N, Cv, L]
  }

  /**
   * A 3x3, stride-1, pad-1 convolution as Winograd F(m x m, 3x3) (native ConvWinograd; inference: no gradient
   * rule) on ORT's NCHWc layout of `block` channels (16, or 8 on AVX2): x [N, C, H, W] blocked, u [P, C, K]
   * (winogradFilters of the filters; P = 16 for m = 2, 36 for m = 4), bias [K], sum [N, K, H, W] blocked
   * (optional: added to the output) -> [N, K, H, W] blocked.
   */
  convWinograd(x: Value, u: Value, bias: Value, sum?: Value, block: 8 | 16 = 16): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [p, uc, k] = u.shape as [number, number, number];
    const m = p === 36 ? 4 : 2;
    if ((p !== 16 && p !== 36) || uc !== c || c % block || k % block || h % m || w % m) {
      throw new GraphError(
        'ConvWinograd',
        `x ${shapeStr(x.shape)}, u ${shapeStr(u.shape)}: needs u [16 or 36, C, K], C and K multiples of ${block}, H and W multiples of ${m}`,
      );
    }
    return this.node(
      sum ? 'ConvWinogradSum' : 'ConvWinograd',
      sum ? [x, u, bias, sum] : [x, u, bias],
      [[n, k, h, w]],
      { block },
      undefined,
      undefined,
      FUSED_DOMAIN,
    )[0]!; // [N, K, H, W] blocked
  }

  /**
   * convWinograd with the filters in bfloat16 (native ConvWinogradBf16, 16-channel blocks): `words` [P, C/2, K]
   * int32, each two bfloat16 filter values (input channel 2q in the low half, 2q + 1 in the high); the
   * products in bfloat16, summed in float32.
   */
  convWinogradBf16(x: Value, words: Value, bias: Value, sum?: Value): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [p, half, k] = words.shape as [number, number, number];
    const m = p === 36 ? 4 : 2;
    if (
      (p !== 16 && p !== 36) ||
      half * 2 !== c ||
      words.dtype !== 'int32' ||
      c % 16 ||
      k % 16 ||
      h % m ||
      w % m
    ) {
      throw new GraphError(
        'ConvWinogradBf16',
        `x ${shapeStr(x.shape)}, words ${shapeStr(words.shape)} ${words.dtype}: needs int32 words [16 or 36, C/2, K], C and K multiples of 16, H and W multiples of ${m}`,
      );
    }
    return this.node(
      sum ? 'ConvWinogradSumBf16' : 'ConvWinogradBf16',
      sum ? [x, words, bias, sum] : [x, words, bias],
      [[n, k, h, w]],
      { block: 16 },
      undefined,
      undefined,
      FUSED_DOMAIN,
    )[0]!; // [N, K, H, W] blocked
  }

  /**
   * The filters w [K, C, 3, 3] as convWinograd takes them for F(m x m, 3x3), [P, C, K] (native WinogradFilter;
   * no gradient rule); `flip`: those of flippedKernel(w) (the conv's input gradient), [P, K, C], made from w
   * directly.
   */
  winogradFilter(w: Value, flip = false, m: WinogradTile = 2): Value {
    const [k, c] = w.shape as [number, number];
    const p = (m + 2) ** 2;
    const shape = flip ? [p, k, c] : [p, c, k];
    return this.node(
      'WinogradFilter',
      [w],
      [shape],
      { flip: flip ? 1 : 0, m },
      undefined,
      undefined,
      FUSED_DOMAIN,
    )[0]!;
  }

  /**
   * The weight gradient [K, C, 3, 3] of a 3x3, stride-1, pad-1 convolution from its input x [N, C, H, W] and
   * output gradient dy [N, K, H, W], both in ORT's NCHWc layout of `block` channels, as Winograd F(3x3, m x m)
   * (native ConvWinogradWeightGrad; no gradient rule): what ConvWeightGrad computes for such a convolution.
   */
  convWinogradWeightGrad(x: Value, dy: Value, m: WinogradTile = 2, block: 8 | 16 = 16): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [dn, k, dh, dw] = dy.shape as [number, number, number, number];
    if (dn !== n || dh !== h || dw !== w || c % block || k % block || h % m || w % m) {
      throw new GraphError(
        'ConvWinogradWeightGrad',
        `x ${shapeStr(x.shape)}, dy ${shapeStr(dy.shape)}: needs one batch and size, C and K multiples of ${block}, H and W multiples of ${m}`,
      );
    }
    const attrs = { m, block };
    return this.node(
      'ConvWinogradWeightGrad',
      [x, dy],
      [[k, c, 3, 3]],
      attrs,
      undefined,
      undefined,
      FUSED_DOMAIN,
    )[0]!;
  }

  /**
   * Interleave b*b phase images into one b times larger: phases[i*b + j] [N, C, H, W] holds output
   * pixels (b*h + i, b*w + j), so the result [N, C, b*H, b*W] is ONNX DepthToSpace (DCR) of the phases
   * concatenated on channels. Built without a Transpose: a Concat on a new axis after H puts phase
   * row i of every pixel row next to the others ([N, C, H, b*b, W], blocks of W floats), and one MatMul
   * with a 0/1 permutation [b*W, b*W] interleaves the columns (exact: each output is 1*x plus zeros).
   * ORT's profiler at S-fwd's last upsampling, [64, 64, 16, 16] x 4: 3.6 against 7.6 ms for the channel
   * Concat and two fast-path Transposes (ORT's DepthToSpace kernel was slower still).
   */
  interleave(phases: readonly Value[], b: number): Value {
    const [n, c, h, w] = phases[0]!.shape as [number, number, number, number];
    if (phases.length !== b * b || phases.some((p) => shapeStr(p.shape) !== shapeStr([n, c, h, w]))) {
      throw new GraphError(
        'interleave',
        `needs ${b * b} phases of one [N, C, H, W] shape, got ${phases.map((p) => shapeStr(p.shape)).join(', ')}`,
      );
    }
    const rows = this.concat(
      phases.map((p) => this.reshape(p, [n, c, h, 1, w])),
      3,
    ); // [N, C, H, (i, j), W]
    const perm = new Float32Array(b * w * b * w); // (j, w) -> (w, j)
    for (let j = 0; j < b; j++) for (let x = 0; x < w; x++) perm[(j * w + x) * b * w + x * b + j] = 1;
    const cols = this.matmul(this.reshape(rows, [n * c * h * b, b * w]), this.constant(perm, [b * w, b * w]));
    // [N, C, bH, bW]; meta.interleaveOf lets a layout pass build its own form (blocked.ts)
    const out = [n, c, h * b, w * b];
    return this.node(
      'Reshape',
      [cols, this.ints(this.reshapeTarget(cols, out))],
      [out],
      {},
      { interleaveOf: phases, phasesPerAxis: b },
    )[0]!;
  }

  /** Nearest-neighbour 2x upsampling of x [N, C, H, W]. */
  upsample2x(x: Value): Value {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const scales = this.constant(Float32Array.of(1, 1, 2, 2), [4]);
    const attrs = { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
    return this.node(
      'Resize',
      [x, this.constant(new Float32Array(0), [0]), scales],
      [[n, c, 2 * h, 2 * w]],
      attrs,
    )[0]!;
  }

  /**
   * The kernel of a conv's input gradient, w [O, C, kh, kw] -> [C, O, kh, kw] flipped in space: a
   * Transpose then a Gather of the rows and one of the columns in reverse order. The last Gather records
   * `meta.flippedKernelOf = w`, so a lowering pass can build its own layout of it from w directly
   * (nchwc.ts). Not a negative-step Slice: onnxruntime-web 1.30's WebGPU Slice returns 2 of the 3 taps for
   * it (a 2x2 kernel, and the Conv fails), which stopped training in the page on WebGPU.
   */
  flippedKernel(w: Value): Value {
    const [, , kh, kw] = w.shape as [number, number, number, number];
    const wt = this.transpose(w, [1, 0, 2, 3]); // [C, O, kh, kw]
    if (kh === 1 && kw === 1) return wt;
    const rows = this.node('Gather', [wt, this.ints([...Array(kh).keys()].reverse())], [wt.shape], {
      axis: 2,
    })[0]!;
    return this.node(
      'Gather',
      [rows, this.ints([...Array(kw).keys()].reverse())],
      [wt.shape],
      { axis: 3 },
      { flippedKernelOf: w },
    )[0]!;
  }

  // ---- pooling (inference only: autodiff has no rules for these) ----
  /** ONNX MaxPool over H, W of x [N, C, H, W]; padded positions never win. */
  maxPool(x: Value, opts: PoolOptions): Value {
    return this.pool('MaxPool', x, opts, {});
  }

  /**
   * ONNX AveragePool over H, W of x [N, C, H, W]. countIncludePad false divides by the in-image taps
   * only (TensorFlow's and PyTorch's count_include_pad=False); true divides by the whole window.
   */
  averagePool(x: Value, opts: PoolOptions & { readonly countIncludePad: boolean }): Value {
    return this.pool('AveragePool', x, opts, { count_include_pad: opts.countIncludePad ? 1 : 0 });
  }

  private pool(op: string, x: Value, opts: PoolOptions, extra: Record<string, Attr>): Value {
    const [kh, kw] = opts.kernel;
    const [sh, sw] = opts.strides ?? [1, 1];
    const [pt, pl, pb, pr] = opts.pads ?? [0, 0, 0, 0];
    if (x.shape.length !== 4) throw new GraphError(op, `expects a 4-d input, got ${shapeStr(x.shape)}`);
    if (Math.max(pt, pb) >= kh || Math.max(pl, pr) >= kw) {
      throw new GraphError(op, `pads [${opts.pads}] must be smaller than the kernel ${kh}x${kw}`);
    }
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
    const ow = Math.floor((w + pl + pr - kw) / sw) + 1;
    if (oh <= 0 || ow <= 0)
      throw new GraphError(op, `kernel ${kh}x${kw} larger than padded input ${shapeStr(x.shape)}`);
    const attrs = { kernel_shape: [kh, kw], strides: [sh, sw], pads: [pt, pl, pb, pr], ...extra };
    return this.node(op, [x], [[n, c, oh, ow]], attrs)[0]!;
  }

  identity(x: Value): Value {
    return this.unary('Identity', x);
  }

  /** x in the forward pass, no gradient through it (an Identity whose autodiff rule stops): stop_gradient. */
  stopGradient(x: Value): Value {
    return this.node('Identity', [x], [x.shape], {}, { stopGradient: true })[0]!;
  }

  /**
   * Replace `node` (single output) by the nodes that `build` records, in place: they take its position
   * in the node order and the one that made build's value produces the original output value, so every
   * consumer and graph output stays as it is. For lowering passes that run after `grad` (e.g. nchwc.ts).
   */
  replaceNode(node: Node, build: () => Value): void {
    if (node.outputs.length !== 1) throw new GraphError(node.op, 'cannot replace this node');
    this.replaceNodeOutputs(node, () => [build()]);
  }

  /**
   * replaceNode for a node of any number of outputs: `build` records nodes and returns one value per output
   * of `node` (same shapes), each produced by one of those nodes; every original output value keeps its
   * consumers, now produced there.
   */
  replaceNodeOutputs(node: Node, build: () => Value[]): void {
    const at = this.nodes.indexOf(node);
    if (at < 0) throw new GraphError(node.op, 'cannot replace this node');
    const start = this.nodes.length;
    const vs = build();
    const added = this.nodes.splice(start);
    if (vs.length !== node.outputs.length)
      throw new GraphError(node.op, 'replacement must give every output');
    vs.forEach((v, i) => {
      const old = node.outputs[i]!;
      const p = added.find((m) => m.outputs.includes(v));
      if (!p) throw new GraphError(node.op, 'replacement outputs must come from new nodes');
      if (v.shape.join(',') !== old.shape.join(',')) {
        throw new GraphError(
          node.op,
          `replacement gives ${shapeStr(v.shape)}, expected ${shapeStr(old.shape)}`,
        );
      }
      (p.outputs as Value[])[p.outputs.indexOf(v)] = old;
      (old as { producer?: Node }).producer = p;
    });
    this.nodes.splice(at, 1, ...added);
  }

  /** Make `node` read `to` where it read `from` (same shape and dtype), for passes that reroute a consumer. */
  replaceInput(node: Node, from: Value, to: Value): void {
    if (shapeStr(from.shape) !== shapeStr(to.shape) || from.dtype !== to.dtype) {
      throw new GraphError(node.op, `cannot read ${shapeStr(to.shape)} in place of ${shapeStr(from.shape)}`);
    }
    (node as { inputs: readonly Value[] }).inputs = node.inputs.map((v) => (v.id === from.id ? to : v));
  }

  /**
   * Make `node`'s (single) output a constant with these values and drop the node: its consumers and graph
   * outputs keep the same value (constant-folding passes, e.g. fold-constant-reorders).
   */
  foldToConstant(node: Node, data: Float32Array): void {
    const at = this.nodes.indexOf(node);
    const v = node.outputs[0];
    if (at < 0 || node.outputs.length !== 1 || !v) throw new GraphError(node.op, 'cannot fold this node');
    if (v.dtype !== 'float32' || data.length !== numel(v.shape)) {
      throw new GraphError(node.op, `${data.length} values for a constant of ${shapeStr(v.shape)}`);
    }
    this.nodes.splice(at, 1);
    (v as { producer?: Node }).producer = undefined;
    this.leaves.push({ kind: 'const', value: v, data });
  }

  /**
   * Put the nodes in an order where each follows the producers of its inputs (ONNX requires it), keeping
   * the current order otherwise: for lowering passes that build nodes after their consumers.
   */
  sortNodes(): void {
    const producer = new Map<number, Node>();
    for (const n of this.nodes) for (const o of n.outputs) producer.set(o.id, n);
    const placed = new Set<Node>();
    const order: Node[] = [];
    const visit = (n: Node) => {
      if (placed.has(n)) return;
      placed.add(n);
      for (const v of n.inputs) {
        const p = producer.get(v.id);
        if (p) visit(p);
      }
      order.push(n);
    };
    for (const n of this.nodes) visit(n);
    this.nodes.splice(0, this.nodes.length, ...order);
  }

  /** The leaf record of a value, if it is an input, parameter or constant. */
  leafOf(v: Value): Leaf | undefined {
    return this.leaves.find((l) => l.value.id === v.id);
  }

  /** The nodes (in graph order) that the given values depend on. */
  liveNodes(roots: readonly Value[]): Node[] {
    const need = new Set(roots.map((v) => v.id));
    const live: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => need.has(o.id))) {
        live.push(n);
        for (const v of n.inputs) need.add(v.id);
      }
    }
    return live.reverse();
  }

  /** Parameters of this graph, in creation order. */
  params(): { value: Value; data: Float32Array }[] {
    return this.leaves.flatMap((l) => (l.kind === 'param' ? [{ value: l.value, data: l.data }] : []));
  }

  inputs(): Value[] {
    return this.leaves.flatMap((l) => (l.kind === 'input' ? [l.value] : []));
  }
}

function norm(i: number, d: number): number {
  return i < 0 ? i + d : i;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}
