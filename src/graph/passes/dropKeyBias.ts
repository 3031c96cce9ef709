// drop-key-bias: attention(q, W_k h + b_k, v) -> attention(q, W_k h, v). The key bias adds q_i . b_k to
// every score of query i (per head), the same for every key, and softmax is invariant to a constant added
// to a row: exact. Valid in training graphs too (b_k's gradient is exactly zero, as it is mathematically).

import type { AttentionOf, Node } from '../graph.js';
import { type GraphPass, liveNodes, matchProjection, type PassContext } from './util.js';

function drop(ctx: PassContext, n: Node): boolean {
  const a = n.meta?.attention as AttentionOf | undefined;
  if (!a) return false;
  const k = matchProjection(a.k);
  if (!k?.b) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => g.attention(a.q, k.wx, a.v, a.heads, a.scale));
  return true;
}

export const dropKeyBias: GraphPass = {
  name: 'drop-key-bias',
  stage: 'forward',
  scope: 'any',
  summary: "attention's key bias dropped (softmax is invariant to it)",
  run(ctx) {
    let count = 0;
    for (const n of liveNodes(ctx)) if (drop(ctx, n)) count++;
    return count;
  },
};
