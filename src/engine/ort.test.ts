// The engine over ONNX Runtime (ort.ts): outputs by name, and pre-allocated outputs that the runtime
// fills in place and that a session reuses run after run (the trainer's gradient buffers).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import type { Engine } from './engine.js';
import { nativeEngine } from './native.js';
import { onnxruntimeNodeEngine } from './node.js';

/** y = 2 x, z = x * x for x [2, 3]. */
function model(): Uint8Array {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  return toOnnx(g, { outputs: { y: g.scale(x, 2), z: g.mul(x, x) }, params: 'initializer' });
}

const engines: [string, Engine | null][] = [
  ['onnxruntime-node', onnxruntimeNodeEngine()],
  ['native', nativeEngine()],
];

for (const [name, engine] of engines)
  describe(`ONNX Runtime engine: ${name}`, { skip: engine ? false : 'not built' }, () => {
    it('returns all outputs, or the named ones', async () => {
      const s = await engine!.createSession(model());
      try {
        const x = { data: Float32Array.of(1, -2, 3, 0.5, 4, -1), shape: [2, 3] };
        const all = await s.run({ x });
        assert.deepEqual(Object.keys(all).sort(), ['y', 'z']);
        allClose(all.y!.data, [2, -4, 6, 1, 8, -2], 0, 0, 'y');
        assert.deepEqual(all.z!.shape, [2, 3]);
        const some = await s.run({ x }, ['z']);
        assert.deepEqual(Object.keys(some), ['z']);
        allClose(some.z!.data, [1, 4, 9, 0.25, 16, 1], 0, 0, 'z');
      } finally {
        await s.release();
      }
    });

    it('an opaque constant computes as its value without being fed', async () => {
      const g = new Graph();
      const x = g.input('x', [3]);
      const k = g.opaqueConstant(Float32Array.of(1, 2, 3), [3]);
      const s = await engine!.createSession(
        toOnnx(g, { outputs: { y: g.mul(x, k) }, params: 'initializer' }),
      );
      try {
        assert.deepEqual(s.inputNames, ['x'], 'the runtime lists it as an initializer, not a required input');
        const y = await s.run({ x: { data: Float32Array.of(4, 5, 6), shape: [3] } });
        allClose(y.y!.data, [4, 10, 18], 0, 0, 'x * k');
      } finally {
        await s.release();
      }
    });

    it('writes pre-allocated outputs in place, run after run', async () => {
      const s = await engine!.createSession(model());
      try {
        const buf = new Float32Array(6).fill(Number.NaN);
        const into = { z: { data: buf, shape: [2, 3] } };
        for (const v of [
          [1, 2, 3, 4, 5, 6],
          [-1, 0.5, 0, 7, -3, 2],
        ]) {
          const res = await s.run({ x: { data: Float32Array.from(v), shape: [2, 3] } }, into);
          assert.deepEqual(Object.keys(res), ['z'], 'only the pre-allocated outputs are returned');
          assert.equal(res.z!.data, buf, 'the result is the caller’s buffer');
          allClose(
            buf,
            v.map((a) => a * a),
            0,
            0,
            'z written into the buffer',
          );
        }
      } finally {
        await s.release();
      }
    });
  });
