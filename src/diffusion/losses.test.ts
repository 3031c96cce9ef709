// normalKl, the tanh CDF and the discretized Gaussian decoder against numerical integration of densities.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { approxStandardNormalCdf, discretizedGaussianLogLikelihood, normalKl } from './losses.js';
import { exactNormalCdf, gaussianPdf, simpson } from './testing.js';

test('normalKl equals the integral of p1 log(p1 / p2) (Simpson, 20000 intervals)', () => {
  const cases: [number, number, number, number][] = [
    [0, 0, 0, 0],
    [0.3, -1, -0.2, 0.5],
    [1.5, Math.log(0.01), 1.4, Math.log(0.02)],
    [-2, 1.2, 0.5, -0.7],
    [0.01, Math.log(5.4e-5), 0.0105, Math.log(1e-4)],
  ];
  const got = normalKl(
    cases.map((c) => c[0]),
    cases.map((c) => c[1]),
    cases.map((c) => c[2]),
    cases.map((c) => c[3]),
  );
  const want = cases.map(([m1, lv1, m2, lv2]) => {
    const s1 = Math.exp(0.5 * lv1);
    const s2 = Math.exp(0.5 * lv2);
    const f = (x: number) => {
      const p = gaussianPdf(x, m1, s1);
      return p === 0 ? 0 : p * (Math.log(p) - Math.log(gaussianPdf(x, m2, s2)));
    };
    return simpson(f, m1 - 14 * s1, m1 + 14 * s1, 20000);
  });
  allClose(got, want, 1e-7, 1e-10, 'normalKl vs integral');
  assert.equal(got[0], 0);
  // scalars broadcast
  allClose(normalKl([0.3, 0.3], -1, 0, 0), normalKl([0.3, 0.3], [-1, -1], [0, 0], [0, 0]), 0, 0, 'broadcast');
});

test('the reference CDF (erfc) agrees with Simpson integration of the density to 1e-7', () => {
  for (const x of [-6, -3.3, -1, -0.2, 0, 0.7, 2.5, 5]) {
    const integral = simpson((u) => gaussianPdf(u, 0, 1), -14, x, 8000);
    assert.ok(Math.abs(exactNormalCdf(x) - integral) < 1e-7, `x=${x}: ${exactNormalCdf(x)} vs ${integral}`);
  }
});

test('approxStandardNormalCdf (tanh form) is within 2e-4 of the exact CDF on [-8, 8]', (t) => {
  let worst = 0;
  for (let x = -8; x <= 8; x += 0.005)
    worst = Math.max(worst, Math.abs(approxStandardNormalCdf(x) - exactNormalCdf(x)));
  t.diagnostic(`max |approx - exact| = ${worst.toExponential(3)}`);
  assert.ok(worst < 2e-4, `max error ${worst}`);
  assert.equal(approxStandardNormalCdf(0), 0.5);
});

const CENTRES = Array.from({ length: 256 }, (_, k) => (2 * k) / 255 - 1);

/** Exact probability of bin k under N(mean, std^2): the edge bins are open. */
function binMass(k: number, mean: number, std: number): number {
  const lo = k === 0 ? Math.min(-1, mean) - 16 * std : CENTRES[k]! - 1 / 255;
  const hi = k === 255 ? Math.max(1, mean) + 16 * std : CENTRES[k]! + 1 / 255;
  return simpson((x) => gaussianPdf(x, mean, std), lo, hi, k === 0 || k === 255 ? 40000 : 200);
}

test('discretizedGaussianLogLikelihood: bin masses match the integrated density; the 256 bins sum to 1', (t) => {
  const cases: [number, number][] = [
    [0.1, 0.05],
    [-0.93, 0.02],
    [0.995, 0.01],
    [-1.2, 0.3],
    [0.4, 0.0074],
  ];
  for (const [mean, std] of cases) {
    const ll = discretizedGaussianLogLikelihood(CENTRES, mean, Math.log(std));
    const p = Array.from(ll, Math.exp);
    const want = CENTRES.map((_, k) => binMass(k, mean, std));
    const maxErr = Math.max(...p.map((v, k) => Math.abs(v - want[k]!)));
    t.diagnostic(`mean ${mean} std ${std}: max |P - P_exact| over bins = ${maxErr.toExponential(3)}`);
    // two CDF evaluations per bin, each within 2e-4 of exact
    allClose(p, want, 0, 4e-4, `bin masses mean=${mean} std=${std}`);
    const total = p.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-9, `bins sum to ${total}`);
  }
});

test('discretizedGaussianLogLikelihood: edge bins are open, tiny masses clamp at log(1e-12)', () => {
  // mean far below -1: nearly all mass in bin 0
  const below = discretizedGaussianLogLikelihood([-1, CENTRES[1]!], -3, Math.log(0.1));
  assert.ok(Math.abs(below[0]!) < 1e-9, `open bottom bin log P = ${below[0]}`);
  assert.equal(below[1], Math.log(1e-12));
  const above = discretizedGaussianLogLikelihood([1, 0], 10, Math.log(0.01));
  assert.ok(Math.abs(above[0]!) < 1e-9, `open top bin log P = ${above[0]}`);
  assert.equal(above[1], Math.log(1e-12));
  // interior bin: symmetric mass about its centre is 2 Phi(1/(255 s)) - 1
  const s = 0.01;
  const mid = discretizedGaussianLogLikelihood([CENTRES[100]!], CENTRES[100]!, Math.log(s))[0]!;
  const exact = Math.log(2 * exactNormalCdf(1 / (255 * s)) - 1);
  assert.ok(Math.abs(mid - exact) < 2e-3, `${mid} vs ${exact}`);
});
