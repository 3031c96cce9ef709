// The one tolerance helper of the test suite: |a - b| <= atol + rtol * |b| elementwise,
// with a message that names the worst element when it fails.

export interface CloseReport {
  readonly ok: boolean;
  readonly worstIndex: number;
  readonly worstA: number;
  readonly worstB: number;
  readonly maxAbsErr: number;
  readonly maxRelErr: number;
}

export function compareClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol: number,
): CloseReport {
  if (a.length !== b.length) throw new Error(`allClose: lengths differ (${a.length} vs ${b.length})`);
  let ok = true;
  let worst = -1;
  let worstExcess = -Infinity;
  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const err = Math.abs(x - y);
    const tol = atol + rtol * Math.abs(y);
    if (!(err <= tol)) ok = false; // NaN fails too
    const excess = Number.isNaN(err) ? Infinity : err - tol;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
    if (err > maxAbs || Number.isNaN(err)) maxAbs = Number.isNaN(err) ? NaN : err;
    const rel = err / Math.max(Math.abs(y), 1e-30);
    if (rel > maxRel) maxRel = rel;
  }
  return {
    ok,
    worstIndex: worst,
    worstA: worst >= 0 ? a[worst]! : NaN,
    worstB: worst >= 0 ? b[worst]! : NaN,
    maxAbsErr: maxAbs,
    maxRelErr: maxRel,
  };
}

/** Throws with the worst element if a and b are not close. */
export function allClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rtol: number,
  atol: number,
  what = 'values',
): void {
  const r = compareClose(a, b, rtol, atol);
  if (!r.ok) {
    throw new Error(
      `${what} not close (rtol ${rtol}, atol ${atol}): at [${r.worstIndex}] got ${r.worstA}, expected ${r.worstB}; ` +
        `max abs err ${r.maxAbsErr.toExponential(3)}, max rel err ${r.maxRelErr.toExponential(3)}`,
    );
  }
}

/** Relative error ||a - b|| / ||b|| in float64. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}
