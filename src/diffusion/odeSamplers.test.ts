// The ODE samplers (DPM-Solver++ 2M / 3M, Euler, Heun) against oracle Denoisers of known distributions:
// the error against the exact probability-flow ODE falls at each sampler's order (log-log slope); sampled
// moments of a Gaussian and the weights and moments of a Gaussian mixture; every parameterisation gives the
// same samples; an image does not depend on the batch it is drawn in; Euler on DDIM's nodes is DDIM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { ddimSample } from './ddim.js';
import { dpmSolverSample } from './dpmSolver.js';
import { eulerSample } from './euler.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { heunSample } from './heun.js';
import { perImageNoise } from './imageNoise.js';
import { getBetaSchedule } from './schedules.js';
import { diffusionSigmas, type OdeSamplerOptions, sigmaSchedule } from './sigmaSchedule.js';
import {
  gaussianOdeMap,
  gaussianOracle,
  gaussianPdf,
  gaussianPosteriorX0,
  type MixtureComponent,
  meanStd,
  mixtureOracle,
  type Spy,
  simpson,
} from './testing.js';
import type { Denoiser, ModelMeanType } from './types.js';

type Run = (
  d: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  opts: OdeSamplerOptions,
) => Promise<Tensor>;

/** Each sampler with its order of accuracy and the steps at which its moments are checked. */
const SAMPLERS: { name: string; order: number; steps: number; run: Run }[] = [
  { name: 'euler', order: 1, steps: 200, run: (d, f, shape, o) => eulerSample(d, f, shape, new Rng(0), o) },
  { name: 'heun', order: 2, steps: 50, run: (d, f, shape, o) => heunSample(d, f, shape, new Rng(0), o) },
  {
    name: 'dpm++2m',
    order: 2,
    steps: 50,
    run: (d, f, shape, o) => dpmSolverSample(d, f, shape, new Rng(0), { ...o, order: 2 }),
  },
  {
    name: 'dpm++3m',
    order: 3,
    steps: 50,
    run: (d, f, shape, o) => dpmSolverSample(d, f, shape, new Rng(0), { ...o, order: 3 }),
  },
];

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const make = (meanType: ModelMeanType = 'eps', b: ArrayLike<number> = betas) =>
  new GaussianDiffusion({ betas: b, modelMeanType: meanType, modelVarType: 'fixedlarge', lossType: 'mse' });
const normal = (seed: number, shape: number[]): Tensor => ({
  data: new Rng(seed).normalArray(shape.reduce((a, b) => a * b, 1)),
  shape,
});

/** Least-squares slope of log y against log x. */
function logLogSlope(xs: readonly number[], ys: readonly number[]): number {
  const lx = xs.map(Math.log);
  const ly = ys.map(Math.log);
  const mx = lx.reduce((a, b) => a + b) / lx.length;
  const my = ly.reduce((a, b) => a + b) / ly.length;
  let [num, den] = [0, 0];
  lx.forEach((x, i) => {
    num += (x - mx) * (ly[i]! - my);
    den += (x - mx) ** 2;
  });
  return num / den;
}

// The order test needs nodes that the step count alone decides. The paper's grid is coarse in log-sigma
// near t = 0 (sigma_t ~ 0.01 sqrt(t + 1)), which pins the last nodes to t = 0, 1, 2, ... whatever the
// step count; so it runs on a diffusion whose T = 4000 sigmas are geometric from 0.01 to 80 (uniform in
// log-sigma, spacing 0.0022), where every snapped node is within 0.1% of its Karras sigma.
const GEO_T = 4000;
const geoSigmas = Array.from({ length: GEO_T }, (_, t) => 0.01 * (80 / 0.01) ** (t / (GEO_T - 1)));
const geoAbar = geoSigmas.map((s) => 1 / (1 + s * s));
const geoBetas = geoAbar.map((a, t) => (t === 0 ? 1 - a : 1 - a / geoAbar[t - 1]!));

