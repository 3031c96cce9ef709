// Dense float64 linear algebra for the evaluation metrics (FID, KID, precision/recall), in plain TypeScript
// (browser-safe), fast enough for Inception's d = 2048.
//
// - Matrix products in the "NT" form C = A B^T (both operands row-major with the summed index contiguous),
//   blocked for the cache (k-blocks of KC, panels of NC rows of B) around a 4 x 2 register tile.
// - The symmetric eigenproblem as in Golub & Van Loan (Matrix Computations, 4th ed., sections 8.3.1 and 8.3.3):
//   Householder reduction to tridiagonal form, then the implicit QL iteration with Wilkinson's shift on the
//   tridiagonal matrix. Eigenvalues alone cost the reduction (4/3 n^3 flops) plus O(n^2). With eigenvectors,
//   the reflectors are accumulated into Q^T (another 4/3 n^3) and the QL rotations are logged and applied to
//   Q^T in column slabs that stay in cache (each slab replays the whole log), instead of sweeping all n rows
//   once per rotation.
//
// Matrices are row-major Float64Arrays. Symmetric inputs are read from their upper triangle only.

/** A problem with a matrix argument or a failed iteration, naming the routine. */
export class LinalgError extends Error {
  constructor(routine: string, message: string) {
    super(`${routine}: ${message}`);
    this.name = 'LinalgError';
  }
}

function checkSize(routine: string, what: string, a: ArrayLike<number>, want: number): void {
  if (a.length !== want)
    throw new LinalgError(
      routine,
      `${what} has ${a.length} elements, expected ${want} (check the dimensions)`,
    );
}

// ---- products ---------------------------------------------------------------------------------------------

/** A row-major matrix inside an array: element (i, j) at data[offset + i * stride + j]. */
interface View {
  readonly data: Float64Array;
  readonly offset: number;
  readonly stride: number;
}

const whole = (data: Float64Array, cols: number): View => ({ data, offset: 0, stride: cols });

/** k-block: a 4-row tile of A (4 x 256 doubles, 8 KB) stays in L1 while a panel of B streams past it. */
const KC = 256;
/** Rows of B per panel: 64 x 256 doubles = 128 KB, kept in L2 while every row tile of A passes. */
const NC = 64;

/** The transpose of a rows x cols matrix. */
export function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  checkSize('transpose', 'a', a, rows * cols);
  const out = new Float64Array(rows * cols);
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = a[i * cols + j]!;
    }
  }
  return out;
}

/**
 * C = A B^T for A (m x k) and B (n x k): C[i][j] = row i of A . row j of B. Added into `out` (m x n) when
 * `accumulate` is set, else `out` is overwritten.
 */
export function multiplyNT(
  a: Float64Array,
  b: Float64Array,
  m: number,
  n: number,
  k: number,
  out: Float64Array = new Float64Array(m * n),
  accumulate = false,
): Float64Array {
  checkSize('multiplyNT', 'a', a, m * k);
  checkSize('multiplyNT', 'b', b, n * k);
  checkSize('multiplyNT', 'out', out, m * n);
  if (!accumulate) out.fill(0);
  gemmNT(m, n, k, 1, whole(a, k), whole(b, k), whole(out, n), false);
  return out;
}

/**
 * C = A B^T for A and B both n x k when C is known to be symmetric (A = B gives the Gram matrix A A^T):
 * only the lower triangle is computed, then mirrored, so it costs half of multiplyNT. With
 * `accumulate`, the lower triangle is added into `out` and nothing is mirrored (the upper triangle of `out`
 * is then left unspecified: read the lower one).
 */
export function multiplyNTSymmetric(
  a: Float64Array,
  b: Float64Array,
  n: number,
  k: number,
  out: Float64Array = new Float64Array(n * n),
  accumulate = false,
): Float64Array {
  checkSize('multiplyNTSymmetric', 'a', a, n * k);
  checkSize('multiplyNTSymmetric', 'b', b, n * k);
  checkSize('multiplyNTSymmetric', 'out', out, n * n);
  if (!accumulate) out.fill(0);
  gemmNT(n, n, k, 1, whole(a, k), whole(b, k), whole(out, n), true);
  if (!accumulate) mirrorLower(out, n);
  return out;
}

