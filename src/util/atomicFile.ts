// Atomic file writes (Node only): write a temporary file beside the target, fsync it, rename it over
// the target, fsync the folder. A crash at any moment leaves the old file or the new one, never half.
// Several files are written all-or-nothing (writeFilesAtomic): every temporary file is written before any
// is renamed. A failure removes the temporary files and reports, through fsErrors.ts, the user's path and
// the cause, never the temporary name.

import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fsError } from './fsErrors.js';

const TEMP_NAME = /^\..+\.tmp-(\d+)-\d+$/;

/** One file of an atomic write: its path and its bytes in parts (written in order). */
export interface AtomicFile {
  readonly path: string;
  readonly parts: readonly Uint8Array[];
}

let counter = 0;

function tempPathOf(path: string): string {
  // The folder and name of the resolved path: `--out .` or `dir/` still get a temporary file in a folder.
  const abs = resolve(path);
  return join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}-${Date.now()}${counter++}`);
}

/** Write the temporary file for f; on failure it is removed and the error names f.path. */
function writeTemp(f: AtomicFile, tmp: string): void {
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (e) {
    throw fsError(e, f.path, 'write');
  }
  try {
    for (const p of f.parts) {
      let off = 0;
      while (off < p.length) off += writeSync(fd, p, off, p.length - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw fsError(e, f.path, 'write');
  }
  closeSync(fd);
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function syncFolder(dir: string): void {
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Write several files all-or-nothing: each is written to a temporary file and synced first; only when all
 * are on disk are they renamed over their targets. If a write fails, no target is touched and no temporary
 * file is left. (A rename failing after others succeeded, which the up-front checks make unlikely, removes
 * the files it had newly created; files it replaced keep their new contents.)
 */
export function writeFilesAtomic(files: readonly AtomicFile[]): void {
  for (const f of files) {
    // A folder cannot be replaced by a file (rename fails with EISDIR, or EBUSY for '.'): say so first.
    if (isFolder(f.path)) {
      throw fsError(Object.assign(new Error('EISDIR'), { code: 'EISDIR' }), f.path, 'write');
    }
  }
  const temps: string[] = [];
  const cleanup = () => {
    for (const t of temps) rmSync(t, { force: true });
  };
  try {
    for (const f of files) {
      const tmp = tempPathOf(f.path);
      temps.push(tmp);
      writeTemp(f, tmp);
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  const created: string[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const existed = existsSync(f.path);
    try {
      renameSync(temps[i]!, f.path);
    } catch (e) {
      cleanup();
      for (const c of created) rmSync(c, { force: true });
      throw fsError(e, f.path, 'write');
    }
    if (!existed) created.push(f.path);
  }
  for (const dir of new Set(files.map((f) => dirname(resolve(f.path))))) {
    try {
      syncFolder(dir);
    } catch (e) {
      throw fsError(e, dir, 'write');
    }
  }
}

export function writePartsAtomic(path: string, parts: readonly Uint8Array[]): void {
  writeFilesAtomic([{ path, parts }]);
}

export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  writePartsAtomic(path, [typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes]);
}

/**
 * Delete the temporary files that writers killed mid-write left in dir (a killed training run leaves
 * one checkpoint-sized file per kill). Files of processes still running are kept. Returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || isRunning(Number(m[1]))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
