// CIFAR-10 binary batches on synthetic files: planes land in CHW order, files concatenate in order, errors.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CIFAR_RECORD, loadCifar10 } from './cifar.js';
import { DataError } from './dataset.js';

const dir = mkdtempSync(join(tmpdir(), 'ddpm-cifar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Pixel byte of record r, channel c, row y, column x: distinct per plane. */
const px = (r: number, c: number, y: number, x: number) => (r * 50 + c * 80 + y * 3 + x) % 256;

function batch(records: number[], labels: number[]): Uint8Array {
  const buf = new Uint8Array(records.length * CIFAR_RECORD);
  records.forEach((r, k) => {
    buf[k * CIFAR_RECORD] = labels[k]!;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) buf[k * CIFAR_RECORD + 1 + c * 1024 + y * 32 + x] = px(r, c, y, x);
      }
    }
  });
  return buf;
}

test('cifar10: records become CHW images with labels; a folder reads data_batch_1..N in order', () => {
  const b = join(dir, 'cifar-10-batches-bin');
  mkdirSync(b);
  writeFileSync(join(b, 'data_batch_1.bin'), batch([0, 1], [3, 9]));
  writeFileSync(join(b, 'data_batch_2.bin'), batch([2], [5]));
  writeFileSync(join(b, 'test_batch.bin'), batch([3], [1]));
  const one = loadCifar10(join(b, 'data_batch_1.bin'));
  assert.deepEqual([one.n, one.channels, one.height, one.width, one.canFlip], [2, 3, 32, 32, true]);
  const img = new Float32Array(3 * 1024);
  for (const ds of [one, loadCifar10(b), loadCifar10(dir)]) {
    for (let r = 0; r < ds.n; r++) {
      ds.get(r, img, 0);
      for (const [c, y, x] of [
        [0, 0, 0],
        [1, 5, 7],
        [2, 31, 30],
        [2, 0, 31],
      ] as const) {
        assert.equal(
          img[c * 1024 + y * 32 + x],
          Math.fround(px(r, c, y, x) / 127.5 - 1),
          `record ${r} (${c},${y},${x})`,
        );
      }
    }
  }
  const all = loadCifar10(dir);
  assert.equal(all.n, 3);
  assert.deepEqual(
    [0, 1, 2].map((i) => all.label!(i)),
    [3, 9, 5],
  );
  const t = loadCifar10(dir, { split: 'test' });
  assert.deepEqual([t.n, t.label!(0)], [1, 1]);
});

test('cifar10: truncated file, bad label and empty folder give clear errors', () => {
  const f = join(dir, 'data_batch_x.bin');
  writeFileSync(f, new Uint8Array(30001));
  assert.throws(
    () => loadCifar10(f),
    (e: Error) =>
      e instanceof DataError &&
      e.message.includes(`${f} has 30001 bytes, not a multiple of 3073`) &&
      /CIFAR-10 binary batch/.test(e.message),
  );
  const g = join(dir, 'labels.bin');
  const bad = batch([0], [0]);
  bad[0] = 42;
  writeFileSync(g, bad);
  assert.throws(() => loadCifar10(g), /record 0 has label 42/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.throws(
    () => loadCifar10(empty),
    (e: Error) => e.message.includes(empty) && /data_batch_1\.bin/.test(e.message),
  );
  assert.throws(() => loadCifar10(join(dir, 'nope')), /does not exist/);
});