/** C = A B for A (m x k) and B (k x n), through B^T (so both operands are read along contiguous rows). */
export function matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  checkSize('matmul', 'a', a, m * k);
  checkSize('matmul', 'b', b, k * n);
  return multiplyNT(a, transpose(b, k, n), m, n, k);
}

/** Copies the lower triangle of a square matrix onto its upper triangle. */
export function mirrorLower(c: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) c[i * n + j] = c[j * n + i]!;
}

/**
 * C += alpha A B^T for views A (m x k), B (n x k), C (m x n); with `lower`, only the 4 x 2 tiles that touch
 * the lower triangle j <= i (the tiles on the diagonal also add some elements above it).
 */
function gemmNT(
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: View,
  b: View,
  c: View,
  lower: boolean,
): void {
  for (let k0 = 0; k0 < k; k0 += KC) {
    const k1 = Math.min(k, k0 + KC);
    for (let j0 = 0; j0 < n; j0 += NC) {
      const i0 = lower ? j0 - (j0 % 4) : 0; // lower: the row tiles that reach column j0
      panelNT(alpha, a, b, c, i0, m, j0, Math.min(n, j0 + NC), k0, k1, lower);
    }
  }
}

/**
 * C[i][j] += alpha sum over kk in [k0, k1) of A[i][kk] B[j][kk], for rows i in [i0, i1) and columns j in
 * [j0, j1) (with `lower`: j < i + 4 for the tile of rows i..i+3). 4 x 2 tiles: eight sums in registers, six
 * loads per eight multiply-adds.
 */
function panelNT(
  alpha: number,
  av: View,
  bv: View,
  cv: View,
  i0: number,
  i1: number,
  j0: number,
  j1: number,
  k0: number,
  k1: number,
  lower: boolean,
): void {
  const { data: a, stride: lda } = av;
  const { data: b, stride: ldb } = bv;
  const { data: out, stride: n } = cv;
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const a0 = av.offset + i * lda;
    const a1 = a0 + lda;
    const a2 = a1 + lda;
    const a3 = a2 + lda;
    const jEnd = lower ? Math.min(j1, i + 4) : j1;
    let j = j0;
    for (; j + 2 <= jEnd; j += 2) {
      const b0 = bv.offset + j * ldb;
      const b1 = b0 + ldb;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      let s20 = 0;
      let s21 = 0;
      let s30 = 0;
      let s31 = 0;
      for (let kk = k0; kk < k1; kk++) {
        const y0 = b[b0 + kk]!;
        const y1 = b[b1 + kk]!;
        let x = a[a0 + kk]!;
        s00 += x * y0;
        s01 += x * y1;
        x = a[a1 + kk]!;
        s10 += x * y0;
        s11 += x * y1;
        x = a[a2 + kk]!;
        s20 += x * y0;
        s21 += x * y1;
        x = a[a3 + kk]!;
        s30 += x * y0;
        s31 += x * y1;
      }
      const o = cv.offset + i * n + j;
      out[o] = out[o]! + alpha * s00;
      out[o + 1] = out[o + 1]! + alpha * s01;
      out[o + n] = out[o + n]! + alpha * s10;
      out[o + n + 1] = out[o + n + 1]! + alpha * s11;
      out[o + 2 * n] = out[o + 2 * n]! + alpha * s20;
      out[o + 2 * n + 1] = out[o + 2 * n + 1]! + alpha * s21;
      out[o + 3 * n] = out[o + 3 * n]! + alpha * s30;
      out[o + 3 * n + 1] = out[o + 3 * n + 1]! + alpha * s31;
    }
    for (; j < jEnd; j++) {
      for (let r = i; r < i + 4; r++) out[cv.offset + r * n + j]! += alpha * dotRows(av, r, bv, j, k0, k1);
    }
  }
  for (; i < i1; i++) {
    const jEnd = lower ? Math.min(j1, i + 1) : j1;
    for (let j = j0; j < jEnd; j++) out[cv.offset + i * n + j]! += alpha * dotRows(av, i, bv, j, k0, k1);
  }
}

/** Row i of A . row j of B over [k0, k1). */
function dotRows(a: View, i: number, b: View, j: number, k0: number, k1: number): number {
  const ao = a.offset + i * a.stride;
  const bo = b.offset + j * b.stride;
  let s = 0;
  for (let kk = k0; kk < k1; kk++) s += a.data[ao + kk]! * b.data[bo + kk]!;
  return s;
}

