// The safetensors format (8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then raw little-endian bytes).
// Used for checkpoints, shipped weights and loading diffusers' UNet2DModel files. Browser-safe.

import { describeJson, isJsonObject } from './jsonCheck.js';

export interface SafeTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface SafeTensorsFile {
  readonly tensors: Map<string, SafeTensor>;
  readonly metadata: Record<string, string>;
}

export class SafeTensorsError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'SafeTensorsError';
  }
}

const scratchU32 = new Uint32Array(1);
const scratchF32 = new Float32Array(scratchU32.buffer);

/** IEEE 754 binary16 bits to a number (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** A header entry's fields, type-checked: dtype a string, shape and data_offsets arrays of integers. */
function checkEntry(
  source: string,
  name: string,
  info: unknown,
): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  const bad = (what: string, v: unknown, expected: string): never => {
    throw new SafeTensorsError(source, `tensor ${name}: ${what} is ${describeJson(v)}; expected ${expected}`);
  };
  if (!isJsonObject(info)) bad('its header entry', info, 'an object with dtype, shape and data_offsets');
  const e = info as Record<string, unknown>;
  if (typeof e.dtype !== 'string') bad('dtype', e.dtype, 'a string such as "F32"');
  if (!Array.isArray(e.shape) || !e.shape.every(isCount))
    bad('shape', e.shape, 'an array of non-negative integers, e.g. [64, 3, 3, 3]');
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount))
    bad('data_offsets', off, 'two non-negative integers [begin, end]');
  return e as { dtype: string; shape: number[]; data_offsets: [number, number] };
}

/** Parse a safetensors buffer; F32, F16, BF16 and F64 tensors are converted to float32. */
export function parseSafeTensors(buf: Uint8Array, source = 'safetensors'): SafeTensorsFile {
  if (buf.length < 8)
    throw new SafeTensorsError(source, `only ${buf.length} bytes: too short to be a safetensors file`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = Number(dv.getBigUint64(0, true));
  if (hlen <= 0 || 8 + hlen > buf.length) {
    throw new SafeTensorsError(
      source,
      `header length ${hlen} does not fit in ${buf.length} bytes: truncated or not safetensors`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + hlen)));
  } catch (e) {
    throw new SafeTensorsError(source, `header is not valid JSON (${(e as Error).message}): corrupt file?`);
  }
  if (!isJsonObject(parsed)) {
    throw new SafeTensorsError(
      source,
      `header is ${describeJson(parsed)}; expected a JSON object of tensors`,
    );
  }
  const header = parsed;
  const body = 8 + hlen;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isJsonObject(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        throw new SafeTensorsError(
          source,
          `header "__metadata__" is ${describeJson(info)}; expected an object of string values`,
        );
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = checkEntry(source, name, info);
    const n = shape.reduce((a, b) => a * b, 1);
    const [b0, b1] = data_offsets;
    if (!(b0 >= 0 && b1 >= b0 && body + b1 <= buf.length)) {
      throw new SafeTensorsError(
        source,
        `tensor ${name} data [${b0}, ${b1}) lies outside the file: truncated?`,
      );
    }
    const bytes = buf.subarray(body + b0, body + b1);
    const width = { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
    if (!width)
      throw new SafeTensorsError(
        source,
        `tensor ${name} has dtype ${dtype}; only F32, F16, BF16, F64 are read`,
      );
    if (bytes.length !== n * width) {
      throw new SafeTensorsError(
        source,
        `tensor ${name}: ${bytes.length} bytes for shape [${shape}] of ${dtype}`,
      );
    }
    const data = new Float32Array(n);
    const tdv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      switch (dtype) {
        case 'F32':
          data[i] = tdv.getFloat32(4 * i, true);
          break;
        case 'F64':
          data[i] = tdv.getFloat64(8 * i, true);
          break;
        case 'F16':
          data[i] = f16ToF32(tdv.getUint16(2 * i, true));
          break;
        case 'BF16':
          scratchU32[0] = tdv.getUint16(2 * i, true) << 16;
          data[i] = scratchF32[0]!;
          break;
      }
    }
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}

/** Serialise float32 tensors (in the given order) and string metadata; returns the parts to write. */
export function encodeSafeTensors(
  tensors: Iterable<readonly [string, SafeTensor]>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const datas: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new Error(`safetensors: ${name} has ${t.data.length} values for shape [${t.shape}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + 4 * n] };
    datas.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    off += 4 * n;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const hb = new Uint8Array(raw.length + ((8 - (raw.length % 8)) % 8)).fill(0x20); // space-padded to 8 bytes
  hb.set(raw);
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, BigInt(hb.length), true);
  return [pre, hb, ...datas];
}
