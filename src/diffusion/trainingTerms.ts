// The training loss of Algorithm 1 as data for a training graph (Ho et al. 2020, eqs. 5, 13, 14).
// Every term is a function of the network output `out` of a simple form, so the graph needs only
// per-sample numbers and a few per-pixel masks computed here in float64:
//   'mse' (L_simple, eq. 14): meanflat((out - target)^2), target eps / x_0 / mu~ by parameterisation.
//   'kl'  (L_{t-1} in bits/dim, the true bound's term, as the original's loss_type 'kl'): with fixed
//         variances mu_theta = a out + b x_t, so for t > 0 the KL of eq. 5 is
//         w meanflat((out - target)^2) + c with target = (mu~ - b x_t) / a, w = a^2 / (2 sigma^2 ln 2),
//         c = the variance-only part; for t = 0 it is the discretised decoder NLL of eq. 13 in
//         z = scale (out - target), the standardised distance of x_0 from mu_theta.
// The graph's per-sample loss is then
//   mseWeight meanflat(d^2) + offset + decoder.weight meanflat(-log(Phi_hi - Phi_lo + 1e-12)),
//   d = out - target, Phi_hi = high ? 1 : Phi(scale d + halfBin), Phi_lo = low ? 0 : Phi(scale d - halfBin),
// with Phi the original code's tanh approximation of the standard normal CDF.
//
// Learned variances ('learned-range', Nichol & Dhariwal 2021 sec. 3.1): the network's mean output m and
// variance values v (in [-1, 1]) give mu_theta = a m + b x_t and log sigma^2 = minLog + (v + 1)/2 (maxLog -
// minLog) (eq. 15), so the bound's term is, per pixel, with dv = m - vbTarget,
//   t > 0: KL = 0.5 (-1 + lvp - lvq + exp(lvq - lvp) + a^2 dv^2 exp(-lvp))       (eq. 5, Gaussian KL)
//   t = 0: the decoder NLL of eq. 13 in z = -a dv exp(-lvp / 2), half a bin exp(-lvp / 2) / 255,
// both in bits/dim through klWeight / decoderWeight (1/ln 2 at the active t, else 0). 'mse' is then
// L_hybrid = L_simple + lambda L_vlb (sec. 3.1, lambda = 0.001) with the VLB term seeing the mean output
// through a stop-gradient (the graph's business) and L_vlb estimated by T L_{t-1} (improved-diffusion's
// RESCALED_MSE: vb * T / 1000); 'kl' is L_{t-1} alone with gradients to both halves.

import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { assertSameShape, perSample } from './ops.js';
import { type LossType, unreachable } from './types.js';

/** The discretised-decoder term L_0 (eq. 13), active for the samples with t = 0. */
export interface DecoderTerms {
  /** 1/ln 2 where t = 0, else 0 [B]. */
  readonly weight: Float32Array;
  /** -a / sigma_1 [B] (0 where t > 0). */
  readonly scale: Float32Array;
  /** (1/255) / sigma_1: half a pixel bin in standard units [B]. */
  readonly halfBin: Float32Array;
  /** 1 where x_0 < -0.999 (the lowest bin extends to -infinity), else 0 [B, C, H, W]. */
  readonly low: Float32Array;
  /** 1 where x_0 > 0.999 (the highest bin extends to +infinity), else 0 [B, C, H, W]. */
  readonly high: Float32Array;
}

