// Animated GIFs of the reverse chain (one grid of samples per frame) with gifenc. Grayscale frames use
// a fixed 256-level gray palette (exact); RGB frames get their own 256-colour palette (PnnQuant, rgb565).
// No Node-only imports: works in the browser too (imageFile.ts writes the bytes to disk).

import * as gifencNs from 'gifenc';
import { type GridOptions, makeGrid, type RasterImage } from './image.js';
import type { Tensor } from './tensor.js';

// gifenc is CommonJS for Node (its exports object under `default`) and ESM for bundlers (named exports):
// take whichever object carries the functions.
type Gifenc = typeof gifencNs.default;
const hasApi = (o: unknown): o is Gifenc => typeof (o as Gifenc | undefined)?.GIFEncoder === 'function';
const gifenc: Gifenc = hasApi(gifencNs) ? gifencNs : (gifencNs as unknown as { default: Gifenc }).default;

export interface GifOptions {
  /** Milliseconds per frame (default 80; GIF stores centiseconds). */
  delayMs?: number;
  /** Milliseconds the last frame is held (default 2000). */
  lastDelayMs?: number;
  /** 0 loops forever (default), -1 plays once, n > 0 loops n extra times. */
  repeat?: number;
}

const GRAY_PALETTE: number[][] = Array.from({ length: 256 }, (_, v) => [v, v, v]);

/** Encodes equally sized 1-, 3- or 4-channel frames as an animated GIF (alpha is ignored). */
export function encodeGif(frames: readonly RasterImage[], opts: GifOptions = {}): Uint8Array {
  if (frames.length === 0) throw new Error('encodeGif: no frames');
  const { width, height, channels } = frames[0]!;
  const gif = gifenc.GIFEncoder();
  frames.forEach((f, i) => {
    if (f.width !== width || f.height !== height || f.channels !== channels) {
      throw new Error(
        `encodeGif: frame ${i} is ${f.width}x${f.height}x${f.channels}, frame 0 is ${width}x${height}x${channels}`,
      );
    }
    const delay = i === frames.length - 1 ? (opts.lastDelayMs ?? 2000) : (opts.delayMs ?? 80);
    const repeat = opts.repeat ?? 0;
    if (channels === 1) {
      gif.writeFrame(f.pixels, width, height, { palette: GRAY_PALETTE, delay, repeat });
    } else if (channels === 3 || channels === 4) {
      const rgba = toRgba(f);
      const palette = gifenc.quantize(rgba, 256);
      gif.writeFrame(gifenc.applyPalette(rgba, palette), width, height, { palette, delay, repeat });
    } else {
      throw new Error(`encodeGif: ${channels} channels (need 1, 3 or 4)`);
    }
  });
  gif.finish();
  return gif.bytes();
}

function toRgba(f: RasterImage): Uint8Array {
  const n = f.width * f.height;
  const out = new Uint8Array(n * 4);
  for (let k = 0; k < n; k++) {
    out[4 * k] = f.pixels[k * f.channels]!;
    out[4 * k + 1] = f.pixels[k * f.channels + 1]!;
    out[4 * k + 2] = f.pixels[k * f.channels + 2]!;
    out[4 * k + 3] = 255;
  }
  return out;
}

/** The reverse chain as a GIF: each [N, C, H, W] tensor in [-1, 1] (x_T ... x_0) becomes one grid frame. */
export function reverseChainGif(
  frames: readonly Tensor[],
  grid: GridOptions = {},
  opts: GifOptions = {},
): Uint8Array {
  return encodeGif(
    frames.map((x) => makeGrid(x, grid)),
    opts,
  );
}
