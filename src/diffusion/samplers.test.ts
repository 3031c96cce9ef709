// The sampler registry: every name runs the sampler it names (ddpm and ddim exactly as before), states its
// network calls per image (checked by counting the oracle's calls), and labels its results.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../util/rng.js';
import { ancestralSample } from './ancestral.js';
import { ddimSample } from './ddim.js';
import { dpmSolverSample } from './dpmSolver.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { heunSample } from './heun.js';
import {
  isSamplerName,
  runSampler,
  SAMPLER_NAMES,
  samplerEntry,
  samplerHelp,
  samplerLabel,
} from './samplers.js';
import { getBetaSchedule } from './schedules.js';
import { gaussianOracle, type Spy } from './testing.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: 'fixedlarge', lossType: 'mse' });
const shape = [3, 1, 2, 2];

test('every sampler: network calls per image as stated, and deterministic ones repeat exactly', async () => {
  for (const name of SAMPLER_NAMES) {
    const e = samplerEntry(name);
    assert.equal(e.name, name);
    assert.ok(samplerHelp().includes(e.help));
    for (const steps of [1, 7, 15, 50]) {
      const spy: Spy = { calls: [] };
      const x = await runSampler(name, d, gaussianOracle(betas, 0.1, 0.4, 'eps', spy), shape, new Rng(1), {
        steps,
      });
      assert.equal(spy.calls.length, e.calls(d, steps), `${name} ${steps}`);
      if (name === 'heun') assert.equal(spy.calls.length, 2 * steps - 1);
      else assert.equal(spy.calls.length, steps, `${name} ${steps}: one call per step`);
      if (e.deterministic(0)) {
        const y = await runSampler(name, d, gaussianOracle(betas, 0.1, 0.4), shape, new Rng(1), { steps });
        assert.deepEqual(y.data, x.data, `${name}: same seed, same images`);
      }
    }
  }
  assert.ok(samplerHelp().includes('2 calls per step except the last'));
});

test('runSampler runs the sampler it names', async () => {
  const oracle = gaussianOracle(betas, 0.1, 0.4);
  const same = async (name: (typeof SAMPLER_NAMES)[number], direct: Promise<{ data: Float32Array }>) =>
    assert.deepEqual(
      (await runSampler(name, d, oracle, shape, new Rng(5), { steps: 12, eta: 0.5 })).data,
      (await direct).data,
      name,
    );
  await same('ddpm', ancestralSample(d, oracle, shape, new Rng(5), { steps: 12 }));
  await same('ddim', ddimSample(d, oracle, shape, new Rng(5), { steps: 12, eta: 0.5 }));
  await same('dpm++2m', dpmSolverSample(d, oracle, shape, new Rng(5), { steps: 12 }));
  await same('dpm++3m', dpmSolverSample(d, oracle, shape, new Rng(5), { steps: 12, order: 3 }));
  await same('heun', heunSample(d, oracle, shape, new Rng(5), { steps: 12 }));
});

test('labels and names', () => {
  assert.equal(samplerLabel('ddpm', 100, 0, T), 'ddpm-100');
  assert.equal(samplerLabel('ddpm', 5000, 0, T), 'ddpm-1000');
  assert.equal(samplerLabel('ddim', 50, 0.5, T), 'ddim-50-eta0.5');
  assert.equal(samplerLabel('dpm++2m', 15, 0.5, T), 'dpm++2m-15');
  assert.equal(samplerLabel('heun', 10, 0, T), 'heun-10');
  assert.ok(isSamplerName('euler') && !isSamplerName('ancestral') && !isSamplerName('dpm++'));
  assert.throws(() => samplerEntry('dpm' as never), /unknown sampler: dpm/);
});
