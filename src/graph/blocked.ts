// A layout pass for the native engine's graphs: activations stay in ONNX Runtime's blocked
// NCHWc layout ([N, C/B, H, W, B] in memory, shape [N, C, H, W]) from one convolution to the next,
// instead of ORT's reorder to NCHW and back around every non-conv op (issue #2: 37 ms of S-fwd's kernel
// time was ReorderInput/ReorderOutput). Every conv is lowered to ORT's NCHWc kernel (nchwc.ts, constant
// weights too), then values get a blocked twin where their op has a blocked form:
// - GroupNormSilu (and GroupNormSiluShift, its shift [N, C] as is): the native kernel's `block` mode;
// - Add: elementwise as is, or as the Sum input of a conv used only there (a residual); a per-channel
//   broadcast operand (the timestep shift, [N, C, 1, 1]) through a 5-d view, [N, C/B, 1, 1, B]; an NCHW
//   operand (attention's output, added to its blocked input) reordered to blocks;
// - Concat on channels: whole blocks concatenate as the blocked layout of the result;
// - Graph.interleave (the up-sampling phases): two Concats on new axes of the 5-d view;
// - ReorderOutput's input is its own twin.
// Training graphs (`training`, a build with BlockedTraining), where the convs were lowered with run-time
// weights (nchwc.ts) and the gradient is in the graph, also keep the backward blocked:
// - GroupNormSiluGrad, GroupNormSiluRecompute, DropoutMul: the kernels' `block` mode (the dropout mask by
//   NCHW index, so the same mask);
// - ConvWeightGrad reads x and dy in whichever layout they have (attributes xblock, dyblock);
// - Slice on channels by whole blocks (a skip concatenation's gradient): the same Slice of the 5-d view;
// - a per-(sample, channel) sum over the grid (bias and timestep-shift gradients): over [N, C/B, H W, B];
// - a gradient sum into the input-gradient conv's Sum input (zeros for its missing bias).
// A ReorderInput whose input has a twin becomes that twin. Everything else (attention, the last conv's
// output) reads the NCHW values, which the runtime still reorders where they are used.

import { FUSED_DOMAIN, type Graph, GraphError, groupsTileBlocks, type Node, type Value } from './graph.js';
import { lowerConvsToNchwc, NCHWC_DOMAIN, reorderToBlocked } from './nchwc.js';

