// Resize so the short side equals `res`, then centre-crop to res x res (torchvision's
// Resize(res) + CenterCrop(res)). Resampling is PIL-style separable bilinear: a triangle filter whose
// support widens by in/out when downscaling, so downscaling averages over the covered area (antialiased)
// and upscaling is plain bilinear interpolation. Pixel centres sit at (i + 0.5).

export interface ResizeGeometry {
  /** Size after the short-side resize, before cropping. */
  readonly resizedW: number;
  readonly resizedH: number;
  /** Top-left corner of the crop in the resized image. */
  readonly left: number;
  readonly top: number;
}

/** Short side -> res (long side floor(res * long / short), as torchvision), crop offset floor((size - res) / 2). */
export function resizeGeometry(w: number, h: number, res: number): ResizeGeometry {
  const resizedW = w <= h ? res : Math.max(res, Math.floor((res * w) / h));
  const resizedH = w <= h ? Math.max(res, Math.floor((res * h) / w)) : res;
  return {
    resizedW,
    resizedH,
    left: Math.floor((resizedW - res) / 2),
    top: Math.floor((resizedH - res) / 2),
  };
}

interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly maxCount: number;
  /** weights[i * maxCount + k] multiplies input start[i] + k. */
  readonly weights: Float64Array;
}

/** Weights for output pixels first .. first+outCount-1 of an inSize -> outSize resampling. */
function axisWeights(inSize: number, outSize: number, first: number, outCount: number): AxisWeights {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle filter has support 1, widened when downscaling
  const maxCount = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outCount);
  const count = new Int32Array(outCount);
  const weights = new Float64Array(outCount * maxCount);
  for (let i = 0; i < outCount; i++) {
    const center = (first + i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let total = 0;
    for (let x = lo; x < hi; x++) {
      const wgt = Math.max(0, 1 - Math.abs((x + 0.5 - center) / filterScale));
      weights[i * maxCount + x - lo] = wgt;
      total += wgt;
    }
    for (let x = lo; x < hi; x++) weights[i * maxCount + x - lo]! /= total || 1;
    start[i] = lo;
    count[i] = hi - lo;
  }
  return { start, count, maxCount, weights };
}

/**
 * Resizes c planes of h x w (plane-major, any numeric array) so the short side is res and crops the
 * centre res x res. Returns c*res*res unrounded values (Float32Array).
 */
export function resizeCenterCrop(
  src: ArrayLike<number>,
  c: number,
  h: number,
  w: number,
  res: number,
): Float32Array {
  const g = resizeGeometry(w, h, res);
  const out = new Float32Array(c * res * res);
  if (g.resizedW === w && g.resizedH === h) {
    for (let p = 0; p < c; p++) {
      for (let y = 0; y < res; y++) {
        for (let x = 0; x < res; x++)
          out[(p * res + y) * res + x] = src[(p * h + y + g.top) * w + x + g.left]!;
      }
    }
    return out;
  }
  const wx = axisWeights(w, g.resizedW, g.left, res);
  const wy = axisWeights(h, g.resizedH, g.top, res);
  const tmp = new Float64Array(h * res);
  for (let p = 0; p < c; p++) {
    // Horizontal pass: h x w -> h x res.
    for (let y = 0; y < h; y++) {
      const row = (p * h + y) * w;
      for (let x = 0; x < res; x++) {
        let acc = 0;
        const s = wx.start[x]!;
        for (let k = 0; k < wx.count[x]!; k++) acc += wx.weights[x * wx.maxCount + k]! * src[row + s + k]!;
        tmp[y * res + x] = acc;
      }
    }
    // Vertical pass: h x res -> res x res.
    for (let y = 0; y < res; y++) {
      const s = wy.start[y]!;
      for (let x = 0; x < res; x++) {
        let acc = 0;
        for (let k = 0; k < wy.count[y]!; k++)
          acc += wy.weights[y * wy.maxCount + k]! * tmp[(s + k) * res + x]!;
        out[(p * res + y) * res + x] = acc;
      }
    }
  }
  return out;
}

/** Rounds and clamps to bytes. */
export function toBytes(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(x[i]!)));
  return out;
}

/** Resize + centre crop of n CHW byte images to res x res, rounded back to bytes. */
export function resizeImages(
  pixels: Uint8Array,
  n: number,
  c: number,
  h: number,
  w: number,
  res: number,
): Uint8Array {
  if (h === res && w === res) return pixels;
  const per = c * h * w;
  const out = new Uint8Array(n * c * res * res);
  for (let i = 0; i < n; i++) {
    const r = resizeCenterCrop(pixels.subarray(i * per, (i + 1) * per), c, h, w, res);
    out.set(toBytes(r), i * c * res * res);
  }
  return out;
}
