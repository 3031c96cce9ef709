// The dataset interface every loader implements, the DataError type, and the small shared pieces:
// an in-memory dataset of 8-bit pixels (how MNIST, IDX, CIFAR-10 and image folders are all stored),
// padding, channel conversion, resizing (adapt) and byte -> [-1, 1] scaling (the paper's convention: {0..255} -> [-1, 1]).

import { resizeImages } from './resize.js';

export interface ImageDataset {
  readonly name: string;
  /** Number of images. */
  readonly n: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** Horizontal flips are a valid augmentation (false for digits, true for natural images). */
  readonly canFlip: boolean;
  /** Writes image i as C*H*W floats (CHW, row-major) in [-1, 1] at out[offset ...]. */
  get(i: number, out: Float32Array, offset: number): void;
  /** Class label of image i, when the source has labels. */
  label?(i: number): number;
}

/** A data file or folder that is missing, truncated, corrupt or of the wrong format. */
export class DataError extends Error {
  override readonly name = 'DataError';
}

/** Byte value v in 0..255 -> v / 127.5 - 1 in [-1, 1] (0 -> -1, 255 -> 1 exactly). */
export function byteToSigned(v: number): number {
  return v / 127.5 - 1;
}

export interface U8DatasetInit {
  name: string;
  n: number;
  channels: number;
  height: number;
  width: number;
  canFlip: boolean;
  /** n*C*H*W bytes, image-major, each image CHW. */
  pixels: Uint8Array;
  labels?: Uint8Array | Int32Array;
}

/** An eagerly loaded dataset of 8-bit images: n*C*H*W bytes of memory. */
export class U8Dataset implements ImageDataset {
  readonly name: string;
  readonly n: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly canFlip: boolean;
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array | Int32Array | undefined;
  label?: (i: number) => number;
  private readonly per: number;

  constructor(init: U8DatasetInit) {
    this.name = init.name;
    this.n = init.n;
    this.channels = init.channels;
    this.height = init.height;
    this.width = init.width;
    this.canFlip = init.canFlip;
    this.pixels = init.pixels;
    this.labels = init.labels;
    this.per = init.channels * init.height * init.width;
    if (init.pixels.length !== init.n * this.per) {
      throw new Error(
        `U8Dataset ${init.name}: ${init.pixels.length} bytes, expected ${init.n} x ${this.per}`,
      );
    }
    if (init.labels && init.labels.length !== init.n) {
      throw new Error(`U8Dataset ${init.name}: ${init.labels.length} labels for ${init.n} images`);
    }
    if (init.labels) this.label = (i: number) => this.labels![i]!;
  }

  get(i: number, out: Float32Array, offset: number): void {
    if (!(i >= 0 && i < this.n)) throw new RangeError(`${this.name}: index ${i} out of range [0, ${this.n})`);
    const src = this.pixels;
    const base = i * this.per;
    for (let k = 0; k < this.per; k++) out[offset + k] = src[base + k]! / 127.5 - 1;
  }

  /** The raw bytes of image i (a view, CHW). */
  bytes(i: number): Uint8Array {
    return this.pixels.subarray(i * this.per, (i + 1) * this.per);
  }
}

/** Pads every CHW image by `pad` pixels on each side with byte value `fill`. */
export function padImages(
  pixels: Uint8Array,
  n: number,
  c: number,
  h: number,
  w: number,
  pad: number,
  fill = 0,
): Uint8Array {
  if (pad === 0) return pixels;
  const ph = h + 2 * pad;
  const pw = w + 2 * pad;
  const out = new Uint8Array(n * c * ph * pw).fill(fill);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < h; y++) {
      const src = (p * h + y) * w;
      out.set(pixels.subarray(src, src + w), (p * ph + y + pad) * pw + pad);
    }
  }
  return out;
}

/**
 * Converts n CHW images between 1 and 3 channels: gray -> RGB replicates, RGB -> gray uses the
 * ITU-R 601-2 luma (L = 0.299 R + 0.587 G + 0.114 B, rounded), as PIL's convert('L').
 */
export function convertChannels(
  pixels: Uint8Array,
  n: number,
  from: number,
  to: number,
  hw: number,
): Uint8Array {
  if (from === to) return pixels;
  const out = new Uint8Array(n * to * hw);
  if (from === 1 && to === 3) {
    for (let i = 0; i < n; i++) {
      const src = pixels.subarray(i * hw, (i + 1) * hw);
      for (let c = 0; c < 3; c++) out.set(src, (i * 3 + c) * hw);
    }
  } else if (from === 3 && to === 1) {
    for (let i = 0; i < n; i++) {
      const r = i * 3 * hw;
      for (let k = 0; k < hw; k++) {
        const v = pixels[r + k]! * 299 + pixels[r + hw + k]! * 587 + pixels[r + 2 * hw + k]! * 114;
        out[i * hw + k] = Math.round(v / 1000);
      }
    }
  } else {
    throw new DataError(`cannot convert ${from}-channel images to ${to} channels (only 1 <-> 3)`);
  }
  return out;
}

export interface OpenOptions {
  /** Square output size; default: the source's own (32 for MNIST-like data after padding). */
  resolution?: number;
  /** 1 or 3; default: the source's own (folders: 3). */
  channels?: 1 | 3;
}

/** Channel conversion, then short-side resize + centre crop, on an in-memory byte dataset. */
export function adapt(ds: U8Dataset, opts: OpenOptions): U8Dataset {
  const channels = opts.channels ?? ds.channels;
  const res = opts.resolution;
  if (channels === ds.channels && (res === undefined || (res === ds.height && res === ds.width))) return ds;
  const hw = ds.height * ds.width;
  let pixels = convertChannels(ds.pixels, ds.n, ds.channels, channels, hw);
  let { height, width } = ds;
  if (res !== undefined && (res !== height || res !== width)) {
    pixels = resizeImages(pixels, ds.n, channels, height, width, res);
    height = width = res;
  }
  return new U8Dataset({
    name: `${ds.name} (${channels}x${height}x${width})`,
    n: ds.n,
    channels,
    height,
    width,
    canFlip: ds.canFlip,
    pixels,
    ...(ds.labels ? { labels: ds.labels } : {}),
  });
}
