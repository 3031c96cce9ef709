// Mutations for the reader fuzzer (test/fuzz/readers.ts): fast-check arbitraries of byte-level changes
// (truncation, bit flips, overwritten bytes, "interesting" integers written over headers, inserted, deleted
// and duplicated runs) and of text-level changes to JSON (a value anywhere replaced by one of another type or
// an oversized one, a key deleted or added) and to other text headers (a token replaced). Each change is
// data (printable, replayable), applied by a plain function.

import fc from 'fast-check';

// ---------------------------------------------------------------------------------------------------------
// Bytes

/** Integers that break length and count fields: zero, sign bits, all ones, 2^31, 2^32 - 1, 2^53 + 1, ... */
export const INTERESTING: readonly bigint[] = [
  0n,
  1n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  (1n << 53n) + 1n,
  0x7fffffffffffffffn,
  0xffffffffffffffffn,
  1000000n,
  1000000000n,
];

export type ByteOp =
  | { readonly k: 'truncate'; readonly at: number }
  | { readonly k: 'flip'; readonly pos: number; readonly head: boolean; readonly bit: number }
  | { readonly k: 'set'; readonly pos: number; readonly head: boolean; readonly v: number }
  | {
      readonly k: 'int';
      readonly pos: number;
      readonly head: boolean;
      readonly width: 1 | 2 | 4 | 8;
      readonly be: boolean;
      readonly v: number;
    }
  | { readonly k: 'insert'; readonly pos: number; readonly bytes: readonly number[] }
  | { readonly k: 'delete'; readonly pos: number; readonly len: number }
  | { readonly k: 'dup'; readonly pos: number; readonly len: number };

const pos = fc.nat({ max: 1 << 30 });
const head = fc.boolean();

export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat({ max: 1 << 30 }) }),
  fc.record({ k: fc.constant('flip' as const), pos, head, bit: fc.nat({ max: 7 }) }),
  fc.record({ k: fc.constant('flip' as const), pos, head, bit: fc.nat({ max: 7 }) }),
  fc.record({ k: fc.constant('set' as const), pos, head, v: fc.nat({ max: 255 }) }),
  fc.record({
    k: fc.constant('int' as const),
    pos,
    head,
    width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
    be: fc.boolean(),
    v: fc.nat({ max: INTERESTING.length - 1 }),
  }),
  fc.record({
    k: fc.constant('insert' as const),
    pos,
    bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }),
  }),
  fc.record({ k: fc.constant('delete' as const), pos, len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ k: fc.constant('dup' as const), pos, len: fc.integer({ min: 1, max: 64 }) }),
);

/** Where a position lands: within the first 64 bytes (headers) when `head`, else anywhere. */
function at(p: number, headOnly: boolean, len: number): number {
  if (len === 0) return 0;
  return p % (headOnly ? Math.min(len, 64) : len);
}

