// The layout passes for ONNX Runtime's CPU kernels, run last (after any gradient): 'nchwc-convs' lowers
// the convolutions whose weights are fed at run time (training graphs) to ORT's blocked NCHWc kernels,
// which ORT's own transformer does only for constant weights (nchwc.ts); 'blocked-layout' keeps
// activations in the blocked layout from one conv to the next, through the fused GroupNorm + SiLU, and in
// training graphs through the backward's kernels too (blocked.ts). Layout changes only: the same
// arithmetic, equal to rounding.

import { lowerToBlocked } from '../blocked.js';
import { lowerConvsToNchwc, NCHWC_DOMAIN } from '../nchwc.js';
import type { GraphPass } from './util.js';

export const nchwcConvs: GraphPass = {
  name: 'nchwc-convs',
  stage: 'layout',
  scope: 'any',
  summary: "convs with run-time weights lowered to ORT's NCHWc kernels (weights reordered in the graph)",
  run(ctx) {
    if (ctx.nchwcBlock < 2 || ctx.constantWeights) return 0;
    return lowerConvsToNchwc(ctx.graph, ctx.nchwcBlock, ctx.roots);
  },
};

export const blockedLayout: GraphPass = {
  name: 'blocked-layout',
  stage: 'layout',
  scope: 'any',
  summary:
    'activations kept in the blocked NCHWc layout between convs (training graphs: with the blocked training kernels)',
  run(ctx) {
    const g = ctx.graph;
    if (ctx.nchwcBlock < 2 || !g.fused.includes('GroupNormSilu')) return 0;
    // A training graph (after nchwc-convs: its convs are ORT's NCHWc kernels already) needs the blocked
    // training kernels; an inference graph's convs are lowered here.
    const training = !ctx.constantWeights;
    if (training && !(ctx.training && g.fused.includes('BlockedTraining'))) return 0;
    const domain = training ? NCHWC_DOMAIN : undefined;
    const convs = g.liveNodes(ctx.roots).filter((n) => n.op === 'Conv' && n.domain === domain).length;
    if (convs > 0) lowerToBlocked(g, ctx.nchwcBlock, ctx.roots, { training });
    return convs;
  },
};
