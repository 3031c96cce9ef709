// GaussianDiffusion tables and methods against float64 references built independently: explicit products for
// abar, Bayes' rule on scalar Gaussians for the posterior, oracle Denoisers for the parameterisations.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { getBetaSchedule } from './schedules.js';
import { bayesPosterior, explicitAlphasCumprod, pointOracle } from './testing.js';
import type { Denoiser, ModelMeanType, ModelVarType } from './types.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const make = (modelMeanType: ModelMeanType = 'eps', modelVarType: ModelVarType = 'fixedlarge', b = betas) =>
  new GaussianDiffusion({ betas: b, modelMeanType, modelVarType, lossType: 'mse' });

function randn(rng: Rng, shape: number[], scale = 1): Tensor {
  return { data: rng.normalArray(shape.reduce((a, b) => a * b, 1)).map((v) => v * scale), shape };
}
function uniform(rng: Rng, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1), shape };
}
/** Per-element reference: f(n, value index) for each element of an [N, ...] tensor. */
function perElement(x: Tensor, f: (n: number, i: number) => number): number[] {
  const per = x.data.length / x.shape[0]!;
  return Array.from(x.data, (_, i) => f(Math.floor(i / per), i));
}

test('coefficient tables equal explicit products and Bayes posterior coefficients (linear and cosine)', () => {
  for (const kind of ['linear', 'cosine'] as const) {
    const b = getBetaSchedule(kind, { T });
    const d = make('eps', 'fixedsmall', b);
    const ab = explicitAlphasCumprod(b);
    const abPrev = Array.from(ab, (_, t) => (t === 0 ? 1 : ab[t - 1]!));
    allClose(d.alphasCumprod, ab, 1e-12, 0, `${kind} alphasCumprod`);
    allClose(d.alphasCumprodPrev, abPrev, 1e-12, 0, `${kind} alphasCumprodPrev`);
    allClose(d.sqrtAlphasCumprod, Array.from(ab, Math.sqrt), 1e-12, 0, 'sqrtAlphasCumprod');
    allClose(
      d.sqrtOneMinusAlphasCumprod,
      Array.from(ab, (a) => Math.sqrt(1 - a)),
      1e-12,
      0,
      'sqrt(1-abar)',
    );
    allClose(
      d.logOneMinusAlphasCumprod,
      Array.from(ab, (a) => Math.log(1 - a)),
      1e-12,
      0,
      'log(1-abar)',
    );
    allClose(
      d.sqrtRecipAlphasCumprod,
      Array.from(ab, (a) => 1 / Math.sqrt(a)),
      1e-10,
      0,
      'sqrt(1/abar)',
    );
    allClose(
      d.sqrtRecipm1AlphasCumprod,
      Array.from(ab, (a) => Math.sqrt((1 - a) / a)),
      1e-10,
      0,
      'sqrt(1/abar-1)',
    );
    const post = Array.from(b, (beta, t) => bayesPosterior(beta, abPrev[t]!));
    allClose(
      d.posteriorVariance,
      post.map((p) => p.variance),
      1e-10,
      1e-300,
      `${kind} posteriorVariance`,
    );
    allClose(
      d.posteriorMeanCoef1,
      post.map((p) => p.c0),
      1e-10,
      1e-15,
      `${kind} posteriorMeanCoef1`,
    );
    allClose(
      d.posteriorMeanCoef2,
      post.map((p) => p.ct),
      1e-10,
      1e-15,
      `${kind} posteriorMeanCoef2`,
    );
    const clipped = post.map((p, t) => Math.log(t === 0 ? post[1]!.variance : p.variance));
    allClose(d.posteriorLogVarianceClipped, clipped, 1e-12, 0, `${kind} posteriorLogVarianceClipped`);
  }
});