// ---- the symmetric eigenproblem ---------------------------------------------------------------------------

export interface SymmetricEigen {
  /** The n eigenvalues in ascending order. */
  readonly values: Float64Array;
  /** n x n, row-major, row i the unit eigenvector of values[i] (the transpose of numpy's eigh layout). */
  readonly vectors: Float64Array;
}

/** Eigenvalues (ascending) of the symmetric n x n matrix whose upper triangle is in `a` (not modified). */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  checkSize('symmetricEigenvalues', 'a', a, n * n);
  const w = Float64Array.from(a);
  const t = reduceToTridiagonal(w, n);
  tridiagonalQL(t.diag, t.off, null);
  return t.diag.sort();
}

/** Eigenvalues (ascending) and unit eigenvectors (as rows) of the symmetric matrix in `a`'s upper triangle. */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  checkSize('symmetricEigen', 'a', a, n * n);
  const w = Float64Array.from(a);
  const t = reduceToTridiagonal(w, n);
  const qt = accumulateReflectors(w, t.tau, n);
  const log = new RotationLog(qt, n);
  tridiagonalQL(t.diag, t.off, log);
  log.flush();
  return sortEigen(t.diag, qt, n);
}

interface Tridiagonal {
  /** The diagonal, n values. */
  readonly diag: Float64Array;
  /** off[i] couples i and i + 1; off[n - 1] = 0. */
  readonly off: Float64Array;
  /** Reflector k is I - tau[k] v v^T, v stored in row k of the work matrix at columns k + 1.., v[k + 1] = 1. */
  readonly tau: Float64Array;
}

/**
 * Householder tridiagonalisation in place (Golub & Van Loan 8.3.1), on the upper triangle. Step k reflects
 * row k right of the diagonal onto its first element: H x = alpha e1, H = I - tau v v^T, and the trailing
 * block B becomes H B H = B - v u^T - u v^T with p = tau B v, u = p - (tau/2)(p.v) v. One pass over the
 * trailing block per step: it applies the previous step's rank-2 update and forms this step's B v together
 * (so the matrix streams through the cache once per step, not twice).
 */
function reduceToTridiagonal(w: Float64Array, n: number): Tridiagonal {
  const diag = new Float64Array(n);
  const off = new Float64Array(n);
  const tau = new Float64Array(n);
  let v = new Float64Array(n);
  let u = new Float64Array(n);
  let pendingV = new Float64Array(n); // the previous step's v and u, not yet applied below its row
  let pendingU = new Float64Array(n);
  for (let k = 0; k + 2 < n; k++) {
    const s = k + 1;
    rank2Rows(w, n, k, k + 1, pendingV, pendingU); // row k is final now
    diag[k] = w[k * n + k]!;
    const h = householder(w, k * n, s, n);
    off[k] = h.alpha;
    tau[k] = h.tau;
    v.fill(0);
    if (h.tau !== 0) for (let j = s; j < n; j++) v[j] = w[k * n + j]!;
    updateAndMultiply(w, n, s, pendingV, pendingU, v, u);
    let pv = 0;
    for (let j = s; j < n; j++) {
      u[j] = u[j]! * h.tau;
      pv += u[j]! * v[j]!;
    }
    const half = 0.5 * h.tau * pv;
    for (let j = s; j < n; j++) u[j] = u[j]! - half * v[j]!;
    [pendingV, v] = [v, pendingV];
    [pendingU, u] = [u, pendingU];
  }
  rank2Rows(w, n, Math.max(0, n - 2), n, pendingV, pendingU);
  if (n >= 2) off[n - 2] = w[(n - 2) * n + n - 1]!;
  for (let k = Math.max(0, n - 2); k < n; k++) diag[k] = w[k * n + k]!;
  return { diag, off, tau };
}

/**
 * The reflector that maps x = w[row + s .. row + n) onto alpha e1; writes v (v[0] = 1) over x. tau = 0 (no
 * reflection) when x's tail is already zero.
 */
