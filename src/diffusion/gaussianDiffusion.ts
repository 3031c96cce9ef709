// GaussianDiffusion: the forward process q and the reverse process p of DDPM (Ho et al. 2020, sections 2-3),
// as in the original code's GaussianDiffusion2. All coefficient tables are float64 (index t = 0..T-1 is the
// paper's t = 1..T); they meet float32 only when applied to a tensor.
// Covers: q(x_t | x_0) (eq. 4), the posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7), the three parameterisations
// of mu_theta (Table 2) and v-prediction (Salimans & Ho 2022, sec. 4), fixed variances (section 3.2) and the
// learned 'learned-range' variance (Nichol & Dhariwal 2021, sec. 3.1, eq. 15), one step of Algorithm 2 and
// the whole of Algorithm 2.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { affine, assertSameShape, batchOf, clipTo, fullT, gather, perSample, randomTensor } from './ops.js';
import {
  type Denoiser,
  type LossType,
  type ModelMeanType,
  type ModelVarType,
  type NoiseFn,
  type ProgressFn,
  type StepFn,
  type TimestepRule,
  IMPROVED_DIFFUSION_RULE,
  unreachable,
} from './types.js';

export interface GaussianDiffusionConfig {
  readonly betas: ArrayLike<number>;
  readonly modelMeanType: ModelMeanType;
  readonly modelVarType: ModelVarType;
  readonly lossType: LossType;
  /** Respacing: inner index -> timestep passed to the Denoiser (default: identity). See respace.ts. */
  readonly timestepMap?: ArrayLike<number>;
  /**
   * Where clipping is asked for, x_0 predictions are clipped to [-clipRange, clipRange]; 0 = never clipped
   * (diffusers' clip_sample false / clip_sample_range). Default 1, the paper's [-1, 1].
   */
  readonly clipRange?: number;
  /**
   * Which timesteps the samplers that skip steps (respaced Algorithm 2, DDIM) visit, and where DDIM's last
   * step goes (timesteps.ts). Default this project's own, 'improved-diffusion'.
   */
  readonly timestepRule?: TimestepRule;
}

/** A diagonal Gaussian with per-element mean, variance and log-variance, all shaped like x. */
export interface MeanVariance {
  readonly mean: Tensor;
  readonly variance: Tensor;
  readonly logVariance: Tensor;
}

export interface PMeanVariance extends MeanVariance {
  /** The model's x_0 prediction (clipped to [-1, 1] when clipDenoised). */
  readonly predXstart: Tensor;
  /** The Denoiser's mean output (eps, x_0, mu~ or v; for 'learned-range' its first C channels): shape of x. */
  readonly modelOutput: Tensor;
}

/** The two halves of a Denoiser output: the mean output and, for a learned variance, the variance values. */
export interface ModelOutputParts {
  /** eps, x_0, mu~ or v: shape of x. */
  readonly mean: Tensor;
  /** 'learned-range': v in [-1, 1] (the last C channels), shape of x; null for fixed variances. */
  readonly varValues: Tensor | null;
}

export interface PSampleResult {
  readonly sample: Tensor;
  readonly predXstart: Tensor;
}

export interface SampleLoopOptions {
  /** Clip x_0 predictions to [-1, 1] (default true, as the original sampler). */
  readonly clipDenoised?: boolean;
  /** Starting point x_{startT}; default standard normal noise (x_T of Algorithm 2). */
  readonly xStart?: Tensor;
  /** First timestep index of the loop (default T - 1); used to decode from an intermediate x_t. */
  readonly startT?: number;
  /** Noise source (default rng.normalArray). */
  readonly noiseFn?: NoiseFn;
  readonly onStep?: StepFn;
  readonly onProgress?: ProgressFn;
}

/** How a parameterisation turns the network output into x_0 and mu, and what L_simple regresses on. */
interface MeanParameterisation {
  /** x_0 implied by the network output (before clipping). */
  xstart(d: GaussianDiffusion, xt: Tensor, t: Int32Array, out: Tensor): Tensor;
  /** mu_theta(x_t, t) given the raw output and the (clipped) x_0 prediction. */
  mean(d: GaussianDiffusion, xt: Tensor, t: Int32Array, out: Tensor, predXstart: Tensor): Tensor;
  /** Regression target of the 'mse' loss. */
  target(d: GaussianDiffusion, x0: Tensor, xt: Tensor, t: Int32Array, noise: Tensor): Tensor;
  /** Without clipping, mu_theta = a out + b x_t: the coefficients at inner timestep t (float64). */
  meanAffine(d: GaussianDiffusion, t: number): { a: number; b: number };
}

