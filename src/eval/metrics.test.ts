// The evaluation metrics and their linear algebra against numpy/scipy (test/fixtures/metrics.json, written by
// reference/make_metric_fixtures.py), float64 recomputations and closed forms, plus the properties every
// metric must have (symmetry, invariance to row order, streaming and sharding equal to one pass).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import {
  matmul,
  multiplyNT,
  multiplyNTSymmetric,
  symmetricEigen,
  symmetricEigenvalues,
  transpose,
} from './linalg.js';
import {
  FeatureStats,
  frechetDistance,
  inceptionScore,
  kernelInceptionDistance,
  kidOnSubsets,
  kthNeighbourRadii,
  MetricInputError,
  mmdUnbiased,
  precisionRecall,
} from './metrics.js';

// ---- fixture ------------------------------------------------------------------------------------------------

interface Encoded {
  dtype: 'float32' | 'float64';
  shape: number[];
  base64: string;
}

interface FidCase {
  name: string;
  d: number;
  a: Encoded;
  b: Encoded;
  mu_a: Encoded;
  sigma_a: Encoded;
  mu_b: Encoded;
  sigma_b: Encoded;
  rank_a: number;
  rank_b: number;
  mean_term: number;
  trace_term: number;
  fid_eig: number;
  fid_sqrtm: number;
}

interface Fixture {
  fid: FidCase[];
  is: {
    name: string;
    n: number;
    classes: number;
    splits: number;
    logits: Encoded;
    mean: number;
    std: number;
  }[];
  kid: {
    d: number;
    real: Encoded;
    fake: Encoded;
    subset_size: number;
    subsets: { real: number[]; fake: number[] }[];
    mmd: number[];
    mean: number;
    std: number;
  }[];
  pr: {
    d: number;
    real: Encoded;
    fake: Encoded;
    results: {
      k: number;
      radii_real: Encoded;
      radii_fake: Encoded;
      precision: number;
      recall: number;
    }[];
  }[];
}

const fx: Fixture = JSON.parse(
  readFileSync(new URL('../../test/fixtures/metrics.json', import.meta.url), 'utf8'),
);

function f32(a: Encoded): Float32Array {
  assert.equal(a.dtype, 'float32');
  const dv = new DataView(new Uint8Array(Buffer.from(a.base64, 'base64')).buffer);
  return Float32Array.from({ length: dv.byteLength / 4 }, (_, i) => dv.getFloat32(4 * i, true));
}

function f64(a: Encoded): Float64Array {
  assert.equal(a.dtype, 'float64');
  const dv = new DataView(new Uint8Array(Buffer.from(a.base64, 'base64')).buffer);
  return Float64Array.from({ length: dv.byteLength / 8 }, (_, i) => dv.getFloat64(8 * i, true));
}

// ---- helpers --------------------------------------------------------------------------------------------------

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: rows * cols }, () => rng.normal());
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const x = randomMatrix(n, n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = x[i * n + j]! + x[j * n + i]!;
  return a;
}

/** Plain triple loop in float64: C = A B^T. */
function naiveNT(a: Float64Array, b: Float64Array, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t]! * b[j * k + t]!;
      c[i * n + j] = s;
    }
  return c;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** The rows idx of x ([n, d]), in that order (a permutation, or a subset). */
function permuteRows(x: Float32Array, d: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * d);
  idx.forEach((src, dst) => {
    out.set(x.subarray(src * d, (src + 1) * d), dst * d);
  });
  return out;
}

function randomPermutation(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  new Rng(seed).shuffle(p);
  return p;
}

function statsOf(x: Float32Array, d: number, batch = x.length / d): FeatureStats {
  const s = new FeatureStats(d);
  const n = x.length / d;
  for (let r = 0; r < n; r += batch) {
    const rows = Math.min(batch, n - r);
    s.add(x.subarray(r * d, (r + rows) * d), rows);
  }
  return s;
}

// ---- linear algebra -------------------------------------------------------------------------------------------

