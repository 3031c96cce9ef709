// fuse-shift-groupnorm-silu: GroupNormSilu(x + s), s [N, C, 1, 1] one value per sample and channel (a
// ResnetBlock's timestep projection, Ho et al. 2020 appendix B: added to the first conv's output before
// the second norm), -> one GroupNormSiluShift kernel that adds s while it reads x: the sum x + s is never
// written to memory and read back (a broadcast Add over the whole activation otherwise). Inference graphs
// on the native engine; runs after fuse-groupnorm-silu, and after cancel-timestep-shift has removed the
// shifts that a group's mean cancels. Equal to float rounding (the statistics sum x and s separately).

import { FUSED_DOMAIN, type Node, type Value } from '../graph.js';
import { type GraphPass, liveNodes, type PassContext, useCounts } from './util.js';

function fuse(ctx: PassContext, n: Node, uses: Map<number, number>): boolean {
  if (n.domain !== FUSED_DOMAIN || n.op !== 'GroupNormSilu' || n.attrs.block) return false;
  const [x, gamma, beta] = n.inputs as [Value, Value, Value];
  const add = x.producer;
  if (add?.op !== 'Add' || add.domain || uses.get(x.id) !== 1 || x.shape.length !== 4) return false;
  const [nb, c] = x.shape as [number, number];
  const [a, b] = add.inputs as [Value, Value];
  const perSample = (v: Value) => v.shape.join() === [nb, c, 1, 1].join();
  const [kept, shift] = perSample(b) && a.shape.join() === x.shape.join() ? [a, b] : [b, a];
  if (kept.shape.join() !== x.shape.join() || !perSample(shift)) return false;
  const g = ctx.graph;
  const eps = (n.attrs.epsilon as { floats: number[] }).floats[0]!;
  const groups = n.attrs.groups as number;
  g.replaceNode(n, () => g.groupNormSiluFused(kept, groups, gamma, beta, eps, 0, g.reshape(shift, [nb, c])));
  return true;
}

export const fuseShiftGroupNormSilu: GraphPass = {
  name: 'fuse-shift-groupnorm-silu',
  stage: 'forward',
  scope: 'inference',
  summary: 'GroupNormSilu(x + per-sample shift) -> one kernel that adds the shift as it reads x',
  run(ctx) {
    if (!ctx.graph.fused.includes('GroupNormSiluShift')) return 0;
    const uses = useCounts(ctx);
    let count = 0;
    for (const n of liveNodes(ctx)) if (fuse(ctx, n, uses)) count++;
    return count;
  },
};
