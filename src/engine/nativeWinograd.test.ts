// The native ConvWinograd kernel (native/winograd.cc, Graph.convWinograd, graph pass winograd-convs) with the
// filters as winogradFilters transforms them, against a 3x3, stride-1, pad-1 convolution written out in
// float64: channel counts that take every register tile (16, 32 and 64 output channels at a time), tile
// counts that take every row tile (6, 2, 1), images split into several chunks of tiles, and the residual input;
// and ConvWinogradWeightGrad against the weight gradient's definition in float64; ConvWinogradBf16 (graph pass
// winograd-bf16; AVX-512 BF16 builds) against Winograd in float64 with the kernel's bfloat16 operands, and against
// the convolution within bfloat16's precision.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Graph, type Value, type WinogradTile } from '../graph/graph.js';
import { NCHWC_DOMAIN, relayout, reorderToBlocked } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { bf16Bits, bf16Value, packBf16Pairs } from '../graph/passes/winogradBf16.js';
import { winogradFilters } from '../graph/passes/winogradConvs.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { nativeEngine, nativeKernelNames } from './native.js';

const engine = nativeEngine();
const skip = !engine
  ? 'the native binding is not built (no C++ compiler at npm ci)'
  : !nativeKernelNames().includes('ConvWinograd')
    ? 'this build has no ConvWinograd kernel'
    : false;
const skipBf16 =
  skip ||
  (!nativeKernelNames().includes('WinogradBf16') &&
    'this build has no AVX-512 BF16 (ConvWinogradBf16 computes only there)');

/** y = conv3x3(x, w, pad 1) + b (+ s), all [N, C, H, W], in float64. */
function convReference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  s: Float32Array | undefined,
  d: { n: number; c: number; k: number; h: number; w: number },
): Float64Array {
  const y = new Float64Array(d.n * d.k * d.h * d.w);
  for (let n = 0; n < d.n; n++)
    for (let o = 0; o < d.k; o++)
      for (let i = 0; i < d.h; i++)
        for (let j = 0; j < d.w; j++) {
          const at = ((n * d.k + o) * d.h + i) * d.w + j;
          let acc = b[o]! + (s ? s[at]! : 0);
          for (let c = 0; c < d.c; c++)
            for (let r = 0; r < 3; r++)
              for (let q = 0; q < 3; q++) {
                const [yy, xx] = [i + r - 1, j + q - 1];
                if (yy < 0 || yy >= d.h || xx < 0 || xx >= d.w) continue;
                acc += w[((o * d.c + c) * 3 + r) * 3 + q]! * x[((n * d.c + c) * d.h + yy) * d.w + xx]!;
              }
          y[at] = acc;
        }
  return y;
}

/**
 * A session of one convolution on the blocked layout: x [N, C, H, W] (and the residual s [N, K, H, W] when
 * withSum) reordered to blocks, `conv` of them, the output reordered back. run(x) -> y [N, K, H, W].
 */
async function blockedConv(
  d: { n: number; c: number; k: number; h: number; w: number },
  s: Float32Array | undefined,
  conv: (g: Graph, x: Value, s: Value | undefined) => Value,
): Promise<{ run: (x: Float32Array) => Promise<Float32Array>; release: () => Promise<void> }> {
  const { n, c, k, h, w } = d;
  const g = new Graph();
  const xi = g.input('x', [n, c, h, w]);
  const si = s ? g.input('s', [n, k, h, w]) : undefined;
  const y = conv(g, reorderToBlocked(g, xi), si && reorderToBlocked(g, si)); // blocked
  const out = g.node(
    'ReorderOutput',
    [y],
    [[n, k, h, w]],
    { channels_last: 0, channels: k },
    undefined,
    undefined,
    NCHWC_DOMAIN,
  )[0]!;
  const session = await engine!.createSession(toOnnx(g, { outputs: { y: out }, params: 'initializer' }), {
    threads: 2,
  });
  return {
    run: async (x) => {
      const feeds: Record<string, { data: Float32Array; shape: number[] }> = {
        x: { data: x, shape: [n, c, h, w] },
      };
      if (s) feeds.s = { data: s, shape: [n, k, h, w] };
      return (await session.run(feeds)).y!.data;
    },
    release: () => session.release(),
  };
}

