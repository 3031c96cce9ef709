// The embedded MNIST digits as a dataset, from the bytes of each class (free of Node's modules: the Node
// loader (mnist.ts) reads them from the `mnist` package's JSON, the browser page (web/train.ts) from
// dist-web/data/mnist-digits.bin, which scripts/build-web.mjs writes from the same JSON): classes
// interleaved round-robin (image 0 is the first 0, image 1 the first 1, ..., image 10 the second 0; a class
// that runs out is skipped), so any prefix is class-balanced; each 28x28 image padded to 32x32 with 2
// pixels of background per side by default (the U-Net wants power-of-two sizes). The data of Algorithm 1.

import { DataError, padImages, U8Dataset } from './dataset.js';

export const MNIST_SIZE = 28;
export const MNIST_CLASSES: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

export interface MnistOptions {
  /** Pixels of background added on each side: 2 (default, 32x32) or 0 (28x28). */
  pad?: 0 | 2;
  /** Only these digit classes (default all ten). */
  classes?: readonly number[];
}

/** The dataset from raw[c] = the 28x28 bytes of class opts.classes[c] (all ten by default), one image after another. */
export function mnistFromClasses(raw: readonly Uint8Array[], opts: MnistOptions = {}): U8Dataset {
  const pad = opts.pad ?? 2;
  if (pad !== 0 && pad !== 2) throw new DataError(`mnist: pad must be 0 or 2, got ${pad}`);
  const classes = opts.classes ?? MNIST_CLASSES;
  if (raw.length !== classes.length)
    throw new DataError(`mnist: ${raw.length} classes of bytes for ${classes.length} digit classes`);
  const per = MNIST_SIZE * MNIST_SIZE;
  const counts = raw.map((r) => r.length / per); // images per class
  const n = counts.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(n * per); // [n, 28, 28]
  const labels = new Uint8Array(n);
  let k = 0;
  for (let j = 0; j < Math.max(...counts); j++) {
    for (let c = 0; c < classes.length; c++) {
      if (j >= counts[c]!) continue;
      pixels.set(raw[c]!.subarray(j * per, (j + 1) * per), k * per);
      labels[k++] = classes[c]!;
    }
  }
  const size = MNIST_SIZE + 2 * pad;
  return new U8Dataset({
    name: pad ? 'mnist (28x28 padded to 32x32)' : 'mnist',
    n,
    channels: 1,
    height: size,
    width: size,
    canFlip: false,
    pixels: padImages(pixels, n, 1, MNIST_SIZE, MNIST_SIZE, pad, 0), // [n, 1, size, size]
    labels,
  });
}

/**
 * dist-web/data/mnist-digits.bin: "MNISTDG1", ten uint32 LE image counts (classes 0..9), then each class's
 * 28x28 bytes in turn (round(v * 255) of the package's floats).
 */
export const MNIST_BIN_MAGIC = 'MNISTDG1';

/** The classes' bytes of a mnist-digits.bin file; `source` names it in errors. */
export function parseMnistBin(bytes: Uint8Array, source: string): Uint8Array[] {
  const head = MNIST_BIN_MAGIC.length + 4 * 10;
  const magic = new TextDecoder().decode(bytes.subarray(0, MNIST_BIN_MAGIC.length));
  if (bytes.length < head || magic !== MNIST_BIN_MAGIC)
    throw new DataError(
      `${source}: not a digits file (no ${MNIST_BIN_MAGIC} header); rebuild with npm run build:web`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const per = MNIST_SIZE * MNIST_SIZE;
  let off = head;
  const out: Uint8Array[] = [];
  for (let c = 0; c < 10; c++) {
    const count = dv.getUint32(MNIST_BIN_MAGIC.length + 4 * c, true);
    if (off + count * per > bytes.length)
      throw new DataError(`${source}: truncated in class ${c}; rebuild with npm run build:web`);
    out.push(bytes.subarray(off, off + count * per));
    off += count * per;
  }
  return out;
}
