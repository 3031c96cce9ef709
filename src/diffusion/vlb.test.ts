// The variational bound in bits/dim against analytic values for toy data with oracle Denoisers:
// a single known point (every term closed form) and N(mu, s^2) pixels (expected terms closed form).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { getBetaSchedule } from './schedules.js';
import {
  bayesPosterior,
  exactNormalCdf,
  explicitAlphasCumprod,
  gaussianOracle,
  gaussianPdf,
  gaussianPosteriorX0,
  pointOracle,
  simpson,
} from './testing.js';
import type { Denoiser, LossType, ModelMeanType, ModelVarType } from './types.js';
import { calcBpdLoop, priorBpd, trainingLosses, vbTermsBpd } from './vlb.js';

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const abar = explicitAlphasCumprod(betas);
const LN2 = Math.log(2);
const make = (meanType: ModelMeanType, varType: ModelVarType, lossType: LossType = 'mse') =>
  new GaussianDiffusion({ betas, modelMeanType: meanType, modelVarType: varType, lossType });
const post = (t: number) => bayesPosterior(betas[t]!, t === 0 ? 1 : abar[t - 1]!);
const betaTilde1 = post(1).variance;

/** Pixels on the 256 bin centres (2k/255 - 1), including both edge bins. */
function binCentres(shape: number[], pick: () => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => {
    const k = i === 0 ? 0 : i === 1 ? 255 : Math.min(255, Math.max(0, Math.round(pick())));
    return (2 * k) / 255 - 1;
  });
  return { data, shape };
}
function perSampleMean(x: Tensor, f: (v: number) => number): number[] {
  const n = x.shape[0]!;
  const per = x.data.length / n;
  return Array.from({ length: n }, (_, s) => {
    let acc = 0;
    for (let i = s * per; i < (s + 1) * per; i++) acc += f(x.data[i]!);
    return acc / per;
  });
}
/** L_T in nats for one pixel: KL(N(sqrt(abar_T) x0, 1 - abar_T) || N(0, 1)). */
function priorNats(x0: number): number {
  const a = abar[T - 1]!;
  return 0.5 * (-1 - Math.log(1 - a) + (1 - a) + a * x0 * x0);
}
/** Decoder -log P(bin of x0) in nats under N(mean, sigma^2), exact CDF, edge bins open, clamped as the code. */
function decoderNats(x0: number, mean: number, sigma: number): number {
  const up = x0 > 0.999 ? 1 : exactNormalCdf((x0 + 1 / 255 - mean) / sigma);
  const down = x0 < -0.999 ? 0 : exactNormalCdf((x0 - 1 / 255 - mean) / sigma);
  return -Math.log(Math.max(up - down, 1e-12));
}

test('priorBpd: KL(q(x_T | x_0) || N(0, I)) averaged over pixels, in bits', () => {
  const rng = new Rng(1);
  const x0 = binCentres([3, 2, 4, 4], () => rng.uniform() * 255);
  allClose(
    priorBpd(make('eps', 'fixedlarge'), x0),
    perSampleMean(x0, (v) => priorNats(v) / LN2),
    1e-6,
    1e-12,
    'prior',
  );
});

test('vbTermsBpd at a fixed x_t: KL of scalar Gaussians (t > 0) and the exact-CDF decoder (t = 0)', async () => {
  const rng = new Rng(2);
  const [mu, s] = [0.1, 0.3];
  const x0 = binCentres([4, 1, 6, 6], () => (mu + s * rng.normal() + 1) * 127.5);
  const noise: Tensor = { data: rng.normalArray(x0.data.length), shape: x0.shape };
  const t = Int32Array.from([0, 1, 37, 700]);
  for (const varType of ['fixedlarge', 'fixedsmall'] as const) {
    const d = make('eps', varType);
    const xt = d.qSample(x0, t, noise);
    const { bpd } = await vbTermsBpd(d, gaussianOracle(betas, mu, s), x0, xt, t, { clipDenoised: false });
    const per = x0.data.length / 4;
    const want = Array.from(t, (tn, n) => {
      const p = post(tn);
      const { gain, offset } = gaussianPosteriorX0(abar[tn]!, mu, s);
      let acc = 0;
      for (let i = n * per; i < (n + 1) * per; i++) {
        const xhat = gain * xt.data[i]! + offset;
        if (tn === 0) {
          acc += decoderNats(x0.data[i]!, xhat, Math.sqrt(betaTilde1));
        } else {
          const s1 = Math.sqrt(p.variance);
          const s2 = Math.sqrt(varType === 'fixedlarge' ? betas[tn]! : p.variance);
          const dm = p.c0 * (x0.data[i]! - xhat); // true mean - model mean
          acc += Math.log(s2 / s1) + (s1 * s1 + dm * dm) / (2 * s2 * s2) - 0.5;
        }
      }
      return acc / per / LN2;
    });
    allClose(bpd, want, 2e-4, 1e-3, `vb terms ${varType}`);
  }
});

