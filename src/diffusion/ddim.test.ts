// DDIM with an oracle Denoiser for N(mu, s^2) pixels: with eta = 0 every sampler step is an affine map of x
// whose coefficients the test derives by Bayes' rule, so samples, encodings and reconstructions are checked
// elementwise; eta > 0 against the exact moments; eta = 1 over all steps against Algorithm 2 (fixedsmall).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { ddimReverse, ddimSample, ddimTimesteps } from './ddim.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { getBetaSchedule } from './schedules.js';
import { ddimAffine, explicitAlphasCumprod, gaussianOracle, meanStd, type Spy } from './testing.js';
import type { ModelMeanType, ModelVarType } from './types.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const [mu, s] = [0.2, 0.5];
const make = (meanType: ModelMeanType = 'eps', varType: ModelVarType = 'fixedlarge') =>
  new GaussianDiffusion({ betas, modelMeanType: meanType, modelVarType: varType, lossType: 'mse' });
const normal = (rng: Rng, shape: number[]): Tensor => ({
  data: rng.normalArray(shape.reduce((a, b) => a * b, 1)),
  shape,
});

/** Compose the DDIM moves over ts (descending, down to abar = 1) into x -> a x + b, noise variance v. */
function decodeMap(ts: ArrayLike<number>, eta = 0): { a: number; b: number; v: number } {
  let [a, b, v] = [1, 0, 0];
  for (let k = ts.length - 1; k >= 0; k--) {
    const m = ddimAffine(abar[ts[k]!]!, k > 0 ? abar[ts[k - 1]!]! : 1, mu, s, eta);
    [a, b, v] = [m.a * a, m.a * b + m.b, m.a * m.a * v + m.noiseVar];
  }
  return { a, b, v };
}

test('ddimTimesteps: the ddimS stride when it exists, else S evenly spread', () => {
  assert.deepEqual(Array.from(ddimTimesteps(1000, 50)).slice(0, 3), [0, 20, 40]);
  assert.equal(ddimTimesteps(1000, 50).length, 50);
  assert.deepEqual(Array.from(ddimTimesteps(10, 7)), [0, 2, 3, 4, 6, 8, 9]); // no stride gives 7 ("7")
});

test('DDIM 50 steps, eta = 0: each sample is the exact affine image of x_T; moments near N(mu, s^2)', async (tc) => {
  const d = make();
  const shape = [2048, 1, 2, 2];
  const xT = normal(new Rng(1), shape);
  const spy: Spy = { calls: [] };
  const x = await ddimSample(d, gaussianOracle(betas, mu, s, 'eps', spy), shape, new Rng(2), {
    steps: 50,
    xT,
    clipDenoised: false,
  });
  const ts = ddimTimesteps(T, 50);
  assert.deepEqual(
    spy.calls.map((t) => t[0]),
    Array.from(ts).reverse(),
  );
  const { a, b } = decodeMap(ts);
  allClose(
    x.data,
    Array.from(xT.data, (v) => a * v + b),
    0,
    2e-5,
    'DDIM sample vs exact map',
  );
  const got = meanStd(x.data);
  tc.diagnostic(
    `DDIM-50: mean ${got.mean.toFixed(4)} std ${got.std.toFixed(4)}; exact map gives std ${a.toFixed(4)}`,
  );
  // Deterministic DDIM-50 under-disperses Gaussian data by ~5.5% (discretisation), mean is right
  assert.ok(Math.abs(got.mean - mu) < 0.015, `mean ${got.mean}`);
  assert.ok(Math.abs(got.std / s - 1) < 0.08, `std ${got.std}`);
  assert.ok(Math.abs(a / s - 1) < 0.07);
});

test('DDIM eta = 0 is deterministic given x_T and does not use the rng', async () => {
  const d = make();
  const shape = [4, 1, 3, 3];
  const xT = normal(new Rng(3), shape);
  const oracle = gaussianOracle(betas, mu, s);
  const r1 = new Rng(10);
  const before = JSON.stringify(r1.getState());
  const a = await ddimSample(d, oracle, shape, r1, { steps: 20, xT });
  assert.equal(JSON.stringify(r1.getState()), before);
  const b = await ddimSample(d, oracle, shape, new Rng(99), { steps: 20, xT });
  assert.deepEqual(a.data, b.data);
  const c = await ddimSample(d, oracle, shape, new Rng(5), { steps: 20 });
  const e = await ddimSample(d, oracle, shape, new Rng(5), { steps: 20 });
  assert.deepEqual(c.data, e.data, 'same seed, same samples');
});

