// The variational bound in bits/dim (Ho et al. 2020, eq. 5 and section 3.3):
//   L = L_T + sum_{t>1} L_{t-1} + L_0,  L_T = KL(q(x_T | x_0) || N(0, I)),
//   L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),  L_0 = -log p(x_0 | x_1) (discretized decoder, eq. 13).
// Bits/dim = nats / (numDims * ln 2). Also the training losses: 'mse' (L_simple, eq. 14) and 'kl' (L_{t-1}).
//
// The 'kl' loss here is forward math only (float64 in TypeScript): training with it goes through
// trainingTerms.ts and the training graph, which tests check against trainingLosses below.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { discretizedGaussianLogLikelihood, normalKl } from './losses.js';
import { hybridVlbWeight } from './trainingTerms.js';
import { assertSameShape, fullT, meanFlat, meanSquaredDiff, perSample } from './ops.js';
import { type Denoiser, type ProgressFn, unreachable } from './types.js';

export interface VbTerms {
  /** Per sample: L_{t-1} in bits/dim (KL for t > 0, decoder NLL for t == 0). */
  readonly bpd: Float64Array;
  readonly predXstart: Tensor;
}

/** L_{t-1} per sample in bits/dim at the given x_t (the original's _vb_terms_bpd). */
export async function vbTermsBpd(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  x0: Tensor,
  xt: Tensor,
  t: Int32Array,
  opts: { clipDenoised?: boolean } = {},
): Promise<VbTerms> {
  assertSameShape(x0, xt, 'vbTermsBpd');
  const per = perSample(xt, t, diffusion.numTimesteps, 'vbTermsBpd');
  const q = diffusion.qPosteriorMeanVariance(x0, xt, t);
  const p = await diffusion.pMeanVariance(denoise, xt, t, { clipDenoised: opts.clipDenoised ?? true });
  const bpd = new Float64Array(t.length);
  for (let n = 0; n < t.length; n++) {
    const s = (a: Tensor) => a.data.subarray(n * per, (n + 1) * per);
    let nats: Float64Array;
    if (t[n] === 0) {
      const logScales = s(p.logVariance).map((v) => 0.5 * v);
      nats = discretizedGaussianLogLikelihood(s(x0), s(p.mean), logScales).map((v) => -v);
    } else {
      nats = normalKl(s(q.mean), s(q.logVariance), s(p.mean), s(p.logVariance));
    }
    bpd[n] = meanFlat(nats, 1)[0]! / Math.LN2;
  }
  return { bpd, predXstart: p.predXstart };
}

/** L_T per sample in bits/dim: KL(q(x_T | x_0) || N(0, I)). */
export function priorBpd(diffusion: GaussianDiffusion, x0: Tensor): Float64Array {
  const n = x0.shape[0]!;
  const q = diffusion.qMeanVariance(x0, fullT(n, diffusion.numTimesteps - 1));
  const kl = normalKl(q.mean.data, q.logVariance.data, 0, 0);
  return meanFlat(kl, n).map((v) => v / Math.LN2);
}

export interface BpdResult {
  /** Per sample: the whole bound L in bits/dim (prior + every term). */
  readonly totalBpd: Float64Array;
  /** Per sample: L_T in bits/dim. */
  readonly priorBpd: Float64Array;
  /** termsBpd[t][n]: L_{t-1} of sample n in bits/dim (t = 0 is the decoder term L_0). */
  readonly termsBpd: Float64Array[];
  /** mseXstart[t][n]: mean squared error of the x_0 prediction at step t. */
  readonly mseXstart: Float64Array[];
  /** mseEps[t][n]: mean squared error of the eps implied by the x_0 prediction. */
  readonly mseEps: Float64Array[];
}

/**
 * The whole bound (the original's calc_bpd_loop): for t = T-1 .. 0, x_t = qSample(x_0, t, fresh noise),
 * then L_{t-1} at that x_t; plus L_T. One Denoiser call per step (T calls for a batch).
 */
export async function calcBpdLoop(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  x0: Tensor,
  rng: Rng,
  opts: { clipDenoised?: boolean; onProgress?: ProgressFn } = {},
): Promise<BpdResult> {
  const T = diffusion.numTimesteps;
  const n = x0.shape[0]!;
  const termsBpd: Float64Array[] = new Array(T);
  const mseXstart: Float64Array[] = new Array(T);
  const mseEps: Float64Array[] = new Array(T);
  for (let i = T - 1; i >= 0; i--) {
    const t = fullT(n, i);
    const noise: Tensor = { data: rng.normalArray(x0.data.length), shape: [...x0.shape] };
    const xt = diffusion.qSample(x0, t, noise); // [N, C, H, W]
    const terms = await vbTermsBpd(diffusion, denoise, x0, xt, t, {
      clipDenoised: opts.clipDenoised ?? true,
    });
    termsBpd[i] = terms.bpd;
    mseXstart[i] = meanSquaredDiff(terms.predXstart, x0);
    mseEps[i] = meanSquaredDiff(diffusion.predictEpsFromXstart(xt, t, terms.predXstart), noise);
    opts.onProgress?.({ step: T - i, total: T });
  }
  const prior = priorBpd(diffusion, x0);
  const totalBpd = prior.map((p, s) => termsBpd.reduce((acc, term) => acc + term[s]!, p));
  return { totalBpd, priorBpd: prior, termsBpd, mseXstart, mseEps };
}

export interface TrainingLoss {
  /** Per sample loss: mean squared error ('mse') or L_{t-1} in bits/dim ('kl'). */
  readonly losses: Float64Array;
  readonly xt: Tensor;
}

/**
 * The training loss of Algorithm 1 at given t and noise (x_t = qSample(x_0, t, noise)), by lossType:
 * 'mse' = meanflat((target - output)^2) with the target from GaussianDiffusion.mseTarget; with a learned
 * variance L_hybrid = that + lambda T L_{t-1} (Nichol & Dhariwal 2021 sec. 3.1, trainingTerms.ts);
 * 'kl' = L_{t-1} in bits/dim without clipping (as the original). Forward value only, no gradient.
 */
export async function trainingLosses(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  x0: Tensor,
  t: Int32Array,
  noise: Tensor,
): Promise<TrainingLoss> {
  const xt = diffusion.qSample(x0, t, noise); // [N, C, H, W]
  const kind = diffusion.lossType;
  switch (kind) {
    case 'mse': {
      const output = await denoise(xt, diffusion.modelTimesteps(t));
      const { mean } = diffusion.splitOutput(output, xt);
      const losses = meanSquaredDiff(mean, diffusion.mseTarget(x0, xt, t, noise));
      if (diffusion.learnedVariance) {
        const frozen: Denoiser = async () => output; // the same output: L_vlb's value at this x_t
        const vb = await vbTermsBpd(diffusion, frozen, x0, xt, t, { clipDenoised: false });
        const w = hybridVlbWeight(diffusion.numTimesteps);
        for (let n = 0; n < losses.length; n++) losses[n]! += w * vb.bpd[n]!;
      }
      return { losses, xt };
    }
    case 'kl':
      return { losses: (await vbTermsBpd(diffusion, denoise, x0, xt, t, { clipDenoised: false })).bpd, xt };
    default:
      return unreachable(kind, 'loss type');
  }
}