test('fixed variances: fixedlarge log-variance is log([betaTilde_1, beta_2..]), fixedsmall log betaTilde clipped', () => {
  const large = make('eps', 'fixedlarge');
  const small = make('eps', 'fixedsmall');
  const bt1 = bayesPosterior(betas[1]!, abar[0]!).variance;
  const wantLarge = Array.from(betas, (b, t) => Math.log(t === 0 ? bt1 : b));
  allClose(large.modelLogVariance, wantLarge, 1e-12, 0, 'fixedlarge log-variance');
  allClose(large.modelVariance, betas, 0, 0, 'fixedlarge variance');
  const wantSmall = Array.from(betas, (b, t) =>
    Math.log(bayesPosterior(b, t === 0 ? abar[0]! : abar[t - 1]!).variance),
  );
  wantSmall[0] = Math.log(bt1);
  allClose(small.modelLogVariance, wantSmall, 1e-10, 0, 'fixedsmall log-variance');
});

test('qSample and qMeanVariance: sqrt(abar) x0 + sqrt(1 - abar) eps (eq. 4) with per-sample t', () => {
  const rng = new Rng(1);
  const d = make();
  const x0 = uniform(rng, [5, 2, 3, 3]);
  const noise = randn(rng, [5, 2, 3, 3]);
  const t = Int32Array.from([0, 1, 250, 998, 999]);
  const xt = d.qSample(x0, t, noise);
  const want = perElement(
    x0,
    (n, i) => Math.sqrt(abar[t[n]!]!) * x0.data[i]! + Math.sqrt(1 - abar[t[n]!]!) * noise.data[i]!,
  );
  allClose(xt.data, want, 1e-6, 1e-7, 'qSample');
  const q = d.qMeanVariance(x0, t);
  allClose(
    q.mean.data,
    perElement(x0, (n, i) => Math.sqrt(abar[t[n]!]!) * x0.data[i]!),
    1e-6,
    1e-8,
    'q mean',
  );
  allClose(
    q.variance.data,
    perElement(x0, (n) => 1 - abar[t[n]!]!),
    1e-6,
    0,
    'q variance',
  );
  allClose(
    q.logVariance.data,
    perElement(x0, (n) => Math.log(1 - abar[t[n]!]!)),
    1e-6,
    0,
    'q log variance',
  );
  assert.throws(() => d.qSample(x0, Int32Array.from([0, 1, 2, 3, 1000]), noise), /outside/);
  assert.throws(() => d.qSample(x0, Int32Array.from([0, 1]), noise), /entries/);
});

test('qPosteriorMeanVariance equals Bayes on scalar Gaussians (eqs. 6-7), including t = 0', () => {
  const rng = new Rng(2);
  const d = make();
  const x0 = uniform(rng, [6, 1, 4, 4]);
  const xt = randn(rng, [6, 1, 4, 4]);
  const t = Int32Array.from([0, 1, 2, 100, 500, 999]);
  const post = (n: number) => bayesPosterior(betas[t[n]!]!, t[n] === 0 ? 1 : abar[t[n]! - 1]!);
  const q = d.qPosteriorMeanVariance(x0, xt, t);
  allClose(
    q.mean.data,
    perElement(x0, (n, i) => post(n).c0 * x0.data[i]! + post(n).ct * xt.data[i]!),
    1e-5,
    1e-6,
    'posterior mean',
  );
  allClose(
    q.variance.data,
    perElement(x0, (n) => post(n).variance),
    1e-5,
    0,
    'posterior variance',
  );
  const bt1 = bayesPosterior(betas[1]!, abar[0]!).variance;
  allClose(
    q.logVariance.data,
    perElement(x0, (n) => Math.log(t[n] === 0 ? bt1 : post(n).variance)),
    1e-6,
    0,
    'log var',
  );
  for (let i = 0; i < 16; i++) assert.equal(q.mean.data[i], x0.data[i], 't = 0: the posterior mean is x0');
});

test('predictXstartFromEps / FromXprev / predictEpsFromXstart invert qSample and the posterior mean', () => {
  const rng = new Rng(3);
  const d = make();
  const x0 = uniform(rng, [4, 1, 8, 8]);
  const noise = randn(rng, [4, 1, 8, 8]);
  const t = Int32Array.from([0, 10, 400, 999]);
  const xt = d.qSample(x0, t, noise);
  allClose(d.predictXstartFromEps(xt, t, noise).data, x0.data, 0, 2e-4, 'x0 from eps');
  allClose(d.predictEpsFromXstart(xt, t, x0).data, noise.data, 0, 5e-4, 'eps from x0');
  const tMid = Int32Array.from([0, 10, 100, 300]);
  const xtMid = d.qSample(x0, tMid, noise);
  const xprev = d.qPosteriorMeanVariance(x0, xtMid, tMid).mean;
  allClose(d.predictXstartFromXprev(xtMid, tMid, xprev).data, x0.data, 0, 2e-3, 'x0 from xprev');
});

