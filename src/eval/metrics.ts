// The sample-quality metrics of the evaluation layer, in float64 from float32 feature vectors (or logits):
// - FID, the Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, "GANs
//   trained by a two time-scale update rule converge to a local Nash equilibrium"), with the streaming
//   statistics it needs (FeatureStats: count, sum, sum of outer products, mergeable across shards);
// - IS, the Inception Score (Salimans et al. 2016), exp E_x KL(p(y|x) || p(y)), over contiguous splits;
// - KID, the Kernel Inception Distance (Binkowski et al. 2018), the unbiased MMD^2 with the cubic polynomial
//   kernel over random subsets, as clean-fid and torch-fidelity compute it;
// - precision and recall of Kynkaanniemi et al. 2019 (k-nearest-neighbour hyperspheres, k = 3).
// Browser-safe; the dense linear algebra is in linalg.ts.

import { Rng } from '../util/rng.js';
import {
  mirrorLower,
  multiplyNT,
  multiplyNTSymmetric,
  symmetricEigen,
  symmetricEigenvalues,
} from './linalg.js';

/** An argument a metric cannot use (wrong size, not finite, too few samples), naming the metric. */
export class MetricInputError extends Error {
  constructor(metric: string, message: string) {
    super(`${metric}: ${message}`);
    this.name = 'MetricInputError';
  }
}

export interface MeanStd {
  readonly mean: number;
  readonly std: number;
}

/** A Gaussian fitted to features: mean (d) and covariance (d x d, row-major). */
export interface Moments {
  readonly mu: Float64Array;
  readonly sigma: Float64Array;
}

function requireLength(metric: string, what: string, a: ArrayLike<number>, want: number, hint: string): void {
  if (a.length !== want)
    throw new MetricInputError(metric, `${what} has ${a.length} values, expected ${hint}`);
}

function requireFinite(metric: string, what: string, a: ArrayLike<number>, width: number): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]!)) {
      throw new MetricInputError(
        metric,
        `${what} has a non-finite value (${a[i]}) in row ${Math.floor(i / width)}, column ${i % width}`,
      );
    }
  }
}

function requireCount(metric: string, what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new MetricInputError(metric, `${what} must be a count, got ${n}`);
}

// ---- streaming statistics ---------------------------------------------------------------------------------

/** Rows per block of a batch: the block's transpose (d x 256 doubles, 4 MB at d = 2048) is one gemm operand. */
const STATS_ROWS = 256;

/**
 * Streaming feature statistics for the FID: count, sum and sum of outer products x x^T, in float64.
 *
 * Exactness: every product of two float32 features is exact in float64 (24 + 24 significand bits), so the
 * only rounding is in the additions. Splitting the rows into batches or shards and merging therefore changes
 * the result only by the order of the additions: every way of adding is within (256 rows per block + the
 * number of blocks and shards) * 2^-53 * sum over rows of |x_i x_j| of the exact sum (the worst-case bound
 * of recursive summation; a few ulps in practice), and exactly equal when every partial sum is exact (e.g.
 * small dyadic features). Only the lower triangle of the outer products is accumulated (symmetry), as a
 * Gram matrix of 256-row blocks (blocked, linalg.multiplyNTSymmetric).
 */
export class FeatureStats {
  readonly dims: number;
  private n = 0;
  private readonly total: Float64Array;
  /** d x d; its lower triangle (j <= i) holds the sum of x x^T, the rest is not read. */
  private readonly lower: Float64Array;
  /** dims x STATS_ROWS scratch for add(), made on first use. */
  private block: Float64Array | null = null;

  constructor(dims: number) {
    if (!Number.isInteger(dims) || dims < 1)
      throw new MetricInputError('FeatureStats', `dims must be a positive integer, got ${dims}`);
    this.dims = dims;
    this.total = new Float64Array(dims);
    this.lower = new Float64Array(dims * dims);
  }

