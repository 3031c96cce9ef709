// Learned variances ('learned-range', Nichol & Dhariwal 2021 sec. 3.1, eq. 15): the interpolated
// log-variance against float64 closed forms (also on a respaced chain, whose betas are recomputed here from
// abar independently); the samplers use only the mean half of the output (the ODE samplers and DDIM give the
// fixed-variance model's samples exactly; Algorithm 2's moments follow the learned sigma^2); bits/dim with the
// learned variance at its known optimum for Gaussian data is lower than with either fixed variance; the
// float64 training losses ('mse' = L_hybrid, 'kl').
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
  ancestralMoments,
  bayesPosterior,
  explicitAlphasCumprod,
  gaussianOracle,
  gaussianPosteriorX0,
  meanStd,
  withVarianceChannels,
} from './testing.js';
import { HYBRID_LAMBDA } from './trainingTerms.js';
import type { Denoiser, ModelMeanType, ModelVarType } from './types.js';
import { calcBpdLoop, trainingLosses, vbTermsBpd } from './vlb.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const make = (
  varType: ModelVarType,
  meanType: ModelMeanType = 'eps',
  b: ArrayLike<number> = betas,
  lossType: 'mse' | 'kl' = 'mse',
) => new GaussianDiffusion({ betas: b, modelMeanType: meanType, modelVarType: varType, lossType });

test('learned-range log-variance: frac log beta_t + (1 - frac) log betaTilde_t, float64 closed form', () => {
  const d = make('learned-range');
  const t = Int32Array.from([0, 1, 2, 500, 999]);
  const vs = [-1, -0.3, 0, 0.7, 1];
  const v: Tensor = { data: Float32Array.from(t, (_, n) => vs[n]!), shape: [5, 1, 1, 1] };
  const got = d.learnedLogVariance(v, t);
  const bTilde = (k: number) => ((1 - abar[k - 1]!) / (1 - abar[k]!)) * betas[k]!; // eq. 7
  const want = Array.from(t, (k, n) => {
    const frac = (v.data[n]! + 1) / 2; // float32 v, as the network gives it
    const minLog = Math.log(k === 0 ? bTilde(1) : bTilde(k)); // clipped at t = 0, as the original
    return frac * Math.log(betas[k]!) + (1 - frac) * minLog;
  });
  allClose(got.data, want, 1e-6, 0, 'log sigma^2');
  // the ends: v = -1 is fixedsmall's log-variance, v = 1 is log beta_t
  assert.ok(Math.abs(got.data[0]! - make('fixedsmall').modelLogVariance[0]!) < 1e-6);
  assert.ok(Math.abs(got.data[4]! - Math.log(betas[999]!)) < 1e-6);
  // a respaced chain interpolates between its own betas: beta'_k = 1 - abar_{t_k} / abar_{t_{k-1}}
  const keep = [0, 249, 499, 749, 999];
  const r = respacedDiffusion(d, keep);
  const rb = keep.map((tk, k) => 1 - abar[tk]! / (k === 0 ? 1 : abar[keep[k - 1]!]!));
  const rTilde = (k: number) => ((1 - abar[keep[k - 1]!]!) / (1 - abar[keep[k]!]!)) * rb[k]!;
  const rt = Int32Array.from([0, 1, 3, 4]);
  const rv: Tensor = { data: Float32Array.of(0.5, -0.5, 0.25, 1), shape: [4, 1, 1, 1] };
  const rgot = r.learnedLogVariance(rv, rt);
  const rwant = Array.from(rt, (k, n) => {
    const frac = (rv.data[n]! + 1) / 2;
    return frac * Math.log(rb[k]!) + (1 - frac) * Math.log(k === 0 ? rTilde(1) : rTilde(k));
  });
  allClose(rgot.data, rwant, 1e-6, 0, 'respaced log sigma^2');
});