describe('native ConvWinograd', { skip }, () => {
  for (const [m, n, c, k, h, w, withSum, why] of [
    [2, 2, 16, 16, 4, 4, false, 'the smallest: 16 channels, 4 tiles'],
    [2, 3, 48, 80, 6, 10, true, '80 output channels (64 + 16 at a time), 15 tiles (6, 6, 2, 1), a residual'],
    [
      2,
      2,
      128,
      96,
      32,
      32,
      true,
      "L's width: 256 tiles in chunks, 96 outputs (64 + 32 at a time), a residual",
    ],
    [4, 2, 16, 16, 4, 4, false, 'the smallest: one tile per image'],
    [4, 3, 48, 80, 12, 20, true, '80 output channels, 15 tiles (6, 6, 2, 1), a residual'],
    [4, 2, 128, 96, 32, 32, true, "L's width: 64 tiles in chunks, a residual"],
  ] as [WinogradTile, number, number, number, number, number, boolean, string][]) {
    it(`F(${m}x${m}, 3x3), ${why}: matches the float64 convolution`, async () => {
      const rng = new Rng(c * 7 + k);
      const x = rng.normalArray(n * c * h * w);
      const wt = rng.normalArray(k * c * 9).map((v) => v / Math.sqrt(9 * c));
      const b = rng.normalArray(k);
      const s = withSum ? rng.normalArray(n * k * h * w) : undefined;
      const conv = await blockedConv({ n, c, k, h, w }, s, (g, xb, sb) =>
        g.convWinograd(
          xb,
          g.constant(Float32Array.from(winogradFilters(wt, k, c, m)), [(m + 2) ** 2, c, k]),
          g.constant(b, [k]),
          sb,
        ),
      );
      try {
        // F(4x4, 3x3)'s transforms multiply by up to 8 and divide by 24: about 10x F(2x2)'s rounding (max abs
        // error 3.8e-5 at 128 channels on outputs of size 1, against 2.3e-6)
        allClose(
          await conv.run(x),
          convReference(x, wt, b, s, { n, c, k, h, w }),
          1e-4,
          m === 4 ? 1e-4 : 1e-5,
          'ConvWinograd',
        );
      } finally {
        await conv.release();
      }
    });
  }
});

describe('native WinogradFilter', { skip }, () => {
  for (const [m, k, c] of [
    [2, 48, 32],
    [4, 48, 32],
    [4, 40, 24], // channel counts that leave part of a 16-lane block
  ] as [WinogradTile, number, number][]) {
    it(`F(${m}x${m}, 3x3), ${k} x ${c} filters: transforms fed filters as winogradFilters does, and flipped (the conv's input gradient) from the weight`, async () => {
      const w = new Rng(5).normalArray(k * c * 9);
      // flippedKernel(w) [C, K, 3, 3]: transposed, and flipped in both axes
      const flipped = new Float32Array(k * c * 9);
      for (let o = 0; o < k; o++)
        for (let i = 0; i < c; i++)
          for (let t = 0; t < 9; t++) flipped[(i * k + o) * 9 + t] = w[(o * c + i) * 9 + 8 - t]!;
      const g = new Graph();
      const wi = g.input('w', [k, c, 3, 3]);
      const outputs = { u: g.winogradFilter(wi, false, m), uf: g.winogradFilter(wi, true, m) };
      const session = await engine!.createSession(toOnnx(g, { outputs, params: 'initializer' }), {
        threads: 2,
      });
      try {
        const got = await session.run({ w: { data: w, shape: [k, c, 3, 3] } });
        allClose(got.u!.data, winogradFilters(w, k, c, m), 1e-6, 1e-6, 'WinogradFilter');
        allClose(got.uf!.data, winogradFilters(flipped, c, k, m), 1e-6, 1e-6, 'WinogradFilter flip');
      } finally {
        await session.release();
      }
    });
  }
});

/** dw[o, c, i, j] = sum over n, y, x of dy[n, o, y, x] x[n, c, y + i - 1, x + j - 1], in float64. */
function weightGradReference(
  x: Float32Array,
  dy: Float32Array,
  d: { n: number; c: number; k: number; h: number; w: number },
): Float64Array {
  const dw = new Float64Array(d.k * d.c * 9);
  for (let o = 0; o < d.k; o++)
    for (let c = 0; c < d.c; c++)
      for (let r = 0; r < 3; r++)
        for (let q = 0; q < 3; q++) {
          let acc = 0;
          for (let n = 0; n < d.n; n++)
            for (let i = 0; i < d.h; i++)
              for (let j = 0; j < d.w; j++) {
                const [yy, xx] = [i + r - 1, j + q - 1];
                if (yy < 0 || yy >= d.h || xx < 0 || xx >= d.w) continue;
                acc += dy[((n * d.k + o) * d.h + i) * d.w + j]! * x[((n * d.c + c) * d.h + yy) * d.w + xx]!;
              }
          dw[((o * d.c + c) * 3 + r) * 3 + q] = acc;
        }
  return dw;
}

