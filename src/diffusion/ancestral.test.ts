// Algorithm 2 with an oracle Denoiser for N(mu, s^2) pixels: sample moments against the exact moments of the
// (linear-Gaussian) chain, computed in float64 by Bayes' rule, and against the data distribution.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../util/rng.js';
import { ancestralSample } from './ancestral.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { getBetaSchedule } from './schedules.js';
import { ancestralMoments, explicitAlphasCumprod, gaussianOracle, meanStd, type Spy } from './testing.js';
import type { ModelMeanType, ModelVarType } from './types.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const [mu, s] = [0.2, 0.5];
const SHAPE = [2048, 1, 2, 2]; // 8192 independent pixels
const COUNT = 8192;

for (const [meanType, varType, seed] of [
  ['eps', 'fixedlarge', 1],
  ['xstart', 'fixedsmall', 2],
  ['xprev', 'fixedlarge', 3],
] as [ModelMeanType, ModelVarType, number][]) {
  test(`Algorithm 2 (T = 1000, ${meanType}, ${varType}) recovers N(${mu}, ${s}^2)`, async (tc) => {
    const d = new GaussianDiffusion({
      betas,
      modelMeanType: meanType,
      modelVarType: varType,
      lossType: 'mse',
    });
    const x = await ancestralSample(d, gaussianOracle(betas, mu, s, meanType), SHAPE, new Rng(seed), {
      clipDenoised: false,
    });
    const got = meanStd(x.data);
    const exact = ancestralMoments(abar, varType, mu, s);
    const exactStd = Math.sqrt(exact.variance);
    const seMean = exactStd / Math.sqrt(COUNT);
    const seStd = exactStd / Math.sqrt(2 * COUNT);
    tc.diagnostic(
      `sample mean ${got.mean.toFixed(4)} std ${got.std.toFixed(4)}; chain mean ${exact.mean.toFixed(4)} ` +
        `std ${exactStd.toFixed(4)}; data ${mu} / ${s}; z ${((got.mean - exact.mean) / seMean).toFixed(2)}, ` +
        `${((got.std - exactStd) / seStd).toFixed(2)}`,
    );
    assert.ok(Math.abs(got.mean - exact.mean) < 4 * seMean, `mean ${got.mean} vs ${exact.mean}`);
    assert.ok(Math.abs(got.std - exactStd) < 4 * seStd, `std ${got.std} vs ${exactStd}`);
    // the chain itself is within 1% of the data distribution (fixedsmall is 0.8% narrow, fixedlarge 0.2% wide)
    assert.ok(Math.abs(exact.mean - mu) < 1e-3 && Math.abs(exactStd / s - 1) < 0.01, 'chain vs data');
    assert.ok(Math.abs(got.mean - mu) < 0.015 && Math.abs(got.std / s - 1) < 0.02, 'samples vs data');
  });
}

test('ancestralSample: same seed same samples, other seed other samples; clipping keeps [-1, 1]', async () => {
  const d = new GaussianDiffusion({
    betas,
    modelMeanType: 'eps',
    modelVarType: 'fixedlarge',
    lossType: 'mse',
  });
  const oracle = gaussianOracle(betas, 0.9, 0.5);
  const a = await ancestralSample(d, oracle, [3, 1, 2, 2], new Rng(7));
  const b = await ancestralSample(d, oracle, [3, 1, 2, 2], new Rng(7));
  const c = await ancestralSample(d, oracle, [3, 1, 2, 2], new Rng(8));
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
  // at t = 0 the sample is the clipped x0 prediction (fixed variance, no noise)
  for (const v of a.data) assert.ok(v >= -1 && v <= 1, `${v}`);
});

test('ancestralSample with steps "50": 50 Denoiser calls at the respaced original timesteps', async () => {
  const d = new GaussianDiffusion({
    betas,
    modelMeanType: 'eps',
    modelVarType: 'fixedsmall',
    lossType: 'mse',
  });
  const spy: Spy = { calls: [] };
  const progress: number[] = [];
  await ancestralSample(d, gaussianOracle(betas, mu, s, 'eps', spy), [2, 1, 1, 1], new Rng(3), {
    steps: '50',
    onProgress: (p) => progress.push(p.total),
  });
  // "50": round(i * 999 / 49), i = 0..49 (no halves occur), visited in descending order
  const want = Array.from({ length: 50 }, (_, i) => Math.round((i * 999) / 49)).reverse();
  assert.deepEqual(
    spy.calls.map((t) => t[0]),
    want,
  );
  assert.equal(progress.length, 50);
  assert.ok(progress.every((v) => v === 50));
});
