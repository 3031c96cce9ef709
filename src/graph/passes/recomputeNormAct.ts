// recompute-norm-act: in a training graph, compute each fused GroupNorm + SiLU again in the backward
// instead of keeping its output from the forward (gradient checkpointing of the cheapest ops; issue #16,
// item 5). The backward reads the norm's output y, or y times a dropout mask, only for the weight gradient
// of the convolution that follows it, near the end of the step; until then that activation filled memory.
// The norm's own gradient already keeps its input x, so recomputing y = SiLU(GroupNorm(x)) just before
// the weight gradient costs one more pass over memory and frees one (with dropout two: y times the mask
// is made again too) activation of every ResNet block for the whole forward and backward. Exact: the same
// kernel on the same x gives the same y bit for bit.
//
// The recomputed node (the native engine's GroupNormSiluRecompute) takes as a fourth, unread input a
// gradient value that its consumer also waits for, so ONNX Runtime runs it then and not early in the
// step, and its common-subexpression elimination does not merge it back into the forward node.

import { FUSED_DOMAIN, type Node, type Value } from '../graph.js';
import { type GraphPass, liveNodes, type PassContext } from './util.js';

export const recomputeNormAct: GraphPass = {
  name: 'recompute-norm-act',
  stage: 'layout',
  scope: 'any',
  summary: "training: each fused GroupNorm + SiLU's output made again in the backward instead of kept",
  run(ctx) {
    const g = ctx.graph;
    if (!ctx.training || !g.fused.includes('GroupNormSiluRecompute') || g.gradientNodes.size === 0) return 0;
    const nodes = liveNodes(ctx);
    const readers = new Map<number, Node[]>();
    for (const n of nodes)
      for (const v of n.inputs) {
        const list = readers.get(v.id);
        if (list) list.push(n);
        else readers.set(v.id, [n]);
      }
    const inGradient = (n: Node) => g.gradientNodes.has(n);
    const isInput = (v: Value) => g.leafOf(v)?.kind === 'input';
    let count = 0;
    for (const n of nodes) {
      if (n.op !== 'GroupNormSilu' || n.domain !== FUSED_DOMAIN || n.attrs.block || inGradient(n)) continue;
      const [x, gamma, beta] = n.inputs as [Value, Value, Value];
      const y = n.outputs[0]!;
      // What the backward may keep: y, and y times a dropout mask (a graph input) read by the next conv,
      // or the kernel-dropout pass's DropoutMul of y (made again from its key).
      const kept: { v: Value; mask?: { value: Value; at: number }; dropout?: Node }[] = [{ v: y }];
      for (const m of readers.get(y.id) ?? []) {
        if (inGradient(m)) continue;
        if (m.op === 'DropoutMul' && m.domain === FUSED_DOMAIN && m.inputs[0]!.id === y.id) {
          kept.push({ v: m.outputs[0]!, dropout: m });
          continue;
        }
        if (m.op !== 'Mul' || m.domain) continue;
        const at = m.inputs[0]!.id === y.id ? 1 : 0;
        const mask = m.inputs[at]!;
        if (isInput(mask) && mask.shape.join() === y.shape.join())
          kept.push({ v: m.outputs[0]!, mask: { value: mask, at } });
      }
      for (const { v, mask, dropout } of kept) {
        const back = (readers.get(v.id) ?? []).filter(inGradient);
        if (back.length === 0) continue;
        const after = gradientValueBeside(ctx, back, v, readers);
        if (!after) continue;
        const start = g.nodes.length;
        const y2 = g.node(
          'GroupNormSiluRecompute',
          [x, gamma, beta, after],
          [y.shape],
          { ...n.attrs },
          undefined,
          undefined,
          FUSED_DOMAIN,
        )[0]!; // [N, C, H, W]
        const v2 = dropout
          ? g.node(
              'DropoutMul',
              [y2, dropout.inputs[1]!],
              [y2.shape],
              { ...dropout.attrs },
              undefined,
              undefined,
              FUSED_DOMAIN,
            )[0]!
          : mask
            ? mask.at === 1
              ? g.mul(y2, mask.value)
              : g.mul(mask.value, y2)
            : y2;
        for (const added of g.nodes.slice(start)) g.gradientNodes.add(added);
        for (const c of back) g.replaceInput(c, v, v2);
        count++;
      }
    }
    if (count > 0) g.sortNodes(); // the new nodes were appended: move each before its first reader
    return count;
  },
};

/**
 * A gradient value that the backward readers of v (or their readers, up to six steps on: a batch slice,
 * reshapes and the patches come before the weight gradient's GEMM) also read and that
 * does not wait for any of those readers: the recomputation waits for it, so it runs next to the weight
 * gradient. (Every gradient value depends on v through the forward; only a path through `back` would
 * close a cycle once they read the recomputed value.)
 */
function gradientValueBeside(
  ctx: PassContext,
  back: readonly Node[],
  v: Value,
  readers: ReadonlyMap<number, Node[]>,
): Value | undefined {
  const g = ctx.graph;
  const fromV = new Set<number>([v.id]);
  let frontier = [...back];
  for (let depth = 0; depth < 6 && frontier.length > 0; depth++) {
    const next: Node[] = [];
    for (const c of frontier) {
      for (const w of c.inputs) {
        if (fromV.has(w.id) || w.dtype !== 'float32' || !w.producer || !g.gradientNodes.has(w.producer))
          continue;
        // w must not wait for a node that will read the recomputed value (a cycle)
        const before = g.liveNodes([w]);
        if (!back.some((b) => before.includes(b))) return layoutSource(ctx, w);
      }
      for (const o of c.outputs) {
        fromV.add(o.id);
        next.push(...(readers.get(o.id) ?? []).filter((r) => g.gradientNodes.has(r)));
      }
    }
    frontier = next;
  }
  return undefined;
}

/**
 * The value a Transpose or Reshape of gradients was made from (followed up through such ops): the
 * recomputation may wait for it instead, as it is ready just before. Reading the Transpose's output itself
 * would give it a second reader, and ONNX Runtime folds a Transpose into the MatMul that reads it only when
 * that MatMul is its one reader: the weight gradients' dy^T were written out (S-train: 14 Transposes, L-train
 * 7 of [8, 128, 1024]).
 */
function layoutSource(ctx: PassContext, w: Value): Value {
  const g = ctx.graph;
  let u = w;
  for (;;) {
    const p = u.producer;
    if (!p || p.domain || (p.op !== 'Transpose' && p.op !== 'Reshape')) return u;
    const from = p.inputs[0]!;
    if (from.dtype !== 'float32' || !from.producer || !g.gradientNodes.has(from.producer)) return u;
    u = from;
  }
}
