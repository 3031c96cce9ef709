// fold-value-bias: W_o attention(q, k, W_v h + b_v) + b_o -> W_o attention(q, k, W_v h) + (W_o b_v + b_o).
// Each softmax row sums to 1, so the value bias passes through attention unchanged (per head) and joins
// the output projection's bias: exact (to rounding). The new bias is folded in float64 when the weights
// are constants, else a [C, 1] product in the graph (training graphs: gradients reach W_o and b_v).

import type { AttentionOf, Node } from '../graph.js';
import {
  constant32,
  constantOf,
  type GraphPass,
  liveNodes,
  matchProjection,
  matmul64,
  type PassContext,
} from './util.js';

function fold(ctx: PassContext, n: Node): boolean {
  if (n.op !== 'Add' || n.domain) return false;
  const out = matchProjection(n.outputs[0]!);
  const a = out?.x.producer?.meta?.attention as AttentionOf | undefined;
  if (!out?.b || !a) return false;
  const v = matchProjection(a.v);
  if (!v?.b) return false;
  const g = ctx.graph;
  const [o, c] = out.w.shape as [number, number];
  const [wo, bv, bo] = [out.w, v.b, out.b].map((u) => constantOf(ctx, u));
  g.replaceNode(n, () => {
    const ctxv = g.attention(a.q, a.k, v.wx, a.heads, a.scale);
    const bias =
      wo && bv && bo
        ? constant32(
            g,
            matmul64(wo, bv, o, c, 1).map((x, i) => x + bo[i]!),
            [o, 1],
          )
        : g.add(g.matmul(out.w, v.b!), out.b!);
    return g.add(g.matmul(out.w, ctxv), bias);
  });
  return true;
}

export const foldValueBias: GraphPass = {
  name: 'fold-value-bias',
  stage: 'forward',
  scope: 'any',
  summary: "attention's value bias moved into the output projection's bias (softmax rows sum to 1)",
  run(ctx) {
    let count = 0;
    for (const n of liveNodes(ctx)) if (fold(ctx, n)) count++;
    return count;
  },
};
