// BatchLoader: epochs are permutations, batches are deterministic in the seed, a saved state resumes the
// exact stream, and flips happen about half the time only when the dataset and options allow them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ImageDataset } from './dataset.js';
import { BatchLoader, type LoaderState } from './loader.js';

/** Image i: C=2, H=2, W=3, pixel value (i * 100 + k) / 1e4, so every value tells image and position. */
function synthetic(n: number, canFlip: boolean): ImageDataset {
  return {
    name: `synthetic-${n}`,
    n,
    channels: 2,
    height: 2,
    width: 3,
    canFlip,
    get(i, out, offset) {
      for (let k = 0; k < 12; k++) out[offset + k] = (i * 100 + k) / 1e4;
    },
  };
}

const take = (l: BatchLoader, k: number) => Array.from({ length: k }, () => l.next());

test('loader: each epoch is a permutation, batches run across epoch boundaries, shape [B, C, H, W]', () => {
  const l = new BatchLoader(synthetic(10, false), { batchSize: 4, seed: 1 });
  const batches = take(l, 5); // 20 images = 2 epochs
  assert.deepEqual(batches[0]!.x.shape, [4, 2, 2, 3]);
  const idx = batches.flatMap((b) => Array.from(b.indices));
  for (const epoch of [idx.slice(0, 10), idx.slice(10)])
    assert.deepEqual(
      [...epoch].sort((a, b) => a - b),
      [...Array(10).keys()],
    );
  assert.notDeepEqual(idx.slice(0, 10), idx.slice(10), 'epochs are reshuffled');
  assert.notDeepEqual(idx.slice(0, 10), [...Array(10).keys()], 'shuffled at all');
  // Rows hold the images they claim.
  const b = batches[2]!;
  for (let r = 0; r < 4; r++)
    assert.equal(b.x.data[r * 12 + 5], Math.fround((b.indices[r]! * 100 + 5) / 1e4));
  assert.equal(l.epochsSeen, 2);
});

test('loader: same seed, same batches; different seed, different order', () => {
  const a = take(new BatchLoader(synthetic(50, true), { batchSize: 8, seed: 7 }), 9);
  const b = take(new BatchLoader(synthetic(50, true), { batchSize: 8, seed: 7 }), 9);
  const c = take(new BatchLoader(synthetic(50, true), { batchSize: 8, seed: 8 }), 9);
  assert.deepEqual(
    a.map((x) => x.x.data),
    b.map((x) => x.x.data),
  );
  assert.notDeepEqual(
    a.map((x) => Array.from(x.indices)),
    c.map((x) => Array.from(x.indices)),
  );
});

test('loader: a saved state (through JSON) resumes the identical stream in a fresh loader', () => {
  for (const k of [0, 3, 6, 7, 13]) {
    const a = new BatchLoader(synthetic(25, true), { batchSize: 8, seed: 3 });
    take(a, k);
    const saved = JSON.parse(JSON.stringify(a.getState())) as LoaderState;
    const expected = take(a, 6);
    const b = new BatchLoader(synthetic(25, true), { batchSize: 8, seed: 999 });
    take(b, 2);
    b.setState(saved);
    const got = take(b, 6);
    for (let i = 0; i < 6; i++) {
      assert.deepEqual(got[i]!.indices, expected[i]!.indices, `after ${k} batches, batch ${i} indices`);
      assert.deepEqual(got[i]!.flipped, expected[i]!.flipped, `after ${k} batches, batch ${i} flips`);
      assert.deepEqual(got[i]!.x.data, expected[i]!.x.data, `after ${k} batches, batch ${i} pixels`);
    }
    assert.deepEqual(b.getState(), a.getState());
  }
  const l = new BatchLoader(synthetic(25, true), { batchSize: 8 });
  assert.throws(() => l.setState({ ...l.getState(), n: 26 }), /26 images/);
});

test('loader: flips about half the time, only when allowed; rows are mirrored; order ignores the flip option', () => {
  const ds = synthetic(1000, true);
  const l = new BatchLoader(ds, { batchSize: 100, seed: 5 });
  const batches = take(l, 10);
  let flips = 0;
  const img = new Float32Array(12);
  for (const b of batches) {
    for (let r = 0; r < 100; r++) {
      flips += b.flipped[r]!;
      ds.get(b.indices[r]!, img, 0);
      for (let row = 0; row < 4; row++) {
        for (let x = 0; x < 3; x++) {
          const src = b.flipped[r] ? 2 - x : x;
          assert.equal(b.x.data[r * 12 + row * 3 + x], img[row * 3 + src]);
        }
      }
    }
  }
  assert.ok(flips > 430 && flips < 570, `${flips} of 1000 flipped`);
  const noFlipOpt = take(new BatchLoader(ds, { batchSize: 100, seed: 5, flip: false }), 10);
  const digits = take(new BatchLoader(synthetic(1000, false), { batchSize: 100, seed: 5 }), 10);
  for (const bs of [noFlipOpt, digits]) {
    assert.equal(
      bs.reduce((s, b) => s + b.flipped.reduce((a, v) => a + v, 0), 0),
      0,
    );
    bs.forEach((b, i) => {
      assert.deepEqual(b.indices, batches[i]!.indices);
    });
  }
});

test('loader: sequential mode visits 0..n-1 in order and wraps', () => {
  const l = new BatchLoader(synthetic(5, true), { batchSize: 3, sequential: true });
  assert.deepEqual(
    take(l, 3).flatMap((b) => Array.from(b.indices)),
    [0, 1, 2, 3, 4, 0, 1, 2, 3],
  );
  assert.throws(() => new BatchLoader(synthetic(5, true), { batchSize: 0 }), /batchSize/);
});