/** The bound's term with a learned variance ('learned-range'; see the file header). */
export interface LearnedVarianceTerms {
  /** Mean target of the bound's term: (mu~ - b x_t) / a, at t = 0 (x_0 - b x_t) / a [B, C, H, W]. */
  readonly target: Tensor;
  /** a of mu_theta = a m + b x_t [B]. */
  readonly meanScale: Float32Array;
  /** The ends of the log-variance (eq. 15): log beta~_t (clipped) and log beta_t [B]. */
  readonly minLog: Float32Array;
  readonly maxLog: Float32Array;
  /** log beta~_t (clipped), the posterior's log-variance [B]. */
  readonly posteriorLogVariance: Float32Array;
  /** weight / ln 2 where t > 0, else 0 [B]: the KL term in bits/dim. */
  readonly klWeight: Float32Array;
  /** weight / ln 2 where t = 0, else 0 [B]: the decoder NLL in bits/dim. */
  readonly decoderWeight: Float32Array;
  /**
   * 1 where t = 0, else 0 [B]: the decoder's z is computed only there (elsewhere its CDF difference could round
   * below 0 and its NaN would survive the zero weight).
   */
  readonly decoderMask: Float32Array;
  /** As DecoderTerms: the open edge bins [B, C, H, W]. */
  readonly low: Float32Array;
  readonly high: Float32Array;
}

export interface TrainingTerms {
  /** Regression target [B, C, H, W]. */
  readonly target: Tensor;
  /** Per-sample weight of meanflat((out - target)^2) [B]. */
  readonly mseWeight: Float32Array;
  /** Per-sample constant added to the loss [B] (the KL's variance terms). */
  readonly offset: Float32Array;
  /** null for 'mse' and for learned variances. */
  readonly decoder: DecoderTerms | null;
  /** The bound's term of a learned variance ('learned-range'), else null. */
  readonly learned: LearnedVarianceTerms | null;
}

/** lambda of L_hybrid = L_simple + lambda L_vlb (Nichol & Dhariwal 2021 sec. 3.1). */
export const HYBRID_LAMBDA = 0.001;

/** Weight of the sampled term L_{t-1} in L_hybrid: lambda T (L_vlb ~ T L_{t-1} for t uniform over T steps). */
export function hybridVlbWeight(T: number): number {
  return HYBRID_LAMBDA * T;
}

/** The loss terms at x_t = qSample(x0, t, noise), for the given loss type. */
export function trainingTerms(
  diffusion: GaussianDiffusion,
  lossType: LossType,
  x0: Tensor,
  xt: Tensor,
  t: Int32Array,
  noise: Tensor,
): TrainingTerms {
  assertSameShape(x0, xt, 'trainingTerms');
  const B = t.length;
  const learned = diffusion.learnedVariance;
  switch (lossType) {
    case 'mse':
      return {
        target: diffusion.mseTarget(x0, xt, t, noise),
        mseWeight: new Float32Array(B).fill(1),
        offset: new Float32Array(B),
        decoder: null,
        learned: learned ? learnedTerms(diffusion, x0, xt, t, hybridVlbWeight(diffusion.numTimesteps)) : null,
      };
    case 'kl': {
      if (!learned) return klTerms(diffusion, x0, xt, t);
      const terms = learnedTerms(diffusion, x0, xt, t, 1);
      return {
        target: terms.target,
        mseWeight: new Float32Array(B),
        offset: new Float32Array(B),
        decoder: null,
        learned: terms,
      };
    }
    default:
      return unreachable(lossType, 'loss type');
  }
}

/** The bound's term L_{t-1} of a learned variance, times `weight`, in bits/dim (see the file header). */
function learnedTerms(
  d: GaussianDiffusion,
  x0: Tensor,
  xt: Tensor,
  t: Int32Array,
  weight: number,
): LearnedVarianceTerms {
  const B = t.length;
  const per = perSample(xt, t, d.numTimesteps, 'trainingTerms');
  const n = x0.data.length;
  const out = {
    target: new Float32Array(n),
    meanScale: new Float32Array(B),
    minLog: new Float32Array(B),
    maxLog: new Float32Array(B),
    posteriorLogVariance: new Float32Array(B),
    klWeight: new Float32Array(B),
    decoderWeight: new Float32Array(B),
    decoderMask: new Float32Array(B),
    low: new Float32Array(n),
    high: new Float32Array(n),
  };
  for (let s = 0; s < B; s++) {
    const ti = t[s]!;
    const { a, b } = d.meanAffine(ti); // mu_theta = a m + b x_t
    const c1 = d.posteriorMeanCoef1[ti]!;
    const c2 = d.posteriorMeanCoef2[ti]!;
    for (let i = s * per; i < (s + 1) * per; i++) {
      const x = x0.data[i]!;
      const mu = ti === 0 ? x : c1 * x + c2 * xt.data[i]!; // t = 0: the decoder is centred on x_0
      out.target[i] = (mu - b * xt.data[i]!) / a;
      if (ti === 0) {
        out.low[i] = x < -0.999 ? 1 : 0;
        out.high[i] = x > 0.999 ? 1 : 0;
      }
    }
    out.meanScale[s] = a;
    out.minLog[s] = d.minLogVariance[ti]!;
    out.maxLog[s] = d.maxLogVariance[ti]!;
    out.posteriorLogVariance[s] = d.posteriorLogVarianceClipped[ti]!;
    if (ti === 0) {
      out.decoderWeight[s] = weight / Math.LN2;
      out.decoderMask[s] = 1;
    } else out.klWeight[s] = weight / Math.LN2;
  }
  return { ...out, target: { data: out.target, shape: [...x0.shape] } };
}

