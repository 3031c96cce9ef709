// The page's sampling (src/web/core.ts, run by Node here): the ancestral chain takes the model's
// recommended variance from config.json "sampling", as `ddpm sample` does.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSampler } from '../diffusion/samplers.js';
import { nodeEngine } from '../engine/node.js';
import { defaultSpec, diffusionFromSpec, type ModelSpec } from '../model/spec.js';
import { initParams, TINY_UNET } from '../nn/unet.js';
import { createDenoiser } from '../sample/denoiser.js';
import { Rng } from '../util/rng.js';
import { sampleImages, type WebModel } from './core.js';

test("sampleImages: ddpm uses the model's recommended variance, the other samplers and models without one do not", async () => {
  const base: ModelSpec = { ...defaultSpec(), unet: TINY_UNET };
  const params = initParams(TINY_UNET, 'fixture');
  const engine = nodeEngine();
  const shape = [2, TINY_UNET.inChannels, TINY_UNET.resolution, TINY_UNET.resolution];
  const den = await createDenoiser(engine, TINY_UNET, params, 2, { threads: 1 });
  try {
    const direct = async (varType: 'fixedlarge' | 'fixedsmall') =>
      (
        await runSampler(
          'ddpm',
          diffusionFromSpec({ ...base.diffusion, modelVarType: varType }),
          den.denoise,
          shape,
          new Rng(4),
          {
            steps: 3,
          },
        )
      ).data;
    const page = async (spec: ModelSpec, sampler: 'ddpm' | 'ddim') => {
      const model: WebModel = { spec, params, source: 'test' };
      return (await sampleImages(engine, model, { seed: 4, sampler, steps: 3, n: 2, denoiser: den })).sample
        .data;
    };
    const small = await direct('fixedsmall');
    const large = await direct('fixedlarge');
    assert.notDeepEqual(small, large, 'the two variances give other images');
    const recommends = { ...base, sampling: { sampler: 'ddpm', steps: 3, varType: 'fixedsmall' } } as const;
    assert.deepEqual(await page(recommends, 'ddpm'), small);
    assert.deepEqual(await page(base, 'ddpm'), large);
    const ddim = { ...base, sampling: { sampler: 'ddim', steps: 3 } } as const;
    assert.deepEqual(await page(ddim, 'ddpm'), large);
  } finally {
    await den.release();
  }
});
