// The inference-timestep rules (timesteps.ts): diffusers' documented examples, closed forms computed here in
// exact rational arithmetic, numpy's own output (test/fixtures/diffusers_timesteps.json, written by
// reference/diffusers_timesteps.py), this project's rule unchanged, and DDIM / respaced Algorithm 2 under
// diffusers' rules against float64 transcriptions of diffusers' DDIMScheduler / DDPMScheduler step loops.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { ancestralSample } from './ancestral.js';
import { ddimSample } from './ddim.js';
import { GaussianDiffusion } from './gaussianDiffusion.js';
import { respacedDiffusion, spacedTimesteps } from './respace.js';
import { samplerEntry } from './samplers.js';
import { getBetaSchedule } from './schedules.js';
import { explicitAlphasCumprod, gaussianOracle, type Spy } from './testing.js';
import { samplingTimesteps } from './timesteps.js';
import {
  IMPROVED_DIFFUSION_RULE,
  type ModelVarType,
  type TimestepRule,
  type TimestepSpacing,
} from './types.js';

const desc = (ts: Int32Array) => Array.from(ts).reverse();

test("diffusers' documented examples: T = 1000, 10 steps", () => {
  const at = (spacing: TimestepSpacing, offset = 0) =>
    desc(samplingTimesteps(1000, 10, spacing, offset, 'ddim'));
  assert.deepEqual(at('leading'), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.deepEqual(at('leading', 1), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  assert.deepEqual(at('trailing'), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.deepEqual(at('linspace'), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  // steps_offset is added to 'leading' only, as diffusers
  assert.deepEqual(at('trailing', 1), at('trailing'));
  assert.deepEqual(at('linspace', 1), at('linspace'));
  // ddim 30 steps: this project strides by 34, 'leading' by 1000 // 30 = 33
  assert.deepEqual(
    Array.from(samplingTimesteps(1000, 30, 'improved-diffusion', 0, 'ddim').slice(0, 3)),
    [0, 34, 68],
  );
  assert.deepEqual(Array.from(samplingTimesteps(1000, 30, 'leading', 0, 'ddim').slice(0, 3)), [0, 33, 66]);
});

/** round(num / den) for integers, halves to even, exactly (no float division). */
function roundRational(num: number, den: number): number {
  const q = Math.floor(num / den);
  const twice = 2 * (num - q * den);
  if (twice > den) return q + 1;
  if (twice < den) return q;
  return q % 2 === 0 ? q : q + 1;
}

/** The closed forms in exact arithmetic; null where a value falls exactly on a half (float rounding decides). */
function closedForm(T: number, K: number, spacing: 'leading' | 'trailing' | 'linspace', offset: number) {
  const tie = (num: number, den: number) => 2 * (num % den) === den;
  const out: number[] = [];
  for (let i = 0; i < K; i++) {
    switch (spacing) {
      case 'leading':
        out.push(i * Math.floor(T / K) + offset);
        break;
      case 'trailing': // round(T - i T / K) - 1 = round(T (K - i) / K) - 1
        if (tie(T * (K - i), K)) return null;
        out.push(roundRational(T * (K - i), K) - 1);
        break;
      case 'linspace': // round(i (T - 1) / (K - 1))
        if (K > 1 && tie(i * (T - 1), K - 1)) return null;
        out.push(K === 1 ? 0 : roundRational(i * (T - 1), K - 1));
        break;
    }
  }
  return out.sort((a, b) => a - b);
}

test('closed forms: leading, trailing and linspace for many (T, steps, offset)', () => {
  let checked = 0;
  for (const T of [1, 7, 10, 50, 100, 256, 1000, 1024, 4000]) {
    for (const K of [1, 2, 3, 5, 7, 10, 16, 20, 25, 30, 33, 50, 64, 100, 250, 999, 1000]) {
      if (K > T) continue;
      for (const spacing of ['leading', 'trailing', 'linspace'] as const) {
        for (const offset of spacing === 'leading' ? [0, 1, 3] : [0]) {
          const want = closedForm(T, K, spacing, offset);
          if (want === null || want[K - 1]! > T - 1) continue;
          for (const sampler of ['ddpm', 'ddim'] as const)
            assert.deepEqual(
              Array.from(samplingTimesteps(T, K, spacing, offset, sampler)),
              want,
              `${spacing} T=${T} K=${K} offset=${offset}`,
            );
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 250, `${checked} cases`);
});

test("numpy's own output (reference/diffusers_timesteps.py), ties included; trailing's stray -1 left out", () => {
  const fix = JSON.parse(
    readFileSync(new URL('../../test/fixtures/diffusers_timesteps.json', import.meta.url), 'utf8'),
  ) as { cases: { T: number; K: number; spacing: TimestepSpacing; offset: number; timesteps: number[] }[] };
  let stray = 0;
  for (const c of fix.cases) {
    const want = c.timesteps.filter((t) => t >= 0).sort((a, b) => a - b);
    if (want.length !== c.timesteps.length) {
      // numpy's arange length ceil(T / (T / K)) is K + 1 here: diffusers gets a (K+1)-th timestep, -1
      assert.deepEqual([c.spacing, c.timesteps.length, c.timesteps.at(-1)], ['trailing', c.K + 1, -1]);
      stray++;
    }
    assert.deepEqual(
      Array.from(samplingTimesteps(c.T, c.K, c.spacing, c.offset, 'ddim')),
      want,
      `${c.spacing} T=${c.T} K=${c.K} offset=${c.offset}`,
    );
  }
  assert.ok(stray > 0 && fix.cases.length > 300);
});

test('\'improved-diffusion\' is this project\'s rule as before: ddpm "K", ddim the exact stride else "K"', () => {
  for (const T of [10, 50, 1000, 4000])
    for (let K = 1; K <= Math.min(T, 200); K += K < 20 ? 1 : 7) {
      // ddpm: K evenly spread over [0, T-1] by an accumulated stride, halves to even (space_timesteps "K")
      let cur = 0;
      const even = new Set<number>();
      for (let k = 0; k < K; k++) {
        const f = Math.floor(cur);
        even.add(cur - f > 0.5 || (cur - f === 0.5 && f % 2 === 1) ? f + 1 : f);
        cur += K <= 1 ? 1 : (T - 1) / (K - 1);
      }
      const ddpm = [...even].sort((a, b) => a - b);
      assert.deepEqual(Array.from(samplingTimesteps(T, K, 'improved-diffusion', 0, 'ddpm')), ddpm);
      assert.deepEqual(Array.from(spacedTimesteps(T, String(K))), ddpm);
      // ddim: range(0, T, s) for the smallest s with ceil(T / s) = K, if any
      let s = 1;
      while (s < T && Math.ceil(T / s) !== K) s++;
      const ddim = Math.ceil(T / s) === K ? Array.from({ length: K }, (_, i) => i * s) : ddpm;
      assert.deepEqual(
        Array.from(samplingTimesteps(T, K, 'improved-diffusion', 0, 'ddim')),
        ddim,
        `T=${T} K=${K}`,
      );
    }
});

test('refusals name what is wrong', () => {
  assert.throws(
    () => samplingTimesteps(1000, 0, 'leading', 0, 'ddim'),
    /0 steps over T = 1000; the steps must be an integer in \[1, 1000\]/,
  );
  assert.throws(() => samplingTimesteps(1000, 1001, 'trailing', 0, 'ddpm'), /1001 steps over T = 1000/);
  assert.throws(
    () => samplingTimesteps(1000, 1000, 'leading', 1, 'ddim'),
    /'leading' with steps offset 1 gives timestep 1000 for 1000 steps over T = 1000, past the last timestep 999/,
  );
  assert.throws(
    () => samplingTimesteps(1000, 10, 'improved-diffusion', 1, 'ddim'),
    /steps offset 1 with 'improved-diffusion', which has none/,
  );
  assert.throws(
    () => samplingTimesteps(1000, 10, 'uniform' as TimestepSpacing, 0, 'ddim'),
    /unknown timestep spacing: uniform/,
  );
});

// ---- samplers under the rules, against diffusers' step loops transcribed in float64 ----

const T = 1000;
const betas = getBetaSchedule('linear', { T });
const ac = explicitAlphasCumprod(betas);
const [mu, s] = [0.2, 0.5];
const shape = [3, 1, 2, 2];
const size = 12;
const make = (rule: TimestepRule, varType: ModelVarType = 'fixedsmall') =>
  new GaussianDiffusion({
    betas,
    modelMeanType: 'eps',
    modelVarType: varType,
    lossType: 'mse',
    timestepRule: rule,
  });
const rule = (spacing: TimestepSpacing, stepsOffset = 0, setAlphaToOne = true): TimestepRule => ({
  spacing,
  stepsOffset,
  setAlphaToOne,
});

/** The oracle's eps in float64: sqrt(1 - abar)(x - sqrt(abar) mu) / (abar s^2 + 1 - abar). */
const eps64 = (x: number, t: number) =>
  (Math.sqrt(1 - ac[t]!) * (x - Math.sqrt(ac[t]!) * mu)) / (ac[t]! * s * s + 1 - ac[t]!);

/** diffusers' timesteps (descending), written out here: set_timesteps' three expressions. */
function diffusersTimesteps(
  K: number,
  spacing: 'leading' | 'trailing' | 'linspace',
  offset: number,
): number[] {
  const i = Array.from({ length: K }, (_, k) => k);
  switch (spacing) {
    case 'leading':
      return i.map((k) => k * Math.floor(T / K) + offset).reverse();
    case 'trailing':
      return i.map((k) => Math.round(T - (k * T) / K) - 1);
    case 'linspace':
      return i.map((k) => Math.round((k * (T - 1)) / (K - 1))).reverse();
  }
}

/** A noise source that records what it hands out, and one that replays it. */
function recorder(seed: number) {
  const rng = new Rng(seed);
  const drawn: Float32Array[] = [];
  return {
    drawn,
    noiseFn: (n: number) => {
      const z = rng.normalArray(n);
      drawn.push(z);
      return z;
    },
  };
}

/**
 * DDIMScheduler.step in float64 (epsilon prediction, clip_sample false, use_clipped_model_output false):
 * prev_timestep = t - T // K; alpha_prod_t_prev = alphas_cumprod[prev] or final_alpha_cumprod; x_0 from eps;
 * std = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)); x = sqrt(a_prev) x_0 + sqrt(1 - a_prev - std^2)
 * eps + std z. (diffusers draws z on every step when eta > 0; here only where std > 0, which changes nothing
 * but which draws the stream hands out.)
 */
function diffusersDdim(
  xT: Float32Array,
  ts: number[],
  setAlphaToOne: boolean,
  eta: number,
  noise: Float32Array[],
) {
  const x = Float64Array.from(xT);
  const final = setAlphaToOne ? 1 : ac[0]!;
  let z = 0;
  for (const t of ts) {
    const prev = t - Math.floor(T / ts.length);
    const [a, ap] = [ac[t]!, prev >= 0 ? ac[prev]! : final];
    const std = eta * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
    const noiseNow = std > 0 ? noise[z++]! : null;
    for (let i = 0; i < x.length; i++) {
      const e = eps64(x[i]!, t);
      const x0 = (x[i]! - Math.sqrt(1 - a) * e) / Math.sqrt(a);
      x[i] = Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - std * std) * e + (noiseNow ? std * noiseNow[i]! : 0);
    }
  }
  return x;
}

const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return m;
};

test("DDIM under diffusers' rules = diffusers' DDIM step loop in float64 (leading, offsets, trailing, linspace, set_alpha_to_one)", async () => {
  const cases: [TimestepRule, number, number][] = [
    [rule('leading'), 10, 0],
    [rule('leading'), 30, 0],
    [rule('leading', 1), 25, 0],
    [rule('leading', 1, false), 20, 0],
    [rule('trailing'), 30, 0],
    [rule('linspace'), 30, 0], // steps to t - 33, not to the next linspace timestep
    [rule('leading', 0, false), 20, 0.7],
    [rule('trailing', 0, false), 7, 1],
  ];
  for (const [r, K, eta] of cases) {
    const d = make(r);
    const spy: Spy = { calls: [] };
    const xT = new Rng(7).normalArray(size);
    const rec = recorder(11);
    const got = await ddimSample(d, gaussianOracle(betas, mu, s, 'eps', spy), shape, new Rng(0), {
      steps: K,
      eta,
      clipDenoised: false,
      xT: { data: xT, shape },
      noiseFn: rec.noiseFn,
    });
    const ts = diffusersTimesteps(K, r.spacing as 'leading', r.stepsOffset);
    assert.deepEqual(
      spy.calls.map((c) => c[0]),
      ts,
      `${r.spacing} ${K}: the network sees diffusers' timesteps`,
    );
    const want = diffusersDdim(xT, ts, r.setAlphaToOne, eta, rec.drawn);
    const err = maxRel(got.data, want);
    assert.ok(err < 2e-5, `${JSON.stringify(r)} K=${K} eta=${eta}: rel err ${err}`);
  }
  // set_alpha_to_one false leaves the last step at abar_0: x = sqrt(abar_0) x_0 + sqrt(1 - abar_0) eps
  const xT = { data: new Rng(3).normalArray(size), shape };
  const one = await ddimSample(make(rule('leading')), gaussianOracle(betas, mu, s), shape, new Rng(0), {
    steps: 10,
    xT,
    clipDenoised: false,
  });
  const zero = await ddimSample(
    make(rule('leading', 0, false)),
    gaussianOracle(betas, mu, s),
    shape,
    new Rng(0),
    { steps: 10, xT, clipDenoised: false },
  );
  assert.ok(maxRel(one.data, zero.data) > 1e-4);
});

/**
 * DDPMScheduler.step in float64 once set_timesteps has run (fixed_small, epsilon, clip_sample false): prev_t =
 * the next timestep of the sequence (-1 after the last); a_prev = alphas_cumprod[prev_t] or 1; beta_t' = 1 -
 * a_t / a_prev; mean = sqrt(a_prev) beta_t' / (1 - a_t) x_0 + sqrt(1 - beta_t') (1 - a_prev) / (1 - a_t) x;
 * variance (1 - a_prev) / (1 - a_t) beta_t', clamped to 1e-20, noise added when t > 0.
 */
function diffusersDdpm(xT: Float32Array, ts: number[], noise: Float32Array[], large = false) {
  const x = Float64Array.from(xT);
  let z = 0;
  ts.forEach((t, k) => {
    const prev = k + 1 < ts.length ? ts[k + 1]! : -1;
    const [a, ap] = [ac[t]!, prev >= 0 ? ac[prev]! : 1];
    const beta = 1 - a / ap;
    const variance = large ? beta : Math.max(((1 - ap) / (1 - a)) * beta, 1e-20); // fixed_large: current_beta_t
    const noiseNow = t > 0 ? noise[z++] : undefined;
    for (let i = 0; i < x.length; i++) {
      const x0 = (x[i]! - Math.sqrt(1 - a) * eps64(x[i]!, t)) / Math.sqrt(a);
      const mean =
        ((Math.sqrt(ap) * beta) / (1 - a)) * x0 + ((Math.sqrt(1 - beta) * (1 - ap)) / (1 - a)) * x[i]!;
      x[i] = mean + (noiseNow ? Math.sqrt(variance) * noiseNow[i]! : 0);
    }
  });
  return x;
}

test("respaced Algorithm 2 under diffusers' rules = DDPMScheduler's step loop in float64 (fixed_small, fixed_large)", async () => {
  for (const [r, K, large] of [
    [rule('leading'), 10, false],
    [rule('leading', 1), 30, false],
    [rule('trailing'), 30, false],
    [rule('linspace'), 21, false],
    // fixed_large where the last timestep is 0 (diffusers adds no noise there either)
    [rule('leading'), 10, true],
    [rule('linspace'), 30, true],
  ] as const) {
    const spy: Spy = { calls: [] };
    const xT = new Rng(5).normalArray(size);
    // the same standard normal draws, x_T first: ancestralSample draws x_T, then one z per step but the last
    const rec = recorder(9);
    const got = await ancestralSample(
      make(r, large ? 'fixedlarge' : 'fixedsmall'),
      gaussianOracle(betas, mu, s, 'eps', spy),
      shape,
      new Rng(0),
      {
        steps: K,
        clipDenoised: false,
        noiseFn: (n) => {
          if (rec.drawn.length > 0 || n !== size) return rec.noiseFn(n);
          rec.drawn.push(xT); // x_T, the first draw
          return xT;
        },
      },
    );
    const ts = diffusersTimesteps(K, r.spacing as 'leading', r.stepsOffset);
    assert.deepEqual(
      spy.calls.map((c) => c[0]),
      ts,
    );
    // diffusers adds noise on the last step too when its timestep is above 0 ('trailing', an offset): with
    // fixed_small its variance there is clamped 0 (1e-20); the last draw is diffusers' alone
    const noise = [...rec.drawn.slice(1), new Float32Array(size)];
    const want = diffusersDdpm(xT, ts, noise, large);
    const err = maxRel(got.data, want);
    assert.ok(err < 2e-5, `${r.spacing} offset ${r.stepsOffset} K=${K} large=${large}: rel err ${err}`);
  }
});

test('the default rule samples as before: ddpm and ddim visit the old timesteps and give the same numbers', async () => {
  const d = new GaussianDiffusion({
    betas,
    modelMeanType: 'eps',
    modelVarType: 'fixedlarge',
    lossType: 'mse',
  });
  assert.deepEqual(d.timestepRule, IMPROVED_DIFFUSION_RULE);
  for (const K of [10, 30, 100, 7]) {
    // ddpm: the chain respaced as before (spacedTimesteps "K"), bit for bit
    const run = async (dd: GaussianDiffusion, viaSampler: boolean) => {
      const spy: Spy = { calls: [] };
      const den = gaussianOracle(betas, mu, s, 'eps', spy);
      const x = viaSampler
        ? await samplerEntry('ddpm').plan(dd, den, shape, new Rng(4), { steps: K }).run()
        : await dd.pSampleLoop(den, shape, new Rng(4));
      return { x, calls: spy.calls.map((c) => c[0]) };
    };
    const now = await run(d, true);
    const before = await run(respacedDiffusion(d, spacedTimesteps(T, String(K))), false);
    assert.deepEqual(now.calls, before.calls);
    assert.ok(Buffer.from(now.x.data.buffer).equals(Buffer.from(before.x.data.buffer)), `ddpm ${K}`);
    // ddim: the stride rule, each step to the previous visited timestep, the last to abar = 1
    const stride = Array.from(spacedTimesteps(T, `ddim${K}`));
    const spy: Spy = { calls: [] };
    const xT: Tensor = { data: new Rng(8).normalArray(size), shape };
    const y = await ddimSample(d, gaussianOracle(betas, mu, s, 'eps', spy), shape, new Rng(0), {
      steps: K,
      xT,
      eta: 0.5,
      noiseFn: recorder(2).noiseFn,
    });
    assert.deepEqual(
      spy.calls.map((c) => c[0]),
      stride.slice().reverse(),
    );
    const explicit = await ddimSample(d, gaussianOracle(betas, mu, s), shape, new Rng(0), {
      timesteps: stride,
      xT,
      eta: 0.5,
      noiseFn: recorder(2).noiseFn,
    });
    assert.ok(Buffer.from(y.data.buffer).equals(Buffer.from(explicit.data.buffer)), `ddim ${K}`);
  }
});
