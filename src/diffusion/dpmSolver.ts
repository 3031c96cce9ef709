// DPM-Solver++ multistep (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models", section 4, Algorithm 2): the exponential integrator of the probability-flow ODE in
// its data-prediction form, x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda
// x0(lambda) dlambda with lambda = log(alpha / sigma) = -log(sigma_ode), and x0(lambda) replaced by its Taylor
// expansion at the last node, the derivatives estimated from the previous nodes' x_0 predictions (one
// network call per step). Order 2 ('2M', the paper's Algorithm 2) and order 3 ('3M', the multistep third
// order of the authors' code), each warming up with the lower orders on the first steps; the last step, to
// sigma = 0, is first order (lambda = infinity: x = D), as k-diffusion's sample_dpmpp_2m; below 15 steps the one
// before it is at most second order (diffusers' lower_order_final). The first-order
// update is DDIM (eta = 0) and Karras et al.'s Euler step.
// Schedules, timestep snapping and the starting noise: sigmaSchedule.ts. Every parameterisation: the x_0
// prediction comes from GaussianDiffusion.predictXstart.

import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { GaussianDiffusion } from './gaussianDiffusion.js';
import { combine, denoisedAt, type OdeSamplerOptions, startOf, vpOf } from './sigmaSchedule.js';
import type { Denoiser } from './types.js';

export interface DpmSolverOptions extends OdeSamplerOptions {
  /** 2 = DPM-Solver++(2M) (default), 3 = DPM-Solver++(3M). */
  readonly order?: 2 | 3;
  /**
   * Below LOWER_ORDER_FINAL_BELOW steps, take the second-to-last step at order 2 at most (diffusers'
   * lower_order_final, on by default there): a third-order step extrapolates the x_0 predictions of the
   * noisiest-looking nodes over the largest lambda ratio. Default true.
   */
  readonly lowerOrderFinal?: boolean;
}

/** diffusers' threshold for lower_order_final: sampling with fewer steps than this lowers the last orders. */
export const LOWER_ORDER_FINAL_BELOW = 15;

/**
 * Coefficients (float64) of one step from sigma_s to sigma_t: x_t = cx x_s + sum_j cm[j] m_j, with m_0 the
 * x_0 prediction at s and m_1, m_2 those at the nodes before, whose sigmas are prevSigmas (newest first).
 * The caller lowers the order while fewer predictions exist.
 */
export function dpmSolverCoefficients(
  sigmaS: number,
  sigmaT: number,
  prevSigmas: readonly number[],
  order: 1 | 2 | 3,
): { cx: number; cm: number[] } {
  const s = vpOf(sigmaS);
  const t = vpOf(sigmaT);
  if (sigmaT === 0) return { cx: 0, cm: [1] }; // lambda_t = infinity: x_0 = m_0
  const lam = (sigma: number) => -Math.log(sigma);
  const h = lam(sigmaT) - lam(sigmaS);
  const em = Math.expm1(-h);
  const cx = t.sigmaVp / s.sigmaVp;
  const phi1 = -t.alpha * em; // alpha_t (1 - e^-h): the weight of x_0 over the step
  // first order: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) m_0 (DDIM)
  if (order === 1) return { cx, cm: [phi1] };
  const r0 = (lam(sigmaS) - lam(prevSigmas[0]!)) / h;
  // Algorithm 2: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) ((1 + 1 / (2 r)) m_0 - 1 / (2 r) m_1)
  if (order === 2) return { cx, cm: [phi1 * (1 + 1 / (2 * r0)), -phi1 / (2 * r0)] };
  // Third order: x0(lambda) ~ m_0 + u f' + u^2 / 2 f'' (u = lambda - lambda_s); the step integrates
  //   alpha_t (1 - e^-h) m_0 + alpha_t (h - 1 + e^-h) f' + alpha_t (h^2 / 2 - h + 1 - e^-h) f''
  // with D1 = h f' + O(h^3) and D2 = h^2 f'' / 2 + O(h^3) from the divided differences of m_0, m_1, m_2.
  const r1 = (lam(prevSigmas[0]!) - lam(prevSigmas[1]!)) / h;
  const p1 = t.alpha * (1 + em / h); // times D1
  const p2 = t.alpha * (1 - (2 * (h + em)) / (h * h)); // times D2 (= h^2 f'' / 2)
  // D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),
  // D2 = (D1_0 - D1_1) / (r0 + r1): as weights on (m0, m1, m2)
  const d10 = [1 / r0, -1 / r0, 0];
  const diff = [1 / r0, -1 / r0 - 1 / r1, 1 / r1];
  const d1 = d10.map((v, j) => v + (r0 / (r0 + r1)) * diff[j]!);
  const d2 = diff.map((v) => v / (r0 + r1));
  return { cx, cm: [0, 1, 2].map((j) => (j === 0 ? phi1 : 0) + p1 * d1[j]! + p2 * d2[j]!) };
}

/** DPM-Solver++(2M / 3M) samples of shape [N, C, H, W]; deterministic given x_T (one draw of noise). */
export async function dpmSolverSample(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  shape: readonly number[],
  rng: Rng,
  opts: DpmSolverOptions = {},
): Promise<Tensor> {
  const order = opts.order ?? 2;
  if (order !== 2 && order !== 3) throw new Error(`dpmSolverSample: order must be 2 or 3, got ${order}`);
  const noiseFn = opts.noiseFn ?? ((k: number) => rng.normalArray(k));
  const { schedule, x: xT } = startOf(diffusion, shape, noiseFn, opts, 'dpmSolverSample');
  const { timesteps, sigmas } = schedule;
  const K = timesteps.length;
  let x = xT;
  const history: { sigma: number; x0: Tensor }[] = []; // newest first
  for (let k = 0; k < K; k++) {
    const x0 = await denoisedAt(diffusion, denoise, x, timesteps[k]!, opts);
    history.unshift({ sigma: sigmas[k]!, x0 });
    history.length = Math.min(history.length, order);
    const cap = (opts.lowerOrderFinal ?? true) && K < LOWER_ORDER_FINAL_BELOW && k === K - 2 ? 2 : order;
    const o = Math.min(cap, history.length) as 1 | 2 | 3;
    const prev = history.slice(1).map((p) => p.sigma);
    const { cx, cm } = dpmSolverCoefficients(sigmas[k]!, sigmas[k + 1]!, prev, o);
    x = combine([[cx, x], ...cm.map((c, j) => [c, history[j]!.x0] as const)]);
    opts.onProgress?.({ step: k + 1, total: K });
  }
  return x;
}