describe('linalg: products', () => {
  // sizes cross the 4 x 2 tiles, the 64-row panels and the 256-long k-blocks
  const [m, n, k] = [70, 131, 300];
  const a = randomMatrix(m, k, 1);
  const b = randomMatrix(n, k, 2);

  it('multiplyNT and matmul equal a float64 triple loop', () => {
    const want = naiveNT(a, b, m, n, k);
    allClose(multiplyNT(a, b, m, n, k), want, 1e-12, 1e-12, 'A B^T');
    allClose(matmul(a, transpose(b, n, k), m, k, n), want, 1e-12, 1e-12, 'A (B^T)');
    const acc = Float64Array.from(want);
    multiplyNT(a, b, m, n, k, acc, true);
    allClose(
      acc,
      want.map((v) => 2 * v),
      1e-12,
      1e-12,
      'accumulated A B^T',
    );
  });

  it('multiplyNTSymmetric: the Gram matrix, mirrored; accumulating adds into the lower triangle', () => {
    const want = naiveNT(b, b, n, n, k);
    const g = multiplyNTSymmetric(b, b, n, k);
    allClose(g, want, 1e-12, 1e-12, 'B B^T');
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(g[j * n + i], g[i * n + j]);
    const acc = new Float64Array(n * n).fill(1);
    multiplyNTSymmetric(b, b, n, k, acc, true);
    const idx = Array.from({ length: n * n }, (_, i) => i).filter((i) => i % n <= i / n); // j <= i
    allClose(
      idx.map((i) => acc[i]!),
      idx.map((i) => want[i]! + 1),
      1e-12,
      1e-12,
      'lower triangle of 1 + B B^T',
    );
  });

  it('rejects operands of the wrong size', () => {
    assert.throws(() => multiplyNT(a, b, m, n, k + 1), /multiplyNT: a has 21000 elements, expected 21070/);
  });
});

