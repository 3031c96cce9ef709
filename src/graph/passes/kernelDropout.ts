// kernel-dropout: in a training graph, x * mask for each dropout mask input (Graph.dropoutMaskInput) ->
// the native engine's DropoutMul(x, key), which makes the mask's values from a counter-based hash inside
// the kernel (src/train/dropoutMask.ts defines them; paper Appendix B's dropout). The mask never exists as a
// tensor: no mask is fed, none is kept from the forward for the backward (its gradient is the same kernel
// on dy), and the trainer no longer fills tens of millions of values a step on one JS thread. Exact: the
// kernel's mask equals the fed one bit for bit, so the step's outputs are those of the graph as written.
// The graph then reads one input, `dropout.key` (the step key and the micro-batch's first image).

import { FUSED_DOMAIN, type Value } from '../graph.js';
import { type GraphPass, liveNodes } from './util.js';

/** The input that DropoutMul kernels read: [step key low 16 bits, high 16 bits, first image]. */
export const DROPOUT_KEY_INPUT = 'dropout.key';

export const kernelDropout: GraphPass = {
  name: 'kernel-dropout',
  stage: 'forward',
  scope: 'any',
  summary: 'training: x * dropout mask -> one kernel that makes the mask from a hash (no mask tensor)',
  run(ctx) {
    const g = ctx.graph;
    if (!g.fused.includes('DropoutMul') || g.dropoutMasks.size === 0) return 0;
    let key: Value | undefined;
    let count = 0;
    for (const n of liveNodes(ctx)) {
      if (n.op !== 'Mul' || n.domain) continue;
      const at = n.inputs.findIndex((v) => g.dropoutMasks.has(v.id));
      if (at < 0) continue;
      const mask = n.inputs[at]!;
      const x = n.inputs[1 - at]!;
      if (x.shape.join() !== mask.shape.join()) continue;
      const { p, site } = g.dropoutMasks.get(mask.id)!;
      key ??= g.input(DROPOUT_KEY_INPUT, [3]);
      const k = key;
      const attrs = { p: { floats: [p] }, site };
      g.replaceNode(
        n,
        () => g.node('DropoutMul', [x, k], [x.shape], attrs, undefined, undefined, FUSED_DOMAIN)[0]!,
      );
      count++;
    }
    return count;
  },
};