function householder(w: Float64Array, row: number, s: number, n: number): { alpha: number; tau: number } {
  const x0 = w[row + s]!;
  let scale = 0;
  for (let j = s + 1; j < n; j++) scale = Math.max(scale, Math.abs(w[row + j]!));
  if (scale === 0) return { alpha: x0, tau: 0 };
  scale = Math.max(scale, Math.abs(x0));
  let ss = 0;
  for (let j = s; j < n; j++) {
    const t = w[row + j]! / scale;
    ss += t * t;
  }
  const norm = scale * Math.sqrt(ss);
  const alpha = x0 >= 0 ? -norm : norm;
  const inv = 1 / (x0 - alpha);
  w[row + s] = 1;
  for (let j = s + 1; j < n; j++) w[row + j] = w[row + j]! * inv;
  return { alpha, tau: (alpha - x0) / alpha };
}

/** Rows [from, to) of the upper triangle (columns j >= i): B -= v u^T + u v^T. */
function rank2Rows(
  w: Float64Array,
  n: number,
  from: number,
  to: number,
  v: Float64Array,
  u: Float64Array,
): void {
  for (let i = from; i < to; i++) {
    const row = i * n;
    const vi = v[i]!;
    const ui = u[i]!;
    for (let j = i; j < n; j++) w[row + j] = w[row + j]! - vi * u[j]! - ui * v[j]!;
  }
}

/**
 * For the trailing block B = w[s.., s..] (upper triangle): B -= pv pu^T + pu pv^T, then p = B v (the
 * symmetric product reads each stored element once: row i's dot with v, and its transpose's axpy). Rows go
 * four at a time, so each column's pv, pu, v and p are loaded once for four matrix elements.
 */
function updateAndMultiply(
  w: Float64Array,
  n: number,
  s: number,
  pv: Float64Array,
  pu: Float64Array,
  v: Float64Array,
  p: Float64Array,
): void {
  p.fill(0);
  let i = s;
  for (; i + 4 <= n; i += 4) {
    for (let r = i; r < i + 4; r++) updateRow(w, n, r, i + 4, pv, pu, v, p);
    const [o0, o1, o2, o3] = [i * n, (i + 1) * n, (i + 2) * n, (i + 3) * n];
    const [a0, a1, a2, a3] = [pv[i]!, pv[i + 1]!, pv[i + 2]!, pv[i + 3]!];
    const [b0, b1, b2, b3] = [pu[i]!, pu[i + 1]!, pu[i + 2]!, pu[i + 3]!];
    const [v0, v1, v2, v3] = [v[i]!, v[i + 1]!, v[i + 2]!, v[i + 3]!];
    let acc0 = 0;
    let acc1 = 0;
    let acc2 = 0;
    let acc3 = 0;
    for (let j = i + 4; j < n; j++) {
      const x = pu[j]!;
      const y = pv[j]!;
      const vj = v[j]!;
      const w0 = w[o0 + j]! - a0 * x - b0 * y;
      const w1 = w[o1 + j]! - a1 * x - b1 * y;
      const w2 = w[o2 + j]! - a2 * x - b2 * y;
      const w3 = w[o3 + j]! - a3 * x - b3 * y;
      w[o0 + j] = w0;
      w[o1 + j] = w1;
      w[o2 + j] = w2;
      w[o3 + j] = w3;
      acc0 += w0 * vj;
      acc1 += w1 * vj;
      acc2 += w2 * vj;
      acc3 += w3 * vj;
      p[j] = p[j]! + w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3;
    }
    p[i] = p[i]! + acc0;
    p[i + 1] = p[i + 1]! + acc1;
    p[i + 2] = p[i + 2]! + acc2;
    p[i + 3] = p[i + 3]! + acc3;
  }
  for (; i < n; i++) updateRow(w, n, i, n, pv, pu, v, p);
}

/** updateAndMultiply for row r, columns [r, jEnd). */
function updateRow(
  w: Float64Array,
  n: number,
  r: number,
  jEnd: number,
  pv: Float64Array,
  pu: Float64Array,
  v: Float64Array,
  p: Float64Array,
): void {
  const row = r * n;
  const vr = v[r]!;
  const a = pv[r]!;
  const b = pu[r]!;
  const arr = w[row + r]! - a * pu[r]! - b * pv[r]!;
  w[row + r] = arr;
  let acc = arr * vr;
  for (let j = r + 1; j < jEnd; j++) {
    const arj = w[row + j]! - a * pu[j]! - b * pv[j]!;
    w[row + j] = arj;
    acc += arj * v[j]!;
    p[j] = p[j]! + arj * vr;
  }
  p[r] = p[r]! + acc;
}