describe('linalg: symmetric eigenproblem', () => {
  it('reconstructs a random symmetric matrix: A v = lambda v, orthonormal vectors, ascending values', () => {
    for (const n of [1, 2, 3, 5, 37, 100]) {
      const a = randomSymmetric(n, 10 + n);
      const { values, vectors } = symmetricEigen(a, n);
      const scale = maxAbs(a);
      const av = multiplyNT(vectors, a, n, n, n); // row i: (A v_i)^T
      allClose(
        av,
        vectors.map((v, i) => values[Math.floor(i / n)]! * v),
        0,
        1e-12 * scale,
        `A v = lambda v (n=${n})`,
      );
      const gram = multiplyNTSymmetric(vectors, vectors, n, n);
      allClose(
        gram,
        gram.map((_, i) => (i % (n + 1) === 0 ? 1 : 0)),
        0,
        1e-13,
        `V V^T = I (n=${n})`,
      );
      for (let i = 1; i < n; i++) assert.ok(values[i - 1]! <= values[i]!, 'ascending');
      let trace = 0;
      for (let i = 0; i < n; i++) trace += a[i * n + i]!;
      allClose(
        [values.reduce((s, v) => s + v, 0)],
        [trace],
        0,
        1e-12 * n * scale,
        'sum of eigenvalues = trace',
      );
      assert.deepEqual(
        symmetricEigenvalues(a, n),
        values,
        'the eigenvalue-only path computes the same values',
      );
    }
  });

  it('finds the known eigenvalues (repeated, zero, negative) of Q diag(lambda) Q^T', () => {
    const n = 60;
    const lambda = Float64Array.from({ length: n }, (_, i) =>
      i < 10 ? 0 : i < 20 ? 3 : i < 25 ? -2 : i - 30.5,
    );
    // Q = two Householder reflections: orthogonal by construction
    const q = new Float64Array(n * n);
    for (let i = 0; i < n; i++) q[i * n + i] = 1;
    for (const seed of [3, 4]) {
      const u = randomMatrix(1, n, seed);
      const uu = u.reduce((s, v) => s + v * v, 0);
      const qu = multiplyNT(q, u, n, 1, n); // Q u
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) q[i * n + j] = q[i * n + j]! - (2 / uu) * qu[i]! * u[j]!;
    }
    const ql = q.map((v, i) => v * lambda[i % n]!); // Q diag(lambda)
    const a = multiplyNT(ql, q, n, n, n);
    const want = Float64Array.from(lambda).sort();
    allClose(symmetricEigenvalues(a, n), want, 0, 1e-13 * maxAbs(lambda) * Math.sqrt(n), 'eigenvalues');
  });

  it('tridiagonal Toeplitz (2, -1): eigenvalues 2 - 2 cos(k pi / (n + 1)), vectors sin(j k pi / (n + 1))', () => {
    const n = 50;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      a[i * n + i] = 2;
      if (i + 1 < n) a[i * n + i + 1] = a[(i + 1) * n + i] = -1;
    }
    const { values, vectors } = symmetricEigen(a, n);
    const want = Float64Array.from({ length: n }, (_, i) => 2 - 2 * Math.cos(((i + 1) * Math.PI) / (n + 1)));
    allClose(values, want, 0, 1e-14, 'eigenvalues');
    const norm = Math.sqrt(2 / (n + 1));
    for (let k = 0; k < n; k++) {
      const v = vectors.subarray(k * n, (k + 1) * n);
      const ref = Float64Array.from(
        { length: n },
        (_, j) => norm * Math.sin(((j + 1) * (k + 1) * Math.PI) / (n + 1)),
      );
      const sign = Math.sign(v.reduce((s, x, j) => s + x * ref[j]!, 0));
      allClose(
        v.map((x) => sign * x),
        ref,
        0,
        1e-12,
        `eigenvector ${k}`,
      );
    }
  });

  it('a diagonal matrix and a block-diagonal one (the QL iteration splits) keep their exact eigenvalues', () => {
    const n = 9;
    const diag = [4, -1, 0, 7, 7, 2.5, -3, 1e-3, 100];
    const a = new Float64Array(n * n);
    diag.forEach((v, i) => {
      a[i * n + i] = v;
    });
    assert.deepEqual(
      Array.from(symmetricEigenvalues(a, n)),
      [...diag].sort((x, y) => x - y),
    );
    // two 2 x 2 blocks [[2, 1], [1, 2]] (eigenvalues 1, 3) and [[0, 2], [2, 0]] (-2, 2), uncoupled
    const b = Float64Array.from([2, 1, 0, 0, 1, 2, 0, 0, 0, 0, 0, 2, 0, 0, 2, 0]);
    allClose(symmetricEigenvalues(b, 4), [-2, 1, 2, 3], 0, 1e-15, 'block-diagonal');
  });

  it('a rank-deficient PSD matrix X X^T (20 x 60, rank 20) has 40 eigenvalues at round-off of 0', () => {
    const x = randomMatrix(60, 20, 9);
    const a = multiplyNTSymmetric(x, x, 60, 20);
    const values = symmetricEigenvalues(a, 60);
    const top = values[59]!;
    for (let i = 0; i < 40; i++)
      assert.ok(Math.abs(values[i]!) <= 60 * Number.EPSILON * top, `eigenvalue ${i}`);
    for (let i = 40; i < 60; i++) assert.ok(values[i]! > 1e-3 * top, `eigenvalue ${i}`);
  });

  it('the covariance of 12 samples in 128-d (rank 11, scales over 3 decades) deflates its null space', () => {
    // Round-off of the large eigenvalues kept refilling the ~1e-15 null-space block when only the relative
    // deflation test was used (the QL iteration failed: 12 generated images against a 128-d classifier).
    const n = 12;
    const d = 128;
    const rng = new Rng(3);
    const x = new Float64Array(n * d);
    for (let j = 0; j < d; j++) {
      const scale = 10 ** (-1.5 + (3 * j) / d);
      let mean = 0;
      for (let i = 0; i < n; i++) {
        x[i * d + j] = scale * rng.normal();
        mean += x[i * d + j]! / n;
      }
      for (let i = 0; i < n; i++) x[i * d + j]! -= mean;
    }
    const xt = new Float64Array(d * n); // X^T, so that C = X^T X / (n - 1) is a Gram matrix of rows
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) xt[j * n + i] = x[i * d + j]! / Math.sqrt(n - 1);
    const c = multiplyNTSymmetric(xt, xt, d, n);
    const values = symmetricEigenvalues(c, d);
    const top = values[d - 1]!;
    for (let i = 0; i < d - (n - 1); i++)
      assert.ok(Math.abs(values[i]!) <= d * Number.EPSILON * top, `eigenvalue ${i} = ${values[i]}`);
    // The eigenvalues' sum is the trace and their squares sum to ||C||_F^2, both formed directly.
    let tr = 0;
    let fro = 0;
    for (let i = 0; i < d; i++) tr += c[i * d + i]!;
    for (const v of c) fro += v * v;
    allClose([values.reduce((a, v) => a + v, 0)], [tr], 1e-12, 0, 'trace');
    allClose([values.reduce((a, v) => a + v * v, 0)], [fro], 1e-12, 0, 'Frobenius');
  });
});

// ---- FID ------------------------------------------------------------------------------------------------------

