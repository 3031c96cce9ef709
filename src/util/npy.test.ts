// .npy / .npz against files written by numpy 1.24 (reference/make_io_fixtures.py; expected values in
// io_npy.json): FID statistics from np.savez and np.savez_compressed, every supported dtype, format versions
// 2 and 3; encodeNpy byte for byte against np.save's output; writeNpz round trips; and refused or damaged
// files, which must give an NpyError (or ZipError) that says what is wrong, never a TypeError or RangeError.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type NpyArray, NpyError, encodeNpy, readNpy, readNpz, writeNpz } from './npy.js';
import { hashU32 } from './rng.js';
import { readZip, ZipError } from './zip.js';

const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url)));

interface Expected {
  dtype: string;
  shape: number[];
  values: (number | string)[];
}
const expected = JSON.parse(
  readFileSync(new URL('../../test/fixtures/io_npy.json', import.meta.url), 'utf8'),
) as {
  stats: { files: string[]; mu: Expected; sigma: Expected };
  dtypes: Record<string, Expected>;
  'io_v2.npy': Expected;
  'io_v3.npy': Expected;
};

/** Exact comparison: dtype, shape and every value (int64 as BigInt from the JSON's decimal strings). */
function assertArray(got: NpyArray | undefined, want: Expected, what: string): void {
  assert.ok(got, `${what}: missing`);
  assert.equal(got.dtype, want.dtype, what);
  assert.deepEqual(got.shape, want.shape, what);
  const values = want.dtype === '<i8' ? want.values.map((v) => BigInt(v)) : want.values;
  assert.deepEqual(Array.from(got.data as ArrayLike<number | bigint>), values, what);
}

