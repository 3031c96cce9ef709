// Every op's gradient rule against central finite differences through onnxruntime-node,
// and the forward ops against direct TypeScript computations in float64.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeEngine } from '../engine/node.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { grad } from './autodiff.js';
import { gradCheck } from './gradcheck.js';
import { Graph, GraphError, type Value } from './graph.js';
import { toOnnx } from './onnx.js';

const engine = nodeEngine();

async function check(
  shapes: Record<string, number[]>,
  build: (g: Graph, x: Record<string, Value>) => Value,
  opts: Parameters<typeof gradCheck>[3] = {},
  tol = 2e-3,
): Promise<void> {
  const rs = await gradCheck(engine, shapes, build, opts);
  for (const r of rs) {
    const scale = Math.max(1, Math.abs(r.numeric));
    assert.ok(
      Math.abs(r.analytic - r.numeric) <= tol * scale,
      `d/d${r.input}: analytic ${r.analytic} vs numeric ${r.numeric}`,
    );
  }
}

const positive = (_: string, rng: Rng, n: number) =>
  Float32Array.from({ length: n }, () => 0.5 + rng.uniform());

describe('gradient rules vs finite differences', () => {
  it('Add/Sub/Mul/Div with broadcasting', () =>
    check(
      { a: [2, 3, 4], b: [3, 1] },
      (g, x) => g.div(g.mul(g.sub(g.add(x.a!, x.b!), x.b!), x.a!), g.add(x.b!, g.scalar(3))),
      {
        init: positive,
      },
    ));
  it('Neg, Exp, Log, Sqrt', () =>
    check(
      { a: [5, 3] },
      (g, x) => g.add(g.neg(g.exp(g.scale(x.a!, 0.3))), g.mul(g.log(x.a!), g.sqrt(x.a!))),
      {
        init: positive,
      },
    ));
  it('Sin, Cos, Tanh, Sigmoid, SiLU, square', () =>
    check({ a: [4, 6] }, (g, x) =>
      g.add(g.add(g.sin(x.a!), g.cos(g.square(x.a!))), g.add(g.tanh(x.a!), g.silu(g.sigmoid(x.a!)))),
    ));
  it('MatMul (batched, broadcast) and linear', () =>
    check({ a: [2, 3, 4], b: [4, 5], w: [6, 5], bias: [6] }, (g, x) =>
      g.linear(g.matmul(x.a!, x.b!), x.w!, x.bias!),
    ));
  it('attention-shaped products: the transpose of a fresh MatMul gradient becomes b^T a^T', () =>
    check({ q: [2, 3, 5], k: [2, 3, 5], v: [2, 4, 5] }, (g, x) => {
      const w = g.softmax(g.matmul(g.transpose(x.q!, [0, 2, 1]), x.k!), -1); // [2, 5, 5]
      return g.matmul(x.v!, g.transpose(w, [0, 2, 1])); // [2, 4, 5]
    }));
  it('Reshape, Transpose, Concat', () =>
    check({ a: [2, 3, 4], b: [2, 2, 4] }, (g, x) =>
      g.transpose(g.reshape(g.concat([x.a!, x.b!], 1), [2, 4, 5]), [2, 0, 1]),
    ));
  it('Pad and Slice (steps 1 and -1)', () =>
    check({ a: [2, 3, 5, 5] }, (g, x) => {
      const p = g.pad(x.a!, [0, 0, 1, 2, 0, 0, 2, 1]);
      const s = g.slice(p, [2, 3], [1, -2], [6, -(2 ** 31)], [1, -1]);
      return g.mul(s, s);
    }));
  it('Expand, ReduceSum, reduceMean', () =>
    check({ a: [3, 1, 4] }, (g, x) => {
      const e = g.expand(x.a!, [2, 3, 5, 4]);
      return g.add(g.reduceSum(g.mul(e, e), [1, 3], false), g.reduceMean(g.sin(e), [3, 1], false));
    }));
  it('ReduceSum as a 2-d last-axis view (middle axes with a unit inner axis)', () =>
    check({ a: [2, 3, 4, 1] }, (g, x) => {
      const s = g.reduceSum(g.mul(x.a!, x.a!), [1, 2], true); // [2, 1, 1, 1]
      return g.mul(s, g.reduceSum(g.sin(x.a!), [2], false)); // [2, 3, 1]
    }));
  it('Softmax', () => check({ a: [2, 3, 7] }, (g, x) => g.softmax(g.scale(x.a!, 2), -1)));
  it('InstanceNormalization with scale and bias (GroupNorm with one channel per group)', () =>
    check({ a: [2, 4, 3, 3], gam: [4], bet: [4] }, (g, x) => g.groupNorm(x.a!, 4, x.gam!, x.bet!, 1e-6)));
  for (const impl of ['inference', 'training'] as const) {
    it(`GroupNorm (${impl}) with affine`, () =>
      check({ a: [2, 8, 3, 3], gam: [8], bet: [8] }, (g, x) =>
        g.groupNorm(x.a!, 4, x.gam!, x.bet!, 1e-6, impl),
      ));
  }
  it('GroupNorm (training: one fused gradient rule) with one channel per group, inside a graph', () =>
    check({ a: [2, 4, 3, 3], gam: [4], bet: [4] }, (g, x) => {
      const y = g.groupNorm(g.sin(x.a!), 4, x.gam!, x.bet!, 1e-6, 'training');
      return g.mul(y, x.a!);
    }));
  it('InstanceNormalization and LayerNormalization (normalizeLastAxis)', () =>
    check({ a: [2, 3, 5], b: [2, 3, 5] }, (g, x) =>
      g.add(g.instanceNorm(x.a!, 1e-6), g.mul(g.normalizeLastAxis(x.b!, 1e-6), x.a!)),
    ));
  it('sums over leading axes (ones-row MatMul) and over inner axes', () =>
    check({ a: [3, 4, 5], b: [5] }, (g, x) => g.mul(g.add(x.a!, x.b!), g.reduceSum(x.a!, [1], true))));
  it('nearest 2x upsampling', () => check({ a: [2, 3, 3, 4] }, (g, x) => g.upsample2x(x.a!)));
  it('interleave of 2x2 phases', () =>
    check({ a: [2, 2, 3, 2], b: [2, 2, 3, 2] }, (g, x) =>
      g.interleave([g.mul(x.a!, g.sin(x.a!)), x.b!, g.sin(x.b!), g.mul(x.a!, x.b!)], 2),
    ));
  it('Conv 3x3 stride 1 pad 1 with bias', () =>
    check({ a: [2, 3, 6, 6], w: [4, 3, 3, 3], b: [4] }, (g, x) =>
      g.conv(x.a!, x.w!, x.b!, { pads: [1, 1, 1, 1] }),
    ));
  it('Conv 3x3 with more input than output channels (im2col of dy), asymmetric pads', () =>
    check({ a: [2, 5, 6, 5], w: [2, 5, 3, 3], b: [2] }, (g, x) =>
      g.conv(x.a!, x.w!, x.b!, { pads: [1, 0, 2, 1] }),
    ));
  it('Conv 1x1', () =>
    check({ a: [2, 5, 4, 4], w: [3, 5, 1, 1], b: [3] }, (g, x) => g.conv(x.a!, x.w!, x.b!)));
  it('Conv 3x3 stride 2, pad right/bottom by 1 (downsample)', () =>
    check({ a: [2, 3, 8, 8], w: [4, 3, 3, 3], b: [4] }, (g, x) =>
      g.conv(x.a!, x.w!, x.b!, { strides: [2, 2], pads: [0, 0, 1, 1] }),
    ));
  it('Conv 3x3 stride 2, symmetric pad 1', () =>
    check({ a: [1, 2, 7, 7], w: [3, 2, 3, 3] }, (g, x) =>
      g.conv(x.a!, x.w!, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] }),
    ));
  // Weight gradients whose patches exceed Graph.maxPatchBytes are summed over slices of the batch: a limit of
  // half the patches gives slices of 2 and 1 images (the patch bytes: 4 x batch x 9 x channels x positions).
  for (const [what, a, w, patchBytes, opts] of [
    ['im2col of x', [3, 3, 6, 6], [4, 3, 3, 3], 4 * 3 * 9 * 3 * 36, { pads: [1, 1, 1, 1] }],
    ['im2col of dy', [3, 5, 6, 5], [2, 5, 3, 3], 4 * 3 * 9 * 2 * 30, { pads: [1, 0, 2, 1] }],
    ['stride 2', [3, 3, 8, 8], [4, 3, 3, 3], 4 * 3 * 9 * 3 * 16, { strides: [2, 2], pads: [0, 0, 1, 1] }],
  ] as const) {
    const build = (g: Graph, x: Record<string, Value>) => {
      g.maxPatchBytes = patchBytes / 2;
      return g.conv(x.a!, x.w!, undefined, opts as Parameters<Graph['conv']>[3]);
    };
    it(`Conv weight gradient in batch slices (${what})`, async () => {
      const g = new Graph();
      const x = { a: g.input('a', [...a]), w: g.input('w', [...w]) };
      const y = build(g, x);
      const [dw] = grad(g, g.reduceSum(g.mul(y, y), [0, 1, 2, 3], false), [x.w]);
      const slices = g.liveNodes([dw!]).filter((n) => n.op === 'Slice');
      assert.ok(slices.length >= 2, `${slices.length} batch slices`);
      await check({ a: [...a], w: [...w] }, build);
    });
  }
  // The native engine's SumTranspose (the weight gradient from dy's patches, summed over the batch and laid
  // out in one kernel), whole and in batch slices.
  const sumTranspose = engine.fusedKernels?.includes('SumTranspose') ?? false;
  for (const [what, slices] of [
    ['whole batch', false],
    ['batch slices', true],
  ] as const) {
    const [a, w] = [
      [3, 5, 6, 5],
      [2, 5, 3, 3],
    ] as const;
    const build = (g: Graph, x: Record<string, Value>) => {
      g.fused = ['Im2col', 'SumTranspose'];
      if (slices) g.maxPatchBytes = (4 * 3 * 9 * 2 * 30) / 2;
      return g.conv(x.a!, x.w!, undefined, { pads: [1, 0, 2, 1] });
    };
    it(`Conv weight gradient from dy's patches by SumTranspose (${what})`, async (t) => {
      if (!sumTranspose) {
        t.skip('this engine has no SumTranspose kernel');
        return;
      }
      const g = new Graph();
      const x = { a: g.input('a', [...a]), w: g.input('w', [...w]) };
      const [dw] = grad(g, g.reduceSum(g.square(build(g, x)), [0, 1, 2, 3], false), [x.w]);
      const live = g.liveNodes([dw!]);
      assert.equal(live.filter((n) => n.op === 'SumTranspose').length, slices ? 2 : 1);
      const laidOut = (n: { op: string; inputs: readonly Value[] }) =>
        n.op === 'Transpose' && n.inputs[0]!.shape.join() === [w[0], 9, w[1]].join();
      assert.ok(!live.some(laidOut), 'no Transpose of the summed gradient');
      await check({ a: [...a], w: [...w] }, build);
    });
  }
  it('a value used twice accumulates gradients', () =>
    check({ a: [3, 4] }, (g, x) => g.mul(g.sin(x.a!), g.add(x.a!, g.scalar(1)))));
});

