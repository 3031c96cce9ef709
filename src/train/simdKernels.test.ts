// The WebAssembly SIMD passes against the plain loops they replace: bit for bit, at every length around
// the chunk size and the pair width, with values that stress rounding (tiny, huge, zero, negative zero).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../util/rng.js';
import { adamLoop, emaLoop } from './optim.js';
import { simdKernels } from './simdKernels.js';

const CHUNK = 16384;
const LENGTHS = [1, 2, 3, 17, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5];

function data(rng: Rng, n: number, kind: 'any' | 'positive'): Float32Array {
  const specials = [0, -0, 1e-30, -1e-30, 3e38, -3e38, 1e-45, 1];
  return Float32Array.from({ length: n }, (_, i) => {
    const x = i % 97 === 5 ? specials[i % specials.length]! : rng.normal() * 10 ** (rng.int(13) - 8);
    return kind === 'positive' ? Math.abs(x) : x;
  });
}

function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

describe('optimiser SIMD kernels', () => {
  const kernels = simdKernels();

  it('are available in this runtime (Node 20 has WebAssembly SIMD)', () => {
    assert.ok(kernels, 'simdKernels() returned null');
  });

  it('Adam is bit-identical to the plain loop', () => {
    const rng = new Rng(11);
    for (const n of LENGTHS) {
      const [p, g, m] = [data(rng, n, 'any'), data(rng, n, 'any'), data(rng, n, 'any')];
      const v = data(rng, n, 'positive');
      const c = { beta1: 0.9, beta2: 0.999, eps: 1e-8, alpha: 3.7e-4, clip: 0.6180339887 };
      const ref = { p: p.slice(), m: m.slice(), v: v.slice() };
      const before = p.slice();
      adamLoop(ref.p, g, ref.m, ref.v, c);
      kernels!.adam(p, g, m, v, c);
      assert.equal(firstDifference(m, ref.m), -1, `m differs, n = ${n}`);
      assert.equal(firstDifference(v, ref.v), -1, `v differs, n = ${n}`);
      assert.equal(firstDifference(p, ref.p), -1, `p differs, n = ${n}`);
      assert.notEqual(firstDifference(p, before), -1, `the update left p unchanged, n = ${n}`);
    }
  });

  it('the EMA blend is bit-identical to the plain loop', () => {
    const rng = new Rng(12);
    for (const n of LENGTHS) {
      for (const decay of [0.9999, 0.5, (1 + 7) / (10 + 7)]) {
        const e = data(rng, n, 'any');
        const p = data(rng, n, 'any');
        const ref = e.slice();
        emaLoop(ref, p, decay);
        kernels!.ema(e, p, decay);
        assert.equal(firstDifference(e, ref), -1, `n = ${n}, decay = ${decay}`);
      }
    }
  });
});
