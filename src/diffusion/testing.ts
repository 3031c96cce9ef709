// Test support for the diffusion layer (not part of the public API): oracle Denoisers for data whose
// posterior is closed form, and float64 references computed independently of GaussianDiffusion's tables
// (explicit products, Bayes' rule on scalar Gaussians, numerical integration).

import type { Tensor } from '../util/tensor.js';
import { type Denoiser, type ModelMeanType, type ModelVarType, unreachable } from './types.js';

/** abar_t = prod_{s <= t} (1 - beta_s), each as an explicit product (O(T^2), on purpose). */
export function explicitAlphasCumprod(betas: ArrayLike<number>): Float64Array {
  const out = new Float64Array(betas.length);
  for (let t = 0; t < betas.length; t++) {
    let p = 1;
    for (let s = 0; s <= t; s++) p *= 1 - betas[s]!;
    out[t] = p;
  }
  return out;
}

/**
 * q(x_{t-1} | x_t, x_0) by Bayes' rule on scalars: prior x_{t-1} | x_0 ~ N(sqrt(abarPrev) x_0, 1 - abarPrev),
 * likelihood x_t | x_{t-1} ~ N(sqrt(1 - beta) x_{t-1}, beta). Returns the linear form mean = c0 x_0 + ct x_t.
 */
export function bayesPosterior(beta: number, abarPrev: number): { c0: number; ct: number; variance: number } {
  if (abarPrev === 1) return { c0: 1, ct: 0, variance: 0 }; // x_{t-1} = x_0 exactly
  const priorVar = 1 - abarPrev;
  const precision = 1 / priorVar + (1 - beta) / beta;
  const variance = 1 / precision;
  return {
    c0: (variance * Math.sqrt(abarPrev)) / priorVar,
    ct: (variance * Math.sqrt(1 - beta)) / beta,
    variance,
  };
}

/** For data N(mu, s^2): E[x_0 | x_t] = gain * x_t + offset (Bayes, x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps). */
export function gaussianPosteriorX0(abar: number, mu: number, s: number): { gain: number; offset: number } {
  const gain = (Math.sqrt(abar) * s * s) / (abar * s * s + 1 - abar);
  return { gain, offset: mu - gain * Math.sqrt(abar) * mu };
}

/** Output of the Bayes-optimal model for x_0 prediction xhat at (x_t, t), in the given parameterisation. */
function oracleOutput(
  meanType: ModelMeanType,
  x: number,
  xhat: number,
  t: number,
  betas: ArrayLike<number>,
  abar: Float64Array,
): number {
  const eps = () => (x - Math.sqrt(abar[t]!) * xhat) / Math.sqrt(1 - abar[t]!);
  switch (meanType) {
    case 'xstart':
      return xhat;
    case 'eps':
      return eps();
    case 'v': // Salimans & Ho 2022 sec. 4: v = sqrt(abar) eps - sqrt(1 - abar) x_0
      return Math.sqrt(abar[t]!) * eps() - Math.sqrt(1 - abar[t]!) * xhat;
    case 'xprev': {
      const post = bayesPosterior(betas[t]!, t === 0 ? 1 : abar[t - 1]!);
      return post.c0 * xhat + post.ct * x;
    }
    default:
      return unreachable(meanType, 'model mean type');
  }
}

/**
 * A 'learned-range' model made from a fixed-variance one: its output [N, C, H, W] followed by C channels of
 * variance values v(t) per sample (in [-1, 1]; Nichol & Dhariwal 2021 eq. 15): [N, 2C, H, W].
 */
export function withVarianceChannels(denoise: Denoiser, v: (t: number) => number): Denoiser {
  return async (x: Tensor, t: Int32Array): Promise<Tensor> => {
    const mean = await denoise(x, t);
    const per = x.data.length / t.length;
    const out = new Float32Array(2 * x.data.length);
    for (let n = 0; n < t.length; n++) {
      out.set(mean.data.subarray(n * per, (n + 1) * per), 2 * n * per);
      out.fill(v(t[n]!), (2 * n + 1) * per, (2 * n + 2) * per);
    }
    const [b, c, ...rest] = x.shape;
    return { data: out, shape: [b!, 2 * c!, ...rest] };
  };
}

export interface Spy {
  calls: Int32Array[];
}

/**
 * Oracle for data N(mu, s^2) iid per pixel: eps*(x_t) = sqrt(1 - abar)(x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar),
 * x_0* = E[x_0 | x_t], or the posterior mean at x_0*. Records the timesteps it receives in spy.calls.
 */
