// numpy's .npy and .npz formats (numpy/lib/format.py, NEP 1): the file format of FID reference statistics
// (`mu` (d,), `sigma` (d, d), float64, as pytorch-fid, TTUR and clean-fid read and write them) and of the
// partial statistics of sharded evaluations.
// .npy: the magic "\x93NUMPY", a version byte pair (1.0: u16 header length, latin-1; 2.0: u32, latin-1;
// 3.0: u32, UTF-8), then a Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces and a newline so the data starts at a multiple of 64 bytes, then the raw data.
// .npz: a ZIP archive of NAME.npy entries (np.savez stores them, np.savez_compressed deflates them).
// Read: <f8, <f4, <f2 (widened to float32), <i8, <i4, |u1 in C order. Written: exactly numpy 1.24's bytes.
// Browser-safe (deflated .npz entries need an inflate function there, see zip.ts).

import { f16ToF32 } from './safetensors.js';
import { type ReadZipOptions, readZip, writeZip } from './zip.js';

export class NpyError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'NpyError';
  }
}

export type NpyDtype = '<f8' | '<f4' | '<f2' | '<i8' | '<i4' | '|u1';

export type NpyData = Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;

export interface NpyArray {
  readonly dtype: NpyDtype;
  /** C (row-major) order; [] for a 0-d array. */
  readonly shape: readonly number[];
  /** Float64Array (<f8), Float32Array (<f4, and <f2 widened exactly), BigInt64Array (<i8), Int32Array, Uint8Array. */
  readonly data: NpyData;
}