export function applyByteOp(b: Uint8Array, op: ByteOp): Uint8Array {
  const n = b.length;
  switch (op.k) {
    case 'truncate':
      return b.slice(0, n === 0 ? 0 : op.at % n);
    case 'flip': {
      if (n === 0) return b;
      const out = b.slice();
      out[at(op.pos, op.head, n)]! ^= 1 << op.bit;
      return out;
    }
    case 'set': {
      if (n === 0) return b;
      const out = b.slice();
      out[at(op.pos, op.head, n)] = op.v;
      return out;
    }
    case 'int': {
      if (n < op.width) return b;
      const out = b.slice();
      const p = at(op.pos, op.head, n - op.width + 1);
      let v = INTERESTING[op.v]! & ((1n << BigInt(8 * op.width)) - 1n);
      for (let i = 0; i < op.width; i++) {
        out[op.be ? p + op.width - 1 - i : p + i] = Number(v & 0xffn);
        v >>= 8n;
      }
      return out;
    }
    case 'insert': {
      const p = n === 0 ? 0 : op.pos % (n + 1);
      const out = new Uint8Array(n + op.bytes.length);
      out.set(b.subarray(0, p));
      out.set(op.bytes, p);
      out.set(b.subarray(p), p + op.bytes.length);
      return out;
    }
    case 'delete': {
      if (n === 0) return b;
      const p = op.pos % n;
      const out = new Uint8Array(n - Math.min(op.len, n - p));
      out.set(b.subarray(0, p));
      out.set(b.subarray(p + op.len), p);
      return out;
    }
    case 'dup': {
      if (n === 0) return b;
      const p = op.pos % n;
      const run = b.subarray(p, p + op.len);
      const out = new Uint8Array(n + run.length);
      out.set(b.subarray(0, p + run.length));
      out.set(run, p + run.length);
      out.set(b.subarray(p + run.length), p + 2 * run.length);
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Text: JSON values of the wrong type or size, and raw tokens

/** JSON texts of confused types and oversized values (some are not JSON at all). */
export const CONFUSED: readonly string[] = [
  'null',
  'true',
  'false',
  '"abc"',
  '""',
  '"\\u0000"',
  '[]',
  '{}',
  '[null]',
  '["a"]',
  '{"a":1}',
  '0',
  '-1',
  '-0',
  '1.5',
  '1e-400',
  '1e308',
  '1e999',
  '-1e999',
  '65536',
  '100000',
  '1000000000',
  '2147483648',
  '4294967296',
  '9007199254740993',
  '1e20',
  '[1e9,1e9]',
  '[65536,65536,65536]',
  '[4294967296]',
  '[-1]',
  '[1.5]',
  '[0,0]',
  '[0,1e300]',
  '["1","2"]',
  'NaN',
  '"F32"',
  '"F64"',
  '"I64"',
  `"${'x'.repeat(100_000)}"`,
  `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`,
];

export type TextOp =
  | { readonly k: 'replace'; readonly path: number; readonly v: number }
  | { readonly k: 'delete'; readonly path: number }
  | { readonly k: 'add'; readonly path: number; readonly key: string; readonly v: number }
  | { readonly k: 'token'; readonly token: number; readonly v: number };

export const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('replace' as const), path: fc.nat(), v: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('delete' as const), path: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('add' as const),
      path: fc.nat(),
      key: fc.constantFrom('__metadata__', '__proto__', 'constructor', 'x', 'shape', 'dtype', 'format'),
      v: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('token' as const), token: fc.nat(), v: fc.nat() }) },
);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every value's path in a JSON document (the root first), as key lists. */
function paths(v: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(prefix);
  if (prefix.length >= 32) return out; // deeper values (a nested confusion) are not listed
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) paths(x, [...prefix, i], out);
  } else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

const HOLE = '\u0001HOLE\u0001';

/** Replace, delete or add at a path of a JSON text; the new value is spliced in as raw text. */
function jsonOp(text: string, op: Exclude<TextOp, { k: 'token' }>): string {
  try {
    return jsonEdit(text, op);
  } catch {
    return text; // not JSON (an earlier change) or nested too deeply to edit: left as it is
  }
}

function jsonEdit(text: string, op: Exclude<TextOp, { k: 'token' }>): string {
  const doc = JSON.parse(text) as Json;
  const all = paths(doc);
  const p = all[op.path % all.length]!;
  const raw = op.k === 'delete' ? '' : CONFUSED[op.v % CONFUSED.length]!;
  if (p.length === 0) {
    if (op.k === 'replace') return raw;
    if (op.k === 'delete') return '';
  }
  const root = { r: doc } as { r: Json };
  const parent = p.slice(0, -1).reduce<Json>((o, k) => (o as Record<string, Json>)[k]!, root.r);
  const last = p.at(-1)!;
  const target = p.length === 0 ? root.r : (parent as Record<string, Json>)[last]!;
  switch (op.k) {
    case 'replace':
      (parent as Record<string, Json>)[last] = HOLE;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete (parent as Record<string, Json>)[last];
      return JSON.stringify(root.r);
    case 'add':
      if (target === null || typeof target !== 'object' || Array.isArray(target)) return text;
      Object.defineProperty(target, op.key, { value: HOLE, enumerable: true, writable: true });
      break;
  }
  return JSON.stringify(root.r).replace(JSON.stringify(HOLE), raw);
}

/** Tokens of a text header (numbers, quoted strings, words) by position. */
const TOKEN = /-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'[^']*'|"[^"]*"|[A-Za-z_]+/g;

function tokenOp(text: string, op: Extract<TextOp, { k: 'token' }>): string {
  const hits = [...text.matchAll(TOKEN)];
  if (hits.length === 0) return text;
  const h = hits[op.token % hits.length]!;
  return text.slice(0, h.index) + CONFUSED[op.v % CONFUSED.length]! + text.slice(h.index! + h[0].length);
}

export function applyTextOp(text: string, op: TextOp): string {
  return op.k === 'token' ? tokenOp(text, op) : jsonOp(text, op);
}
