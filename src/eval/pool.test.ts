// The inference-only ops the FID Inception needs (Graph.relu, maxPool, averagePool) against float64
// loops written from their definitions (ONNX Relu, MaxPool, AveragePool; count_include_pad as PyTorch's
// avg_pool2d), and the clear error autodiff gives when asked for their gradients.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeEngine } from '../engine/node.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type PoolOptions, type Value } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';

const engine = nodeEngine();

type Reduce = 'max' | 'avg-include-pad' | 'avg-exclude-pad';

/** The pooled x [n, c, h, w] in float64: every window position, padded taps skipped or counted. */
function poolLoop(
  x: Float32Array,
  shape: readonly [number, number, number, number],
  opts: PoolOptions,
  reduce: Reduce,
): { data: Float64Array; shape: number[] } {
  const [n, c, h, w] = shape;
  const [kh, kw] = opts.kernel;
  const [sh, sw] = opts.strides ?? [1, 1];
  const [pt, pl, pb, pr] = opts.pads ?? [0, 0, 0, 0];
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
  const ow = Math.floor((w + pl + pr - kw) / sw) + 1;
  const out = new Float64Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let max = -Infinity;
        let sum = 0;
        let inside = 0;
        for (let a = 0; a < kh; a++)
          for (let b = 0; b < kw; b++) {
            const y = i * sh - pt + a;
            const xx = j * sw - pl + b;
            if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
            const v = x[(p * h + y) * w + xx]!;
            max = Math.max(max, v);
            sum += v;
            inside++;
          }
        out[(p * oh + i) * ow + j] = reduceOf(reduce, max, sum, inside, kh * kw);
      }
  return { data: out, shape: [n, c, oh, ow] };
}

function reduceOf(reduce: Reduce, max: number, sum: number, inside: number, window: number): number {
  switch (reduce) {
    case 'max':
      return max;
    case 'avg-include-pad':
      return sum / window;
    case 'avg-exclude-pad':
      return sum / inside;
  }
}

async function run(shape: number[], build: (g: Graph, x: Value) => Value, x: Float32Array) {
  const g = new Graph();
  const y = build(g, g.input('x', shape));
  const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }));
  try {
    return (await s.run({ x: { data: x, shape } })).y!;
  } finally {
    await s.release();
  }
}

const SHAPE = [2, 3, 9, 8] as const;
const input = () => new Rng(21).normalArray(SHAPE.reduce((a, d) => a * d, 1));

describe('inference-only ops vs float64 loops', () => {
  it('relu is max(x, 0)', async () => {
    const x = input();
    const got = await run([...SHAPE], (g, v) => g.relu(v), x);
    assert.deepEqual(
      Array.from(got.data),
      Array.from(x, (v) => Math.max(v, 0)),
    );
  });

  const cases: { what: string; opts: PoolOptions; reduce: Reduce }[] = [
    {
      what: 'max 3x3 stride 2, no padding (Inception stem)',
      opts: { kernel: [3, 3], strides: [2, 2] },
      reduce: 'max',
    },
    {
      what: 'max 3x3 stride 1 pad 1 (Mixed_7c branch pool)',
      opts: { kernel: [3, 3], pads: [1, 1, 1, 1] },
      reduce: 'max',
    },
    {
      what: 'average 3x3 stride 1 pad 1, padding not counted (FID Inception)',
      opts: { kernel: [3, 3], pads: [1, 1, 1, 1] },
      reduce: 'avg-exclude-pad',
    },
    {
      what: 'average 3x2 stride 2x1, asymmetric pads, padding counted',
      opts: { kernel: [3, 2], strides: [2, 1], pads: [1, 0, 2, 1] },
      reduce: 'avg-include-pad',
    },
    {
      what: 'average 3x2 stride 2x1, asymmetric pads, padding not counted',
      opts: { kernel: [3, 2], strides: [2, 1], pads: [1, 0, 2, 1] },
      reduce: 'avg-exclude-pad',
    },
  ];
  for (const { what, opts, reduce } of cases) {
    it(what, async () => {
      const x = input();
      const got = await run(
        [...SHAPE],
        (g, v) =>
          reduce === 'max'
            ? g.maxPool(v, opts)
            : g.averagePool(v, { ...opts, countIncludePad: reduce === 'avg-include-pad' }),
        x,
      );
      const want = poolLoop(x, SHAPE, opts, reduce);
      assert.deepEqual(got.shape, want.shape);
      allClose(got.data, want.data, 1e-6, 1e-6, what);
    });
  }

  it('shape errors name the op; autodiff refuses these ops by name', () => {
    const g = new Graph();
    const x = g.input('x', [1, 2, 4, 4]);
    assert.throws(() => g.maxPool(x, { kernel: [5, 5] }), /MaxPool: kernel 5x5 larger than padded input/);
    assert.throws(
      () => g.averagePool(x, { kernel: [3, 3], pads: [3, 0, 0, 0], countIncludePad: false }),
      /AveragePool: pads \[3,0,0,0\] must be smaller than the kernel 3x3/,
    );
    assert.throws(() => g.relu(g.maxPool(g.input('v', [2, 3]), { kernel: [1, 1] })), /expects a 4-d input/);
    for (const y of [
      g.relu(x),
      g.maxPool(x, { kernel: [2, 2] }),
      g.averagePool(x, { kernel: [2, 2], countIncludePad: false }),
    ]) {
      const op = y.producer!.op;
      assert.throws(
        () => grad(g, g.reduceSum(y, [0, 1, 2, 3], false), [x]),
        new RegExp(`${op}: has no gradient rule`),
      );
    }
  });
});