/** Reflectors per block when they are accumulated as I - V T V^T (compact WY). */
const NB = 32;

/**
 * Q^T for Q = H_0 H_1 .. H_{n-3}, built from the back in blocks of NB reflectors: Q^T = (H_{n-3} ..) .. H_0,
 * and a block's H_{k1-1} .. H_{k0} = (H_{k0} .. H_{k1-1})^T = I - V T^T V^T, where H_{k0} .. H_{k1-1} =
 * I - V T V^T (Schreiber & Van Loan's compact WY form, T upper triangular). So Q^T <- Q^T - (Q^T V) T^T V^T:
 * two matrix products. When a block is applied, the product so far differs from the identity only in rows
 * and columns k1 + 1.., so only rows and columns k0 + 1.. change.
 */
function accumulateReflectors(w: Float64Array, tau: Float64Array, n: number): Float64Array {
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  for (let k1 = n - 2; k1 > 0; k1 -= NB) {
    const k0 = Math.max(0, k1 - NB);
    const nb = k1 - k0;
    const c0 = k0 + 1;
    const m = n - c0;
    const vt = reflectorRows(w, tau, n, k0, nb); // nb x m: row j = v of reflector k0 + j
    const t = compactWY(vt, tau, k0, nb, m);
    const block: View = { data: qt, offset: c0 * n + c0, stride: n };
    const qv = new Float64Array(m * nb); // Q^T V
    gemmNT(m, nb, m, 1, block, whole(vt, m), whole(qv, nb), false);
    const qvt = new Float64Array(m * nb); // (Q^T V) T^T: row r, column j = sum over i >= j of qv[r][i] T[j][i]
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < nb; j++) {
        let acc = 0;
        for (let i = j; i < nb; i++) acc += qv[r * nb + i]! * t[j * nb + i]!;
        qvt[r * nb + j] = acc;
      }
    }
    gemmNT(m, m, nb, -1, whole(qvt, nb), whole(transpose(vt, nb, m), nb), block, false);
  }
  return qt;
}

/** The block's reflector vectors over columns k0 + 1 .. n - 1, as rows (zeros before each one's start). */
function reflectorRows(w: Float64Array, tau: Float64Array, n: number, k0: number, nb: number): Float64Array {
  const c0 = k0 + 1;
  const m = n - c0;
  const vt = new Float64Array(nb * m);
  for (let j = 0; j < nb; j++) {
    const k = k0 + j;
    if (tau[k] === 0) continue; // no reflection: its row stays zero
    for (let col = k + 1; col < n; col++) vt[j * m + col - c0] = w[k * n + col]!;
  }
  return vt;
}

/**
 * T (nb x nb, upper triangular) with H_{k0} .. H_{k0+nb-1} = I - V T V^T: appending H = I - tau v v^T to
 * I - V T V^T gives the new column (-tau T V^T v ; tau).
 */
function compactWY(vt: Float64Array, tau: Float64Array, k0: number, nb: number, m: number): Float64Array {
  const t = new Float64Array(nb * nb);
  const g = new Float64Array(nb);
  for (let j = 0; j < nb; j++) {
    const tj = tau[k0 + j]!;
    t[j * nb + j] = tj;
    if (tj === 0) continue;
    for (let l = 0; l < j; l++) {
      let acc = 0;
      for (let c = 0; c < m; c++) acc += vt[l * m + c]! * vt[j * m + c]!;
      g[l] = acc;
    }
    for (let i = 0; i < j; i++) {
      let acc = 0;
      for (let l = i; l < j; l++) acc += t[i * nb + l]! * g[l]!;
      t[i * nb + j] = -tj * acc;
    }
  }
  return t;
}

/** QL sweeps allowed per eigenvalue before giving up (LAPACK allows 30 per eigenvalue in total). */
const MAX_SWEEPS = 60;

/**
 * Eigenvalues of the symmetric tridiagonal (diag, off) in place into diag (unordered), by the implicit QL
 * iteration with Wilkinson's shift (Golub & Van Loan 8.3.3, QL form: chasing from the bottom of the
 * unreduced block up to its top). Each sweep's Givens rotations go to `log` when eigenvectors are wanted.
 */
