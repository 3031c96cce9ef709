// Images as the training data sees them, from their bytes (free of Node's modules: the Node loader of image
// folders (folder.ts) and the browser page (web/train.ts: a folder picked or dropped) share them, so both
// read the same pixels from the same files): PNG (fast-png) and JPEG (jpeg-js) decoded, converted to RGB or
// grayscale (alpha is dropped, as PIL's convert('RGB'); gray uses the ITU-R 601-2 luma), resized so the
// short side equals the resolution (antialiased bilinear, resize.ts), centre-cropped, rounded to bytes.

import { convertIndexedToRgb, decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { DataError } from './dataset.js';
import { resizeCenterCrop, toBytes } from './resize.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

/** A decoded image as interleaved 8-bit samples (HWC) with 1..4 channels. */
export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array;
}

function decodePngBytes(bytes: Uint8Array): DecodedImage {
  const png = decodePng(bytes);
  const { width, height } = png;
  if (png.palette) {
    const data = convertIndexedToRgb(png);
    return { width, height, channels: png.palette[0]!.length, data };
  }
  const channels = png.channels;
  if (png.depth === 8) return { width, height, channels, data: new Uint8Array(png.data as Uint8Array) };
  const data = new Uint8Array(width * height * channels);
  if (png.depth === 16) {
    for (let i = 0; i < data.length; i++) data[i] = Math.round(png.data[i]! / 257);
    return { width, height, channels, data };
  }
  // Gray at 1, 2 or 4 bits: packed rows, each starting on a byte boundary.
  const depth = png.depth;
  const rowBytes = Math.ceil((width * depth) / 8);
  const max = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = png.data[y * rowBytes + (bit >> 3)]!;
      const v = (byte >> (8 - depth - (bit & 7))) & max;
      data[y * width + x] = Math.round((v * 255) / max);
    }
  }
  return { width, height, channels, data };
}

/** Decodes PNG or JPEG bytes (detected by signature); `file` names the image in errors. */
export function decodeImage(bytes: Uint8Array, file: string): DecodedImage {
  const isPng =
    bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) {
    throw new DataError(
      `image: ${file} is neither a PNG nor a JPEG (bad signature); convert it (or, in a folder of images, remove it)`,
    );
  }
  const kind = isPng ? 'PNG' : 'JPEG';
  const claim = isPng ? pngClaim(bytes) : jpegClaim(bytes);
  if (claim && claim.bytes > claim.most) {
    throw new DataError(
      `image: ${file} claims ${claim.width} x ${claim.height} pixels, more than its ${bytes.length} bytes of ${kind} can hold; the file is corrupt or crafted: remove or replace it`,
    );
  }
  try {
    if (isPng) return decodePngBytes(bytes);
    const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
    return { width: j.width, height: j.height, channels: 3, data: j.data };
  } catch (e) {
    throw new DataError(
      `image: cannot decode ${file} as ${kind} (${decoderProblem(e)}); the file is corrupt or truncated: remove or replace it`,
    );
  }
}

/**
 * A decoder's failure in words: its own message, unless it is a JavaScript error from inside it (a TypeError
 * from reading past its data, "Unsupported filter: undefined"), which would say nothing to a user.
 */
function decoderProblem(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return e instanceof TypeError || e instanceof RangeError || /\bundefined\b|\bNaN\b/.test(m)
    ? 'its data ends early or is inconsistent'
    : m;
}

/** What an image header claims: its size, the bytes decoding it would allocate, and the most its file allows. */
interface Claim {
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
  readonly most: number;
}

/**
 * The IHDR of a PNG: the filtered scanlines it claims, height * (1 + ceil(width * bits per pixel / 8)) bytes,
 * come out of deflate, which expands at most 1032:1; more than that from this file cannot be real.
 */
function pngClaim(b: Uint8Array): Claim | undefined {
  if (b.length < 29 || String.fromCharCode(b[12]!, b[13]!, b[14]!, b[15]!) !== 'IHDR') return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const width = v.getUint32(16, false);
  const height = v.getUint32(20, false);
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[b[25]!] ?? 4;
  const bytes = height * (1 + Math.ceil((width * samples * Math.max(b[24]!, 8)) / 8));
  return { width, height, bytes, most: 1032 * b.length + 65536 };
}

/**
 * The frame header (SOF) of a JPEG: its pixels. Every 8 x 8 block of the largest component costs at least one
 * bit of entropy-coded data (its DC difference), so a file holds at most 512 pixels per byte.
 */
function jpegClaim(b: Uint8Array): Claim | undefined {
  for (let p = 2; p + 4 <= b.length; ) {
    if (b[p] !== 0xff) return undefined;
    const m = b[p + 1]!;
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd8)) {
      p += 2;
      continue;
    }
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    const sof = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (sof && p + 9 <= b.length) {
      const height = (b[p + 5]! << 8) | b[p + 6]!;
      const width = (b[p + 7]! << 8) | b[p + 8]!;
      return { width, height, bytes: width * height, most: 1024 * b.length + 65536 };
    }
    if (m === 0xda) return undefined; // scan data before a frame header: the decoder says what is wrong
    p += 2 + len;
  }
  return undefined;
}

/** HWC samples -> CHW planes with `channels` (1: luma or gray, 3: RGB or replicated gray); alpha dropped. */
export function toPlanes(img: DecodedImage, channels: 1 | 3): Uint8Array {
  const hw = img.width * img.height;
  const out = new Uint8Array(channels * hw);
  const src = img.data;
  const cin = img.channels;
  const color = cin >= 3;
  for (let k = 0; k < hw; k++) {
    const p = k * cin;
    if (!color) {
      for (let c = 0; c < channels; c++) out[c * hw + k] = src[p]!;
    } else if (channels === 3) {
      out[k] = src[p]!;
      out[hw + k] = src[p + 1]!;
      out[2 * hw + k] = src[p + 2]!;
    } else {
      out[k] = Math.round((src[p]! * 299 + src[p + 1]! * 587 + src[p + 2]! * 114) / 1000);
    }
  }
  return out;
}

/** Convert + resize + crop a decoded image to channels x res x res bytes (CHW); `file` names it in errors. */
export function imageToBytes(img: DecodedImage, file: string, res: number, channels: 1 | 3): Uint8Array {
  if (img.width < 1 || img.height < 1) throw new DataError(`image: ${file} has no pixels`);
  return toBytes(resizeCenterCrop(toPlanes(img, channels), channels, img.height, img.width, res));
}

/** An image has colour when it has RGB samples and some pixel's R, G and B differ (gray saved as RGB is gray). */
export function hasColour(img: DecodedImage): boolean {
  if (img.channels < 3) return false;
  const d = img.data;
  const c = img.channels;
  for (let p = 0; p < d.length; p += c) if (d[p] !== d[p + 1] || d[p + 1] !== d[p + 2]) return true;
  return false;
}
