// Benchmark harness: `npm run bench -- engine|sample|all [--reps N] [--rows A,B] [--no-torch] [--threads N]`.
// Times the project (ONNX Runtime through src/) and the PyTorch reference (reference/torch_server.sh) on the
// same machine in the same run, interleaved run by run (ours, torch, ours, torch, ...), and prints a table
// and, as the last line of each suite, one JSON object {"bench":SUITE,"rows":[{name,ours_ms,torch_ms,ratio}]}.
// See bench/README.md for what each row measures and the conventions.

import { cpus, loadavg } from 'node:os';
import { nodeEngine } from '../src/engine/node.js';
import { type Answer, INSTALL_HINT, TorchServer, TorchUnavailable } from './torchServer.js';
import { createOurs, ROWS, type RowDef, type Suite } from './rows.js';

interface Options {
  suites: Suite[];
  reps: number | null;
  rows: string[] | null;
  torch: boolean;
  threads: number;
  settleMs: number;
}

const USAGE = `usage: npm run bench -- <engine|sample|eval|all> [options]
  --reps N        timed runs per side and row (default: 5 for fwd/train rows, 3 for sampling rows)
  --rows A,B      only these rows (engine: ${rowNames('engine')}; sample: ${rowNames('sample')};
                  eval: ${rowNames('eval')})
  --no-torch      time our side only (ratio null; GFLOP per image from the reference's published count)
  --threads N     ONNX Runtime intra-op threads for our side (default 2; the torch server always uses 2)
  --settle MS     idle time before each timed run (default 500): the side that just ran leaves its worker
                  threads spinning (ONNX Runtime's pool, OpenBLAS/OpenMP), which slowed the other side by
                  6-16% when the runs were back to back`;

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
  const o: Options = { suites: [], reps: null, rows: null, torch: true, threads: 2, settleMs: 500 };
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
        o.suites.push(flag);
        break;
      case 'all':
        o.suites.push('engine', 'sample');
        break;
      case '--reps':
        o.reps = positive(flag, value());
        break;
      case '--threads':
        o.threads = positive(flag, value());
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
      case '--no-torch':
        o.torch = false;
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
  torch: number[];
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

