// The native engine (native.ts, native/ortnative.cc): its fused GroupNormSilu kernel against a float64
// transcription of the definition, Im2col and ConvWeightGrad against their definitions, and its errors. The engine-interface behaviour both Node engines
// share (outputs by name, pre-allocated outputs) is tested in ort.test.ts for each.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gradCheck } from '../graph/gradcheck.js';
import { FUSED_DOMAIN, Graph, type Value } from '../graph/graph.js';
import { NCHWC_DOMAIN, nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { nativeEngine, nativeKernelNames } from './native.js';

/** SiLU(GroupNorm(x) * gamma + beta) in float64, straight from the definition. */
function reference(
  x: ArrayLike<number>,
  shape: number[],
  groups: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
) {
  const [n, c] = shape as [number, number];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const cg = c / groups;
  const y = new Float64Array(x.length);
  for (let i = 0; i < n; i++)
    for (let g = 0; g < groups; g++) {
      const off = (i * c + g * cg) * inner;
      const m = cg * inner;
      let mean = 0;
      for (let k = 0; k < m; k++) mean += x[off + k]!;
      mean /= m;
      let v = 0;
      for (let k = 0; k < m; k++) v += (x[off + k]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / m + eps);
      for (let k = 0; k < m; k++) {
        const ch = g * cg + Math.floor(k / inner);
        const z = (x[off + k]! - mean) * rstd * gamma[ch]! + beta[ch]!;
        y[off + k] = z / (1 + Math.exp(-z));
      }
    }
  return y;
}

const engine = nativeEngine();

/** One node of a fused kernel in a session of its own: its output for the inputs (named, in order). */
async function runFusedNode(
  op: string,
  inputs: Record<string, Tensor>,
  outShape: number[],
  attrs: Record<string, number>,
): Promise<Float32Array> {
  const g = new Graph();
  const values = Object.entries(inputs).map(([name, t]) => g.input(name, t.shape));
  const y = g.node(op, values, [outShape], attrs, undefined, undefined, FUSED_DOMAIN)[0]!;
  const s = await engine!.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }));
  try {
    return (await s.run(inputs)).y!.data;
  } finally {
    await s.release();
  }
}
const skip = engine ? false : 'the native binding is not built (no C++ compiler at npm ci)';

