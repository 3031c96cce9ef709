// winograd-convs: ONNX Runtime's blocked 3x3, stride-1, pad-1 convolutions -> the native
// ConvWinograd kernel (native/winograd.cc): Winograd F(m x m, 3x3) (Lavin & Gray 2016), (m + 2)^2 products per
// input and output channel pair for each m x m output tile instead of 9 m^2: F(4x4, 3x3) (36 against 144) or
// F(2x2, 3x3) (16 against 36), per layer as measured (tileFor). Constant filters are transformed here, in
// float64: U = G g G^T for each filter g, as [P, C, K]; a training graph's, fed every step, by the native
// WinogradFilter kernel in the graph (float32). Runs after the gradient is taken (layout stage, after
// blocked-layout), so a training graph's input-gradient convolutions (3x3, stride 1, pad 1, with the flipped
// filters) are rewritten too, and no gradient rule is needed; its weight gradients of these convolutions, x or
// dy blocked (the other reordered), go to ConvWinogradWeightGrad (F(3x3, m x m)). The native engine's NCHWc
// layout: 16-channel blocks (AVX-512 builds: WinogradPreferred), or 8 (AVX2, WinogradBlock8; untimed there,
// so only with DDPM_WINOGRAD=1); WinogradF4 for the 4x4 tiles (DDPM_WINOGRAD_TILE=2 or 4 forces a tile);
// C and K multiples of the block. The same convolution to float rounding: F(2x2)'s transforms only add and
// halve; F(4x4)'s multiply by up to 8 and divide by 24, about ten times the rounding (src/engine/nativeWinograd.test.ts).

import { FUSED_DOMAIN, type Graph, type Node, type Value, type WinogradTile } from '../graph.js';
import { NCHWC_DOMAIN, reorderToBlocked } from '../nchwc.js';
import { constantOf, type GraphPass, liveNodes, type PassContext } from './util.js';

/** G g of one filter column g = (a, b, c) for F(m x m, 3x3): m + 2 values, written to out[at + i * stride]. */
function filterColumn(
  a: number,
  b: number,
  c: number,
  m: WinogradTile,
  out: Float64Array,
  at: number,
  stride: number,
): void {
  switch (m) {
    case 2: // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
      out[at] = a;
      out[at + stride] = 0.5 * (a + b + c);
      out[at + 2 * stride] = 0.5 * (a - b + c);
      out[at + 3 * stride] = c;
      return;
    case 4: // G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
      out[at] = a / 4;
      out[at + stride] = -(a + b + c) / 6;
      out[at + 2 * stride] = -(a - b + c) / 6;
      out[at + 3 * stride] = a / 24 + b / 12 + c / 6;
      out[at + 4 * stride] = a / 24 - b / 12 + c / 6;
      out[at + 5 * stride] = c;
      return;
  }
}

/**
 * U [P, C, K] (position i * (m + 2) + j of the transformed tile, input channel, output channel; P = (m + 2)^2)
 * of w [K, C, 3, 3]: G g G^T of each filter g, for F(m x m, 3x3), computed in float64 and stored in `u`
 * (default float64; a Float32Array rounds each value once, as a float32 constant of the float64 result would).
 */
