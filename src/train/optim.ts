// The paper's optimisation recipe (Appendix B): Adam (lr 2e-4, eps 1e-8), linear warmup over 5000
// steps, gradient clipping to global norm 1.0, and an exponential moving average of the weights
// (decay 0.9999) used for sampling. All state is plain Float32Arrays so it saves bit-exactly. The two
// elementwise passes run as WebAssembly SIMD (simdKernels.ts), or with the native engine on its two threads
// (native/optim.cc, Engine.optimKernels), each bit-identical to the loops below.

import type { OptimKernels } from '../engine/engine.js';
import { type AdamCoefs, simdKernels } from './simdKernels.js';

export interface AdamConfig {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps of linear learning-rate warmup from 0 (0 = none). */
  readonly warmup: number;
  /** Clip the global gradient norm to this value (0 or Infinity = no clipping). */
  readonly gradClip: number;
}

export const PAPER_ADAM: AdamConfig = {
  lr: 2e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  warmup: 5000,
  gradClip: 1,
};

export interface AdamState {
  /** Updates applied so far. */
  step: number;
  readonly m: Map<string, Float32Array>;
  readonly v: Map<string, Float32Array>;
}

export function newAdamState(params: ReadonlyMap<string, Float32Array>): AdamState {
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [k, p] of params) {
    m.set(k, new Float32Array(p.length));
    v.set(k, new Float32Array(p.length));
  }
  return { step: 0, m, v };
}

/**
 * One tensor's sum of squares in float64: eight running sums over i = j (mod 8), added as ((s0 + s1) + (s2 +
 * s3)) + ((s4 + s5) + (s6 + s7)). A fixed order (the native binding's optimSumSquares adds the same way, so
 * the clipping factor does not depend on the engine), and eight chains of additions instead of one.
 */
export function sumOfSquares(g: Float32Array): number {
  let [s0, s1, s2, s3, s4, s5, s6, s7] = [0, 0, 0, 0, 0, 0, 0, 0];
  const n = g.length;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 += g[i]! * g[i]!;
    s1 += g[i + 1]! * g[i + 1]!;
    s2 += g[i + 2]! * g[i + 2]!;
    s3 += g[i + 3]! * g[i + 3]!;
    s4 += g[i + 4]! * g[i + 4]!;
    s5 += g[i + 5]! * g[i + 5]!;
    s6 += g[i + 6]! * g[i + 6]!;
    s7 += g[i + 7]! * g[i + 7]!;
  }
  const sums = [s0, s1, s2, s3, s4, s5, s6, s7];
  for (let j = 0; i < n; i++, j++) sums[j]! += g[i]! * g[i]!; // the tail: element i to sum i mod 8
  const [t0, t1, t2, t3, t4, t5, t6, t7] = sums;
  return t0! + t1! + (t2! + t3!) + (t4! + t5! + (t6! + t7!));
}

/** Global L2 norm of all gradients, accumulated in float64 (tensor by tensor, in the map's order). */
export function globalNorm(grads: ReadonlyMap<string, Float32Array>, kernels?: OptimKernels): number {
  return normOf([...grads.values()], kernels);
}

function normOf(gs: readonly Float32Array[], kernels?: OptimKernels): number {
  let s = 0;
  for (const x of kernels ? kernels.sumSquares(gs) : gs.map(sumOfSquares)) s += x;
  return Math.sqrt(s);
}

/** Learning rate at update number `step` (1-based) with linear warmup. */
export function learningRate(cfg: AdamConfig, step: number): number {
  return cfg.warmup > 0 ? cfg.lr * Math.min(step / cfg.warmup, 1) : cfg.lr;
}

export interface AdamStepResult {
  readonly gradNorm: number;
  readonly lr: number;
}

/**
 * One Adam update in place (tf.train.AdamOptimizer's form, as the original code). `kernels` (an engine's
 * OptimKernels) runs the passes over all tensors at once on native threads, with the same results.
 */