/** What encodeNpy / writeNpz take: the dtype follows the array type (Float64Array -> <f8, BigInt64Array -> <i8, ...). */
export interface NpyInput {
  readonly data: Float64Array | Float32Array | BigInt64Array | Int32Array | Uint8Array;
  readonly shape: readonly number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21; // numpy >= 1.24 leaves room to grow the first axis in place
const SUPPORTED: readonly NpyDtype[] = ['<f8', '<f4', '<f2', '<i8', '<i4', '|u1'];

function itemSize(dtype: NpyDtype): number {
  switch (dtype) {
    case '<f8':
    case '<i8':
      return 8;
    case '<f4':
    case '<i4':
      return 4;
    case '<f2':
      return 2;
    case '|u1':
      return 1;
  }
}

/** The data bytes as a typed array of the dtype (copied, so it is aligned and owned). */
function decodeData(bytes: Uint8Array, dtype: NpyDtype, n: number): NpyData {
  const own = new Uint8Array(n * itemSize(dtype)); // a copy, never Buffer.slice's view; little-endian hosts
  own.set(bytes.subarray(0, own.length));
  switch (dtype) {
    case '<f8':
      return new Float64Array(own.buffer, 0, n);
    case '<f4':
      return new Float32Array(own.buffer, 0, n);
    case '<f2': {
      const half = new Uint16Array(own.buffer, 0, n);
      return Float32Array.from(half, f16ToF32);
    }
    case '<i8':
      return new BigInt64Array(own.buffer, 0, n);
    case '<i4':
      return new Int32Array(own.buffer, 0, n);
    case '|u1':
      return own;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The header: a Python literal (dict of str -> str / bool / tuple of int), parsed without evaluating anything

type PyLiteral = string | number | boolean | null | PyLiteral[] | Map<string, PyLiteral>;

function parseLiteral(text: string, fail: (m: string) => never): PyLiteral {
  let i = 0;
  let depth = 0;
  const skip = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const expect = (ch: string) => {
    skip();
    if (text[i] !== ch) fail(`header: expected '${ch}' at column ${i} of ${JSON.stringify(text)}`);
    i++;
  };
  const sequence = (close: string): PyLiteral[] => {
    const items: PyLiteral[] = [];
    for (skip(); text[i] !== close; skip()) {
      items.push(value());
      skip();
      if (text[i] === ',') i++;
      else if (text[i] !== close) fail(`header: expected ',' or '${close}' at column ${i}`);
    }
    i++;
    return items;
  };
  const value = (): PyLiteral => {
    skip();
    const ch = text[i];
    if (ch === '{' || ch === '(' || ch === '[') {
      if (++depth > 8) fail('header: nested too deeply');
      const v = container(ch);
      depth--;
      return v;
    }
    if (ch === "'" || ch === '"') {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) fail('header: an unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^(True|False|None|-?\d+L?)/.exec(text.slice(i));
    if (!word) return fail(`header: unexpected ${JSON.stringify(text.slice(i, i + 12))} at column ${i}`);
    i += word[0].length;
    if (word[0] === 'True' || word[0] === 'False') return word[0] === 'True';
    if (word[0] === 'None') return null;
    return Number.parseInt(word[0], 10);
  };
  const container = (ch: string): PyLiteral => {
    if (ch === '{') {
      i++;
      const map = new Map<string, PyLiteral>();
      for (skip(); text[i] !== '}'; skip()) {
        const key = value();
        if (typeof key !== 'string') fail('header: a dict key is not a string');
        expect(':');
        map.set(key, value());
        skip();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail(`header: expected ',' or '}' at column ${i}`);
      }
      i++;
      return map;
    }
    i++;
    return sequence(ch === '(' ? ')' : ']');
  };
  const v = value();
  skip();
  if (i !== text.length) fail(`header: unexpected text after the dict at column ${i}`);
  return v;
}

function checkDtype(descr: PyLiteral, fail: (m: string) => never): NpyDtype {
  if (typeof descr !== 'string')
    return fail('a structured dtype (descr is a list); only plain numeric arrays are read');
  if ((SUPPORTED as readonly string[]).includes(descr)) return descr as NpyDtype;
  if (descr.startsWith('>')) {
    return fail(
      `dtype '${descr}' is big-endian; only little-endian data is read: re-save with a.astype(a.dtype.newbyteorder('<'))`,
    );
  }
  return fail(`dtype '${descr}' is not supported; only ${SUPPORTED.join(', ')} are read`);
}

function checkShape(shape: PyLiteral, fail: (m: string) => never): number[] {
  const ok =
    Array.isArray(shape) && shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0);
  if (!ok) fail(`header: shape ${JSON.stringify(shape)} is not a tuple of non-negative integers`);
  return shape as number[];
}

interface Header {
  readonly dtype: NpyDtype;
  readonly shape: number[];
  readonly dataOffset: number;
}

function readHeader(bytes: Uint8Array, fail: (m: string) => never): Header {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    fail('not a .npy file (no \\x93NUMPY magic)');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major !== 1 && major !== 2 && major !== 3)
    fail(`.npy format version ${major}.${bytes[7]} is not read (1 to 3 are)`);
  if (major > 1 && bytes.length < 12) fail('truncated: the header length is missing');
  const [lenSize, hlen] = major === 1 ? [2, view.getUint16(8, true)] : [4, view.getUint32(8, true)];
  const start = 8 + lenSize;
  if (start + hlen > bytes.length)
    fail(`truncated: the ${hlen}-byte header runs past the ${bytes.length}-byte file`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + hlen));
  const dict = parseLiteral(text, fail);
  if (!(dict instanceof Map)) return fail('header: not a dict');
  for (const key of ['descr', 'fortran_order', 'shape']) if (!dict.has(key)) fail(`header: no '${key}' key`);
  if (dict.size !== 3)
    fail(`header: keys ${[...dict.keys()].join(', ')}; expected descr, fortran_order, shape`);
  const fortran = dict.get('fortran_order');
  if (typeof fortran !== 'boolean') fail('header: fortran_order is not True or False');
  const dtype = checkDtype(dict.get('descr')!, fail);
  const shape = checkShape(dict.get('shape')!, fail);
  if (fortran && shape.filter((d) => d > 1).length > 1) {
    fail('the array is in Fortran (column-major) order; re-save it with np.save(f, np.ascontiguousarray(a))');
  }
  return { dtype, shape, dataOffset: start + hlen };
}

/** Parses one .npy file; `source` (a path or npz member) starts every error message. */
export function readNpy(bytes: Uint8Array, source: string): NpyArray {
  const fail = (message: string): never => {
    throw new NpyError(source, message);
  };
  const { dtype, shape, dataOffset } = readHeader(bytes, fail);
  const n = shape.reduce((a, b) => a * b, 1);
  const need = n * itemSize(dtype);
  const have = bytes.length - dataOffset;
  if (have < need)
    fail(`truncated: shape (${shape}) of ${dtype} needs ${need} data bytes, the file has ${have}`);
  return { dtype, shape, data: decodeData(bytes.subarray(dataOffset), dtype, n) };
}

// ---------------------------------------------------------------------------------------------------------
// Writing

function dtypeOf(data: NpyInput['data']): NpyDtype {
  if (data instanceof Float64Array) return '<f8';
  if (data instanceof Float32Array) return '<f4';
  if (data instanceof BigInt64Array) return '<i8';
  if (data instanceof Int32Array) return '<i4';
  return '|u1';
}

/** Python's repr of a tuple of ints: (), (3,), (3, 4). */
function shapeRepr(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** The header exactly as numpy 1.24's np.save writes it (version 1.0 unless it needs more than 65535 bytes). */
function encodeHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  let dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeRepr(shape)}, }`;
  if (shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const padFor = (prefix: number) => ALIGN - ((prefix + dict.length + 1) % ALIGN); // 1 to 64 spaces
  const v1 = dict.length + padFor(10) + 1 <= 0xffff;
  const prefix = v1 ? 10 : 12;
  const pad = padFor(prefix);
  const hlen = dict.length + pad + 1;
  const out = new Uint8Array(prefix + hlen);
  out.set(MAGIC);
  out[6] = v1 ? 1 : 2;
  const view = new DataView(out.buffer);
  if (v1) view.setUint16(8, hlen, true);
  else view.setUint32(8, hlen, true);
  out.set(new TextEncoder().encode(dict + ' '.repeat(pad)), prefix);
  out[out.length - 1] = 0x0a;
  return out;
}

/** One .npy file (C order, little-endian) of a Float64Array, Float32Array, BigInt64Array, Int32Array or Uint8Array. */
export function encodeNpy(array: NpyInput, what = 'encodeNpy'): Uint8Array {
  const { data, shape } = array;
  const n = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || n !== data.length) {
    throw new NpyError(what, `${data.length} values do not fill shape [${shape}]`);
  }
  const header = encodeHeader(dtypeOf(data), shape);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
  return out;
}

/** The arrays of an .npz (np.savez or np.savez_compressed), by name without '.npy'; other members are skipped. */
export function readNpz(
  bytes: Uint8Array,
  source: string,
  options: ReadZipOptions = {},
): Map<string, NpyArray> {
  const zip = readZip(bytes, source, options);
  const arrays = new Map<string, NpyArray>();
  for (const e of zip.entries) {
    if (!e.name.endsWith('.npy')) continue;
    arrays.set(e.name.slice(0, -4), readNpy(zip.read(e.name), `${source}: ${e.name}`));
  }
  return arrays;
}

/** An .npz that np.load reads: one stored NAME.npy entry per array, in the given order. */
export function writeNpz(arrays: Record<string, NpyInput>): Uint8Array {
  return writeZip(
    Object.entries(arrays).map(([name, a]) => ({
      name: `${name}.npy`,
      data: encodeNpy(a, `writeNpz: ${name}`),
    })),
  );
}