describe('native ConvWinogradWeightGrad', {
  skip:
    skip ||
    (!nativeKernelNames().includes('ConvWinogradWeightGrad') && 'this build has no ConvWinogradWeightGrad'),
}, () => {
  for (const [m, n, c, k, h, w, why] of [
    [2, 2, 16, 16, 4, 4, 'the smallest: 16 channels, 8 tiles in one range'],
    [2, 3, 48, 32, 6, 10, '48 input channels (one 3-vector tile), 32 outputs (4 rows of 8), 45 tiles'],
    [2, 2, 64, 16, 16, 16, '64 input channels (two 2-vector tiles), 128 tiles in 2 ranges'],
    [2, 4, 80, 16, 16, 16, '80 input channels (3 + 2 vectors), 256 tiles: 2 ranges of 2 chunks each'],
    [4, 2, 16, 16, 4, 4, 'the smallest: one tile per image'],
    [4, 3, 48, 32, 12, 20, '48 input channels, 32 outputs, 45 tiles'],
    [4, 8, 80, 16, 32, 32, '80 input channels (3 + 2 vectors), 512 tiles: 2 ranges of several chunks'],
  ] as [WinogradTile, number, number, number, number, number, string][]) {
    it(`F(3x3, ${m}x${m}), ${why}: matches the float64 weight gradient`, async () => {
      const rng = new Rng(c * 11 + k + h);
      const x = rng.normalArray(n * c * h * w);
      const dy = rng.normalArray(n * k * h * w);
      const g = new Graph();
      const xi = g.input('x', [n, c, h, w]);
      const dyi = g.input('dy', [n, k, h, w]);
      const dw = g.convWinogradWeightGrad(reorderToBlocked(g, xi), reorderToBlocked(g, dyi), m); // [K, C, 3, 3]
      const session = await engine!.createSession(toOnnx(g, { outputs: { dw }, params: 'initializer' }), {
        threads: 2,
      });
      try {
        const got = await session.run({
          x: { data: x, shape: [n, c, h, w] },
          dy: { data: dy, shape: [n, k, h, w] },
        });
        const want = weightGradReference(x, dy, { n, c, k, h, w });
        allClose(got.dw!.data, want, 1e-4, 1e-6 * n * h * w, 'ConvWinogradWeightGrad');
      } finally {
        await session.release();
      }
    });
  }
});

// AVX2 builds' layout: blocks of 8 channels, 8-float vectors (fed and read blocked here, since ORT's own
// reorders use this machine's block).
describe('native Winograd kernels on 8-channel blocks', {
  skip:
    skip ||
    (!nativeKernelNames().includes('WinogradBlock8') && 'this build has no 8-channel Winograd kernels'),
}, () => {
  for (const [m, n, c, k, h, w] of [
    [2, 3, 24, 40, 6, 10],
    [4, 2, 48, 24, 12, 8],
  ] as [WinogradTile, number, number, number, number, number][]) {
    it(`ConvWinogradSum F(${m}x${m}, 3x3), ${c} -> ${k} channels, ${h}x${w}: matches the float64 convolution`, async () => {
      const rng = new Rng(c + k + m);
      const x = rng.normalArray(n * c * h * w);
      const wt = rng.normalArray(k * c * 9).map((v) => v / Math.sqrt(9 * c));
      const b = rng.normalArray(k);
      const s = rng.normalArray(n * k * h * w);
      const g = new Graph();
      const [xi, si] = [g.input('x', [n, c, h, w]), g.input('s', [n, k, h, w])]; // fed blocked
      const u = g.constant(Float32Array.from(winogradFilters(wt, k, c, m)), [(m + 2) ** 2, c, k]);
      const y = g.convWinograd(xi, u, g.constant(b, [k]), si, 8);
      const session = await engine!.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }), {
        threads: 2,
      });
      try {
        const got = await session.run({
          x: { data: relayout(x, [n, c, h, w], 8), shape: [n, c, h, w] },
          s: { data: relayout(s, [n, k, h, w], 8), shape: [n, k, h, w] },
        });
        const want = convReference(x, wt, b, s, { n, c, k, h, w });
        allClose(
          relayout(got.y!.data, [n, k, h, w], 8, true),
          want,
          1e-4,
          m === 4 ? 1e-4 : 1e-5,
          'ConvWinograd block 8',
        );
      } finally {
        await session.release();
      }
    });
    it(`ConvWinogradWeightGrad F(3x3, ${m}x${m}), ${c} -> ${k} channels, ${h}x${w}: matches the float64 weight gradient`, async () => {
      const rng = new Rng(c * 3 + k + m);
      const x = rng.normalArray(n * c * h * w);
      const dy = rng.normalArray(n * k * h * w);
      const g = new Graph();
      const dw = g.convWinogradWeightGrad(g.input('x', [n, c, h, w]), g.input('dy', [n, k, h, w]), m, 8);
      const session = await engine!.createSession(toOnnx(g, { outputs: { dw }, params: 'initializer' }), {
        threads: 2,
      });
      try {
        const got = await session.run({
          x: { data: relayout(x, [n, c, h, w], 8), shape: [n, c, h, w] },
          dy: { data: relayout(dy, [n, k, h, w], 8), shape: [n, k, h, w] },
        });
        const want = weightGradReference(x, dy, { n, c, k, h, w });
        allClose(got.dw!.data, want, 1e-4, 1e-6 * n * h * w, 'ConvWinogradWeightGrad block 8');
      } finally {
        await session.release();
      }
    });
  }
});