function tridiagonalQL(diag: Float64Array, off: Float64Array, log: RotationLog | null): void {
  const n = diag.length;
  // Off-diagonals below eps * ||T|| are round-off of the tridiagonalisation (its backward error is of that
  // size) and deflate even inside a cluster of tiny eigenvalues. The relative test alone never deflates the
  // null space of a rank-deficient covariance (entries ~1e-15 next to eigenvalues ~10): the sweeps' round-off
  // at the large eigenvalues' scale keeps refilling it.
  let norm = 0;
  for (let i = 0; i < n; i++) {
    norm = Math.max(norm, Math.abs(diag[i]!) + Math.abs(off[i]!) + (i > 0 ? Math.abs(off[i - 1]!) : 0));
  }
  const floor = Number.EPSILON * norm;
  for (let l = 0; l < n; l++) {
    for (let sweep = 0; ; sweep++) {
      const m = unreducedEnd(diag, off, l, floor);
      if (m === l) break;
      if (sweep === MAX_SWEEPS)
        throw new LinalgError(
          'symmetric eigensolver',
          `QL iteration did not converge for eigenvalue ${l} after ${MAX_SWEEPS} sweeps (NaN or Inf in the matrix?)`,
        );
      qlSweep(diag, off, l, m, log);
    }
  }
}

/** The first m >= l whose off-diagonal off[m] is negligible against its neighbours or `floor` (or n - 1). */
function unreducedEnd(diag: Float64Array, off: Float64Array, l: number, floor: number): number {
  const n = diag.length;
  let m = l;
  for (; m < n - 1; m++) {
    const dd = Math.abs(diag[m]!) + Math.abs(diag[m + 1]!);
    const e = Math.abs(off[m]!);
    if (e <= Number.EPSILON * dd || e <= floor) break;
  }
  return m;
}

/**
 * One implicit QL sweep on the unreduced block [l, m]: shift by the eigenvalue of the leading 2 x 2 block
 * closer to diag[l], then chase the bulge from the bottom (rotation m-1) to the top (rotation l).
 */
function qlSweep(diag: Float64Array, off: Float64Array, l: number, m: number, log: RotationLog | null): void {
  const e = off[l]!;
  const theta = (diag[l + 1]! - diag[l]!) / (2 * e);
  const r0 = Math.hypot(theta, 1);
  let g = diag[m]! - diag[l]! + e / (theta + (theta >= 0 ? r0 : -r0));
  let s = 1;
  let c = 1;
  let p = 0;
  for (let i = m - 1; i >= l; i--) {
    const f = s * off[i]!;
    const b = c * off[i]!;
    const r = Math.hypot(f, g);
    off[i + 1] = r;
    if (r === 0) {
      // the bulge vanished: the block splits at i + 1; undo the pending shift there and start over
      diag[i + 1] = diag[i + 1]! - p;
      off[m] = 0;
      return;
    }
    s = f / r;
    c = g / r;
    g = diag[i + 1]! - p;
    const t = (diag[i]! - g) * s + 2 * c * b;
    p = s * t;
    diag[i + 1] = g + p;
    g = c * t - b;
    log?.push(i, c, s);
  }
  diag[l] = diag[l]! - p;
  off[l] = g;
  off[m] = 0;
}

/** Rotations held before they are applied to the eigenvector matrix (at most 16 MB of (c, s) pairs). */
const LOG_CAPACITY = 1 << 20;
/** Columns per slab (the replay keeps one row of the slab in eight registers). */
const SLAB = 8;

/**
 * Givens rotations of the QL iteration, applied in batches to E = Q^T (rows become eigenvectors): rotation
 * (i, c, s) maps rows (x, y) = (E[i], E[i+1]) to (c x - s y, s x + c y). Each column of E is transformed
 * independently, so a batch is replayed slab by slab of SLAB columns copied into a contiguous buffer (n x 8
 * doubles, in L2). A sweep's rotations run over i = m-1, m-2, .. so within a run of consecutive indices the
 * row just rotated into place is carried in registers: one load and one store per element and rotation.
 */
class RotationLog {
  /** About 2 n^2 rotations fit: the whole iteration usually takes ~n^2, so small problems flush once. */
  private readonly capacity: number;
  private readonly index: Int32Array;
  private readonly cs: Float64Array;
  private count = 0;
  private readonly slab: Float64Array;

