// DPM-Solver++ step coefficients against the exponential integrator they discretise (Lu et al. 2022, eq. 9):
// x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0(lambda) dlambda, integrated by
// Simpson's rule for x0(lambda) polynomials. The third-order step is exact for quadratics (so its D2 weight
// is the one of the Taylor expansion), the second-order step for constants, each with local error of the
// next order for the next degree; the first-order step is DDIM's and Euler's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { dpmSolverCoefficients } from './dpmSolver.js';
import { eulerCoefficients } from './euler.js';
import { vpOf } from './sigmaSchedule.js';
import { simpson } from './testing.js';

const lam = (sigma: number) => -Math.log(sigma);

/** The step's exact x_0 part for x0(lambda) = poly(lambda), and the solver's, from sigma_s to sigma_t. */
function stepParts(
  poly: (l: number) => number,
  sigmaS: number,
  sigmaT: number,
  prev: number[],
  order: 1 | 2 | 3,
): { exact: number; solver: number; cx: number } {
  const { sigmaVp } = vpOf(sigmaT);
  const exact = sigmaVp * simpson((l) => Math.exp(l) * poly(l), lam(sigmaS), lam(sigmaT), 4000);
  const { cx, cm } = dpmSolverCoefficients(sigmaS, sigmaT, prev, order);
  const ms = [sigmaS, ...prev].map((s) => poly(lam(s)));
  return { exact, solver: cm.reduce((acc, c, j) => acc + c * ms[j]!, 0), cx };
}

test('the linear part: x_s is scaled by sigma_t / sigma_s (VP sigmas); to sigma = 0 the step returns x_0', () => {
  for (const order of [1, 2, 3] as const) {
    const { cx } = dpmSolverCoefficients(3, 1.2, [5, 8], order);
    allClose([cx], [vpOf(1.2).sigmaVp / vpOf(3).sigmaVp], 1e-15, 0, `order ${order}`);
    assert.deepEqual(dpmSolverCoefficients(0.01, 0, [0.02, 0.05], order), { cx: 0, cm: [1] });
  }
});

test('first order = Euler = DDIM step; every order exact for a constant x0', () => {
  const e = eulerCoefficients(2.5, 0.7);
  const c = dpmSolverCoefficients(2.5, 0.7, [], 1);
  allClose([c.cx, c.cm[0]!], [e.cx, e.cd], 1e-14, 0, 'first order vs Euler');
  for (const order of [1, 2, 3] as const) {
    const p = stepParts(() => 0.37, 2.5, 0.7, [4, 7], order);
    allClose([p.solver], [p.exact], 1e-10, 0, `order ${order}, constant`);
  }
});

test('3M is exact for quadratic x0(lambda) on uneven nodes; 2M and 3M local errors fall at orders 3 and 4', (tc) => {
  const quad = (l: number) => 0.3 - 0.8 * l + 0.45 * l * l;
  for (const [s, t, p1, p2] of [
    [2.5, 0.7, 4, 9],
    [0.3, 0.05, 0.5, 0.6],
    [60, 20, 100, 157],
  ] as const) {
    const p = stepParts(quad, s, t, [p1, p2], 3);
    allClose([p.solver], [p.exact], 1e-9, 1e-12, `3M quadratic, ${s} -> ${t}`);
  }
  // local error on a uniform lambda grid with step h (history h, 2h back): ratios at h -> h / 2
  const localErr = (poly: (l: number) => number, order: 2 | 3, h: number) => {
    const s = 1;
    const p = stepParts(poly, s, s * Math.exp(-h), [s * Math.exp(h), s * Math.exp(2 * h)], order);
    return Math.abs(p.solver - p.exact);
  };
  const linear = (l: number) => 0.2 + 0.9 * l;
  const cubic = (l: number) => 0.1 + 0.5 * l - 0.3 * l * l + 0.7 * l * l * l;
  const r2 = localErr(linear, 2, 0.2) / localErr(linear, 2, 0.1);
  const r3 = localErr(cubic, 3, 0.2) / localErr(cubic, 3, 0.1);
  tc.diagnostic(
    `local error ratios at h -> h / 2: 2M (linear x0) ${r2.toFixed(2)}, 3M (cubic x0) ${r3.toFixed(2)}`,
  );
  assert.ok(Math.abs(Math.log2(r2) - 3) < 0.2, `2M local order ${Math.log2(r2)}`);
  assert.ok(Math.abs(Math.log2(r3) - 4) < 0.2, `3M local order ${Math.log2(r3)}`);
});