  /** Statistics from saved sums (the `count`, `sum` and `outer` accessors' values). */
  static fromSums(
    dims: number,
    count: number,
    sum: ArrayLike<number>,
    outer: ArrayLike<number>,
  ): FeatureStats {
    const what = 'FeatureStats.fromSums';
    const s = new FeatureStats(dims);
    requireCount(what, 'count', count);
    requireLength(what, 'sum', sum, dims, `dims = ${dims}`);
    requireLength(what, 'outer', outer, dims * dims, `dims^2 = ${dims * dims}`);
    requireFinite(what, 'sum', sum, dims);
    requireFinite(what, 'outer', outer, dims);
    for (let i = 0; i < dims; i++) {
      for (let j = 0; j <= i; j++) {
        const a = outer[i * dims + j]!;
        const b = outer[j * dims + i]!;
        if (Math.abs(a - b) > 1e-9 * (Math.abs(a) + Math.abs(b)))
          throw new MetricInputError(what, `outer is not symmetric at (${i}, ${j}): ${a} vs ${b}`);
        s.lower[i * dims + j] = a;
      }
    }
    s.n = count;
    s.total.set(sum);
    return s;
  }

  get count(): number {
    return this.n;
  }

  /** Sum of the feature rows (a copy). */
  get sum(): Float64Array {
    return Float64Array.from(this.total);
  }

  /** Sum of the outer products x x^T over the rows, d x d symmetric (a copy). */
  get outer(): Float64Array {
    const out = Float64Array.from(this.lower);
    mirrorLower(out, this.dims);
    return out;
  }

  /** Adds n feature rows ([n, dims], row-major). */
  add(features: Float32Array, n: number): void {
    const d = this.dims;
    requireCount('FeatureStats.add', 'n', n);
    requireLength('FeatureStats.add', 'features', features, n * d, `n * dims = ${n} * ${d}`);
    requireFinite('FeatureStats.add', 'features', features, d);
    this.block ??= new Float64Array(d * STATS_ROWS);
    for (let r0 = 0; r0 < n; r0 += STATS_ROWS) {
      const rows = Math.min(STATS_ROWS, n - r0);
      const xt = this.block.subarray(0, d * rows); // d x rows: column r is feature row r0 + r
      for (let r = 0; r < rows; r++) {
        const src = (r0 + r) * d;
        for (let i = 0; i < d; i++) {
          const x = features[src + i]!;
          xt[i * rows + r] = x;
          this.total[i] = this.total[i]! + x;
        }
      }
      multiplyNTSymmetric(xt, xt, d, rows, this.lower, true);
    }
    this.n += n;
  }

  /** Adds another shard's statistics (same dims); the result is that of one pass over both (see above). */
  merge(other: FeatureStats): void {
    const d = this.dims;
    if (other.dims !== d)
      throw new MetricInputError('FeatureStats.merge', `dims differ: ${d} vs ${other.dims}`);
    this.n += other.n;
    for (let i = 0; i < d; i++) this.total[i] = this.total[i]! + other.total[i]!;
    for (let i = 0; i < d; i++)
      for (let j = i * d; j <= i * d + i; j++) this.lower[j] = this.lower[j]! + other.lower[j]!;
  }

  /** The mean feature (d). */
  mean(): Float64Array {
    if (this.n < 1) throw new MetricInputError('FeatureStats.mean', 'no features were added');
    return this.total.map((s) => s / this.n);
  }

  /**
   * The unbiased covariance (d x d), dividing by n - 1 like np.cov(rowvar=False) (what pytorch-fid uses):
   * (sum x x^T - sum sum^T / n) / (n - 1). The subtraction cancels digits when |mean| is large against the
   * spread: relative error about 2^-53 (mean_i^2 + mean_j^2) / |cov_ij|, harmless in float64 for features.
   */
  covariance(): Float64Array {
    const n = this.n;
    const d = this.dims;
    if (n < 2) throw new MetricInputError('FeatureStats.covariance', `needs at least 2 features, have ${n}`);
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      const si = this.total[i]!;
      for (let j = 0; j <= i; j++)
        out[i * d + j] = (this.lower[i * d + j]! - (si * this.total[j]!) / n) / (n - 1);
    }
    mirrorLower(out, d);
    return out;
  }

  /** mean() and covariance() together, as frechetDistance takes them. */
  moments(): Moments {
    return { mu: this.mean(), sigma: this.covariance() };
  }
}