/** B^T and A^T of F(m x m, 3x3), as native/winograd.cc's bt and at apply them. */
const BT: Record<WinogradTile, number[][]> = {
  2: [
    [1, 0, -1, 0],
    [0, 1, 1, 0],
    [0, -1, 1, 0],
    [0, 1, 0, -1],
  ],
  4: [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
};
const AT: Record<WinogradTile, number[][]> = {
  2: [
    [1, 1, 1, 0],
    [0, 1, -1, -1],
  ],
  4: [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
  ],
};

/** x rounded to bfloat16 (through float32, as the kernel's operands are). */
const bf16 = (x: number) => bf16Value(bf16Bits(Math.fround(x)));

/** L M R for L [p, q], M [q, q], R = L^T: a transform of both axes. */
function both(l: number[][], mat: number[][]): number[][] {
  const p = l.length;
  const q = mat.length;
  const lm = l.map((row) =>
    Array.from({ length: q }, (_, j) => row.reduce((a, v, k) => a + v * mat[k]![j]!, 0)),
  );
  return lm.map((row) => Array.from({ length: p }, (_, i) => row.reduce((a, v, k) => a + v * l[i]![k]!, 0)));
}

/** Winograd F(m x m, 3x3) in float64 with V and U rounded to bfloat16: y [N, K, H, W] (+ bias, + s). */
function winogradBf16Reference(
  x: Float32Array,
  u: Float64Array, // [P, C, K]
  b: Float32Array,
  s: Float32Array | undefined,
  d: { m: WinogradTile; n: number; c: number; k: number; h: number; w: number },
): Float64Array {
  const { m, n: nb, c: cs, k: ks, h: hs, w: ws } = d;
  const a = m + 2;
  const ub = u.map(bf16);
  const y = new Float64Array(nb * ks * hs * ws);
  for (let n = 0; n < nb; n++)
    for (let ty = 0; ty < hs / m; ty++)
      for (let tx = 0; tx < ws / m; tx++) {
        const v: number[][][] = []; // [C][A][A], rounded
        for (let c = 0; c < cs; c++) {
          const tile = Array.from({ length: a }, (_, i) =>
            Array.from({ length: a }, (_, j) => {
              const [yy, xx] = [m * ty - 1 + i, m * tx - 1 + j];
              return yy < 0 || yy >= hs || xx < 0 || xx >= ws ? 0 : x[((n * cs + c) * hs + yy) * ws + xx]!;
            }),
          );
          v.push(both(BT[m], tile).map((row) => row.map(bf16)));
        }
        for (let k = 0; k < ks; k++) {
          const mm = Array.from({ length: a }, (_, i) =>
            Array.from({ length: a }, (_, j) => {
              let acc = 0;
              for (let c = 0; c < cs; c++) acc += v[c]![i]![j]! * ub[((i * a + j) * cs + c) * ks + k]!;
              return acc;
            }),
          );
          const out = both(AT[m], mm);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < m; j++) {
              const at = ((n * ks + k) * hs + m * ty + i) * ws + m * tx + j;
              y[at] = out[i]![j]! + b[k]! + (s ? s[at]! : 0);
            }
        }
      }
  return y;
}

