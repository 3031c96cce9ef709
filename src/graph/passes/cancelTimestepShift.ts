// cancel-timestep-shift: GroupNorm(x + s) -> GroupNorm(x) where the shift s is constant over each group
// (one channel per group and s per channel, as a ResNet block's timestep projection; or s per sample):
// the norm subtracts each group's mean, which removes s exactly. Inference graphs only: a training graph
// keeps it, as PyTorch does, so the projection's parameters get the gradient PyTorch gives them.

import type { GroupNormOf, Node, Value } from '../graph.js';
import { type GraphPass, liveNodes, type PassContext } from './util.js';

/** s [N or 1, C or 1, 1, ...] is constant over every group of x [N, C, ...] with `groups` groups. */
function constantPerGroup(s: Value, x: Value, groups: number): boolean {
  const r = x.shape.length;
  if (s.shape.length !== r || s.shape.slice(2).some((d) => d !== 1)) return false;
  if (s.shape[0] !== 1 && s.shape[0] !== x.shape[0]) return false;
  return s.shape[1] === 1 || (s.shape[1] === x.shape[1] && groups === x.shape[1]);
}

function cancel(ctx: PassContext, n: Node): boolean {
  const gn = n.meta?.groupNorm as GroupNormOf | undefined;
  const add = gn?.x.producer;
  if (!gn || add?.op !== 'Add' || add.domain) return false;
  const [a, b] = add.inputs as [Value, Value];
  const [kept, shift] = a.shape.join() === gn.x.shape.join() ? [a, b] : [b, a];
  if (kept.shape.join() !== gn.x.shape.join() || !constantPerGroup(shift, gn.x, gn.groups)) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => g.groupNorm(kept, gn.groups, gn.gamma, gn.beta, gn.eps, gn.impl));
  return true;
}

export const cancelTimestepShift: GraphPass = {
  name: 'cancel-timestep-shift',
  stage: 'forward',
  scope: 'inference',
  summary: 'GroupNorm(x + shift) -> GroupNorm(x) when the shift is constant over each group',
  run(ctx) {
    let count = 0;
    for (const n of liveNodes(ctx)) if (cancel(ctx, n)) count++;
    return count;
  },
};
