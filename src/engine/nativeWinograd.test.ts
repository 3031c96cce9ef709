// The native ConvWinograd kernel (native/winograd.cc, Graph.convWinograd, graph pass winograd-convs) with the
// filters as winogradFilters transforms them, against a 3x3, stride-1, pad-1 convolution written out in
// float64: channel counts that take every register tile (16, 32 and 64 output channels at a time), tile
// counts that take every row tile (6, 2, 1), images split into several chunks of tiles, and the residual input;
// and ConvWinogradWeightGrad against the weight gradient's definition in float64.

import { describe, it } from 'node:test';
import { Graph, type WinogradTile } from '../graph/graph.js';
import { NCHWC_DOMAIN, relayout, reorderToBlocked } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
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
      const g = new Graph();
      const xi = g.input('x', [n, c, h, w]);
      const si = withSum ? g.input('s', [n, k, h, w]) : undefined;
      const u = g.constant(Float32Array.from(winogradFilters(wt, k, c, m)), [(m + 2) ** 2, c, k]);
      const y = g.convWinograd(reorderToBlocked(g, xi), u, g.constant(b, [k]), si && reorderToBlocked(g, si)); // blocked
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
      try {
        const feeds: Record<string, { data: Float32Array; shape: number[] }> = {
          x: { data: x, shape: [n, c, h, w] },
        };
        if (s) feeds.s = { data: s, shape: [n, k, h, w] };
        const got = await session.run(feeds);
        // F(4x4, 3x3)'s transforms multiply by up to 8 and divide by 24: about 10x F(2x2)'s rounding (max abs
        // error 3.8e-5 at 128 channels on outputs of size 1, against 2.3e-6)
        allClose(
          got.y!.data,
          convReference(x, wt, b, s, { n, c, k, h, w }),
          1e-4,
          m === 4 ? 1e-4 : 1e-5,
          'ConvWinograd',
        );
      } finally {
        await session.release();
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
