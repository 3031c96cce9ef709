// Timestep samplers (resample.ts) against improved-diffusion's resample.py semantics, recomputed here from
// plain lists: 'uniform' draws exactly Algorithm 1's rng.int(T) per sample; 'loss-second-moment' is uniform
// with weights 1 until every t holds 10 losses, then p_t = 0.999 sqrt(mean L_t^2) / sum + 0.001 / T, the oldest
// loss shifted out, draws following p (chi-square), weights 1 / (T p_t) keeping the weighted mean unbiased;
// its state round-trips through JSON and a bad one is refused.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { createTimestepSampler, HISTORY_PER_TERM, UNIFORM_PROB } from './resample.js';

describe('timestep samplers', () => {
  it("'uniform' draws rng.int(T) per sample, weights null", () => {
    const s = createTimestepSampler('uniform', 1000);
    const [a, b] = [new Rng(3), new Rng(3)];
    const d = s.sample(64, a);
    assert.equal(d.weights, null);
    assert.deepEqual(
      Array.from(d.t),
      Array.from({ length: 64 }, () => b.int(1000)),
    );
    assert.equal(s.getState(), null);
  });

  it("'loss-second-moment': uniform until warmed up, then p ~ sqrt(E[L^2]) mixed with 0.001 uniform", () => {
    const T = 7;
    const s = createTimestepSampler('loss-second-moment', T);
    const lists: number[][] = Array.from({ length: T }, () => []); // the reference: plain lists per t
    const rng = new Rng(1);
    let updates = 0;
    // Feed losses L = (t + 1) * u until every t has more than 10 (the oldest shifted out).
    while (lists.some((l) => l.length < HISTORY_PER_TERM + 3)) {
      const d = s.sample(5, rng);
      const warm = lists.every((l) => l.length >= HISTORY_PER_TERM);
      if (!warm) {
        assert.deepEqual(Array.from(d.weights!), [1, 1, 1, 1, 1], 'weights 1 before every t has 10 losses');
        allClose(s.probabilities(), new Array(T).fill(1 / T), 0, 0, 'uniform before warm-up');
      }
      const losses = Array.from(d.t, (t) => (t + 1) * (0.5 + rng.uniform()));
      s.update(d.t, losses);
      d.t.forEach((t, n) => {
        lists[t]!.push(losses[n]!);
      });
      updates++;
    }
    assert.ok(updates > 2);
    const rms = lists.map((l) => {
      const last = l.slice(-HISTORY_PER_TERM);
      return Math.sqrt(last.reduce((a, v) => a + v * v, 0) / HISTORY_PER_TERM);
    });
    const sum = rms.reduce((a, b) => a + b, 0);
    const want = rms.map((r) => (1 - UNIFORM_PROB) * (r / sum) + UNIFORM_PROB / T);
    const p = s.probabilities();
    allClose(p, want, 1e-12, 0, 'p_t');
    // draws follow p (chi-square with T - 1 = 6 degrees of freedom, 99.9% point 22.46) and weights are 1 / (T p_t)
    const N = 20000;
    const d = s.sample(N, new Rng(9));
    const counts = new Array(T).fill(0);
    d.t.forEach((t, n) => {
      counts[t]++;
      assert.ok(Math.abs(d.weights![n]! - 1 / (T * p[t]!)) < 1e-12);
    });
    const chi2 = counts.reduce((a, c, t) => a + (c - N * p[t]!) ** 2 / (N * p[t]!), 0);
    assert.ok(chi2 < 22.46, `chi-square ${chi2} (counts ${counts})`);
    // unbiased: E_p[w L_t] = the uniform mean of L_t (here for L_t = t + 1, mean 4)
    const est = d.t.reduce((a, t, n) => a + d.weights![n]! * (t + 1), 0) / N;
    assert.ok(Math.abs(est - 4) < 0.05, `importance-weighted mean ${est}`);
    // state: JSON round trip gives the same distribution; a bad state is refused
    const again = createTimestepSampler('loss-second-moment', T);
    again.setState(JSON.parse(JSON.stringify(s.getState())));
    assert.deepEqual(again.probabilities(), p);
    assert.throws(
      () => again.setState({ history: [1, 2], counts: [] }),
      /not 7 x 10 finite losses with counts 0\.\.10; the run cannot resume/,
    );
  });
});
