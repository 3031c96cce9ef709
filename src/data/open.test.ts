// openDataset: spec forms, resolution / channel adaptation, detection of bare paths, and its errors.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encode as encodePng } from 'fast-png';
import { allClose } from '../util/allclose.js';
import { CIFAR_RECORD } from './cifar.js';
import { DataError } from './dataset.js';
import { readMnistClass } from './mnist.js';
import {
  checkDataSpec,
  FASHION_MNIST_DIRS,
  fashionMnistPath,
  heldOutSplit,
  openDataset,
  seenInTraining,
} from './open.js';

const root = mkdtempSync(join(tmpdir(), 'ddpm-open-'));
after(() => rmSync(root, { recursive: true, force: true }));

const first = (ds: ReturnType<typeof openDataset>) => {
  const out = new Float32Array(ds.channels * ds.height * ds.width);
  ds.get(0, out, 0);
  return out;
};

test('open: mnist by default at 32x32; resolution 28 unpads, 16 resizes, channels 3 replicates', () => {
  const d = openDataset();
  assert.deepEqual([d.n, d.channels, d.height, d.width], [10000, 1, 32, 32]);
  const d28 = openDataset('mnist', { resolution: 28 });
  assert.deepEqual([d28.height, d28.width], [28, 28]);
  const a = first(d);
  const b = first(d28);
  for (let y = 0; y < 28; y++)
    allClose(
      a.subarray((y + 2) * 32 + 2, (y + 2) * 32 + 30),
      b.subarray(y * 28, y * 28 + 28),
      0,
      0,
      `row ${y}`,
    );
  const d16 = openDataset('mnist', { resolution: 16 });
  assert.deepEqual([d16.height, d16.width, d16.n], [16, 16, 10000]);
  // 2x downscale of the padded image: each output pixel is a weighted mean of a 4x4 neighbourhood.
  const s = first(d16);
  assert.equal(s[0], -1, 'corner stays background');
  assert.ok(Math.max(...s) > 0, 'digit strokes survive');
  const rgb = openDataset('mnist', { channels: 3 });
  const c = first(rgb);
  assert.equal(rgb.channels, 3);
  for (let ch = 0; ch < 3; ch++) allClose(c.subarray(ch * 1024, (ch + 1) * 1024), a, 0, 0, `channel ${ch}`);
});

test('open: bare paths are detected (CIFAR-10 folder, IDX folder or file, image folder)', () => {
  const cifar = join(root, 'cifar');
  mkdirSync(cifar);
  const rec = new Uint8Array(CIFAR_RECORD).fill(200);
  rec[0] = 2;
  writeFileSync(join(cifar, 'data_batch_1.bin'), rec);
  const cds = openDataset(cifar, { resolution: 8 });
  assert.deepEqual([cds.n, cds.channels, cds.height, cds.label!(0)], [1, 3, 8, 2]);
  allClose(first(cds), new Array(3 * 64).fill(200 / 127.5 - 1), 0, 1e-6, 'resized constant CIFAR image');
  assert.equal(openDataset(`cifar10:${join(cifar, 'data_batch_1.bin')}`, { channels: 1 }).channels, 1);

  const idx = join(root, 'idx');
  mkdirSync(idx);
  const buf = new Uint8Array(16 + 2 * 784).fill(255);
  new DataView(buf.buffer).setUint32(0, 0x803);
  new DataView(buf.buffer).setUint32(4, 2);
  new DataView(buf.buffer).setUint32(8, 28);
  new DataView(buf.buffer).setUint32(12, 28);
  writeFileSync(join(idx, 'train-images-idx3-ubyte.gz'), gzipSync(buf));
  writeFileSync(join(idx, 'other.bin.gz'), gzipSync(buf));
  for (const spec of [idx, join(idx, 'other.bin.gz'), `idx:${join(idx, 'train-images-idx3-ubyte.gz')}`]) {
    const ds = openDataset(spec);
    assert.deepEqual([ds.n, ds.height, ds.width], [2, 32, 32], spec);
    const px = first(ds);
    assert.deepEqual([px[0], px[2 * 32 + 2]], [-1, 1], spec);
  }

  const imgs = join(root, 'imgs');
  mkdirSync(imgs);
  writeFileSync(
    join(imgs, 'x.png'),
    encodePng({ width: 20, height: 10, data: new Uint8Array(600).fill(9), channels: 3 }),
  );
  for (const spec of [imgs, `folder:${imgs}`]) {
    const ds = openDataset(spec, { resolution: 4 });
    assert.deepEqual([ds.n, ds.channels, ds.height, ds.canFlip], [1, 3, 4, true], spec);
  }
});

test('open: unknown specs and undetectable files explain what is accepted', () => {
  assert.throws(
    () => openDataset(join(root, 'nothing-here')),
    (e: Error) => e instanceof DataError && /no such file/.test(e.message) && /cifar10:PATH/.test(e.message),
  );
  const odd = join(root, 'odd.dat');
  writeFileSync(odd, 'plain text');
  assert.throws(
    () => openDataset(odd),
    (e: Error) => e.message.includes(odd) && /cannot tell/.test(e.message),
  );
  assert.throws(() => openDataset('mnist', { resolution: 0 }), /resolution/);
  assert.throws(
    () => fashionMnistPath(root),
    (e: Error) => e.message.includes(root),
  );
});

