// fold-constant-reorders: Reshape, Transpose and zero Pad of constants computed at build time, in
// TypeScript, so ONNX Runtime receives the result as one initializer. The NCHWc lowering of inference graphs
// (blocked-layout, nchwc.ts) reorders every conv weight in the graph; ONNX Runtime folds those reorders
// when it loads the model, and on the way holds the original initializers, the folded tensors and their
// serialised copies at once: 5.4 times the weights. On the paper's CIFAR-10 model (139 MB of weights) the
// session took 767 MB to create against 273 MB for plain convolutions ("Fast and lean" issue, item 5).
// Exact: the same values in a new order.

import type { Node, Value } from '../graph.js';
import { constantOf, type GraphPass, liveNodes, type PassContext } from './util.js';

/** x [shape] transposed by perm (ONNX Transpose), row-major. */
export function transposeData(
  x: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): Float32Array {
  const r = shape.length;
  const out = new Float32Array(x.length);
  const outShape = perm.map((p) => shape[p]!);
  const inStride = new Array<number>(r);
  for (let i = r - 1, s = 1; i >= 0; i--) {
    inStride[i] = s;
    s *= shape[i]!;
  }
  // The input stride of each output axis, then an odometer over the output.
  const stride = perm.map((p) => inStride[p]!);
  const idx = new Array<number>(r).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = x[src]!;
    for (let a = r - 1; a >= 0; a--) {
      idx[a]!++;
      src += stride[a]!;
      if (idx[a]! < outShape[a]!) break;
      src -= stride[a]! * outShape[a]!;
      idx[a] = 0;
    }
  }
  return out;
}

/** x [shape] zero-padded by ONNX pads [begin_0 .. begin_{r-1}, end_0 .. end_{r-1}] (non-negative). */
export function padData(x: Float32Array, shape: readonly number[], pads: readonly number[]): Float32Array {
  const r = shape.length;
  const outShape = shape.map((d, i) => d + pads[i]! + pads[i + r]!);
  const out = new Float32Array(outShape.reduce((a, b) => a * b, 1));
  const outStride = new Array<number>(r);
  for (let i = r - 1, s = 1; i >= 0; i--) {
    outStride[i] = s;
    s *= outShape[i]!;
  }
  // Copy the input's last-axis rows to their padded place.
  const inner = shape[r - 1] ?? 1;
  const rows = x.length / Math.max(1, inner);
  const idx = new Array<number>(Math.max(0, r - 1)).fill(0);
  for (let row = 0; row < rows; row++) {
    let dst = r > 0 ? pads[r - 1]! : 0;
    for (let a = 0; a < r - 1; a++) dst += (idx[a]! + pads[a]!) * outStride[a]!;
    out.set(x.subarray(row * inner, (row + 1) * inner), dst);
    for (let a = r - 2; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

const REORDERS = ['Reshape', 'Transpose', 'Pad'];

const isReorder = (n: Node | undefined): boolean => !!n && !n.domain && REORDERS.includes(n.op);

/**
 * The values of v when v is a constant or a chain of reorders of one, computed in TypeScript; undefined when
 * v depends on something else. A chain's inner values are garbage as soon as the next link is computed.
 */
function valuesOf(ctx: PassContext, v: Value): Float32Array | undefined {
  const known = constantOf(ctx, v);
  const n = v.producer;
  if (known || !n || !isReorder(n) || v.dtype !== 'float32') return known;
  const x = n.inputs[0]!;
  const data = valuesOf(ctx, x);
  if (!data) return undefined;
  switch (n.op) {
    case 'Reshape':
      return data; // the same values in the same order
    case 'Transpose':
      return transposeData(data, x.shape, n.attrs.perm as readonly number[]);
    case 'Pad': {
      const leaf = ctx.graph.leafOf(n.inputs[1]!);
      if (n.inputs.length !== 2 || leaf?.kind !== 'const' || !(leaf.data instanceof BigInt64Array))
        return undefined;
      const pads = Array.from(leaf.data, Number);
      return pads.every((p) => p >= 0) ? padData(data, x.shape, pads) : undefined;
    }
  }
  return undefined;
}

export const foldConstantReorders: GraphPass = {
  name: 'fold-constant-reorders',
  stage: 'layout',
  scope: 'constant-weights',
  summary: 'Reshape, Transpose and zero Pad of constants (the NCHWc weight reorders) computed at build time',
  run(ctx) {
    // Only the end of each chain becomes a constant (a reorder read by anything but another reorder, or an
    // output): the chain's inner nodes are then dead, and no intermediate copy of the weights is kept.
    const nodes = liveNodes(ctx);
    const readByOther = new Set<number>(ctx.roots.map((r) => r.id));
    for (const n of nodes) if (!isReorder(n)) for (const v of n.inputs) readByOther.add(v.id);
    let count = 0;
    for (const n of nodes) {
      if (!isReorder(n) || !readByOther.has(n.outputs[0]!.id)) continue;
      const data = valuesOf(ctx, n.outputs[0]!);
      if (!data) continue;
      ctx.graph.foldToConstant(n, data);
      count++;
    }
    return count;
  },
};
