// Learned variances in the training graph ('learned-range', Nichol & Dhariwal 2021 sec. 3.1): the graph's
// L_hybrid ('mse') and L_{t-1} ('kl') of a U-Net with 2C outputs against the float64 reference
// (diffusion/vlb.ts trainingLosses), per sample; the loss's gradient against central finite differences of
// that float64 reference, with the stop-gradient: in L_hybrid the mean channels' gradient is L_simple's alone
// (closed form) and the variance channels' is the bound's; a tiny learned-range model trains on the CPU and
// its loss falls.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { trainingTerms } from '../diffusion/trainingTerms.js';
import type { Denoiser, LossType } from '../diffusion/types.js';
import { trainingLosses } from '../diffusion/vlb.js';
import { nodeEngine } from '../engine/node.js';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { initParams, TINY_UNET } from '../nn/unet.js';
import { createDenoiser } from '../sample/denoiser.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { adamStep, newAdamState, PAPER_ADAM } from './optim.js';
import { createTrainSession, lossFeeds, trainBatch, trainingLossGraph } from './trainGraph.js';

const cfg = { ...TINY_UNET, outChannels: 2 * TINY_UNET.inChannels }; // 16x16, dropout 0, 2C outputs
const B = 4;
const shape = [B, 1, 16, 16];
const per = 256;
const T = 1000;

function diffusionOf(lossType: LossType): GaussianDiffusion {
  return new GaussianDiffusion({
    betas: getBetaSchedule('linear', { T }),
    modelMeanType: 'eps',
    modelVarType: 'learned-range',
    lossType,
  });
}

/** Digit-like data: mostly exactly -1 (background), some +1, some in between on bin centres. */
function data(rng: Rng, n = B): Tensor {
  const x = new Float32Array(n * per);
  for (let i = 0; i < x.length; i++) {
    const u = rng.uniform();
    x[i] = u < 0.6 ? -1 : u < 0.8 ? 1 : Math.round(rng.uniform() * 255) / 127.5 - 1;
  }
  return { data: x, shape: [n, 1, 16, 16] };
}

function batchOf(d: GaussianDiffusion, lossType: LossType, x0: Tensor, t: Int32Array, noise: Tensor) {
  const xt = d.qSample(x0, t, noise);
  const terms = trainingTerms(d, lossType, x0, xt, t, noise);
  return trainBatch(xt, t, terms);
}

