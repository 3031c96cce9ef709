// File-system errors in the user's words (Node only): one place turns Node's errno errors (ENOENT, EACCES,
// EROFS, ENOSPC, ...) into messages that name the path the user gave (never a hidden temporary file), the
// real cause (missing folder, permission, read-only file system, full disk, a folder where a file belongs)
// and what to do about it. Atomic writes (atomicFile.ts) and the `ddpm` command report through it.

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** What was being done to the path: reading a file, writing one, or creating a folder. */
export type FsAction = 'read' | 'write' | 'create-folder';

/** A file-system failure explained; `code` is Node's (ENOSPC, ...), `path` the user's path. */
export class FileSystemError extends Error {
  constructor(
    readonly code: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'FileSystemError';
  }
}

/** A Node system error (has an errno code). */
export function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The first ancestor of p (p included) that exists. */
function existingAncestor(p: string): string {
  let cur = resolve(p);
  while (!existsSync(cur) && dirname(cur) !== cur) cur = dirname(cur);
  return cur;
}

/** Node's description of an errno error without its code and path ("no space left on device"). */
function nodeCause(e: NodeJS.ErrnoException): string {
  const m = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message);
  return m ? m[1]! : e.message;
}

/**
 * Explain a file-system error `e` raised while doing `action` on `path` (the path as the user gave it;
 * pass the target, not a temporary file). Errors that are not errno errors are returned unchanged.
 */
export function fsError(e: unknown, path: string, action: FsAction): Error {
  if (e instanceof FileSystemError || !isErrnoError(e)) return e as Error;
  const code = e.code!;
  const parent = dirname(path);
  const dir = action === 'create-folder' ? dirname(resolve(path)) : parent === '.' ? resolve(parent) : parent;
  const what = action === 'create-folder' ? `create folder ${path}` : `${action} ${path}`;
  const fail = (m: string) => new FileSystemError(code, path, m);
  if (code === 'ENOENT' && action === 'create-folder') {
    // mkdir -p reports ENOENT on a read-only file system or where a part of the path is a file: ask the
    // deepest existing folder why.
    const anc = existingAncestor(path);
    if (!isDir(anc)) return fail(`cannot ${what}: ${anc} is a file, not a folder; choose another path`);
    try {
      accessSync(anc, constants.W_OK);
    } catch (why) {
      if (isErrnoError(why) && why.code !== 'ENOENT') return fsError(why, path, action);
    }
    return fail(`cannot ${what}: ${nodeCause(e)} (in ${anc}); choose another path`);
  }
  switch (code) {
    case 'ENOENT':
      if (action === 'read') return fail(`${path} does not exist`);
      return fail(
        `cannot ${what}: folder ${dir} does not exist; create the folder first or choose another path`,
      );
    case 'EACCES':
    case 'EPERM':
      return fail(
        action === 'read'
          ? `cannot read ${path}: permission denied; check its permissions (ls -l) or copy it somewhere readable`
          : `cannot ${what}: permission denied in folder ${dir}; choose a folder you can write to, or change its permissions`,
      );
    case 'EROFS':
      return fail(
        `cannot ${what}: folder ${action === 'create-folder' ? existingAncestor(path) : dir} is on a read-only file system; choose a folder on a writable disk`,
      );
    case 'ENOSPC':
      return fail(
        `cannot ${what}: the disk holding ${dir} is full (no space left on device); free some space or choose another disk`,
      );
    case 'EDQUOT':
      return fail(
        `cannot ${what}: your disk quota on ${dir} is used up; free some space or choose another disk`,
      );
    case 'EISDIR':
      return fail(`cannot ${what}: ${path} is a folder; give a file name`);
    case 'EBUSY':
      return fail(
        isDir(path)
          ? `cannot ${what}: ${path} is a folder; give a file name`
          : `cannot ${what}: it is busy (in use by another program, or a mount point); try again or choose another path`,
      );
    case 'ENOTDIR': {
      let p = resolve(action === 'create-folder' ? path : dir);
      while (dirname(p) !== p && !existsSync(p)) p = dirname(p);
      return fail(`cannot ${what}: ${p} is a file, not a folder; choose another path`);
    }
    case 'EEXIST':
      return fail(
        action === 'create-folder'
          ? `cannot ${what}: a file of that name exists; remove it or choose another name`
          : `cannot ${what}: it already exists`,
      );
    case 'EMFILE':
    case 'ENFILE':
      return fail(`cannot ${what}: too many open files; close other programs or raise the limit (ulimit -n)`);
    case 'EIO':
      return fail(`cannot ${what}: input/output error on the disk holding ${dir}; check the disk`);
    default:
      return fail(`cannot ${what}: ${nodeCause(e)} (${code})`);
  }
}

/**
 * Explain an errno error that reached the top of a command without a caller naming its file: the path is
 * Node's own (e.path); the action follows from the system call.
 */
export function explainFsError(e: unknown): Error {
  if (e instanceof FileSystemError || !isErrnoError(e) || e.path === undefined) return e as Error;
  const sc = e.syscall ?? '';
  const action: FsAction =
    sc === 'mkdir'
      ? 'create-folder'
      : ['write', 'rename', 'unlink', 'rmdir', 'fsync', 'copyfile', 'ftruncate'].includes(sc)
        ? 'write'
        : 'read';
  return fsError(e, e.path, action);
}