// ---- FID ----------------------------------------------------------------------------------------------------

export interface FrechetResult {
  /** meanTerm + traceTerm. */
  readonly fid: number;
  /** ||mu_a - mu_b||^2. */
  readonly meanTerm: number;
  /** tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)). */
  readonly traceTerm: number;
}

/**
 * The Frechet distance between N(mu_a, S_a) and N(mu_b, S_b): ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b)
 * - 2 tr((S_a S_b)^(1/2)), with the trace of the square root from traceSqrtProduct (stable for symmetric
 * positive semi-definite inputs, also rank-deficient ones). The covariances must be symmetric (to 1e-6 of
 * their largest entry; they are symmetrised exactly before use).
 */
export function frechetDistance(a: Moments, b: Moments): FrechetResult {
  const d = a.mu.length;
  const what = 'frechetDistance';
  if (d < 1) throw new MetricInputError(what, 'mu_a is empty');
  requireLength(what, 'mu_b', b.mu, d, `${d} (the length of mu_a)`);
  requireLength(what, 'sigma_a', a.sigma, d * d, `d^2 = ${d * d}`);
  requireLength(what, 'sigma_b', b.sigma, d * d, `d^2 = ${d * d}`);
  requireFinite(what, 'mu_a', a.mu, d);
  requireFinite(what, 'mu_b', b.mu, d);
  const sa = symmetrised(a.sigma, d, 'sigma_a');
  const sb = symmetrised(b.sigma, d, 'sigma_b');
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mu[i]! - b.mu[i]!) ** 2;
  const traceTerm = trace(sa, d) + trace(sb, d) - 2 * traceSqrtProduct(sa, sb, d);
  return { fid: meanTerm + traceTerm, meanTerm, traceTerm };
}

/**
 * tr((S_a S_b)^(1/2)) for symmetric positive semi-definite S_a, S_b (d x d): the sum of the square roots of
 * the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a symmetric PSD matrix with the same eigenvalues as S_a S_b.
 * With S_a = V diag(l) V^T (symmetricEigen), S_a^(1/2) = V diag(sqrt l) V^T = V E for E = diag(sqrt l) V^T
 * (rows sqrt(l_i) v_i), so S_a^(1/2) S_b S_a^(1/2) = V (E S_b E^T) V^T has the eigenvalues of E S_b E^T:
 * two products instead of four. Eigenvalues of S_a or of E S_b E^T at or below d * 2^-52 * (the largest)
 * are round-off of 0 (negative ones included) and count as 0; for rank-deficient S_a (fewer samples than
 * dimensions) the rows of its null space are dropped, so E S_b E^T is only rank x rank. The inputs must be
 * exactly symmetric (not checked here; frechetDistance checks and symmetrises them).
 */
export function traceSqrtProduct(sa: Float64Array, sb: Float64Array, d: number): number {
  const { values, vectors } = symmetricEigen(sa, d);
  const kept = aboveRoundoff(values);
  const r = kept.length;
  if (r === 0) return 0;
  const e = new Float64Array(r * d);
  kept.forEach((src, dst) => {
    const scale = Math.sqrt(values[src]!);
    for (let j = 0; j < d; j++) e[dst * d + j] = scale * vectors[src * d + j]!;
  });
  const es = multiplyNT(e, sb, r, d, d); // E S_b: S_b is symmetric, so its rows are its columns
  const m = multiplyNTSymmetric(es, e, r, d); // E S_b E^T
  const mu = symmetricEigenvalues(m, r);
  let sum = 0;
  for (const i of aboveRoundoff(mu)) sum += Math.sqrt(mu[i]!);
  return sum;
}

