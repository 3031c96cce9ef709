// Adam, clipping, warmup and EMA against float64 re-derivations of their definitions.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import {
  adamStep,
  emaDecayAt,
  emaInitShare,
  emaUpdate,
  globalNorm,
  learningRate,
  newAdamState,
  PAPER_ADAM,
} from './optim.js';

describe('optimiser', () => {
  it('Adam with clipping matches a float64 reference over several steps', () => {
    const rng = new Rng(5);
    const cfg = { ...PAPER_ADAM, lr: 1e-2, warmup: 3, gradClip: 0.5 };
    const p = new Map([
      ['w', rng.normalArray(7)],
      ['b', rng.normalArray(3)],
    ]);
    const ref = new Map([...p].map(([k, v]) => [k, Float64Array.from(v)]));
    const mRef = new Map([...p].map(([k, v]) => [k, new Float64Array(v.length)]));
    const vRef = new Map([...p].map(([k, v]) => [k, new Float64Array(v.length)]));
    const st = newAdamState(p);
    for (let t = 1; t <= 5; t++) {
      const g = new Map([...p].map(([k, v]) => [k, Float32Array.from(v, () => 3 * rng.normal())]));
      let n2 = 0;
      for (const a of g.values()) for (const x of a) n2 += x * x;
      const c = Math.min(1, 0.5 / Math.sqrt(n2));
      const lr = 1e-2 * Math.min(1, t / 3);
      for (const [k, a] of g) {
        const r = ref.get(k)!;
        const m = mRef.get(k)!;
        const v = vRef.get(k)!;
        for (let i = 0; i < a.length; i++) {
          const gi = a[i]! * c;
          m[i] = 0.9 * m[i]! + 0.1 * gi;
          v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
          const mh = m[i]! / (1 - 0.9 ** t);
          const vh = v[i]! / (1 - 0.999 ** t);
          r[i] = r[i]! - (lr * mh) / (Math.sqrt(vh) + 1e-8 * Math.sqrt(1 / (1 - 0.999 ** t)));
        }
      }
      const res = adamStep(cfg, st, p, g);
      assert.ok(Math.abs(res.gradNorm - Math.sqrt(n2)) < 1e-9 * Math.sqrt(n2));
      assert.equal(res.lr, lr);
    }
    for (const [k, v] of p) allClose(v, ref.get(k)!, 1e-5, 1e-6, `param ${k}`);
  });

  it('warmup is linear and then constant', () => {
    assert.equal(learningRate(PAPER_ADAM, 2500), 1e-4);
    assert.equal(learningRate(PAPER_ADAM, 5000), 2e-4);
    assert.equal(learningRate(PAPER_ADAM, 9000), 2e-4);
    assert.equal(learningRate({ ...PAPER_ADAM, warmup: 0 }, 1), 2e-4);
  });

  it('EMA follows the recursion and global norm is the L2 norm', () => {
    const e = new Map([['a', Float32Array.of(1, 2)]]);
    emaUpdate(e, new Map([['a', Float32Array.of(3, -2)]]), 0.75);
    allClose(e.get('a')!, [1.5, 1], 1e-7, 0);
    assert.equal(
      globalNorm(
        new Map([
          ['a', Float32Array.of(3)],
          ['b', Float32Array.of(4)],
        ]),
      ),
      5,
    );
  });

  it('EMA warmup: decay min(d, (1+s)/(10+s)); the initialisation share in closed form', () => {
    assert.equal(emaDecayAt(0.9999, 1, true), 2 / 11);
    assert.equal(emaDecayAt(0.999, 1e6, true), 0.999);
    assert.equal(emaDecayAt(0.9999, 1, false), 0.9999);
    // Below the cap, prod_{s=1..n} (s+1)/(s+10) = 10! (n+1)! / (n+10)! = 10! / ((n+2)(n+3)...(n+10)).
    for (const n of [1, 9, 50, 400]) {
      let den = 1;
      for (let j = 2; j <= 10; j++) den *= n + j;
      allClose([emaInitShare(0.9999, n, true)], [3628800 / den], 1e-12, 0, `share after ${n} steps`);
    }
    allClose([emaInitShare(0.9999, 10000, false)], [0.9999 ** 10000], 1e-9, 0, 'plain EMA');
    assert.ok(emaInitShare(0.9999, 10000, false) > 0.36, 'the plain EMA keeps 37% of the init');
    assert.ok(emaInitShare(0.9999, 10000, true) < 1e-12, 'with warmup the init is forgotten');
  });

  it('a non-finite gradient stops with a clear error', () => {
    const p = new Map([['w', Float32Array.of(1)]]);
    assert.throws(
      () => adamStep(PAPER_ADAM, newAdamState(p), p, new Map([['w', Float32Array.of(NaN)]])),
      /diverged/,
    );
  });
});