function klTerms(d: GaussianDiffusion, x0: Tensor, xt: Tensor, t: Int32Array): TrainingTerms {
  const B = t.length;
  const per = perSample(xt, t, d.numTimesteps, 'trainingTerms');
  const target = new Float32Array(x0.data.length);
  const mseWeight = new Float32Array(B);
  const offset = new Float32Array(B);
  const dec: DecoderTerms = {
    weight: new Float32Array(B),
    scale: new Float32Array(B),
    halfBin: new Float32Array(B),
    low: new Float32Array(x0.data.length),
    high: new Float32Array(x0.data.length),
  };
  for (let n = 0; n < B; n++) {
    const ti = t[n]!;
    const { a, b } = d.meanAffine(ti); // mu_theta = a out + b x_t
    const lvp = d.modelLogVariance[ti]!;
    const c1 = d.posteriorMeanCoef1[ti]!;
    const c2 = d.posteriorMeanCoef2[ti]!;
    for (let i = n * per; i < (n + 1) * per; i++) {
      const x = x0.data[i]!;
      const mu = ti === 0 ? x : c1 * x + c2 * xt.data[i]!; // t = 0: the decoder is centred on x_0
      target[i] = (mu - b * xt.data[i]!) / a;
      if (ti === 0) {
        dec.low[i] = x < -0.999 ? 1 : 0;
        dec.high[i] = x > 0.999 ? 1 : 0;
      }
    }
    if (ti === 0) {
      const invStd = Math.exp(-0.5 * lvp);
      dec.weight[n] = 1 / Math.LN2;
      dec.scale[n] = -a * invStd;
      dec.halfBin[n] = invStd / 255;
    } else {
      const lvq = d.posteriorLogVarianceClipped[ti]!;
      mseWeight[n] = (0.5 * a * a * Math.exp(-lvp)) / Math.LN2; // eq. 5 KL, mean part
      offset[n] = (0.5 * (-1 + lvp - lvq + Math.exp(lvq - lvp))) / Math.LN2; // variance part
    }
  }
  return { target: { data: target, shape: [...x0.shape] }, mseWeight, offset, decoder: dec, learned: null };
}

/**
 * The same terms with sample n's whole loss multiplied by w[n] (importance weights of the timesteps,
 * Nichol & Dhariwal 2021 sec. 3.3): every per-sample weight and constant is scaled, the targets are not.
 */
export function weightedTerms(terms: TrainingTerms, w: ArrayLike<number>): TrainingTerms {
  const scale = (a: Float32Array) => a.map((v, n) => v * w[n]!);
  const { decoder: dec, learned: l } = terms;
  return {
    target: terms.target,
    mseWeight: scale(terms.mseWeight),
    offset: scale(terms.offset),
    decoder: dec ? { ...dec, weight: scale(dec.weight) } : null,
    learned: l ? { ...l, klWeight: scale(l.klWeight), decoderWeight: scale(l.decoderWeight) } : null,
  };
}