test('pMeanVariance of a learned-range model: the mean of its first C channels, the variance of its last C', async () => {
  const rng = new Rng(1);
  const shape = [3, 2, 2, 2];
  const x: Tensor = { data: rng.normalArray(24), shape };
  const t = Int32Array.from([3, 40, 900]);
  const oracle = gaussianOracle(betas, 0.1, 0.5);
  const vOf = (k: number) => Math.cos(k); // any values in [-1, 1]
  const p = await make('learned-range').pMeanVariance(withVarianceChannels(oracle, vOf), x, t, {
    clipDenoised: false,
  });
  const fixed = await make('fixedlarge').pMeanVariance(oracle, x, t, { clipDenoised: false });
  assert.deepEqual(p.mean.data, fixed.mean.data);
  assert.deepEqual(p.predXstart.data, fixed.predXstart.data);
  const want = Float64Array.from(x.data, (_, i) => {
    const k = t[Math.floor(i / 8)]!;
    const frac = (Math.fround(vOf(k)) + 1) / 2;
    const post = bayesPosterior(betas[k]!, abar[k - 1]!);
    return frac * Math.log(betas[k]!) + (1 - frac) * Math.log(post.variance);
  });
  allClose(p.logVariance.data, want, 1e-6, 0, 'logVariance');
  allClose(p.variance.data, want.map(Math.exp), 1e-6, 0, 'variance');
  // the wrong number of output channels is refused, saying what is expected
  await assert.rejects(
    make('learned-range').pMeanVariance(oracle, x, t, { clipDenoised: false }),
    /'learned-range' model outputs \[3, 4, 2, 2\] \(mean, then variance channels\)/,
  );
});

test('samplers ignore the variance half; Algorithm 2 follows the learned sigma^2 (moments, closed form)', async () => {
  const [mu, s] = [0.2, 0.5];
  const oracle = gaussianOracle(betas, mu, s);
  const shape = [4, 1, 2, 2];
  for (const name of SAMPLER_NAMES) {
    const opts = { steps: 20, clipDenoised: false };
    const fixed = await runSampler(name, make('fixedlarge'), oracle, shape, new Rng(2), opts);
    // v = 1: sigma^2 = beta_t, the fixedlarge variance (t > 0); DDIM and the ODE samplers use no variance
    const learned = withVarianceChannels(oracle, () => 1);
    const got = await runSampler(name, make('learned-range'), learned, shape, new Rng(2), opts);
    allClose(
      got.data,
      fixed.data,
      0,
      name === 'ddpm' ? 1e-5 : 0,
      `${name}: learned-range (v = 1) vs fixedlarge`,
    );
  }
  // Algorithm 2 over all steps with v = 0 (sigma^2 = sqrt(beta betaTilde)): the exact chain's moments
  const count = 4000;
  const d = make('learned-range');
  const x = await d.pSampleLoop(
    withVarianceChannels(oracle, () => 0),
    [count, 1, 1, 1],
    new Rng(3),
    {
      clipDenoised: false,
    },
  );
  const got = meanStd(x.data);
  const exact = ancestralMoments(abar, 'learned-range', mu, s, undefined, 0.5);
  const sd = Math.sqrt(exact.variance);
  assert.ok(
    Math.abs(got.mean - exact.mean) < (4 * sd) / Math.sqrt(count),
    `mean ${got.mean} vs ${exact.mean}`,
  );
  assert.ok(Math.abs(got.std - sd) < (4 * sd) / Math.sqrt(2 * count), `std ${got.std} vs ${sd}`);
});

