#!/usr/bin/env node
// Entry point of the `ddpm` command. Runs the compiled dist/ (npm ci builds it) when it is newer than every
// source file under src/, which starts in about half the time; otherwise (a source edited since the build,
// dist/ missing, or DDPM_FROM_SOURCE=1) the TypeScript sources through tsx, so an edit is never run stale.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Latest modification time (ms) of the sources dist/ is built from under dir (tsconfig.build.json: no tests,
 * no src/web), or Infinity if dir cannot be read. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (p !== `${root}src/web`) newest = Math.max(newest, newestSource(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Build time of dist/ (its entry's modification time), or -Infinity when there is none. */
function builtAt() {
  try {
    return statSync(`${root}dist/cli/main.js`).mtimeMs;
  } catch {
    return Number.NEGATIVE_INFINITY;
  }
}

const compiled = process.env.DDPM_FROM_SOURCE !== '1' && builtAt() >= newestSource(`${root}src`);
let main;
if (compiled) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
