// winograd-convs: ONNX Runtime's blocked 3x3, stride-1, pad-1 convolutions -> the native
// ConvWinograd kernel (native/winograd.cc): Winograd F(2x2, 3x3) (Lavin & Gray 2016), 16 products per input
// and output channel pair for each 2x2 output tile instead of 36. The filters are transformed here, in
// float64: U = G g G^T for each filter g, as [16, C, K]; in a training graph, whose filters are fed every step,
// by the native WinogradFilter kernel in the graph. Runs after the gradient is taken (layout stage,
// after blocked-layout), so a training graph's input-gradient convolutions (3x3, stride 1, pad 1, with the
// flipped filters) are rewritten too, and no gradient rule is needed. The native engine's NCHW16c layout
// (AVX-512 builds: WinogradPreferred); C and K multiples of 16, even sizes. The same convolution to float
// rounding (the transforms only add and halve). A training graph's weight gradients of these convolutions, x
// and dy both blocked, go to ConvWinogradWeightGrad: Winograd F(3x3, 2x2), 16 products per channel pair and
// tile against 36.

import { FUSED_DOMAIN, type Graph, type Node, type Value } from '../graph.js';
import { NCHWC_DOMAIN } from '../nchwc.js';
import { constant32, constantOf, type GraphPass, liveNodes, type PassContext } from './util.js';

/** U [16, C, K] (position i * 4 + j of the 4x4 transformed tile, input channel, output channel) of w [K, C, 3, 3]. */
export function winogradFilters(w: ArrayLike<number>, k: number, c: number): Float64Array {
  const u = new Float64Array(16 * c * k);
  const t = [new Float64Array(3), new Float64Array(3), new Float64Array(3), new Float64Array(3)];
  for (let o = 0; o < k; o++)
    for (let ci = 0; ci < c; ci++) {
      const g = (r: number, s: number) => w[((o * c + ci) * 3 + r) * 3 + s]!;
      // G g, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
      for (let s = 0; s < 3; s++) {
        t[0]![s] = g(0, s);
        t[1]![s] = 0.5 * (g(0, s) + g(1, s) + g(2, s));
        t[2]![s] = 0.5 * (g(0, s) - g(1, s) + g(2, s));
        t[3]![s] = g(2, s);
      }
      for (let i = 0; i < 4; i++) {
        const r = t[i]!;
        const row = [r[0]!, 0.5 * (r[0]! + r[1]! + r[2]!), 0.5 * (r[0]! - r[1]! + r[2]!), r[2]!]; // (G g) G^T
        for (let j = 0; j < 4; j++) u[((i * 4 + j) * c + ci) * k + o] = row[j]!;
      }
    }
  return u;
}

/** U of filters fed at run time, in the graph: from the weight itself where w is flippedKernel of it. */
function fedFilters(g: Graph, w: Value): Value {
  const of = w.producer?.meta?.flippedKernelOf as Value | undefined;
  return of && of.shape[2] === 3 && of.shape[3] === 3 ? g.winogradFilter(of, true) : g.winogradFilter(w);
}

function rewrite(ctx: PassContext, n: Node): boolean {
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
  if (k % 16 || c % 16 || xc !== c || out.shape[1] !== k || h % 2 || wd % 2) return false;
  const filters = constantOf(ctx, w);
  const g = ctx.graph;
  if (!filters && !g.fused.includes('WinogradFilter')) return false;
  g.replaceNode(n, () => {
    const u = filters
      ? constant32(g, winogradFilters(filters, k, c), [16, c, k]) // [16, C, K]
      : fedFilters(g, w); // transformed every step
    const b = bias ?? g.constant(new Float32Array(k), [k]);
    return g.convWinograd(x, u, b, sum);
  });
  return true;
}

/** A training graph's ConvWeightGrad of such a convolution, x and dy both NCHW16c -> ConvWinogradWeightGrad. */
function rewriteWeightGrad(ctx: PassContext, n: Node): boolean {
  if (n.op !== 'ConvWeightGrad' || n.domain !== FUSED_DOMAIN) return false;
  const a = n.attrs;
  if (a.kh !== 3 || a.kw !== 3 || a.sh !== 1 || a.sw !== 1 || a.pt !== 1 || a.pl !== 1) return false;
  if (a.xblock !== 16 || a.dyblock !== 16) return false;
  const [x, dy] = n.inputs as [Value, Value];
  if (x.shape.length !== 4 || dy.shape.length !== 4) return false;
  const [xn, c, h, w] = x.shape as [number, number, number, number];
  const [dn, k, dh, dw] = dy.shape as [number, number, number, number];
  if (xn !== dn || dh !== h || dw !== w || k % 16 || c % 16 || h % 2 || w % 2) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => g.convWinogradWeightGrad(x, dy)); // [K, C, 3, 3]
  return true;
}

export const winogradConvs: GraphPass = {
  name: 'winograd-convs',
  stage: 'layout',
  scope: 'any',
  summary:
    '3x3 stride-1 convolutions -> Winograd F(2x2, 3x3), their weight gradients -> F(3x3, 2x2) (native, NCHW16c)',
  run(ctx) {
    if (ctx.nchwcBlock !== 16 || !ctx.graph.fused.includes('ConvWinograd')) return 0;
    let count = 0;
    const grads = ctx.graph.fused.includes('ConvWinogradWeightGrad');
    for (const n of liveNodes(ctx)) if (rewrite(ctx, n) || (grads && rewriteWeightGrad(ctx, n))) count++;
    return count;
  },
};
