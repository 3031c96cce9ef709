// A lowering pass for ONNX Runtime's CPU provider: rewrite the convolutions whose weights are not
// constants (the training graph feeds weights as inputs every step) into ORT's blocked-layout
// kernels (domain com.microsoft.nchwc: ReorderInput, Conv, ReorderOutput), with the weight
// reordered in-graph. ORT's own NCHWc transformer does this only for constant weights, so without
// this pass every training-graph conv runs as NCHW im2col + GEMM, about 1.5-2x slower (issue #2).
// The block size is the runtime's (16 with AVX-512, 8 with AVX2); engines report it.

import type { Engine } from '../engine/engine.js';
import { FUSED_DOMAIN, Graph, GraphError, type Node, type Value } from './graph.js';
import { toOnnx } from './onnx.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** Which filter layout a conv gets, or null when it stays a plain Conv. */
function layoutOf(n: Node, block: number): 'blocked' | 'nchw-input' | null {
  if (n.op !== 'Conv' || n.domain) return null;
  const [x, w] = n.inputs as [Value, Value];
  // A quantized conv (quantize-int8: its weight from a DequantizeLinear) stays for ORT's QLinearConv fusion.
  if (w.producer?.op === 'DequantizeLinear') return null;
  if ((n.attrs.group ?? 1) !== 1 || x.shape.length !== 4) return null;
  const c = w.shape[1]!;
  if (c % block === 0) return 'blocked';
  if (c < block) return 'nchw-input';
  return null;
}

/**
 * Lower every Conv that the roots depend on and whose weight is not a constant (or every Conv, with
 * `constantWeights`); returns how many.
 * `block` must be the runtime's NCHWc block size (> 1).
 */
export function lowerConvsToNchwc(
  g: Graph,
  block: number,
  roots: readonly Value[],
  opts: { constantWeights?: boolean } = {},
): number {
  if (!(Number.isInteger(block) && block > 1)) throw new GraphError('nchwc', `bad block size ${block}`);
  let count = 0;
  for (const n of g.liveNodes(roots)) {
    const layout = layoutOf(n, block);
    if (!layout) continue;
    // Constant weights: ORT's own transformer lowers (and pre-packs) them; opaque ones stay plain. With
    // `constantWeights` they are lowered here too (ORT folds their in-graph reorder once, at load).
    if (!opts.constantWeights && g.leafOf(n.inputs[1]!)?.kind === 'const') continue;
    g.replaceNode(n, () => lowerConv(g, n, block, layout));
    count++;
  }
  return count;
}

/** x [N, C, H, W] in the blocked layout: one ReorderInput per value, however many ops read it (a gradient
 * feeds two convs, say; blocked.ts a residual sum). */
export function reorderToBlocked(g: Graph, x: Value): Value {
  return g.memo(
    `nchwc-reorder|${x.id}`,
    () =>
      g.node('ReorderInput', [x], [x.shape], { channels_last: 0 }, undefined, undefined, NCHWC_DOMAIN)[0]!,
  );
}

function lowerConv(g: Graph, n: Node, block: number, layout: 'blocked' | 'nchw-input'): Value {
  const [x, w, b] = n.inputs as [Value, Value, Value | undefined];
  const [o, c, kh, kw] = w.shape as [number, number, number, number];
  const out = n.outputs[0]!;
  const op = Math.ceil(o / block) * block; // output channels padded to whole blocks
  let wp = op === o ? w : g.pad(w, [0, 0, 0, 0, op - o, 0, 0, 0]); // [Op, C, kh, kw]
  const bp = b && op !== o ? g.pad(b, [0, op - o]) : b;
  // Reorders on ORT's fast transpose paths; an input-gradient kernel (flipped, transposed) is built from
  // the weight itself. S-train's Transpose and Slice kernels: 61 -> 25 ms per step (ORT profiler).
  const flipped = w.producer?.meta?.flippedKernelOf as Value | undefined;
  if (layout === 'blocked') {
    wp = flipped && op === o ? blockedFlippedKernel(g, flipped, block) : blockedKernel(g, wp, block);
  } else {
    // OIHW -> [Op/B, C*kh*kw, B(out)] (input stays NCHW)
    const r = g.reshape(wp, [op / block, block, c * kh * kw]);
    wp = g.reshape(g.transpose(r, [0, 2, 1]), [op, c, kh, kw]);
  }
  const [nb, , oh, ow] = out.shape as [number, number, number, number];
  const xin = layout === 'blocked' ? reorderToBlocked(g, x) : x;
  const attrs = {
    kernel_shape: n.attrs.kernel_shape!,
    strides: n.attrs.strides!,
    pads: n.attrs.pads!,
    group: 1,
  };
  const y = g.node(
    'Conv',
    bp ? [xin, wp, bp] : [xin, wp],
    [[nb, op, oh, ow]],
    attrs,
    { filterOf: w }, // the OIHW filter, for passes that transform it another way (winograd-convs)
    undefined,
    NCHWC_DOMAIN,
  )[0]!; // blocked [N, Op/B, OH, OW, B]
  return g.node(
    'ReorderOutput',
    [y],
    [out.shape],
    { channels_last: 0, channels: o },
    undefined,
    undefined,
    NCHWC_DOMAIN,
  )[0]!;
}

/**
 * w [O, C, kh, kw] (O, C whole blocks) in ORT's blocked filter layout [O/B, C/B, kh*kw, B(in), B(out)],
 * as two transposes that ORT runs on its fast paths (a batched 2-D transpose, then a swap of two axes
 * over contiguous B-float rows) instead of one general 5-d Transpose.
 */
