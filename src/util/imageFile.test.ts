// Atomic PNG / GIF writes: the file decodes, overwrites are whole, no temporary files are left behind.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decode as decodePng } from 'fast-png';
import { writeGifAtomic, writePngAtomic } from './imageFile.js';

const dir = mkdtempSync(join(tmpdir(), 'ddpm-imgfile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('imageFile: writePngAtomic writes a decodable PNG, replaces it whole, leaves no temp files', () => {
  const p = join(dir, 'grid.png');
  const a = { width: 3, height: 2, channels: 1, pixels: Uint8Array.from([0, 50, 100, 150, 200, 250]) };
  writePngAtomic(p, a);
  writePngAtomic(p, { ...a, width: 2, height: 3 });
  const back = decodePng(readFileSync(p));
  assert.deepEqual([back.width, back.height], [2, 3]);
  assert.deepEqual(Array.from(back.data), Array.from(a.pixels));
  writeGifAtomic(join(dir, 'chain.gif'), [a, a]);
  assert.equal(readFileSync(join(dir, 'chain.gif')).subarray(0, 6).toString(), 'GIF89a');
  assert.deepEqual(readdirSync(dir).sort(), ['chain.gif', 'grid.png']);
  assert.throws(() => writePngAtomic(join(dir, 'no-such-dir', 'x.png'), a), {
    code: 'ENOENT',
    message: /no-such-dir\/x\.png: folder .*no-such-dir does not exist/,
  });
});
