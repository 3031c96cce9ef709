// Benchmark harness: `npm run bench -- engine|sample|all [--reps N] [--rows A,B] [--no-torch] [--threads N]`.
// Times the project (ONNX Runtime through src/) and the PyTorch reference (reference/torch_server.sh) on the
// same machine in the same run, interleaved run by run (ours, torch, ours, torch, ...), and prints a table
// and, as the last line of each suite, one JSON object {"bench":SUITE,"rows":[{name,ours_ms,torch_ms,ratio}]}.
// See bench/README.md for what each row measures and the conventions.

import { loadavg } from 'node:os';
import { MEM_ARENAS, type MemArena } from '../src/engine/engine.js';
import { nodeEngine } from '../src/engine/node.js';
import { hasBf16Winograd } from '../src/graph/passes/winogradBf16.js';
import { type GemmPeak, gemmPeak, type MachineInfo, machineInfo } from './machine.js';
import { MEMORY_ROWS, type Measured, type MemorySettings, measureOurs, measureTorch } from './memory.js';
import { createOurs, ROWS, type RowDef, type Suite } from './rows.js';
import { webSuite } from './web.js';
import {
  type Answer,
  INSTALL_HINT,
  type TorchThreads,
  TorchServer,
  TorchUnavailable,
  threadsLabel,
} from './torchServer.js';

interface Options {
  suites: (Suite | 'memory' | 'web')[];
  reps: number | null;
  rows: string[] | null;
  torch: boolean;
  threads: number;
  /** Whether --threads was given (the web suite times 1 and 2 threads otherwise). */
  threadsGiven: boolean;
  /** The web suite's images per forward pass. */
  webBatch: number;
  settleMs: number;
  /** PyTorch's thread settings: chosen per row kind by measurement ('auto'), or fixed. */
  torchThreads: 'auto' | TorchThreads;
  /** Memory suite: our side's ONNX Runtime arena and memory pattern (undefined: the engine's default). */
  mem: MemorySettings;
}

/** The thread settings 'auto' tries on PyTorch's side (torch intra-op threads, OpenBLAS threads). */
const TORCH_CANDIDATES: readonly TorchThreads[] = [
  { torch: 2, blas: 1 },
  { torch: 2, blas: 2 },
  { torch: 1, blas: 2 },
];

const USAGE = `usage: npm run bench -- <engine|sample|eval|throughput|precision|memory|web|all> [options]
  --reps N        timed runs per side and row (default: 5 for fwd/train rows, 3 for sampling rows)
                  (memory: runs per process, at least 3; default 5 for train rows, 3 for sampling rows)
  --rows A,B      only these rows (engine: ${rowNames('engine')}; sample: ${rowNames('sample')};
                  eval: ${rowNames('eval')};
                  throughput: ${rowNames('throughput')};
                  precision (int8 is its old name): ${rowNames('precision')}; memory: ${MEMORY_ROWS.map((r) => r.label).join(', ')})
  --no-torch      time our side only (ratio null; GFLOP per image from the reference's published count)
  --threads N     ONNX Runtime intra-op threads for our side (default 2; the web suite: 1 and 2)
  --batch N       web suite: images per forward pass (default 9)
  --torch-threads auto|T,B
                  PyTorch's intra-op threads T and OpenBLAS's threads B. auto (default): for each model size
                  and kind (forward, training, Inception) time ${TORCH_CANDIDATES.map((c) => `${c.torch},${c.blas}`).join(' / ')} and keep the fastest
  --settle MS     idle time before each timed run (default 500): the side that just ran leaves its worker
                  threads spinning (ONNX Runtime's pool, OpenBLAS/OpenMP), which slowed the other side by
                  6-16% when the runs were back to back
  --mem-arena shared|session|off, --mem-pattern on|off
                  memory suite: ONNX Runtime's CPU memory arena and memory pattern on our side (default:
                  the engine's setting)`;

function rowNames(s: Suite): string {
  return ROWS.filter((r) => r.suite === s)
    .map((r) => r.name)
    .join(', ');
}