test('order: the error against the exact ODE falls as steps^-order (1-D Gaussian, log-log fit)', async (tc) => {
  const [mu, s] = [0.2, 0.5];
  const d = make('eps', geoBetas);
  const oracle = gaussianOracle(geoBetas, mu, s);
  const sig = diffusionSigmas(d);
  const xT: Tensor = { data: Float32Array.from([-2, -1, -0.3, 0.4, 1, 2]), shape: [6, 1, 1, 1] };
  // exact: the ODE from sigma_max to sigma_min, then the last step's x_0 prediction D(x; sigma_min)
  const ode = gaussianOdeMap(sig[GEO_T - 1]!, sig[0]!, mu, s);
  const { gain, offset } = gaussianPosteriorX0(d.alphasCumprod[0]!, mu, s);
  const exact = Array.from(xT.data, (v) => gain * (ode.a * v + ode.b) + offset);
  const stepCounts = [32, 48, 64, 96, 128];
  for (const { name, order, run } of SAMPLERS) {
    const errs: number[] = [];
    for (const steps of stepCounts) {
      assert.equal(sigmaSchedule(d, steps).timesteps.length, steps, 'distinct nodes');
      const x = await run(d, oracle, xT.shape, { steps, xT, clipDenoised: false });
      errs.push(Math.max(...Array.from(x.data, (v, i) => Math.abs(v - exact[i]!))));
    }
    const slope = -logLogSlope(stepCounts, errs);
    tc.diagnostic(
      `${name}: max error ${errs.map((e) => e.toExponential(2)).join(', ')} at ${stepCounts.join(', ')} steps; slope ${slope.toFixed(2)} (order ${order})`,
    );
    for (let i = 1; i < errs.length; i++) assert.ok(errs[i]! < errs[i - 1]!, `${name}: error falls`);
    assert.ok(Math.abs(slope - order) < 0.2, `${name}: slope ${slope} for order ${order}`);
  }
});

// Sampled moments: 8192 pixels from one x_T, each sampler at its step count (Euler 200, the others 50; at
// 25 steps the second-order ones are within about 3%, Euler 12% narrow). Tolerances: the mean within 0.01
// (4 standard errors: 0.0055) and the standard deviation within 4% (discretisation, ~2% at these steps,
// plus 4 standard errors: 3%).
test('Gaussian data, the paper schedule: mean and standard deviation of the samples', async (tc) => {
  const [mu, s] = [0.2, 0.5];
  const shape = [2048, 1, 2, 2];
  const xT = normal(1, shape);
  const oracle = gaussianOracle(betas, mu, s);
  for (const { name, steps, run } of SAMPLERS) {
    const x = await run(make(), oracle, shape, { steps, xT, clipDenoised: false });
    const got = meanStd(x.data);
    tc.diagnostic(
      `${name}-${steps}: mean ${got.mean.toFixed(4)} std ${got.std.toFixed(4)} (data ${mu} / ${s})`,
    );
    assert.ok(Math.abs(got.mean - mu) < 0.01, `${name}: mean ${got.mean}`);
    assert.ok(Math.abs(got.std / s - 1) < 0.04, `${name}: std ${got.std}`);
  }
});

