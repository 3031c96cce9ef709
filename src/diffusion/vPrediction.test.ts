// v-prediction (Salimans & Ho 2022, "Progressive Distillation", sec. 4): v = sqrt(abar) eps - sqrt(1 - abar) x_0.
// The conversions against float64 closed forms on independently computed abar; an exact v-model gives x_0 and
// the true posterior; its 'mse' target and 'kl' mean coefficients; every sampler and the bound in bits/dim
// with an oracle v-predictor agree with the oracle eps-predictor.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { respacedDiffusion } from './respace.js';
import { runSampler, SAMPLER_NAMES } from './samplers.js';
import { getBetaSchedule } from './schedules.js';
import {
  bayesPosterior,
  explicitAlphasCumprod,
  gaussianOracle,
  type MixtureComponent,
  mixtureOracle,
  pointOracle,
} from './testing.js';
import { trainingTerms } from './trainingTerms.js';
import type { ModelMeanType } from './types.js';
import { calcBpdLoop, trainingLosses } from './vlb.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const make = (meanType: ModelMeanType, lossType: 'mse' | 'kl' = 'mse') =>
  new GaussianDiffusion({ betas, modelMeanType: meanType, modelVarType: 'fixedlarge', lossType });
const normal = (rng: Rng, shape: number[]): Tensor => ({
  data: rng.normalArray(shape.reduce((a, b) => a * b, 1)),
  shape,
});
/** value(n, i) for every element i of sample n, in float64. */
function perElement(x: Tensor, value: (n: number, i: number) => number): Float64Array {
  const per = x.data.length / x.shape[0]!;
  return Float64Array.from(x.data, (_, i) => value(Math.floor(i / per), i));
}

test('v conversions: v from (x_0, eps), x_0 and eps from (x_t, v), against float64 closed forms', () => {
  const d = make('v');
  const rng = new Rng(1);
  const shape = [5, 2, 3, 3];
  const x0 = normal(rng, shape);
  const eps = normal(rng, shape);
  const t = Int32Array.from([0, 1, 137, 600, 999]);
  const at = (n: number) => abar[t[n]!]!;
  const v = d.vFromEpsXstart(x0, t, eps);
  const wantV = perElement(
    x0,
    (n, i) => Math.sqrt(at(n)) * eps.data[i]! - Math.sqrt(1 - at(n)) * x0.data[i]!,
  );
  allClose(v.data, wantV, 1e-6, 1e-7, 'v = sqrt(abar) eps - sqrt(1 - abar) x0');
  const xt = d.qSample(x0, t, eps);
  // From the float32 x_t and v: x_0 = sqrt(abar) x_t - sqrt(1 - abar) v, eps = sqrt(1 - abar) x_t + sqrt(abar) v
  const x0FromV = d.predictXstartFromV(xt, t, v);
  const wantX0 = perElement(xt, (n, i) => Math.sqrt(at(n)) * xt.data[i]! - Math.sqrt(1 - at(n)) * v.data[i]!);
  allClose(x0FromV.data, wantX0, 1e-6, 1e-6, 'x0 from v (closed form of the float32 inputs)');
  allClose(x0FromV.data, x0.data, 0, 2e-6, 'x0 from v recovers x0');
  const epsFromV = d.predictEpsFromV(xt, t, v);
  const wantEps = perElement(
    xt,
    (n, i) => Math.sqrt(1 - at(n)) * xt.data[i]! + Math.sqrt(at(n)) * v.data[i]!,
  );
  allClose(epsFromV.data, wantEps, 1e-6, 1e-6, 'eps from v (closed form)');
  // eps at t = 0 is recovered only to float32 rounding of x_t over sqrt(1 - abar_0) = 0.01
  allClose(epsFromV.data, eps.data, 0, 2e-4, 'eps from v recovers eps');
  // the 'mse' target of a v-model is v itself
  assert.deepEqual(d.mseTarget(x0, xt, t, eps).data, v.data);
});