describe('FeatureStats', () => {
  it('mean and covariance equal numpy (np.mean, np.cov rowvar=False) on the fixture features', () => {
    for (const c of fx.fid) {
      for (const side of ['a', 'b'] as const) {
        const x = f32(c[side]);
        const s = statsOf(x, c.d);
        assert.equal(s.count, x.length / c.d);
        allClose(s.mean(), f64(c[`mu_${side}`]), 1e-13, 1e-15, `${c.name} mu_${side}`);
        const sigma = f64(c[`sigma_${side}`]);
        allClose(s.covariance(), sigma, 1e-11, 1e-13 * maxAbs(sigma), `${c.name} sigma_${side}`);
      }
    }
  });

  it('streaming in batches of 1, 7 and all rows at once gives the same statistics', () => {
    const c = fx.fid[1]!; // 200 rows: a batch of all crosses the 256-row blocks only with 7s and 1s differently
    const x = f32(c.a);
    const one = statsOf(x, c.d);
    for (const batch of [1, 7]) {
      const s = statsOf(x, c.d, batch);
      assert.equal(s.count, one.count);
      allClose(s.sum, one.sum, 1e-13, 1e-13, `sum (batch ${batch})`);
      allClose(s.outer, one.outer, 1e-13, 1e-13, `outer (batch ${batch})`);
      allClose(s.covariance(), one.covariance(), 1e-11, 1e-14, `covariance (batch ${batch})`);
    }
  });

  it('merging shards equals one pass: exactly for dyadic features (exact sums), to rounding otherwise', () => {
    const d = 5;
    const n = 300;
    const rng = new Rng(7);
    const dyadic = Float32Array.from({ length: n * d }, () => (rng.int(2048) - 1024) / 64);
    const random = new Rng(8).normalArray(n * d);
    for (const [x, exact] of [
      [dyadic, true],
      [random, false],
    ] as const) {
      const one = statsOf(x, d);
      const merged = new FeatureStats(d);
      for (const [r0, r1] of [
        [0, 50],
        [50, 51],
        [51, 300],
      ] as const) {
        const shard = new FeatureStats(d);
        shard.add(x.subarray(r0 * d, r1 * d), r1 - r0);
        merged.merge(shard);
      }
      assert.equal(merged.count, n);
      if (exact) {
        assert.deepEqual(merged.sum, one.sum);
        assert.deepEqual(merged.outer, one.outer);
      } else {
        // sums of n exact products, added in different orders: within a few ulps of sum |x_i x_j|
        allClose(merged.sum, one.sum, 0, 1e-13 * n, 'sum');
        allClose(merged.outer, one.outer, 0, 1e-13 * n, 'outer');
      }
    }
  });

  it('fromSums restores the statistics; a non-symmetric outer or a wrong size is refused', () => {
    const x = f32(fx.fid[0]!.a);
    const s = statsOf(x, 16);
    const r = FeatureStats.fromSums(16, s.count, s.sum, s.outer);
    assert.deepEqual(r.covariance(), s.covariance());
    const bad = s.outer;
    bad[1] = bad[1]! + 1;
    assert.throws(() => FeatureStats.fromSums(16, s.count, s.sum, bad), /outer is not symmetric at \(1, 0\)/);
    assert.throws(() => s.add(x, 3), MetricInputError);
    assert.throws(() => new FeatureStats(2).covariance(), /needs at least 2 features, have 0/);
  });
});

