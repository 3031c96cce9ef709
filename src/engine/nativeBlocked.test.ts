// The native training kernels in ONNX Runtime's blocked layout (capability BlockedTraining: GroupNormSiluGrad,
// DropoutMul and ConvWeightGrad with block attributes, used by the blocked-layout pass on training graphs):
// each against the same kernel on the NCHW tensors, at blocks 8 and 16 (the data laid out here, so both are
// tested whatever the runtime's own block), for groups inside a block, spanning blocks and straddling them.

import { describe, it } from 'node:test';
import { FUSED_DOMAIN, Graph } from '../graph/graph.js';
import { relayout } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { nativeEngine, nativeKernelNames } from './native.js';

const engine = nativeEngine();
const skip = !engine
  ? 'the native binding is not built (no C++ compiler at npm ci)'
  : !nativeKernelNames().includes('BlockedTraining')
    ? 'this build has no blocked training kernels'
    : false;

/** One fused node in a session of its own: its outputs for the inputs (named, in order). */
async function runNode(
  op: string,
  inputs: Record<string, Tensor>,
  outShapes: number[][],
  attrs: Record<string, number | { floats: number[] }>,
): Promise<Float32Array[]> {
  const g = new Graph();
  const values = Object.entries(inputs).map(([name, t]) => g.input(name, t.shape));
  const ys = g.node(op, values, outShapes, attrs, undefined, undefined, FUSED_DOMAIN);
  const outputs = Object.fromEntries(ys.map((y, i) => [`y${i}`, y]));
  const s = await engine!.createSession(toOnnx(g, { outputs, params: 'initializer' }), { threads: 2 });
  try {
    const res = await s.run(inputs);
    return ys.map((_, i) => res[`y${i}`]!.data);
  } finally {
    await s.release();
  }
}