function throwsClearly(fn: () => unknown, pattern: RegExp, what: string): void {
  try {
    fn();
  } catch (e) {
    const ok = e instanceof NpyError || e instanceof ZipError;
    assert.ok(ok, `${what}: threw ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, pattern, what);
    return;
  }
  assert.fail(`${what}: did not throw`);
}

test('readNpz: FID statistics (mu, sigma float64) from np.savez and np.savez_compressed, exactly (also from a Buffer)', () => {
  for (const file of expected.stats.files) {
    const buffer = readFileSync(new URL(`../../test/fixtures/${file}`, import.meta.url)); // a Node Buffer as is
    for (const bytes of [fixture(file), buffer]) {
      const arrays = readNpz(bytes, file);
      assert.deepEqual([...arrays.keys()], ['mu', 'sigma'], file);
      assertArray(arrays.get('mu'), expected.stats.mu, `${file} mu`);
      assertArray(arrays.get('sigma'), expected.stats.sigma, `${file} sigma`);
      assert.ok(arrays.get('sigma')!.data instanceof Float64Array);
    }
  }
});

test('readNpz / readNpy: every supported dtype, 0-d, empty and 3-d arrays, format versions 2.0 and 3.0', () => {
  const arrays = readNpz(fixture('io_dtypes.npz'), 'io_dtypes.npz');
  assert.deepEqual([...arrays.keys()], Object.keys(expected.dtypes));
  for (const [name, want] of Object.entries(expected.dtypes)) assertArray(arrays.get(name), want, name);
  assert.ok(arrays.get('counts')!.data instanceof BigInt64Array);
  assert.ok(arrays.get('f2')!.data instanceof Float32Array);
  for (const file of ['io_v2.npy', 'io_v3.npy'] as const) {
    assert.equal(fixture(file)[6], file === 'io_v2.npy' ? 2 : 3);
    assertArray(readNpy(fixture(file), file), expected[file], file);
  }
});

test('encodeNpy: byte-identical to np.save for float64, float32, int64, int32, uint8 (0-d, empty, 1-3-d)', () => {
  for (const file of ['io_dtypes.npz', 'io_stats.npz']) {
    const zip = readZip(fixture(file), file);
    for (const e of zip.entries) {
      const numpyBytes = zip.read(e.name);
      const a = readNpy(numpyBytes, e.name);
      if (a.dtype === '<f2') continue; // read only
      assert.deepEqual(encodeNpy({ data: a.data, shape: a.shape }), numpyBytes, `${file}: ${e.name}`);
    }
  }
});

test('writeNpz: round trip through readNpz (float64, float32, int64 counts, 0-d, empty), deterministic', () => {
  const d = 7;
  const sigma = Float64Array.from({ length: d * d }, (_, i) => hashU32(1, i) / 2 ** 32 - 0.5);
  const arrays = {
    mu: { data: Float64Array.from({ length: d }, (_, i) => i / 3), shape: [d] },
    sigma: { data: sigma, shape: [d, d] },
    f4: { data: Float32Array.of(1.5, -2.25), shape: [2, 1] },
    count: { data: BigInt64Array.of(50000n), shape: [] },
    big: { data: BigInt64Array.of(-(2n ** 62n), 2n ** 53n + 1n), shape: [2] },
    none: { data: new Float64Array(0), shape: [0, 5] },
  };
  const bytes = writeNpz(arrays);
  assert.deepEqual(writeNpz(arrays), bytes);
  const back = readNpz(bytes, 'written.npz');
  assert.deepEqual([...back.keys()], Object.keys(arrays));
  for (const [name, a] of Object.entries(arrays)) {
    const got = back.get(name)!;
    assert.deepEqual(got.shape, a.shape, name);
    assert.equal(got.data.constructor, a.data.constructor, name);
    assert.deepEqual(
      Array.from(got.data as ArrayLike<number | bigint>),
      Array.from(a.data as ArrayLike<number | bigint>),
      name,
    );
  }
  assert.throws(
    () => writeNpz({ x: { data: new Float64Array(5), shape: [2, 3] } }),
    /writeNpz: x: 5 values do not fill shape \[2,3\]/,
  );
});

test('readNpy: Fortran order and big-endian files (written by numpy) are refused with what to do', () => {
  throwsClearly(
    () => readNpy(fixture('io_fortran.npy'), 'io_fortran.npy'),
    /^io_fortran\.npy: the array is in Fortran \(column-major\) order; re-save it with np\.save\(f, np\.ascontiguousarray\(a\)\)$/,
    'fortran',
  );
  throwsClearly(
    () => readNpy(fixture('io_bigendian.npy'), 'io_bigendian.npy'),
    /dtype '>f8' is big-endian; only little-endian data is read/,
    'big-endian',
  );
});

/** An .npy with the given header text (padded as numpy pads) and data. */
function npyWithHeader(header: string, data = new Uint8Array(0)): Uint8Array {
  const padded = `${header}${' '.repeat(63 - ((10 + header.length) % 64))}\n`;
  const out = new Uint8Array(10 + padded.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, padded.length, true);
  out.set(new TextEncoder().encode(padded), 10);
  out.set(data, 10 + padded.length);
  return out;
}

test('readNpy: unsupported dtypes, malformed headers and truncated data are named', () => {
  const cases: [string, RegExp][] = [
    [
      "{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }",
      /dtype '<c16' is not supported; only <f8, <f4, <f2, <i8, <i4, \|u1 are read/,
    ],
    [
      "{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }",
      /a structured dtype/,
    ],
    ["{'descr': '<f8', 'shape': (2,), }", /no 'fortran_order' key/],
    [
      "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }",
      /shape \[-2\] is not a tuple of non-negative integers/,
    ],
    [
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}",
      /keys descr, fortran_order, shape, x/,
    ],
    ["{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ", /header: /],
    [`{'descr': '<f8', 'fortran_order': False, 'shape': ${'('.repeat(5000)}`, /header: nested too deeply/],
    [
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
      /truncated: shape \(2,3\) of <f8 needs 48 data bytes, the file has 16/,
    ],
  ];
  for (const [header, pattern] of cases) {
    throwsClearly(
      () => readNpy(npyWithHeader(header, new Uint8Array(16)), 'h.npy'),
      pattern,
      header.slice(0, 60),
    );
  }
  throwsClearly(() => readNpy(new Uint8Array([1, 2, 3]), 'x'), /not a \.npy file/, 'no magic');
  const v1 = fixture('io_v2.npy').slice();
  v1[6] = 4;
  throwsClearly(() => readNpy(v1, 'v4'), /format version 4\.0 is not read/, 'version 4');
});

test('readNpz / readNpy: every cut and single-byte corruption is read or refused with a clear error', () => {
  const npy = readZip(fixture('io_dtypes.npz'), 'z').read('i8.npy').slice();
  for (let cut = 0; cut < npy.length; cut++) {
    throwsClearly(
      () => readNpy(npy.subarray(0, cut), 'cut'),
      /not a \.npy file|truncated|header/,
      `npy cut at ${cut}`,
    );
  }
  for (const bytes of [npy, fixture('io_stats.npz')]) {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes.slice();
      b[i]! ^= 1 << (hashU32(5, i) & 7);
      try {
        if (bytes === npy) readNpy(b, 'flipped');
        else readNpz(b, 'flipped');
      } catch (e) {
        if (!(e instanceof NpyError || e instanceof ZipError)) {
          assert.fail(`byte ${i}: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    }
  }
});
