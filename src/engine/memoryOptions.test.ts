// ONNX Runtime's memory settings (SessionOptions.memArena, memPattern; the training session turns the memory
// pattern off): every combination runs on both Node engines and gives the same outputs as the defaults, bit
// for bit, run after run (the second run is the first with a memory pattern).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { Engine } from './engine.js';
import { nativeEngine } from './native.js';
import { onnxruntimeNodeEngine } from './node.js';

/** A chain with intermediate tensors for the allocator to place: tanh(x W) W^T + x. */
function model(): Uint8Array {
  const g = new Graph();
  const x = g.input('x', [4, 64]);
  const w = g.constant(
    Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i) / 8),
    [64, 64],
  );
  const h = g.tanh(g.matmul(x, w));
  return toOnnx(g, { outputs: { y: g.add(g.matmul(h, g.transpose(w, [1, 0])), x) }, params: 'initializer' });
}

const engines: [string, Engine | null][] = [
  ['onnxruntime-node', onnxruntimeNodeEngine()],
  ['native', nativeEngine()],
];

for (const [name, engine] of engines)
  describe(`memory settings: ${name}`, { skip: engine ? false : 'not built' }, () => {
    it('arena and memory pattern on or off give the same outputs', async () => {
      const x = { data: Float32Array.from({ length: 256 }, (_, i) => Math.cos(i)), shape: [4, 64] };
      const outputs = async (o: { memArena?: boolean; memPattern?: boolean }) => {
        const s = await engine!.createSession(model(), { threads: 1, ...o });
        try {
          const runs: Float32Array[] = [];
          for (let i = 0; i < 3; i++) runs.push((await s.run({ x })).y!.data.slice());
          return runs;
        } finally {
          await s.release();
        }
      };
      const want = await outputs({});
      for (const memArena of [true, false])
        for (const memPattern of [true, false]) {
          const got = await outputs({ memArena, memPattern });
          for (let i = 0; i < 3; i++)
            assert.deepEqual(got[i], want[0], `arena ${memArena}, pattern ${memPattern}, run ${i + 1}`);
        }
    });
  });
