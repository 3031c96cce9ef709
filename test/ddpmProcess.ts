// The `ddpm` command as a child process, for the end-to-end tests: spawned as users run it
// (node bin/ddpm.mjs ARGS in a given folder), its output collected, its exit awaited.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'ddpm.mjs');

export interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
}

export interface Started {
  readonly child: ChildProcess;
  readonly done: Promise<Run>;
  /** What the process has written to stderr so far. */
  stderr(): string;
}

/** Start `node [node...] ARGS` (node defaults to bin/ddpm.mjs) in cwd, with these variables added to the environment. */
export function startDdpm(
  args: readonly string[],
  opts: { cwd: string; node?: readonly string[]; env?: Readonly<Record<string, string>> },
): Started {
  const t0 = performance.now();
  const child = spawn(process.execPath, [...(opts.node ?? [BIN]), ...args], {
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 }),
    ),
  );
  return { child, done, stderr: () => stderr };
}

/** A function running `ddpm ARGS` in cwd to its exit. */
export function ddpmIn(cwd: string): (args: readonly string[]) => Promise<Run> {
  return (args) => startDdpm(args, { cwd }).done;
}

/** A fresh temporary folder, removed after the calling file's tests, and `ddpm ARGS` run in it. */
export function ddpmInTemp(prefix: string): { dir: string; ddpm: (args: readonly string[]) => Promise<Run> } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, ddpm: ddpmIn(dir) };
}
