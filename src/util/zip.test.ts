// ZIP reading against archives written by Python's zipfile, numpy and torch, and one assembled byte by byte
// with every ZIP64 field (reference/make_io_fixtures.py, expected listings and contents in io_zip.json);
// CRC-32 against its check value and zlib; writeZip round trips; and damaged archives (cut, flipped bytes,
// other formats), which must give a ZipError that says what is wrong, never a TypeError or RangeError.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import { hashU32 } from './rng.js';
import { crc32, readZip, writeZip, ZipError } from './zip.js';

const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url)));

interface ListedEntry {
  name: string;
  method: number;
  size: number;
  crc32: number;
  hex: string;
}
const expected: Record<string, ListedEntry[]> = JSON.parse(
  readFileSync(new URL('../../test/fixtures/io_zip.json', import.meta.url), 'utf8'),
);

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Runs fn; it must throw a ZipError whose message matches. */
function throwsZipError(fn: () => unknown, pattern: RegExp, what: string): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ZipError, `${what}: threw ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, pattern, what);
    return;
  }
  assert.fail(`${what}: did not throw`);
}

test('crc32: the CRC-32 check value and zlib.crc32, whole and continued', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  const data = Uint8Array.from({ length: 5000 }, (_, i) => hashU32(7, i) & 0xff);
  assert.equal(crc32(data), zlib.crc32(data));
  assert.equal(crc32(data.subarray(1234), crc32(data.subarray(0, 1234))), zlib.crc32(data));
  for (let start = 0; start < 9; start++) {
    for (let n = 0; n < 40; n++) {
      const part = data.subarray(start, start + n);
      assert.equal(crc32(part), zlib.crc32(part), `bytes ${start}..${start + n}`);
    }
  }
});

test('readZip: ZIP64 archive (sizes and offsets only in ZIP64 extras), zipfile deflate + comment + UTF-8 name', () => {
  for (const file of ['io_zip64.zip', 'io_deflate_comment.zip']) {
    const zip = readZip(fixture(file), file);
    const want = expected[file]!;
    assert.deepEqual(
      zip.entries.map((e) => [e.name, e.method, e.size, e.crc32]),
      want.map((e) => [e.name, e.method, e.size, e.crc32]),
      file,
    );
    for (const e of want) assert.equal(hex(zip.read(e.name)), e.hex, `${file}: ${e.name}`);
    assert.ok(zip.has(want[0]!.name) && !zip.has('nope'));
    throwsZipError(() => zip.read('nope'), /no entry named nope/, file);
  }
});

test('readZip: numpy (force_zip64 local headers, stored and deflated) and torch.save (ZIP64 end record) archives', () => {
  for (const file of ['io_stats.npz', 'io_stats_compressed.npz']) {
    const zip = readZip(fixture(file), file);
    assert.deepEqual(
      zip.entries.map((e) => [e.name, e.method]),
      [
        ['mu.npy', file === 'io_stats.npz' ? 0 : 8],
        ['sigma.npy', file === 'io_stats.npz' ? 0 : 8],
      ],
    );
    for (const e of zip.entries) assert.equal(zip.read(e.name).length, e.size);
  }
  const pth = readZip(fixture('io_state_dict.pth'), 'io_state_dict.pth');
  assert.deepEqual(
    pth.entries.map((e) => e.name).filter((n) => !n.includes('/data/')),
    ['io_state_dict/data.pkl', 'io_state_dict/version'],
  );
  assert.equal(new TextDecoder().decode(pth.read('io_state_dict/version')), '3\n');
});

test('readZip: other compression methods are named and refused', () => {
  const zip = readZip(fixture('io_bzip2.zip'), 'io_bzip2.zip');
  throwsZipError(
    () => zip.read('b.txt'),
    /^io_bzip2\.zip: entry b\.txt uses compression method 12 \(bzip2\); only stored and deflate are read$/,
    'bzip2',
  );
});

test('writeZip: round trip through readZip, deterministic, fixed 1980-01-01 timestamp, UTF-8 names flagged', () => {
  const files = [
    { name: 'a.txt', data: new TextEncoder().encode('hello\n') },
    { name: 'empty', data: new Uint8Array(0) },
    {
      name: 'dir/\u00e9t\u00e9.bin',
      data: Uint8Array.from({ length: 3000 }, (_, i) => hashU32(3, i) & 0xff),
    },
  ];
  const bytes = writeZip(files);
  assert.deepEqual(writeZip(files), bytes);
  const zip = readZip(bytes, 'written');
  assert.deepEqual(
    zip.entries.map((e) => [e.name, e.method, e.size, e.crc32]),
    files.map((f) => [f.name, 0, f.data.length, zlib.crc32(f.data)]),
  );
  for (const f of files) assert.deepEqual(zip.read(f.name), f.data);
  const v = new DataView(bytes.buffer);
  assert.deepEqual([v.getUint16(10, true), v.getUint16(12, true)], [0, 0x21]); // 00:00:00, 1980-01-01
  const third = zip.entries[2]!.localHeaderOffset;
  assert.equal(v.getUint16(third + 6, true), 1 << 11);
  assert.deepEqual(readZip(writeZip([]), 'empty').entries, []);
  assert.throws(() => writeZip([files[0]!, files[0]!]), /entry a\.txt is given twice/);
});

test('readZip: cut archives are "truncated", other files "not a zip archive"', () => {
  for (const file of ['io_zip64.zip', 'io_stats.npz', 'io_state_dict.pth']) {
    const bytes = fixture(file);
    for (const cut of [
      4,
      30,
      200,
      bytes.length >> 1,
      bytes.length - 23,
      bytes.length - 22,
      bytes.length - 1,
    ]) {
      throwsZipError(
        () => readZip(bytes.subarray(0, cut), file),
        /truncated: the end-of-central-directory record is missing/,
        `${file} cut at ${cut}`,
      );
    }
    throwsZipError(() => readZip(bytes.subarray(0, 3), file), /not a zip archive/, `${file} cut at 3`);
  }
  throwsZipError(() => readZip(fixture('io_v2.npy'), 'io_v2.npy'), /^io_v2\.npy: not a zip archive/, 'npy');
  throwsZipError(() => readZip(new Uint8Array(0), 'nothing'), /not a zip archive \(only 0 bytes\)/, 'empty');
});

test('readZip: corrupted data is a CRC mismatch; a corrupted directory offset is named', () => {
  const bytes = fixture('io_zip64.zip').slice();
  const zip = readZip(bytes, 'z');
  const stored = zip.entries[0]!;
  bytes[stored.localHeaderOffset + 30 + stored.name.length + 20 + 5]! ^= 0x01; // inside stored.txt's data
  throwsZipError(
    () => zip.read('stored.txt'),
    /entry stored\.txt: CRC mismatch \(stored 0x[0-9a-f]{8}/,
    'flip',
  );

  const npz = fixture('io_stats.npz').slice();
  const eocd = npz.length - 22;
  new DataView(npz.buffer).setUint32(eocd + 16, npz.length + 100, true);
  throwsZipError(() => readZip(npz, 'npz'), /the central directory .* lies outside/, 'cd offset');
});

test('readZip: every single-byte corruption of three archives is read or refused with a ZipError', () => {
  for (const file of ['io_zip64.zip', 'io_deflate_comment.zip', 'io_stats_compressed.npz']) {
    const original = fixture(file);
    let refused = 0;
    for (let i = 0; i < original.length; i++) {
      const bytes = original.slice();
      bytes[i]! ^= 1 << (hashU32(11, i) & 7);
      try {
        const zip = readZip(bytes, file);
        for (const e of zip.entries) zip.read(e.name);
      } catch (e) {
        if (!(e instanceof ZipError))
          assert.fail(`${file} byte ${i}: ${(e as Error).name}: ${(e as Error).message}`);
        refused++;
      }
    }
    assert.ok(
      refused > original.length / 2,
      `${file}: only ${refused} of ${original.length} corruptions noticed`,
    );
  }
});
