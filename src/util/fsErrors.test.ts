// File-system errors in the user's words: every errno code the commands meet becomes a message that names
// the user's path (never the temporary file Node reported), the cause and what to do.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { explainFsError, FileSystemError, fsError } from './fsErrors.js';
import { mountTmpfs } from './testMounts.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-fserr-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** An error as Node raises it, about the temporary file beside `target`. */
function nodeError(code: string, text: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'`), {
    code,
    syscall,
    path,
    errno: -1,
  });
}

describe('fsError', () => {
  const target = join(TMP, 'out', 'samples.png');
  const tmp = join(TMP, 'out', '.samples.png.tmp-123-456');
  const cases: [string, string, RegExp][] = [
    ['ENOENT', 'no such file or directory', /folder .*out does not exist; create the folder first/],
    ['EACCES', 'permission denied', /permission denied in folder .*out; choose a folder you can write to/],
    ['EPERM', 'operation not permitted', /permission denied in folder .*out/],
    [
      'EROFS',
      'read-only file system',
      /out is on a read-only file system; choose a folder on a writable disk/,
    ],
    [
      'ENOSPC',
      'no space left on device',
      /the disk holding .*out is full \(no space left on device\); free some space/,
    ],
    ['EDQUOT', 'disk quota exceeded', /disk quota .* is used up/],
    ['EISDIR', 'illegal operation on a directory', /samples\.png is a folder; give a file name/],
    ['EBUSY', 'resource busy or locked', /busy/],
    ['EEXIST', 'file already exists', /already exists/],
    ['EMFILE', 'too many open files', /too many open files/],
    ['EIO', 'i/o error', /input\/output error/],
    ['EXDEV', 'cross-device link not permitted', /cross-device link not permitted \(EXDEV\)/],
  ];
  for (const [code, text, says] of cases) {
    it(`${code}: names the user's path and the cause`, () => {
      const e = fsError(nodeError(code, text, 'open', tmp), target, 'write');
      assert.ok(e instanceof FileSystemError);
      assert.equal((e as FileSystemError).code, code);
      assert.ok(e.message.includes(target), e.message);
      assert.doesNotMatch(e.message, /\.tmp-/, 'no temporary file name');
      assert.match(e.message, says);
    });
  }

  it('ENOTDIR names the part of the path that is a file', () => {
    writeFileSync(join(TMP, 'afile'), 'x');
    const p = join(TMP, 'afile', 'sub', 'x.png');
    const e = fsError(nodeError('ENOTDIR', 'not a directory', 'open', p), p, 'write');
    assert.match(e.message, new RegExp(`${join(TMP, 'afile')} is a file, not a folder`));
  });

  it('creating a folder: names the deepest existing folder', () => {
    mkdirSync(join(TMP, 'a'));
    const p = join(TMP, 'a', 'b', 'c');
    const ro = fsError(nodeError('EROFS', 'read-only file system', 'mkdir', p), p, 'create-folder');
    assert.match(
      ro.message,
      new RegExp(`cannot create folder ${p}: folder ${join(TMP, 'a')} is on a read-only`),
    );
    const q = join(TMP, 'afile2', 'b');
    writeFileSync(join(TMP, 'afile2'), 'x');
    const nd = fsError(nodeError('ENOENT', 'no such file or directory', 'mkdir', q), q, 'create-folder');
    assert.match(nd.message, new RegExp(`${join(TMP, 'afile2')} is a file, not a folder`));
  });

  it('creating a folder on a read-only file system (mkdir -p says ENOENT): says read-only', (t) => {
    const m = mountTmpfs('read-only');
    if (typeof m === 'string') return t.skip(m);
    try {
      const p = join(m.dir, 'run', 'samples');
      let err: unknown;
      try {
        mkdirSync(p, { recursive: true });
      } catch (e) {
        err = e;
      }
      assert.ok(err, 'mkdir on a read-only file system fails');
      assert.match(fsError(err, p, 'create-folder').message, /is on a read-only file system/);
    } finally {
      m.unmount();
    }
  });

  it('reading: a missing file is named as such', () => {
    const p = join(TMP, 'none.json');
    assert.equal(
      fsError(nodeError('ENOENT', 'no such file', 'open', p), p, 'read').message,
      `${p} does not exist`,
    );
  });

  it('leaves other errors alone; explainFsError picks the action from the system call', () => {
    const plain = new TypeError('x');
    assert.equal(fsError(plain, 'a', 'write'), plain);
    assert.equal(explainFsError(plain), plain);
    const e = explainFsError(nodeError('ENOSPC', 'no space left on device', 'write', join(TMP, 'log.jsonl')));
    assert.match(e.message, /cannot write .*log\.jsonl: the disk holding .* is full/);
    const m = explainFsError(nodeError('EROFS', 'read-only file system', 'mkdir', join(TMP, 'r', 's')));
    assert.match(m.message, /cannot create folder .*r\/s: .*read-only file system/);
  });
});