// A two-component mixture, samples split at x = -0.1: the share below and the mean and standard deviation of
// each side against the same quantities of the true mixture (Simpson integration; the tails cross the split,
// so they are not exactly the components'). Tolerances: share within 0.02 (4 standard errors: 0.02), side
// means within 0.015, side standard deviations within 6%.
test('Gaussian mixture: mixture weights and the moments of each mode', async (tc) => {
  const comps: MixtureComponent[] = [
    { w: 0.3, mu: -0.5, s: 0.15 },
    { w: 0.7, mu: 0.4, s: 0.2 },
  ];
  const split = -0.1;
  const pdf = (x: number) => comps.reduce((acc, c) => acc + c.w * gaussianPdf(x, c.mu, c.s), 0);
  const side = (a: number, b: number) => {
    const m0 = simpson(pdf, a, b, 4000);
    const m1 = simpson((x) => x * pdf(x), a, b, 4000) / m0;
    const m2 = simpson((x) => (x - m1) ** 2 * pdf(x), a, b, 4000) / m0;
    return { weight: m0, mean: m1, std: Math.sqrt(m2) };
  };
  const [lo, hi] = [side(-3, split), side(split, 3)];
  const shape = [2048, 1, 2, 2];
  const xT = normal(2, shape);
  const oracle = mixtureOracle(betas, comps);
  const n = xT.data.length;
  for (const { name, steps, run } of SAMPLERS) {
    const x = await run(make(), oracle, shape, { steps, xT, clipDenoised: false });
    const a = meanStd(Array.from(x.data).filter((v) => v < split));
    const b = meanStd(Array.from(x.data).filter((v) => v >= split));
    const w = x.data.filter((v) => v < split).length / n;
    tc.diagnostic(
      `${name}-${steps}: weight ${w.toFixed(4)} (${lo.weight.toFixed(4)}); means ${a.mean.toFixed(4)} / ${b.mean.toFixed(4)} ` +
        `(${lo.mean.toFixed(4)} / ${hi.mean.toFixed(4)}), stds ${a.std.toFixed(4)} / ${b.std.toFixed(4)} (${lo.std.toFixed(4)} / ${hi.std.toFixed(4)})`,
    );
    assert.ok(Math.abs(w - lo.weight) < 0.02, `${name}: weight ${w}`);
    assert.ok(Math.abs(a.mean - lo.mean) < 0.015 && Math.abs(b.mean - hi.mean) < 0.015, `${name}: means`);
    assert.ok(Math.abs(a.std / lo.std - 1) < 0.06 && Math.abs(b.std / hi.std - 1) < 0.06, `${name}: stds`);
  }
});

test('every parameterisation (eps, xstart, xprev) gives the same samples', async () => {
  const [mu, s] = [0.2, 0.5];
  const shape = [8, 1, 2, 2];
  const xT = normal(3, shape);
  for (const { name, run } of SAMPLERS) {
    const ref = await run(make('eps'), gaussianOracle(betas, mu, s, 'eps'), shape, { steps: 15, xT });
    for (const meanType of ['xstart', 'xprev'] as const) {
      const x = await run(make(meanType), gaussianOracle(betas, mu, s, meanType), shape, { steps: 15, xT });
      // xprev: x_0 = (mu~ - c2 x_t) / c1 amplifies float32 rounding by up to 1 / c1 (ddim.test.ts: 2e-3)
      allClose(x.data, ref.data, 0, meanType === 'xprev' ? 2e-3 : 1e-5, `${name}: ${meanType} vs eps`);
    }
  }
});

test('same seed, same images: batch of 8 vs 8 batches of 1 (per-image noise streams)', async () => {
  const comps: MixtureComponent[] = [
    { w: 0.5, mu: -0.6, s: 0.2 },
    { w: 0.5, mu: 0.5, s: 0.3 },
  ];
  const oracle = mixtureOracle(betas, comps);
  const per = 3 * 4 * 4;
  for (const { name, run } of SAMPLERS) {
    const whole = await run(make(), oracle, [8, 3, 4, 4], { steps: 10, noiseFn: perImageNoise(7, 0, 8) });
    for (let i = 0; i < 8; i++) {
      const one = await run(make(), oracle, [1, 3, 4, 4], { steps: 10, noiseFn: perImageNoise(7, i, 1) });
      assert.deepEqual(one.data, whole.data.subarray(i * per, (i + 1) * per), `${name}: image ${i}`);
    }
    const other = await run(make(), oracle, [8, 3, 4, 4], { steps: 10, noiseFn: perImageNoise(8, 0, 8) });
    assert.notDeepEqual(other.data, whole.data, `${name}: another seed, other images`);
  }
});

