// Respacing: spacedTimesteps against hand-computed tables (incl. Python's half-to-even rounding), respaced
// tables against explicit products, and sampling with the respaced chain against its exact moments.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { respacedDiffusion, spacedTimesteps } from './respace.js';
import { getBetaSchedule } from './schedules.js';
import { ancestralMoments, explicitAlphasCumprod, gaussianOracle, meanStd, type Spy } from './testing.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const base = new GaussianDiffusion({
  betas,
  modelMeanType: 'eps',
  modelVarType: 'fixedlarge',
  lossType: 'mse',
});

test('spacedTimesteps: ddimK strides, K evenly spread, sections, half-to-even rounding', () => {
  const range = (n: number, step: number, start = 0) => Array.from({ length: n }, (_, i) => start + i * step);
  assert.deepEqual(Array.from(spacedTimesteps(1000, 'ddim50')), range(50, 20));
  assert.deepEqual(Array.from(spacedTimesteps(1000, 'ddim3')), [0, 334, 668]); // first stride with 3 steps
  assert.deepEqual(Array.from(spacedTimesteps(1000, '10')), range(10, 111));
  assert.deepEqual(Array.from(spacedTimesteps(10, '3')), [0, 4, 9]); // round(4.5) = 4
  // two sections of 50: strides 49/9 and 49/4 = 12.25 (round(24.5) = 24)
  assert.deepEqual(
    Array.from(spacedTimesteps(100, '10,5')),
    [0, 5, 11, 16, 22, 27, 33, 38, 44, 49, 50, 62, 74, 87, 99],
  );
  assert.deepEqual(Array.from(spacedTimesteps(7, '7')), range(7, 1));
  assert.deepEqual(Array.from(spacedTimesteps(1000, '1')), [0]);
  assert.throws(() => spacedTimesteps(10, 'ddim7'), /integer stride/);
  assert.throws(() => spacedTimesteps(10, '11'), /cannot take/);
  assert.throws(() => spacedTimesteps(10, 'x'), /bad spec/);
});

test('respacedDiffusion: abar at the kept steps, betas 1 - abar_k / abar_{k-1}, original t for the Denoiser', () => {
  const keep = [0, 3, 10, 500, 999];
  const r = respacedDiffusion(base, [999, 10, 0, 3, 500, 3]);
  assert.equal(r.numTimesteps, 5);
  assert.deepEqual(Array.from(r.timestepMap), keep);
  allClose(
    r.alphasCumprod,
    keep.map((t) => abar[t]!),
    1e-12,
    0,
    'respaced abar',
  );
  allClose(
    r.betas,
    keep.map((t, k) => 1 - abar[t]! / (k === 0 ? 1 : abar[keep[k - 1]!]!)),
    1e-12,
    0,
    'respaced betas',
  );
  allClose(r.modelTimesteps(Int32Array.from([4, 0, 2])), [999, 0, 10], 0, 0, 'map');
  // keeping every step rebuilds the base tables
  const all = respacedDiffusion(
    base,
    Array.from({ length: T }, (_, i) => i),
  );
  allClose(all.betas, base.betas, 1e-12, 0, 'identity betas');
  allClose(all.posteriorVariance, base.posteriorVariance, 1e-9, 0, 'identity posterior');
  const xprev = new GaussianDiffusion({
    betas,
    modelMeanType: 'xprev',
    modelVarType: 'fixedlarge',
    lossType: 'mse',
  });
  assert.throws(() => respacedDiffusion(xprev, [0, 500]), /xprev/);
  assert.throws(() => respacedDiffusion(base, [0, 1000]), /outside/);
});

test('50 respaced ancestral steps recover N(mu, s^2) as the exact respaced chain predicts', async (tc) => {
  const [mu, s] = [0.2, 0.5];
  const keep = spacedTimesteps(T, '50');
  for (const varType of ['fixedlarge', 'fixedsmall'] as const) {
    const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: varType, lossType: 'mse' });
    const r = respacedDiffusion(d, keep);
    const spy: Spy = { calls: [] };
    const x = await r.pSampleLoop(gaussianOracle(betas, mu, s, 'eps', spy), [4096, 1, 2, 2], new Rng(11), {
      clipDenoised: false,
    });
    assert.deepEqual(
      spy.calls.map((t) => t[0]),
      Array.from(keep).reverse(),
    );
    const got = meanStd(x.data);
    const exact = ancestralMoments(
      Array.from(keep, (t) => abar[t]!),
      varType,
      mu,
      s,
    );
    const sd = Math.sqrt(exact.variance);
    const n = x.data.length;
    tc.diagnostic(
      `${varType}: sample ${got.mean.toFixed(4)} / ${got.std.toFixed(4)}, chain ${exact.mean.toFixed(4)} / ${sd.toFixed(4)}`,
    );
    assert.ok(Math.abs(got.mean - exact.mean) < (4 * sd) / Math.sqrt(n), 'mean');
    assert.ok(Math.abs(got.std - sd) < (4 * sd) / Math.sqrt(2 * n), 'std');
    // 50 strided DDPM steps bias the std: fixedlarge 3.5% wide, fixedsmall 11% narrow (Nichol & Dhariwal)
    const bias = varType === 'fixedlarge' ? 0.05 : 0.15;
    assert.ok(Math.abs(exact.mean - mu) < 2e-3 && Math.abs(sd / s - 1) < bias, `chain ${exact.mean} ${sd}`);
  }
});

test('a near-constant pixel (s = 0.01, an MNIST background): 50 respaced fixedlarge steps leave 4x its spread (grain), fixedsmall does not', async () => {
  const [mu, s] = [-1, 0.01];
  const keep = spacedTimesteps(T, '50');
  const stdOf = async (varType: 'fixedlarge' | 'fixedsmall') => {
    const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: varType, lossType: 'mse' });
    const x = await respacedDiffusion(d, keep).pSampleLoop(
      gaussianOracle(betas, mu, s),
      [4096, 1, 2, 2],
      new Rng(5),
      {
        clipDenoised: false,
      },
    );
    const got = meanStd(x.data).std;
    const exact = Math.sqrt(
      ancestralMoments(
        Array.from(keep, (t) => abar[t]!),
        varType,
        mu,
        s,
      ).variance,
    );
    assert.ok(
      Math.abs(got - exact) < (4 * exact) / Math.sqrt(2 * x.data.length),
      `${varType}: ${got} vs ${exact}`,
    );
    return got;
  };
  const large = await stdOf('fixedlarge');
  const small = await stdOf('fixedsmall');
  // sigma^2 = beta_t of a 20-step stride is far above the pixel's own spread; beta~_t is not
  assert.ok(large / s > 3, `fixedlarge std ${large}`);
  assert.ok(small / s > 0.3 && small / s < 1, `fixedsmall std ${small}`);
});
