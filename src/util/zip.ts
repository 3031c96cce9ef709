// ZIP archives (PKWARE APPNOTE 6.3): the container of numpy's .npz and of PyTorch's torch.save checkpoints.
// Reading lists the entries from the central directory (the local headers are only skipped: numpy writes
// them with 0xFFFFFFFF sizes and a ZIP64 extra, torch with zero sizes and a data descriptor), understands
// ZIP64 end records and ZIP64 extra fields, reads stored and deflated entries and checks every entry's CRC-32.
// Writing produces stored entries with a fixed 1980-01-01 timestamp, so the same files give the same bytes.
// Browser-safe: deflate goes through an injectable inflate function; the default one is Node's
// zlib.inflateRawSync, looked up at run time (process.getBuiltinModule), so nothing here imports node:*.

import type * as Zlib from 'node:zlib';

export class ZipError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate (anything else is refused when read). */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

export interface ZipArchive {
  readonly source: string;
  /** In central-directory order. */
  readonly entries: readonly ZipEntry[];
  has(name: string): boolean;
  /** The entry's bytes, CRC-checked (a view into the archive for stored entries: copy before writing to it). */
  read(name: string): Uint8Array;
}

/** Raw deflate (RFC 1951, no zlib header) to exactly `size` bytes. */
export type InflateRaw = (compressed: Uint8Array, size: number) => Uint8Array;

export interface ReadZipOptions {
  /** Default: Node's zlib.inflateRawSync; in a browser pass one to read deflated entries. */
  readonly inflateRaw?: InflateRaw;
}

export interface ZipInputFile {
  readonly name: string;
  readonly data: Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const U32_MAX = 0xffffffff;
const DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1;

// ---------------------------------------------------------------------------------------------------------
// CRC-32 (ISO-HDLC: reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF), table-driven and
// "slicing by 8" (Kounavis and Berry 2005): table k advances a byte's CRC through k further zero bytes, so
// eight bytes take eight independent lookups.

const CRC_TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n]!;
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  }
  return t;
})();

