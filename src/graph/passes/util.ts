// What the graph passes share: the context they run in, constant look-up (through reshapes), projection
// matching (W x + b over the channels of [N, C, L]) and float64 matrix arithmetic for folding weights.

import type { Graph, Leaf, Node, Value } from '../graph.js';

export interface PassContext {
  readonly graph: Graph;
  /** The values the graph is run for (outputs): passes visit only the nodes these depend on. */
  readonly roots: readonly Value[];
  /** Parameters are baked in as constants (an inference graph): passes may fold them in float64. */
  readonly constantWeights: boolean;
  /** A gradient is (or will be) taken of this graph: only passes valid for training graphs run. */
  readonly training: boolean;
  /** The engine's NCHWc block size (8 or 16), 0 = none (layout passes). */
  readonly nchwcBlock: number;
  /** Value ranges of each conv's input and output by its weight's name (quantize-int8; calibrate.ts). */
  readonly calibration?: ConvRanges;
}

/** The smallest and largest value seen at a conv's input (x) and output (y), by the conv weight's name. */
export type ConvRanges = ReadonlyMap<string, { readonly x: [number, number]; readonly y: [number, number] }>;

/** Where a pass is valid: any graph, inference graphs only, or graphs whose weights are constants. */
export type PassScope = 'any' | 'inference' | 'constant-weights';

export interface GraphPass {
  readonly name: string;
  /** 'forward': on the model as built (before a gradient is taken); 'layout': on the whole graph, last. */
  readonly stage: 'forward' | 'layout';
  readonly scope: PassScope;
  /** What it rewrites, in a line. */
  readonly summary: string;
  /** Not in the default selection: only when named (or added with '+name'). */
  readonly optIn?: boolean;
  /** Rewrites every match; returns how many (0 and the graph untouched when the pattern is absent). */
  run(ctx: PassContext): number;
}

/** Leaf records by value id, refreshed when the graph gains leaves. */
const leafIndex = new WeakMap<Graph, { count: number; map: Map<number, Leaf> }>();

function leafOf(g: Graph, v: Value): Leaf | undefined {
  let idx = leafIndex.get(g);
  if (!idx || idx.count !== g.leaves.length) {
    idx = { count: g.leaves.length, map: new Map(g.leaves.map((l) => [l.value.id, l])) };
    leafIndex.set(g, idx);
  }
  return idx.map.get(v.id);
}

/**
 * The float32 values of v when they are known at build time: a constant (not an opaque one), a parameter
 * of a graph with constant weights, or a reshape or identity of one (the same values in row-major order).
 */
export function constantOf(ctx: PassContext, v: Value): Float32Array | undefined {
  const leaf = leafOf(ctx.graph, v);
  if (leaf) {
    if (leaf.kind === 'const' && !leaf.opaque && leaf.data instanceof Float32Array) return leaf.data;
    if (leaf.kind === 'param' && ctx.constantWeights) return leaf.data;
    return undefined;
  }
  const p = v.producer;
  if (p && !p.domain && (p.op === 'Reshape' || (p.op === 'Identity' && !p.meta?.stopGradient)))
    return constantOf(ctx, p.inputs[0]!);
  return undefined;
}

/** The nodes the roots depend on, in graph order (a snapshot: passes rewrite as they go). */
export function liveNodes(ctx: PassContext): Node[] {
  return ctx.graph.liveNodes(ctx.roots);
}

/** How many live nodes read each value. */
export function useCounts(ctx: PassContext): Map<number, number> {
  const uses = new Map<number, number>();
  for (const n of liveNodes(ctx)) for (const v of n.inputs) uses.set(v.id, (uses.get(v.id) ?? 0) + 1);
  for (const r of ctx.roots) uses.set(r.id, (uses.get(r.id) ?? 0) + 1);
  return uses;
}

/** A projection over the channels of x [N, C, L]: W [O, C] @ x, plus b [O, 1] (one value per channel). */
export interface Projection {
  readonly w: Value;
  readonly x: Value;
  /** The W @ x value (the projection without its bias). */
  readonly wx: Value;
  readonly b?: Value;
}

/** v as W @ x or W @ x + b with W [O, C], x [N, C, L] and b [O, 1] (either operand order), or undefined. */
export function matchProjection(v: Value): Projection | undefined {
  const p = v.producer;
  if (!p || p.domain) return undefined;
  const mm = (u: Value) => {
    const m = u.producer;
    if (m?.op !== 'MatMul' || m.domain) return undefined;
    const [w, x] = m.inputs as [Value, Value];
    if (w.shape.length !== 2 || x.shape.length !== 3) return undefined;
    return { w, x, wx: u };
  };
  if (p.op === 'MatMul') return mm(v);
  if (p.op !== 'Add') return undefined;
  const [a, b] = p.inputs as [Value, Value];
  const perChannel = (u: Value, o: number) => u.shape.length === 2 && u.shape[0] === o && u.shape[1] === 1;
  for (const [m, bias] of [
    [a, b],
    [b, a],
  ] as const) {
    const core = mm(m);
    if (core && perChannel(bias, core.w.shape[0]!)) return { ...core, b: bias };
  }
  return undefined;
}

/** a [m, k] @ b [k, n] in float64 (row-major). */
export function matmul64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      if (x === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += x * b[p * n + j]!;
    }
  return out;
}

export function transpose64(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  return out;
}

/** A float64 array as a float32 constant of the graph. */
export function constant32(g: Graph, a: ArrayLike<number>, shape: readonly number[]): Value {
  return g.constant(Float32Array.from(a), shape);
}