export function lowerToBlocked(
  g: Graph,
  block: number,
  roots: readonly Value[],
  opts: { training?: boolean } = {},
): { twinned: number } {
  if (!(Number.isInteger(block) && block > 1)) throw new GraphError('blocked', `bad block size ${block}`);
  const training = opts.training ?? false;
  if (training && !g.fused.includes('BlockedTraining')) {
    throw new GraphError('blocked', 'a training graph needs the blocked training kernels (BlockedTraining)');
  }
  // Training graphs: the nchwc-convs pass lowered the convs of run-time weights; constant ones stay as they are.
  lowerConvsToNchwc(g, block, roots, { constantWeights: !training });
  const twin = new Map<number, Value>();
  const wholeBlocks = (v: Value) => v.shape.length === 4 && v.shape[1]! % block === 0;
  // A blocked value as its 5-d view [N, C/B, H, W, B] and back.
  const view5 = (v: Value) => {
    const [n, c, h, w] = v.shape as [number, number, number, number];
    return g.reshape(v, [n, c / block, h, w, block]);
  };
  // [C, 1, 1], [1, C, 1, 1] or [N, C, 1, 1]: one value per channel (and sample), as a timestep shift.
  const perChannel = (v: Value, c: number) =>
    v.shape.length >= 3 &&
    v.shape.length <= 4 &&
    v.shape.at(-3) === c &&
    v.shape.at(-1) === 1 &&
    v.shape.at(-2) === 1;
  // Where an op reads the NCHW form of a twinned value, it gets the twin reordered (once), not the
  // original op's NCHW computation (which would keep a second, NCHW copy of the network alive).
  const reorderOutput = (tv: Value, shape: readonly number[]) =>
    g.node(
      'ReorderOutput',
      [tv],
      [shape],
      { channels_last: 0, channels: shape[1]! },
      undefined,
      undefined,
      NCHWC_DOMAIN,
    )[0]!;
  const toNchw = (n: Node, tv: Value) => g.replaceNode(n, () => reorderOutput(tv, n.outputs[0]!.shape));
  const setTwin = (n: Node, tv: Value) => {
    twin.set(n.outputs[0]!.id, tv);
    toNchw(n, tv);
  };

  // A residual Add whose one side is a conv used only there becomes that conv's Sum input (ORT's NCHWc
  // Conv adds it while writing its output, as ORT's own NCHWc transformer fuses it).
  const uses = new Map<number, number>();
  for (const n of g.liveNodes(roots)) for (const v of n.inputs) uses.set(v.id, (uses.get(v.id) ?? 0) + 1);
  // A conv without a bias (the backward's input-gradient convs) gets zeros for one: Sum is the fourth input.
  const sumIntoConv = (nchw: Value, conv: Value, other: Value): Value | undefined => {
    const c = conv.producer;
    if (!(c?.op === 'Conv' && c.domain === NCHWC_DOMAIN && c.inputs.length <= 3)) return undefined;
    if (uses.get(nchw.id) !== 1 || uses.get(conv.id) !== 1) return undefined;
    const bias = c.inputs[2] ?? g.constant(new Float32Array(conv.shape[1]!), [conv.shape[1]!]);
    return g.node(
      'Conv',
      [c.inputs[0]!, c.inputs[1]!, bias, other],
      [conv.shape],
      c.attrs,
      c.meta,
      undefined,
      NCHWC_DOMAIN,
    )[0]!;
  };

  const t = (v: Value) => twin.get(v.id);
  const anyGroups = g.fused.includes('GroupNormSiluBlockedAnyGroups');
  const fusedNode = (
    n: Node,
    inputs: Value[],
    attrs: Node['attrs'],
    shapes = n.outputs.map((o) => o.shape),
  ) => g.node(n.op, inputs, shapes, attrs, undefined, undefined, FUSED_DOMAIN);
  for (const n of g.liveNodes(roots)) {
    const out = n.outputs[0]!;
    switch (kindOf(n)) {
      case 'reorderOutput': {
        const y = n.inputs[0]!;
        if (wholeBlocks(out) && y.shape[1] === out.shape[1]) twin.set(out.id, y);
        break;
      }
      case 'reorderInput': {
        const x = t(n.inputs[0]!);
        if (x) g.replaceNode(n, () => g.identity(x));
        break;
      }
      case 'groupNormSilu': {
        const [x, gamma, beta, shift] = n.inputs as [Value, Value, Value, Value | undefined];
        const bx = t(x);
        const groups = n.attrs.groups as number;
        const anyGroups = g.fused.includes('GroupNormSiluBlockedAnyGroups');
        if (bx && !n.attrs.block && groupsTileBlocks(x.shape[1]!, groups, block, anyGroups)) {
          const eps = (n.attrs.epsilon as { floats: number[] }).floats[0]!;
          setTwin(n, g.groupNormSiluFused(bx, groups, gamma, beta, eps, block, shift));
        }
        break;
      }
      case 'add': {
        const [a, b] = n.inputs as [Value, Value];
        if (!wholeBlocks(out)) break;
        const [ta, tb] = [t(a), t(b)];
        if ((ta || tb) && a.shape.join() === b.shape.join()) {
          // With one side in NCHW (a residual around attention, which runs in NCHW), that side is reordered
          // instead of the sum, so the sum stays blocked for the convs, norms and concatenations after it.
          setTwin(
            n,
            ta && tb
              ? (sumIntoConv(a, ta, tb) ?? sumIntoConv(b, tb, ta) ?? g.add(ta, tb))
              : g.add(ta ?? reorderToBlocked(g, a), tb ?? reorderToBlocked(g, b)),
          );
        } else if ((ta && perChannel(b, out.shape[1]!)) || (tb && perChannel(a, out.shape[1]!))) {
          const [full, bias] = ta ? [ta, b] : [tb!, a];
          const [nb, c] = full.shape as [number, number];
          const bn = bias.shape.length === 4 ? bias.shape[0]! : 1;
          if (bn !== 1 && bn !== nb) break;
          const b5 = g.reshape(bias, [bn, c / block, 1, 1, block]); // [N or 1, C/B, 1, 1, B]
          setTwin(n, g.reshape(g.add(view5(full), b5), full.shape));
        }
        break;
      }
      case 'concat': {
        const axis = n.attrs.axis as number;
        const ts = n.inputs.map(t);
        if (axis === 1 && wholeBlocks(out) && ts.every((v) => v !== undefined)) {
          setTwin(n, g.concat(ts as Value[], 1));
        }
        break;
      }
      case 'interleave': {
        const phases = (n.meta!.interleaveOf as readonly Value[]).map(t);
        const b = n.meta!.phasesPerAxis as number;
        if (!wholeBlocks(out) || phases.some((p) => p === undefined)) break;
        const [nb, c, h, w] = phases[0]!.shape as [number, number, number, number];
        const cb = c / block;
        // phases[i*b + j] -> out[., ., b*h + i, b*w + j]: stack j after W, then i after H.
        const rows: Value[] = [];
        for (let i = 0; i < b; i++) {
          const cols = phases.slice(i * b, (i + 1) * b).map((p) => g.reshape(p!, [nb, cb, h, w, 1, block]));
          rows.push(g.reshape(g.concat(cols, 4), [nb, cb, h, 1, w * b, block])); // [N, C/B, H, 1, bW, B]
        }
        setTwin(n, g.reshape(g.concat(rows, 3), out.shape)); // [N, C/B, bH, bW, B] as [N, C, bH, bW]
        break;
      }
      case 'groupNormSiluRecompute': {
        const [x, gamma, beta, after] = n.inputs as [Value, Value, Value, Value];
        const bx = t(x);
        // `after` only orders the node (never read): its twin, so that no NCHW copy is made for it.
        if (bx && groupsTileBlocks(x.shape[1]!, n.attrs.groups as number, block, anyGroups))
          setTwin(n, fusedNode(n, [bx, gamma, beta, t(after) ?? after], { ...n.attrs, block })[0]!);
        break;
      }
      case 'groupNormSiluGrad': {
        const [dy, x, gamma, beta] = n.inputs as [Value, Value, Value, Value];
        const bx = t(x);
        if (!bx || !(block === 8 || block === 16) || x.shape.length !== 4) break;
        let bdx: Value | undefined;
        g.replaceNodeOutputs(n, () => {
          const [dx, dgamma, dbeta] = fusedNode(n, [t(dy) ?? reorderToBlocked(g, dy), bx, gamma, beta], {
            ...n.attrs,
            block,
          }) as [Value, Value, Value];
          bdx = dx;
          return [reorderOutput(dx, out.shape), dgamma, dbeta];
        });
        twin.set(out.id, bdx!);
        break;
      }
      case 'dropoutMul': {
        const [x, key] = n.inputs as [Value, Value];
        const bx = t(x);
        if (bx && wholeBlocks(x) && (block === 8 || block === 16))
          setTwin(n, fusedNode(n, [bx, key], { ...n.attrs, block })[0]!);
        break;
      }
      case 'convWeightGrad': {
        const [x, dy] = n.inputs as [Value, Value];
        const [bx, bdy] = [t(x), t(dy)];
        if ((!bx && !bdy) || n.attrs.xblock || n.attrs.dyblock) break;
        g.replaceNode(
          n,
          () =>
            fusedNode(n, [bx ?? x, bdy ?? dy], {
              ...n.attrs,
              xblock: bx ? block : 0,
              dyblock: bdy ? block : 0,
            })[0]!,
        );
        break;
      }
      case 'slice': {
        // Slice(x, starts, ends, axes[, steps]) of channels [s, e) by whole blocks, step 1.
        const [x, ...rest] = n.inputs as [Value, ...Value[]];
        const bx = t(x);
        const ints = rest
          .map((v) => g.leafOf(v))
          .map((l) =>
            l?.kind === 'const' ? Array.from(l.data as ArrayLike<number | bigint>, Number) : undefined,
          );
        const [starts, ends, axes, steps] = ints;
        if (!bx || !wholeBlocks(out) || !starts || !ends || !axes || axes.length !== 1 || axes[0] !== 1)
          break;
        if (steps && steps[0] !== 1) break;
        const c = x.shape[1]!;
        const s0 = Math.min(Math.max(starts[0]! < 0 ? starts[0]! + c : starts[0]!, 0), c);
        if (s0 % block !== 0) break;
        setTwin(
          n,
          g.reshape(g.slice(view5(bx), [1], [s0 / block], [s0 / block + out.shape[1]! / block]), out.shape),
        );
        break;
      }
      case 'reduceSum': {
        // A per-(sample, channel) sum over the grid (bias and timestep-shift gradients, Graph.reduceSum's
        // [N C, H W] view summed over its last axis): the sum over the grid axis of [N, C/B, H W, B].
        const r = n.inputs[0]!;
        const axes = n.inputs[1] && g.leafOf(n.inputs[1]);
        if (r.producer?.op !== 'Reshape' || r.producer.domain || n.attrs.keepdims !== 0) break;
        if (
          axes?.kind !== 'const' ||
          Array.from(axes.data as ArrayLike<number | bigint>, Number).join() !== '1'
        )
          break;
        const src = r.producer.inputs[0]!;
        const bs = t(src);
        if (!bs || !wholeBlocks(src)) break;
        const [nb, c, h, w] = src.shape as [number, number, number, number];
        if (r.shape.join() !== [nb * c, h * w].join()) break;
        g.replaceNode(n, () =>
          g.reshape(g.reduceSum(g.reshape(bs, [nb, c / block, h * w, block]), [2], false), out.shape),
        );
        break;
      }
      case 'other':
        break;
    }
  }
  g.sortNodes();
  return { twinned: twin.size };
}

