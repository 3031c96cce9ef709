// Beta schedules against their closed forms, computed independently in float64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { cosineAlphaBar, getBetaSchedule } from './schedules.js';
import { explicitAlphasCumprod } from './testing.js';
import type { BetaScheduleKind } from './types.js';

const KINDS: BetaScheduleKind[] = ['linear', 'cosine', 'quad', 'sigmoid', 'const', 'jsd'];

test('linear: the paper schedule 1e-4 .. 0.02, evenly spaced, for any T', () => {
  for (const T of [1, 2, 7, 1000]) {
    const b = getBetaSchedule('linear', { T });
    assert.equal(b.length, T);
    assert.equal(b[0], 1e-4);
    if (T > 1) assert.equal(b[T - 1], 0.02);
    const want = Array.from({ length: T }, (_, i) => (T === 1 ? 1e-4 : 1e-4 + ((0.02 - 1e-4) * i) / (T - 1)));
    allClose(b, want, 1e-13, 0, `linear T=${T}`);
  }
});

test('quad: square roots are evenly spaced from sqrt(start) to sqrt(end)', () => {
  const T = 300;
  const b = getBetaSchedule('quad', { T, betaStart: 1e-4, betaEnd: 0.02 });
  const r = Array.from(b, Math.sqrt);
  allClose([r[0]!, r[T - 1]!], [Math.sqrt(1e-4), Math.sqrt(0.02)], 1e-14, 0, 'quad ends');
  const d = (Math.sqrt(0.02) - Math.sqrt(1e-4)) / (T - 1);
  allClose(
    r.slice(1).map((v, i) => v - r[i]!),
    new Array(T - 1).fill(d),
    1e-9,
    0,
    'quad sqrt steps',
  );
});

test('const and jsd: betaEnd everywhere; 1/T, 1/(T-1), .., 1', () => {
  allClose(getBetaSchedule('const', { T: 5, betaEnd: 0.3 }), [0.3, 0.3, 0.3, 0.3, 0.3], 0, 0, 'const');
  const T = 6;
  const jsd = getBetaSchedule('jsd', { T });
  allClose(jsd, [1 / 6, 1 / 5, 1 / 4, 1 / 3, 1 / 2, 1], 1e-15, 0, 'jsd');
});

test('sigmoid: start + (end - start) sigmoid(linspace(-6, 6)), symmetric about the midpoint', () => {
  const T = 101;
  const [s, e] = [1e-4, 0.02];
  const b = getBetaSchedule('sigmoid', { T, betaStart: s, betaEnd: e });
  const want = Array.from({ length: T }, (_, i) => s + (e - s) / (1 + Math.exp(-(-6 + (12 * i) / (T - 1)))));
  allClose(b, want, 1e-13, 0, 'sigmoid');
  // sigmoid(x) + sigmoid(-x) = 1, so beta_i + beta_{T-1-i} = start + end
  allClose(
    Array.from(b, (v, i) => v + b[T - 1 - i]!),
    new Array(T).fill(s + e),
    1e-12,
    0,
    'sigmoid symmetry',
  );
  for (let i = 1; i < T; i++) assert.ok(b[i]! > b[i - 1]!, 'sigmoid increases');
});

test('cosine: cumulative product follows f(t/T)/f(0) with f = cos((u + 0.008)/1.008 pi/2)^2, betas <= 0.999', () => {
  for (const T of [10, 1000]) {
    const b = getBetaSchedule('cosine', { T });
    const abar = explicitAlphasCumprod(b);
    const f0 = Math.cos(((0.008 / 1.008) * Math.PI) / 2) ** 2;
    // every step but the last (which is clipped at 0.999) matches the continuous alpha-bar
    const want = Array.from(
      { length: T - 1 },
      (_, t) => Math.cos(((((t + 1) / T + 0.008) / 1.008) * Math.PI) / 2) ** 2 / f0,
    );
    allClose(abar.slice(0, T - 1), want, 1e-9, 1e-15, `cosine abar T=${T}`);
    assert.equal(b[T - 1], 0.999, 'last beta clipped to 0.999');
    assert.ok(Math.max(...b) <= 0.999);
    assert.equal(cosineAlphaBar(0), f0);
  }
});

test('every schedule: T values in (0, 1] for T = 1, 3, 1000; bad inputs throw', () => {
  for (const kind of KINDS) {
    for (const T of [1, 3, 1000]) {
      const b = getBetaSchedule(kind, { T });
      assert.equal(b.length, T, `${kind} T=${T}`);
      for (const v of b) assert.ok(v > 0 && v <= 1, `${kind} T=${T}: ${v}`);
    }
  }
  assert.throws(() => getBetaSchedule('nope' as BetaScheduleKind, { T: 5 }), /unknown beta schedule/);
  assert.throws(() => getBetaSchedule('linear', { T: 0 }), /T must be/);
  assert.throws(() => getBetaSchedule('linear', { T: 5, betaStart: 0 }), /outside/);
});
