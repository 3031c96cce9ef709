// Internal elementwise helpers of the diffusion layer: per-sample gathers of float64 coefficient tables
// applied to float32 NCHW tensors. Arithmetic is done in float64 and rounded once when stored.

import { sizeOf, type Tensor } from '../util/tensor.js';

/** Elements per sample (C * H * W) after checking that t has one entry per sample, each in [0, T). */
export function perSample(x: Tensor, t: Int32Array, T: number, what: string): number {
  const n = x.shape[0];
  if (n === undefined || t.length !== n) {
    throw new Error(`${what}: t has ${t.length} entries but x has shape [${x.shape.join(', ')}]`);
  }
  for (let i = 0; i < n; i++) {
    const ti = t[i]!;
    if (!(ti >= 0 && ti < T)) throw new Error(`${what}: t[${i}] = ${ti} is outside [0, ${T})`);
  }
  return n === 0 ? 0 : x.data.length / n;
}

export function assertSameShape(a: Tensor, b: Tensor, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${what}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  }
}

/** out = a[t_n] * x + b[t_n] * y per sample n (y and b optional). */
export function affine(
  x: Tensor,
  t: Int32Array,
  T: number,
  a: Float64Array,
  y?: Tensor,
  b?: Float64Array,
): Tensor {
  const per = perSample(x, t, T, 'affine');
  if (y) assertSameShape(x, y, 'affine');
  const out = new Float32Array(x.data.length);
  for (let n = 0; n < t.length; n++) {
    const an = a[t[n]!]!;
    const bn = b ? b[t[n]!]! : 0;
    const base = n * per;
    if (y) for (let i = base; i < base + per; i++) out[i] = an * x.data[i]! + bn * y.data[i]!;
    else for (let i = base; i < base + per; i++) out[i] = an * x.data[i]!;
  }
  return { data: out, shape: [...x.shape] };
}

/** table[t_n] broadcast over sample n: a tensor with the shape of x. */
export function gather(x: Tensor, t: Int32Array, T: number, table: Float64Array): Tensor {
  const per = perSample(x, t, T, 'gather');
  const out = new Float32Array(x.data.length);
  for (let n = 0; n < t.length; n++) out.fill(table[t[n]!]!, n * per, (n + 1) * per);
  return { data: out, shape: [...x.shape] };
}

/** Clamp to [-1, 1] (the original code's clip_denoised). */
export function clip1(x: Tensor): Tensor {
  return clipTo(x, 1);
}

/** x clipped elementwise to [-r, r]. */
export function clipTo(x: Tensor, r: number): Tensor {
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(r, Math.max(-r, x.data[i]!));
  return { data: out, shape: [...x.shape] };
}

/** Mean over all but the first axis of values laid out like x: [N] in float64 (the original's meanflat). */
export function meanFlat(values: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 0) return out;
  const per = values.length / n;
  for (let s = 0; s < n; s++) {
    let acc = 0;
    for (let i = s * per; i < (s + 1) * per; i++) acc += values[i]!;
    out[s] = acc / per;
  }
  return out;
}

/** Mean over all but the first axis of (a - b)^2: [N]. */
export function meanSquaredDiff(a: Tensor, b: Tensor): Float64Array {
  assertSameShape(a, b, 'meanSquaredDiff');
  const sq = new Float64Array(a.data.length);
  for (let i = 0; i < sq.length; i++) sq[i] = (a.data[i]! - b.data[i]!) ** 2;
  return meanFlat(sq, a.shape[0]!);
}

/** An Int32Array of n copies of t (all samples at the same step). */
export function fullT(n: number, t: number): Int32Array {
  return new Int32Array(n).fill(t);
}

export function batchOf(shape: readonly number[]): number {
  const n = shape[0];
  if (n === undefined || shape.length < 2)
    throw new Error(`expected a batched shape [N, ...], got [${shape}]`);
  return n;
}

export function randomTensor(shape: readonly number[], noise: (n: number) => Float32Array): Tensor {
  const data = noise(sizeOf(shape));
  if (data.length !== sizeOf(shape)) throw new Error(`noise source returned ${data.length} values`);
  return { data, shape: [...shape] };
}