const installed = FASHION_MNIST_DIRS.some((d) => existsSync(join(d, 'train-images-idx3-ubyte.gz')));
test('open: fashion-mnist from the Debian package, or an error saying how to get it', () => {
  if (installed) {
    const ds = openDataset('fashion-mnist');
    assert.deepEqual([ds.n, ds.channels, ds.height, ds.canFlip], [60000, 1, 32, true]);
  } else {
    assert.throws(() => openDataset('fashion-mnist'), /apt-get install dataset-fashion-mnist/);
  }
});

test('open: mnist:test is the last 100 digits of each class in the package, mnist:train the other 9,000', () => {
  const train = openDataset('mnist:train');
  const test = openDataset('mnist:test');
  assert.deepEqual([train.n, test.n, test.height, test.canFlip], [9000, 1000, 32, false]);
  for (let c = 0; c < 10; c++) {
    // Independent of the round-robin order: the class file's own last 100 images, padded 28 -> 32.
    const raw = readMnistClass(c);
    const count = raw.length / 784;
    const rows = [...Array(test.n).keys()].filter((i) => test.label!(i) === c);
    assert.equal(rows.length, 100, `class ${c} in mnist:test`);
    assert.equal([...Array(train.n).keys()].filter((i) => train.label!(i) === c).length, count - 100);
    rows.forEach((i, k) => {
      const img = test.bytes(i);
      const src = raw.subarray((count - 100 + k) * 784, (count - 99 + k) * 784);
      for (let y = 0; y < 28; y++)
        assert.deepEqual(
          img.subarray((y + 2) * 32 + 2, (y + 2) * 32 + 30),
          src.subarray(y * 28, y * 28 + 28),
        );
    });
  }
  assert.equal(openDataset('mnist:test', { resolution: 28 }).height, 28);
  assert.throws(
    () => openDataset('mnist:val'),
    (e: Error) => e instanceof DataError && /mnist:train/.test(e.message) && /mnist:test/.test(e.message),
  );
});

test('open: fashion-mnist:test and :train name the t10k and train files', () => {
  assert.throws(
    () => fashionMnistPath(root, 'test'),
    (e: Error) => e.message.includes(root) && /t10k-images-idx3-ubyte/.test(e.message),
  );
  if (!installed) return;
  const t = openDataset('fashion-mnist:test');
  assert.deepEqual([t.n, t.channels, t.height, t.canFlip, t.labels?.length], [10000, 1, 32, true, 10000]);
  assert.equal(openDataset('fashion-mnist:train').n, 60000);
  const dir = FASHION_MNIST_DIRS.find((d) => existsSync(join(d, 't10k-images-idx3-ubyte.gz')))!;
  assert.equal(openDataset(`fashion-mnist:test:${dir}`).n, 10000);
});

test('open: which data a model saw in training (held-out measurements warn otherwise)', () => {
  // every split of the embedded digits is training data for a model trained on all of them
  for (const s of ['mnist', 'mnist:train', 'mnist:test']) assert.equal(seenInTraining('mnist', s), true, s);
  assert.equal(seenInTraining('mnist:train', 'mnist:test'), false);
  assert.equal(seenInTraining('mnist:train', 'mnist'), true, '9,000 of the 10,000 digits');
  assert.equal(seenInTraining('mnist:test', 'mnist:train'), false);
  // 'fashion-mnist' is its training split; folders are part of the data set's identity
  assert.equal(seenInTraining('fashion-mnist', 'fashion-mnist:test'), false);
  assert.equal(seenInTraining('fashion-mnist', 'fashion-mnist:train'), true);
  assert.equal(seenInTraining('fashion-mnist:/d', 'fashion-mnist:train:/d'), true);
  assert.equal(seenInTraining('fashion-mnist:/d', 'fashion-mnist:train'), false);
  assert.equal(seenInTraining('fashion-mnist', 'mnist'), false);
  assert.equal(seenInTraining('folder:/a', 'folder:/a'), true);
  assert.equal(seenInTraining('folder:/a', 'folder:/b'), false);
  assert.equal(seenInTraining(undefined, 'mnist'), false);
});

test('open: the held-out split of training data is its test split; data with none has none', () => {
  assert.equal(heldOutSplit('fashion-mnist'), 'fashion-mnist:test');
  assert.equal(heldOutSplit('fashion-mnist:train'), 'fashion-mnist:test');
  assert.equal(heldOutSplit('fashion-mnist:/data/fm'), 'fashion-mnist:test:/data/fm');
  assert.equal(heldOutSplit('fashion-mnist:train:/data/fm'), 'fashion-mnist:test:/data/fm');
  assert.equal(heldOutSplit('mnist:train'), 'mnist:test');
  // a model trained on all 10,000 embedded digits, or on a test split, has nothing held out
  for (const s of ['mnist', 'mnist:test', 'fashion-mnist:test', 'cifar10:/x', 'folder:/x', undefined]) {
    assert.equal(heldOutSplit(s), undefined, String(s));
  }
});

test('checkDataSpec: fails as openDataset would for missing data, without reading any; passes what opens', () => {
  const missing = join(root, 'no-such');
  for (const spec of ['nope', `idx:${missing}`, `cifar10:${missing}`, `folder:${missing}`, 'mnist:val']) {
    const opened = (() => {
      try {
        openDataset(spec);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    assert.ok(opened instanceof DataError, `${spec}: openDataset fails`);
    assert.throws(() => checkDataSpec(spec), DataError, spec);
  }
  assert.throws(() => checkDataSpec(`fashion-mnist:test:${root}`), /no t10k-images-idx3-ubyte\[\.gz\] in/);
  assert.throws(() => checkDataSpec('idx:'), /idx: needs a path/);
  for (const spec of ['mnist', 'mnist:test', `folder:${root}`]) checkDataSpec(spec);
});
