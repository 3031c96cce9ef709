// winograd-bf16 (opt-in; `--precision bf16`): the Winograd convolutions of an inference graph with their
// products in bfloat16 (native ConvWinogradBf16, AVX-512 BF16's VDPBF16PS: two products per float32 lane,
// twice the float32 kernel's multiply-adds per instruction). Runs just before winograd-convs, on the same
// convolutions (winogradConvOf: blocked 3x3, stride 1, pad 1) where they have 16-channel blocks and constant
// filters g, which winograd-convs then leaves alone: U = G g G^T of F(2x2, 3x3) (computed in float64 from g)
// rounded to bfloat16 (through float32, to nearest, ties to even) and packed two input channels to an int32 word,
// [16, C/2, K]; the kernel rounds the transformed input tiles B^T d B the same way and sums the products in
// float32. F(2x2) even where winograd-convs would choose F(4x4): F(4x4)'s transforms (input entries up to 100 times
// d's, outputs up to 8 times the products) amplify bfloat16's rounding about 7x (rms error 2.1e-2-2.6e-2
// against 3.4e-3-3.6e-3 on outputs of size ~1.4, src/engine/nativeWinograd.test.ts), for a tenth more speed
// (L-fwd batch 16 218 against 245 ms). Approximate by design (8 significant bits per operand): the
// "Fast and lean" issue, item 4; its speed and FID change are in the README's Benchmarks. Everything else
// stays float32.

import type { Graph, Node } from '../graph.js';
import { winogradConvOf, winogradFilters } from './winogradConvs.js';
import { type GraphPass, liveNodes, type PassContext } from './util.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bfloat16 bits of x: float32 rounded to 8 significant bits, to nearest with ties to even (NaN kept NaN). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40; // a quiet NaN
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** The float value of bfloat16 bits. */
export function bf16Value(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** U [P, C, K] -> words [P, C/2, K]: (U[xi][2q][k], U[xi][2q + 1][k]) in bfloat16, low half first. */
export function packBf16Pairs(u: ArrayLike<number>, p: number, c: number, k: number): Int32Array {
  const words = new Int32Array((p * c * k) / 2);
  for (let xi = 0; xi < p; xi++)
    for (let q = 0; q < c / 2; q++)
      for (let o = 0; o < k; o++) {
        const lo = bf16Bits(u[(xi * c + 2 * q) * k + o]!);
        const hi = bf16Bits(u[(xi * c + 2 * q + 1) * k + o]!);
        words[(xi * (c / 2) + q) * k + o] = lo | (hi << 16);
      }
  return words;
}

/** Whether an engine's fused kernels run ConvWinogradBf16 (the kernel, and a build with AVX-512 BF16). */
export function hasBf16Winograd(fused: readonly string[]): boolean {
  return fused.includes('ConvWinogradBf16') && fused.includes('WinogradBf16');
}

function rewrite(ctx: PassContext, g: Graph, n: Node): boolean {
  const conv = winogradConvOf(ctx, n, 16);
  if (!conv?.filters) return false;
  const { x, filters, bias, sum, k, c } = conv;
  const words = packBf16Pairs(winogradFilters(filters, k, c, 2, new Float32Array(16 * c * k)), 16, c, k); // [16, C/2, K]
  g.replaceNode(n, () =>
    g.convWinogradBf16(
      x,
      g.constant(words, [16, c / 2, k]),
      bias ?? g.constant(new Float32Array(k), [k]),
      sum,
    ),
  );
  return true;
}

export const winogradBf16: GraphPass = {
  name: 'winograd-bf16',
  stage: 'layout',
  scope: 'constant-weights',
  optIn: true,
  summary: 'Winograd convolutions of constant filters -> F(2x2, 3x3) with bfloat16 products (AVX-512 BF16)',
  run(ctx) {
    const g = ctx.graph;
    if (!hasBf16Winograd(g.fused) || ctx.nchwcBlock !== 16) return 0;
    let count = 0;
    for (const n of liveNodes(ctx)) if (rewrite(ctx, g, n)) count++;
    return count;
  },
};
