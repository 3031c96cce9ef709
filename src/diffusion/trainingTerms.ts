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

export interface TrainingTerms {
  /** Regression target [B, C, H, W]. */
  readonly target: Tensor;
  /** Per-sample weight of meanflat((out - target)^2) [B]. */
  readonly mseWeight: Float32Array;
  /** Per-sample constant added to the loss [B] (the KL's variance terms). */
  readonly offset: Float32Array;
  /** null for 'mse'. */
  readonly decoder: DecoderTerms | null;
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
  switch (lossType) {
    case 'mse':
      return {
        target: diffusion.mseTarget(x0, xt, t, noise),
        mseWeight: new Float32Array(B).fill(1),
        offset: new Float32Array(B),
        decoder: null,
      };
    case 'kl':
      return klTerms(diffusion, x0, xt, t);
    default:
      return unreachable(lossType, 'loss type');
  }
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
  return { target: { data: target, shape: [...x0.shape] }, mseWeight, offset, decoder: dec };
}
