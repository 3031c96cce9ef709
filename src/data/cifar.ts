// CIFAR-10 binary batches (cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin): records of
// 1 label byte followed by 3072 pixel bytes, the R, G and B planes of a 32x32 image, each row-major,
// which is exactly our CHW layout. Accepts one .bin file or a folder (the batches folder or its parent).
// Memory: n * 3072 bytes (150 MB for the 50,000 training images).

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, U8Dataset } from './dataset.js';

export const CIFAR_RECORD = 1 + 3 * 32 * 32;

export interface CifarOptions {
  /** For a folder: the five data_batch_*.bin (train, default) or test_batch.bin (test). */
  split?: 'train' | 'test';
}

/** The batch files a path stands for, in order. */
export function cifarFiles(path: string, split: 'train' | 'test' = 'train'): string[] {
  if (!existsSync(path)) throw new DataError(`cifar10: ${path} does not exist`);
  if (!statSync(path).isDirectory()) {
    if (/\.(tar\.gz|tgz|tar)$/i.test(path)) {
      throw new DataError(
        `cifar10: ${path} is an archive; extract it first (tar xzf ${path}) and pass the folder`,
      );
    }
    return [path];
  }
  const nested = join(path, 'cifar-10-batches-bin');
  if (existsSync(nested) && statSync(nested).isDirectory()) return cifarFiles(nested, split);
  const names = readdirSync(path);
  const files =
    split === 'test'
      ? names.filter((f) => f === 'test_batch.bin')
      : names
          .filter((f) => /^data_batch_\d+\.bin$/.test(f))
          .sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
  if (files.length === 0) {
    const want = split === 'test' ? 'test_batch.bin' : 'data_batch_1.bin ... data_batch_5.bin';
    throw new DataError(
      `cifar10: no ${want} in ${path}; pass the folder of the CIFAR-10 *binary* version (cifar-10-batches-bin) or one .bin file`,
    );
  }
  return files.map((f) => join(path, f));
}

/** Validates one batch file and returns its bytes. */
function readBatch(file: string): Uint8Array {
  let buf: Uint8Array;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new DataError(`cifar10: cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf.length === 0 || buf.length % CIFAR_RECORD !== 0) {
    throw new DataError(
      `cifar10: ${file} has ${buf.length} bytes, not a multiple of ${CIFAR_RECORD} (1 label + 3072 pixels): is this a CIFAR-10 binary batch? (the Python pickles are not supported)`,
    );
  }
  for (let r = 0; r < buf.length; r += CIFAR_RECORD) {
    if (buf[r]! > 9) {
      throw new DataError(
        `cifar10: ${file} record ${r / CIFAR_RECORD} has label ${buf[r]}, not 0..9: is this a CIFAR-10 (not CIFAR-100) binary batch?`,
      );
    }
  }
  return buf;
}

export function loadCifar10(path: string, opts: CifarOptions = {}): U8Dataset {
  const batches = cifarFiles(path, opts.split ?? 'train').map(readBatch);
  const n = batches.reduce((a, b) => a + b.length / CIFAR_RECORD, 0);
  const per = CIFAR_RECORD - 1;
  const pixels = new Uint8Array(n * per);
  const labels = new Uint8Array(n);
  let k = 0;
  for (const buf of batches) {
    for (let r = 0; r < buf.length; r += CIFAR_RECORD, k++) {
      labels[k] = buf[r]!;
      pixels.set(buf.subarray(r + 1, r + CIFAR_RECORD), k * per);
    }
  }
  return new U8Dataset({
    name: `cifar10:${path}`,
    n,
    channels: 3,
    height: 32,
    width: 32,
    canFlip: true,
    pixels,
    labels,
  });
}
