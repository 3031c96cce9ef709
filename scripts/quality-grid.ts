// The steps-versus-quality grid of the README ("Fewer steps" issue, item 4): runs `ddpm eval` once per
// (sampler, steps) row, cheapest step count first, each row appended as one JSON line to --log. Resumable:
// rows already in the log (same model weights, sampler, steps, N, seed, reference) are skipped, so the
// script can be stopped (Ctrl-C) and rerun across sessions. `--table` prints the log as the README's
// markdown table instead. A floor row scores N real images drawn from the reference (`--floor`).
// Rows of at least 500 network calls per image (Algorithm 2 at 1000 steps: hours on a CPU) run as
// `--shards K` pieces (`ddpm eval --shard k/K`, each a partial result in parts/ beside the log, kept and
// skipped on a rerun), then `ddpm eval merge` writes the row: a stop loses at most the shard in progress.
//
//   npx tsx scripts/quality-grid.ts --model models/mnist --ref mnist --n 500 --log runs/quality/grid.jsonl
//   npx tsx scripts/quality-grid.ts --table --log runs/quality/grid.jsonl

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { encode } from 'fast-png';
import { openDataset } from '../src/data/open.js';
import { Rng } from '../src/util/rng.js';

const { values: o } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/mnist' },
    ref: { type: 'string', default: 'mnist' },
    n: { type: 'string', default: '500' },
    seed: { type: 'string', default: '0' },
    samplers: { type: 'string', default: 'ddpm,ddim,dpm++2m,dpm++3m,euler,heun' },
    steps: { type: 'string', default: '10,15,20,25,50,100' },
    // 'no' leaves out the Algorithm 2 row (and --floor no the floor row): node 20's parseArgs has no --no-x
    ancestral1000: { type: 'string', default: 'yes' },
    shards: { type: 'string', default: '5' },
    metrics: { type: 'string', default: 'fid,kid,pr' },
    threads: { type: 'string', default: '0' },
    floor: { type: 'string', default: 'yes' },
    log: { type: 'string', default: 'runs/quality/grid.jsonl' },
    table: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
  },
});

interface Row {
  results: Record<string, unknown>;
  n: number;
  msPerImage?: number;
  protocol: {
    images: { kind: string; sampler?: string; steps?: number; seed?: number; dir?: string; model?: string };
  };
  machine?: { cpu: string; threads: number };
}

function readLog(path: string): Row[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Row);
}

/** Network calls per image of a sampler at `steps` (heun: 2 per step except the last). */
function calls(sampler: string, steps: number): number {
  return sampler === 'heun' ? 2 * steps - 1 : steps;
}

const n = Number(o.n);
const log = o.log;