describe('native engine', { skip }, () => {
  for (const [shape, groups, offset, blocked] of [
    [[3, 8, 5, 7], 4, 0, false], // two channels a group
    [[2, 6, 4, 4], 6, 0, false], // one channel a group (InstanceNorm's case)
    [[2, 8, 3], 2, 0, false], // one spatial axis, four channels a group
    [[2, 64, 16, 16], 32, 40, false], // a U-Net shape, with a large mean (the variance must not cancel)
    [[2, 8, 23, 29], 2, 40, false], // 2,668 values a group: the unrolled sums (4 rows of 16) and their tail
    // ORT's blocked layout (NCHWc), in and out through its reorders: groups within a block, and
    // groups spanning two blocks (the CIFAR-10 U-Net's 1024 channels in 32 groups at block 16), and
    // groups straddling blocks (a skip concatenation's 96 channels in 32 groups: 3 a group; 6 a group).
    [[2, 64, 4, 4], 32, 5, true],
    [[2, 32, 3, 5], 32, 0, true],
    [[2, 64, 3, 3], 2, 0, true],
    [[3, 96, 5, 4], 32, 7, true],
    [[2, 48, 4, 4], 8, 0, true],
  ] as [number[], number, number, boolean][]) {
    for (const shifted of shape.length === 4 ? [false, true] : [false]) {
      const name = `GroupNormSilu${shifted ? 'Shift' : ''} ${JSON.stringify(shape)}, ${groups} groups, mean ${offset}${blocked ? ', blocked' : ''}`;
      it(`${name}, matches float64`, async (t) => {
        const block = blocked ? await nchwcBlockOf(engine!) : 0;
        if (blocked && block < 2) return t.skip('this runtime has no NCHWc kernels');
        const rng = new Rng(shape.length * 1000 + groups);
        const c = shape[1]!;
        const x = rng.normalArray(shape.reduce((a, b) => a * b, 1)).map((v) => v * 3 + offset);
        const gamma = rng.normalArray(c);
        const beta = rng.normalArray(c);
        const eps = 1e-6;
        const g = new Graph();
        g.fused = engine!.fusedKernels!;
        const xv = g.input('x', shape);
        const nchwc = (op: string, v: Value, attrs: Record<string, number>) =>
          g.node(op, [v], [v.shape], { channels_last: 0, ...attrs }, undefined, undefined, NCHWC_DOMAIN)[0]!;
        const xin = blocked ? nchwc('ReorderInput', xv, {}) : xv;
        // GroupNormSiluShift: a shift per sample and channel [N, C], added to x before the norm.
        const shift = Float32Array.from(rng.normalArray(shape[0]! * c), (v) => v * 2);
        const sv = shifted ? g.constant(shift, [shape[0]!, c]) : undefined;
        const yb = g.groupNormSiluFused(
          xin,
          groups,
          g.constant(gamma, [c]),
          g.constant(beta, [c]),
          eps,
          block,
          sv,
        );
        const y = blocked ? nchwc('ReorderOutput', yb, { channels: c }) : yb;
        const s = await engine!.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }), {
          threads: 2,
        });
        try {
          const res = await s.run({ x: { data: x, shape } });
          assert.deepEqual(res.y!.shape, shape);
          const inner = x.length / (shape[0]! * c);
          const xs = shifted ? Float64Array.from(x, (v, i) => v + shift[Math.floor(i / inner)]!) : x;
          allClose(res.y!.data, reference(xs, shape, groups, gamma, beta, eps), 2e-5, 2e-5, name);
        } finally {
          await s.release();
        }
      });
    }
  }

  it('GroupNormSiluGrad (the fused op’s gradient) matches finite differences', async () => {
    const rs = await gradCheck(
      engine!,
      { x: [2, 8, 3, 3], gamma: [8], beta: [8] },
      (g, v) => g.groupNormSiluFused(v.x!, 4, v.gamma!, v.beta!, 1e-5),
      { directions: 4, h: 3e-3 },
    );
    for (const r of rs) {
      const scale = Math.max(1, Math.abs(r.numeric));
      assert.ok(
        Math.abs(r.analytic - r.numeric) <= 2e-3 * scale,
        `d/d${r.input}: ${r.analytic} vs ${r.numeric}`,
      );
    }
  });

  it('GroupNormSiluShift’s gradient (x, gamma, beta and the shift) matches finite differences', async () => {
    const rs = await gradCheck(
      engine!,
      { x: [2, 8, 3, 3], gamma: [8], beta: [8], s: [2, 8] },
      (g, v) => {
        g.fused = engine!.fusedKernels!;
        return g.groupNormSiluFused(v.x!, 4, v.gamma!, v.beta!, 1e-5, 0, v.s!);
      },
      { directions: 4, h: 3e-3 },
    );
    assert.ok(rs.some((r) => r.input === 's'));
    for (const r of rs) {
      const scale = Math.max(1, Math.abs(r.numeric));
      assert.ok(
        Math.abs(r.analytic - r.numeric) <= 2e-3 * scale,
        `d/d${r.input}: ${r.analytic} vs ${r.numeric}`,
      );
    }
  });

  for (const [kh, kw, sh, pads, flip] of [
    [3, 3, 1, [1, 1, 1, 1], false],
    [3, 3, 1, [1, 1, 1, 1], true],
    [3, 3, 2, [0, 0, 1, 1], false], // the stride-2 downsampling conv's padding
    [2, 2, 1, [1, 1, 0, 0], true], // an up-sampling phase conv
    [3, 3, 1, [2, 0, 0, 2], true], // dy's patches (shifted copies, a row's copy clipped at one end)
    [3, 7, 1, [0, 5, 1, 4], false], // taps wider than the image: rows entirely outside or clipped at both ends
  ] as [number, number, number, number[], boolean][]) {
    it(`Im2col ${kh}x${kw} stride ${sh} pads [${pads}]${flip ? ' flipped' : ''} matches its definition`, async () => {
      const [b, h, w] = [3, 5, 6];
      const [pt, pl, pb, pr] = pads as [number, number, number, number];
      const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
      const ow = Math.floor((w + pl + pr - kw) / sh) + 1;
      const x = new Rng(kh * 10 + sh).normalArray(b * h * w);
      const attrs = { kh, kw, sh, sw: sh, pt, pl, pb, pr, flip: flip ? 1 : 0 };
      const got = await runFusedNode(
        'Im2col',
        { x: { data: x, shape: [b, 1, h, w] } },
        [b, kh * kw, oh * ow],
        attrs,
      );
      const want = new Float32Array(b * kh * kw * oh * ow);
      for (let n = 0; n < b; n++)
        for (let q = 0; q < kh * kw; q++) {
          const tap = flip ? kh * kw - 1 - q : q;
          for (let oy = 0; oy < oh; oy++)
            for (let ox = 0; ox < ow; ox++) {
              const sy = oy * sh + Math.floor(tap / kw) - pt;
              const sx = ox * sh + (tap % kw) - pl;
              const inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
              want[((n * kh * kw + q) * oh + oy) * ow + ox] = inside ? x[(n * h + sy) * w + sx]! : 0;
            }
        }
      allClose(got, want, 0, 0, 'Im2col');
    });
  }

  // ConvWeightGrad against the definition in float64: each of its modes (x or dy read in place, shift planes,
  // tap planes, 1x1 rows read directly), sizes that are not multiples of its vectors, 1 to 70 channels, batches
  // below 4 (one range of samples, the columns split over threads) and above (threads over sample ranges).
  for (const [n, c, o, h, w, kh, kw, sh, pads, why] of [
    [3, 5, 7, 6, 5, 3, 3, 1, [1, 1, 1, 1], 'shift planes of x'],
    [2, 40, 17, 9, 16, 3, 3, 1, [1, 1, 1, 1], 'more input channels: x read in place, shift planes of dy'],
    [2, 33, 35, 16, 32, 3, 3, 1, [1, 1, 1, 1], 'whole vectors, 16-row transposes and their tail'],
    [3, 4, 6, 7, 6, 3, 3, 2, [0, 0, 1, 1], 'stride 2: tap planes'],
    [2, 3, 20, 5, 9, 3, 3, 2, [1, 1, 1, 1], 'stride 2, symmetric pads'],
    [2, 18, 5, 6, 7, 1, 1, 1, [0, 0, 0, 0], '1x1: rows read directly'],
    [2, 6, 3, 8, 5, 2, 4, 1, [0, 1, 1, 2], '2x4 taps, asymmetric pads, a smaller grid'],
    [1, 1, 32, 4, 4, 3, 3, 1, [1, 1, 1, 1], 'one input channel'],
    [
      20,
      6,
      64,
      16,
      16,
      3,
      3,
      1,
      [1, 1, 1, 1],
      'batch 20: sample ranges over threads, two groups each, 2+2 tiles',
    ],
    [9, 70, 6, 5, 5, 3, 3, 1, [1, 1, 1, 1], 'batch 9: uneven sample ranges, x read in place, 3+2 tiles'],
    [6, 24, 33, 6, 6, 1, 1, 1, [0, 0, 0, 0], 'batch 6: 1x1 rows read directly in sample ranges'],
    [5, 12, 10, 9, 7, 3, 3, 2, [1, 1, 1, 1], 'batch 5: stride 2 tap planes in sample ranges'],
  ] as [number, number, number, number, number, number, number, number, number[], string][]) {
    it(`ConvWeightGrad ${kh}x${kw} stride ${sh}, ${c} -> ${o} channels (${why}) matches its definition`, async (t) => {
      if (!nativeKernelNames().includes('ConvWeightGrad')) {
        t.skip('this build has no ConvWeightGrad kernel');
        return;
      }
      const [pt, pl, pb, pr] = pads as [number, number, number, number];
      const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
      const ow = Math.floor((w + pl + pr - kw) / sh) + 1;
      const rng = new Rng(n * 100 + c);
      const x = rng.normalArray(n * c * h * w);
      const dy = rng.normalArray(n * o * oh * ow);
      const feeds = { x: { data: x, shape: [n, c, h, w] }, dy: { data: dy, shape: [n, o, oh, ow] } };
      const got = await runFusedNode('ConvWeightGrad', feeds, [o, c, kh, kw], { kh, kw, sh, sw: sh, pt, pl });
      const want = new Float64Array(o * c * kh * kw);
      for (let oc = 0; oc < o; oc++)
        for (let ic = 0; ic < c; ic++)
          for (let i = 0; i < kh; i++)
            for (let j = 0; j < kw; j++) {
              let sum = 0;
              for (let b = 0; b < n; b++)
                for (let oy = 0; oy < oh; oy++)
                  for (let ox = 0; ox < ow; ox++) {
                    const [sy, sx] = [oy * sh + i - pt, ox * sh + j - pl];
                    if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                    sum += dy[((b * o + oc) * oh + oy) * ow + ox]! * x[((b * c + ic) * h + sy) * w + sx]!;
                  }
              want[((oc * c + ic) * kh + i) * kw + j] = sum;
            }
      // float32 sums of n oh ow products of unit normals: rounding grows with their count
      allClose(got, want, 1e-4, Math.max(1e-4, 1e-7 * n * oh * ow), 'ConvWeightGrad');
    });
  }

  it('rejects a model it cannot load with ONNX Runtime’s reason, and a released session', async () => {
    await assert.rejects(engine!.createSession(Uint8Array.of(1, 2, 3)), /CreateSessionFromArray: .+/);
    const g = new Graph();
    const x = g.input('x', [2]);
    const s = await engine!.createSession(
      toOnnx(g, { outputs: { y: g.scale(x, 2) }, params: 'initializer' }),
    );
    await s.release();
    await assert.rejects(s.run({ x: { data: Float32Array.of(1, 2), shape: [2] } }), /released session/);
  });

  it('names the problem when a feed has the wrong shape', async () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const s = await engine!.createSession(
      toOnnx(g, { outputs: { y: g.scale(x, 2) }, params: 'initializer' }),
    );
    try {
      await assert.rejects(
        s.run({ x: { data: new Float32Array(6), shape: [3, 2] } }),
        /Run: .*(dimension|shape)/i,
      );
    } finally {
      await s.release();
    }
  });
});
