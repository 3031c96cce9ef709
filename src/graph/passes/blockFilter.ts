// block-filter: the NCHWc filter of a conv whose weight is fed at run time (the training graph's convs and
// their input-gradient convs, lowered by nchwc-convs) made by the native engine's BlockFilter kernel in one
// tiled pass, where nchwc.ts builds it from two Transposes (and a Slice for the flipped kernel). ONNX Runtime
// runs those Transposes at 1-2 GB/s on the CIFAR-10 model's 256- and 512-channel filters: 130 of the 196 ms
// of Transpose kernels in an L-train step. Constant weights keep the Transposes, which fold-constant-reorders
// computes once at build time. Exact: the same values in the same order.

import { blockFilterNode, type BlockedFilterOf } from '../nchwc.js';
import { type GraphPass, liveNodes } from './util.js';

export const blockFilter: GraphPass = {
  name: 'block-filter',
  stage: 'layout',
  scope: 'any',
  summary: 'run-time conv filters reordered to NCHWc by one native kernel instead of two Transposes',
  run(ctx) {
    const g = ctx.graph;
    if (ctx.constantWeights || ctx.nchwcBlock < 2 || !g.fused.includes('BlockFilter')) return 0;
    let count = 0;
    for (const n of liveNodes(ctx)) {
      const of = n.meta?.blockedFilterOf as BlockedFilterOf | undefined;
      if (!of) continue;
      g.replaceNode(n, () => blockFilterNode(g, of.weight, ctx.nchwcBlock, of.flip));
      count++;
    }
    return count;
  },
};