test("an exact v-model: x_0, the true posterior mean, and mu = a v + b x_t (the 'kl' loss's affine form)", async () => {
  const d = make('v');
  const rng = new Rng(2);
  const shape = [4, 1, 3, 2];
  const x0: Tensor = { data: Float32Array.from(rng.normalArray(24), (z) => 0.5 * z), shape };
  const noise = normal(rng, shape);
  const t = Int32Array.from([0, 1, 300, 999]);
  const xt = d.qSample(x0, t, noise);
  const p = await d.pMeanVariance(pointOracle(betas, x0, 'v'), xt, t, { clipDenoised: false });
  allClose(p.predXstart.data, x0.data, 0, 2e-5, 'predXstart');
  const post = (n: number) => bayesPosterior(betas[t[n]!]!, t[n] === 0 ? 1 : abar[t[n]! - 1]!);
  const wantMean = perElement(xt, (n, i) => post(n).c0 * x0.data[i]! + post(n).ct * xt.data[i]!);
  allClose(p.mean.data, wantMean, 0, 2e-6, 'posterior mean');
  for (let n = 0; n < 4; n++) {
    const { a, b } = d.meanAffine(t[n]!);
    // mu = c0 x_0 + ct x_t with x_0 = sqrt(abar) x_t - sqrt(1 - abar) v
    const ab = abar[t[n]!]!;
    allClose(
      [a, b],
      [-post(n).c0 * Math.sqrt(1 - ab), post(n).c0 * Math.sqrt(ab) + post(n).ct],
      1e-12,
      1e-15,
    );
  }
  // 'kl' terms: the decoder and KL targets of an exact model are its own output, so the loss is the bound
  const kl = make('v', 'kl');
  const terms = trainingTerms(kl, 'kl', x0, xt, t, noise);
  const vTrue = kl.vFromEpsXstart(x0, t, noise);
  allClose(terms.target.data, vTrue.data, 0, 2e-3, "'kl' target of a v-model is v");
});

test('every sampler: an oracle v-predictor gives the samples of the oracle eps-predictor', async () => {
  const comps: MixtureComponent[] = [
    { w: 0.4, mu: -0.5, s: 0.2 },
    { w: 0.6, mu: 0.4, s: 0.3 },
  ];
  const shape = [6, 1, 2, 2];
  for (const name of SAMPLER_NAMES) {
    for (const steps of [10, 50]) {
      const opts = { steps, eta: 0.5, clipDenoised: false };
      const ref = await runSampler(
        name,
        make('eps'),
        mixtureOracle(betas, comps, 'eps'),
        shape,
        new Rng(3),
        opts,
      );
      const got = await runSampler(
        name,
        make('v'),
        mixtureOracle(betas, comps, 'v'),
        shape,
        new Rng(3),
        opts,
      );
      allClose(got.data, ref.data, 0, 1e-4, `${name}-${steps}: v vs eps`);
    }
  }
  // respaced ancestral sampling keeps abar at the kept steps, so v means the same there
  const base = make('v');
  const chain = respacedDiffusion(base, [0, 99, 499, 999]);
  const epsChain = respacedDiffusion(make('eps'), [0, 99, 499, 999]);
  const a = await chain.pSampleLoop(gaussianOracle(betas, 0.2, 0.5, 'v'), shape, new Rng(4), {
    clipDenoised: false,
  });
  const b = await epsChain.pSampleLoop(gaussianOracle(betas, 0.2, 0.5, 'eps'), shape, new Rng(4), {
    clipDenoised: false,
  });
  allClose(a.data, b.data, 0, 1e-5, 'respaced chain: v vs eps');
});

test('bits/dim and the training losses of an oracle v-predictor', async () => {
  const shape = [3, 1, 2, 2];
  const x0: Tensor = {
    data: Float32Array.from({ length: 12 }, (_, i) => ((i * 37) % 256) / 127.5 - 1),
    shape,
  };
  const Tsmall = 50;
  const b = getBetaSchedule('linear', { T: Tsmall, betaStart: 1e-3, betaEnd: 0.2 });
  const mk = (m: ModelMeanType) =>
    new GaussianDiffusion({ betas: b, modelMeanType: m, modelVarType: 'fixedlarge', lossType: 'kl' });
  const eps = await calcBpdLoop(mk('eps'), gaussianOracle(b, 0, 0.5, 'eps'), x0, new Rng(5));
  const v = await calcBpdLoop(mk('v'), gaussianOracle(b, 0, 0.5, 'v'), x0, new Rng(5));
  allClose(v.totalBpd, eps.totalBpd, 1e-4, 0, 'total bits/dim: v vs eps');
  assert.ok(v.totalBpd.every(Number.isFinite));
  // 'kl' training loss (L_{t-1} in bits/dim): the same model, the same loss
  const t = Int32Array.from([0, 7, 49]);
  const noise = normal(new Rng(6), shape);
  const le = await trainingLosses(mk('eps'), gaussianOracle(b, 0, 0.5, 'eps'), x0, t, noise);
  const lv = await trainingLosses(mk('v'), gaussianOracle(b, 0, 0.5, 'v'), x0, t, noise);
  allClose(lv.losses, le.losses, 1e-4, 1e-6, "'kl' loss: v vs eps");
});
