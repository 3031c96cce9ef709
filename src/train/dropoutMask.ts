// Dropout masks as a counter-based hash (the U-Net's dropout, paper Appendix B: p = 0.1 on CIFAR-10).
// Value e of a dropout site's mask in one training step is a pure function of (step key, site, e): no
// stream is carried from value to value, so any slice of a mask can be made on its own (a micro-batch's
// rows, one thread's share) and the native engine's DropoutMul kernel makes the same values inside the
// graph, where they never exist as a tensor (no mask memory; graph pass kernel-dropout). Engines without
// that kernel are fed the mask this file fills; both give the same bits (native.test.ts).
//
// The hash: word w = floor(e / 2) of site s under step key k gives h = fmix32(w * 0x9E3779B9 + siteKey),
// siteKey = fmix32(k ^ ((s + 1) * 0x9E3779B9)) (MurmurHash3's finaliser, a bijection of 32-bit words);
// the low 16 bits of h decide value 2w, the high 16 bits value 2w + 1. A value u < round(p 2^16) is
// dropped (0), else kept and scaled by 2^16 / (2^16 - round(p 2^16)), so E[mask] = 1 exactly.

import type { Rng } from '../util/rng.js';

/** MurmurHash3's 32-bit finaliser. */
export function fmix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The key of one site within a step. */
export function siteKey(stepKey: number, site: number): number {
  return fmix32((stepKey ^ Math.imul(site + 1, 0x9e3779b9)) >>> 0);
}

/** One step's key: a single draw of the trainer's Rng (whose state checkpoints save). */
export function drawDropoutKey(rng: Rng): number {
  return rng.nextU32() >>> 0;
}

/**
 * The graph input `dropout.key` of the native DropoutMul kernel: the step key as two 16-bit halves and the
 * first image's index (a micro-batch's offset in the whole batch), each exact in float32.
 */
export function dropoutKeyFeed(stepKey: number, firstImage: number): Float32Array {
  return Float32Array.of(stepKey & 0xffff, stepKey >>> 16, firstImage);
}

/**
 * Fill `out` with values first .. first + out.length - 1 of site `site`'s mask under `stepKey`: 0 with
 * probability p (rounded to a multiple of 2^-16), else 1/(1-p). Written as the float's bits without a
 * branch (about 3 ns a value).
 */
export function fillDropoutMask(
  out: Float32Array,
  p: number,
  stepKey: number,
  site: number,
  first = 0,
): void {
  const thresh = Math.round(p * 65536);
  const keepBits = new Int32Array(Float32Array.of(65536 / (65536 - thresh)).buffer)[0]!;
  const key = siteKey(stepKey, site);
  const bits = new Int32Array(out.buffer, out.byteOffset, out.length);
  const n = out.length;
  const word = (w: number) => {
    let h = (Math.imul(w, 0x9e3779b9) + key) | 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  };
  // (u - thresh) >> 31 is all ones exactly when u < thresh (u, thresh < 2^16): those values are dropped.
  let i = 0;
  let w = Math.floor(first / 2);
  if (first % 2 === 1 && n > 0) bits[i++] = keepBits & ~(((word(w++) >>> 16) - thresh) >> 31);
  for (; i + 1 < n; i += 2) {
    const h = word(w++);
    bits[i] = keepBits & ~(((h & 0xffff) - thresh) >> 31);
    bits[i + 1] = keepBits & ~(((h >>> 16) - thresh) >> 31);
  }
  if (i < n) bits[i] = keepBits & ~(((word(w) & 0xffff) - thresh) >> 31);
}