export function adamStep(
  cfg: AdamConfig,
  state: AdamState,
  params: ReadonlyMap<string, Float32Array>,
  grads: ReadonlyMap<string, Float32Array>,
  kernels?: OptimKernels,
): AdamStepResult {
  for (const [k, p] of params) {
    const g = grads.get(k);
    if (!g) throw new Error(`adam: no gradient for parameter ${k}`);
    if (g.length !== p.length)
      throw new Error(`adam: gradient of ${k} has ${g.length} values, not ${p.length}`);
  }
  const keys = [...params.keys()];
  const at = (m: ReadonlyMap<string, Float32Array>) => keys.map((k) => m.get(k)!);
  const gs = at(grads); // in the parameters' order
  const gradNorm = normOf(gs, kernels);
  if (!Number.isFinite(gradNorm)) {
    throw new Error(
      `adam: gradient norm is ${gradNorm} at step ${state.step + 1}; the loss diverged (lower --lr?)`,
    );
  }
  const clip = cfg.gradClip > 0 && gradNorm > cfg.gradClip ? cfg.gradClip / gradNorm : 1;
  state.step += 1;
  const t = state.step;
  const lr = learningRate(cfg, t);
  const { beta1: b1, beta2: b2, eps } = cfg;
  const alpha = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
  const coefs: AdamCoefs = { beta1: b1, beta2: b2, eps, alpha, clip };
  const [ps, ms, vs] = [at(params), at(state.m), at(state.v)];
  if (kernels) {
    kernels.adam(ps, gs, ms, vs, coefs);
    return { gradNorm, lr };
  }
  const simd = simdKernels();
  ps.forEach((p, i) => {
    if (simd) simd.adam(p, gs[i]!, ms[i]!, vs[i]!, coefs);
    else adamLoop(p, gs[i]!, ms[i]!, vs[i]!, coefs);
  });
  return { gradNorm, lr };
}

/** Adam's update of one tensor in place (Kingma & Ba, Algorithm 1, with the bias corrections in alpha). */
export function adamLoop(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: AdamCoefs,
): void {
  const { beta1: b1, beta2: b2, eps, alpha, clip } = c;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * clip;
    const mi = b1 * m[i]! + (1 - b1) * gi;
    const vi = b2 * v[i]! + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i]! - (alpha * m[i]!) / (Math.sqrt(v[i]!) + eps);
  }
}

/**
 * The EMA decay for update number `step` (1-based). With warmup it is min(decay, (1 + step) / (10 + step)),
 * TensorFlow's ExponentialMovingAverage with num_updates and diffusers' EMAModel default: the average
 * forgets the initialisation within the first hundred steps instead of holding decay^step of it (37% after
 * 10,000 steps at 0.9999). Without warmup it is decay, the original DDPM code's plain average.
 */
export function emaDecayAt(decay: number, step: number, warmup: boolean): number {
  return warmup ? Math.min(decay, (1 + step) / (10 + step)) : decay;
}

/** The share of the initial weights still in the EMA after `steps` updates: the product of the decays. */
export function emaInitShare(decay: number, steps: number, warmup: boolean): number {
  let share = 1;
  for (let s = 1; s <= steps && share > 0; s++) share *= emaDecayAt(decay, s, warmup);
  return share;
}

/** ema <- decay * ema + (1 - decay) * params, in place (`kernels`: an engine's native passes, same results). */
export function emaUpdate(
  ema: ReadonlyMap<string, Float32Array>,
  params: ReadonlyMap<string, Float32Array>,
  decay: number,
  kernels?: OptimKernels,
): void {
  if (kernels) {
    const keys = [...params.keys()];
    kernels.ema(
      keys.map((k) => ema.get(k)!),
      keys.map((k) => params.get(k)!),
      decay,
    );
    return;
  }
  const simd = simdKernels();
  for (const [k, p] of params) {
    const e = ema.get(k)!;
    if (simd) simd.ema(e, p, decay);
    else emaLoop(e, p, decay);
  }
}

/** e <- decay * e + (1 - decay) * p for one tensor, in place. */
export function emaLoop(e: Float32Array, p: Float32Array, decay: number): void {
  for (let i = 0; i < p.length; i++) e[i] = decay * e[i]! + (1 - decay) * p[i]!;
}

export function cloneParams(params: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...params].map(([k, v]) => [k, v.slice()]));
}
