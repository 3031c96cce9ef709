// ONNX Runtime's memory settings (SessionOptions.memArena, memPattern; the training session turns the memory
// pattern off): every combination runs on both Node engines and gives the same outputs as the defaults, bit
// for bit, run after run (the second run is the first with a memory pattern); sessions sharing the native
// engine's arena stay correct when one of them is released.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { type Engine, MEM_ARENAS, type MemArena } from './engine.js';
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
    it('every arena (shared, session, off) with the memory pattern on or off gives the same outputs', async () => {
      const x = { data: Float32Array.from({ length: 256 }, (_, i) => Math.cos(i)), shape: [4, 64] };
      const outputs = async (o: { memArena?: MemArena; memPattern?: boolean }) => {
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
      for (const memArena of MEM_ARENAS)
        for (const memPattern of [true, false]) {
          const got = await outputs({ memArena, memPattern });
          for (let i = 0; i < 3; i++)
            assert.deepEqual(got[i], want[0], `arena ${memArena}, pattern ${memPattern}, run ${i + 1}`);
        }
    });
    it('a session of the shared arena outlives another one released beside it', async () => {
      // Both take blocks from the one process-wide arena (native engine): releasing one must not free the
      // other's tensors.
      const x = { data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)), shape: [4, 64] };
      const a = await engine!.createSession(model(), { threads: 1, memArena: 'shared' });
      const b = await engine!.createSession(model(), { threads: 1, memArena: 'shared' });
      const first = (await a.run({ x })).y!.data.slice();
      await b.run({ x });
      await b.release();
      for (let i = 0; i < 3; i++) assert.deepEqual((await a.run({ x })).y!.data, first);
      await a.release();
    });
    it('an unknown arena is refused by name', {
      skip: name === 'native' ? false : 'typed only',
    }, async () => {
      await assert.rejects(
        engine!.createSession(model(), { memArena: 'pooled' as MemArena }),
        /memArena must be shared, session or off, not pooled/,
      );
    });
  });