describe('native training kernels in the blocked layout', { skip }, () => {
  for (const [shape, groups, why] of [
    [[2, 32, 5, 6], 8, '4 channels a group, inside a block'],
    [[3, 96, 4, 4], 32, '3 channels a group, straddling blocks'],
    [[2, 64, 3, 3], 2, '32 channels a group, spanning blocks'],
    [[2, 48, 7, 5], 4, '12 channels a group'],
  ] as [number[], number, string][]) {
    for (const b of [8, 16]) {
      if (shape[1]! % b !== 0) continue;
      it(`GroupNormSiluGrad ${JSON.stringify(shape)}, ${groups} groups (${why}), block ${b}, equals NCHW`, async () => {
        const rng = new Rng(shape[1]! * 10 + b);
        const size = shape.reduce((a, d) => a * d, 1);
        const c = shape[1]!;
        const x = Float32Array.from(rng.normalArray(size), (v) => v * 2 + 0.5);
        const dy = rng.normalArray(size);
        const gamma = rng.normalArray(c);
        const beta = rng.normalArray(c);
        const attrs = { groups, epsilon: { floats: [1e-5] } };
        const outs = [shape, [c], [c]];
        const nchw = await runNode(
          'GroupNormSiluGrad',
          {
            dy: { data: dy, shape },
            x: { data: x, shape },
            gamma: { data: gamma, shape: [c] },
            beta: { data: beta, shape: [c] },
          },
          outs,
          attrs,
        );
        const blocked = await runNode(
          'GroupNormSiluGrad',
          {
            dy: { data: relayout(dy, shape, b), shape },
            x: { data: relayout(x, shape, b), shape },
            gamma: { data: gamma, shape: [c] },
            beta: { data: beta, shape: [c] },
          },
          outs,
          { ...attrs, block: b },
        );
        allClose(relayout(blocked[0]!, shape, b, true), nchw[0]!, 1e-4, 1e-5, 'dx');
        allClose(blocked[1]!, nchw[1]!, 1e-4, 1e-4, 'dgamma');
        allClose(blocked[2]!, nchw[2]!, 1e-4, 1e-4, 'dbeta');
      });
    }
  }

  for (const b of [8, 16]) {
    it(`DropoutMul, block ${b}: the same mask as NCHW, value for value`, async () => {
      const shape = [3, 32, 5, 7];
      const size = shape.reduce((a, d) => a * d, 1);
      const x = new Rng(b).normalArray(size);
      const key = { data: Float32Array.of(12345, 678, 5), shape: [3] }; // batch offset 5: images 5..7
      const attrs = { p: { floats: [0.3] }, site: 4 };
      const [nchw] = await runNode('DropoutMul', { x: { data: x, shape }, key }, [shape], attrs);
      const [blocked] = await runNode(
        'DropoutMul',
        { x: { data: relayout(x, shape, b), shape }, key },
        [shape],
        { ...attrs, block: b },
      );
      allClose(relayout(blocked!, shape, b, true), nchw!, 0, 0, 'DropoutMul');
      const dropped = nchw!.filter((v) => v === 0).length / size;
      if (!(dropped > 0.2 && dropped < 0.4)) throw new Error(`dropped ${dropped} of the values, p = 0.3`);
    });
  }

  // [n, c, o, h, w, kh, kw, stride, pads]: x read directly (more input channels) or dy, shift planes, tap
  // planes (stride 2), a 1x1 conv (its x read in place when NCHW, in planes when blocked), rows longer than 16.
  for (const [n, c, o, h, w, kh, kw, sh, pads, why] of [
    [2, 48, 16, 6, 5, 3, 3, 1, [1, 1, 1, 1], 'x direct, planes of dy'],
    [3, 16, 32, 5, 6, 3, 3, 1, [1, 1, 1, 1], 'dy direct, planes of x'],
    [2, 32, 32, 7, 6, 3, 3, 2, [0, 0, 1, 1], 'stride 2, tap planes'],
    [2, 32, 16, 4, 5, 1, 1, 1, [0, 0, 0, 0], '1x1'],
    [2, 24, 40, 4, 4, 2, 2, 1, [1, 1, 0, 0], '2x2 phase conv, channels off the 16 lanes'],
    [2, 32, 16, 3, 20, 3, 3, 1, [1, 1, 1, 1], 'rows of 20: a 16-position transpose and a tail'],
    [2, 48, 16, 2, 33, 3, 3, 1, [1, 1, 1, 1], 'x direct, planes of dy in rows of 33'],
    [7, 32, 64, 8, 8, 3, 3, 1, [1, 1, 1, 1], 'batch 7: sample ranges over threads'],
    [5, 16, 16, 48, 40, 3, 3, 2, [0, 0, 1, 1], 'batch 5, stride 2 on 48x40: one sample per group of planes'],
  ] as [number, number, number, number, number, number, number, number, number[], string][]) {
    for (const b of [8, 16]) {
      if (c % b !== 0 || o % b !== 0) continue;
      it(`ConvWeightGrad ${kh}x${kw} stride ${sh}, ${c} -> ${o} (${why}), block ${b}: x, dy or both blocked equal NCHW`, async () => {
        const [pt, pl, pb, pr] = pads as [number, number, number, number];
        const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
        const ow = Math.floor((w + pl + pr - kw) / sh) + 1;
        const rng = new Rng(c * 7 + o + b);
        const xs = [n, c, h, w];
        const ds = [n, o, oh, ow];
        const x = rng.normalArray(n * c * h * w);
        const dy = rng.normalArray(n * o * oh * ow);
        const attrs = { kh, kw, sh, sw: sh, pt, pl };
        const run = (xb: number, db: number) =>
          runNode(
            'ConvWeightGrad',
            {
              x: { data: xb ? relayout(x, xs, b) : x, shape: xs },
              dy: { data: db ? relayout(dy, ds, b) : dy, shape: ds },
            },
            [[o, c, kh, kw]],
            { ...attrs, xblock: xb, dyblock: db },
          );
        const [want] = await run(0, 0);
        for (const [xb, db] of [
          [b, 0],
          [0, b],
          [b, b],
        ]) {
          const [got] = await run(xb!, db!);
          allClose(got!, want!, 1e-5, 1e-5, `xblock ${xb}, dyblock ${db}`);
        }
      });
    }
  }
});
