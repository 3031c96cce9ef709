// toOnnxWithFeeds (onnx.ts): the constants it picks leave the model's initializers and become graph inputs,
// returned beside the bytes; fed with every run, the model computes what the baked-in model does. Checked on
// onnxruntime-node, an engine independent of the native binding.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { onnxruntimeNodeEngine } from '../engine/node.js';
import { Rng } from '../util/rng.js';
import { Graph } from './graph.js';
import { readOnnx, toOnnx, toOnnxWithFeeds } from './onnx.js';

describe('toOnnxWithFeeds', () => {
  it('turns the picked float32 constants into inputs; fed, the outputs equal the baked-in model', async () => {
    const rng = new Rng(7);
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    const w = g.constant(rng.normalArray(12), [3, 4]); // picked
    const b = g.constant(rng.normalArray(4), [1, 4]); // kept
    const y = g.add(g.matmul(x, w), b); // [2, 4]
    const opts = { outputs: { y }, params: 'initializer' } as const;
    const baked = toOnnx(g, opts);
    const fed = toOnnxWithFeeds(g, opts, (v) => v.id === w.id);
    assert.deepEqual(Object.keys(fed.feeds), [w.name]);
    const leaf = g.leaves.find((l) => l.value.id === w.id);
    assert.ok(
      leaf?.kind === 'const' && fed.feeds[w.name]!.data === leaf.data,
      'the constant itself, not a copy',
    );
    assert.deepEqual(fed.feeds[w.name]!.shape, [3, 4]);
    assert.deepEqual([...readOnnx(fed.model).initializers.keys()], [b.name], 'only b stays an initializer');
    assert.deepEqual([...readOnnx(baked).initializers.keys()].sort(), [w.name, b.name].sort());
    assert.deepEqual(toOnnxWithFeeds(g, opts, () => false).model, baked, 'nothing picked: the same bytes');

    const engine = onnxruntimeNodeEngine();
    const xs = { x: { data: rng.normalArray(6), shape: [2, 3] } };
    const run = async (model: Uint8Array, feeds: object) => {
      const s = await engine.createSession(model, { threads: 1 });
      try {
        return { inputs: [...s.inputNames].sort(), y: (await s.run({ ...feeds, ...xs })).y!.data };
      } finally {
        await s.release();
      }
    };
    const want = await run(baked, {});
    const got = await run(fed.model, fed.feeds);
    assert.deepEqual(want.inputs, ['x']);
    assert.deepEqual(got.inputs, [w.name, 'x'].sort());
    assert.deepEqual(got.y, want.y);
  });
});
