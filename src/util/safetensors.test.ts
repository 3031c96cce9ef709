// safetensors headers are type-checked before use: a header that is not an object, an entry whose shape
// is a string, a dtype that is not a string, bad data_offsets or non-string metadata each give a
// SafeTensorsError naming the file, the tensor and the field (never a JavaScript TypeError).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeSafeTensors, parseSafeTensors, SafeTensorsError } from './safetensors.js';

function file(header: unknown, body = 16): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + body);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

const ok = { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] };

describe('safetensors headers', () => {
  it('reads a good file', () => {
    const parts = encodeSafeTensors([['w', { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] }]], {
      a: 'b',
    });
    const buf = Buffer.concat(parts);
    const f = parseSafeTensors(buf, 'x.safetensors');
    assert.deepEqual([...f.tensors.get('w')!.data], [1, 2, 3, 4]);
    assert.deepEqual(f.metadata, { a: 'b' });
    assert.equal(parseSafeTensors(file({ w: ok }), 'y').tensors.get('w')!.data.length, 4);
  });

  const cases: [string, unknown, RegExp][] = [
    ['header null', null, /header is null; expected a JSON object of tensors/],
    ['header array', [ok], /header is \[.* \(an array\); expected a JSON object/],
    ['entry a number', { w: 3 }, /tensor w: its header entry is 3 \(a number\)/],
    [
      'shape a string',
      { w: { ...ok, shape: '2,2' } },
      /tensor w: shape is "2,2" \(a string\); expected an array of non-negative integers/,
    ],
    ['shape negative', { w: { ...ok, shape: [-2, -2] } }, /tensor w: shape is \[-2,-2\]/],
    ['shape missing', { w: { dtype: 'F32', data_offsets: [0, 16] } }, /tensor w: shape is missing/],
    ['dtype a number', { w: { ...ok, dtype: 32 } }, /tensor w: dtype is 32 \(a number\); expected a string/],
    ['offsets a string', { w: { ...ok, data_offsets: '0-16' } }, /tensor w: data_offsets is "0-16"/],
    [
      'offsets of three',
      { w: { ...ok, data_offsets: [0, 8, 16] } },
      /data_offsets .* expected two non-negative integers/,
    ],
    [
      'metadata numbers',
      { __metadata__: { a: 1 }, w: ok },
      /"__metadata__" is \{"a":1\} \(an object\); expected an object of string values/,
    ],
    ['metadata null', { __metadata__: null, w: ok }, /"__metadata__" is null/],
  ];
  for (const [name, header, says] of cases) {
    it(`${name}: a clear error`, () => {
      assert.throws(
        () => parseSafeTensors(file(header), 'm.safetensors'),
        (e: Error) => {
          assert.ok(e instanceof SafeTensorsError, `${e.name}: ${e.message}`);
          assert.ok(e.message.startsWith('m.safetensors: '), e.message);
          assert.match(e.message, says);
          return true;
        },
      );
    });
  }
});
