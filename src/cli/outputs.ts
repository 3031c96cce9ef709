// Output paths checked before the work: every file a command will write (PNG, GIF, JSON, ...) and every
// folder it will fill (a training run) is validated when the command starts: its folder exists and is
// writable (not read-only, not a file), the path is not a folder, its extension matches the format, two
// options do not name the same file, and the disk has room for it. A wrong path costs seconds, not the
// run. Errors name the option, the path, the cause and what to do.

import { accessSync, constants, existsSync, statfsSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fsError } from '../util/fsErrors.js';
import { UsageError } from './args.js';

export type OutputFormat = 'png' | 'gif' | 'json';

const EXTENSION: Readonly<Record<OutputFormat, string>> = { png: '.png', gif: '.gif', json: '.json' };
const FORMAT_NAME: Readonly<Record<OutputFormat, string>> = { png: 'PNG', gif: 'GIF', json: 'JSON' };

/** One output file of a command: the option that names it, its path and its format. */
export interface OutputFile {
  readonly option: string;
  readonly path: string;
  readonly format: OutputFormat;
  /** An upper bound of its size in bytes, checked against its disk's free space (0 or absent: not checked). */
  readonly bytes?: number;
  /**
   * What the option writes when given a folder ending in / instead (ddpm sample: 'one PNG per image'): named
   * in the errors for an existing folder or a name without extension, where that may be what was meant.
   */
  readonly folderForm?: string;
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

function megabytes(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.ceil(bytes / 1e3)} KB`;
}

/** Why folder `dir` cannot take new files (said as for writing `file` in it), or null if it can. */
function folderProblem(dir: string, file: string): string | null {
  try {
    accessSync(dir, constants.W_OK);
    return null;
  } catch (e) {
    // The caller names the path: keep the cause.
    return fsError(e, file, 'write').message.replace(/^cannot write .*?: (?=folder|permission)/, '');
  }
}

/** Why the disk of `dir` lacks `bytes` bytes, or null (also when the free space cannot be read). */
function spaceProblem(dir: string, bytes: number | undefined, what: string): string | null {
  if (!bytes) return null;
  try {
    const s = statfsSync(dir);
    const free = Number(s.bavail) * Number(s.bsize);
    if (free >= bytes) return null;
    return `the disk holding ${dir} has ${megabytes(free)} free; ${what} ${megabytes(bytes)}; free some space or choose another disk`;
  } catch {
    return null;
  }
}

/** Why `path` cannot be written as `format`, or null. */
function fileProblem(o: OutputFile): string | null {
  const p = o.path;
  if (p === '') return `an empty name; give a file name, e.g. output${EXTENSION[o.format]}`;
  if (/[/\\]$/.test(p))
    return `names a folder; give a file name, e.g. ${join(p, `output${EXTENSION[o.format]}`)}`;
  if (isDir(p)) {
    const orFolder = o.folderForm
      ? `, or end it with / (${p.replace(/[\\/]+$/, '')}/) for ${o.folderForm}`
      : '';
    return `${p} is a folder; give a file name, e.g. ${join(p, `output${EXTENSION[o.format]}`)}${orFolder}`;
  }
  const ext = extname(p);
  if (ext.toLowerCase() !== EXTENSION[o.format]) {
    const fix = `${ext ? p.slice(0, -ext.length) : p}${EXTENSION[o.format]}`;
    const orFolder = !ext && o.folderForm ? `; or ${p}/ for a folder of ${o.folderForm}` : '';
    return `writes ${FORMAT_NAME[o.format]}, so the name must end in ${EXTENSION[o.format]}${ext ? ` (not ${ext})` : ''}, e.g. ${fix}${orFolder}`;
  }
  const dir = dirname(resolve(p));
  if (!existsSync(dir)) {
    const anc = existingAncestor(dir);
    if (!isDir(anc)) return `${anc} is a file, not a folder; choose another path`;
    return `folder ${dirname(p)} does not exist; create it first (mkdir -p ${dirname(p)}) or choose another folder`;
  }
  if (!isDir(dir)) return `${dir} is a file, not a folder; choose another path`;
  return folderProblem(dir, p) ?? spaceProblem(dir, o.bytes, `the ${FORMAT_NAME[o.format]} file needs up to`);
}

/**
 * Check a command's output files before it starts working; throws a UsageError naming the option, the
 * path and what to do. Two options naming the same file are refused too (all outputs are written).
 */
export function checkOutputs(cmd: string, files: readonly (OutputFile | undefined)[]): void {
  const given = files.filter((f): f is OutputFile => f !== undefined);
  for (const f of given) {
    const why = fileProblem(f);
    if (why) throw new UsageError(`ddpm ${cmd}: --${f.option} ${f.path}: ${why}`);
  }
  for (let i = 0; i < given.length; i++) {
    for (let j = 0; j < i; j++) {
      if (resolve(given[i]!.path) === resolve(given[j]!.path)) {
        throw new UsageError(
          `ddpm ${cmd}: --${given[j]!.option} and --${given[i]!.option} both name ${given[i]!.path}; give each its own file`,
        );
      }
    }
  }
}

/**
 * Check a folder a command will create or fill (a training run): an existing one must be a writable folder;
 * a new one needs a writable folder to be created in. `bytes`: room the run needs (its checkpoint files).
 */
export function checkOutputFolder(cmd: string, option: string, path: string, bytes?: number): void {
  const fail = (why: string): never => {
    throw new UsageError(`ddpm ${cmd}: --${option} ${path}: ${why}`);
  };
  if (existsSync(path)) {
    if (!isDir(path)) fail(`is a file; --${option} takes a folder (created if missing)`);
    const why = folderProblem(path, join(path, 'checkpoint.safetensors'));
    if (why) fail(why);
  } else {
    const anc = existingAncestor(path);
    if (!isDir(anc)) fail(`${anc} is a file, not a folder; choose another path`);
    try {
      accessSync(anc, constants.W_OK);
    } catch (e) {
      fail(
        fsError(e, path, 'create-folder').message.replace(
          /^cannot create folder .*?: /,
          'cannot create it: ',
        ),
      );
    }
  }
  const why = spaceProblem(existingAncestor(path), bytes, 'a checkpoint and its temporary copy need about');
  if (why) fail(why);
}

/** Fail before any work when a file cannot be written where asked (any format). */
export function checkWritable(cmd: string, path: string, what: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`ddpm ${cmd}: cannot write ${what} ${path}: folder ${dir} does not exist`);
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new UsageError(`ddpm ${cmd}: ${what} ${path} is a folder; give a file name`);
  }
  const why = folderProblem(dir, path);
  if (why) throw new UsageError(`ddpm ${cmd}: ${what}: ${why}`);
}