/** Indices of the eigenvalues above d * 2^-52 * max |eigenvalue|. */
function aboveRoundoff(values: Float64Array): number[] {
  let big = 0;
  for (const v of values) big = Math.max(big, Math.abs(v));
  const floor = values.length * Number.EPSILON * big;
  const out: number[] = [];
  values.forEach((v, i) => {
    if (v > floor) out.push(i);
  });
  return out;
}

function trace(a: Float64Array, d: number): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += a[i * d + i]!;
  return t;
}

/** (S + S^T) / 2, after checking S is finite and symmetric to 1e-6 of its largest entry. */
function symmetrised(s: Float64Array, d: number, what: string): Float64Array {
  requireFinite('frechetDistance', what, s, d);
  let big = 0;
  let asym = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      big = Math.max(big, Math.abs(s[i * d + j]!));
      asym = Math.max(asym, Math.abs(s[i * d + j]! - s[j * d + i]!));
    }
  }
  if (asym > 1e-6 * big)
    throw new MetricInputError(
      'frechetDistance',
      `${what} is not symmetric (max |S - S^T| = ${asym.toExponential(2)}, max |S| = ${big.toExponential(2)}): pass a covariance matrix`,
    );
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) out[i * d + j] = 0.5 * (s[i * d + j]! + s[j * d + i]!);
  return out;
}

// ---- Inception Score ----------------------------------------------------------------------------------------

/**
 * The Inception Score of n rows of class logits ([n, classes]): softmax in float64, then per split
 * exp(mean over its rows of KL(p(y|x) || p(y))), p(y) the split's mean prediction. Split s holds rows
 * [floor(s n / splits), floor((s + 1) n / splits)) in order, as the original IS code takes them; the result
 * is the mean and the population standard deviation (numpy's default) over splits. Terms with p(y|x) = 0
 * count 0 (the limit of p log p).
 */
export function inceptionScore(logits: Float32Array, n: number, classes: number, splits = 10): MeanStd {
  const what = 'inceptionScore';
  requireCount(what, 'n', n);
  if (!Number.isInteger(classes) || classes < 1)
    throw new MetricInputError(what, `classes must be a positive integer, got ${classes}`);
  requireLength(what, 'logits', logits, n * classes, `n * classes = ${n} * ${classes}`);
  requireFinite(what, 'logits', logits, classes);
  if (!Number.isInteger(splits) || splits < 1 || splits > n)
    throw new MetricInputError(what, `splits must be an integer in [1, n = ${n}], got ${splits}`);
  const logp = logSoftmax(logits, n, classes);
  const scores: number[] = [];
  for (let s = 0; s < splits; s++) {
    scores.push(splitScore(logp, Math.floor((s * n) / splits), Math.floor(((s + 1) * n) / splits), classes));
  }
  return meanStd(scores);
}

/** Row-wise log softmax in float64 (max subtracted first). */
function logSoftmax(logits: Float32Array, n: number, classes: number): Float64Array {
  const out = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) {
    const o = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[o + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[o + c]! - max);
    const lse = max + Math.log(z);
    for (let c = 0; c < classes; c++) out[o + c] = logits[o + c]! - lse;
  }
  return out;
}

/** exp(mean over rows [start, end) of KL(p(y|x) || p(y))), p(y) the mean of those rows' p(y|x). */
function splitScore(logp: Float64Array, start: number, end: number, classes: number): number {
  const rows = end - start;
  const py = new Float64Array(classes);
  for (let i = start; i < end; i++)
    for (let c = 0; c < classes; c++) py[c] = py[c]! + Math.exp(logp[i * classes + c]!);
  const logPy = py.map((v) => Math.log(v / rows));
  let kl = 0;
  for (let i = start; i < end; i++) {
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logp[i * classes + c]!);
      if (p > 0) kl += p * (logp[i * classes + c]! - logPy[c]!);
    }
  }
  return Math.exp(kl / rows);
}

/** Mean and population standard deviation (numpy's np.std default, ddof 0). */
function meanStd(xs: readonly number[]): MeanStd {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, std: Math.sqrt(variance) };
}

// ---- KID ----------------------------------------------------------------------------------------------------

