// fold-batchnorm: BatchNorm(conv(x, W, b)) with running statistics and constant weights -> conv(x, W', b')
// with s = gamma / sqrt(var + eps) per output channel, W' = W s and b' = (b - mean) s + beta, in float64:
// the same affine map of the conv's output, one op instead of two (and no float32 rounding between them).

import type { Node, Value } from '../graph.js';
import { constantOf, type GraphPass, liveNodes, type PassContext, useCounts } from './util.js';

function fold(ctx: PassContext, bn: Node, uses: Map<number, number>): boolean {
  if (bn.op !== 'BatchNormalization' || bn.domain || bn.outputs.length !== 1) return false;
  const y = bn.inputs[0]!;
  const conv = y.producer;
  if (conv?.op !== 'Conv' || conv.domain || uses.get(y.id) !== 1) return false;
  const [x, w, b] = conv.inputs as [Value, Value, Value | undefined];
  const wc = constantOf(ctx, w);
  const bc = b ? constantOf(ctx, b) : new Float32Array(w.shape[0]!);
  const [gamma, beta, mean, variance] = bn.inputs.slice(1).map((v) => constantOf(ctx, v));
  if (!wc || !bc || !gamma || !beta || !mean || !variance) return false;
  const eps = (bn.attrs.epsilon as { floats: number[] } | undefined)?.floats[0] ?? 1e-5;
  const out = w.shape[0]!;
  const per = wc.length / out;
  const weight = new Float32Array(wc.length);
  const bias = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const s = gamma[o]! / Math.sqrt(variance[o]! + eps);
    bias[o] = (bc[o]! - mean[o]!) * s + beta[o]!;
    for (let i = o * per; i < (o + 1) * per; i++) weight[i] = wc[i]! * s;
  }
  const g = ctx.graph;
  g.replaceNode(bn, () =>
    g.conv(x, g.constant(weight, w.shape), g.constant(bias, [out]), {
      strides: conv.attrs.strides as [number, number],
      pads: conv.attrs.pads as [number, number, number, number],
      group: conv.attrs.group as number,
    }),
  );
  return true;
}

export const foldBatchNorm: GraphPass = {
  name: 'fold-batchnorm',
  stage: 'forward',
  scope: 'constant-weights',
  summary: 'BatchNorm (running statistics) after a conv folded into its weight and bias',
  run(ctx) {
    const uses = useCounts(ctx);
    let count = 0;
    for (const n of liveNodes(ctx)) if (fold(ctx, n, uses)) count++;
    return count;
  },
};
