// 8-bit images for output: model tensors in [-1, 1] -> bytes (the paper's convention: round((x + 1) * 127.5),
// clamped to 0..255), sample grids, PNG encoding and a small loss-curve plot. No Node-only imports:
// the browser uses this module too (file writing lives in imageFile.ts).

import { encode } from 'fast-png';
import type { Tensor } from './tensor.js';

/** Interleaved (HWC) 8-bit pixels, 1 (gray), 3 (RGB) or 4 (RGBA) channels. */
export interface RasterImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly pixels: Uint8Array;
}

/** One value in [-1, 1] -> byte: round((v + 1) * 127.5), clamped (NaN -> 0). */
export function toByte(v: number): number {
  const b = Math.round((v + 1) * 127.5);
  if (!(b >= 0)) return 0; // negative or NaN
  return Math.min(b, 255);
}

/** One image [C, H, W] (or [1, C, H, W]) in [-1, 1] -> interleaved bytes. */
export function toUint8Image(x: Tensor): RasterImage {
  const s = x.shape.length === 4 && x.shape[0] === 1 ? x.shape.slice(1) : x.shape;
  if (s.length !== 3) throw new Error(`toUint8Image: expected [C, H, W], got [${x.shape.join(', ')}]`);
  const [c, h, w] = s as [number, number, number];
  const pixels = new Uint8Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let k = 0; k < h * w; k++) pixels[k * c + ch] = toByte(x.data[ch * h * w + k]!);
  }
  return { width: w, height: h, channels: c, pixels };
}

export interface GridOptions {
  /** Images per row (default 8, as torchvision's make_grid). */
  nrow?: number;
  /** Pixels between and around images (default 2). */
  padding?: number;
  /** Byte value of the padding and of empty cells (default 255, white). */
  padValue?: number;
}

/**
 * Images [N, C, H, W] in [-1, 1] -> one grid image, laid out as torchvision's make_grid: min(nrow, N)
 * columns, image k at column k % cols, row floor(k / cols), its top-left corner at
 * (padding + col * (W + padding), padding + row * (H + padding)).
 */
export function makeGrid(images: Tensor, opts: GridOptions = {}): RasterImage {
  if (images.shape.length !== 4)
    throw new Error(`makeGrid: expected [N, C, H, W], got [${images.shape.join(', ')}]`);
  const [n, c, h, w] = images.shape as [number, number, number, number];
  const nrow = opts.nrow ?? 8;
  const pad = opts.padding ?? 2;
  const cols = Math.max(1, Math.min(nrow, n));
  const rows = Math.ceil(n / cols);
  const width = cols * (w + pad) + pad;
  const height = rows * (h + pad) + pad;
  const pixels = new Uint8Array(width * height * c).fill(opts.padValue ?? 255);
  const per = c * h * w;
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (w + pad);
    const y0 = pad + Math.floor(k / cols) * (h + pad);
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        const src = k * per + (ch * h + y) * w;
        const dst = ((y0 + y) * width + x0) * c + ch;
        for (let x = 0; x < w; x++) pixels[dst + x * c] = toByte(images.data[src + x]!);
      }
    }
  }
  return { width, height, channels: c, pixels };
}

/** PNG bytes of an 8-bit image. */
export function encodePng(img: RasterImage): Uint8Array {
  if (![1, 2, 3, 4].includes(img.channels)) throw new Error(`encodePng: ${img.channels} channels`);
  return encode({ width: img.width, height: img.height, data: img.pixels, channels: img.channels, depth: 8 });
}

export interface PlotOptions {
  width?: number;
  height?: number;
  /** Logarithmic loss axis (default true; non-positive losses are skipped). */
  logY?: boolean;
  /** Weight of an exponential moving average drawn over the raw curve (default 0.9; 0: none). */
  smoothing?: number;
  /**
   * A second series on its own linear axis (tick marks on the right), drawn in orange with a dot per point:
   * e.g. the FID measured during training.
   */
  secondary?: readonly { step: number; value: number }[];
}

/**
 * A loss curve as an RGB image: white background, black axes with tick marks (x: 10 even steps; y: decades
 * on a log axis, else 10 even steps), the raw curve in light blue and its moving average in dark blue.
 * No text: the axis range belongs in the caption or log beside the image.
 */
