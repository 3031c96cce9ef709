// Timestep samplers of training (Nichol & Dhariwal 2021, "Improved DDPM", sec. 3.3, eq. 18): 'uniform' is
// Algorithm 1's t ~ Uniform({1..T}); 'loss-second-moment' is importance sampling for the bound L_vlb,
// p_t ∝ sqrt(E[L_t^2]) with E[L_t^2] over the last 10 losses seen at t (improved-diffusion's
// LossSecondMomentResampler, resample.py): uniform until every t has 10, then p mixed with the uniform
// distribution by 0.001 (p = (1 - 0.001) p + 0.001 / T), and each sample's loss weighted by 1 / (T p_t) so the
// batch mean stays an unbiased estimate of the uniform average. State (the history) is JSON for checkpoints.

import { unreachable } from '../diffusion/types.js';
import { isJsonObject } from '../util/jsonCheck.js';
import type { Rng } from '../util/rng.js';

export type TimestepSamplerKind = 'uniform' | 'loss-second-moment';

export const TIMESTEP_SAMPLERS: readonly TimestepSamplerKind[] = ['uniform', 'loss-second-moment'];

/** improved-diffusion's defaults: losses kept per t, and the uniform share of the distribution. */
export const HISTORY_PER_TERM = 10;
export const UNIFORM_PROB = 0.001;

export interface TimestepDraw {
  /** Timesteps 0..T-1 [B]. */
  readonly t: Int32Array;
  /** Importance weights 1 / (T p_t) [B]; null where sampling is uniform (every weight 1). */
  readonly weights: Float64Array | null;
}

/** The JSON state of a 'loss-second-moment' sampler: the last losses per t (oldest first) and their counts. */
export interface LossHistoryState {
  readonly history: number[];
  readonly counts: number[];
}

export interface TimestepSampler {
  readonly kind: TimestepSamplerKind;
  /** B timesteps and their weights, drawn from rng. */
  sample(batch: number, rng: Rng): TimestepDraw;
  /** The per-sample losses (unweighted) at their timesteps. */
  update(t: Int32Array, losses: ArrayLike<number>): void;
  /** p_t over 0..T-1 (float64). */
  probabilities(): Float64Array;
  /** The state to checkpoint (null: none). */
  getState(): LossHistoryState | null;
  setState(s: unknown): void;
}

export function createTimestepSampler(kind: TimestepSamplerKind, T: number): TimestepSampler {
  switch (kind) {
    case 'uniform':
      return {
        kind,
        // t ~ Uniform({1..T}) (Algorithm 1): one rng.int per sample, as the trainer always drew them
        sample: (batch, rng) => ({ t: Int32Array.from({ length: batch }, () => rng.int(T)), weights: null }),
        update: () => {},
        probabilities: () => new Float64Array(T).fill(1 / T),
        getState: () => null,
        setState: () => {},
      };
    case 'loss-second-moment':
      return new LossSecondMomentSampler(T);
    default:
      return unreachable(kind, 'timestep sampler');
  }
}

class LossSecondMomentSampler implements TimestepSampler {
  readonly kind = 'loss-second-moment' as const;
  private history: Float64Array; // [T, HISTORY_PER_TERM]
  private counts: Int32Array; // [T]

  constructor(private readonly T: number) {
    this.history = new Float64Array(T * HISTORY_PER_TERM);
    this.counts = new Int32Array(T);
  }

  private warmedUp(): boolean {
    return this.counts.every((c) => c === HISTORY_PER_TERM);
  }

  probabilities(): Float64Array {
    const T = this.T;
    if (!this.warmedUp()) return new Float64Array(T).fill(1 / T);
    const w = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      let sq = 0;
      for (let k = 0; k < HISTORY_PER_TERM; k++) sq += this.history[t * HISTORY_PER_TERM + k]! ** 2;
      w[t] = Math.sqrt(sq / HISTORY_PER_TERM); // sqrt(E[L_t^2]) (eq. 18)
    }
    const sum = w.reduce((a, b) => a + b, 0);
    return w.map((v) => (v / sum) * (1 - UNIFORM_PROB) + UNIFORM_PROB / T);
  }

  sample(batch: number, rng: Rng): TimestepDraw {
    const T = this.T;
    if (!this.warmedUp()) {
      // p uniform: the same draws as 'uniform', weights 1 / (T / T) = 1
      return {
        t: Int32Array.from({ length: batch }, () => rng.int(T)),
        weights: new Float64Array(batch).fill(1),
      };
    }
    const p = this.probabilities();
    const cdf = new Float64Array(T);
    let acc = 0;
    for (let t = 0; t < T; t++) cdf[t] = acc += p[t]!;
    const t = new Int32Array(batch);
    const weights = new Float64Array(batch);
    for (let n = 0; n < batch; n++) {
      const u = rng.uniform() * acc;
      let [lo, hi] = [0, T - 1]; // the first index with cdf > u
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      t[n] = lo;
      weights[n] = 1 / (T * p[lo]!);
    }
    return { t, weights };
  }

  update(t: Int32Array, losses: ArrayLike<number>): void {
    const H = HISTORY_PER_TERM;
    t.forEach((ti, n) => {
      const loss = losses[n]!;
      const base = ti * H;
      if (this.counts[ti] === H) {
        this.history.copyWithin(base, base + 1, base + H); // shift out the oldest
        this.history[base + H - 1] = loss;
      } else {
        this.history[base + this.counts[ti]!] = loss;
        this.counts[ti]!++;
      }
    });
  }

  getState(): LossHistoryState {
    return { history: Array.from(this.history), counts: Array.from(this.counts) };
  }

  setState(s: unknown): void {
    const T = this.T;
    const ok =
      isJsonObject(s) &&
      Array.isArray(s.history) &&
      s.history.length === T * HISTORY_PER_TERM &&
      s.history.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
      Array.isArray(s.counts) &&
      s.counts.length === T &&
      s.counts.every((c) => Number.isInteger(c) && c >= 0 && c <= HISTORY_PER_TERM);
    if (!ok)
      throw new Error(
        `timestep sampler: the saved loss history is not ${T} x ${HISTORY_PER_TERM} finite losses with counts 0..${HISTORY_PER_TERM}; the run cannot resume from this checkpoint`,
      );
    this.history = Float64Array.from(s.history as number[]);
    this.counts = Int32Array.from(s.counts as number[]);
  }
}
