// The ODE samplers' schedules: Karras et al.'s eq. 5 against its definition, log-sigma snapping against a
// brute-force search, the nodes of each spacing, and the float64 combination rounded once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { ddimTimesteps } from './ddim.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { getBetaSchedule } from './schedules.js';
import { combine, diffusionSigmas, karrasSigmas, nearestTimestep, sigmaSchedule } from './sigmaSchedule.js';
import { explicitAlphasCumprod } from './testing.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: 'fixedlarge', lossType: 'mse' });

test('diffusionSigmas: sigma_t = sqrt((1 - abar_t) / abar_t) from explicit products; 0.01 .. 157 for the paper', () => {
  const abar = explicitAlphasCumprod(betas);
  allClose(
    diffusionSigmas(d),
    Array.from(abar, (a) => Math.sqrt((1 - a) / a)),
    1e-12,
    0,
    'sigmas',
  );
  const s = diffusionSigmas(d);
  assert.ok(Math.abs(s[0]! - 0.01) < 1e-4 && s[T - 1]! > 150 && s[T - 1]! < 160, `${s[0]}, ${s[T - 1]}`);
});

test('karrasSigmas: eq. 5 with rho = 7, both ends exact, evenly spaced in sigma^(1/rho)', () => {
  const k = karrasSigmas(0.002, 80, 18);
  assert.equal(k.length, 18);
  allClose([k[0]!, k[17]!], [80, 0.002], 1e-12, 0, 'ends');
  for (let i = 0; i < 18; i++) {
    const want = (80 ** (1 / 7) + (i / 17) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7;
    allClose([k[i]!], [want], 1e-12, 0, `sigma_${i}`);
  }
  const roots = Array.from(k, (v) => v ** (1 / 7));
  const gaps = roots.slice(1).map((r, i) => roots[i]! - r);
  allClose(gaps, new Array(17).fill(gaps[0]), 1e-9, 0, 'even gaps');
  assert.deepEqual(Array.from(karrasSigmas(0.01, 10, 1)), [10]);
});

test('nearestTimestep: the nearest entry in log-sigma (brute force), clamped at both ends', () => {
  const table = diffusionSigmas(d);
  for (const sigma of [1e-4, 0.01, 0.0121, 0.0122, 0.5, 1, 3.3, 80, 156, 1e4]) {
    let best = 0;
    for (let t = 0; t < T; t++) {
      if (Math.abs(Math.log(table[t]! / sigma)) < Math.abs(Math.log(table[best]! / sigma))) best = t;
    }
    assert.equal(nearestTimestep(table, sigma), best, `sigma ${sigma}`);
  }
});

test('sigmaSchedule: descending distinct timesteps from T - 1 to 0, their sigmas, then 0; duplicates dropped', () => {
  const table = diffusionSigmas(d);
  for (const spacing of ['karras', 'logSnr', 'uniform'] as const) {
    for (const steps of [1, 2, 10, 15, 50, 1000]) {
      const { timesteps, sigmas } = sigmaSchedule(d, steps, spacing);
      assert.ok(timesteps.length <= steps && timesteps.length >= 1, `${spacing} ${steps}`);
      if (spacing !== 'uniform') assert.equal(timesteps[0], T - 1);
      if (steps > 1) assert.equal(timesteps[timesteps.length - 1], 0);
      for (let k = 1; k < timesteps.length; k++) assert.ok(timesteps[k]! < timesteps[k - 1]!);
      assert.equal(sigmas.length, timesteps.length + 1);
      assert.equal(sigmas[timesteps.length], 0);
      assert.deepEqual(
        Array.from(sigmas.subarray(0, timesteps.length)),
        Array.from(timesteps, (t) => table[t]!),
      );
    }
  }
  // Up to 50 Karras nodes land on distinct timesteps here; 1000 collapse (the grid is coarse at both ends).
  assert.equal(sigmaSchedule(d, 50).timesteps.length, 50);
  assert.ok(sigmaSchedule(d, 1000).timesteps.length < 1000);
  assert.deepEqual(
    Array.from(sigmaSchedule(d, 20, 'uniform').timesteps),
    Array.from(ddimTimesteps(T, 20)).reverse(),
  );
  // the Karras nodes are the snapped eq. 5 sigmas
  const k = karrasSigmas(table[0]!, table[T - 1]!, 15);
  assert.deepEqual(
    Array.from(sigmaSchedule(d, 15).timesteps),
    Array.from(k, (s) => nearestTimestep(table, s)),
  );
});

test('combine: float64 sum rounded to float32 once', () => {
  const a = { data: Float32Array.from([1, 2, 3]), shape: [1, 3] };
  const b = { data: Float32Array.from([1e4, -1e4, 3]), shape: [1, 3] };
  const out = combine([
    [1, b],
    [1e-6, a],
    [-1, b],
  ]);
  // in float32, 1e4 + 1e-6 would be 1e4: the small term would be lost
  allClose(out.data, [1e-6, 2e-6, 3e-6], 1e-5, 0, 'no intermediate float32 rounding');
  assert.deepEqual(out.shape, [1, 3]);
});