  constructor(
    private readonly e: Float64Array,
    private readonly n: number,
  ) {
    this.capacity = Math.min(LOG_CAPACITY, 2 * n * n + 64);
    this.index = new Int32Array(this.capacity);
    this.cs = new Float64Array(2 * this.capacity);
    this.slab = new Float64Array((n + 1) * SLAB);
  }

  push(i: number, c: number, s: number): void {
    if (this.count === this.capacity) this.flush();
    const t = this.count++;
    this.index[t] = i;
    this.cs[2 * t] = c;
    this.cs[2 * t + 1] = s;
  }

  flush(): void {
    const { e, n, slab } = this;
    const runs = this.runs();
    for (let c0 = 0; c0 < n; c0 += SLAB) {
      const width = Math.min(SLAB, n - c0);
      slab.fill(0);
      for (let i = 0; i < n; i++) for (let j = 0; j < width; j++) slab[i * SLAB + j] = e[i * n + c0 + j]!;
      replayRuns(slab, runs, this.cs);
      for (let i = 0; i < n; i++) for (let j = 0; j < width; j++) e[i * n + c0 + j] = slab[i * SLAB + j]!;
    }
    this.count = 0;
  }

  /** (first index, length) of each run of consecutive descending indices in the log. */
  private runs(): Int32Array {
    const { index, count } = this;
    const out: number[] = [];
    for (let t = 0; t < count; ) {
      let len = 1;
      while (t + len < count && index[t + len] === index[t]! - len) len++;
      out.push(index[t]!, len);
      t += len;
    }
    return Int32Array.from(out);
  }
}

/** Applies the logged rotations, run by run, to an n x 8 slab; the carried row lives in y0..y7. */
function replayRuns(slab: Float64Array, runs: Int32Array, cs: Float64Array): void {
  let t = 0;
  for (let r = 0; r < runs.length; r += 2) {
    let i = runs[r]!;
    const len = runs[r + 1]!;
    let o = (i + 1) * SLAB;
    let y0 = slab[o]!;
    let y1 = slab[o + 1]!;
    let y2 = slab[o + 2]!;
    let y3 = slab[o + 3]!;
    let y4 = slab[o + 4]!;
    let y5 = slab[o + 5]!;
    let y6 = slab[o + 6]!;
    let y7 = slab[o + 7]!;
    for (let q = 0; q < len; q++, i--, t++) {
      const c = cs[2 * t]!;
      const s = cs[2 * t + 1]!;
      o = i * SLAB;
      let x = slab[o]!;
      slab[o + 8] = s * x + c * y0;
      y0 = c * x - s * y0;
      x = slab[o + 1]!;
      slab[o + 9] = s * x + c * y1;
      y1 = c * x - s * y1;
      x = slab[o + 2]!;
      slab[o + 10] = s * x + c * y2;
      y2 = c * x - s * y2;
      x = slab[o + 3]!;
      slab[o + 11] = s * x + c * y3;
      y3 = c * x - s * y3;
      x = slab[o + 4]!;
      slab[o + 12] = s * x + c * y4;
      y4 = c * x - s * y4;
      x = slab[o + 5]!;
      slab[o + 13] = s * x + c * y5;
      y5 = c * x - s * y5;
      x = slab[o + 6]!;
      slab[o + 14] = s * x + c * y6;
      y6 = c * x - s * y6;
      x = slab[o + 7]!;
      slab[o + 15] = s * x + c * y7;
      y7 = c * x - s * y7;
    }
    o = (i + 1) * SLAB;
    slab[o] = y0;
    slab[o + 1] = y1;
    slab[o + 2] = y2;
    slab[o + 3] = y3;
    slab[o + 4] = y4;
    slab[o + 5] = y5;
    slab[o + 6] = y6;
    slab[o + 7] = y7;
  }
}

/** Eigenvalues ascending with their eigenvector rows in the same order. */
function sortEigen(values: Float64Array, rows: Float64Array, n: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => values[x]! - values[y]!);
  const sortedValues = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    sortedValues[dst] = values[src]!;
    vectors.set(rows.subarray(src * n, (src + 1) * n), dst * n);
  });
  return { values: sortedValues, vectors };
}