describe('bfloat16 rounding (winograd-bf16)', () => {
  it('rounds float32 to the nearest bfloat16, ties to even, and packs channel pairs low half first', () => {
    const rng = new Rng(3);
    for (const x of rng.normalArray(2000)) {
      const r = bf16Value(bf16Bits(x));
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(r))) - 7); // r's spacing (r and x share a binade but at its top)
      assert.ok(Math.abs(x - r) <= ulp / 2 + 1e-30, `${x} -> ${r}`);
    }
    assert.equal(bf16Bits(1 + 2 ** -8), 0x3f80); // halfway between 1 and 1 + 2^-7: to the even one
    assert.equal(bf16Bits(1 + 3 * 2 ** -8), 0x3f82); // halfway, the even neighbour is the upper one
    assert.equal(bf16Bits(-2), 0xc000);
    const words = packBf16Pairs([1, 2, -1, -2], 1, 2, 2); // U [1, C = 2, K = 2]
    assert.deepEqual(
      [...words].map((w) => [w & 0xffff, w >>> 16]),
      [
        [0x3f80, 0xbf80], // k = 0: channels 0 and 1
        [0x4000, 0xc000],
      ],
    );
  });
});

describe('native ConvWinogradBf16', { skip: skipBf16 }, () => {
  for (const [m, n, c, k, h, w, withSum, why] of [
    [2, 2, 16, 16, 4, 4, false, 'the smallest: 16 channels, 4 tiles'],
    [2, 3, 48, 80, 6, 10, true, '80 output channels (64 + 16 at a time), 15 tiles (6, 6, 2, 1), a residual'],
    [4, 2, 32, 16, 4, 4, false, 'one tile per image'],
    [4, 3, 48, 112, 12, 20, true, '112 output channels (64 + 32 + 16), 15 tiles, a residual'],
    [4, 2, 128, 64, 16, 16, false, "L's width, 16 tiles per image"],
  ] as [WinogradTile, number, number, number, number, number, boolean, string][]) {
    it(`F(${m}x${m}, 3x3), ${why}: the float64 Winograd sums of the rounded operands; the convolution within bfloat16's precision`, async () => {
      const rng = new Rng(c * 11 + k);
      const wt = rng.normalArray(k * c * 9).map((v) => v / Math.sqrt(9 * c));
      const b = rng.normalArray(k);
      const s = withSum ? rng.normalArray(n * k * h * w) : undefined;
      const u = winogradFilters(wt, k, c, m); // [P, C, K] float64
      const p = (m + 2) ** 2;
      const words = packBf16Pairs(Float32Array.from(u), p, c, k);
      const conv = await blockedConv({ n, c, k, h, w }, s, (g, xb, sb) =>
        g.convWinogradBf16(xb, g.constant(words, [p, c / 2, k]), g.constant(b, [k]), sb),
      );
      const run = conv.run;
      try {
        // x in {-1, 0, 1}: every B^T d B is an integer below 256 in size, exact in bfloat16, so only the
        // filters' rounding and float32 sums remain
        const small = Float32Array.from(rng.normalArray(n * c * h * w), (v) => Math.sign(Math.round(v)));
        const d = { m, n, c, k, h, w };
        allClose(await run(small), winogradBf16Reference(small, u, b, s, d), 1e-5, 1e-5, 'ConvWinogradBf16');
        // normal x against the exact convolution (outputs of size ~1.4): 8 significant bits per operand, more
        // than float32's rounding (the products are bfloat16) and within bfloat16's: rms error 3.4e-3-3.6e-3 for
        // F(2x2); F(4x4)'s transforms amplify the rounding of B^T d B (entries up to 100 times d's) about 7x,
        // 2.1e-2-2.6e-2
        const x = rng.normalArray(n * c * h * w);
        const exact = convReference(x, wt, b, s, { n, c, k, h, w });
        const got = await run(x);
        let sq = 0;
        for (let i = 0; i < got.length; i++) sq += (got[i]! - exact[i]!) ** 2;
        const rms = Math.sqrt(sq / got.length);
        assert.ok(rms > 1e-4 && rms < (m === 4 ? 4e-2 : 6e-3), `rms error ${rms} against the convolution`);
      } finally {
        await conv.release();
      }
    });
  }
});
