// Test helper (Node only): a small tmpfs mounted on a fresh folder, to see real full-disk (ENOSPC) and
// read-only (EROFS) errors. Mounting needs root (CAP_SYS_ADMIN); where it is refused, tests skip with the
// reason this returns.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestMount {
  readonly dir: string;
  unmount(): void;
}

export type MountKind = 'full' | 'read-only';

/**
 * Mount a tmpfs of `kb` kilobytes ('read-only': mounted ro, empty). Returns the mount, or why it could
 * not be made (a string: the reason to print when skipping).
 */
export function mountTmpfs(kind: MountKind, kb = 64): TestMount | string {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  const dir = mkdtempSync(join(tmpdir(), `ddpm-${kind}-`));
  const opts = `size=${kb}k${kind === 'read-only' ? ',ro' : ''}`;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim();
    return `cannot mount a ${kind} tmpfs (needs root with CAP_SYS_ADMIN): ${why}`;
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
