// Interpolation (Fig. 8): both images are encoded with the same noise, the lambda = 0 / 1 decodes are the
// single-image decodes, and with shared reverse noise and a linear (Gaussian-oracle) model every decode is
// affine in lambda.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { interpolate } from './interpolate.js';
import { getBetaSchedule } from './schedules.js';
import { explicitAlphasCumprod, gaussianOracle } from './testing.js';

const T = 100;
const betas = getBetaSchedule('linear', { T, betaEnd: 0.2 });
const abar = explicitAlphasCumprod(betas);
const d = new GaussianDiffusion({ betas, modelMeanType: 'eps', modelVarType: 'fixedlarge', lossType: 'mse' });
const oracle = gaussianOracle(betas, 0.1, 0.4);
const shape = [2, 1, 4, 4];
const image = (seed: number): Tensor => {
  const r = new Rng(seed);
  return { data: Float32Array.from({ length: 32 }, () => r.uniform() * 1.6 - 0.8), shape };
};

test('lambda = 0 and 1 decode x_t = sqrt(abar) x0 + sqrt(1 - abar) eps of each image with the same eps', async () => {
  const [a, b] = [image(1), image(2)];
  const t = 50;
  const r = await interpolate(d, oracle, a, b, new Rng(7), { t, lambdas: [0, 1], clipDenoised: false });
  assert.deepEqual(r.lambdas, [0, 1]);
  // replay: the first normals are the shared encoding noise, then one image-sized draw per step
  for (const [l, x0] of [
    [0, a],
    [1, b],
  ] as const) {
    const rng = new Rng(7);
    const eps = rng.normalArray(32);
    const xt: Tensor = {
      data: Float32Array.from(x0.data, (v, i) => Math.sqrt(abar[t]!) * v + Math.sqrt(1 - abar[t]!) * eps[i]!),
      shape,
    };
    const alone = await d.pSampleLoop(oracle, shape, rng, { xStart: xt, startT: t, clipDenoised: false });
    allClose(r.images[l]!.data, alone.data, 0, 1e-5, `lambda = ${l}`);
  }
});

test('shared reverse noise: decodes are affine in lambda (linear oracle); independent noise breaks it', async () => {
  const [a, b] = [image(3), image(4)];
  const lambdas = [0, 0.25, 0.5, 1];
  const r = await interpolate(d, oracle, a, b, new Rng(8), { t: 60, lambdas, clipDenoised: false });
  assert.equal(r.images.length, 4);
  for (const [l, lam] of lambdas.entries()) {
    const want = Array.from(r.images[0]!.data, (v, i) => (1 - lam) * v + lam * r.images[3]!.data[i]!);
    allClose(r.images[l]!.data, want, 0, 1e-5, `lambda ${lam}`);
    assert.deepEqual(r.images[l]!.shape, shape);
  }
  const indep = await interpolate(d, oracle, a, b, new Rng(8), {
    t: 60,
    lambdas,
    clipDenoised: false,
    sharedReverseNoise: false,
  });
  const mid = Array.from(indep.images[0]!.data, (v, i) => 0.5 * v + 0.5 * indep.images[3]!.data[i]!);
  const dev = Math.max(...Array.from(indep.images[2]!.data, (v, i) => Math.abs(v - mid[i]!)));
  assert.ok(dev > 0.01, `independent noise still affine? ${dev}`);
});

test('defaults and errors: 11 lambdas at t = T/2; shapes must match; t in range', async () => {
  const r = await interpolate(d, oracle, image(5), image(6), new Rng(1));
  assert.equal(r.lambdas.length, 11);
  assert.equal(r.lambdas[10], 1);
  for (const im of r.images) for (const v of im.data) assert.ok(v >= -1 && v <= 1);
  const other: Tensor = { data: new Float32Array(16), shape: [1, 1, 4, 4] };
  await assert.rejects(interpolate(d, oracle, image(5), other, new Rng(1)), /differ/);
  await assert.rejects(interpolate(d, oracle, image(5), image(6), new Rng(1), { t: T }), /outside/);
});
