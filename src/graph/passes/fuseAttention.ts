// fuse-attention: the attention composite (Graph.attention: MatMul, Softmax, MatMul, with the [N, L, L]
// weights written between them and, in training graphs, kept for the backward) -> the native engine's one
// Attention kernel, which makes each block of queries' weights in cache (native/attention.cc), and in
// training graphs its one AttentionGrad, which makes them again from the saved log-sum-exp. The same
// function: equal to rounding. Runs after the passes that rebuild the composite (fold-attention-norm,
// drop-key-bias, fold-value-bias), where the graph's engine has the kernel and the sizes fit it.

import { type AttentionOf, attentionFusable, type Node } from '../graph.js';
import { type GraphPass, liveNodes, type PassContext } from './util.js';

function fuse(ctx: PassContext, n: Node): boolean {
  const a = n.meta?.attention as AttentionOf | undefined;
  if (!a || n.domain || !attentionFusable(a.q.shape, a.v.shape, a.heads)) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => g.attentionFused(a.q, a.k, a.v, a.heads, a.scale));
  return true;
}

export const fuseAttention: GraphPass = {
  name: 'fuse-attention',
  stage: 'forward',
  scope: 'any',
  summary: 'softmax attention -> one kernel that never writes its L x L weights, where the engine has it',
  run(ctx) {
    if (!ctx.graph.fused.includes('Attention')) return 0;
    let count = 0;
    for (const n of liveNodes(ctx)) if (fuse(ctx, n)) count++;
    return count;
  },
};