type Kind =
  | 'reorderOutput'
  | 'reorderInput'
  | 'groupNormSilu'
  | 'groupNormSiluRecompute'
  | 'groupNormSiluGrad'
  | 'dropoutMul'
  | 'convWeightGrad'
  | 'add'
  | 'concat'
  | 'slice'
  | 'reduceSum'
  | 'interleave'
  | 'other';

function kindOf(n: Node): Kind {
  if (n.domain === NCHWC_DOMAIN) {
    if (n.op === 'ReorderOutput') return 'reorderOutput';
    if (n.op === 'ReorderInput') return 'reorderInput';
    return 'other';
  }
  if (n.domain === FUSED_DOMAIN) {
    switch (n.op) {
      case 'GroupNormSilu':
      case 'GroupNormSiluShift':
        return 'groupNormSilu';
      case 'GroupNormSiluRecompute':
        return 'groupNormSiluRecompute';
      case 'GroupNormSiluGrad':
        return 'groupNormSiluGrad';
      case 'DropoutMul':
        return 'dropoutMul';
      case 'ConvWeightGrad':
        return 'convWeightGrad';
      default:
        return 'other';
    }
  }
  if (n.domain) return 'other';
  if (n.meta?.interleaveOf) return 'interleave';
  switch (n.op) {
    case 'Add':
      return 'add';
    case 'Concat':
      return 'concat';
    case 'Slice':
      return 'slice';
    case 'ReduceSum':
      return 'reduceSum';
    default:
      return 'other';
  }
}