export function gaussianOracle(
  betas: ArrayLike<number>,
  mu: number,
  s: number,
  meanType: ModelMeanType = 'eps',
  spy?: Spy,
): Denoiser {
  const abar = explicitAlphasCumprod(betas);
  return async (x: Tensor, t: Int32Array): Promise<Tensor> => {
    spy?.calls.push(t.slice());
    const per = x.data.length / t.length;
    const out = new Float32Array(x.data.length);
    for (let n = 0; n < t.length; n++) {
      const { gain, offset } = gaussianPosteriorX0(abar[t[n]!]!, mu, s);
      for (let i = n * per; i < (n + 1) * per; i++) {
        const xi = x.data[i]!;
        out[i] = oracleOutput(meanType, xi, gain * xi + offset, t[n]!, betas, abar);
      }
    }
    return { data: out, shape: [...x.shape] };
  };
}

/** Oracle for data that is one known point x0 (shape of x): its x_0 prediction is x0 exactly. */
export function pointOracle(betas: ArrayLike<number>, x0: Tensor, meanType: ModelMeanType = 'eps'): Denoiser {
  const abar = explicitAlphasCumprod(betas);
  return async (x: Tensor, t: Int32Array): Promise<Tensor> => {
    const per = x.data.length / t.length;
    const out = new Float32Array(x.data.length);
    for (let n = 0; n < t.length; n++) {
      for (let i = n * per; i < (n + 1) * per; i++) {
        out[i] = oracleOutput(meanType, x.data[i]!, x0.data[i]!, t[n]!, betas, abar);
      }
    }
    return { data: out, shape: [...x.shape] };
  };
}

/** Composite Simpson's rule with n (even) intervals. */
export function simpson(f: (x: number) => number, a: number, b: number, n = 2000): number {
  const h = (b - a) / n;
  let acc = f(a) + f(b);
  for (let i = 1; i < n; i++) acc += (i % 2 === 1 ? 4 : 2) * f(a + i * h);
  return (acc * h) / 3;
}

export function gaussianPdf(x: number, mean: number, std: number): number {
  const z = (x - mean) / std;
  return Math.exp(-0.5 * z * z) / (std * Math.sqrt(2 * Math.PI));
}

/**
 * Standard normal CDF from the complementary error function (Numerical Recipes erfcc, Chebyshev fit with
 * fractional error < 1.2e-7): independent of the tanh approximation under test. Checked against Simpson
 * integration of the density in losses.test.ts.
 */
export function exactNormalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const erfcZ = t * Math.exp(-z * z + poly);
  return x >= 0 ? 1 - 0.5 * erfcZ : 0.5 * erfcZ;
}

export function meanStd(v: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i]!;
  m /= v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i]! - m) ** 2;
  return { mean: m, std: Math.sqrt(q / v.length) };
}

/** An affine map x -> a x + b of one pixel, and the Gaussian moments it produces. */
export interface Moments {
  mean: number;
  variance: number;
}

/**
 * Exact moments of ancestral sampling (Algorithm 2, no clipping) for N(mu, s^2) data with the Bayes-optimal
 * model, over a chain with cumulative alphas `abars` (ascending inner steps), started from N(m0, v0).
 */
export function ancestralMoments(
  abars: ArrayLike<number>,
  varType: ModelVarType,
  mu: number,
  s: number,
  start: Moments = { mean: 0, variance: 1 },
  learnedFrac = 0.5,
): Moments {
  // 'learned-range' with a constant output v: sigma^2 = beta^frac betaTilde^(1 - frac), frac = (v + 1) / 2
  const sigma2Of = (beta: number, postVar: number): number => {
    switch (varType) {
      case 'fixedlarge':
        return beta;
      case 'fixedsmall':
        return postVar;
      case 'learned-range':
        return beta ** learnedFrac * postVar ** (1 - learnedFrac);
      default:
        return unreachable(varType, 'model variance type');
    }
  };
  let { mean, variance } = start;
  for (let k = abars.length - 1; k >= 0; k--) {
    const ab = abars[k]!;
    const abp = k > 0 ? abars[k - 1]! : 1;
    const beta = 1 - ab / abp;
    const post = bayesPosterior(beta, abp);
    const { gain, offset } = gaussianPosteriorX0(ab, mu, s);
    const A = post.c0 * gain + post.ct;
    const B = post.c0 * offset;
    const sigma2 = k === 0 ? 0 : sigma2Of(beta, post.variance);
    mean = A * mean + B;
    variance = A * A * variance + sigma2;
  }
  return { mean, variance };
}