if (o.table) {
  const rows = readLog(log);
  const metric = (r: Row, name: string) => {
    const k = Object.keys(r.results).find((key) => key.startsWith(`${name}[`));
    return k === undefined ? undefined : r.results[k];
  };
  const fidKey = rows.length ? Object.keys(rows[0]!.results).find((k) => k.startsWith('FID[')) : 'FID';
  console.log(
    `| sampler | steps | network calls per image | N | ${fidKey} | KID x 1000 | precision | recall |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const sorted = [...rows].sort((a, b) => {
    const ia = a.protocol.images;
    const ib = b.protocol.images;
    if (ia.kind !== ib.kind) return ia.kind === 'samples' ? -1 : 1;
    return (ia.steps ?? 0) - (ib.steps ?? 0) || String(ia.sampler).localeCompare(String(ib.sampler));
  });
  for (const r of sorted) {
    const im = r.protocol.images;
    const kid = metric(r, 'KID') as { mean: number; std: number } | undefined;
    const fmt = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : '–');
    const name =
      im.kind === 'samples' ? `${r.n} real images (floor)` : String(im.sampler).replace(/-\d+$/, '');
    const steps = im.kind === 'samples' ? '–' : String(im.steps);
    const c = im.kind === 'samples' ? '–' : String(calls(name, im.steps!));
    const kidText = kid ? `${(kid.mean * 1000).toFixed(2)} ± ${(kid.std * 1000).toFixed(2)}` : '–';
    console.log(
      `| ${name} | ${steps} | ${c} | ${r.n} | ${fmt(metric(r, 'FID'))} | ${kidText} | ${fmt(metric(r, 'precision'))} | ${fmt(metric(r, 'recall'))} |`,
    );
  }
  process.exit(0);
}

const done = readLog(log);
const have = (sampler: string, steps: number) =>
  done.some(
    (r) =>
      r.n === n &&
      r.protocol.images.kind === 'model' &&
      r.protocol.images.model === o.model &&
      r.protocol.images.seed === Number(o.seed) &&
      r.protocol.images.steps === steps &&
      String(r.protocol.images.sampler).replace(/-\d+$/, '') === sampler,
  );

const plan: { sampler: string; steps: number }[] = [];
for (const steps of o.steps.split(',').map(Number))
  for (const sampler of o.samplers.split(',')) plan.push({ sampler, steps });
const yes = (name: string, v: string) => {
  if (v !== 'yes' && v !== 'no') throw new Error(`--${name} ${v}: expected yes or no`);
  return v === 'yes';
};
if (yes('ancestral1000', o.ancestral1000)) plan.push({ sampler: 'ddpm', steps: 1000 });

function run(args: string[]): Promise<number> {
  console.log(`\n$ node bin/ddpm.mjs ${args.join(' ')}`);
  if (o['dry-run']) return Promise.resolve(0);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/ddpm.mjs', ...args], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 130 : 1)));
  });
}

let stopping = false;
process.on('SIGINT', () => {
  stopping = true; // the child gets the same SIGINT from the terminal and stops cleanly
});

const common = ['--ref', o.ref, '--n', String(n), '--seed', o.seed, '--threads', o.threads, '--log', log];

if (yes('floor', o.floor) && !done.some((r) => r.n === n && r.protocol.images.kind === 'samples')) {
  // n real images drawn from the reference without replacement (seeded), scored as a folder: the floor
  const dir = join('runs', 'quality', `real-${o.ref.replace(/[^a-z0-9-]/gi, '_')}-${n}`);
  if (!existsSync(dir)) {
    const ds = openDataset(o.ref);
    const per = ds.channels * ds.height * ds.width;
    const idx = Array.from({ length: ds.n }, (_, i) => i);
    const rng = new Rng(1);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    mkdirSync(dir, { recursive: true });
    for (let k = 0; k < n; k++) {
      const data = ds.pixels.subarray(idx[k]! * per, (idx[k]! + 1) * per);
      const png = encode({ width: ds.width, height: ds.height, data, channels: ds.channels });
      writeFileSync(join(dir, `${String(k).padStart(5, '0')}.png`), png);
    }
  }
  if ((await run(['eval', o.metrics, '--samples', dir, ...common])) !== 0 || stopping) process.exit(1);
}

const shards = Number(o.shards);
if (!(Number.isInteger(shards) && shards >= 1 && shards <= n))
  throw new Error(`--shards ${o.shards}: expected a whole number from 1 to --n (${n})`);

/** A long row in shards (see the header): each shard's part is kept; the merge appends the row to the log. */
async function runSharded(sampler: string, steps: number, rowArgs: string[]): Promise<number> {
  const parts = join(dirname(log), 'parts');
  mkdirSync(parts, { recursive: true });
  // One batch per shard and batch, so every shard samples the same images as one run would (a fixed batch:
  // the merge checks that all parts used the same).
  const batch = String(Math.ceil(n / shards));
  const stem = `${basename(o.model)}-${sampler}-${steps}-n${n}-seed${o.seed}`;
  const names: string[] = [];
  for (let k = 1; k <= shards; k++) {
    const part = join(parts, `${stem}-${k}of${shards}.npz`);
    names.push(part);
    if (existsSync(part)) continue;
    const args = [
      ...rowArgs,
      '--batch',
      batch,
      '--net-batch',
      batch,
      '--shard',
      `${k}/${shards}`,
      '--out',
      part,
    ];
    const code = await run(args);
    if (code !== 0 || stopping) return code || 130;
  }
  return run(['eval', 'merge', ...names, '--log', log]);
}

for (const { sampler, steps } of plan) {
  if (have(sampler, steps)) continue;
  const rowArgs = [
    'eval',
    o.metrics,
    '--model',
    o.model,
    '--sampler',
    sampler,
    '--steps',
    String(steps),
    ...common,
  ];
  const code =
    shards > 1 && calls(sampler, steps) >= 500
      ? await runSharded(sampler, steps, rowArgs)
      : await run(rowArgs);
  if (code !== 0 || stopping) {
    console.log(`\nstopped at ${sampler}-${steps}; rerun the same command to go on (done rows are skipped)`);
    process.exit(code || 130);
  }
}
console.log('\nall rows done');
