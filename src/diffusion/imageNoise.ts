// Per-image noise streams: image i of a sampling run draws all its noise (x_T and every z of Algorithm 2,
// or DDIM's) from its own generator Rng(hashU32(seed, i)), so an image depends only on the seed and its
// index, not on the batch it was generated in. Evaluations can then change the batch size, or split the
// images over processes (ddpm eval --shard), and still score exactly the same images.

import { hashU32, Rng } from '../util/rng.js';
import type { NoiseFn } from './types.js';

/** The seed of image `index`'s noise stream in a run seeded with `seed`. */
export function imageSeed(seed: number, index: number): number {
  return hashU32(seed >>> 0, index);
}

/**
 * A NoiseFn for a batch holding images first .. first + count - 1: each call of k values (a whole batch of
 * noise, k = count * per) takes per values from every image's own stream, in batch order.
 */
export function perImageNoise(seed: number, first: number, count: number): NoiseFn {
  const rngs = Array.from({ length: count }, (_, i) => new Rng(imageSeed(seed, first + i)));
  return (k: number) => {
    if (k % count !== 0) {
      throw new Error(`perImageNoise: ${k} values requested for a batch of ${count} images`);
    }
    const per = k / count;
    const out = new Float32Array(k);
    for (let i = 0; i < count; i++) out.set(rngs[i]!.normalArray(per), i * per);
    return out;
  };
}
