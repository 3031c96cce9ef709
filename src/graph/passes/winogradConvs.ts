// winograd-convs: ONNX Runtime's blocked 3x3, stride-1, pad-1 convolutions -> the native
// ConvWinograd kernel (native/winograd.cc): Winograd F(m x m, 3x3) (Lavin & Gray 2016), (m + 2)^2 products per
// input and output channel pair for each m x m output tile instead of 9 m^2: F(4x4, 3x3) where the grid is a
// multiple of 4 (36 against 144), else F(2x2, 3x3) (16 against 36). Constant filters are transformed here, in
// float64: U = G g G^T for each filter g, as [P, C, K]; a training graph's, fed every step, by the native
// WinogradFilter kernel in the graph (float32). Runs after the gradient is taken (layout stage, after
// blocked-layout), so a training graph's input-gradient convolutions (3x3, stride 1, pad 1, with the flipped
// filters) are rewritten too, and no gradient rule is needed; its weight gradients of these convolutions, x or
// dy blocked (the other reordered), go to ConvWinogradWeightGrad (F(3x3, m x m)). The native engine's NCHWc
// layout: 16-channel blocks (AVX-512 builds: WinogradPreferred), or 8 (AVX2, WinogradBlock8; untimed there,
// so only with DDPM_WINOGRAD=1); WinogradF4 for the 4x4 tiles (DDPM_WINOGRAD_TILE=2 without); C and K
// multiples of the block. The same convolution to float rounding: F(2x2)'s transforms only add and halve;
// F(4x4)'s multiply by up to 8 and divide by 24, about ten times the rounding (src/engine/nativeWinograd.test.ts).

import { FUSED_DOMAIN, type Graph, type Node, type Value, type WinogradTile } from '../graph.js';
import { NCHWC_DOMAIN, reorderToBlocked } from '../nchwc.js';
import { constant32, constantOf, type GraphPass, liveNodes, type PassContext } from './util.js';