export interface KidOptions {
  /** Number of random subsets (default 100). */
  readonly subsets?: number;
  /** Rows per subset, capped at both set sizes (default 1000). */
  readonly subsetSize?: number;
  /** Seed of the subset draws (default 0). */
  readonly seed?: number;
}

export interface KidResult extends MeanStd {
  readonly subsets: number;
  /** The subset size used (after the cap). */
  readonly subsetSize: number;
}

/** Row indices of one KID subset in each set. */
export interface KidSubset {
  readonly real: Int32Array;
  readonly fake: Int32Array;
}

/**
 * KID: the mean and population standard deviation over random subsets of the unbiased MMD^2 (mmdUnbiased)
 * between subsetSize real and subsetSize fake rows, drawn without replacement (for each subset: the real
 * indices, then the fake ones, by partial Fisher-Yates shuffles with the seeded Rng).
 */
export function kernelInceptionDistance(
  real: Float32Array,
  fake: Float32Array,
  d: number,
  opts: KidOptions = {},
): KidResult {
  const what = 'kernelInceptionDistance';
  const nReal = rowCount(what, 'real', real, d);
  const nFake = rowCount(what, 'fake', fake, d);
  const subsets = opts.subsets ?? 100;
  if (!Number.isInteger(subsets) || subsets < 1)
    throw new MetricInputError(what, `subsets must be a positive integer, got ${subsets}`);
  const m = Math.min(opts.subsetSize ?? 1000, nReal, nFake);
  if (!Number.isInteger(m) || m < 2)
    throw new MetricInputError(
      what,
      `subsets need at least 2 rows of each set; have ${nReal} real, ${nFake} fake`,
    );
  const rng = new Rng(opts.seed ?? 0);
  const draws: KidSubset[] = [];
  for (let s = 0; s < subsets; s++) {
    const realRows = sampleWithoutReplacement(rng, nReal, m);
    draws.push({ real: realRows, fake: sampleWithoutReplacement(rng, nFake, m) });
  }
  return { ...kidOnSubsets(real, fake, d, draws), subsets, subsetSize: m };
}

/** KID's mean and population standard deviation of mmdUnbiased over the given subsets. */
export function kidOnSubsets(
  real: Float32Array,
  fake: Float32Array,
  d: number,
  subsets: readonly KidSubset[],
): MeanStd {
  const what = 'kidOnSubsets';
  const nReal = rowCount(what, 'real', real, d);
  const nFake = rowCount(what, 'fake', fake, d);
  if (subsets.length === 0) throw new MetricInputError(what, 'no subsets given');
  requireFinite(what, 'real', real, d);
  requireFinite(what, 'fake', fake, d);
  const values = subsets.map((s, i) => {
    const m = s.real.length;
    if (s.fake.length !== m)
      throw new MetricInputError(
        what,
        `subset ${i} has ${m} real and ${s.fake.length} fake rows; they must match`,
      );
    return mmdUnbiased(gatherRows(real, d, s.real, nReal), gatherRows(fake, d, s.fake, nFake), m, d);
  });
  return meanStd(values);
}

/**
 * The unbiased MMD^2 between x and y (m rows of d each) with k(a, b) = (a.b / d + 1)^3:
 * sum over i != j of [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum over i, j of k(x_i, y_j) / m^2.
 */
export function mmdUnbiased(x: Float32Array, y: Float32Array, m: number, d: number): number {
  const what = 'mmdUnbiased';
  if (!Number.isInteger(m) || m < 2) throw new MetricInputError(what, `m must be an integer >= 2, got ${m}`);
  requireLength(what, 'x', x, m * d, `m * d = ${m} * ${d}`);
  requireLength(what, 'y', y, m * d, `m * d = ${m} * ${d}`);
  const x64 = Float64Array.from(x);
  const y64 = Float64Array.from(y);
  const kernel = (dotValue: number) => (dotValue / d + 1) ** 3;
  const offDiagonal = (g: Float64Array) => {
    let s = 0;
    for (let i = 1; i < m; i++) for (let j = 0; j < i; j++) s += kernel(g[i * m + j]!);
    return 2 * s;
  };
  const kxx = offDiagonal(multiplyNTSymmetric(x64, x64, m, d));
  const kyy = offDiagonal(multiplyNTSymmetric(y64, y64, m, d));
  const gxy = multiplyNT(x64, y64, m, m, d);
  let kxy = 0;
  for (let i = 0; i < m * m; i++) kxy += kernel(gxy[i]!);
  return (kxx + kyy) / (m * (m - 1)) - (2 * kxy) / (m * m);
}