function meanParameterisation(kind: ModelMeanType): MeanParameterisation {
  const posteriorMean = (d: GaussianDiffusion, xt: Tensor, t: Int32Array, _o: Tensor, x0: Tensor) =>
    d.qPosteriorMeanVariance(x0, xt, t).mean;
  switch (kind) {
    case 'eps': // eq. 11: mu = posterior mean of x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
      return {
        xstart: (d, xt, t, out) => d.predictXstartFromEps(xt, t, out),
        mean: posteriorMean,
        target: (_d, _x0, _xt, _t, noise) => noise,
        meanAffine: (d, t) => {
          const c1 = d.posteriorMeanCoef1[t]!;
          return {
            a: -c1 * d.sqrtRecipm1AlphasCumprod[t]!,
            b: c1 * d.sqrtRecipAlphasCumprod[t]! + d.posteriorMeanCoef2[t]!,
          };
        },
      };
    case 'xstart':
      return {
        xstart: (_d, _xt, _t, out) => out,
        mean: posteriorMean,
        target: (_d, x0) => x0,
        meanAffine: (d, t) => ({ a: d.posteriorMeanCoef1[t]!, b: d.posteriorMeanCoef2[t]! }),
      };
    case 'xprev': // the output is mu itself; clipping only affects the x_0 prediction
      return {
        xstart: (d, xt, t, out) => d.predictXstartFromXprev(xt, t, out),
        mean: (_d, _xt, _t, out) => out,
        target: (d, x0, xt, t) => d.qPosteriorMeanVariance(x0, xt, t).mean,
        meanAffine: () => ({ a: 1, b: 0 }),
      };
    case 'v': // Salimans & Ho 2022 sec. 4: x_0 = sqrt(abar) x_t - sqrt(1 - abar) v, then the posterior mean
      return {
        xstart: (d, xt, t, out) => d.predictXstartFromV(xt, t, out),
        mean: posteriorMean,
        target: (d, x0, _xt, t, noise) => d.vFromEpsXstart(x0, t, noise),
        meanAffine: (d, t) => {
          const c1 = d.posteriorMeanCoef1[t]!;
          return {
            a: -c1 * d.sqrtOneMinusAlphasCumprod[t]!,
            b: c1 * d.sqrtAlphasCumprod[t]! + d.posteriorMeanCoef2[t]!,
          };
        },
      };
    default:
      return unreachable(kind, 'model mean type');
  }
}

/**
 * sigma_t^2 by variance type: the tables of the fixed variances (fixedlarge: variance beta_t, log-variance
 * log([b~_1, b_2, ..])), or for 'learned-range' no table (NaN: the variance comes from the network output,
 * see learnedLogVariance) and a network output of twice the image channels.
 */
function varianceParameterisation(
  kind: ModelVarType,
  betas: Float64Array,
  posteriorVariance: Float64Array,
  posteriorLogVarianceClipped: Float64Array,
  firstPosteriorVariance: number,
): { variance: Float64Array; logVariance: Float64Array; learned: boolean } {
  switch (kind) {
    case 'fixedlarge': {
      const logVariance = betas.map((b) => Math.log(b));
      logVariance[0] = Math.log(firstPosteriorVariance); // better decoder likelihood, as the original
      return { variance: betas, logVariance, learned: false };
    }
    case 'fixedsmall':
      return { variance: posteriorVariance, logVariance: posteriorLogVarianceClipped, learned: false };
    case 'learned-range': {
      const none = new Float64Array(betas.length).fill(Number.NaN);
      return { variance: none, logVariance: none, learned: true };
    }
    default:
      return unreachable(kind, 'model variance type');
  }
}

export class GaussianDiffusion {
  readonly numTimesteps: number;
  readonly modelMeanType: ModelMeanType;
  readonly modelVarType: ModelVarType;
  readonly lossType: LossType;
  /** Inner index -> Denoiser timestep. */
  readonly timestepMap: Int32Array;
  /** x_0 predictions are clipped to [-clipRange, clipRange] where asked; 0 = never. */
  readonly clipRange: number;
  /** The inference-timestep rule of the samplers that skip steps (timesteps.ts). */
  readonly timestepRule: TimestepRule;

