// The embedded MNIST digits: count, shape, range, padding, order, and pixels against the raw package JSON.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { allClose } from '../util/allclose.js';
import { loadMnist, mnistDigitsDir } from './mnist.js';

const raw = (d: number) =>
  JSON.parse(readFileSync(join(mnistDigitsDir(), `${d}.json`), 'utf8')).data as number[];

test('mnist: resolves the package from any working directory', () => {
  const cwd = process.cwd();
  process.chdir(tmpdir());
  try {
    assert.ok(existsSync(join(mnistDigitsDir(), '0.json')));
  } finally {
    process.chdir(cwd);
  }
});

test('mnist: all digits, 1x32x32 padded, range [-1, 1], interleaved classes, pixels match the JSON', () => {
  const counts = Array.from({ length: 10 }, (_, d) => raw(d).length / 784);
  const ds = loadMnist();
  assert.equal(
    ds.n,
    counts.reduce((a, b) => a + b, 0),
  );
  assert.equal(ds.n, 10000);
  assert.deepEqual([ds.channels, ds.height, ds.width, ds.canFlip], [1, 32, 32, false]);

  const img = new Float32Array(32 * 32);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < ds.n; i += 97) {
    ds.get(i, img, 0);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const v = img[y * 32 + x]!;
        min = Math.min(min, v);
        max = Math.max(max, v);
        if (y < 2 || y >= 30 || x < 2 || x >= 30) assert.equal(v, -1, `image ${i} border pixel (${y}, ${x})`);
      }
    }
  }
  assert.equal(min, -1);
  assert.equal(max, 1);

  // Image 10*j + c is the j-th digit of class c (while every class still has images).
  const three = raw(3);
  ds.get(10 * 5 + 3, img, 0);
  assert.equal(ds.label!(53), 3);
  const expected = new Float32Array(32 * 32).fill(-1);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++)
      expected[(y + 2) * 32 + x + 2] = Math.round(three[5 * 784 + y * 28 + x]! * 255) / 127.5 - 1;
  }
  allClose(img, expected, 0, 1e-6, 'mnist image 53 (6th three)');
  // A known pixel: the brightest pixel of the first 1, quantised to a byte.
  const one = raw(1).slice(0, 784);
  const k = one.indexOf(Math.max(...one));
  ds.get(1, img, 0);
  assert.equal(
    Math.round((img[(Math.floor(k / 28) + 2) * 32 + (k % 28) + 2]! + 1) * 127.5),
    Math.round(one[k]! * 255),
  );

  // Class 1 has the most images, so the tail of the order is all ones; labels follow the interleaving.
  assert.equal(ds.label!(ds.n - 1), 1);
  assert.deepEqual(
    Array.from({ length: 12 }, (_, i) => ds.label!(i)),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1],
  );
});

test('mnist: pad 0 gives the raw 28x28 bytes; classes option filters', () => {
  const ds = loadMnist({ pad: 0, classes: [7] });
  assert.deepEqual([ds.n, ds.height, ds.width], [raw(7).length / 784, 28, 28]);
  const img = new Float32Array(784);
  ds.get(2, img, 0);
  const r = raw(7).slice(2 * 784, 3 * 784);
  allClose(
    img,
    r.map((v) => Math.round(v * 255) / 127.5 - 1),
    0,
    1e-6,
    'third seven',
  );
  assert.throws(() => loadMnist({ classes: [10] }), /class 10/);
});
