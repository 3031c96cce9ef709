// What the benchmark ran on: the CPU model, its vector instruction sets, ONNX Runtime's NCHWc block, and
// the machine's own float32 limit as this engine reaches it (a large square GEMM timed in the same run).
// Every row's GFLOP/s is then reported as a fraction of that peak, so numbers from different machine types
// are read against their own ceiling rather than against one machine's figures.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { Engine } from '../src/engine/engine.js';
import { Graph } from '../src/graph/graph.js';
import { nchwcBlockOf } from '../src/graph/nchwc.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Rng } from '../src/util/rng.js';

export interface MachineInfo {
  /** "AMD EPYC 7B13", "Intel(R) Xeon(R) Platinum 8481C", ... */
  readonly cpu: string;
  /** Instruction sets that matter for the kernels: avx2, fma, avx512f, avx512_vnni, avx512_bf16, amx, neon. */
  readonly isa: readonly string[];
  readonly logicalCpus: number;
  /** ONNX Runtime's NCHWc block (8 on AVX2, 16 on AVX-512; 0 when the engine has no NCHWc kernels). */
  readonly nchwcBlock: number;
}

/** The CPU flags we report, in order, as /proc/cpuinfo names them (x86) or as "neon" (arm64 asimd). */
const ISA_FLAGS = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16', 'avx_vnni'] as const;

export function cpuFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split('\n').find((l) => /^(flags|Features)\s*:/.test(l)) ?? '';
  const have = new Set(
    line
      .replace(/^[^:]*:/, '')
      .trim()
      .split(/\s+/),
  );
  const isa: string[] = ISA_FLAGS.filter((f) => have.has(f));
  if (have.has('amx_tile')) isa.push('amx');
  if (have.has('asimd')) isa.push('neon');
  return isa;
}

export async function machineInfo(engine: Engine): Promise<MachineInfo> {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: the model name from Node, no flags
  }
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown CPU';
  return {
    cpu: model,
    isa: cpuFlags(cpuinfo),
    logicalCpus: cpus().length,
    nchwcBlock: await nchwcBlockOf(engine),
  };
}

export interface GemmPeak {
  readonly n: number;
  /** Best of the timed runs (the ceiling, not the typical value). */
  readonly gflops: number;
  readonly ms: readonly number[];
}

/**
 * The float32 limit of this engine on this machine: C = A B with n x n matrices (2 n^3 flop), through the
 * same Engine and thread count as the rows, best of `reps` runs after one warm-up.
 */
export async function gemmPeak(engine: Engine, threads: number, n = 4096, reps = 3): Promise<GemmPeak> {
  const g = new Graph();
  const a = g.input('a', [n, n]);
  const rng = new Rng(1);
  const w = new Float32Array(n * n);
  for (let i = 0; i < w.length; i++) w[i] = rng.uniform() - 0.5;
  const c = g.matmul(a, g.param('b', [n, n], w));
  const session = await engine.createSession(toOnnx(g, { outputs: { c }, params: 'initializer' }), {
    threads,
  });
  try {
    const x = { data: w.slice(), shape: [n, n] };
    const out = { c: { data: new Float32Array(n * n), shape: [n, n] } };
    await session.run({ a: x }, out); // warm-up
    const ms: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await session.run({ a: x }, out);
      ms.push(performance.now() - t0);
    }
    return { n, gflops: (2 * n ** 3) / (Math.min(...ms) / 1000) / 1e9, ms };
  } finally {
    await session.release();
  }
}
