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
  /** "AMD EPYC 7B13 (family 25, model 1)", "Intel(R) Xeon(R) Platinum 8481C (family 6, model 143)", ... */
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

/**
 * The model name, with the x86 family and model numbers where /proc/cpuinfo has them: a VM often names only
 * "AMD EPYC", which both the AVX2 (Zen 3, family 25) and the AVX-512 (Zen 5, family 26) machines report.
 */
export function cpuName(cpuinfo: string): string {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const model = field('model name') ?? cpus()[0]?.model ?? 'unknown CPU';
  const [family, number] = [field('cpu family'), field('model')];
  return family && number ? `${model} (family ${family}, model ${number})` : model;
}

export async function machineInfo(engine: Engine): Promise<MachineInfo> {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: the model name from Node, no flags
  }
  return {
    cpu: cpuName(cpuinfo),
    isa: cpuFlags(cpuinfo),
    logicalCpus: cpus().length,
    nchwcBlock: await nchwcBlockOf(engine),
  };
}

export interface GemmPeak {
  /** The probe of the best run ('1024' = a 1024-square MatMul, 'conv3x3' = the convolution probe). */
  readonly n: string;
  /** Best run over every probe (the ceiling, not the typical value). */
  readonly gflops: number;
  /** Every probe timed: its best GFLOP/s and its runs. */
  readonly sizes: readonly { readonly n: string; readonly gflops: number; readonly ms: readonly number[] }[];
}

/**
 * The float32 limit of this engine on this machine: C = A B with n x n matrices (2 n^3 flop) and a chain of
 * 3x3 convolutions of 256 channels at 32x32, batch 16 (2 x 16 x 256 x 256 x 9 x 1024 flop each, ORT's NCHWc
 * kernel), through the same Engine and thread count as the rows, best run over every probe after one warm-up each.
 * One square MatMul is not enough: on the AMD EPYC (AVX2) machine, 4096 reached 124-153 GFLOP/s and 1024
 * reached 144-161 within minutes of each other, while L-fwd's convolutions ran at 164-180 GFLOP/s.
 */
export async function gemmPeak(
  engine: Engine,
  threads: number,
  sizes: readonly { n: number; reps: number }[] = [
    { n: 1024, reps: 30 },
    { n: 2048, reps: 8 },
    { n: 4096, reps: 3 },
  ],
): Promise<GemmPeak> {
  const out: { n: string; gflops: number; ms: number[] }[] = [];
  for (const { n, reps } of sizes) {
    const ms = await gemmRuns(engine, threads, n, reps);
    out.push({ n: String(n), gflops: (2 * n ** 3) / (Math.min(...ms) / 1000) / 1e9, ms });
  }
  const conv = await convRuns(engine, threads, 15);
  out.push({ n: 'conv3x3', gflops: conv.flop / (Math.min(...conv.ms) / 1000) / 1e9, ms: conv.ms });
  const best = out.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return { n: best.n, gflops: best.gflops, sizes: out };
}

/** Convolutions in the conv probe's chain. With one, its feed and reorders were part of the timed run and
 * L-fwd (convolutions chained in the blocked layout) measured 106-111% of the probe on the AVX-512 EPYC. */
const CONV_PROBE_DEPTH = 4;

async function convRuns(
  engine: Engine,
  threads: number,
  reps: number,
): Promise<{ flop: number; ms: number[] }> {
  const [b, c, r] = [16, 256, 32];
  const g = new Graph();
  const x = g.input('x', [b, c, r, r]);
  const rng = new Rng(2);
  // CONV_PROBE_DEPTH convolutions in a row, so that the feed, the copy of the output and ORT's reorders to
  // and from its blocked layout (once per run) weigh little beside the convolutions' own time.
  let y = x;
  for (let k = 0; k < CONV_PROBE_DEPTH; k++) {
    const w = new Float32Array(c * c * 9);
    for (let i = 0; i < w.length; i++) w[i] = (rng.uniform() - 0.5) / 48;
    y = g.conv(y, g.param(`w${k}`, [c, c, 3, 3], w), undefined, { pads: [1, 1, 1, 1] });
  }
  const session = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }), {
    threads,
  });
  try {
    const data = new Float32Array(b * c * r * r);
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform() - 0.5;
    const input = { x: { data, shape: [b, c, r, r] } };
    await session.run(input); // warm-up
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await session.run(input);
      ms.push(performance.now() - t0);
    }
    return { flop: CONV_PROBE_DEPTH * 2 * b * c * c * 9 * r * r, ms };
  } finally {
    await session.release();
  }
}

async function gemmRuns(engine: Engine, threads: number, n: number, reps: number): Promise<number[]> {
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
    return ms;
  } finally {
    await session.release();
  }
}