test('calcBpdLoop, data = one known point: every term closed form (fixedlarge / fixedsmall, 3 parameterisations)', async (tc) => {
  const rng = new Rng(3);
  const x0 = binCentres([3, 3, 4, 4], () => rng.uniform() * 255);
  const prior = perSampleMean(x0, (v) => priorNats(v) / LN2);
  const decoder = perSampleMean(x0, (v) => decoderNats(v, v, Math.sqrt(betaTilde1)) / LN2);
  for (const [meanType, varType] of [
    ['eps', 'fixedlarge'],
    ['xstart', 'fixedsmall'],
    ['xprev', 'fixedlarge'],
  ] as const) {
    const d = make(meanType, varType);
    const r = await calcBpdLoop(d, pointOracle(betas, x0, meanType), x0, new Rng(4));
    // the exact model's mean is the true posterior mean: only the variance mismatch remains (fixedlarge)
    const klTerm = (t: number) => {
      if (varType === 'fixedsmall') return 0;
      const ratio = post(t).variance / betas[t]!;
      return (0.5 * (-1 - Math.log(ratio) + ratio)) / LN2;
    };
    let sumKl = 0;
    for (let t = 1; t < T; t++) {
      allClose(
        r.termsBpd[t]!,
        [klTerm(t), klTerm(t), klTerm(t)],
        1e-4,
        1e-7,
        `${meanType}/${varType} L_${t}`,
      );
      sumKl += klTerm(t);
    }
    allClose(r.priorBpd, prior, 1e-6, 0, 'prior');
    allClose(r.termsBpd[0]!, decoder, 0, 1.5e-3, `${meanType}/${varType} decoder`);
    const total = prior.map((p, n) => p + sumKl + decoder[n]!);
    allClose(r.totalBpd, total, 0, 2e-3, `${meanType}/${varType} total`);
    const worstMse = Math.max(...r.mseXstart.map((m) => Math.max(...m)));
    const worstEps = Math.max(...r.mseEps.map((m) => Math.max(...m)));
    tc.diagnostic(
      `${meanType}/${varType}: total ${r.totalBpd[0]!.toFixed(5)} bits/dim (analytic ${total[0]!.toFixed(5)}); ` +
        `max mse x0 ${worstMse.toExponential(2)}, eps ${worstEps.toExponential(2)}`,
    );
    assert.ok(worstMse < 1e-6 && worstEps < 1e-6, `mse of the exact model: x0 ${worstMse}, eps ${worstEps}`);
  }
});

test('calcBpdLoop, data N(mu, s^2): the Monte Carlo bound is within 4 sigma of its analytic expectation', async (tc) => {
  const [mu, s] = [0.1, 0.3];
  const rng = new Rng(5);
  const x0 = binCentres([4, 3, 16, 16], () => (mu + s * rng.normal() + 1) * 127.5);
  const n = x0.shape[0]!;
  const per = x0.data.length / n;
  const d = make('eps', 'fixedlarge');
  const r = await calcBpdLoop(d, gaussianOracle(betas, mu, s), x0, new Rng(6), { clipDenoised: false });
  // Per pixel, xhat - x0 ~ N(a, b) given x0, a = (x0 - mu)(g sqrt(abar) - 1), b = g^2 (1 - abar).
  // L_{t-1} = variance part + c0^2 (xhat - x0)^2 / (2 beta_t): mean and variance in closed form.
  const klMean = new Float64Array(n);
  const klVar = new Float64Array(n); // variance of the per-sample sum over t (fresh noise every t)
  const mseMean = new Float64Array(n);
  for (let t = 1; t < T; t++) {
    const p = post(t);
    const ratio = p.variance / betas[t]!;
    const varPart = 0.5 * (-1 - Math.log(ratio) + ratio);
    const w = p.c0 ** 2 / (2 * betas[t]!);
    const { gain } = gaussianPosteriorX0(abar[t]!, mu, s);
    const b = gain * gain * (1 - abar[t]!);
    for (let i = 0; i < x0.data.length; i++) {
      const sIdx = Math.floor(i / per);
      const a = (x0.data[i]! - mu) * (gain * Math.sqrt(abar[t]!) - 1);
      klMean[sIdx] += (varPart + w * (a * a + b)) / per / LN2;
      klVar[sIdx] += (w * w * (2 * b * b + 4 * a * a * b)) / (per * per * LN2 * LN2);
      mseMean[sIdx] += (a * a + b) / per;
    }
  }
  // decoder: mean and variance of -log P over the noise of x_1, by quadrature
  const { gain: g0, offset: o0 } = gaussianPosteriorX0(abar[0]!, mu, s);
  const sig = Math.sqrt(betaTilde1);
  const decMean = new Float64Array(n);
  const decVar = new Float64Array(n);
  for (let i = 0; i < x0.data.length; i++) {
    const v = x0.data[i]!;
    const nll = (e: number) =>
      decoderNats(v, g0 * (Math.sqrt(abar[0]!) * v + Math.sqrt(1 - abar[0]!) * e) + o0, sig);
    const m1 = simpson((e) => gaussianPdf(e, 0, 1) * nll(e), -8, 8, 400);
    const m2 = simpson((e) => gaussianPdf(e, 0, 1) * nll(e) ** 2, -8, 8, 400);
    const sIdx = Math.floor(i / per);
    decMean[sIdx] += m1 / per / LN2;
    decVar[sIdx] += (m2 - m1 * m1) / (per * per * LN2 * LN2);
  }
  const prior = perSampleMean(x0, (v) => priorNats(v) / LN2);
  for (let i = 0; i < n; i++) {
    const klGot = r.totalBpd[i]! - r.priorBpd[i]! - r.termsBpd[0]![i]!;
    const zKl = (klGot - klMean[i]!) / Math.sqrt(klVar[i]!);
    const zDec = (r.termsBpd[0]![i]! - decMean[i]!) / Math.sqrt(decVar[i]!);
    const total = prior[i]! + klMean[i]! + decMean[i]!;
    tc.diagnostic(
      `sample ${i}: bound ${r.totalBpd[i]!.toFixed(4)} vs E ${total.toFixed(4)} bits/dim; ` +
        `KL sum ${klGot.toFixed(4)} vs ${klMean[i]!.toFixed(4)} (z ${zKl.toFixed(2)}), ` +
        `decoder ${r.termsBpd[0]![i]!.toFixed(4)} vs ${decMean[i]!.toFixed(4)} (z ${zDec.toFixed(2)})`,
    );
    assert.ok(Math.abs(zKl) < 4, `sample ${i}: KL sum z-score ${zKl}`);
    assert.ok(Math.abs(zDec) < 4, `sample ${i}: decoder z-score ${zDec}`);
    assert.ok(Math.abs(r.priorBpd[i]! - prior[i]!) < 1e-6 * prior[i]!, 'prior');
  }
  const mseGot = Array.from({ length: n }, (_, i) =>
    r.mseXstart.reduce((a, m, t) => a + (t > 0 ? m[i]! : 0), 0),
  );
  allClose(mseGot, mseMean, 0.02, 0, 'sum over t of E[(x0 - xhat)^2]');
});

