// Writing images to disk (Node only): atomic writes (temporary file, fsync, rename, fsync of the folder),
// so a crash or a reader polling the file never sees a half-written PNG or GIF.

import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { encodeGif, type GifOptions } from './gif.js';
import { encodePng, type RasterImage } from './image.js';

/** Writes bytes to path via a hidden temporary file beside it, fsync and rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  const fd = openSync(tmp, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r'); // make the rename itself durable
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export function writePngAtomic(path: string, img: RasterImage): void {
  writeFileAtomic(path, encodePng(img));
}

export function writeGifAtomic(path: string, frames: readonly RasterImage[], opts: GifOptions = {}): void {
  writeFileAtomic(path, encodeGif(frames, opts));
}