  readonly betas: Float64Array;
  readonly alphas: Float64Array;
  readonly alphasCumprod: Float64Array; // abar_t = prod_{s<=t} alpha_s (eq. 4)
  readonly alphasCumprodPrev: Float64Array; // abar_{t-1}, with abar_{-1} = 1
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  readonly logOneMinusAlphasCumprod: Float64Array;
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  readonly posteriorVariance: Float64Array; // betaTilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (eq. 7)
  readonly posteriorLogVarianceClipped: Float64Array; // log betaTilde_t with t = 0 replaced by t = 1
  readonly posteriorMeanCoef1: Float64Array; // sqrt(abar_{t-1}) beta_t / (1 - abar_t) (eq. 7)
  readonly posteriorMeanCoef2: Float64Array; // sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) (eq. 7)
  /** sigma_t^2 of p(x_{t-1} | x_t) and its log, chosen by modelVarType (NaN for 'learned-range'). */
  readonly modelVariance: Float64Array;
  readonly modelLogVariance: Float64Array;
  /** 'learned-range': the network outputs 2C channels, the last C interpolating the log-variance. */
  readonly learnedVariance: boolean;
  /** Ends of the learned log-variance (Nichol & Dhariwal eq. 15): log beta~_t (clipped at t = 0) and log beta_t. */
  readonly minLogVariance: Float64Array;
  readonly maxLogVariance: Float64Array;

  private readonly parameterisation: MeanParameterisation;

  constructor(cfg: GaussianDiffusionConfig) {
    const T = cfg.betas.length;
    if (T < 1) throw new Error('GaussianDiffusion: betas is empty');
    const betas = Float64Array.from(cfg.betas);
    betas.forEach((b, i) => {
      if (!(b > 0 && b <= 1)) throw new Error(`GaussianDiffusion: beta[${i}] = ${b} is outside (0, 1]`);
    });
    this.numTimesteps = T;
    this.modelMeanType = cfg.modelMeanType;
    this.modelVarType = cfg.modelVarType;
    this.lossType = cfg.lossType;
    this.clipRange = cfg.clipRange ?? 1;
    this.timestepRule = cfg.timestepRule ?? IMPROVED_DIFFUSION_RULE;
    if (!(this.clipRange >= 0)) throw new Error(`GaussianDiffusion: clipRange ${cfg.clipRange} must be >= 0`);
    this.parameterisation = meanParameterisation(cfg.modelMeanType);
    if (cfg.lossType !== 'mse' && cfg.lossType !== 'kl') unreachable(cfg.lossType, 'loss type');
    this.timestepMap = cfg.timestepMap
      ? Int32Array.from(cfg.timestepMap)
      : Int32Array.from(betas, (_, i) => i);
    if (this.timestepMap.length !== T) throw new Error('GaussianDiffusion: timestepMap must have T entries');

    this.betas = betas;
    this.alphas = betas.map((b) => 1 - b);
    this.alphasCumprod = new Float64Array(T);
    let acc = 1;
    for (let i = 0; i < T; i++) {
      acc *= this.alphas[i]!;
      this.alphasCumprod[i] = acc;
    }
    const abar = this.alphasCumprod;
    this.alphasCumprodPrev = Float64Array.from(abar, (_, i) => (i === 0 ? 1 : abar[i - 1]!));
    const abarPrev = this.alphasCumprodPrev;
    this.sqrtAlphasCumprod = abar.map(Math.sqrt);
    this.sqrtOneMinusAlphasCumprod = abar.map((a) => Math.sqrt(1 - a));
    this.logOneMinusAlphasCumprod = abar.map((a) => Math.log(1 - a));
    this.sqrtRecipAlphasCumprod = abar.map((a) => Math.sqrt(1 / a));
    this.sqrtRecipm1AlphasCumprod = abar.map((a) => Math.sqrt(1 / a - 1));
    this.posteriorVariance = betas.map((b, i) => (b * (1 - abarPrev[i]!)) / (1 - abar[i]!));
    // posteriorVariance[0] is 0; its log is clipped to the t = 1 value. With T = 1 there is no t = 1: use beta_0.
    const first = T > 1 ? this.posteriorVariance[1]! : betas[0]!;
    this.posteriorLogVarianceClipped = this.posteriorVariance.map((v, i) => Math.log(i === 0 ? first : v));
    this.posteriorMeanCoef1 = betas.map((b, i) => (b * Math.sqrt(abarPrev[i]!)) / (1 - abar[i]!));
    this.posteriorMeanCoef2 = betas.map(
      (_b, i) => ((1 - abarPrev[i]!) * Math.sqrt(this.alphas[i]!)) / (1 - abar[i]!),
    );
    const v = varianceParameterisation(
      cfg.modelVarType,
      betas,
      this.posteriorVariance,
      this.posteriorLogVarianceClipped,
      first,
    );
    this.modelVariance = v.variance;
    this.modelLogVariance = v.logVariance;
    this.learnedVariance = v.learned;
    this.minLogVariance = this.posteriorLogVarianceClipped;
    this.maxLogVariance = betas.map((b) => Math.log(b));
  }

