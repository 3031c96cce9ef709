// collectGarbage (gc.ts) really collects, without `node --expose-gc`: an unreachable buffer held only by a
// WeakRef is gone after one call, on both Node engines' hook; a reachable one stays.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { collectGarbage } from './gc.js';
import { nativeEngine } from './native.js';
import { onnxruntimeNodeEngine } from './node.js';

describe('collectGarbage', () => {
  const hooks = [
    { name: 'gc.ts', collect: collectGarbage },
    { name: 'onnxruntime-node engine', collect: onnxruntimeNodeEngine().collectGarbage },
    { name: 'native engine', collect: nativeEngine()?.collectGarbage },
  ];
  for (const { name, collect } of hooks) {
    it(`${name}: frees an unreachable 64 MB buffer, keeps a reachable one`, async (t) => {
      if (!collect) {
        if (name === 'native engine') return t.skip('native binding not built');
        assert.fail(`${name} has no collectGarbage`);
      }
      let dropped: Float32Array | null = new Float32Array(16 << 20);
      const kept = new Float32Array(16 << 20);
      const weakDropped = new WeakRef(dropped);
      const weakKept = new WeakRef(kept);
      dropped = null;
      await tick(); // a WeakRef keeps its target alive until the end of the job that made it
      collect();
      assert.ok(weakDropped.deref() === undefined, 'the unreachable buffer survived the collection');
      assert.ok(weakKept.deref() === kept, 'the reachable buffer was lost');
      assert.equal(kept.length, 16 << 20);
    });
  }
});
