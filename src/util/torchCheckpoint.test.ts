// PyTorch checkpoints against files written by torch.save 1.13 (reference/make_io_fixtures.py; the values
// torch's own t.float() gives are in io_state_dict.json): float32/64/16, bfloat16, int64/int32, strided and
// offset views, shared storages, expanded (stride 0) tensors, Parameters, nested dicts, pickle protocols 2 and
// 4, in the zip format and in the legacy format (torch < 1.6), whose storage views (torch < 0.4) are checked
// against torch.load's values. And the files that must be refused with a clear TorchCheckpointError (or
// ZipError), never a TypeError or RangeError, and without running anything: os.system / builtins.eval pickles
// (zip and legacy), missing or short storages, a tensor larger than its storage, a dict that contains itself,
// damaged legacy headers and storage records, cut files, and fuzzed pickles. With $DDPM_INCEPTION set, the
// real pytorch-fid Inception weights are read too.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { hashU32 } from './rng.js';
import { readTorchStateDict, TorchCheckpointError } from './torchCheckpoint.js';
import { readZip, writeZip, ZipError } from './zip.js';

const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url)));

interface ExpectedTensor {
  name: string;
  dtype: string;
  shape: number[];
  stride: number[];
  storage_offset: number;
  float32: number[];
}
const expected = JSON.parse(
  readFileSync(new URL('../../test/fixtures/io_state_dict.json', import.meta.url), 'utf8'),
) as { files: string[]; tensors: ExpectedTensor[] };

// What the hostile fixtures' payloads would create if anything ran them (reference/make_io_fixtures.py).
const HOSTILE_MARKER = '/tmp/ddpm-ts-hostile-pickle-ran';