export function winogradFilters<U extends Float64Array | Float32Array = Float64Array>(
  w: ArrayLike<number>,
  k: number,
  c: number,
  m: WinogradTile = 2,
  u: U = new Float64Array((m + 2) ** 2 * c * k) as U,
): U {
  const a = m + 2;
  if (u.length !== a * a * c * k)
    throw new Error(`winogradFilters: u has ${u.length} values, not ${a * a * c * k}`);
  const gg = new Float64Array(a * 3); // G g [a, 3]
  const row = new Float64Array(a); // (G g) G^T, one row
  const ck = c * k;
  for (let ci = 0; ci < c; ci++)
    for (let o = 0; o < k; o++) {
      const f = (o * c + ci) * 9; // g [3, 3] at w[f + 3 r + s]
      for (let s = 0; s < 3; s++) filterColumn(w[f + s]!, w[f + 3 + s]!, w[f + 6 + s]!, m, gg, s, 3);
      for (let i = 0; i < a; i++) {
        filterColumn(gg[3 * i]!, gg[3 * i + 1]!, gg[3 * i + 2]!, m, row, 0, 1);
        for (let j = 0; j < a; j++) u[(i * a + j) * ck + ci * k + o] = row[j]!;
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

/** DDPM_WINOGRAD_TILE: '2' or '4' takes that tile wherever the grid allows (A/B runs); unset, tileFor's rule. */
export const WINOGRAD_TILE_ENV = 'DDPM_WINOGRAD_TILE';

/**
 * The output tile for a C -> K convolution on an H x W grid: F(4x4, 3x3) where the engine has it, the grid is a
 * multiple of 4 and it was measured faster, else F(2x2). F(4x4)'s filters are 2.25 times F(2x2)'s, and on small
 * grids (few tiles per image) a wide layer's time goes to reading them: one Zen 5 core, forward, 256 -> 256 at
 * 8x8, batch 16 / 64: F(2x2) 4.89 / 17.56 ms, F(4x4) 6.11 / 20.49; 512 -> 256 at 8x8 10.42 against 15.09; at
 * 4x4 even (2.35 / 2.24); at 16x16 F(4x4) 11.17 against 19.21; narrow layers (64 -> 64) F(4x4) as fast or
 * faster on every grid (8x8 1.08 against 1.10, 4x4 0.26 against 0.43); the weight gradients alike
 * (bench/README.md, "Winograd tiles by layer"). So F(4x4) from 16x16 up, and below for C K <= 64 x 64.
 */
export function tileFor(g: Graph, h: number, w: number, c: number, k: number): WinogradTile {
  if (!g.fused.includes('WinogradF4') || h % 4 || w % 4) return 2;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[
    WINOGRAD_TILE_ENV
  ];
  switch (env) {
    case '2':
      return 2;
    case '4':
      return 4;
    case undefined:
    case '':
      return h * w >= 256 || c * k <= 64 * 64 ? 4 : 2;
    default:
      throw new Error(
        `${WINOGRAD_TILE_ENV}=${env}: the Winograd tile must be 2 or 4 (unset: each layer's measured choice)`,
      );
  }
}

/** A blocked 3x3, stride-1, pad-1 convolution that a Winograd kernel can run: its operands and sizes. */
export interface WinogradConv {
  readonly x: Value; // [N, C, H, W] blocked
  readonly w: Value; // [K, C, 3, 3], the filters the blocked ones were reordered from
  readonly filters: ArrayLike<number> | undefined; // w's values where they are constant
  readonly bias: Value | undefined; // [K]
  readonly sum: Value | undefined; // [N, K, H, W] blocked, added to the output
  readonly k: number;
  readonly c: number;
  readonly height: number;
  readonly width: number;
}

/** n as a WinogradConv for `block`-channel blocks (C and K multiples of it, H and W even), else undefined. */
export function winogradConvOf(ctx: PassContext, n: Node, block: 8 | 16): WinogradConv | undefined {
  if (n.op !== 'Conv' || n.domain !== NCHWC_DOMAIN) return undefined;
  const a = n.attrs;
  const same = (x: unknown, want: number[]) => JSON.stringify(x) === JSON.stringify(want);
  if (!same(a.kernel_shape, [3, 3]) || !same(a.strides, [1, 1]) || !same(a.pads, [1, 1, 1, 1]))
    return undefined;
  if ((a.group ?? 1) !== 1 || a.activation !== undefined) return undefined;
  const w = n.meta?.filterOf as Value | undefined;
  const [x, , bias, sum] = n.inputs as [Value, Value, Value | undefined, Value | undefined];
  const out = n.outputs[0]!;
  if (!w || x.shape.length !== 4 || out.shape.length !== 4) return undefined;
  const [k, c] = w.shape as [number, number];
  const [, xc, h, wd] = x.shape as [number, number, number, number];
  if (k % block || c % block || xc !== c || out.shape[1] !== k || h % 2 || wd % 2) return undefined;
  return { x, w, filters: constantOf(ctx, w), bias, sum, k, c, height: h, width: wd };
}

function rewrite(ctx: PassContext, n: Node, block: 8 | 16): boolean {
  const conv = winogradConvOf(ctx, n, block);
  const g = ctx.graph;
  if (!conv || (!conv.filters && !g.fused.includes('WinogradFilter'))) return false;
  const { x, w, filters, bias, sum, k, c } = conv;
  const m = tileFor(g, conv.height, conv.width, c, k);
  const p = (m + 2) ** 2;
  g.replaceNode(n, () => {
    const u = filters
      ? g.constant(winogradFilters(filters, k, c, m, new Float32Array(p * c * k)), [p, c, k]) // [P, C, K]
      : fedFilters(g, w, m); // transformed every step
    const b = bias ?? g.constant(new Float32Array(k), [k]);
    return g.convWinograd(x, u, b, sum, block);
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
    return g.convWinogradWeightGrad(bx, bdy, tileFor(g, h, w, c, k), block); // [K, C, 3, 3]
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