describe('forward ops vs direct computation', () => {
  it('conv 3x3 stride 2 with asymmetric pads matches a naive float64 loop', async () => {
    const rng = new Rng(3);
    const [n, c, h, w, o] = [2, 3, 6, 6, 4];
    const x = rng.normalArray(n * c * h * w);
    const wt = rng.normalArray(o * c * 9);
    const g = new Graph();
    const xv = g.input('x', [n, c, h, w]);
    const y = g.conv(xv, g.param('w', [o, c, 3, 3], wt), undefined, { strides: [2, 2], pads: [0, 0, 1, 1] });
    const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }));
    const got = (await s.run({ x: { data: x, shape: [n, c, h, w] } })).y!;
    assert.deepEqual(got.shape, [n, o, 3, 3]);
    const want = new Float64Array(n * o * 9);
    for (let b = 0; b < n; b++)
      for (let oc = 0; oc < o; oc++)
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++) {
            let acc = 0;
            for (let ic = 0; ic < c; ic++)
              for (let ki = 0; ki < 3; ki++)
                for (let kj = 0; kj < 3; kj++) {
                  const yy = 2 * i + ki;
                  const xx = 2 * j + kj;
                  if (yy >= h || xx >= w) continue;
                  acc += x[((b * c + ic) * h + yy) * w + xx]! * wt[((oc * c + ic) * 3 + ki) * 3 + kj]!;
                }
            want[((b * o + oc) * 3 + i) * 3 + j] = acc;
          }
    allClose(got.data, want, 1e-5, 1e-5, 'conv');
  });

  it('groupNorm matches the float64 definition', async () => {
    const rng = new Rng(4);
    const [n, c, hw, groups] = [2, 8, 9, 4];
    const x = Float32Array.from(rng.normalArray(n * c * hw), (v) => 3 + 2 * v);
    const gam = rng.normalArray(c);
    const bet = rng.normalArray(c);
    const g = new Graph();
    const xv = g.input('x', [n, c, 3, 3]);
    const y = g.groupNorm(xv, groups, g.param('g', [c], gam), g.param('b', [c], bet), 1e-6);
    const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }));
    const got = (await s.run({ x: { data: x, shape: [n, c, 3, 3] } })).y!.data;
    const want = new Float64Array(x.length);
    const per = (c / groups) * hw;
    for (let b = 0; b < n; b++)
      for (let gi = 0; gi < groups; gi++) {
        const off = (b * groups + gi) * per;
        let m = 0;
        for (let i = 0; i < per; i++) m += x[off + i]!;
        m /= per;
        let v = 0;
        for (let i = 0; i < per; i++) v += (x[off + i]! - m) ** 2;
        v /= per;
        for (let i = 0; i < per; i++) {
          const ch = gi * (c / groups) + Math.floor(i / hw);
          want[off + i] = ((x[off + i]! - m) / Math.sqrt(v + 1e-6)) * gam[ch]! + bet[ch]!;
        }
      }
    allClose(got, want, 1e-4, 1e-4, 'groupNorm');
  });

  it('reduceSum over every axis set (middle, trailing, size-1, split) matches a float64 loop', async () => {
    const rng = new Rng(8);
    const shape = [2, 3, 4, 1, 5];
    const x = rng.normalArray(shape.reduce((a, d) => a * d, 1));
    const cases: [number[], boolean][] = [
      [[2], true], // middle axis, inner size 5
      [[2, 3], false], // middle axes with a unit axis
      [[3], true], // size 1: a reshape
      [[4], false], // last axis
      [[1, 2, 3], true], // contiguous, inner 5
      [[3, 4], true], // trailing, through the unit axis
      [[0, 2], false], // not contiguous
      [[0, 1, 2, 3, 4], false], // everything
    ];
    const g = new Graph();
    const xv = g.input('x', shape);
    const outs = Object.fromEntries(cases.map(([ax, k], i) => [`y${i}`, g.reduceSum(xv, ax, k)]));
    assert.equal(g.reduceSum(xv, [3], true), xv, 'a size-1 reduction with keepdims is the input itself');
    assert.equal(g.reduceSum(xv, [3], false).producer?.op, 'Reshape', 'without keepdims, a reshape');
    const s = await engine.createSession(toOnnx(g, { outputs: outs, params: 'initializer' }));
    const got = await s.run({ x: { data: x, shape } });
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, d) => a * d, 1));
    cases.forEach(([ax, keep], ci) => {
      const outShape = shape.map((d, i) => (ax.includes(i) ? 1 : d));
      const want = new Float64Array(outShape.reduce((a, d) => a * d, 1));
      for (let f = 0; f < x.length; f++) {
        const idx = shape.map((_, i) => Math.floor(f / strides[i]!) % shape[i]!);
        const o = idx.reduce((a, v, i) => a * outShape[i]! + (ax.includes(i) ? 0 : v), 0);
        want[o] = want[o]! + x[f]!;
      }
      const y = got[`y${ci}`]!;
      const wantShape = keep ? outShape : shape.filter((_, i) => !ax.includes(i));
      assert.deepEqual(y.shape, wantShape, `axes [${ax}] keepdims ${keep}`);
      allClose(y.data, want, 1e-5, 1e-5, `reduceSum axes [${ax}]`);
    });
  });

  for (const b of [2, 3]) {
    it(`interleave of ${b}x${b} phases is ONNX DepthToSpace (DCR) of their channel concat, bit for bit`, async () => {
      const rng = new Rng(9);
      const shape = [2, 3, 4, 5];
      const x = rng.normalArray(b * b * shape.reduce((a, d) => a * d, 1));
      const g = new Graph();
      const xv = g.input('x', [2, b * b * 3, 4, 5]);
      const phases = Array.from({ length: b * b }, (_, i) => g.slice(xv, [1], [3 * i], [3 * i + 3]));
      const ours = g.interleave(phases, b);
      const onnx = g.node('DepthToSpace', [xv], [ours.shape], { blocksize: b, mode: 'DCR' })[0]!;
      const s = await engine.createSession(toOnnx(g, { outputs: { ours, onnx }, params: 'initializer' }));
      const got = await s.run({ x: { data: x, shape: [2, b * b * 3, 4, 5] } });
      assert.deepEqual(got.ours!.shape, [2, 3, 4 * b, 5 * b]);
      assert.deepEqual(Array.from(got.ours!.data), Array.from(got.onnx!.data));
    });
  }

  it('a transpose of a transpose is one transpose, or none when they cancel', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3, 4]);
    assert.equal(g.transpose(g.transpose(a, [0, 2, 1]), [0, 2, 1]), a);
    const t = g.transpose(g.transpose(a, [1, 0, 2]), [0, 2, 1]); // [3, 4, 2]
    assert.deepEqual(t.shape, [3, 4, 2]);
    assert.equal(t.producer!.inputs[0], a);
    assert.deepEqual(t.producer!.attrs.perm, [1, 2, 0]);
  });

  it('shape errors name the op and the shapes', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    const b = g.input('b', [4, 5]);
    assert.throws(
      () => g.matmul(a, b),
      (e: unknown) => e instanceof GraphError && /MatMul.*\[2, 3\].*\[4, 5\]/.test(e.message),
    );
    assert.throws(() => g.add(a, b), /Add: cannot broadcast \[2, 3\] with \[4, 5\]/);
    const p = g.input('p', [1, 2, 3, 3]);
    const q = g.input('q', [1, 2, 3, 4]);
    assert.throws(() => g.interleave([p, p, p], 2), /interleave: needs 4 phases/);
    assert.throws(() => g.interleave([p, p, p, q], 2), /got \[1, 2, 3, 3\], .*\[1, 2, 3, 4\]/);
    const x = g.input('x', [1, 3, 8, 8]);
    const w = g.input('w', [4, 2, 3, 3]);
    assert.throws(() => g.conv(x, w, undefined), /Conv: input has 3 channels/);
    assert.throws(() => g.reshape(a, [4, 2]), /Reshape: cannot reshape \[2, 3\] to \[4, 2\]/);
  });
});