/**
 * One DDIM move (Song et al. eq. 12) from level abar to abarTo for N(mu, s^2) data with the Bayes-optimal model,
 * as x' = a x + b + sqrt(noiseVar) z, with sigma = eta sqrt((1 - abarTo) / (1 - abar)) sqrt(1 - abar / abarTo).
 */
export function ddimAffine(
  abar: number,
  abarTo: number,
  mu: number,
  s: number,
  eta = 0,
): { a: number; b: number; noiseVar: number } {
  const { gain, offset } = gaussianPosteriorX0(abar, mu, s);
  const sigma2 = abarTo > abar ? eta * eta * ((1 - abarTo) / (1 - abar)) * (1 - abar / abarTo) : 0;
  // eps = (x - sqrt(abar) xhat) / sqrt(1 - abar); x' = sqrt(abarTo) xhat + sqrt(1 - abarTo - sigma^2) eps
  const p = Math.sqrt(abarTo);
  const q = Math.sqrt(1 - abarTo - sigma2) / Math.sqrt(1 - abar);
  return {
    a: p * gain + q * (1 - Math.sqrt(abar) * gain),
    b: p * offset - q * Math.sqrt(abar) * offset,
    noiseVar: sigma2,
  };
}

/** One component of a Gaussian mixture: weight, mean, standard deviation. */
export interface MixtureComponent {
  readonly w: number;
  readonly mu: number;
  readonly s: number;
}

/**
 * E[x_0 | x_t] for data sum_k w_k N(mu_k, s_k^2) (x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps), by Bayes over the
 * components: responsibilities from x_t ~ N(sqrt(abar) mu_k, abar s_k^2 + 1 - abar), then each component's
 * gaussianPosteriorX0. In float64.
 */
export function mixturePosteriorX0(abar: number, comps: readonly MixtureComponent[], x: number): number {
  const logp = comps.map((c) => {
    const v = abar * c.s * c.s + 1 - abar;
    return Math.log(c.w) - 0.5 * Math.log(v) - (x - Math.sqrt(abar) * c.mu) ** 2 / (2 * v);
  });
  const top = Math.max(...logp);
  let [num, den] = [0, 0];
  comps.forEach((c, k) => {
    const r = Math.exp(logp[k]! - top);
    const { gain, offset } = gaussianPosteriorX0(abar, c.mu, c.s);
    num += r * (gain * x + offset);
    den += r;
  });
  return num / den;
}

/** Oracle for iid pixels from a Gaussian mixture: the Bayes-optimal output in the given parameterisation. */
export function mixtureOracle(
  betas: ArrayLike<number>,
  comps: readonly MixtureComponent[],
  meanType: ModelMeanType = 'eps',
): Denoiser {
  const abar = explicitAlphasCumprod(betas);
  return async (x: Tensor, t: Int32Array): Promise<Tensor> => {
    const per = x.data.length / t.length;
    const out = new Float32Array(x.data.length);
    for (let n = 0; n < t.length; n++) {
      for (let i = n * per; i < (n + 1) * per; i++) {
        const xi = x.data[i]!;
        out[i] = oracleOutput(meanType, xi, mixturePosteriorX0(abar[t[n]!]!, comps, xi), t[n]!, betas, abar);
      }
    }
    return { data: out, shape: [...x.shape] };
  };
}

/**
 * The probability-flow ODE for N(mu, s^2) data solved exactly, as x_to = a x_from + b on x_t (the network's
 * input, x_t = sqrt(abar) (x_0 + sigma eps), sigma^2 = (1 - abar) / abar): along the ODE,
 * x_t / sqrt(abar) - mu grows as sqrt(s^2 + sigma^2) (Karras et al. 2022 eq. 3 with D = mu + s^2 (y - mu) /
 * (s^2 + sigma^2)). sigmaTo = 0 is the end point x_0.
 */
export function gaussianOdeMap(
  sigmaFrom: number,
  sigmaTo: number,
  mu: number,
  s: number,
): { a: number; b: number } {
  const alphaFrom = 1 / Math.sqrt(1 + sigmaFrom * sigmaFrom);
  const alphaTo = 1 / Math.sqrt(1 + sigmaTo * sigmaTo);
  const g = Math.sqrt((s * s + sigmaTo * sigmaTo) / (s * s + sigmaFrom * sigmaFrom));
  // y' = mu + g (x / alphaFrom - mu), x' = alphaTo y'
  return { a: (alphaTo * g) / alphaFrom, b: alphaTo * mu * (1 - g) };
}