export function blockedKernel(g: Graph, w: Value, block: number): Value {
  const [o, c, kh, kw] = w.shape as [number, number, number, number];
  const k = kh * kw;
  const a = g.transpose(g.reshape(w, [o / block, block, c * k]), [0, 2, 1]); // [O/B, C/B*B(in)*k, B(out)]
  if (k === 1) return markBlockedFilter(g.reshape(a, [o, c, kh, kw]), w, false);
  const b = g.transpose(g.reshape(a, [(o / block) * (c / block), block, k, block]), [0, 2, 1, 3]);
  return markBlockedFilter(g.reshape(b, [o, c, kh, kw]), w, false); // [O/B, C/B, k, B(in), B(out)]
}

/** What a blocked filter was made of, on its last node, for the block-filter pass (passes/blockFilter.ts). */
export interface BlockedFilterOf {
  readonly weight: Value;
  readonly flip: boolean;
}

function markBlockedFilter(v: Value, weight: Value, flip: boolean): Value {
  if (v.producer?.op !== 'Reshape')
    throw new GraphError('nchwc', 'a blocked filter must end in its own Reshape');
  const n = v.producer as { meta?: Record<string, unknown> };
  n.meta = { ...n.meta, blockedFilterOf: { weight, flip } satisfies BlockedFilterOf };
  return v;
}

/**
 * The native engine's BlockFilter: w [O, C, kh, kw] (whole blocks) as blockedKernel lays it out, or (flip) as
 * blockedFlippedKernel does, in one kernel. The result's shape is the conv filter's, [O, C, kh, kw] or
 * [C, O, kh, kw]; its data is in the blocked order.
 */
export function blockFilterNode(g: Graph, w: Value, block: number, flip: boolean): Value {
  const [o, c, kh, kw] = w.shape as [number, number, number, number];
  if (o % block !== 0 || c % block !== 0) {
    throw new GraphError('nchwc', `BlockFilter needs whole blocks of ${block}, got [${w.shape.join(', ')}]`);
  }
  const shape = flip ? [c, o, kh, kw] : [o, c, kh, kw];
  return g.node(
    'BlockFilter',
    [w],
    [shape],
    { block, flip: flip ? 1 : 0 },
    undefined,
    undefined,
    FUSED_DOMAIN,
  )[0]!;
}

/**
 * The blocked layout of the input-gradient kernel of w [O, C, kh, kw] (its transpose [C, O, kh, kw],
 * flipped in space), built from w directly: [C/B, O/B, k, B(O), B(C)] with the k taps reversed.
 */
export function blockedFlippedKernel(g: Graph, w: Value, block: number): Value {
  const [o, c, kh, kw] = w.shape as [number, number, number, number];
  const k = kh * kw;
  const a = g.transpose(g.reshape(w, [o, c / block, block * k]), [1, 0, 2]); // [C/B, O, B(C)*k]
  const b = g.transpose(g.reshape(a, [(c / block) * (o / block), block * block, k]), [0, 2, 1]); // [., k, B(O)*B(C)]
  const f = g.slice(b, [1], [-1], [-(2 ** 31)], [-1]); // taps reversed
  return markBlockedFilter(g.reshape(f, [c, o, kh, kw]), w, true);
}

/**
 * A tiny model whose output is [1, B, 1, 1] as floats, B the runtime's NCHWc block size: ReorderInput
 * pads one channel up to a whole block. A runtime without these kernels fails to load it.
 */
export function nchwcProbeGraph(): { graph: Graph; out: Value } {
  const g = new Graph();
  const x = g.input('x', [1, 1, 1, 1]);
  const r = g.node(
    'ReorderInput',
    [x],
    [[1, 1, 1, 1]],
    { channels_last: 0 },
    undefined,
    undefined,
    NCHWC_DOMAIN,
  )[0]!;
  const shape = g.node('Shape', [r], [[4]], {}, undefined, ['int64'])[0]!;
  const out = g.node('Cast', [shape], [[4]], { to: 1 })[0]!;
  return { graph: g, out };
}

const probed = new WeakMap<Engine, Promise<number>>();

/**
 * The engine's NCHWc block size (16 with AVX-512, 8 with AVX2), or 0 when it has no such kernels
 * (onnxruntime-web, non-x86 CPUs, an engine with standardOnnxOnly): probed once per engine by loading a
 * one-op model.
 */
export function nchwcBlockOf(engine: Engine): Promise<number> {
  // A GPU provider would run these CPU kernels on the CPU (ONNX Runtime's fall-back): never for it.
  if (engine.standardOnnxOnly) return Promise.resolve(0);
  let p = probed.get(engine);
  if (!p) {
    p = (async () => {
      const { graph, out } = nchwcProbeGraph();
      try {
        const s = await engine.createSession(toOnnx(graph, { outputs: { out }, params: 'initializer' }));
        try {
          const res = await s.run({ x: { data: Float32Array.of(1), shape: [1, 1, 1, 1] } });
          const b = res.out!.data[1]!;
          return Number.isInteger(b) && b > 1 ? b : 0;
        } finally {
          await s.release();
        }
      } catch {
        return 0;
      }
    })();
    probed.set(engine, p);
  }
  return p;
}

/** x [N, C, ...] (C a multiple of b) in the blocked layout [N, C/b, ..., b], or back with `inverse`. */
export function relayout(
  x: Float32Array,
  shape: readonly number[],
  b: number,
  inverse = false,
): Float32Array {
  const [n, c] = shape as [number, number];
  const inner = shape.slice(2).reduce((a, d) => a * d, 1);
  const y = new Float32Array(x.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < inner; p++) {
        const nchw = (i * c + ch) * inner + p;
        const blocked = ((i * (c / b) + Math.floor(ch / b)) * inner + p) * b + (ch % b);
        if (inverse) y[nchw] = x[blocked]!;
        else y[blocked] = x[nchw]!;
      }
  return y;
}