/** m distinct indices in [0, n), by the first m steps of a Fisher-Yates shuffle of 0..n-1. */
function sampleWithoutReplacement(rng: Rng, n: number, m: number): Int32Array {
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let t = 0; t < m; t++) {
    const j = t + rng.int(n - t);
    const tmp = perm[t]!;
    perm[t] = perm[j]!;
    perm[j] = tmp;
  }
  return perm.slice(0, m);
}

function gatherRows(x: Float32Array, d: number, rows: Int32Array, n: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    if (!(r >= 0 && r < n)) throw new MetricInputError('KID', `row index ${r} is outside [0, ${n})`);
    out.set(x.subarray(r * d, (r + 1) * d), i * d);
  });
  return out;
}

function rowCount(metric: string, what: string, x: Float32Array, d: number): number {
  if (!Number.isInteger(d) || d < 1)
    throw new MetricInputError(metric, `d must be a positive integer, got ${d}`);
  if (x.length % d !== 0)
    throw new MetricInputError(
      metric,
      `${what} has ${x.length} values, not a whole number of rows of d = ${d}`,
    );
  return x.length / d;
}

// ---- precision and recall -------------------------------------------------------------------------------------

export interface PrecisionRecallOptions {
  /** The neighbour whose distance is a point's radius (default 3, as Kynkaanniemi et al.). */
  readonly k?: number;
}

export interface PrecisionRecall {
  /** Fraction of fake rows inside at least one real row's k-NN hypersphere. */
  readonly precision: number;
  /** Fraction of real rows inside at least one fake row's k-NN hypersphere. */
  readonly recall: number;
}

/** Rows per block of the pairwise distances: two 256 x d float64 blocks and 256 x 256 distances. */
const PR_BLOCK = 256;

/**
 * Improved precision and recall (Kynkaanniemi et al. 2019): each real row's radius is the distance to its
 * k-th nearest other real row; precision is the fraction of fake rows within (<=) the radius of at least one
 * real row; recall the same with the roles swapped. Squared distances in float64 as |a|^2 + |b|^2 - 2 a.b
 * over blocks of rows (never an n x n matrix); the products of float32 values are exact, so the only error
 * is the sums' rounding, ~2^-53 d max |x|^2, far below the gaps between neighbour distances.
 */
export function precisionRecall(
  real: Float32Array,
  fake: Float32Array,
  d: number,
  opts: PrecisionRecallOptions = {},
): PrecisionRecall {
  const what = 'precisionRecall';
  const k = opts.k ?? 3;
  const nReal = rowCount(what, 'real', real, d);
  const nFake = rowCount(what, 'fake', fake, d);
  const realRadii = kthNeighbourRadii(real, d, k);
  const fakeRadii = kthNeighbourRadii(fake, d, k);
  const fakeInside = new Uint8Array(nFake);
  const realInside = new Uint8Array(nReal);
  forBlockPairs(fake, real, d, false, (f0, fRows, r0, rRows, dist) => {
    for (let i = 0; i < fRows; i++) {
      const f = f0 + i;
      for (let j = 0; j < rRows; j++) {
        const r = r0 + j;
        const d2 = dist[i * rRows + j]!;
        if (d2 <= realRadii[r]!) fakeInside[f] = 1;
        if (d2 <= fakeRadii[f]!) realInside[r] = 1;
      }
    }
  });
  const frac = (a: Uint8Array) => a.reduce((s, v) => s + v, 0) / a.length;
  return { precision: frac(fakeInside), recall: frac(realInside) };
}