describe('learned variances in the training graph', () => {
  for (const lossType of ['mse', 'kl'] as const) {
    it(`${lossType === 'mse' ? 'L_hybrid' : "'kl'"} of a U-Net with 2C outputs equals the float64 reference per sample`, async () => {
      const d = diffusionOf(lossType);
      const rng = new Rng(11);
      const params = initParams(cfg, 'fixture', 3); // non-zero output layer
      const x0 = data(rng);
      const t = Int32Array.from([0, 1, 250, 999]);
      const noise: Tensor = { data: rng.normalArray(B * per), shape };
      const den = await createDenoiser(nodeEngine(), cfg, params, B);
      const ref = await trainingLosses(d, den.denoise, x0, t, noise);
      await den.release();
      const s = await createTrainSession(nodeEngine(), cfg, params, B, 1, lossType, 'learned-range');
      const out = await s.step(params, batchOf(d, lossType, x0, t, noise), rng);
      await s.release();
      allClose(out.losses!, ref.losses, 2e-4, 1e-6, `per-sample ${lossType} loss`);
      allClose([out.loss], [ref.losses.reduce((a, c) => a + c, 0) / B], 2e-4, 0, 'batch loss');
    });
  }

  it('gradient against finite differences of the float64 loss; L_hybrid stops it at the mean channels', async (tc) => {
    const rng = new Rng(7);
    const x0 = data(rng);
    const t = Int32Array.from([0, 3, 120, 800]);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const outShape = [B, 2, 16, 16];
    for (const lossType of ['mse', 'kl'] as const) {
      const d = diffusionOf(lossType);
      const b = batchOf(d, lossType, x0, t, noise);
      // A network output near the optimum's neighbourhood: mean = target + noise, variance values in [-1, 1].
      const out = new Float32Array(2 * B * per);
      for (let n = 0; n < B; n++)
        for (let i = 0; i < per; i++) {
          out[2 * n * per + i] = b.target.data[n * per + i]! + 0.3 * rng.normal();
          out[(2 * n + 1) * per + i] = 2 * rng.uniform() - 1;
        }
      const g = new Graph();
      const o = g.input('out', outShape);
      const { loss } = trainingLossGraph(g, o, shape, lossType, 'learned-range');
      const [dOut] = grad(g, loss, [o]);
      const s = await nodeEngine().createSession(
        toOnnx(g, { outputs: { loss, dOut: dOut! }, params: 'input' }),
        {
          threads: 1,
        },
      );
      const res = await s.run({
        out: { data: out, shape: outShape },
        ...lossFeeds(b, lossType, 'learned-range'),
      });
      await s.release();
      const gOut = res.dOut!.data;
      // float64 reference: the batch mean of trainingLosses with the network replaced by the output itself
      const f = async (data: Float32Array, simpleOnly = false) => {
        const frozen: Denoiser = async () => ({ data, shape: outShape });
        if (simpleOnly) {
          // L_simple alone: meanflat((mean - eps)^2), batch mean
          let acc = 0;
          for (let n = 0; n < B; n++)
            for (let i = 0; i < per; i++) acc += (data[2 * n * per + i]! - noise.data[n * per + i]!) ** 2;
          return acc / (B * per);
        }
        const r = await trainingLosses(d, frozen, x0, t, noise);
        return r.losses.reduce((a, c) => a + c, 0) / B;
      };
      allClose([res.loss!.data[0]!], [await f(out)], 2e-4, 0, `${lossType}: loss value`);
      // The reference rounds the log-variance to float32 once (GaussianDiffusion.learnedLogVariance), which puts
      // noise of ~1e-7 / h into the differences: h = 1e-2 keeps it below the O(h^2) truncation error.
      const h = 1e-2;
      const directional = async (half: 'mean' | 'var' | 'both', simpleOnly: boolean) => {
        const v = new Float32Array(out.length);
        for (let n = 0; n < B; n++)
          for (let i = 0; i < per; i++) {
            if (half !== 'var') v[2 * n * per + i] = rng.normal();
            if (half !== 'mean') v[(2 * n + 1) * per + i] = rng.normal();
          }
        const plus = out.map((x, i) => x + h * v[i]!);
        const minus = out.map((x, i) => x - h * v[i]!);
        // the float32 steps actually taken, so rounding of out + h v does not enter the difference
        let analytic = 0;
        let step = 0;
        for (let i = 0; i < out.length; i++) {
          analytic += gOut[i]! * (plus[i]! - minus[i]!);
          step += (plus[i]! - minus[i]!) * v[i]!;
        }
        const vv = v.reduce((a, c) => a + c * c, 0);
        const numeric = ((await f(plus, simpleOnly)) - (await f(minus, simpleOnly))) * (vv / step);
        return { analytic: analytic * (vv / step), numeric };
      };
      const checks =
        lossType === 'mse'
          ? ([
              ['var', false], // the variance channels learn from the bound's term
              ['mean', true], // the mean channels from L_simple alone (stop-gradient)
            ] as const)
          : ([
              ['both', false],
              ['var', false],
            ] as const);
      for (const [half, simpleOnly] of checks) {
        for (let k = 0; k < 2; k++) {
          const { analytic, numeric } = await directional(half, simpleOnly);
          tc.diagnostic(
            `${lossType} ${half}: analytic ${analytic.toExponential(6)}, numeric ${numeric.toExponential(6)}`,
          );
          allClose([analytic], [numeric], 2e-3, 1e-7, `${lossType}: directional derivative along ${half}`);
        }
      }
      if (lossType === 'mse') {
        // closed form: d/dm of mean_n meanflat((m - eps)^2) = 2 (m - eps) / (B per), on the mean channels only
        const want = new Float64Array(B * per);
        const got = new Float32Array(B * per);
        for (let n = 0; n < B; n++)
          for (let i = 0; i < per; i++) {
            want[n * per + i] = (2 * (out[2 * n * per + i]! - b.target.data[n * per + i]!)) / (B * per);
            got[n * per + i] = gOut[2 * n * per + i]!;
          }
        allClose(got, want, 1e-5, 1e-10, 'mean channels: the gradient of L_simple alone');
        // ... and the full hybrid's own mean-direction derivative differs (the bound's term is not zero there)
        const fullMean = await directional('mean', false);
        assert.ok(
          Math.abs(fullMean.numeric - fullMean.analytic) > 1e-3 * Math.abs(fullMean.analytic),
          'without the stop-gradient the mean channels would get the bound term too',
        );
      }
    }
  });

  it('a tiny learned-range model trains with L_hybrid on the CPU: its loss falls', async (tc) => {
    const d = diffusionOf('mse');
    const rng = new Rng(5);
    const params = initParams(cfg, 'paper', 5);
    const adam = newAdamState(params);
    const x0 = data(rng);
    const s = await createTrainSession(nodeEngine(), cfg, params, B, 1, 'mse', 'learned-range');
    const losses: number[] = [];
    const t = Int32Array.from([0, 10, 100, 600]);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const b = batchOf(d, 'mse', x0, t, noise);
    for (let i = 0; i < 30; i++) {
      const out = await s.step(params, b, rng);
      assert.ok(Number.isFinite(out.loss));
      losses.push(out.loss);
      adamStep({ ...PAPER_ADAM, lr: 2e-3, warmup: 0 }, adam, params, out.grads);
    }
    await s.release();
    tc.diagnostic(`L_hybrid on a fixed batch: ${losses[0]!.toFixed(4)} -> ${losses.at(-1)!.toFixed(4)}`);
    assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `loss ${losses[0]} -> ${losses.at(-1)}`);
  });
});
