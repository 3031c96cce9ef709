// The 'kl' training loss computed inside the training graph (trainingTerms.ts + trainGraph.ts) against
// the independent float64 reference, vbTermsBpd (KL of Gaussians and the discretised decoder, the
// original's _vb_terms_bpd without clipping), for all four parameterisations (eps, xstart, xprev, v), with t = 0 (decoder
// NLL, including pixels at -1 and +1 whose bins extend to infinity) and t > 0 in one batch. Also the
// 'mse' terms against mseTarget, and a few steps of 'kl' training lowering the bound on a fixed batch.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { trainingTerms } from '../diffusion/trainingTerms.js';
import type { ModelMeanType } from '../diffusion/types.js';
import { trainingLosses } from '../diffusion/vlb.js';
import { nodeEngine } from '../engine/node.js';
import { initParams, TINY_UNET } from '../nn/unet.js';
import { createDenoiser } from '../sample/denoiser.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { adamStep, newAdamState, PAPER_ADAM } from './optim.js';
import { createTrainSession, trainBatch } from './trainGraph.js';

const cfg = TINY_UNET; // 16x16, dropout 0
const B = 4;
const shape = [B, 1, 16, 16];
const per = 256;

function diffusionOf(mean: ModelMeanType): GaussianDiffusion {
  return new GaussianDiffusion({
    betas: getBetaSchedule('linear', { betaStart: 1e-4, betaEnd: 0.02, T: 1000 }),
    modelMeanType: mean,
    modelVarType: 'fixedlarge',
    lossType: 'kl',
  });
}

/** Digit-like data: mostly exactly -1 (background), some +1, some in between. */
function data(rng: Rng): Tensor {
  const x = new Float32Array(B * per);
  for (let i = 0; i < x.length; i++) {
    const u = rng.uniform();
    x[i] = u < 0.6 ? -1 : u < 0.8 ? 1 : 2 * rng.uniform() - 1;
  }
  return { data: x, shape };
}

describe("the 'kl' training loss in the graph", () => {
  for (const mean of ['eps', 'xstart', 'xprev', 'v'] as const) {
    it(`equals the float64 bound terms (vbTermsBpd) per batch, ${mean} parameterisation`, async () => {
      const d = diffusionOf(mean);
      const rng = new Rng(11);
      const params = initParams(cfg, 'fixture', 3); // non-zero output layer
      const x0 = data(rng);
      const t = Int32Array.from([0, 1, 250, 999]);
      const noise: Tensor = { data: rng.normalArray(B * per), shape };
      const xt = d.qSample(x0, t, noise);

      const den = await createDenoiser(nodeEngine(), cfg, params, B);
      const ref = await trainingLosses(d, den.denoise, x0, t, noise); // per sample, bits/dim
      await den.release();
      const want = ref.losses.reduce((a, c) => a + c, 0) / B;

      const terms = trainingTerms(d, 'kl', x0, xt, t, noise);
      const s = await createTrainSession(nodeEngine(), cfg, params, B, 2, 'kl');
      const out = await s.step(params, trainBatch(xt, t, terms), rng);
      await s.release();
      allClose([out.loss], [want], 2e-4, 0, `kl loss (per-sample reference ${Array.from(ref.losses)})`);
      assert.ok(ref.losses[0]! > 0 && ref.losses[3]! > 0);
    });
  }

  it("'mse' terms are L_simple: the mseTarget with unit weights and no decoder", () => {
    const d = diffusionOf('eps');
    const rng = new Rng(2);
    const x0 = data(rng);
    const t = Int32Array.from([0, 5, 50, 500]);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const terms = trainingTerms(d, 'mse', x0, d.qSample(x0, t, noise), t, noise);
    assert.deepEqual(terms.target.data, noise.data);
    assert.deepEqual(Array.from(terms.mseWeight), [1, 1, 1, 1]);
    assert.equal(terms.decoder, null);
  });

  it('kl target for eps prediction is the noise itself (t > 0)', () => {
    const d = diffusionOf('eps');
    const rng = new Rng(4);
    const x0 = data(rng);
    const t = Int32Array.from([1, 10, 100, 999]);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const terms = trainingTerms(d, 'kl', x0, d.qSample(x0, t, noise), t, noise);
    allClose(terms.target.data, noise.data, 1e-3, 2e-3, 'kl target vs eps');
  });

  it('training on the kl loss lowers it on a fixed batch', async () => {
    const d = diffusionOf('eps');
    const rng = new Rng(5);
    const params = initParams(cfg, 'paper', 5);
    const adam = newAdamState(params);
    const x0 = data(rng);
    const t = Int32Array.from([0, 3, 30, 300]);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const xt = d.qSample(x0, t, noise);
    const terms = trainingTerms(d, 'kl', x0, xt, t, noise);
    const s = await createTrainSession(nodeEngine(), cfg, params, B, 2, 'kl');
    const losses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const out = await s.step(params, trainBatch(xt, t, terms), rng);
      losses.push(out.loss);
      adamStep({ ...PAPER_ADAM, lr: 1e-3, warmup: 0 }, adam, params, out.grads);
    }
    await s.release();
    assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `kl loss ${losses[0]} -> ${losses.at(-1)}`);
  });
});