  /**
   * The Denoiser output split into its mean output and (for 'learned-range') its variance values: the
   * output must have the shape of x, or [N, 2C, H, W] for a learned variance.
   */
  splitOutput(out: Tensor, x: Tensor): ModelOutputParts {
    const [n, c, ...rest] = x.shape;
    const want = [n!, 2 * c!, ...rest];
    if (!this.learnedVariance) {
      if (out.shape.join() === want.join())
        throw new Error(
          `Denoiser output: shape [${out.shape.join(', ')}] has twice the image channels, as a learned-variance model's, but the variance type is "${this.modelVarType}"; load it with the variance type "learned-range" (diffusers: variance_type "learned_range")`,
        );
      assertSameShape(out, x, 'Denoiser output');
      return { mean: out, varValues: null };
    }
    if (out.shape.join() !== want.join()) {
      throw new Error(
        `Denoiser output: shape [${out.shape.join(', ')}], but a 'learned-range' model outputs [${want.join(', ')}] (mean, then variance channels); check that the model was trained with a learned variance`,
      );
    }
    const per = x.data.length / n!;
    const mean = new Float32Array(x.data.length);
    const vv = new Float32Array(x.data.length);
    for (let s = 0; s < n!; s++) {
      mean.set(out.data.subarray(2 * s * per, (2 * s + 1) * per), s * per);
      vv.set(out.data.subarray((2 * s + 1) * per, (2 * s + 2) * per), s * per);
    }
    return { mean: { data: mean, shape: [...x.shape] }, varValues: { data: vv, shape: [...x.shape] } };
  }

  /**
   * Nichol & Dhariwal 2021 eq. 15: log sigma^2 = frac log beta_t + (1 - frac) log beta~_t, frac = (v + 1) / 2,
   * per element (v shaped like x), in float64 and rounded once.
   */
  learnedLogVariance(v: Tensor, t: Int32Array): Tensor {
    const per = perSample(v, t, this.numTimesteps, 'learnedLogVariance');
    const out = new Float32Array(v.data.length);
    for (let n = 0; n < t.length; n++) {
      const minLog = this.minLogVariance[t[n]!]!;
      const maxLog = this.maxLogVariance[t[n]!]!;
      for (let i = n * per; i < (n + 1) * per; i++) {
        const frac = (v.data[i]! + 1) / 2;
        out[i] = frac * maxLog + (1 - frac) * minLog;
      }
    }
    return { data: out, shape: [...v.shape] };
  }

  /** The timesteps the Denoiser receives for inner timesteps t. */
  modelTimesteps(t: Int32Array): Int32Array {
    return t.map((ti) => this.timestepMap[ti]!);
  }

  /** q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) (eq. 4). */
  qMeanVariance(x0: Tensor, t: Int32Array): MeanVariance {
    const T = this.numTimesteps;
    return {
      mean: affine(x0, t, T, this.sqrtAlphasCumprod), // [N, C, H, W]
      variance: gather(
        x0,
        t,
        T,
        this.alphasCumprod.map((a) => 1 - a),
      ),
      logVariance: gather(x0, t, T, this.logOneMinusAlphasCumprod),
    };
  }

  /** x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (eq. 4; t = 0 is one step of noise). */
  qSample(x0: Tensor, t: Int32Array, noise: Tensor): Tensor {
    return affine(x0, t, this.numTimesteps, this.sqrtAlphasCumprod, noise, this.sqrtOneMinusAlphasCumprod);
  }