async function runRow(def: RowDef, o: Options, torch: TorchServer | null, gflop: number): Promise<RowResult> {
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
  // Torch: setup builds the model and runs one warm-up (a 2-step loop for the sampling rows); fwd/train rows
  // get one more untimed run so that both sides have had two.
  let torchSetupMs: number | null = null;
  let torchWarmupMs: number | null = null;
  if (torch) {
    const s = await torch.request({ cmd: 'setup', name: def.name });
    torchSetupMs = s.setup_ms as number;
    torchWarmupMs = s.warmup_ms as number;
    let extra = '';
    if (def.kind === 'fwd' || def.kind === 'train') {
      const w = await torch.request({ cmd: 'run', name: def.name });
      extra = `, ${fmtMs(w.ms as number)}`;
    }
    log(`[${def.name}] torch: setup ${fmtMs(torchSetupMs)} ms, warm-up ${fmtMs(torchWarmupMs)}${extra} ms`);
  }

  const oursMs: number[] = [];
  const torchMs: number[] = [];
  try {
    // Each side is timed on an idle machine: the other side's spinning worker threads settle first.
    const settle = () => new Promise((res) => setTimeout(res, o.settleMs));
    for (let r = 0; r < reps; r++) {
      await settle();
      t0 = performance.now();
      await ours.run();
      oursMs.push(performance.now() - t0);
      let line = `[${def.name}] rep ${r + 1}/${reps}: ours ${fmtMs(oursMs.at(-1)!)} ms`;
      if (torch) {
        await settle();
        const a: Answer = await torch.request({ cmd: 'run', name: def.name });
        torchMs.push(a.ms as number);
        line += `, torch ${fmtMs(a.ms as number)} ms`;
      }
      log(line);
    }
  } finally {
    await ours.release();
  }
  return {
    def,
    ours: oursMs,
    torch: torchMs,
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

function report(suite: Suite, results: RowResult[], o: Options): void {
  const cell = (xs: number[]) =>
    xs.length === 0 ? '-' : `${fmtMs(median(xs))} (${fmtMs(Math.min(...xs))}-${fmtMs(Math.max(...xs))})`;
  const rows = results.map((r) => {
    const om = median(r.ours);
    const tm = r.torch.length ? median(r.torch) : null;
    return {
      cells: [
        r.def.name,
        String(r.ours.length),
        cell(r.ours),
        cell(r.torch),
        tm === null ? '-' : (om / tm).toFixed(3),
        gflops(r, om).toFixed(1),
        tm === null ? '-' : gflops(r, tm).toFixed(1),
      ],
      json: {
        name: r.def.name,
        ours_ms: round(om, 1),
        torch_ms: tm === null ? null : round(tm, 1),
        ratio: tm === null ? null : round(om / tm, 4),
      },
    };
  });
  const head = [
    'row',
    'reps',
    'ours ms: median (min-max)',
    'torch ms',
    'ratio',
    'ours GFLOP/s',
    'torch GFLOP/s',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cs: string[]) =>
    cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(`== bench ${suite} ==`);
  console.log(
    'ratio = ours median / torch median (lower is better). GFLOP/s = GFLOP per image of one forward pass\n' +
      '(torch server "flops": conv + linear + attention matmuls, 2 x MACs) x batch x k / seconds, with k = 1\n' +
      '(fwd), 3 (train: backward counted as 2 forwards), the step count (sampling rows: one forward per step).',
  );
  if (!o.torch) console.log('--no-torch: no reference timings; GFLOP per image from reference/README.md.');
  console.log(line(head));
  console.log(line(head.map((_, i) => '-'.repeat(widths[i]!))));
  for (const r of rows) console.log(line(r.cells));
  console.log(JSON.stringify({ bench: suite, rows: rows.map((r) => r.json) }));
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  let torch: TorchServer | null = null;
  let torchInfo: Answer | null = null;
  if (o.torch) {
    try {
      ({ server: torch, info: torchInfo } = await TorchServer.start());
    } catch (e) {
      if (e instanceof TorchUnavailable) {
        console.error(`bench: cannot run the PyTorch reference: ${e.message}`);
        console.error(`Install it (Debian): ${INSTALL_HINT}\nor time our side only with --no-torch.`);
        process.exit(1);
      }
      throw e;
    }
  }
  const exitHandler = () => torch?.close();
  process.on('exit', exitHandler);

  const load = loadavg();
  console.log(
    `ddpm-ts bench: node ${process.version}, ${nodeEngine().name}, ${o.threads} thread(s); ` +
      (torchInfo
        ? `torch ${torchInfo.torch as string} (OpenBLAS pthreads, ${torchInfo.threads as number} threads)`
        : 'no torch') +
      `; ${cpus().length} CPU(s), load average ${load.map((l) => l.toFixed(2)).join(' ')}; ` +
      `${o.settleMs} ms idle before each timed run`,
  );
  if (load[0]! > 0.5) {
    console.log(
      `note: load average ${load[0]!.toFixed(2)} at start: other processes are running; timings are noisy.`,
    );
  }
  if (o.threads !== 2) console.log(`note: ours uses ${o.threads} threads, the torch server 2.`);

  const gflopOf = new Map<RowDef['size'], number>();
  const gflopPerImage = async (size: RowDef['size']): Promise<number> => {
    if (!gflopOf.has(size)) {
      gflopOf.set(
        size,
        torch
          ? ((await torch.request({ cmd: 'flops', name: size })).gflop_per_image as number)
          : PUBLISHED_GFLOP[size],
      );
    }
    return gflopOf.get(size)!;
  };

  try {
    for (const suite of o.suites) {
      const defs = ROWS.filter((d) => d.suite === suite && (!o.rows || o.rows.includes(d.name)));
      if (defs.length === 0) continue;
      const results: RowResult[] = [];
      for (const def of defs) {
        results.push(await runRow(def, o, torch, await gflopPerImage(def.size)));
      }
      report(suite, results, o);
    }
  } finally {
    process.off('exit', exitHandler);
    await torch?.quit();
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