/** CRC-32 of `data` as used by ZIP, gzip and PNG; pass a previous result as `crc` to continue it. */
export function crc32(data: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  for (const end8 = data.length - 7; i < end8; i += 8) {
    c ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    c =
      t[1792 + (c & 0xff)]! ^
      t[1536 + ((c >>> 8) & 0xff)]! ^
      t[1280 + ((c >>> 16) & 0xff)]! ^
      t[1024 + (c >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------------------
// Reading

const hex32 = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** Bounds-checked little-endian reads: every read past the end is a ZipError, never a RangeError. */
class Cursor {
  private readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    private readonly fail: (message: string) => never,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(pos: number, n: number, what: string): void {
    if (!(pos >= 0 && pos + n <= this.bytes.length)) {
      this.fail(
        `truncated: ${what} (bytes ${pos}..${pos + n}) lies outside the ${this.bytes.length}-byte file`,
      );
    }
  }
  u16(pos: number): number {
    return this.view.getUint16(pos, true);
  }
  u32(pos: number): number {
    return this.view.getUint32(pos, true);
  }
  u64(pos: number, what: string): number {
    const v = this.view.getBigUint64(pos, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}: corrupt file`);
    return Number(v);
  }
}

interface EndRecord {
  readonly entries: number;
  readonly cdOffset: number;
  readonly cdSize: number;
}

function methodName(method: number): string {
  const names: Record<number, string> = {
    1: 'shrink',
    6: 'implode',
    9: 'deflate64',
    12: 'bzip2',
    14: 'lzma',
    93: 'zstd',
    95: 'xz',
    98: 'ppmd',
  };
  return names[method] ?? 'unknown';
}

/** The end-of-central-directory record: searched backwards, it must end within the file with its comment. */
function findEocd(c: Cursor, fail: (m: string) => never): number {
  const bytes = c.bytes;
  const lowest = Math.max(0, bytes.length - EOCD_SIZE - 0xffff);
  for (let pos = bytes.length - EOCD_SIZE; pos >= lowest; pos--) {
    if (c.u32(pos) === SIG_EOCD && pos + EOCD_SIZE + c.u16(pos + 20) <= bytes.length) return pos;
  }
  const looksLikeZip = bytes.length >= 4 && c.u32(0) === SIG_LOCAL;
  if (looksLikeZip) fail('truncated: the end-of-central-directory record is missing');
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return fail(`not a zip archive (${bytes.length} bytes, starting ${head || '(empty)'})`);
}

function readEndRecord(c: Cursor, fail: (m: string) => never): EndRecord {
  const eocd = findEocd(c, fail);
  const disk = c.u16(eocd + 4);
  const cdDisk = c.u16(eocd + 6);
  let entries = c.u16(eocd + 10);
  let cdSize = c.u32(eocd + 12);
  let cdOffset = c.u32(eocd + 16);
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && c.u32(locator) === SIG_ZIP64_LOCATOR) {
    const z = c.u64(locator + 8, 'the ZIP64 end record offset');
    c.need(z, ZIP64_EOCD_SIZE, 'the ZIP64 end-of-central-directory record');
    if (c.u32(z) !== SIG_ZIP64_EOCD)
      fail(`no ZIP64 end-of-central-directory record at byte ${z}: corrupt file`);
    entries = c.u64(z + 32, 'the ZIP64 entry count');
    cdSize = c.u64(z + 40, 'the ZIP64 central directory size');
    cdOffset = c.u64(z + 48, 'the ZIP64 central directory offset');
  } else if (disk !== 0 || cdDisk !== 0) {
    fail('a multi-part (spanned) archive; only single-file archives are read');
  }
  c.need(cdOffset, cdSize, 'the central directory');
  return { entries, cdOffset, cdSize };
}

/** Sizes and offset from a ZIP64 extra field (id 1): present only for the header fields that are 0xFFFFFFFF. */
function applyZip64Extra(
  c: Cursor,
  start: number,
  end: number,
  fields: { size: number; compressedSize: number; localHeaderOffset: number },
  name: string,
  fail: (m: string) => never,
): void {
  for (let pos = start; pos + 4 <= end; ) {
    const id = c.u16(pos);
    const len = c.u16(pos + 2);
    const body = pos + 4;
    if (body + len > end) fail(`entry ${name}: an extra field runs past its header`);
    if (id === 0x0001) {
      let p = body;
      const take = (what: string): number => {
        if (p + 8 > body + len) fail(`entry ${name}: the ZIP64 extra field is too short for its ${what}`);
        const v = c.u64(p, `entry ${name}'s ZIP64 ${what}`);
        p += 8;
        return v;
      };
      if (fields.size === U32_MAX) fields.size = take('size');
      if (fields.compressedSize === U32_MAX) fields.compressedSize = take('compressed size');
      if (fields.localHeaderOffset === U32_MAX) fields.localHeaderOffset = take('header offset');
    }
    pos = body + len;
  }
}

function readCentralDirectory(c: Cursor, end: EndRecord, fail: (m: string) => never): ZipEntry[] {
  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  const decoder = new TextDecoder();
  const cdEnd = end.cdOffset + end.cdSize;
  let pos = end.cdOffset;
  for (let i = 0; i < end.entries; i++) {
    if (pos + CENTRAL_SIZE > cdEnd || c.u32(pos) !== SIG_CENTRAL) {
      fail(`central directory entry ${i} of ${end.entries} is missing at byte ${pos}: corrupt file`);
    }
    const flags = c.u16(pos + 8);
    const method = c.u16(pos + 10);
    const crc = c.u32(pos + 16);
    const nameLen = c.u16(pos + 28);
    const extraLen = c.u16(pos + 30);
    const commentLen = c.u16(pos + 32);
    const next = pos + CENTRAL_SIZE + nameLen + extraLen + commentLen;
    if (next > cdEnd) fail(`central directory entry ${i} runs past the directory: corrupt file`);
    const name = decoder.decode(c.bytes.subarray(pos + CENTRAL_SIZE, pos + CENTRAL_SIZE + nameLen));
    const fields = {
      compressedSize: c.u32(pos + 20),
      size: c.u32(pos + 24),
      localHeaderOffset: c.u32(pos + 42),
    };
    const extraStart = pos + CENTRAL_SIZE + nameLen;
    applyZip64Extra(c, extraStart, extraStart + extraLen, fields, name, fail);
    if (flags & 1) fail(`entry ${name} is encrypted; encrypted archives are not read`);
    if (names.has(name))
      fail(`entry ${name} appears twice in the central directory: corrupt or crafted file`);
    names.add(name);
    entries.push({ name, method, crc32: crc, ...fields });
    pos = next;
  }
  return entries;
}

function defaultInflateRaw(): InflateRaw | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const zlib = proc?.getBuiltinModule?.('node:zlib') as typeof Zlib | undefined;
  if (!zlib) return undefined;
  return (compressed, size) => {
    const out = zlib.inflateRawSync(compressed, { maxOutputLength: Math.max(size, 1) });
    return new Uint8Array(out.buffer, out.byteOffset, out.length); // a plain Uint8Array, not a Buffer
  };
}

function entryData(c: Cursor, e: ZipEntry, fail: (m: string) => never): Uint8Array {
  c.need(e.localHeaderOffset, LOCAL_SIZE, `entry ${e.name}'s local header`);
  if (c.u32(e.localHeaderOffset) !== SIG_LOCAL) {
    fail(`entry ${e.name}: no local header at byte ${e.localHeaderOffset}: corrupt file`);
  }
  const start =
    e.localHeaderOffset + LOCAL_SIZE + c.u16(e.localHeaderOffset + 26) + c.u16(e.localHeaderOffset + 28);
  c.need(start, e.compressedSize, `entry ${e.name}'s data`);
  return c.bytes.subarray(start, start + e.compressedSize);
}

function decompress(
  raw: Uint8Array,
  e: ZipEntry,
  inflateRaw: InflateRaw | undefined,
  fail: (m: string) => never,
): Uint8Array {
  switch (e.method) {
    case 0:
      if (e.size !== e.compressedSize) fail(`entry ${e.name} is stored but its sizes differ: corrupt file`);
      return raw;
    case 8: {
      if (!inflateRaw) {
        fail(
          `entry ${e.name} is deflated and no inflate function is available here; pass options.inflateRaw`,
        );
      }
      let out: Uint8Array;
      try {
        out = inflateRaw(raw, e.size);
      } catch (err) {
        return fail(`entry ${e.name}: the deflate stream is corrupt (${(err as Error).message})`);
      }
      if (out.length !== e.size)
        fail(`entry ${e.name} inflates to ${out.length} bytes, not ${e.size}: corrupt file`);
      return out;
    }
    default:
      return fail(
        `entry ${e.name} uses compression method ${e.method} (${methodName(e.method)}); only stored and deflate are read`,
      );
  }
}

/** Lists a ZIP archive's entries; `source` (e.g. the file path) starts every error message. */
export function readZip(bytes: Uint8Array, source: string, options: ReadZipOptions = {}): ZipArchive {
  const fail = (message: string): never => {
    throw new ZipError(source, message);
  };
  const c = new Cursor(bytes, fail);
  if (bytes.length < EOCD_SIZE) {
    if (bytes.length >= 4 && c.u32(0) === SIG_LOCAL)
      fail('truncated: the end-of-central-directory record is missing');
    fail(`not a zip archive (only ${bytes.length} bytes)`);
  }
  const entries = readCentralDirectory(c, readEndRecord(c, fail), fail);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const inflateRaw = options.inflateRaw ?? defaultInflateRaw();
  return {
    source,
    entries,
    has: (name) => byName.has(name),
    read(name) {
      const e = byName.get(name);
      if (!e) return fail(`no entry named ${name}`);
      const data = decompress(entryData(c, e, fail), e, inflateRaw, fail);
      const crc = crc32(data);
      if (crc !== e.crc32) {
        fail(
          `entry ${e.name}: CRC mismatch (stored ${hex32(e.crc32)}, computed ${hex32(crc)}): the file is corrupt`,
        );
      }
      return data;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Writing

function localHeader(name: Uint8Array, data: Uint8Array, crc: number, flags: number): Uint8Array {
  const h = new Uint8Array(LOCAL_SIZE + name.length);
  const v = new DataView(h.buffer);
  v.setUint32(0, SIG_LOCAL, true);
  v.setUint16(4, 20, true); // version needed: 2.0
  v.setUint16(6, flags, true);
  v.setUint16(8, 0, true); // stored
  v.setUint16(10, 0, true); // 00:00:00
  v.setUint16(12, DOS_DATE_1980_01_01, true);
  v.setUint32(14, crc, true);
  v.setUint32(18, data.length, true);
  v.setUint32(22, data.length, true);
  v.setUint16(26, name.length, true);
  v.setUint16(28, 0, true);
  h.set(name, LOCAL_SIZE);
  return h;
}

function centralHeader(local: Uint8Array, name: Uint8Array, offset: number): Uint8Array {
  const h = new Uint8Array(CENTRAL_SIZE + name.length);
  const v = new DataView(h.buffer);
  v.setUint32(0, SIG_CENTRAL, true);
  v.setUint16(4, 20, true); // made by: MS-DOS, 2.0
  h.set(local.subarray(4, 30), 6); // version needed .. extra length: as in the local header
  // comment length, disk number, internal and external attributes: 0
  v.setUint32(42, offset, true);
  h.set(name, CENTRAL_SIZE);
  return h;
}

function endRecord(count: number, cdOffset: number, cdSize: number): Uint8Array {
  const h = new Uint8Array(EOCD_SIZE);
  const v = new DataView(h.buffer);
  v.setUint32(0, SIG_EOCD, true);
  v.setUint16(8, count, true);
  v.setUint16(10, count, true);
  v.setUint32(12, cdSize, true);
  v.setUint32(16, cdOffset, true);
  return h;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A ZIP archive of stored (uncompressed) entries, in the given order; deterministic. Under 4 GiB. */
export function writeZip(files: readonly ZipInputFile[]): Uint8Array {
  const fail = (message: string): never => {
    throw new ZipError('writeZip', message);
  };
  if (files.length >= 0xffff) fail(`${files.length} entries; at most 65534 are written (no ZIP64)`);
  const encoder = new TextEncoder();
  const seen = new Set<string>();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    if (f.name.length === 0) fail('an entry has an empty name');
    if (seen.has(f.name)) fail(`entry ${f.name} is given twice`);
    seen.add(f.name);
    const name = encoder.encode(f.name);
    if (name.length > 0xffff) fail(`entry name ${f.name.slice(0, 40)}... is longer than 65535 bytes`);
    const flags = name.length === f.name.length ? 0 : 1 << 11; // bit 11: the name is UTF-8
    const local = localHeader(name, f.data, crc32(f.data), flags);
    centrals.push(centralHeader(local, name, offset));
    locals.push(local, f.data);
    offset += local.length + f.data.length;
    if (offset > U32_MAX) fail('the archive would exceed 4 GiB; ZIP64 is not written');
  }
  const cdSize = centrals.reduce((n, h) => n + h.length, 0);
  if (offset + cdSize > U32_MAX) fail('the archive would exceed 4 GiB; ZIP64 is not written');
  return concat([...locals, ...centrals, endRecord(files.length, offset, cdSize)]);
}