  /** q(x_{t-1} | x_t, x_0) = N(mu~_t, betaTilde_t I) (eqs. 6-7); log-variance clipped at t = 0. */
  qPosteriorMeanVariance(x0: Tensor, xt: Tensor, t: Int32Array): MeanVariance {
    const T = this.numTimesteps;
    return {
      mean: affine(x0, t, T, this.posteriorMeanCoef1, xt, this.posteriorMeanCoef2), // [N, C, H, W]
      variance: gather(xt, t, T, this.posteriorVariance),
      logVariance: gather(xt, t, T, this.posteriorLogVarianceClipped),
    };
  }

  /** x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (eq. 4 solved for x_0). */
  predictXstartFromEps(xt: Tensor, t: Int32Array, eps: Tensor): Tensor {
    const minus = this.sqrtRecipm1AlphasCumprod.map((c) => -c);
    return affine(xt, t, this.numTimesteps, this.sqrtRecipAlphasCumprod, eps, minus);
  }

  /** x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v (Salimans & Ho 2022, sec. 4). */
  predictXstartFromV(xt: Tensor, t: Int32Array, v: Tensor): Tensor {
    const minus = this.sqrtOneMinusAlphasCumprod.map((c) => -c);
    return affine(xt, t, this.numTimesteps, this.sqrtAlphasCumprod, v, minus);
  }

  /** eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v (Salimans & Ho 2022, sec. 4). */
  predictEpsFromV(xt: Tensor, t: Int32Array, v: Tensor): Tensor {
    return affine(xt, t, this.numTimesteps, this.sqrtOneMinusAlphasCumprod, v, this.sqrtAlphasCumprod);
  }

  /** v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, sec. 4): the 'v' model's target. */
  vFromEpsXstart(x0: Tensor, t: Int32Array, eps: Tensor): Tensor {
    const minus = this.sqrtOneMinusAlphasCumprod.map((c) => -c);
    return affine(eps, t, this.numTimesteps, this.sqrtAlphasCumprod, x0, minus);
  }

  /** x_0 = (mu~ - coef2 x_t) / coef1 (eq. 7 solved for x_0). */
  predictXstartFromXprev(xt: Tensor, t: Int32Array, xprev: Tensor): Tensor {
    const c1 = this.posteriorMeanCoef1;
    const c2 = this.posteriorMeanCoef2;
    const recip = c1.map((c) => 1 / c);
    const ratio = c2.map((c, i) => -c / c1[i]!);
    return affine(xprev, t, this.numTimesteps, recip, xt, ratio);
  }

  /** eps = (x_t / sqrt(abar_t) - x_0) / sqrt(1 / abar_t - 1) (eq. 4 solved for eps; used by DDIM). */
  predictEpsFromXstart(xt: Tensor, t: Int32Array, x0: Tensor): Tensor {
    const a = this.sqrtRecipAlphasCumprod.map((c, i) => c / this.sqrtRecipm1AlphasCumprod[i]!);
    const b = this.sqrtRecipm1AlphasCumprod.map((c) => -1 / c);
    return affine(xt, t, this.numTimesteps, a, x0, b);
  }

  /**
   * Run the Denoiser (at the mapped timesteps) and turn its output into x_0 (clipped if asked). A learned
   * variance's channels are split off (varValues); samplers that need only x_0 ignore them.
   */
  async predictXstart(
    denoise: Denoiser,
    x: Tensor,
    t: Int32Array,
    clipDenoised: boolean,
  ): Promise<{ modelOutput: Tensor; varValues: Tensor | null; predXstart: Tensor }> {
    perSample(x, t, this.numTimesteps, 'predictXstart');
    const parts = this.splitOutput(await denoise(x, this.modelTimesteps(t)), x); // mean: [N, C, H, W]
    const raw = this.parameterisation.xstart(this, x, t, parts.mean);
    const clip = clipDenoised && this.clipRange > 0;
    return {
      modelOutput: parts.mean,
      varValues: parts.varValues,
      predXstart: clip ? clipTo(raw, this.clipRange) : raw,
    };
  }