test('ddimReverse then ddimSample: exact composed maps; reconstruction error shrinks with steps', async (tc) => {
  const d = make();
  const rng = new Rng(4);
  const x0: Tensor = {
    data: Float32Array.from({ length: 64 }, () => mu + s * rng.normal()),
    shape: [16, 1, 2, 2],
  };
  const oracle = gaussianOracle(betas, mu, s);
  const errs: number[] = [];
  for (const steps of [50, 1000]) {
    const ts = ddimTimesteps(T, steps);
    const enc = await ddimReverse(d, oracle, x0, { steps, clipDenoised: false });
    assert.equal(enc.t, ts[ts.length - 1]);
    let [ea, eb] = [1, 0];
    for (let k = 0; k < ts.length - 1; k++) {
      const m = ddimAffine(abar[ts[k]!]!, abar[ts[k + 1]!]!, mu, s);
      [ea, eb] = [m.a * ea, m.a * eb + m.b];
    }
    allClose(
      enc.xT.data,
      Array.from(x0.data, (v) => ea * v + eb),
      1e-4,
      1e-5,
      `encoding (${steps} steps)`,
    );
    const rec = await ddimSample(d, oracle, x0.shape, new Rng(0), { steps, xT: enc.xT, clipDenoised: false });
    const { a, b } = decodeMap(ts);
    allClose(
      rec.data,
      Array.from(x0.data, (v) => a * (ea * v + eb) + b),
      1e-4,
      1e-5,
      `reconstruction (${steps} steps)`,
    );
    const err = Math.max(...Array.from(rec.data, (v, i) => Math.abs(v - x0.data[i]!)));
    const spread = Math.max(...Array.from(x0.data, (v) => Math.abs(v - mu)));
    errs.push(err / spread);
    tc.diagnostic(
      `${steps} steps: max |x0' - x0| = ${err.toFixed(5)} (${((100 * err) / spread).toFixed(2)}% of max |x0 - mu|)`,
    );
  }
  assert.ok(errs[1]! < 0.01, `1000-step reconstruction error ${errs[1]}`);
  assert.ok(errs[0]! < 0.15 && errs[1]! < errs[0]! / 10, `errors ${errs}`);
});

test('DDIM eta = 1 over all T steps is Algorithm 2 with fixedsmall (same noise stream)', async (tc) => {
  const d = make('eps', 'fixedsmall');
  const shape = [16, 1, 2, 2];
  const oracle = gaussianOracle(betas, mu, s);
  const ddpm = await d.pSampleLoop(oracle, shape, new Rng(6), { clipDenoised: false });
  const ts = Array.from({ length: T }, (_, i) => i);
  const ddim = await ddimSample(d, oracle, shape, new Rng(6), { timesteps: ts, eta: 1, clipDenoised: false });
  const worst = Math.max(...Array.from(ddim.data, (v, i) => Math.abs(v - ddpm.data[i]!)));
  tc.diagnostic(`max |DDIM(eta=1) - DDPM| = ${worst.toExponential(2)}`);
  allClose(ddim.data, ddpm.data, 0, 1e-5, 'eta = 1 vs Algorithm 2');
});

test('DDIM 50 steps, eta = 0.5: moments match the exact stochastic chain', async (tc) => {
  const d = make();
  const shape = [2048, 1, 2, 2];
  const x = await ddimSample(d, gaussianOracle(betas, mu, s), shape, new Rng(7), {
    steps: 50,
    eta: 0.5,
    clipDenoised: false,
  });
  const { a, b, v } = decodeMap(ddimTimesteps(T, 50), 0.5);
  const mean = b; // x_T ~ N(0, 1)
  const sd = Math.sqrt(a * a + v);
  const got = meanStd(x.data);
  const n = x.data.length;
  tc.diagnostic(
    `eta 0.5: sample ${got.mean.toFixed(4)} / ${got.std.toFixed(4)}, exact ${mean.toFixed(4)} / ${sd.toFixed(4)}`,
  );
  assert.ok(Math.abs(got.mean - mean) < (4 * sd) / Math.sqrt(n), 'mean');
  assert.ok(Math.abs(got.std - sd) < (4 * sd) / Math.sqrt(2 * n), 'std');
});

test('DDIM works for every parameterisation (x0 from the original-t output)', async () => {
  const shape = [8, 1, 2, 2];
  const xT = normal(new Rng(8), shape);
  const ref = await ddimSample(make('eps'), gaussianOracle(betas, mu, s, 'eps'), shape, new Rng(0), {
    steps: 25,
    xT,
    clipDenoised: false,
  });
  for (const meanType of ['xstart', 'xprev'] as const) {
    const x = await ddimSample(make(meanType), gaussianOracle(betas, mu, s, meanType), shape, new Rng(0), {
      steps: 25,
      xT,
      clipDenoised: false,
    });
    allClose(x.data, ref.data, 0, meanType === 'xprev' ? 2e-3 : 1e-5, `${meanType} vs eps`);
  }
});