test("trainingLosses: 'mse' is meanflat((target - output)^2); 'kl' is L_{t-1} without clipping", async () => {
  const rng = new Rng(7);
  const x0 = binCentres([3, 1, 4, 4], () => rng.uniform() * 255);
  const noise: Tensor = { data: rng.normalArray(x0.data.length), shape: x0.shape };
  const t = Int32Array.from([0, 20, 900]);
  const zero: Denoiser = async (x) => ({ data: new Float32Array(x.data.length), shape: [...x.shape] });
  const sq = (v: number) => v * v;
  for (const meanType of ['eps', 'xstart', 'xprev'] as const) {
    const d = make(meanType, 'fixedlarge', 'mse');
    const exact = await trainingLosses(d, pointOracle(betas, x0, meanType), x0, t, noise);
    for (const v of exact.losses) assert.ok(v < 1e-9, `${meanType}: exact model loss ${v}`);
    const { losses, xt } = await trainingLosses(d, zero, x0, t, noise);
    // zero output: the loss is the mean square of the target, computed here independently
    const per = x0.data.length / 3;
    const want = Array.from(t, (tn, n) => {
      let acc = 0;
      for (let i = n * per; i < (n + 1) * per; i++) {
        const p = post(tn);
        if (meanType === 'eps') acc += sq(noise.data[i]!);
        else if (meanType === 'xstart') acc += sq(x0.data[i]!);
        else acc += sq(p.c0 * x0.data[i]! + p.ct * xt.data[i]!);
      }
      return acc / per;
    });
    allClose(losses, want, 1e-5, 1e-9, `${meanType} mse loss`);
  }
  // 'kl': an x_0 model that says 2 everywhere; unclipped (the loss) differs from clipped
  const two: Denoiser = async (x) => ({ data: new Float32Array(x.data.length).fill(2), shape: [...x.shape] });
  const d = make('xstart', 'fixedsmall', 'kl');
  const kl = await trainingLosses(d, two, x0, t, noise);
  const ref = await vbTermsBpd(d, two, x0, kl.xt, t, { clipDenoised: false });
  assert.deepEqual(kl.losses, ref.bpd);
  const clipped = await vbTermsBpd(d, two, x0, kl.xt, t, { clipDenoised: true });
  assert.ok(Math.abs(clipped.bpd[1]! - kl.losses[1]!) > 1e-3);
  // t = 20: KL between N(c0 x0 + ct xt, bt) and N(c0 * 2 + ct xt, bt) = c0^2 (x0 - 2)^2 / (2 bt) per pixel
  const p = post(20);
  const sample1: Tensor = { data: x0.data.subarray(16, 32), shape: [1, 16] };
  const want = perSampleMean(sample1, (v) => (p.c0 ** 2 * (v - 2) ** 2) / (2 * p.variance));
  allClose([kl.losses[1]!], [want[0]! / LN2], 1e-4, 0, 'kl loss at t = 20');
});