  /** p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I) (eq. 1, section 3.2). */
  async pMeanVariance(
    denoise: Denoiser,
    x: Tensor,
    t: Int32Array,
    opts: { clipDenoised: boolean },
  ): Promise<PMeanVariance> {
    const { modelOutput, varValues, predXstart } = await this.predictXstart(denoise, x, t, opts.clipDenoised);
    const T = this.numTimesteps;
    const logVariance = varValues
      ? this.learnedLogVariance(varValues, t) // [N, C, H, W]
      : gather(x, t, T, this.modelLogVariance);
    return {
      mean: this.parameterisation.mean(this, x, t, modelOutput, predXstart), // [N, C, H, W]
      variance: varValues
        ? { data: logVariance.data.map(Math.exp), shape: [...x.shape] }
        : gather(x, t, T, this.modelVariance),
      logVariance,
      predXstart,
      modelOutput,
    };
  }

  /**
   * One step of Algorithm 2: x_{t-1} = mu_theta + sigma_t z. noise (z, shaped like x) may be null only
   * when every t is 0, where no noise is added.
   */
  async pSample(
    denoise: Denoiser,
    x: Tensor,
    t: Int32Array,
    opts: { clipDenoised: boolean; noise: Tensor | null },
  ): Promise<PSampleResult> {
    const out = await this.pMeanVariance(denoise, x, t, opts);
    const { noise } = opts;
    if (noise) assertSameShape(noise, x, 'pSample noise');
    else if (t.some((ti) => ti !== 0)) throw new Error('pSample: noise is required unless every t is 0');
    const per = x.data.length / t.length;
    const sample = new Float32Array(x.data.length);
    const learned = this.learnedVariance;
    for (let n = 0; n < t.length; n++) {
      if (t[n] === 0) {
        sample.set(out.mean.data.subarray(n * per, (n + 1) * per), n * per);
        continue;
      }
      // Fixed variances: sigma_t from the float64 table; learned: per element from the output.
      const sigma = Math.exp(0.5 * this.modelLogVariance[t[n]!]!);
      for (let i = n * per; i < (n + 1) * per; i++) {
        const sd = learned ? Math.exp(0.5 * out.logVariance.data[i]!) : sigma;
        sample[i] = out.mean.data[i]! + sd * noise!.data[i]!;
      }
    }
    return { sample: { data: sample, shape: [...x.shape] }, predXstart: out.predXstart };
  }

  /** Algorithm 2: x_T ~ N(0, I), then pSample for t = T-1 .. 0. Returns x_0. */
  async pSampleLoop(
    denoise: Denoiser,
    shape: readonly number[],
    rng: Rng,
    opts: SampleLoopOptions = {},
  ): Promise<Tensor> {
    const n = batchOf(shape);
    const noiseFn = opts.noiseFn ?? ((k: number) => rng.normalArray(k));
    const startT = opts.startT ?? this.numTimesteps - 1;
    if (!(Number.isInteger(startT) && startT >= 0 && startT < this.numTimesteps)) {
      throw new Error(`pSampleLoop: startT ${startT} is outside [0, ${this.numTimesteps})`);
    }
    let x = opts.xStart ?? randomTensor(shape, noiseFn); // x_{startT}: [N, C, H, W]
    if (opts.xStart && opts.xStart.shape.join() !== shape.join()) {
      throw new Error(`pSampleLoop: xStart has shape [${opts.xStart.shape}], expected [${shape}]`);
    }
    for (let i = startT; i >= 0; i--) {
      const t = fullT(n, i);
      const noise = i > 0 ? randomTensor(shape, noiseFn) : null;
      const step = await this.pSample(denoise, x, t, { clipDenoised: opts.clipDenoised ?? true, noise });
      opts.onStep?.({ t: i, modelT: this.timestepMap[i]!, xt: x, predXstart: step.predXstart });
      x = step.sample;
      opts.onProgress?.({ step: startT - i + 1, total: startT + 1 });
    }
    return x;
  }

  /** mu_theta(x_t, t) = a * output + b * x_t without clipping (every parameterisation is affine). */
  meanAffine(t: number): { a: number; b: number } {
    return this.parameterisation.meanAffine(this, t);
  }

  /** Target of the 'mse' loss (L_simple, eq. 14): eps, x_0 or the posterior mean, by parameterisation. */
  mseTarget(x0: Tensor, xt: Tensor, t: Int32Array, noise: Tensor): Tensor {
    return this.parameterisation.target(this, x0, xt, t, noise);
  }
}
