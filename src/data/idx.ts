// IDX files (the MNIST / Fashion-MNIST format), plain or gzipped. Layout: a big-endian u32 magic
// 0x0000TTDD (TT = 0x08 unsigned bytes, DD = number of dimensions), DD big-endian u32 sizes, then the
// data. Images are magic 0x00000803 (n, rows, cols), labels 0x00000801 (n). Like mnist.ts, 28x28 images
// are padded to 32x32 with 2 pixels of background by default. Memory: n * H * W bytes.

import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataError, padImages, U8Dataset } from './dataset.js';

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const hex = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** Reads a file, gunzipping it when it starts with the gzip signature 1f 8b. */
export function readMaybeGzip(file: string, what: string): Uint8Array {
  let buf: Uint8Array;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new DataError(`${what}: cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      return gunzipSync(buf);
    } catch (e) {
      throw new DataError(
        `${what}: ${file} looks gzipped but does not decompress (${(e as Error).message}): the download is truncated or corrupt; fetch it again`,
      );
    }
  }
  return buf;
}

/** Parses an IDX byte array; `expectMagic` is 0x00000803 (images) or 0x00000801 (labels). */
export function parseIdx(buf: Uint8Array, file: string, expectMagic: number): IdxArray {
  const kind = expectMagic === IDX_IMAGES_MAGIC ? 'images' : 'labels';
  if (buf.length < 4)
    throw new DataError(`idx: ${file} has only ${buf.length} bytes, too short for an IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectMagic) {
    throw new DataError(
      `idx: bad magic ${hex(magic)} in ${file}, expected ${hex(expectMagic)} (${kind}): is this an IDX ${kind} file (e.g. train-${kind}-idx${expectMagic & 0xff}-ubyte)?`,
    );
  }
  const ndims = magic & 0xff;
  const header = 4 + 4 * ndims;
  if (buf.length < header) {
    throw new DataError(
      `idx: ${file} is truncated inside its header (${buf.length} bytes, header needs ${header})`,
    );
  }
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const need = header + dims.reduce((a, b) => a * b, 1);
  if (buf.length !== need) {
    const problem = buf.length < need ? 'is truncated' : 'has trailing bytes';
    throw new DataError(
      `idx: ${file} ${problem}: ${buf.length} bytes, but its header [${dims.join(' x ')}] needs ${need}; fetch the file again`,
    );
  }
  return { dims, data: buf.subarray(header) };
}

export function readIdx(file: string, expectMagic: number): IdxArray {
  return parseIdx(readMaybeGzip(file, 'idx'), file, expectMagic);
}

/** train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz] beside it, if that exists. */
export function guessLabelsPath(imagesPath: string): string | undefined {
  const name = basename(imagesPath);
  if (!name.includes('images')) return undefined;
  const base = name.replace('images', 'labels').replace('idx3', 'idx1').replace(/\.gz$/, '');
  for (const cand of [base, `${base}.gz`]) {
    const p = join(dirname(imagesPath), cand);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface IdxOptions {
  /** Labels file; default: guessed from the images file name, none if not found. null: no labels. */
  labelsPath?: string | null;
  /** Background pixels added per side; default 2 for 28x28 images (-> 32x32), else 0. */
  pad?: number;
  /** Horizontal flips allowed (default false: digits). */
  canFlip?: boolean;
  name?: string;
}

export function loadIdx(imagesPath: string, opts: IdxOptions = {}): U8Dataset {
  const img = readIdx(imagesPath, IDX_IMAGES_MAGIC);
  const [n, h, w] = img.dims as [number, number, number];
  if (n === 0 || h === 0 || w === 0) {
    throw new DataError(
      `idx: ${imagesPath} holds ${n} images of ${h} x ${w} pixels: nothing to train on; is it the right file (fetch it again)?`,
    );
  }
  const labelsPath = opts.labelsPath === null ? undefined : (opts.labelsPath ?? guessLabelsPath(imagesPath));
  let labels: Uint8Array | undefined;
  if (labelsPath) {
    const lab = readIdx(labelsPath, IDX_LABELS_MAGIC);
    if (lab.dims[0] !== n) {
      throw new DataError(`idx: ${labelsPath} has ${lab.dims[0]} labels but ${imagesPath} has ${n} images`);
    }
    labels = lab.data;
  }
  const pad = opts.pad ?? (h === 28 && w === 28 ? 2 : 0);
  if (!Number.isInteger(pad) || pad < 0)
    throw new DataError(`idx: pad must be a non-negative integer, got ${pad}`);
  return new U8Dataset({
    name: opts.name ?? `idx:${imagesPath}`,
    n,
    channels: 1,
    height: h + 2 * pad,
    width: w + 2 * pad,
    canFlip: opts.canFlip ?? false,
    pixels: padImages(img.data, n, 1, h, w, pad, 0),
    ...(labels ? { labels } : {}),
  });
}
