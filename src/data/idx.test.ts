// IDX reading on files the test writes (plain and gzipped), its error messages, and Fashion-MNIST if installed.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DataError } from './dataset.js';
import { guessLabelsPath, loadIdx } from './idx.js';
import { FASHION_MNIST_DIRS } from './open.js';

const dir = mkdtempSync(join(tmpdir(), 'ddpm-idx-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function idxBytes(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const buf = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(buf.buffer);
  v.setUint32(0, magic, false);
  dims.forEach((d, i) => {
    v.setUint32(4 + 4 * i, d, false);
  });
  buf.set(data, 4 + 4 * dims.length);
  return buf;
}

const N = 3;
const pixels = Uint8Array.from({ length: N * 28 * 28 }, (_, i) => (i * 37 + 11) % 256);
const labels = Uint8Array.from([4, 0, 9]);

test('idx: round trip with padding, labels found beside the images, plain and gzipped', () => {
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxBytes(0x803, [N, 28, 28], pixels));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x801, [N], labels));
  writeFileSync(join(dir, 'gz-images-idx3-ubyte.gz'), gzipSync(idxBytes(0x803, [N, 28, 28], pixels)));
  writeFileSync(join(dir, 'gz-labels-idx1-ubyte.gz'), gzipSync(idxBytes(0x801, [N], labels)));
  assert.equal(guessLabelsPath(join(dir, 'gz-images-idx3-ubyte.gz')), join(dir, 'gz-labels-idx1-ubyte.gz'));

  for (const file of ['train-images-idx3-ubyte', 'gz-images-idx3-ubyte.gz']) {
    const ds = loadIdx(join(dir, file));
    assert.deepEqual([ds.n, ds.channels, ds.height, ds.width], [N, 1, 32, 32], file);
    assert.deepEqual(
      [0, 1, 2].map((i) => ds.label!(i)),
      [4, 0, 9],
      file,
    );
    const img = new Float32Array(32 * 32);
    for (let i = 0; i < N; i++) {
      ds.get(i, img, 0);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
          const want = inside ? pixels[i * 784 + (y - 2) * 28 + (x - 2)]! / 127.5 - 1 : -1;
          assert.equal(img[y * 32 + x], Math.fround(want), `${file} image ${i} (${y}, ${x})`);
        }
      }
    }
    const raw = loadIdx(join(dir, file), { pad: 0, labelsPath: null });
    assert.deepEqual([raw.height, raw.width, raw.label], [28, 28, undefined]);
    assert.deepEqual(new Uint8Array(raw.pixels), pixels);
  }
});

test('idx: bad magic, truncation, corrupt gzip and label mismatch name the file and the problem', () => {
  const bad = join(dir, 'bad-images-idx3-ubyte');
  writeFileSync(bad, idxBytes(0x12345678, [N, 28, 28], pixels));
  assert.throws(
    () => loadIdx(bad),
    (e: Error) =>
      e instanceof DataError &&
      e.message.includes('bad magic 0x12345678') &&
      e.message.includes(bad) &&
      e.message.includes('expected 0x00000803 (images)'),
  );
  const trunc = join(dir, 'trunc-images-idx3-ubyte');
  writeFileSync(trunc, idxBytes(0x803, [N, 28, 28], pixels).subarray(0, 1000));
  assert.throws(
    () => loadIdx(trunc),
    (e: Error) => e instanceof DataError && /truncated/.test(e.message) && e.message.includes(trunc),
  );
  const gz = join(dir, 'cut-images-idx3-ubyte.gz');
  const zipped = gzipSync(idxBytes(0x803, [N, 28, 28], pixels));
  writeFileSync(gz, zipped.subarray(0, zipped.length >> 1));
  assert.throws(
    () => loadIdx(gz),
    (e: Error) => e instanceof DataError && e.message.includes(gz) && /gzip/.test(e.message),
  );
  const labs = join(dir, 'two-labels-idx1-ubyte');
  writeFileSync(labs, idxBytes(0x801, [2], labels.subarray(0, 2)));
  assert.throws(
    () => loadIdx(join(dir, 'train-images-idx3-ubyte'), { labelsPath: labs }),
    /2 labels but .* 3 images/,
  );
  // A labels file passed as images.
  assert.throws(() => loadIdx(labs), /bad magic 0x00000801/);
});

const fashionDir = FASHION_MNIST_DIRS.find((d) => existsSync(join(d, 'train-images-idx3-ubyte.gz')));
test('idx: Fashion-MNIST from the Debian package', {
  skip: fashionDir
    ? false
    : 'dataset-fashion-mnist is not installed (sudo apt-get install dataset-fashion-mnist)',
}, () => {
  const train = loadIdx(join(fashionDir!, 'train-images-idx3-ubyte.gz'));
  assert.deepEqual([train.n, train.height, train.width], [60000, 32, 32]);
  const test10k = loadIdx(join(fashionDir!, 't10k-images-idx3-ubyte.gz'), { pad: 0 });
  assert.deepEqual([test10k.n, test10k.height], [10000, 28]);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < train.n; i++) counts[train.label!(i)]++;
  assert.deepEqual(counts, new Array(10).fill(6000));
});