/** Squared distance from each row of x to its k-th nearest other row (the row itself excluded). */
export function kthNeighbourRadii(x: Float32Array, d: number, k: number): Float64Array {
  const what = 'kthNeighbourRadii';
  const n = rowCount(what, 'x', x, d);
  if (!Number.isInteger(k) || k < 1)
    throw new MetricInputError(what, `k must be a positive integer, got ${k}`);
  if (n <= k)
    throw new MetricInputError(what, `needs more than k = ${k} rows to have k neighbours, got ${n}`);
  const best = new Float64Array(n * k).fill(Infinity); // per row, its k smallest distances, ascending
  const offer = (i: number, d2: number) => {
    const o = i * k;
    if (d2 >= best[o + k - 1]!) return;
    let p = o + k - 1;
    for (; p > o && best[p - 1]! > d2; p--) best[p] = best[p - 1]!;
    best[p] = d2;
  };
  forBlockPairs(x, x, d, true, (a0, aRows, b0, bRows, dist) => {
    for (let i = 0; i < aRows; i++) {
      for (let j = 0; j < bRows; j++) {
        const d2 = dist[i * bRows + j]!;
        if (a0 !== b0) {
          offer(a0 + i, d2);
          offer(b0 + j, d2);
        } else if (i !== j) offer(a0 + i, d2); // a diagonal block holds both (i, j) and (j, i)
      }
    }
  });
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = best[i * k + k - 1]!;
  return out;
}

/** Rows [start, start + rows) of x in float64, written into `into` (rows x d). */
function toFloat64Rows(
  x: Float32Array,
  d: number,
  start: number,
  rows: number,
  into: Float64Array,
): Float64Array {
  const out = into.subarray(0, rows * d);
  out.set(x.subarray(start * d, (start + rows) * d));
  return out;
}

function squaredNorms(x: Float32Array, d: number): Float64Array {
  const n = x.length / d;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s += x[j]! * x[j]!;
    out[i] = s;
  }
  return out;
}

/**
 * Calls visit(a0, aRows, b0, bRows, dist) for every pair of PR_BLOCK-row blocks of x (rows a0..) and y (rows
 * b0..), dist[i * bRows + j] the squared distance (clamped at 0) between rows a0 + i and b0 + j. With
 * `upper` (y = x), only pairs with b0 >= a0.
 */
function forBlockPairs(
  x: Float32Array,
  y: Float32Array,
  d: number,
  upper: boolean,
  visit: (a0: number, aRows: number, b0: number, bRows: number, dist: Float64Array) => void,
): void {
  requireFinite('precisionRecall', 'features', x, d);
  if (y !== x) requireFinite('precisionRecall', 'features', y, d);
  const [nx, ny] = [x.length / d, y.length / d];
  const [normX, normY] = [squaredNorms(x, d), y === x ? null : squaredNorms(y, d)];
  const bufA = new Float64Array(PR_BLOCK * d);
  const bufB = new Float64Array(PR_BLOCK * d);
  const dist = new Float64Array(PR_BLOCK * PR_BLOCK);
  for (let a0 = 0; a0 < nx; a0 += PR_BLOCK) {
    const aRows = Math.min(PR_BLOCK, nx - a0);
    const a = toFloat64Rows(x, d, a0, aRows, bufA);
    for (let b0 = upper ? a0 : 0; b0 < ny; b0 += PR_BLOCK) {
      const bRows = Math.min(PR_BLOCK, ny - b0);
      const b = upper && b0 === a0 ? a : toFloat64Rows(y, d, b0, bRows, bufB);
      const out = multiplyNT(a, b, aRows, bRows, d, dist.subarray(0, aRows * bRows));
      const nb = normY ?? normX;
      for (let i = 0; i < aRows; i++) {
        const ni = normX[a0 + i]!;
        for (let j = 0; j < bRows; j++) {
          const o = i * bRows + j;
          out[o] = Math.max(0, ni + nb[b0 + j]! - 2 * out[o]!);
        }
      }
      visit(a0, aRows, b0, bRows, out);
    }
  }
}