function throwsClearly(fn: () => unknown, pattern: RegExp, what: string): void {
  try {
    fn();
  } catch (e) {
    const ok = e instanceof TorchCheckpointError || e instanceof ZipError;
    assert.ok(ok, `${what}: threw ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, pattern, what);
    return;
  }
  assert.fail(`${what}: did not throw`);
}

test('readTorchStateDict: every tensor of torch.save files (zip with protocols 2 and 4, legacy) equals torch .float(), in order', () => {
  assert.ok(expected.files.includes('io_state_dict_legacy.pth'));
  const kinds = new Set(expected.tensors.map((t) => t.dtype));
  assert.deepEqual([...kinds].sort(), ['bfloat16', 'float16', 'float32', 'float64', 'int32', 'int64']);
  assert.ok(expected.tensors.some((t) => t.storage_offset > 0 && t.stride[0] === 1 && t.shape.length === 2));
  for (const file of expected.files) {
    const tensors = readTorchStateDict(fixture(file), file);
    assert.deepEqual(
      [...tensors.keys()],
      expected.tensors.map((t) => t.name),
      file,
    );
    for (const want of expected.tensors) {
      const got = tensors.get(want.name)!;
      assert.deepEqual(got.shape, want.shape, `${file}: ${want.name} shape`);
      assert.ok(got.data instanceof Float32Array);
      assert.deepEqual(Array.from(got.data), want.float32, `${file}: ${want.name} (${want.dtype}) values`);
    }
    const a = tensors.get('extra.shared_a')!;
    const b = tensors.get('extra.shared_b')!;
    assert.notEqual(a.data.buffer, b.data.buffer, 'tensors that share a storage get their own arrays');
  }
});

test('readTorchStateDict: the other rebuild functions (_rebuild_tensor, _rebuild_parameter_with_state)', () => {
  const want = JSON.parse(
    readFileSync(new URL('../../test/fixtures/io_rebuild_variants.json', import.meta.url), 'utf8'),
  ).tensors as Record<string, { shape: number[]; float32: number[] }>;
  const tensors = readTorchStateDict(fixture('io_rebuild_variants.pth'), 'variants');
  assert.deepEqual([...tensors.keys()], Object.keys(want));
  for (const [name, w] of Object.entries(want)) {
    assert.deepEqual(tensors.get(name)!.shape, w.shape, name);
    assert.deepEqual(Array.from(tensors.get(name)!.data), w.float32, name);
  }
});

test('readTorchStateDict: a Node Buffer is read as is', () => {
  const buffer = readFileSync(new URL('../../test/fixtures/io_state_dict.pth', import.meta.url));
  const t = readTorchStateDict(buffer, 'buffer').get('0.weight')!;
  assert.deepEqual(Array.from(t.data), expected.tensors[0]!.float32);
});

test('readTorchStateDict: os.system and builtins.eval pickles are refused by name and nothing runs', () => {
  rmSync(HOSTILE_MARKER, { force: true });
  for (const [file, global] of [
    ['io_hostile_os_system.pth', 'os.system'],
    ['io_hostile_eval.pth', 'builtins.eval'],
    ['io_legacy_hostile.pth', 'os.system'],
  ] as const) {
    throwsClearly(
      () => readTorchStateDict(fixture(file), file),
      new RegExp(
        `^${file.replace('.', '\\.')}: refusing to load: the pickle asks for ${global.replace('.', '\\.')}; only tensors and plain containers are read$`,
      ),
      file,
    );
  }
  assert.equal(existsSync(HOSTILE_MARKER), false, 'a hostile payload ran');
});

test('readTorchStateDict: missing or short storages and a tensor larger than its storage are named', () => {
  const cases: [string, RegExp][] = [
    ['io_storage_missing.pth', /storage 1 is missing: the archive has no io_storage_missing\/data\/1/],
    [
      'io_storage_short.pth',
      /storage 0 \(io_storage_short\/data\/0\) has 16 bytes, less than its 9 float32 values \(36 bytes\)/,
    ],
    [
      'io_tensor_overflow.pth',
      /tensor big \(size \(3,3\), stride \(3,1\), offset 0\) needs 9 elements of storage 0, which has 4/,
    ],
    ['io_self_reference.pth', /the dict at me contains itself/],
  ];
  for (const [file, pattern] of cases)
    throwsClearly(() => readTorchStateDict(fixture(file), file), pattern, file);
});

test('readTorchStateDict: other files and damaged archives give clear errors', () => {
  const tar = new Uint8Array(1024);
  tar.set(new TextEncoder().encode('ustar'), 257);
  throwsClearly(
    () => readTorchStateDict(tar, 'old.tar'),
    /^old\.tar: this is the tar checkpoint format of early torch\.save versions, .*re-save it with a current torch: torch\.save\(torch\.load\(OLD, map_location='cpu'\), NEW\)$/,
    'tar',
  );
  throwsClearly(() => readTorchStateDict(fixture('io_v2.npy'), 'x.npy'), /^x\.npy: not a zip archive/, 'npy');
  throwsClearly(
    () => readTorchStateDict(fixture('io_stats.npz'), 'stats.npz'),
    /no <name>\/data\.pkl entry \(entries: mu\.npy, sigma\.npy\): not a torch\.save checkpoint/,
    'npz',
  );
  const pth = fixture('io_state_dict.pth');
  for (const cut of [10, 700, pth.length >> 1, pth.length - 30, pth.length - 1]) {
    throwsClearly(() => readTorchStateDict(pth.subarray(0, cut), 'cut.pth'), /truncated/, `cut at ${cut}`);
  }
  const flipped = pth.slice();
  const zip = readZip(pth, 'pth');
  const storage = zip.entries.find((e) => e.name.endsWith('/data/0'))!;
  const dataStart = storage.localHeaderOffset + 30 + storage.name.length;
  const extraLength = new DataView(pth.buffer).getUint16(storage.localHeaderOffset + 28, true);
  flipped[dataStart + extraLength + 3]! ^= 0x10;
  throwsClearly(
    () => readTorchStateDict(flipped, 'flip.pth'),
    /entry io_state_dict\/data\/0: CRC mismatch/,
    'crc',
  );
});

const pthZip = readZip(fixture('io_state_dict.pth'), 'pth');
const pthFiles = pthZip.entries.map((e) => ({ name: e.name, data: pthZip.read(e.name) }));

/** The .pth with data.pkl replaced (stored again with a correct CRC, so the pickle itself is what is tested). */
function withPickle(pkl: Uint8Array): Uint8Array {
  return writeZip(pthFiles.map((f) => (f.name.endsWith('/data.pkl') ? { name: f.name, data: pkl } : f)));
}

test('readTorchStateDict: cuts and every single-byte change of data.pkl are read or refused clearly', () => {
  const pkl = pthZip.read('io_state_dict/data.pkl').slice();
  assert.equal(readTorchStateDict(withPickle(pkl), 'rezipped').size, expected.tensors.length);
  let refused = 0;
  const attempt = (bytes: Uint8Array, what: string) => {
    try {
      readTorchStateDict(withPickle(bytes), what);
    } catch (e) {
      if (!(e instanceof TorchCheckpointError))
        assert.fail(`${what}: ${(e as Error).name}: ${(e as Error).message}`);
      refused++;
    }
  };
  let cuts = 0;
  for (let cut = 0; cut < pkl.length; cut += 1 + (cut % 3), cuts++)
    attempt(pkl.subarray(0, cut), `cut at ${cut}`);
  assert.equal(refused, cuts, 'every cut pickle is refused');
  for (let i = 0; i < pkl.length; i++) {
    const change = i % 2 ? 0xff : 1 << (hashU32(9, i) & 7);
    const bytes = pkl.slice();
    bytes[i]! ^= change;
    attempt(bytes, `byte ${i} ^ ${change}`);
  }
});

// The legacy format (torch.save before 1.6): one stream of pickles, then the raw storages.

const legacyWant = JSON.parse(
  readFileSync(new URL('../../test/fixtures/io_legacy.json', import.meta.url), 'utf8'),
).tensors as Record<string, { shape: number[]; float32: number[] }>;

test('readTorchStateDict: legacy storage views (view_metadata of torch < 0.4) equal torch.load', () => {
  const tensors = readTorchStateDict(fixture('io_legacy_view.pth'), 'view');
  assert.deepEqual([...tensors.keys()], Object.keys(legacyWant));
  for (const [name, w] of Object.entries(legacyWant)) {
    assert.deepEqual(tensors.get(name)!.shape, w.shape, name);
    assert.deepEqual(Array.from(tensors.get(name)!.data), w.float32, name);
  }
});

/** A copy of `bytes` with `at` replaced by `values`, after checking that `at` holds `was` (the layout assumed). */
function patched(
  bytes: Uint8Array,
  at: number,
  was: readonly number[],
  values: readonly number[],
): Uint8Array {
  assert.deepEqual(Array.from(bytes.subarray(at, at + was.length)), was, `bytes at ${at}`);
  const out = bytes.slice();
  out.set(values, at);
  return out;
}

/** Where `ascii` first occurs in `bytes`. */
function indexOfAscii(bytes: Uint8Array, ascii: string): number {
  const i = Buffer.from(bytes).indexOf(ascii, 0, 'latin1');
  assert.ok(i >= 0, `${ascii} is in the file`);
  return i;
}

test('readTorchStateDict: damaged legacy headers and storage records are named', () => {
  const file = fixture('io_legacy_view.pth');
  // Its end, as make_io_fixtures.py writes it: pickle.dump(['0']) (15 bytes), then the one storage record,
  // an int64 count of 10 and 10 float32 values.
  const count = file.length - 48;
  const keys = count - 15; // 80 02 5d 71 00 58 01 00 00 00 30 71 01 61 2e
  const cases: [Uint8Array, RegExp][] = [
    [
      readZip(fixture('io_self_reference.pth'), 'zip').read('io_self_reference/data.pkl'),
      /a pickle that does not start with torch's legacy magic number: not a torch\.save checkpoint/,
    ],
    [
      patched(file, 17, [0x4d, 0xe9, 0x03], [0x4d, 0xea, 0x03]),
      /legacy checkpoint format version 1002; only 1001 is read/,
    ],
    [
      patched(file, indexOfAscii(file, 'little_endian') + 15, [0x88], [0x89]),
      /the file was saved on a big-endian machine; only little-endian checkpoints are read/,
    ],
    [
      patched(file, count, [10, 0], [11, 0]),
      new RegExp(`storage 0 has 11 elements at byte ${count}, but the pickle says 10`),
    ],
    [
      patched(file, keys + 6, [1, 0, 0, 0, 0x30], [1, 0, 0, 0, 0x31]),
      /the file holds storage 1, which the pickle does not use/,
    ],
  ];
  for (const [bytes, pattern] of cases)
    throwsClearly(() => readTorchStateDict(bytes, 'old.pth'), pattern, String(pattern));
  // The key list replaced by other protocol-2 pickles: None, [], ['0', '0'].
  const key0 = [0x58, 1, 0, 0, 0, 0x30]; // BINUNICODE '0'
  const keyLists: [number[], RegExp][] = [
    [[0x4e], /the list of storage keys is None/],
    [[0x5d], /storage 0 is used but has no data: it is not in the list of keys/],
    [[0x5d, 0x28, ...key0, ...key0, 0x65], /storage 0 is listed twice/],
  ];
  for (const [body, pattern] of keyLists) {
    const bytes = Uint8Array.of(...file.subarray(0, keys), 0x80, 2, ...body, 0x2e, ...file.subarray(count));
    throwsClearly(() => readTorchStateDict(bytes, 'old.pth'), pattern, String(pattern));
  }
  // torch.load ignores bytes after the last storage, and so does the reader.
  const longer = Uint8Array.of(...file, 1, 2, 3);
  assert.deepEqual(
    Array.from(readTorchStateDict(longer, 'old.pth').get('part')!.data),
    legacyWant.part!.float32,
  );
});

test('readTorchStateDict: every cut of a legacy file is refused as truncated', () => {
  for (const name of ['io_state_dict_legacy.pth', 'io_legacy_view.pth']) {
    const file = fixture(name);
    for (let cut = 1; cut < file.length; cut += name === 'io_legacy_view.pth' ? 1 : 1 + (cut % 5)) {
      throwsClearly(
        () => readTorchStateDict(file.subarray(0, cut), name),
        /truncated/,
        `${name} cut at ${cut}`,
      );
    }
  }
});

test('readTorchStateDict: every single-byte change of a legacy file is read or refused clearly', () => {
  const file = fixture('io_state_dict_legacy.pth');
  assert.equal(readTorchStateDict(file, 'legacy').size, expected.tensors.length);
  let read = 0;
  for (let i = 0; i < file.length; i++) {
    const change = i % 2 ? 0xff : 1 << (hashU32(11, i) & 7);
    const bytes = file.slice();
    bytes[i]! ^= change;
    try {
      readTorchStateDict(bytes, `byte ${i}`);
      read++;
    } catch (e) {
      const ok = e instanceof TorchCheckpointError || (i === 0 && e instanceof ZipError);
      if (!ok) assert.fail(`byte ${i} ^ ${change}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  assert.ok(read > 0 && read < file.length, `${read} of ${file.length} changed files read`);
});

test('readTorchStateDict: the pytorch-fid Inception weights at $DDPM_INCEPTION', (t) => {
  const path = process.env.DDPM_INCEPTION;
  if (!path || !existsSync(path)) {
    t.skip('set DDPM_INCEPTION to the path of pt_inception-2015-12-05-6726825d.pth');
    return;
  }
  const tensors = readTorchStateDict(readFileSync(path), path);
  // pytorch-fid's FIDInceptionA..E network: torchvision's Inception3 with a 1008-class fc layer.
  assert.deepEqual(tensors.get('Conv2d_1a_3x3.conv.weight')?.shape, [32, 3, 3, 3]);
  assert.deepEqual(tensors.get('fc.weight')?.shape, [1008, 2048]);
  assert.deepEqual(tensors.get('fc.bias')?.shape, [1008]);
  let parameters = 0;
  for (const [name, { data }] of tensors) {
    parameters += data.length;
    assert.ok(
      data.every((v) => Number.isFinite(v)),
      `${name} is finite`,
    );
    if (name.endsWith('running_var'))
      assert.ok(
        data.every((v) => v > 0),
        `${name} > 0`,
      );
  }
  assert.ok(parameters > 20e6, `${parameters} values`);
});
