// winograd-convs: ONNX Runtime's blocked 3x3, stride-1, pad-1 convolutions with constant filters -> the native
// ConvWinograd kernel (native/winograd.cc): Winograd F(2x2, 3x3) (Lavin & Gray 2016), 16 products per input
// and output channel pair for each 2x2 output tile instead of 36. The filters are transformed here, in
// float64: U = G g G^T for each filter g, as [16, C, K]. Inference graphs with constant weights on the native
// engine's NCHW16c layout (AVX-512 builds: WinogradPreferred), after blocked-layout; C and K multiples of 16,
// even sizes. The same convolution to float rounding (the transforms only add and halve).

import type { Node, Value } from '../graph.js';
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
  if (!filters) return false;
  const g = ctx.graph;
  g.replaceNode(n, () => {
    const u = constant32(g, winogradFilters(filters, k, c), [16, c, k]); // [16, C, K]
    const b = bias ?? g.constant(new Float32Array(k), [k]);
    return g.convWinograd(x, u, b, sum);
  });
  return true;
}

export const winogradConvs: GraphPass = {
  name: 'winograd-convs',
  stage: 'layout',
  scope: 'constant-weights',
  summary: '3x3 stride-1 convolutions with constant filters -> Winograd F(2x2, 3x3) (native, NCHW16c)',
  run(ctx) {
    if (ctx.nchwcBlock !== 16 || !ctx.graph.fused.includes('ConvWinograd')) return 0;
    let count = 0;
    for (const n of liveNodes(ctx)) if (rewrite(ctx, n)) count++;
    return count;
  },
};
