// Atomic writes fail cleanly: a missing folder, a folder as the target ('.' included), a full disk and a
// read-only file system each give an error naming the user's path and its cause, leave no temporary file,
// and leave an existing target as it was; several files are written all-or-nothing.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeFileAtomic, writeFilesAtomic } from './atomicFile.js';
import { FileSystemError } from './fsErrors.js';
import { mountTmpfs } from './testMounts.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-atomic-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const bytes = (n: number) => new Uint8Array(n).fill(7);

function throwsFs(f: () => void, code: string, says: RegExp): FileSystemError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof FileSystemError, `expected a FileSystemError, got ${err}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, says);
  assert.doesNotMatch(err.message, /\.tmp-/, 'the message names no temporary file');
  return err;
}

const temps = (dir: string) => readdirSync(dir).filter((f) => f.includes('.tmp-'));

describe('atomic writes', () => {
  it('into a missing folder: names the folder', () => {
    const p = join(TMP, 'missing', 'x.png');
    throwsFs(
      () => writeFileAtomic(p, bytes(10)),
      'ENOENT',
      /cannot write .*missing\/x\.png: folder .*missing does not exist/,
    );
  });

  it('onto a folder (also ".", relative): says it is a folder, writes no temporary file', () => {
    const dir = join(TMP, 'adir');
    mkdirSync(dir);
    throwsFs(() => writeFileAtomic(dir, bytes(10)), 'EISDIR', /adir is a folder; give a file name/);
    throwsFs(() => writeFileAtomic('.', bytes(10)), 'EISDIR', /cannot write \.: \. is a folder/);
    throwsFs(() => writeFileAtomic(join(dir, '.'), bytes(10)), 'EISDIR', /is a folder/);
    assert.deepEqual(temps(dir), []);
    assert.deepEqual(temps(TMP), []);
    assert.deepEqual(temps('.'), []);
  });

  it('several files: all or nothing', () => {
    const dir = join(TMP, 'multi');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.png'), 'old');
    const files = [
      { path: join(dir, 'a.png'), parts: [bytes(10)] },
      { path: join(dir, 'b.gif'), parts: [bytes(10)] },
      { path: join(dir, 'nope', 'c.png'), parts: [bytes(10)] },
    ];
    throwsFs(() => writeFilesAtomic(files), 'ENOENT', /nope\/c\.png/);
    assert.deepEqual(readdirSync(dir).sort(), ['a.png'], 'no new file, no temporary file');
    assert.equal(readFileSync(join(dir, 'a.png'), 'utf8'), 'old', 'the existing file is untouched');
    writeFilesAtomic(files.slice(0, 2));
    assert.deepEqual(readdirSync(dir).sort(), ['a.png', 'b.gif']);
    assert.equal(readFileSync(join(dir, 'a.png')).length, 10);
  });

  it('a full disk: says so, removes the temporary file, keeps the old file', (t) => {
    const m = mountTmpfs('full', 64);
    if (typeof m === 'string') return t.skip(m);
    try {
      const p = join(m.dir, 'checkpoint.safetensors');
      writeFileAtomic(p, bytes(1000));
      throwsFs(
        () =>
          writeFilesAtomic([
            { path: join(m.dir, 'small.png'), parts: [bytes(10)] },
            { path: p, parts: [bytes(200_000)] },
          ]),
        'ENOSPC',
        /cannot write .*checkpoint\.safetensors: the disk holding .* is full/,
      );
      assert.deepEqual(readdirSync(m.dir), ['checkpoint.safetensors'], 'no temporary file, no partial set');
      assert.equal(readFileSync(p).length, 1000, 'the previous file is intact');
    } finally {
      m.unmount();
    }
  });

  it('a read-only file system: says so', (t) => {
    const m = mountTmpfs('read-only');
    if (typeof m === 'string') return t.skip(m);
    try {
      throwsFs(
        () => writeFileAtomic(join(m.dir, 'x.png'), bytes(10)),
        'EROFS',
        /x\.png: folder .* is on a read-only file system/,
      );
    } finally {
      m.unmount();
    }
  });
});
