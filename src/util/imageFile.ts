// Writing images to disk (Node only): atomic writes (temporary file, fsync, rename, fsync of the folder),
// so a crash or a reader polling the file never sees a half-written PNG or GIF.

import { writeFileAtomic } from './atomicFile.js';
import { encodeGif, type GifOptions } from './gif.js';
import { encodePng, type RasterImage } from './image.js';

export { writeFileAtomic };

export function writePngAtomic(path: string, img: RasterImage): void {
  writeFileAtomic(path, encodePng(img));
}

export function writeGifAtomic(path: string, frames: readonly RasterImage[], opts: GifOptions = {}): void {
  writeFileAtomic(path, encodeGif(frames, opts));
}
