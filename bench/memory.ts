// The memory suite (`npm run bench -- memory`): peak resident memory of a training process and of a
// sampling process, ours against PyTorch's, each measurement in a fresh process of its own (getrusage's
// maxrss: the whole process, runtime and libraries included). Issue 16's target: at or below PyTorch on
// every row. Also the set-up time of each side (our graph build + ONNX Runtime session; torch's model
// construction and warm-up run).

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { MemArena } from '../src/engine/engine.js';
import { REPO_ROOT } from './torchServer.js';

export interface MemoryRow {
  /** The timing row whose work is measured (bench/rows.ts and the torch server's SETUPS). */
  readonly row: string;
  readonly batch: number;
  /**
   * Train rows: our side runs the batch in chunks of at most this many images (gradient accumulation,
   * `ddpm train --microbatch`); PyTorch's side runs the whole batch, as a PyTorch user with the memory would.
   */
  readonly microbatch?: number;
  readonly label: string;
}

export const MEMORY_ROWS: readonly MemoryRow[] = [
  { row: 'S-train', batch: 64, label: 'S-train-b64' },
  { row: 'L-train', batch: 16, label: 'L-train-b16' },
  { row: 'L-train', batch: 64, label: 'L-train-b64' },
  { row: 'L-train', batch: 128, label: 'L-train-b128' },
  { row: 'L-train', batch: 128, microbatch: 16, label: 'L-train-b128-mb16' },
  { row: 'S-fwd', batch: 64, label: 'S-sample-b64' },
  { row: 'L-fwd', batch: 64, label: 'L-sample-b64' },
];

export interface Measured {
  readonly maxrssMb: number;
  readonly setupMs: number;
  /** Mean time of a run (ours: the first two runs, ONNX Runtime's warm-up, included). */
  readonly runMs: number;
}

/** Our side's ONNX Runtime memory settings (SessionOptions.memArena / memPattern; undefined: the default). */
export interface MemorySettings {
  readonly memArena?: MemArena;
  readonly memPattern?: boolean;
}

/** Runs `cmd` and parses the JSON line it prints; a crash (e.g. the kernel's OOM killer) becomes an Error. */
function child(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err = (err + d).slice(-2000);
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && line.startsWith('{')) {
        const j = JSON.parse(line) as { maxrss_mb: number; setup_ms: number; run_ms: number };
        resolve({ maxrssMb: j.maxrss_mb, setupMs: j.setup_ms, runMs: j.run_ms });
      } else {
        const why = signal === 'SIGKILL' ? 'killed (out of memory?)' : `exit ${code ?? signal}`;
        reject(new Error(`${why}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
      }
    });
  });
}

export function measureOurs(
  r: MemoryRow,
  runs: number,
  threads: number,
  mem: MemorySettings = {},
): Promise<Measured> {
  const onOff = (v: boolean) => (v ? 'on' : 'off');
  return child(
    process.execPath,
    [
      '--import',
      'tsx',
      join('bench', 'memoryChild.ts'),
      r.row,
      String(r.batch),
      String(runs),
      String(threads),
      ...(r.microbatch !== undefined ? ['--microbatch', String(r.microbatch)] : []),
      ...(mem.memArena !== undefined ? ['--mem-arena', mem.memArena] : []),
      ...(mem.memPattern !== undefined ? ['--mem-pattern', onOff(mem.memPattern)] : []),
    ],
    process.env,
  );
}

export function measureTorch(r: MemoryRow, runs: number): Promise<Measured> {
  return child(
    '/bin/sh',
    [join('reference', 'torch_server.sh'), '--memory', r.row, String(r.batch), String(runs), 'reference'],
    {
      ...process.env,
      TORCH_THREADS: '2',
      OMP_NUM_THREADS: '2',
      OPENBLAS_NUM_THREADS: '1',
      // glibc's own malloc: its lowest peak (the speed suites keep memory for reuse, 60-85 MB more on
      // S-sample-b64; bench/README.md, "PyTorch at its best").
      TORCH_MALLOC: 'glibc',
    },
  );
}