test('bits/dim: the learned variance at its optimum for Gaussian data beats both fixed variances', async (tc) => {
  // Data N(mu, s^2) per pixel on bin centres; the Bayes-optimal mean is the oracle's. The best sigma^2 of
  // p(x_{t-1} | x_t) in expectation is Var(x_{t-1} | x_t) = betaTilde_t + c0^2 Var(x_0 | x_t), between betaTilde_t
  // (point data) and beta_t (s = 1); at t = 0 v = -1 keeps the fixed variances' decoder sigma (betaTilde_1).
  const Ts = 100;
  const b = getBetaSchedule('linear', { T: Ts, betaStart: 1e-3, betaEnd: 0.1 });
  const ab = explicitAlphasCumprod(b);
  const [mu, s] = [0.1, 0.4];
  const vStar = (k: number): number => {
    if (k === 0) return -1;
    const post = bayesPosterior(b[k]!, ab[k - 1]!);
    const { gain } = gaussianPosteriorX0(ab[k]!, mu, s);
    const varX0 = (gain * s * s * (1 - ab[k]!)) / (Math.sqrt(ab[k]!) * s * s); // s^2 (1 - abar) / (abar s^2 + 1 - abar)
    const best = post.variance + post.c0 * post.c0 * varX0;
    const frac = (Math.log(best) - Math.log(post.variance)) / (Math.log(b[k]!) - Math.log(post.variance));
    assert.ok(frac > 0 && frac < 1, `t = ${k}: frac ${frac}`);
    return 2 * frac - 1;
  };
  const rng = new Rng(4);
  const n = 16;
  const x0: Tensor = {
    data: Float32Array.from(rng.normalArray(n * 64), (z) => {
      const px = Math.min(255, Math.max(0, Math.round(((mu + s * z + 1) * 255) / 2)));
      return px / 127.5 - 1;
    }),
    shape: [n, 1, 8, 8],
  };
  const oracle = gaussianOracle(b, mu, s);
  const bpd = async (varType: ModelVarType, den: Denoiser) =>
    meanStd((await calcBpdLoop(make(varType, 'eps', b), den, x0, new Rng(5))).totalBpd).mean;
  const learned = await bpd('learned-range', withVarianceChannels(oracle, vStar));
  const large = await bpd('fixedlarge', oracle);
  const small = await bpd('fixedsmall', oracle);
  tc.diagnostic(
    `bits/dim: learned ${learned.toFixed(5)}, fixedlarge ${large.toFixed(5)}, fixedsmall ${small.toFixed(5)}`,
  );
  assert.ok(Number.isFinite(learned));
  assert.ok(
    learned < large && learned < small,
    `learned ${learned}, fixedlarge ${large}, fixedsmall ${small}`,
  );
});

test("training losses: 'mse' is L_simple + lambda T L_{t-1} (stop-gradient aside), 'kl' is L_{t-1}", async () => {
  const rng = new Rng(6);
  const shape = [3, 1, 2, 2];
  const x0: Tensor = {
    data: Float32Array.from({ length: 12 }, (_, i) => ((i * 53) % 256) / 127.5 - 1),
    shape,
  };
  const noise: Tensor = { data: rng.normalArray(12), shape };
  const t = Int32Array.from([0, 30, 700]);
  const den = withVarianceChannels(gaussianOracle(betas, 0, 0.6), (k) => Math.sin(k));
  const dm = make('learned-range', 'eps', betas, 'mse');
  const hybrid = await trainingLosses(dm, den, x0, t, noise);
  const out = await den(hybrid.xt, t);
  const mean = dm.splitOutput(out, hybrid.xt).mean;
  const vb = await vbTermsBpd(dm, async () => out, x0, hybrid.xt, t, { clipDenoised: false });
  const want = Array.from(t, (_, n) => {
    let acc = 0;
    for (let i = 4 * n; i < 4 * n + 4; i++) acc += (mean.data[i]! - noise.data[i]!) ** 2;
    return acc / 4 + HYBRID_LAMBDA * T * vb.bpd[n]!;
  });
  allClose(hybrid.losses, want, 1e-12, 0, 'L_hybrid');
  const kl = await trainingLosses(make('learned-range', 'eps', betas, 'kl'), den, x0, t, noise);
  allClose(kl.losses, vb.bpd, 0, 0, "'kl'");
});