test('Euler on DDIM`s nodes is DDIM (eta = 0); 2M / 3M start with that step', async () => {
  const [mu, s] = [-0.1, 0.6];
  const shape = [16, 1, 2, 2];
  const xT = normal(4, shape);
  const oracle = gaussianOracle(betas, mu, s);
  const ddim = await ddimSample(make(), oracle, shape, new Rng(0), { steps: 20, xT, clipDenoised: false });
  const euler = await eulerSample(make(), oracle, shape, new Rng(0), {
    steps: 20,
    spacing: 'uniform',
    xT,
    clipDenoised: false,
  });
  allClose(euler.data, ddim.data, 0, 2e-5, 'Euler vs DDIM');
  // one node: a single first-order step to sigma = 0 for every sampler, x = D(x_T; sigma_max)
  for (const { name, run } of SAMPLERS) {
    const x = await run(make(), oracle, shape, { steps: 1, xT, clipDenoised: false });
    const { predXstart } = await make().predictXstart(oracle, xT, new Int32Array(16).fill(T - 1), false);
    allClose(x.data, predXstart.data, 0, 0, `${name}, 1 step`);
  }
});

test('lower_order_final: below 15 steps 3M takes its second-to-last step at order 2, from 15 on at order 3', async () => {
  const shape = [8, 1, 2, 2];
  const xT = normal(5, shape);
  const oracle = gaussianOracle(betas, 0.2, 0.4);
  const run = (order: 2 | 3, steps: number, lowerOrderFinal = true) =>
    dpmSolverSample(make(), oracle, shape, new Rng(0), {
      steps,
      xT,
      clipDenoised: false,
      order,
      lowerOrderFinal,
    });
  // 4 nodes: orders 1, 2, then the second-to-last capped at 2, then x = D: 3M is 2M exactly
  allClose((await run(3, 4)).data, (await run(2, 4)).data, 0, 0, '3M = 2M at 4 steps');
  const uncapped = await run(3, 4, false);
  const diff = (a: Tensor, b: Tensor) => Math.max(...a.data.map((v, i) => Math.abs(v - b.data[i]!)));
  assert.ok(diff(uncapped, await run(2, 4)) > 1e-6, 'without the cap, 3M differs from 2M at 4 steps');
  // from 15 steps on, nothing is capped: the option makes no difference
  allClose((await run(3, 15)).data, (await run(3, 15, false)).data, 0, 0, '15 steps: no cap');
});

test('network calls: one per node (Heun: two per node but the last), at the scheduled timesteps, in order', async () => {
  const steps = 12;
  const nodes = Array.from(sigmaSchedule(make(), steps).timesteps);
  for (const { name, run } of SAMPLERS) {
    const spy: Spy = { calls: [] };
    const progress: number[] = [];
    const visited: number[] = [];
    await run(make(), gaussianOracle(betas, 0, 0.5, 'eps', spy), [2, 1, 1, 1], {
      steps,
      onStep: (st) => visited.push(st.t),
      onProgress: (p) => progress.push(p.step),
    });
    const ts = spy.calls.map((t) => t[0]!);
    assert.deepEqual(visited, nodes, `${name}: onStep once per node`);
    if (name === 'heun') {
      // node k, then the correction at node k + 1, ..., the last node without correction
      const want = nodes.flatMap((t, k) => (k < nodes.length - 1 ? [t, nodes[k + 1]!] : [t]));
      assert.deepEqual(ts, want);
      assert.equal(ts.length, 2 * steps - 1);
    } else assert.deepEqual(ts, nodes, name);
    assert.deepEqual(
      progress,
      ts.map((_, i) => i + 1),
      `${name}: progress per network call`,
    );
  }
});

test('clipDenoised (default): x_0 predictions and samples stay in [-1, 1]; xT of another shape is refused', async () => {
  const oracle = gaussianOracle(betas, 0.9, 0.5);
  for (const { name, run } of SAMPLERS) {
    const x = await run(make(), oracle, [64, 1, 2, 2], {
      steps: 8,
      noiseFn: perImageNoise(1, 0, 64),
      onStep: (st) => assert.ok(st.predXstart.data.every((v) => v >= -1 && v <= 1)),
    });
    assert.ok(
      x.data.every((v) => v >= -1 && v <= 1),
      name,
    );
    await assert.rejects(run(make(), oracle, [2, 1, 2, 2], { xT: normal(0, [2, 1, 2, 3]) }), /xT has shape/);
  }
});