test('pMeanVariance: the three parameterisations of an exact model give x0 and the true posterior', async () => {
  const rng = new Rng(4);
  const x0 = uniform(rng, [4, 3, 2, 2]);
  const noise = randn(rng, [4, 3, 2, 2]);
  const t = Int32Array.from([0, 1, 300, 999]);
  const post = (n: number) => bayesPosterior(betas[t[n]!]!, t[n] === 0 ? 1 : abar[t[n]! - 1]!);
  const bt1 = bayesPosterior(betas[1]!, abar[0]!).variance;
  for (const meanType of ['eps', 'xstart', 'xprev'] as const) {
    for (const varType of ['fixedlarge', 'fixedsmall'] as const) {
      const d = make(meanType, varType);
      const xt = d.qSample(x0, t, noise);
      const p = await d.pMeanVariance(pointOracle(betas, x0, meanType), xt, t, { clipDenoised: false });
      const what = `${meanType}/${varType}`;
      // xprev at t = 999 divides by coef1 ~ 1e-4: float32 inputs limit it to ~1e-3
      allClose(p.predXstart.data, x0.data, 0, meanType === 'xprev' ? 3e-3 : 2e-4, `${what} predXstart`);
      const wantMean = perElement(xt, (n, i) => post(n).c0 * x0.data[i]! + post(n).ct * xt.data[i]!);
      allClose(p.mean.data, wantMean, 0, 2e-6, `${what} mean`);
      const wantLogVar = perElement(xt, (n) => {
        if (t[n] === 0) return Math.log(bt1);
        return Math.log(varType === 'fixedlarge' ? betas[t[n]!]! : post(n).variance);
      });
      allClose(p.logVariance.data, wantLogVar, 1e-6, 0, `${what} log variance`);
    }
  }
});

test('clipDenoised clips the x0 prediction; for xprev the mean stays the raw output', async () => {
  const shape = [2, 1, 1, 2];
  const xt: Tensor = { data: Float32Array.from([0.5, -0.5, 0.2, 0.1]), shape };
  const out = Float32Array.from([3, -2, 0.5, -0.25]);
  const constant: Denoiser = async (x) => ({ data: out.slice(), shape: [...x.shape] });
  const t = Int32Array.from([5, 5]);
  const dx = make('xstart');
  const clipped = await dx.pMeanVariance(constant, xt, t, { clipDenoised: true });
  allClose(clipped.predXstart.data, [1, -1, 0.5, -0.25], 0, 0, 'clipped xstart');
  const post = bayesPosterior(betas[5]!, abar[4]!);
  const want = [1, -1, 0.5, -0.25].map((x0, i) => post.c0 * x0 + post.ct * xt.data[i]!);
  allClose(clipped.mean.data, want, 1e-6, 1e-7, 'mean of clipped x0');
  const dp = make('xprev');
  const raw = await dp.pMeanVariance(constant, xt, t, { clipDenoised: true });
  allClose(raw.mean.data, out, 0, 0, 'xprev mean is the output');
  for (const v of raw.predXstart.data) assert.ok(v >= -1 && v <= 1);
});

