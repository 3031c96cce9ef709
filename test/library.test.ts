// ddpm-ts as a library (src/index.ts, built to dist/ by `npm run build`): the README's snippet works
// through the single import, and it gives the same samples as the pieces imported one by one.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as lib from '../src/index.js';
import { ddimSample } from '../src/diffusion/ddim.js';
import { nodeEngine } from '../src/engine/node.js';
import { diffusionFromSpec } from '../src/model/spec.js';
import { loadModel } from '../src/model/weights.js';
import { createDenoiser } from '../src/sample/denoiser.js';
import { Rng } from '../src/util/rng.js';

describe('the library entry point', () => {
  it('exports every layer (data, diffusion, engine, eval, graph, model, nn, sample, train)', () => {
    for (const name of [
      'openDataset',
      'BatchLoader',
      'GaussianDiffusion',
      'ddimSample',
      'ancestralSample',
      'calcBpdLoop',
      'frechetDistance',
      'inceptionFeatureNet',
      'classifierFeatureNet',
      'extractFeatures',
      'modelImages',
      'trainingTerms',
      'nodeEngine',
      'Graph',
      'grad',
      'toOnnx',
      'loadModel',
      'saveModel',
      'buildUNet',
      'createDenoiser',
      'train',
      'createTrainSession',
      'adamStep',
      'Rng',
      'makeGrid',
    ]) {
      assert.ok(typeof (lib as Record<string, unknown>)[name] === 'function', `missing export ${name}`);
    }
    assert.equal(lib.countParams(lib.CIFAR10_UNET), 35_746_307);
  });

  it('samples the shipped model as the README shows, identically to the direct imports', async () => {
    const m = lib.loadModel('models/mnist');
    const den = await lib.createDenoiser(lib.nodeEngine(), m.spec.unet, m.params, 4, { threads: 2 });
    const shape = [4, 1, 32, 32];
    const a = await lib.ddimSample(
      lib.diffusionFromSpec(m.spec.diffusion),
      den.denoise,
      shape,
      new lib.Rng(0),
      {
        steps: 4,
      },
    );
    await den.release();
    const m2 = loadModel('models/mnist');
    const den2 = await createDenoiser(nodeEngine(), m2.spec.unet, m2.params, 4, { threads: 2 });
    const b = await ddimSample(diffusionFromSpec(m2.spec.diffusion), den2.denoise, shape, new Rng(0), {
      steps: 4,
    });
    await den2.release();
    assert.deepEqual(a.shape, shape);
    assert.deepEqual(a.data, b.data);
    assert.ok(a.data.some((v) => v !== a.data[0]));
  });
});