/** G g of one filter column g (3 values) for F(m x m, 3x3): m + 2 values. */
function filterColumn(g: readonly number[], m: WinogradTile): number[] {
  const [a, b, c] = g as [number, number, number];
  switch (m) {
    case 2: // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
      return [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    case 4: // G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
      return [a / 4, -(a + b + c) / 6, -(a - b + c) / 6, a / 24 + b / 12 + c / 6, a / 24 - b / 12 + c / 6, c];
  }
}

/**
 * U [P, C, K] (position i * (m + 2) + j of the transformed tile, input channel, output channel; P = (m + 2)^2)
 * of w [K, C, 3, 3]: G g G^T of each filter g, for F(m x m, 3x3).
 */
export function winogradFilters(
  w: ArrayLike<number>,
  k: number,
  c: number,
  m: WinogradTile = 2,
): Float64Array {
  const a = m + 2;
  const u = new Float64Array(a * a * c * k);
  for (let o = 0; o < k; o++)
    for (let ci = 0; ci < c; ci++) {
      const g = (r: number, s: number) => w[((o * c + ci) * 3 + r) * 3 + s]!;
      const cols = [0, 1, 2].map((s) => filterColumn([g(0, s), g(1, s), g(2, s)], m)); // G g, column by column
      for (let i = 0; i < a; i++) {
        const row = filterColumn([cols[0]![i]!, cols[1]![i]!, cols[2]![i]!], m); // (G g) G^T
        for (let j = 0; j < a; j++) u[((i * a + j) * c + ci) * k + o] = row[j]!;
      }
    }
  return u;
}

/** U of filters fed at run time, in the graph: from the weight itself where w is flippedKernel of it. */
function fedFilters(g: Graph, w: Value, m: WinogradTile): Value {
  const of = w.producer?.meta?.flippedKernelOf as Value | undefined;
  return of && of.shape[2] === 3 && of.shape[3] === 3
    ? g.winogradFilter(of, true, m)
    : g.winogradFilter(w, false, m);
}

/** The output tile for an H x W grid: F(4x4, 3x3) where the grid takes it and the engine has it, else F(2x2). */
function tileFor(g: Graph, h: number, w: number): WinogradTile {
  return g.fused.includes('WinogradF4') && h % 4 === 0 && w % 4 === 0 ? 4 : 2;
}

function rewrite(ctx: PassContext, n: Node, block: 8 | 16): boolean {
  if (n.op !== 'Conv' || n.domain !== NCHWC_DOMAIN) return false;
  const a = n.attrs;
  const same = (x: unknown, want: number[]) => JSON.stringify(x) === JSON.stringify(want);
  if (!same(a.kernel_shape, [3, 3]) || !same(a.strides, [1, 1]) || !same(a.pads, [1, 1, 1, 1])) return false;
  if ((a.group ?? 1) !== 1 || a.activation !== undefined) return false;
  const w = n.meta?.filterOf as Value | undefined;
  const [x, , bias, sum] = n.inputs as [Value, Value, Value | undefined, Value | undefined];
  const out = n.outputs[0]!;
  if (!w || x.shape.length !== 4 || out.shape.length !== 4) return false;
  const [k, c] = w.shape as [number, number];
  const [, xc, h, wd] = x.shape as [number, number, number, number];
  if (k % block || c % block || xc !== c || out.shape[1] !== k || h % 2 || wd % 2) return false;
  const filters = constantOf(ctx, w);
  const g = ctx.graph;
  if (!filters && !g.fused.includes('WinogradFilter')) return false;
  const m = tileFor(g, h, wd);
  g.replaceNode(n, () => {
    const u = filters
      ? constant32(g, winogradFilters(filters, k, c, m), [(m + 2) ** 2, c, k]) // [P, C, K]
      : fedFilters(g, w, m); // transformed every step
    const b = bias ?? g.constant(new Float32Array(k), [k]);
    return g.convWinograd(x, u, b, sum, block, filters ? w : undefined);
  });
  return true;
}

/**
 * A training graph's ConvWeightGrad of such a convolution, x or dy blocked -> ConvWinogradWeightGrad, the other
 * side reordered to blocks if it is plain: the algorithm (so the rounding) of a weight gradient does not depend
 * on which ops made its inputs (kernel dropout's gradients equal fed masks' bit for bit).
 */
function rewriteWeightGrad(ctx: PassContext, n: Node, block: 8 | 16): boolean {
  if (n.op !== 'ConvWeightGrad' || n.domain !== FUSED_DOMAIN) return false;
  const a = n.attrs;
  if (a.kh !== 3 || a.kw !== 3 || a.sh !== 1 || a.sw !== 1 || a.pt !== 1 || a.pl !== 1) return false;
  const [xb, dyb] = [a.xblock ?? 0, a.dyblock ?? 0];
  if (!(xb === block || dyb === block) || (xb && xb !== block) || (dyb && dyb !== block)) return false;
  const [x, dy] = n.inputs as [Value, Value];
  if (x.shape.length !== 4 || dy.shape.length !== 4) return false;
  const [xn, c, h, w] = x.shape as [number, number, number, number];
  const [dn, k, dh, dw] = dy.shape as [number, number, number, number];
  if (xn !== dn || dh !== h || dw !== w || k % block || c % block || h % 2 || w % 2) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => {
    const bx = xb ? x : reorderToBlocked(g, x); // [N, C, H, W] blocked
    const bdy = dyb ? dy : reorderToBlocked(g, dy); // [N, K, H, W] blocked
    return g.convWinogradWeightGrad(bx, bdy, tileFor(g, h, w), block); // [K, C, 3, 3]
  });
  return true;
}

export const winogradConvs: GraphPass = {
  name: 'winograd-convs',
  stage: 'layout',
  scope: 'any',
  summary:
    '3x3 stride-1 convolutions and their weight gradients -> Winograd F(4x4 or 2x2, 3x3) (native, NCHWc)',
  run(ctx) {
    const fused = ctx.graph.fused;
    const block = ctx.nchwcBlock;
    if (
      !fused.includes('ConvWinograd') ||
      !(block === 16 || (block === 8 && fused.includes('WinogradBlock8')))
    )
      return 0;
    let count = 0;
    const grads = fused.includes('ConvWinogradWeightGrad');
    for (const n of liveNodes(ctx))
      if (rewrite(ctx, n, block) || (grads && rewriteWeightGrad(ctx, n, block))) count++;
    return count;
  },
};
