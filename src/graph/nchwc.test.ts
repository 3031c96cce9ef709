// The NCHWc lowering (nchwc.ts) against a direct float64 convolution: every filter layout (input
// channels a multiple of the block, fewer than a block), output channels padded to a block,
// stride 2 with asymmetric pads, with and without bias. Weights are graph inputs, as in training.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeEngine } from '../engine/node.js';
import { nchwcBlockOf } from './nchwc.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { Graph, type Value } from './graph.js';
import { blockFilter } from './passes/blockFilter.js';
import {
  blockedFlippedKernel,
  blockedKernel,
  blockFilterNode,
  lowerConvsToNchwc,
  NCHWC_DOMAIN,
} from './nchwc.js';
import { toOnnx } from './onnx.js';

/** The block-filter pass on a lowered graph (weights fed at run time); returns its rewrites. */
function runBlockFilter(g: Graph, roots: Value[], block: number): number {
  return blockFilter.run({ graph: g, roots, constantWeights: false, training: false, nchwcBlock: block });
}

interface Case {
  n: number;
  c: number;
  o: number;
  h: number;
  stride: 1 | 2;
  pads: [number, number, number, number];
  bias: boolean;
}

/** Direct convolution in float64 (NCHW, OIHW). */
function conv64(x: Float32Array, w: Float32Array, b: Float32Array | null, k: Case): Float64Array {
  const { n, c, o, h, stride: s, pads } = k;
  const [pt, pl, pb, pr] = pads;
  const oh = Math.floor((h + pt + pb - 3) / s) + 1;
  const ow = Math.floor((h + pl + pr - 3) / s) + 1;
  const y = new Float64Array(n * o * oh * ow);
  for (let ni = 0; ni < n; ni++)
    for (let oi = 0; oi < o; oi++)
      for (let yi = 0; yi < oh; yi++)
        for (let xi = 0; xi < ow; xi++) {
          let acc = b ? b[oi]! : 0;
          for (let ci = 0; ci < c; ci++)
            for (let ky = 0; ky < 3; ky++)
              for (let kx = 0; kx < 3; kx++) {
                const iy = yi * s + ky - pt;
                const ix = xi * s + kx - pl;
                if (iy < 0 || ix < 0 || iy >= h || ix >= h) continue;
                acc += x[((ni * c + ci) * h + iy) * h + ix]! * w[((oi * c + ci) * 3 + ky) * 3 + kx]!;
              }
          y[((ni * o + oi) * oh + yi) * ow + xi] = acc;
        }
  return y;
}

