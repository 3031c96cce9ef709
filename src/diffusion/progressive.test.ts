// Progressive generation (Fig. 6): frames at the requested steps, x0 predictions equal the Bayes posterior
// mean E[x_0 | x_t] of the oracle, and recording does not change the samples.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { ancestralSample } from './ancestral.js';
import { ddimSample, ddimTimesteps } from './ddim.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { progressiveSample } from './progressive.js';
import { getBetaSchedule } from './schedules.js';
import { explicitAlphasCumprod, gaussianOracle, gaussianPosteriorX0 } from './testing.js';

const T = 200;
const betas = getBetaSchedule('linear', { T, betaEnd: 0.1 });
const abar = explicitAlphasCumprod(betas);
const [mu, s] = [-0.3, 0.4];
const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: 'fixedlarge', lossType: 'mse' });
const oracle = gaussianOracle(betas, mu, s);
const shape = [6, 1, 3, 3];

test('ancestral progressive: frames at recordAt, x0 prediction = E[x0 | x_t], same samples as ancestralSample', async () => {
  const r = await progressiveSample(d, oracle, shape, new Rng(1), {
    recordAt: [0, 150, 199, 20],
    clipDenoised: false,
  });
  assert.deepEqual(
    r.frames.map((f) => f.t),
    [199, 150, 20, 0],
  );
  for (const f of r.frames) {
    const { gain, offset } = gaussianPosteriorX0(abar[f.t]!, mu, s);
    allClose(
      f.predXstart.data,
      Array.from(f.xt.data, (v) => gain * v + offset),
      0,
      1e-4, // eps -> x0 multiplies float32 rounding by 1/sqrt(abar_t), ~150 at t = 199 here
      `x0 prediction at t=${f.t}`,
    );
    assert.deepEqual(f.xt.shape, shape);
  }
  const plain = await ancestralSample(d, oracle, shape, new Rng(1), { clipDenoised: false });
  assert.deepEqual(r.sample.data, plain.data, 'recording does not change the sample');
  // x_T is the first recorded x_t: the first normals of the seed
  assert.deepEqual(r.frames[0]!.xt.data, new Rng(1).normalArray(54));
  // fixed variance, t = 0: the sample is the posterior mean at x0-hat, i.e. x0-hat itself
  allClose(r.sample.data, r.frames[3]!.predXstart.data, 0, 1e-6, 'last x0 prediction = sample');
  // predictions sharpen: their spread about mu grows from ~0 at T to ~s at 0
  const spread = (xs: Float32Array) => Math.sqrt(xs.reduce((a, v) => a + (v - mu) ** 2, 0) / xs.length);
  assert.ok(spread(r.frames[0]!.predXstart.data) < 0.05 && spread(r.frames[3]!.predXstart.data) > 0.15);
});

test('default frames: 10 evenly spread over the visited steps, first and last included', async () => {
  const r = await progressiveSample(d, oracle, shape, new Rng(2));
  const want = Array.from({ length: 10 }, (_, j) => 199 - Math.round((j * 199) / 9));
  assert.deepEqual(
    r.frames.map((f) => f.t),
    want,
  );
});

test('DDIM progressive: frames among the DDIM steps; unknown steps refused; same samples as ddimSample', async () => {
  const ts = Array.from(ddimTimesteps(T, 20));
  const r = await progressiveSample(d, oracle, shape, new Rng(3), {
    sampler: 'ddim',
    ddimSteps: 20,
    frames: 4,
  });
  assert.equal(r.frames.length, 4);
  for (const f of r.frames) assert.ok(ts.includes(f.t));
  assert.equal(r.frames[0]!.t, ts[ts.length - 1]);
  assert.equal(r.frames[3]!.t, 0);
  const plain = await ddimSample(d, oracle, shape, new Rng(3), { steps: 20 });
  assert.deepEqual(r.sample.data, plain.data);
  await assert.rejects(
    progressiveSample(d, oracle, shape, new Rng(3), { sampler: 'ddim', ddimSteps: 20, recordAt: [5] }),
    /never visits/,
  );
});
