// The WebAssembly SIMD passes, and the native binding's (native/optim.cc), against the plain loops they
// replace: bit for bit, at every length around the chunk size and the pair width, with values that stress
// rounding (tiny, huge, zero, negative zero).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../util/rng.js';
import { nativeEngine } from '../engine/native.js';
import { adamLoop, adamStep, emaLoop, emaUpdate, newAdamState, sumOfSquares } from './optim.js';
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

describe('native optimiser passes (Engine.optimKernels: two threads, many tensors per call)', () => {
  const native = nativeEngine()?.optimKernels;
  const skip = native ? false : 'the native binding is not built';
  // Lengths that split unevenly between the two threads, around the pair and lane widths.
  const lengths = [1, 7, 8, 9, 1000, CHUNK + 3, 3 * CHUNK + 1, 5];

  it('Adam and the EMA are bit-identical to the plain loops', { skip }, () => {
    const rng = new Rng(21);
    const c = { beta1: 0.9, beta2: 0.999, eps: 1e-8, alpha: 2.9e-4, clip: 0.731 };
    const ps = lengths.map((n) => data(rng, n, 'any'));
    const gs = lengths.map((n) => data(rng, n, 'any'));
    const ms = lengths.map((n) => data(rng, n, 'any'));
    const vs = lengths.map((n) => data(rng, n, 'positive'));
    const ref = { p: ps.map((x) => x.slice()), m: ms.map((x) => x.slice()), v: vs.map((x) => x.slice()) };
    lengths.forEach((_, i) => {
      adamLoop(ref.p[i]!, gs[i]!, ref.m[i]!, ref.v[i]!, c);
    });
    const before = ps.map((x) => x.slice());
    native!.adam(ps, gs, ms, vs, c);
    lengths.forEach((n, i) => {
      assert.equal(firstDifference(ms[i]!, ref.m[i]!), -1, `m differs, n = ${n}`);
      assert.equal(firstDifference(vs[i]!, ref.v[i]!), -1, `v differs, n = ${n}`);
      assert.equal(firstDifference(ps[i]!, ref.p[i]!), -1, `p differs, n = ${n}`);
      assert.notEqual(firstDifference(ps[i]!, before[i]!), -1, `p unchanged, n = ${n}`);
    });
    for (const decay of [0.9999, (1 + 7) / (10 + 7)]) {
      const es = lengths.map((n) => data(rng, n, 'any'));
      const eref = es.map((x) => x.slice());
      lengths.forEach((_, i) => {
        emaLoop(eref[i]!, ps[i]!, decay);
      });
      native!.ema(es, ps, decay);
      lengths.forEach((n, i) => {
        assert.equal(firstDifference(es[i]!, eref[i]!), -1, `ema differs, n = ${n}, decay ${decay}`);
      });
    }
  });

  it('sums of squares equal sumOfSquares exactly, and a float64 sum to rounding', { skip }, () => {
    const rng = new Rng(22);
    const gs = lengths.map((n) =>
      Float32Array.from({ length: n }, () => rng.normal() * 10 ** (rng.int(7) - 3)),
    );
    const got = native!.sumSquares(gs);
    gs.forEach((g, i) => {
      assert.ok(Object.is(got[i], sumOfSquares(g)), `tensor ${i}: ${got[i]} vs ${sumOfSquares(g)}`);
      // Against a sum in another order (sorted, smallest first): float64 rounding only.
      const sq = Array.from(g, (x) => x * x).sort((a, b) => a - b);
      const want = sq.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(got[i]! - want) <= 1e-13 * want + 1e-300, `tensor ${i}: ${got[i]} vs ${want}`);
    });
  });

  it('adamStep and emaUpdate with them take the same step as without', { skip }, () => {
    const rng = new Rng(23);
    const names = lengths.map((_, i) => `w${i}`);
    const params = new Map(names.map((k, i) => [k, data(rng, lengths[i]!, 'any')]));
    const grads = new Map(names.map((k, i) => [k, data(rng, lengths[i]!, 'any').map((x) => x * 1e-3)]));
    const twin = new Map([...params].map(([k, v]) => [k, v.slice()]));
    const [a, b] = [newAdamState(params), newAdamState(twin)];
    const cfg = { lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, warmup: 3, gradClip: 1 };
    const emaA = new Map([...params].map(([k, v]) => [k, v.slice()]));
    const emaB = new Map([...params].map(([k, v]) => [k, v.slice()]));
    for (let s = 0; s < 3; s++) {
      const ra = adamStep(cfg, a, params, grads);
      const rb = adamStep(cfg, b, twin, grads, native);
      assert.ok(
        Object.is(ra.gradNorm, rb.gradNorm) && ra.lr === rb.lr,
        `step ${s + 1}: norm ${ra.gradNorm} vs ${rb.gradNorm}`,
      );
      assert.ok(ra.gradNorm > cfg.gradClip, 'the clipping path is taken');
      emaUpdate(emaA, params, 0.99);
      emaUpdate(emaB, twin, 0.99, native);
    }
    for (const k of names) {
      assert.equal(firstDifference(twin.get(k)!, params.get(k)!), -1, `${k} differs`);
      assert.equal(firstDifference(b.m.get(k)!, a.m.get(k)!), -1, `m of ${k} differs`);
      assert.equal(firstDifference(emaB.get(k)!, emaA.get(k)!), -1, `ema of ${k} differs`);
    }
  });
});
