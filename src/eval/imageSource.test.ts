// A model's images through every sampler: image i is the same whatever batch or shard draws it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SAMPLER_NAMES } from '../diffusion/samplers.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { mixtureOracle } from '../diffusion/testing.js';
import { modelImages } from './imageSource.js';

test("every sampler: a model's image i does not depend on the batch that draws it", async () => {
  const betas = getBetaSchedule('linear', { T: 100 });
  const diffusion = new GaussianDiffusion({
    betas,
    modelMeanType: 'eps',
    modelVarType: 'fixedlarge',
    lossType: 'mse',
  });
  const denoise = mixtureOracle(betas, [
    { w: 0.4, mu: -0.5, s: 0.2 },
    { w: 0.6, mu: 0.4, s: 0.3 },
  ]);
  for (const sampler of SAMPLER_NAMES) {
    const choice = { sampler, steps: 8, eta: 0.5, seed: 3 };
    const src = modelImages(diffusion, denoise, [1, 2, 2], 9, choice, 'oracle');
    const whole = await src.images(0, 9);
    for (let i = 0; i < 9; i++) {
      const one = await src.images(i, 1);
      assert.deepEqual(one.data, whole.data.subarray(i * 4, (i + 1) * 4), `${sampler}: image ${i}`);
    }
    const b = await src.images(5, 4);
    assert.deepEqual(b.data, whole.data.subarray(5 * 4, 9 * 4), `${sampler}: images 5..8`);
  }
});
