// Dropout masks: the drop rate and scale keep E[mask] = 1, and the stream is a pure function of the
// Rng state (so a resumed run draws the same masks).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../util/rng.js';
import { dropoutMask } from './trainGraph.js';

describe('dropoutMask', () => {
  it('drops a fraction p within 5 standard errors and keeps the mean at 1', () => {
    const n = 1_000_001;
    const m = new Float32Array(n);
    dropoutMask(m, 0.1, new Rng(3));
    let zeros = 0;
    let sum = 0;
    for (const v of m) {
      if (v === 0) zeros++;
      sum += v;
    }
    const se = Math.sqrt((0.1 * 0.9) / n);
    assert.ok(Math.abs(zeros / n - 0.1) < 5 * se, `drop rate ${zeros / n}`);
    assert.ok(Math.abs(sum / n - 1) < 5 * se * 1.2, `mean ${sum / n}`);
    assert.ok(m.every((v) => v === 0 || Math.abs(v - 1 / 0.9) < 1e-4));
  });
  it('is the xorshift128 stream of its definition, value for value (odd lengths too)', () => {
    // The documented stream written plainly: two 16-bit uniforms per word, u < round(p 2^16) drops.
    for (const [n, p] of [
      [1, 0.1],
      [7, 0.5],
      [4096, 0.1],
      [10_001, 0.3],
    ] as const) {
      const fast = new Float32Array(n);
      dropoutMask(fast, p, new Rng(n));
      const r = new Rng(n);
      const s = [r.nextU32() | 1, r.nextU32() | 0, r.nextU32() | 0, r.nextU32() | 0];
      const thresh = Math.round(p * 65536);
      const want = new Float32Array(n);
      for (let i = 0; i < n; i += 2) {
        const t = s[0]! ^ (s[0]! << 11);
        s.shift();
        s.push(s[2]! ^ (s[2]! >>> 19) ^ (t ^ (t >>> 8)));
        const d = s[3]!;
        for (const [j, u] of [
          [i, d & 0xffff],
          [i + 1, d >>> 16],
        ] as const) {
          if (j < n) want[j] = u < thresh ? 0 : 65536 / (65536 - thresh);
        }
      }
      assert.deepEqual(fast, want, `n ${n}, p ${p}`);
    }
  });
  it('is determined by the Rng state', () => {
    const a = new Float32Array(1001);
    const b = new Float32Array(1001);
    const r = new Rng(9);
    const st = r.getState();
    dropoutMask(a, 0.3, r);
    dropoutMask(b, 0.3, Rng.fromState(st));
    assert.deepEqual(a, b);
    dropoutMask(b, 0.3, r);
    assert.notDeepEqual(a, b);
  });
});
