// Dropout masks (dropoutMask.ts): the drop rate and scale keep E[mask] = 1, values are independent of each
// other, of the site and of the step key, any slice equals the whole mask's values there, and each value
// is the hash of its definition (written out plainly here, with BigInt arithmetic). The native engine's
// DropoutMul kernel (graph pass kernel-dropout) multiplies by exactly these values.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../engine/native.js';
import { FUSED_DOMAIN, Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { drawDropoutKey, dropoutKeyFeed, fillDropoutMask, fmix32 } from './dropoutMask.js';

const engine = nativeEngine();

/** The definition, value by value, in exact integer arithmetic. */
function reference(n: number, p: number, stepKey: number, site: number, first: number): Float32Array {
  const M = 2n ** 32n;
  const phi = 0x9e3779b9n;
  const fmix = (x: bigint) => {
    let h = x % M;
    h ^= h >> 16n;
    h = (h * 0x85ebca6bn) % M;
    h ^= h >> 13n;
    h = (h * 0xc2b2ae35n) % M;
    return h ^ (h >> 16n);
  };
  const key = fmix(BigInt(stepKey) ^ ((BigInt(site + 1) * phi) % M));
  const thresh = Math.round(p * 65536);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const e = BigInt(first + i);
    const h = fmix((((e / 2n) * phi) % M) + key);
    const u = Number(e % 2n === 1n ? h >> 16n : h & 0xffffn);
    out[i] = u < thresh ? 0 : 65536 / (65536 - thresh);
  }
  return out;
}

describe('dropout masks', () => {
  it('are the hash of their definition, value for value (odd offsets and lengths too)', () => {
    for (const [n, p, key, site, first] of [
      [1, 0.1, 0, 0, 0],
      [7, 0.5, 0xffffffff, 3, 1],
      [4096, 0.1, 123456789, 0, 0],
      [10_001, 0.3, 0x80000000, 17, 2_000_001],
    ] as const) {
      const fast = new Float32Array(n);
      fillDropoutMask(fast, p, key, site, first);
      assert.deepEqual(
        fast,
        reference(n, p, key, site, first),
        `n ${n}, p ${p}, site ${site}, first ${first}`,
      );
    }
    assert.equal(fmix32(0), 0); // the finaliser fixes 0 (one reason the word index is scaled and keyed)
  });

  it('drop a fraction p within 5 standard errors, keep the mean at 1, and are independent', () => {
    const n = 1_000_000;
    const p = 0.1;
    const se = Math.sqrt((p * (1 - p)) / n);
    const masks = [
      [7, 0],
      [7, 1],
      [8, 0],
    ].map(([key, site]) => {
      const m = new Float32Array(n);
      fillDropoutMask(m, p, key!, site!);
      return m;
    });
    for (const m of masks) {
      const zeros = m.filter((v) => v === 0).length;
      assert.ok(Math.abs(zeros / n - p) < 5 * se, `drop rate ${zeros / n}`);
      const mean = m.reduce((a, v) => a + v, 0) / n;
      assert.ok(Math.abs(mean - 1) < (5 * se) / (1 - p), `mean ${mean}`);
      assert.ok(m.every((v) => v === 0 || Math.abs(v - 1 / (1 - p)) < 1e-4));
    }
    // Pairs dropped together at rate p^2: neighbours in a word, neighbouring words, other site, other key.
    const both = (a: Float32Array, b: Float32Array, shift: number) => {
      let k = 0;
      for (let i = 0; i + shift < n; i++) if (a[i] === 0 && b[i + shift] === 0) k++;
      return k / (n - shift);
    };
    const se2 = Math.sqrt((p * p * (1 - p * p)) / n);
    const [a, otherSite, otherKey] = masks as [Float32Array, Float32Array, Float32Array];
    for (const [name, r] of [
      ['same word', both(a, a, 1)],
      ['next word', both(a, a, 2)],
      ['other site', both(a, otherSite, 0)],
      ['other key', both(a, otherKey, 0)],
    ] as const) {
      assert.ok(Math.abs(r - p * p) < 5 * se2, `${name}: both dropped at rate ${r}, expected ${p * p}`);
    }
  });

  it('give any slice the values the whole mask has there (micro-batch rows)', () => {
    const n = 1001;
    const whole = new Float32Array(n);
    fillDropoutMask(whole, 0.3, 99, 2);
    for (const pieces of [[1, 1, 1], [3, 4, 5], [7], [2, 9, 1, 6], [0, 5, 0, 3]]) {
      let at = 0;
      for (const k of pieces) {
        const part = new Float32Array(k);
        fillDropoutMask(part, 0.3, 99, 2, at);
        assert.deepEqual(part, whole.subarray(at, at + k), `pieces ${pieces}`);
        at += k;
      }
    }
  });

  it('take one draw of the Rng per step, so a resumed run draws the same masks', () => {
    const r = new Rng(9);
    const st = r.getState();
    const k1 = drawDropoutKey(r);
    assert.equal(drawDropoutKey(Rng.fromState(st)), k1);
    assert.notEqual(drawDropoutKey(r), k1);
    const a = Rng.fromState(st);
    drawDropoutKey(a);
    const b = Rng.fromState(st);
    b.nextU32();
    assert.deepEqual(a.getState(), b.getState()); // exactly one value of the stream
  });

  describe('the native DropoutMul kernel', {
    skip: engine ? false : 'the native binding is not built',
  }, () => {
    for (const [shape, p, stepKey, site, firstImage] of [
      [[2, 8, 5, 7], 0.1, 0xdeadbeef, 0, 0], // odd values per image: images start mid-word
      [[3, 64, 16, 16], 0.3, 12345, 7, 5], // several parallel units, a micro-batch's offset
      [[1, 3, 1, 1], 0.5, 0xffffffff, 2, 3], // odd offset of the first value
    ] as [number[], number, number, number, number][]) {
      it(`DropoutMul [${shape}] p ${p} site ${site} from image ${firstImage} is x times the fed mask, bit for bit`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = new Rng(site).normalArray(n);
        const g = new Graph();
        const xv = g.input('x', shape);
        const key = g.input('key', [3]);
        const attrs = { p: { floats: [p] }, site };
        const y = g.node('DropoutMul', [xv, key], [shape], attrs, undefined, undefined, FUSED_DOMAIN)[0]!;
        const s = await engine!.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }), {
          threads: 2,
        });
        try {
          const feeds = {
            x: { data: x, shape },
            key: { data: dropoutKeyFeed(stepKey, firstImage), shape: [3] },
          };
          const got = (await s.run(feeds)).y!.data;
          const mask = new Float32Array(n);
          fillDropoutMask(mask, p, stepKey, site, firstImage * (n / shape[0]!));
          allClose(
            got,
            x.map((v, i) => v * mask[i]!),
            0,
            0,
            'DropoutMul',
          );
          assert.ok(mask.some((v) => v === 0) || n < 8, 'some values dropped');
        } finally {
          await s.release();
        }
      });
    }
  });
});
