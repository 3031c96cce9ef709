// perImageNoise: an image's noise does not depend on the batch it is drawn in.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../util/rng.js';
import { imageSeed, perImageNoise } from './imageNoise.js';

describe('perImageNoise', () => {
  it('gives each image the values of its own Rng, whatever the batch split', () => {
    const per = 5;
    const whole = perImageNoise(7, 0, 6);
    const a = [whole(6 * per), whole(6 * per)]; // two calls: x_T, then one z
    const parts = [perImageNoise(7, 0, 2), perImageNoise(7, 2, 4)];
    for (const call of [0, 1]) {
      const got = new Float32Array(6 * per);
      got.set(parts[0]!(2 * per), 0);
      got.set(parts[1]!(4 * per), 2 * per);
      assert.deepEqual(got, a[call]);
    }
    // Image 3's second draw is the second block of per values of Rng(imageSeed(7, 3)).
    const r = new Rng(imageSeed(7, 3));
    r.normalArray(per);
    assert.deepEqual(a[1]!.subarray(3 * per, 4 * per), r.normalArray(per));
  });

  it('refuses a request that is not a whole number of values per image', () => {
    assert.throws(() => perImageNoise(0, 0, 3)(10), /10 values requested for a batch of 3 images/);
  });

  it('gives different images different streams', () => {
    const x = perImageNoise(1, 0, 2)(8);
    assert.notDeepEqual(x.subarray(0, 4), x.subarray(4, 8));
  });
});