test('pSample: mean + exp(logvar / 2) z, no noise at t = 0', async () => {
  const rng = new Rng(5);
  const d = make('eps', 'fixedlarge');
  const x = randn(rng, [3, 1, 2, 2]);
  const z = randn(rng, [3, 1, 2, 2]);
  const zero: Denoiser = async (v) => ({ data: new Float32Array(v.data.length), shape: [...v.shape] });
  const t = Int32Array.from([0, 7, 999]);
  const { sample } = await d.pSample(zero, x, t, { clipDenoised: false, noise: z });
  // eps = 0: x0 = x / sqrt(abar), mean = c0 x0 + ct x
  const want = perElement(x, (n, i) => {
    const tn = t[n]!;
    const post = bayesPosterior(betas[tn]!, tn === 0 ? 1 : abar[tn - 1]!);
    const mean = post.c0 * (x.data[i]! / Math.sqrt(abar[tn]!)) + post.ct * x.data[i]!;
    return mean + (tn === 0 ? 0 : Math.sqrt(betas[tn]!) * z.data[i]!);
  });
  allClose(sample.data, want, 1e-5, 1e-6, 'pSample');
  const t0 = Int32Array.from([0, 0, 0]);
  const a = await d.pSample(zero, x, t0, { clipDenoised: false, noise: null });
  const b = await d.pSample(zero, x, t0, { clipDenoised: false, noise: z });
  assert.deepEqual(a.sample.data, b.sample.data);
  await assert.rejects(d.pSample(zero, x, t, { clipDenoised: false, noise: null }), /noise is required/);
});

test('pSampleLoop: T Denoiser calls at t = T-1 .. 0, progress, reproducible per seed', async () => {
  const small = make('eps', 'fixedlarge', getBetaSchedule('linear', { T: 20 }));
  const seen: number[] = [];
  const zero: Denoiser = async (v, t) => {
    seen.push(t[0]!);
    assert.ok(t.every((x) => x === t[0]));
    return { data: new Float32Array(v.data.length), shape: [...v.shape] };
  };
  const steps: number[] = [];
  const onStepT: number[] = [];
  const a = await small.pSampleLoop(zero, [2, 1, 3, 3], new Rng(9), {
    onProgress: (p) => {
      assert.equal(p.total, 20);
      steps.push(p.step);
    },
    onStep: (s) => onStepT.push(s.t),
  });
  const desc = Array.from({ length: 20 }, (_, i) => 19 - i);
  assert.deepEqual(seen, desc);
  assert.deepEqual(onStepT, desc);
  assert.deepEqual(
    steps,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  const b = await small.pSampleLoop(zero, [2, 1, 3, 3], new Rng(9));
  const c = await small.pSampleLoop(zero, [2, 1, 3, 3], new Rng(10));
  assert.deepEqual(a.data, b.data, 'same seed, same samples');
  assert.notDeepEqual(a.data, c.data, 'another seed, other samples');
});

test('mseTarget: eps, x0 or the Bayes posterior mean by parameterisation', () => {
  const rng = new Rng(6);
  const x0 = uniform(rng, [2, 1, 2, 2]);
  const noise = randn(rng, [2, 1, 2, 2]);
  const t = Int32Array.from([3, 600]);
  const xt = make().qSample(x0, t, noise);
  assert.deepEqual(make('eps').mseTarget(x0, xt, t, noise).data, noise.data);
  assert.deepEqual(make('xstart').mseTarget(x0, xt, t, noise).data, x0.data);
  const want = perElement(x0, (n, i) => {
    const post = bayesPosterior(betas[t[n]!]!, abar[t[n]! - 1]!);
    return post.c0 * x0.data[i]! + post.ct * xt.data[i]!;
  });
  allClose(make('xprev').mseTarget(x0, xt, t, noise).data, want, 1e-6, 1e-7, 'xprev target');
});

test('bad options and bad Denoiser outputs are refused', async () => {
  const base = { betas, modelMeanType: 'eps', modelVarType: 'fixedlarge', lossType: 'mse' } as const;
  assert.throws(
    () => new GaussianDiffusion({ ...base, modelMeanType: 'velocity' as ModelMeanType }),
    /model mean type/,
  );
  assert.throws(
    () => new GaussianDiffusion({ ...base, modelVarType: 'learned' as ModelVarType }),
    /variance type/,
  );
  assert.throws(() => new GaussianDiffusion({ ...base, lossType: 'l1' as 'mse' }), /loss type/);
  assert.throws(() => new GaussianDiffusion({ ...base, betas: [0.1, 0] }), /outside/);
  const wrong: Denoiser = async () => ({ data: new Float32Array(3), shape: [1, 3] });
  const x: Tensor = { data: new Float32Array(4), shape: [1, 1, 2, 2] };
  await assert.rejects(
    make().pMeanVariance(wrong, x, Int32Array.from([3]), { clipDenoised: true }),
    /differ/,
  );
});
