// Tensor: a dense float32 array with a static shape (row-major, NCHW for images).
// The one data type that crosses layer boundaries (engine, diffusion, data, samplers).

export interface Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(data: Float32Array, shape: readonly number[]): Tensor {
  if (data.length !== sizeOf(shape)) {
    throw new Error(
      `tensor: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${sizeOf(shape)}`,
    );
  }
  return { data, shape: [...shape] };
}

export function zeros(shape: readonly number[]): Tensor {
  return { data: new Float32Array(sizeOf(shape)), shape: [...shape] };
}

/** Rows [start, end) along the first axis, as a view (no copy). */
export function sliceBatch(x: Tensor, start: number, end: number): Tensor {
  const per = sizeOf(x.shape.slice(1));
  return { data: x.data.subarray(start * per, end * per), shape: [end - start, ...x.shape.slice(1)] };
}

/** Concatenate along the first axis. */
export function concatBatch(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new Error('concatBatch: nothing to concatenate');
  const rest = xs[0]!.shape.slice(1);
  let n = 0;
  for (const x of xs) {
    if (x.shape.slice(1).join(',') !== rest.join(',')) {
      throw new Error(`concatBatch: shapes [${x.shape}] and [${xs[0]!.shape}] differ beyond the first axis`);
    }
    n += x.shape[0]!;
  }
  const out = new Float32Array(n * sizeOf(rest));
  let off = 0;
  for (const x of xs) {
    out.set(x.data, off);
    off += x.data.length;
  }
  return { data: out, shape: [n, ...rest] };
}