export function plotLossCurve(
  points: readonly { step: number; loss: number }[],
  opts: PlotOptions = {},
): RasterImage {
  const width = opts.width ?? 640;
  const height = opts.height ?? 360;
  const logY = opts.logY ?? true;
  const alpha = opts.smoothing ?? 0.9;
  const c = new Canvas(width, height);
  const m = { left: 40, right: 12, top: 12, bottom: 30 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const pts = points.filter(
    (p) => Number.isFinite(p.step) && Number.isFinite(p.loss) && (!logY || p.loss > 0),
  );
  const fy = (v: number) => (logY ? Math.log10(v) : v);
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const p of pts) {
    [x0, x1] = [Math.min(x0, p.step), Math.max(x1, p.step)];
    [y0, y1] = [Math.min(y0, fy(p.loss)), Math.max(y1, fy(p.loss))];
  }
  const sec = (opts.secondary ?? []).filter((p) => Number.isFinite(p.step) && Number.isFinite(p.value));
  for (const p of sec) [x0, x1] = [Math.min(x0, p.step), Math.max(x1, p.step)];
  if (pts.length === 0) [y0, y1] = [0, 1];
  if (pts.length === 0 && sec.length === 0) [x0, x1] = [0, 1];
  else {
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    const margin = (y1 - y0) * 0.05;
    y0 -= margin;
    y1 += margin;
  }
  const px = (s: number) => m.left + ((s - x0) / (x1 - x0)) * pw;
  const py = (v: number) => m.top + (1 - (fy(v) - y0) / (y1 - y0)) * ph;
  const black: Rgb = [0, 0, 0];
  const tickY = (yy: number) => c.line(m.left - 5, yy, m.left, yy, black);
  for (let i = 0; i <= 10; i++) {
    const xx = m.left + (i / 10) * pw;
    c.line(xx, m.top + ph, xx, m.top + ph + 5, black);
  }
  if (logY) {
    for (let d = Math.ceil(y0); d <= Math.floor(y1); d++) tickY(m.top + (1 - (d - y0) / (y1 - y0)) * ph);
  } else {
    for (let i = 0; i <= 10; i++) tickY(m.top + (i / 10) * ph);
  }
  c.line(m.left, m.top, m.left, m.top + ph, black);
  c.line(m.left, m.top + ph, m.left + pw, m.top + ph, black);
  c.polyline(
    pts.map((p) => [px(p.step), py(p.loss)]),
    [150, 190, 240],
  );
  if (alpha > 0 && pts.length > 1) {
    let ema = fy(pts[0]!.loss);
    const smooth = pts.map((p) => {
      ema = alpha * ema + (1 - alpha) * fy(p.loss);
      return [px(p.step), m.top + (1 - (ema - y0) / (y1 - y0)) * ph] as [number, number];
    });
    c.polyline(smooth, [20, 60, 160]);
  }
  if (sec.length > 0) {
    // Right axis: 0 .. the largest value, ten even ticks.
    const top = Math.max(...sec.map((p) => p.value)) * 1.05 || 1;
    const right = m.left + pw;
    c.line(right, m.top, right, m.top + ph, black);
    for (let i = 0; i <= 10; i++)
      c.line(right, m.top + (i / 10) * ph, right + 5, m.top + (i / 10) * ph, black);
    const qy = (v: number) => m.top + (1 - Math.max(v, 0) / top) * ph;
    const orange: Rgb = [230, 120, 20];
    const line = sec.map((p) => [px(p.step), qy(p.value)] as [number, number]);
    c.polyline(line, orange);
    for (const [xx, yy] of line)
      for (let dx = -2; dx <= 2; dx++)
        for (let dy = -2; dy <= 2; dy++) c.set(Math.round(xx) + dx, Math.round(yy) + dy, orange);
  }
  return c.image();
}

type Rgb = readonly [number, number, number];

/** A white RGB canvas with 1-pixel lines (Bresenham). */
class Canvas {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = new Uint8Array(width * height * 3).fill(255);
  }

  set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.pixels[o] = c[0];
    this.pixels[o + 1] = c[1];
    this.pixels[o + 2] = c[2];
  }

  line(xa: number, ya: number, xb: number, yb: number, c: Rgb): void {
    let x = Math.round(xa);
    let y = Math.round(ya);
    const xe = Math.round(xb);
    const ye = Math.round(yb);
    const dx = Math.abs(xe - x);
    const dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1;
    const sy = y < ye ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      this.set(x, y, c);
      if (x === xe && y === ye) return;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y += sy;
      }
    }
  }

  polyline(pts: readonly (readonly [number, number])[], c: Rgb): void {
    if (pts.length === 1) this.set(Math.round(pts[0]![0]), Math.round(pts[0]![1]), c);
    for (let i = 1; i < pts.length; i++) this.line(pts[i - 1]![0], pts[i - 1]![1], pts[i]![0], pts[i]![1], c);
  }

  image(): RasterImage {
    return { width: this.width, height: this.height, channels: 3, pixels: this.pixels };
  }
}