describe('frechetDistance', () => {
  const moments = (c: FidCase, side: 'a' | 'b') => ({
    mu: f64(c[`mu_${side}`]),
    sigma: f64(c[`sigma_${side}`]),
  });

  it('equals pytorch-fid (scipy sqrtm, rtol 1e-9) and the eigenvalue route (1e-12) when well-conditioned', () => {
    for (const c of fx.fid.filter((c) => c.rank_a === c.d && c.rank_b === c.d)) {
      const r = frechetDistance(moments(c, 'a'), moments(c, 'b'));
      allClose([r.fid], [c.fid_sqrtm], 1e-9, 0, `${c.name} vs sqrtm`);
      allClose([r.fid], [c.fid_eig], 1e-12, 0, `${c.name} vs eigenvalue route`);
      allClose([r.meanTerm, r.traceTerm], [c.mean_term, c.trace_term], 1e-12, 0, `${c.name} terms`);
    }
  });

  it('rank-deficient covariances (n < d): equals the eigenvalue route to 1e-11, sqrtm only to 5e-8', () => {
    // Both sides count eigenvalues at or below d 2^-52 max as 0 (the null space's round-off, ~1e-16 max, is
    // 100 times below that floor, so the two sides cannot split differently). Kept in, their square roots
    // add ~5e-8 of noise to tr sqrt (1e-9 of the FID; measured with numpy), so 1e-11 checks they are dropped
    // while leaving room above the 1e-15 agreement measured here. scipy's sqrtm of the singular product
    // S_a S_b is accurate only to ~4e-9 relative (its result has an imaginary part of ~1e-8), so it is
    // compared loosely.
    const cases = fx.fid.filter((c) => c.rank_a < c.d);
    assert.ok(cases.length >= 2);
    for (const c of cases) {
      const r = frechetDistance(moments(c, 'a'), moments(c, 'b'));
      allClose([r.fid], [c.fid_eig], 1e-11, 0, `${c.name} vs eigenvalue route`);
      allClose([r.fid], [c.fid_sqrtm], 5e-8, 0, `${c.name} vs sqrtm`);
    }
  });

  it('is 0 for a set against itself and symmetric in its arguments', () => {
    for (const c of fx.fid) {
      const [a, b] = [moments(c, 'a'), moments(c, 'b')];
      let trace = 0;
      for (let i = 0; i < c.d; i++) trace += a.sigma[i * c.d + i]!;
      const self = frechetDistance(a, a);
      assert.equal(self.meanTerm, 0);
      assert.ok(Math.abs(self.fid) <= 1e-12 * trace, `${c.name}: FID(a, a) = ${self.fid}`);
      allClose([frechetDistance(b, a).fid], [frechetDistance(a, b).fid], 1e-11, 0, `${c.name} symmetric`);
    }
  });

  it('does not depend on the order of the feature rows', () => {
    const c = fx.fid[1]!;
    const [a, b] = [f32(c.a), f32(c.b)];
    const want = frechetDistance(statsOf(a, c.d).moments(), statsOf(b, c.d).moments()).fid;
    const pa = permuteRows(a, c.d, randomPermutation(a.length / c.d, 1));
    const pb = permuteRows(b, c.d, randomPermutation(b.length / c.d, 2));
    allClose(
      [frechetDistance(statsOf(pa, c.d).moments(), statsOf(pb, c.d).moments()).fid],
      [want],
      1e-11,
      0,
      'FID',
    );
  });

  it('refuses mismatched sizes and non-symmetric covariances', () => {
    const a = { mu: new Float64Array(2), sigma: Float64Array.from([1, 0, 0, 1]) };
    assert.throws(
      () => frechetDistance(a, { mu: new Float64Array(3), sigma: new Float64Array(9) }),
      /mu_b has 3/,
    );
    const skew = { mu: new Float64Array(2), sigma: Float64Array.from([1, 0.5, 0, 1]) };
    assert.throws(() => frechetDistance(a, skew), /sigma_b is not symmetric/);
  });
});

// ---- IS -------------------------------------------------------------------------------------------------------

describe('inceptionScore', () => {
  it('equals the original IS arithmetic (numpy) with 10 contiguous splits, also when n % splits != 0', () => {
    for (const c of fx.is) {
      const r = inceptionScore(f32(c.logits), c.n, c.classes, c.splits);
      allClose([r.mean, r.std], [c.mean, c.std], 1e-12, 0, c.name);
    }
  });

  it('is 1 for uniform predictions and K for confident one-hot predictions spread evenly over K classes', () => {
    const uniform = inceptionScore(new Float32Array(100 * 6).fill(0.7), 100, 6);
    allClose([uniform.mean, uniform.std], [1, 0], 1e-14, 1e-14, 'uniform');
    const K = 5;
    const n = 10 * K * 4; // every split holds each class 4 times
    const logits = new Float32Array(n * K);
    for (let i = 0; i < n; i++) logits[i * K + (i % K)] = 50; // p(y|x) = 1 - 4e-22
    const r = inceptionScore(logits, n, K, 10);
    allClose([r.mean, r.std], [K, 0], 1e-12, 1e-12, 'one-hot');
  });

  it('does not depend on the order of the rows within a split (one split: any order)', () => {
    const c = fx.is[0]!;
    const x = f32(c.logits);
    const shuffled = permuteRows(x, c.classes, randomPermutation(c.n, 3));
    allClose(
      [inceptionScore(shuffled, c.n, c.classes, 1).mean],
      [inceptionScore(x, c.n, c.classes, 1).mean],
      1e-13,
      0,
      'IS',
    );
  });

  it('refuses more splits than rows', () => {
    assert.throws(
      () => inceptionScore(new Float32Array(12), 4, 3, 5),
      /splits must be an integer in \[1, n = 4\]/,
    );
  });
});

