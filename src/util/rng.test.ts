// The seeded generator: xoshiro128** against an independent BigInt transcription of the published
// algorithm, normalArray bit for bit against calls to normal() (spares, odd lengths, state after), and
// the normals' first two moments.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from './rng.js';

/** xoshiro128** (Blackman & Vigna) in BigInt arithmetic, masked to 32 bits. */
function* xoshiroRef(s: readonly number[]): Generator<number> {
  const M = 0xffffffffn;
  const st = s.map((x) => BigInt(x >>> 0));
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  for (;;) {
    const result = (rotl((st[1]! * 5n) & M, 7n) * 9n) & M;
    const t = (st[1]! << 9n) & M;
    st[2]! ^= st[0]!;
    st[3]! ^= st[1]!;
    st[1]! ^= st[2]!;
    st[0]! ^= st[3]!;
    st[2]! ^= t;
    st[3] = rotl(st[3]!, 11n);
    yield Number(result);
  }
}

describe('Rng', () => {
  it('nextU32 is xoshiro128** (against a BigInt transcription)', () => {
    const r = new Rng(2024);
    const ref = xoshiroRef(r.getState().s);
    for (let i = 0; i < 1000; i++) assert.equal(r.nextU32(), ref.next().value);
  });

  for (const [drawnBefore, n] of [
    [0, 0],
    [0, 1],
    [0, 2],
    [1, 5],
    [3, 4],
    [2, 1001],
    [0, 65536],
  ] as const) {
    it(`normalArray(${n}) after ${drawnBefore} normal() calls equals ${n} calls, bit for bit`, () => {
      const a = new Rng(42);
      const b = new Rng(42);
      for (let k = 0; k < drawnBefore; k++) assert.equal(a.normal(), b.normal());
      const got = a.normalArray(n);
      const want = Float32Array.from({ length: n }, () => b.normal());
      assert.deepEqual(Array.from(got), Array.from(want));
      assert.deepEqual(a.getState(), b.getState());
      assert.equal(a.normal(), b.normal());
    });
  }

  it('normals have mean 0 and variance 1 (within 5 standard errors)', () => {
    const n = 200_000;
    const x = new Rng(7).normalArray(n);
    let m = 0;
    for (const v of x) m += v;
    m /= n;
    let v2 = 0;
    for (const v of x) v2 += (v - m) ** 2;
    v2 /= n - 1;
    assert.ok(Math.abs(m) < 5 / Math.sqrt(n), `mean ${m}`);
    assert.ok(Math.abs(v2 - 1) < 5 * Math.sqrt(2 / n), `variance ${v2}`);
  });
});
