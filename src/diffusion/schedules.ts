// Beta schedules beta_1..beta_T of the forward process (paper section 2 and 4: linear 1e-4 .. 0.02).
// Float64 throughout. 'linear', 'quad', 'const' and 'jsd' follow the original code (get_beta_schedule),
// 'sigmoid' the DDIM code (Song et al. 2021), 'cosine' Nichol & Dhariwal 2021 eq. 17 with max beta 0.999.

import { type BetaScheduleKind, unreachable } from './types.js';

export interface BetaScheduleOptions {
  /** First beta (default 1e-4, the paper's). Ignored by 'cosine' and 'jsd'. */
  readonly betaStart?: number;
  /** Last beta (default 0.02, the paper's); the value of every beta for 'const'. Ignored by 'cosine' and 'jsd'. */
  readonly betaEnd?: number;
  /** Number of diffusion steps T (any integer >= 1). */
  readonly T: number;
}

/** numpy.linspace(start, stop, n) with endpoint: start + i * step, the last element exactly stop. */
export function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = n > 1 ? (stop - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  if (n > 1) out[n - 1] = stop;
  return out;
}

/** Nichol & Dhariwal's cosine alpha-bar: f(u) = cos((u + s) / (1 + s) * pi / 2)^2, u = t / T, s = 0.008. */
export function cosineAlphaBar(u: number, s = 0.008): number {
  return Math.cos((((u + s) / (1 + s)) * Math.PI) / 2) ** 2;
}

/** beta_i = min(1 - abar((i + 1) / T) / abar(i / T), maxBeta): betas whose cumulative product follows abar. */
export function betasForAlphaBar(T: number, alphaBar: (u: number) => number, maxBeta = 0.999): Float64Array {
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), maxBeta);
  return out;
}

export function getBetaSchedule(kind: BetaScheduleKind, opts: BetaScheduleOptions): Float64Array {
  const { T } = opts;
  const betaStart = opts.betaStart ?? 1e-4;
  const betaEnd = opts.betaEnd ?? 0.02;
  if (!Number.isInteger(T) || T < 1) throw new Error(`getBetaSchedule: T must be an integer >= 1, got ${T}`);
  const betas = scheduleBetas(kind, T, betaStart, betaEnd);
  for (let i = 0; i < T; i++) {
    const b = betas[i]!;
    if (!(b > 0 && b <= 1)) throw new Error(`getBetaSchedule(${kind}): beta[${i}] = ${b} is outside (0, 1]`);
  }
  return betas;
}

function scheduleBetas(kind: BetaScheduleKind, T: number, betaStart: number, betaEnd: number): Float64Array {
  switch (kind) {
    case 'linear':
      return linspace(betaStart, betaEnd, T);
    case 'quad': // linspace(sqrt(start), sqrt(end))^2
      return linspace(Math.sqrt(betaStart), Math.sqrt(betaEnd), T).map((r) => r * r);
    case 'const':
      return new Float64Array(T).fill(betaEnd);
    case 'jsd': // 1/T, 1/(T-1), ..., 1
      return linspace(T, 1, T).map((v) => 1 / v);
    case 'sigmoid': // sigmoid(linspace(-6, 6)) scaled to [start, end]
      return linspace(-6, 6, T).map((v) => (1 / (1 + Math.exp(-v))) * (betaEnd - betaStart) + betaStart);
    case 'cosine':
      return betasForAlphaBar(T, (u) => cosineAlphaBar(u));
    default:
      return unreachable(kind, 'beta schedule');
  }
}