function fail(msg: string): never {
  console.error(msg);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    suites: [],
    reps: null,
    rows: null,
    torch: true,
    threads: 2,
    threadsGiven: false,
    webBatch: 9,
    settleMs: 500,
    torchThreads: 'auto',
    mem: {},
  };
  const onOff = (flag: string, v: string | undefined): boolean => {
    switch (v) {
      case 'on':
        return true;
      case 'off':
        return false;
      default:
        return fail(`${flag} needs on or off, got ${JSON.stringify(v)}\n${USAGE}`);
    }
  };
  const arenaOf = (flag: string, v: string | undefined): MemArena =>
    MEM_ARENAS.includes(v as MemArena)
      ? (v as MemArena)
      : fail(`${flag} needs ${MEM_ARENAS.join(', ')}, got ${JSON.stringify(v)}\n${USAGE}`);
  const positive = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      fail(`${flag} needs a positive integer, got ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] =
      a.startsWith('--') && a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case 'engine':
      case 'sample':
      case 'eval':
      case 'throughput':
      case 'precision':
      case 'memory':
      case 'web':
        o.suites.push(flag);
        break;
      case 'int8': // the precision suite's name before its bf16 rows
        o.suites.push('precision');
        break;
      case 'all':
        o.suites.push('engine', 'sample');
        break;
      case '--reps':
        o.reps = positive(flag, value());
        break;
      case '--threads':
        o.threads = positive(flag, value());
        o.threadsGiven = true;
        break;
      case '--batch':
        o.webBatch = positive(flag, value());
        break;
      case '--settle': {
        const v = value();
        o.settleMs = Number(v);
        if (!Number.isInteger(o.settleMs) || o.settleMs < 0)
          fail(`--settle needs a whole number of milliseconds, got ${JSON.stringify(v)}\n${USAGE}`);
        break;
      }
      case '--rows':
        o.rows = (value() ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--torch-threads': {
        const v = value() ?? '';
        const m = /^(\d+),(\d+)$/.exec(v);
        if (v === 'auto') o.torchThreads = 'auto';
        else if (m && Number(m[1]) > 0 && Number(m[2]) > 0)
          o.torchThreads = { torch: Number(m[1]), blas: Number(m[2]) };
        else
          fail(
            `--torch-threads needs auto or two positive integers T,B (e.g. 2,1), got ${JSON.stringify(v)}`,
          );
        break;
      }
      case '--no-torch':
        o.torch = false;
        break;
      case '--mem-arena':
        o.mem = { ...o.mem, memArena: arenaOf(flag, value()) };
        break;
      case '--mem-pattern':
        o.mem = { ...o.mem, memPattern: onOff(flag, value()) };
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);
    }
  }
  if (o.suites.length === 0) fail(`name a suite\n${USAGE}`);
  o.suites = [...new Set(o.suites)];
  if (o.rows) {
    if (o.rows.length === 0) fail(`--rows needs row names\n${USAGE}`);
    for (const r of o.rows) {
      if (MEMORY_ROWS.some((m) => m.label === r)) {
        if (!o.suites.includes('memory'))
          fail(`row ${r} belongs to the memory suite: npm run bench -- memory --rows ${r}`);
        continue;
      }
      const def = ROWS.find((d) => d.name === r);
      if (!def) fail(`unknown row ${JSON.stringify(r)}\n${USAGE}`);
      if (!o.suites.includes(def.suite)) {
        fail(`row ${r} belongs to the ${def.suite} suite: npm run bench -- ${def.suite} --rows ${r}`);
      }
    }
  }
  return o;
}

interface RowResult {
  def: RowDef;
  ours: number[];
  /** The reference U-Net (reference/torch_unet.py), or the Inception model. */
  torch: number[];
  /** The second PyTorch U-Net (reference/torch_unet_tf.py); empty for the Inception row. */
  torchTf: number[];
  torchThreads: TorchThreads | null;
  gflopPerImage: number;
  oursSetupMs: number;
  oursWarmupMs: number[];
  torchSetupMs: number | null;
  torchWarmupMs: number | null;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** GFLOP per image of one forward pass, published in reference/README.md (count_flops), for --no-torch. */
const PUBLISHED_GFLOP: Record<RowDef['size'], number> = { S: 0.841, L: 12.44, I: 11.43 };

const log = (m: string) => process.stderr.write(`${m}\n`);
const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

/** One PyTorch server per thread setting, started when first needed. */
class TorchPool {
  private readonly servers = new Map<string, TorchServer>();
  info: Answer | null = null;

  async get(t: TorchThreads): Promise<TorchServer> {
    const key = threadsLabel(t);
    let s = this.servers.get(key);
    if (!s) {
      const started = await TorchServer.start(t);
      s = started.server;
      this.info ??= started.info;
      this.servers.set(key, s);
    }
    return s;
  }

  close(): void {
    for (const s of this.servers.values()) s.close();
  }

  async quit(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.quit()));
  }
}

/** Rows whose PyTorch side is the same work get the same thread setting: fwd and sampling share the forward. */
function calibrationRow(def: RowDef): string {
  switch (def.kind) {
    case 'fwd':
    case 'ddim50':
    case 'ancestral100':
      return `${def.size}-fwd`;
    case 'train':
      return `${def.size}-train`;
    case 'inception':
      return def.name;
  }
}

const calibrated = new Map<string, TorchThreads>();
const settle = (o: Options) => new Promise((res) => setTimeout(res, o.settleMs));

/**
 * PyTorch at its best on this machine: time the row's kind of work (the reference implementation) under each
 * candidate thread setting, each candidate in its own server, and keep the fastest median.
 */
async function torchThreadsFor(def: RowDef, o: Options, pool: TorchPool): Promise<TorchThreads> {
  if (o.torchThreads !== 'auto') return o.torchThreads;
  const name = calibrationRow(def);
  const known = calibrated.get(name);
  if (known) return known;
  const reps = name === 'inception-fid256' ? 1 : 3;
  let best: { t: TorchThreads; ms: number } | null = null;
  const seen: string[] = [];
  for (const t of TORCH_CANDIDATES) {
    const server = await pool.get(t);
    await server.request({ cmd: 'setup', name });
    if (name !== 'inception-fid256') await server.request({ cmd: 'run', name }); // the second warm-up
    const ms: number[] = [];
    for (let r = 0; r < reps; r++) {
      await settle(o);
      ms.push((await server.request({ cmd: 'run', name })).ms as number);
    }
    await server.request({ cmd: 'drop', name });
    const m = median(ms);
    seen.push(`${threadsLabel(t)} ${fmtMs(m)} ms`);
    if (!best || m < best.ms) best = { t, ms: m };
  }
  log(
    `[${def.name}] torch threads, timed on ${name} (median of ${reps}): ${seen.join('; ')} -> ${threadsLabel(best!.t)}`,
  );
  calibrated.set(name, best!.t);
  return best!.t;
}

async function runRow(def: RowDef, o: Options, pool: TorchPool | null, gflop: number): Promise<RowResult> {
  const reps = o.reps ?? def.defaultReps;
  const engine = nodeEngine();
  log(`[${def.name}] ${def.what}; ${reps} rep(s) per side`);

  // Warm-up. Ours: session creation, then 2 runs (ORT's first two runs are slow).
  let t0 = performance.now();
  const ours = await createOurs(engine, def, o.threads);
  const oursSetupMs = performance.now() - t0;
  const oursWarmupMs: number[] = [];
  for (let i = 0; i < 2; i++) {
    t0 = performance.now();
    await ours.warmup();
    oursWarmupMs.push(performance.now() - t0);
  }
  log(
    `[${def.name}] ours: setup ${fmtMs(oursSetupMs)} ms, warm-up ${oursWarmupMs.map(fmtMs).join(', ')} ms` +
      (def.kind === 'ddim50' || def.kind === 'ancestral100' ? ' (2-step loops)' : ''),
  );
  // Torch: the thread setting, then setup builds the model and runs one warm-up (a 2-step loop for the
  // sampling rows); fwd/train rows get one more untimed run so that both sides have had two. The U-Net rows
  // also set up the second implementation (same weights), timed in the same interleaved loop.
  let torchSetupMs: number | null = null;
  let torchWarmupMs: number | null = null;
  let torch: TorchServer | null = null;
  let torchThreads: TorchThreads | null = null;
  const impls = def.kind === 'inception' ? ['reference'] : ['reference', 'tf-port'];
  const torchName = def.torchName ?? def.name;
  if (pool) {
    torchThreads = await torchThreadsFor(def, o, pool);
    torch = await pool.get(torchThreads);
    for (const impl of impls) {
      const s = await torch.request({ cmd: 'setup', name: torchName, impl, batch: def.batch });
      if (impl === 'reference') {
        torchSetupMs = s.setup_ms as number;
        torchWarmupMs = s.warmup_ms as number;
      }
      let extra = '';
      if (def.kind === 'fwd' || def.kind === 'train') {
        const w = await torch.request({ cmd: 'run', name: torchName, impl });
        extra = `, ${fmtMs(w.ms as number)}`;
      }
      log(
        `[${def.name}] torch ${impl} (${threadsLabel(torchThreads)}): setup ${fmtMs(s.setup_ms as number)} ms, ` +
          `warm-up ${fmtMs(s.warmup_ms as number)}${extra} ms`,
      );
    }
  }

  const oursMs: number[] = [];
  const torchMs: number[] = [];
  const torchTfMs: number[] = [];
  try {
    // Each side is timed on an idle machine: the other side's spinning worker threads settle first.
    for (let r = 0; r < reps; r++) {
      await settle(o);
      t0 = performance.now();
      await ours.run();
      oursMs.push(performance.now() - t0);
      let line = `[${def.name}] rep ${r + 1}/${reps}: ours ${fmtMs(oursMs.at(-1)!)} ms`;
      if (torch) {
        for (const impl of impls) {
          await settle(o);
          const a: Answer = await torch.request({ cmd: 'run', name: torchName, impl });
          (impl === 'reference' ? torchMs : torchTfMs).push(a.ms as number);
          line += `, torch ${impl} ${fmtMs(a.ms as number)} ms`;
        }
      }
      log(line);
    }
  } finally {
    await ours.release();
    if (torch) for (const impl of impls) await torch.request({ cmd: 'drop', name: torchName, impl });
  }
  return {
    def,
    ours: oursMs,
    torch: torchMs,
    torchTf: torchTfMs,
    torchThreads,
    gflopPerImage: gflop,
    oursSetupMs,
    oursWarmupMs,
    torchSetupMs,
    torchWarmupMs,
  };
}

function gflops(r: RowResult, ms: number): number {
  return (r.gflopPerImage * r.def.batch * r.def.flopFactor) / (ms / 1000);
}

interface MachineReport {
  machine: MachineInfo;
  peak: GemmPeak;
}

function report(suite: Suite, results: RowResult[], o: Options, m: MachineReport): void {
  const cell = (xs: number[]) =>
    xs.length === 0 ? '-' : `${fmtMs(median(xs))} (${fmtMs(Math.min(...xs))}-${fmtMs(Math.max(...xs))})`;
  const peak = m.peak.gflops;
  const rows = results.map((r) => {
    const om = median(r.ours);
    const ref = r.torch.length ? median(r.torch) : null;
    const tf = r.torchTf.length ? median(r.torchTf) : null;
    // PyTorch's time is its faster implementation's: the baseline at its best.
    const tm = ref === null ? null : tf === null ? ref : Math.min(ref, tf);
    const impl = ref === null ? null : tf !== null && tf < ref ? 'tf-port' : 'reference';
    const og = gflops(r, om);
    return {
      cells: [
        r.def.name,
        String(r.ours.length),
        cell(r.ours),
        cell(r.torch),
        cell(r.torchTf),
        tf === null || ref === null ? '-' : (tf / ref).toFixed(3),
        r.torchThreads ? `${r.torchThreads.torch},${r.torchThreads.blas}` : '-',
        tm === null ? '-' : (om / tm).toFixed(3),
        og.toFixed(1),
        `${((100 * og) / peak).toFixed(0)}%`,
        tm === null ? '-' : gflops(r, tm).toFixed(1),
      ],
      json: {
        name: r.def.name,
        ours_ms: round(om, 1),
        torch_ms: tm === null ? null : round(tm, 1),
        ratio: tm === null ? null : round(om / tm, 4),
        torch_ref_ms: ref === null ? null : round(ref, 1),
        torch_tf_ms: tf === null ? null : round(tf, 1),
        torch_impl: impl,
        torch_threads: r.torchThreads,
        ours_gflops: round(og, 2),
        peak_fraction: round(og / peak, 4),
        torch_peak_fraction: tm === null ? null : round(gflops(r, tm) / peak, 4),
        ...(suite === 'throughput'
          ? {
              batch: r.def.batch,
              ours_images_per_s: round((1000 * r.def.batch) / om, 2),
              torch_images_per_s: tm === null ? null : round((1000 * r.def.batch) / tm, 2),
            }
          : {}),
      },
    };
  });
  const head = [
    'row',
    'reps',
    'ours ms: median (min-max)',
    'torch ref ms',
    'torch tf-port ms',
    'tf/ref',
    'T,B',
    'ratio',
    'ours GFLOP/s',
    'of peak',
    'torch GFLOP/s',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cs: string[]) =>
    cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(`== bench ${suite} ==`);
  console.log(
    `machine: ${m.machine.cpu}, ${m.machine.logicalCpus} logical CPU(s), ${m.machine.isa.join(' ') || 'no AVX2/AVX-512/NEON'}; ` +
      `ONNX Runtime NCHWc block ${m.machine.nchwcBlock || 'none'}; float32 peak ${peak.toFixed(1)} GFLOP/s ` +
      `(best run of ${m.peak.sizes.map((z) => z.n).join(', ')}: ${m.peak.n}; ${o.threads} thread(s), same engine)`,
  );
  console.log(
    'ratio = ours median / torch median, torch = the faster of its two U-Nets (reference/torch_unet.py and\n' +
      'reference/torch_unet_tf.py, same weights; tf/ref = their ratio) under the thread setting T,B (PyTorch\n' +
      'threads, OpenBLAS threads) that measured fastest. GFLOP/s = GFLOP per image of one forward pass (conv +\n' +
      'linear + attention matmuls, 2 x MACs) x batch x k / seconds, k = 1 (fwd), 3 (train: backward counted as\n' +
      '2 forwards), the step count (sampling); "of peak" = ours GFLOP/s / the GEMM peak.',
  );
  if (!o.torch) console.log('--no-torch: no reference timings; GFLOP per image from reference/README.md.');
  const engine = nodeEngine();
  console.log(`engine: ${engine.name}; fused kernels: ${(engine.fusedKernels ?? []).join(' ') || 'none'}`);
  console.log(line(head));
  console.log(line(head.map((_, i) => '-'.repeat(widths[i]!))));
  for (const r of rows) console.log(line(r.cells));
  if (suite === 'throughput') throughputSummary(rows.map((r) => r.json));
  console.log(
    JSON.stringify({
      bench: suite,
      cpu: m.machine.cpu,
      isa: m.machine.isa,
      nchwc_block: m.machine.nchwcBlock,
      engine: engine.name,
      fused_kernels: engine.fusedKernels ?? [],
      peak_gflops: round(peak, 2),
      peak_by_size: Object.fromEntries(m.peak.sizes.map((z) => [z.n, round(z.gflops, 1)])),
      threads: o.threads,
      rows: rows.map((r) => r.json),
    }),
  );
}

/**
 * Per model size, the batch with the most images per second on each side, and the smallest batch of ours
 * within 5% of that best: the trade-off `--batch auto` (src/sample/autoBatch.ts) makes on the user's machine.
 */
function throughputSummary(
  rows: readonly {
    name: string;
    batch?: number;
    ours_images_per_s?: number;
    torch_images_per_s?: number | null;
  }[],
): void {
  for (const size of ['S', 'L']) {
    const mine = rows.filter((r) => r.name.startsWith(`${size}-fwd-b`));
    if (mine.length === 0) continue;
    const best = (key: 'ours_images_per_s' | 'torch_images_per_s') =>
      mine.reduce<(typeof mine)[number] | null>(
        (b, r) => ((r[key] ?? -1) > ((b?.[key] as number | undefined) ?? -1) ? r : b),
        null,
      );
    const ours = best('ours_images_per_s')!;
    const near = mine.find((r) => r.ours_images_per_s! >= 0.95 * ours.ours_images_per_s!)!;
    const torch = best('torch_images_per_s');
    console.log(
      `${size}: ours most images/s at batch ${ours.batch} (${ours.ours_images_per_s!.toFixed(1)}/s), within 5% from batch ${near.batch}` +
        (torch?.torch_images_per_s
          ? `; torch most at batch ${torch.batch} (${torch.torch_images_per_s.toFixed(1)}/s)`
          : ''),
    );
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A memory setting as the table states it; undefined: the session's own (training sessions: pattern off). */
const onOffLabel = (v: boolean | string | undefined) =>
  v === undefined ? "each session's default" : typeof v === 'string' ? v : v ? 'on' : 'off';

/** Peak resident memory, ours and PyTorch's, each measurement in a process of its own (bench/memory.ts). */
async function memorySuite(o: Options, m: MachineReport): Promise<void> {
  const rows = MEMORY_ROWS.filter((r) => !o.rows || o.rows.includes(r.label));
  const results: { label: string; ours: Measured | Error; torch: Measured | Error | null }[] = [];
  for (const r of rows) {
    // --reps: runs per process (at least 3: ONNX Runtime's peak comes with the second run).
    const runs = Math.max(3, o.reps ?? (r.row.endsWith('train') ? 5 : 3));
    const mb = r.microbatch !== undefined ? ` (ours in micro-batches of ${r.microbatch})` : '';
    log(
      `[memory ${r.label}] ${runs} runs of ${r.row} at batch ${r.batch}${mb}, each side in a fresh process`,
    );
    const ours = await measureOurs(r, runs, o.threads, o.mem).catch((e: Error) => e);
    const torch = o.torch ? await measureTorch(r, runs).catch((e: Error) => e) : null;
    const show = (x: Measured | Error | null) =>
      x === null
        ? '-'
        : x instanceof Error
          ? x.message
          : `${x.maxrssMb.toFixed(0)} MB, setup ${fmtMs(x.setupMs)} ms, ${fmtMs(x.runMs)} ms per run`;
    log(`[memory ${r.label}] ours ${show(ours)}; torch ${show(torch)}`);
    results.push({ label: r.label, ours, torch });
  }
  const mb = (x: Measured | Error | null) => (x === null ? null : x instanceof Error ? null : x.maxrssMb);
  const head = [
    'row',
    'ours MB',
    'torch MB',
    'ratio',
    'ours setup ms',
    'torch setup ms',
    'ours run ms',
    'torch run ms',
  ];
  const table = results.map((r) => {
    const a = mb(r.ours);
    const b = mb(r.torch);
    const setup = (x: Measured | Error | null) => (x === null || x instanceof Error ? '-' : fmtMs(x.setupMs));
    const run = (x: Measured | Error | null) => (x === null || x instanceof Error ? '-' : fmtMs(x.runMs));
    return [
      r.label,
      a === null ? 'failed' : a.toFixed(0),
      r.torch === null ? '-' : b === null ? 'failed' : b.toFixed(0),
      a === null || b === null ? '-' : (a / b).toFixed(3),
      setup(r.ours),
      setup(r.torch),
      run(r.ours),
      run(r.torch),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((c) => c[i]!.length)));
  const line = (cs: string[]) =>
    cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log('== bench memory ==');
  console.log(
    `machine: ${m.machine.cpu}, ${m.machine.logicalCpus} logical CPU(s), ${m.machine.isa.join(' ')}`,
  );
  console.log(
    'Peak resident memory (getrusage maxrss) of a fresh process that sets up the row at the batch and runs it\n' +
      `${o.reps === null ? '5 times (training) or 3 times (sampling' : `${Math.max(3, o.reps)} times (sampling`}: one forward of the denoiser per run); ratio = ours / torch.\n` +
      'A row -mbN runs our side in micro-batches of N (gradient accumulation), PyTorch the whole batch.\n' +
      'Setup: ours = graph build + ONNX Runtime session; torch = model construction + one warm-up run.\n' +
      'Run: mean time of a run (ours with its two warm-up runs, torch after its warm-up; a loaded machine slows both).\n' +
      `Our ONNX Runtime memory settings: arena ${onOffLabel(o.mem.memArena)}, memory pattern ${onOffLabel(o.mem.memPattern)}.`,
  );
  console.log(line(head));
  console.log(line(head.map((_, i) => '-'.repeat(widths[i]!))));
  for (const c of table) console.log(line(c));
  console.log(
    JSON.stringify({
      bench: 'memory',
      cpu: m.machine.cpu,
      isa: m.machine.isa,
      mem_arena: o.mem.memArena ?? null,
      mem_pattern: o.mem.memPattern ?? null,
      rows: results.map((r) => ({
        name: r.label,
        microbatch: MEMORY_ROWS.find((x) => x.label === r.label)?.microbatch ?? null,
        ours_mb: mb(r.ours) === null ? null : round(mb(r.ours)!, 1),
        torch_mb: mb(r.torch) === null ? null : round(mb(r.torch)!, 1),
        ours_setup_ms: r.ours instanceof Error ? null : round(r.ours.setupMs, 1),
        ours_run_ms: r.ours instanceof Error ? null : round(r.ours.runMs, 1),
        torch_run_ms: r.torch === null || r.torch instanceof Error ? null : round(r.torch.runMs, 1),
        torch_setup_ms: r.torch === null || r.torch instanceof Error ? null : round(r.torch.setupMs, 1),
        ours_error: r.ours instanceof Error ? r.ours.message : undefined,
        torch_error: r.torch instanceof Error ? r.torch.message : undefined,
      })),
    }),
  );
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  let pool: TorchPool | null = null;
  if (o.torch && o.suites.some((s) => s !== 'web')) {
    pool = new TorchPool();
    try {
      await pool.get(o.torchThreads === 'auto' ? TORCH_CANDIDATES[0]! : o.torchThreads);
    } catch (e) {
      if (e instanceof TorchUnavailable) {
        console.error(`bench: cannot run the PyTorch reference: ${e.message}`);
        console.error(`Install it (Debian): ${INSTALL_HINT}\nor time our side only with --no-torch.`);
        process.exit(1);
      }
      throw e;
    }
  }
  const exitHandler = () => pool?.close();
  process.on('exit', exitHandler);

  const load = loadavg();
  const engine = nodeEngine();
  const machine = await machineInfo(engine);
  console.log(
    `ddpm-ts bench: node ${process.version}, ${engine.name}, ${o.threads} thread(s); ` +
      (pool?.info ? `torch ${pool.info.torch as string} on OpenBLAS (pthreads)` : 'no torch') +
      `; ${machine.cpu} (${machine.isa.join(' ')}), ${machine.logicalCpus} CPU(s), load average ` +
      `${load.map((l) => l.toFixed(2)).join(' ')}; ${o.settleMs} ms idle before each timed run`,
  );
  if (load[0]! > 0.5) {
    console.log(
      `note: load average ${load[0]!.toFixed(2)} at start: other processes are running; timings are noisy.`,
    );
  }
  log(
    '[peak] timing 1024-, 2048- and 4096-square float32 MatMuls and a 3x3 convolution through the same engine ...',
  );
  const peak = await gemmPeak(engine, o.threads);
  log(
    `[peak] ${peak.sizes.map((z) => `${z.n}: ${z.gflops.toFixed(1)} GFLOP/s`).join('; ')} -> ${peak.gflops.toFixed(1)}`,
  );

  const gflopOf = new Map<RowDef['size'], number>();
  const gflopPerImage = async (size: RowDef['size']): Promise<number> => {
    if (!gflopOf.has(size)) {
      const server = pool
        ? await pool.get(o.torchThreads === 'auto' ? TORCH_CANDIDATES[0]! : o.torchThreads)
        : null;
      gflopOf.set(
        size,
        server
          ? ((await server.request({ cmd: 'flops', name: size })).gflop_per_image as number)
          : PUBLISHED_GFLOP[size],
      );
    }
    return gflopOf.get(size)!;
  };

  try {
    for (const suite of o.suites) {
      if (suite === 'memory') {
        await memorySuite(o, { machine, peak });
        continue;
      }
      if (suite === 'web') {
        await webSuite(
          {
            reps: o.reps ?? 3,
            batch: o.webBatch,
            threads: o.threadsGiven ? [o.threads] : [1, 2],
            settleMs: o.settleMs,
            repeats: 5,
          },
          { machine, peak },
        );
        continue;
      }
      const picked = ROWS.filter((d) => d.suite === suite && (!o.rows || o.rows.includes(d.name)));
      // bf16 rows need AVX-512 BF16 (the native WinogradBf16 kernels); elsewhere they are left out, said so.
      const bf16 = hasBf16Winograd(engine.fusedKernels ?? []);
      const defs = picked.filter((d) => d.precision !== 'bf16' || bf16);
      if (defs.length < picked.length)
        console.error(`bench: ${suite}: bf16 rows left out (this CPU or build has no AVX-512 BF16)`);
      if (defs.length === 0) continue;
      const results: RowResult[] = [];
      for (const def of defs) {
        results.push(await runRow(def, o, pool, await gflopPerImage(def.size)));
      }
      report(suite, results, o, { machine, peak });
    }
  } finally {
    process.off('exit', exitHandler);
    await pool?.quit();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