describe('NCHWc lowering of convolutions with non-constant weights', async () => {
  const engine = nodeEngine();
  const block = await nchwcBlockOf(engine);

  it('probes a block size of 8 or 16 on x86-64 (0 elsewhere)', () => {
    if (process.arch === 'x64') assert.ok(block === 8 || block === 16, `block ${block}`);
    else assert.equal(block, 0);
  });

  const cases: Case[] = [
    {
      n: 2,
      c: 2 * Math.max(block, 1),
      o: Math.max(block, 1),
      h: 7,
      stride: 1,
      pads: [1, 1, 1, 1],
      bias: true,
    },
    { n: 1, c: 1, o: 5, h: 6, stride: 1, pads: [1, 1, 1, 1], bias: true },
    { n: 3, c: Math.max(block, 1), o: 3, h: 8, stride: 2, pads: [0, 0, 1, 1], bias: false },
    { n: 2, c: 3, o: 2 * Math.max(block, 1) + 1, h: 5, stride: 1, pads: [1, 1, 1, 1], bias: false },
  ];
  const withKernel = engine.fusedKernels?.includes('BlockFilter') ?? false;
  for (const [k, kernel] of cases.flatMap((k) => [[k, false] as const, [k, true] as const])) {
    it(`matches a float64 conv: ${k.n}x${k.c}x${k.h}x${k.h} -> ${k.o} channels, stride ${k.stride}, pads [${k.pads}]${k.bias ? ', bias' : ''}, filter by ${kernel ? 'BlockFilter' : 'Transposes'}`, async (t) => {
      if (block < 2 || (kernel && !withKernel)) {
        t.skip(block < 2 ? 'this runtime has no NCHWc kernels' : 'this engine has no BlockFilter kernel');
        return;
      }
      const rng = new Rng(k.c * 100 + k.o);
      const g = new Graph();
      if (kernel) g.fused = ['BlockFilter'];
      const x = g.input('x', [k.n, k.c, k.h, k.h]);
      const w = g.input('w', [k.o, k.c, 3, 3]);
      const b = k.bias ? g.input('b', [k.o]) : undefined;
      const y = g.conv(x, w, b, { strides: [k.stride, k.stride], pads: k.pads });
      assert.equal(lowerConvsToNchwc(g, block, [y]), 1);
      assert.ok(g.nodes.some((nd) => nd.domain === NCHWC_DOMAIN && nd.op === 'Conv'));
      if (kernel) {
        assert.equal(runBlockFilter(g, [y], block), k.c % block === 0 ? 1 : 0);
        if (k.c % block === 0) assert.ok(!g.liveNodes([y]).some((nd) => nd.op === 'Transpose'));
      }
      const xs = rng.normalArray(k.n * k.c * k.h * k.h);
      const ws = rng.normalArray(k.o * k.c * 9);
      const bs = rng.normalArray(k.o);
      const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'input' }));
      const feeds: Record<string, { data: Float32Array; shape: number[] }> = {
        x: { data: xs, shape: [k.n, k.c, k.h, k.h] },
        w: { data: ws, shape: [k.o, k.c, 3, 3] },
      };
      if (k.bias) feeds.b = { data: bs, shape: [k.o] };
      const res = await s.run(feeds);
      await s.release();
      assert.deepEqual(res.y!.shape, y.shape);
      allClose(res.y!.data, conv64(xs, ws, k.bias ? bs : null, k), 1e-4, 1e-4, 'nchwc conv');
    });
  }

  for (const kernel of [false, true]) {
    it(`builds the flipped, transposed kernel of an input gradient from the weight directly (${kernel ? 'BlockFilter' : 'Transposes'})`, async (t) => {
      if (block < 2 || (kernel && !withKernel)) {
        t.skip(block < 2 ? 'this runtime has no NCHWc kernels' : 'this engine has no BlockFilter kernel');
        return;
      }
      // The conv of dy [N, O, H, W] with flippedKernel(w), w [O, C, 3, 3]: C output channels.
      const k: Case = { n: 2, c: 2 * block, o: block, h: 6, stride: 1, pads: [1, 1, 1, 1], bias: false };
      const rng = new Rng(7);
      const g = new Graph();
      if (kernel) g.fused = ['BlockFilter'];
      const x = g.input('x', [k.n, k.c, k.h, k.h]);
      const w = g.input('w', [k.c, k.o, 3, 3]); // the forward conv's weight: O = k.c, C = k.o
      const y = g.conv(x, g.flippedKernel(w), undefined, { pads: [1, 1, 1, 1] });
      assert.equal(lowerConvsToNchwc(g, block, [y]), 1);
      if (kernel) assert.equal(runBlockFilter(g, [y], block), 1);
      // Built from w itself: no Transpose of the 4-d kernel is left for ORT to run.
      const live = g.liveNodes([y]);
      assert.ok(!live.some((nd) => nd.op === 'Transpose' && nd.inputs[0]!.shape.length === 4));
      const xs = rng.normalArray(k.n * k.c * k.h * k.h);
      const ws = rng.normalArray(k.c * k.o * 9);
      const wf = new Float32Array(ws.length); // [k.o, k.c, 3, 3]: wf[a][b][i][j] = w[b][a][2-i][2-j]
      for (let a = 0; a < k.o; a++)
        for (let b = 0; b < k.c; b++)
          for (let q = 0; q < 9; q++) wf[(a * k.c + b) * 9 + q] = ws[(b * k.o + a) * 9 + 8 - q]!;
      const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'input' }));
      const res = await s.run({
        x: { data: xs, shape: [k.n, k.c, k.h, k.h] },
        w: { data: ws, shape: [k.c, k.o, 3, 3] },
      });
      await s.release();
      allClose(res.y!.data, conv64(xs, wf, null, k), 1e-4, 1e-4, 'flipped-kernel nchwc conv');
    });
  }

  it('BlockFilter lays out filters as ORT blocks them, equal to the Transposes (1x1 and 3x3, flipped or not)', async (t) => {
    if (block < 2 || !withKernel) {
      t.skip(block < 2 ? 'this runtime has no NCHWc kernels' : 'this engine has no BlockFilter kernel');
      return;
    }
    const rng = new Rng(11);
    for (const [o, c, kh] of [
      [2 * block, 3 * block, 3],
      [3 * block, block, 1],
      [block, 2 * block, 3],
    ] as const) {
      const k = kh * kh;
      const g = new Graph();
      const w = g.input('w', [o, c, kh, kh]);
      const outs = {
        kernel: blockFilterNode(g, w, block, false),
        kernelFlip: blockFilterNode(g, w, block, true),
        transposes: blockedKernel(g, w, block),
        transposesFlip: blockedFlippedKernel(g, w, block),
      };
      const ws = rng.normalArray(o * c * k);
      const s = await engine.createSession(toOnnx(g, { outputs: outs, params: 'input' }));
      const r = await s.run({ w: { data: ws, shape: [o, c, kh, kh] } });
      await s.release();
      // ORT's blocked filter: out[ob, cb, t, i, o] = w[ob B + o, cb B + i, t] (flip: O and C swapped, taps reversed).
      const want = new Float32Array(ws.length);
      const wantFlip = new Float32Array(ws.length);
      const B = block;
      for (let oc = 0; oc < o; oc++)
        for (let ic = 0; ic < c; ic++)
          for (let tt = 0; tt < k; tt++) {
            const v = ws[(oc * c + ic) * k + tt]!;
            const [ob, bo, cb, bi] = [Math.floor(oc / B), oc % B, Math.floor(ic / B), ic % B];
            want[(((ob * (c / B) + cb) * k + tt) * B + bi) * B + bo] = v;
            wantFlip[(((cb * (o / B) + ob) * k + (k - 1 - tt)) * B + bo) * B + bi] = v;
          }
      assert.deepEqual(r.kernel!.shape, [o, c, kh, kh]);
      assert.deepEqual(r.kernelFlip!.shape, [c, o, kh, kh]);
      assert.deepEqual(r.kernel!.data, want, `BlockFilter ${o}x${c}x${kh}x${kh}`);
      assert.deepEqual(r.kernelFlip!.data, wantFlip, `BlockFilter flip ${o}x${c}x${kh}x${kh}`);
      assert.deepEqual(r.transposes!.data, want, `Transposes ${o}x${c}x${kh}x${kh}`);
      if (kh === 3)
        assert.deepEqual(r.transposesFlip!.data, wantFlip, `Transposes flip ${o}x${c}x${kh}x${kh}`);
    }
  });

  it('leaves constant-weight and grouped convs to the runtime', () => {
    const g = new Graph();
    const x = g.input('x', [1, 16, 4, 4]);
    const y1 = g.conv(x, g.constant(new Float32Array(16 * 16 * 9), [16, 16, 3, 3]), undefined, {
      pads: [1, 1, 1, 1],
    });
    const y2 = g.conv(x, g.input('w', [16, 1, 3, 3]), undefined, { pads: [1, 1, 1, 1], group: 16 });
    assert.equal(lowerConvsToNchwc(g, 16, [y1, y2]), 0);
  });
});