// ---- KID ------------------------------------------------------------------------------------------------------

describe('KID', () => {
  const c = fx.kid[0]!;
  const [real, fake] = [f32(c.real), f32(c.fake)];
  const subsets = c.subsets.map((s) => ({ real: Int32Array.from(s.real), fake: Int32Array.from(s.fake) }));
  const rows = (x: Float32Array, idx: Int32Array) => permuteRows(x, c.d, idx);

  it('mmdUnbiased on the stored subsets equals numpy (clean-fid formula); mean and std over them too', () => {
    const values = subsets.map((s) =>
      mmdUnbiased(rows(real, s.real), rows(fake, s.fake), c.subset_size, c.d),
    );
    allClose(values, c.mmd, 1e-12, 1e-14, 'MMD^2 per subset');
    const r = kidOnSubsets(real, fake, c.d, subsets);
    allClose([r.mean, r.std], [c.mean, c.std], 1e-12, 0, 'KID');
  });

  it('the unbiased MMD is symmetric in x and y and does not depend on row order', () => {
    const [x, y] = [rows(real, subsets[0]!.real), rows(fake, subsets[0]!.fake)];
    const m = c.subset_size;
    const want = mmdUnbiased(x, y, m, c.d);
    allClose([mmdUnbiased(y, x, m, c.d)], [want], 1e-13, 0, 'symmetric');
    const p = randomPermutation(m, 4);
    allClose(
      [mmdUnbiased(permuteRows(x, c.d, p), permuteRows(y, c.d, p), m, c.d)],
      [want],
      1e-13,
      0,
      'order',
    );
  });

  it('kernelInceptionDistance: seeded draws, subset size capped at the set sizes, whole-set subsets agree', () => {
    const a = kernelInceptionDistance(real, fake, c.d, { subsets: 5, seed: 1 });
    assert.equal(a.subsetSize, 90); // min(1000, 120, 90)
    assert.deepEqual(kernelInceptionDistance(real, fake, c.d, { subsets: 5, seed: 1 }), a);
    assert.notEqual(kernelInceptionDistance(real, fake, c.d, { subsets: 5, seed: 2 }).mean, a.mean);
    // subsets of all 90 rows of equally large sets are the whole sets in some order: every MMD is the same
    const real90 = real.subarray(0, 90 * c.d);
    const whole = kernelInceptionDistance(real90, fake, c.d, { subsets: 3, subsetSize: 90, seed: 5 });
    allClose([whole.mean, whole.std], [mmdUnbiased(real90, fake, 90, c.d), 0], 1e-12, 1e-13, 'whole sets');
  });
});

// ---- precision and recall -----------------------------------------------------------------------------------

describe('precisionRecall', () => {
  const c = fx.pr[0]!; // 300 and 280 rows: the 256-row distance blocks are crossed
  const [real, fake] = [f32(c.real), f32(c.fake)];

  it('k-th neighbour radii, precision and recall equal numpy brute force for k = 1, 3, 5', () => {
    for (const r of c.results) {
      allClose(kthNeighbourRadii(real, c.d, r.k), f64(r.radii_real), 1e-12, 0, `real radii k=${r.k}`);
      allClose(kthNeighbourRadii(fake, c.d, r.k), f64(r.radii_fake), 1e-12, 0, `fake radii k=${r.k}`);
      assert.deepEqual(precisionRecall(real, fake, c.d, { k: r.k }), {
        precision: r.precision,
        recall: r.recall,
      });
    }
  });

  it('does not depend on row order; a set against itself has precision and recall 1', () => {
    const want = precisionRecall(real, fake, c.d);
    const pr = permuteRows(real, c.d, randomPermutation(300, 5));
    const pf = permuteRows(fake, c.d, randomPermutation(280, 6));
    assert.deepEqual(precisionRecall(pr, pf, c.d), want);
    assert.deepEqual(precisionRecall(real, pr, c.d), { precision: 1, recall: 1 });
  });

  it('needs more than k rows', () => {
    assert.throws(() => precisionRecall(real.subarray(0, 3 * c.d), fake, c.d), /needs more than k = 3 rows/);
  });
});
