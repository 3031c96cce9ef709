// Paired A/B timing of one row's runs under two ONNX Runtime memory settings or graph-pass selections, in one process: both runners
// alive, runs alternating A B, B A, ... with 400 ms idle before each, so a loaded machine's slow spells fall on
// both sides; prints each pair, the medians and the median of the paired ratios B/A, wall and CPU time
// (user + system, all threads: steadier than wall time beside other jobs). Two warm-up runs each first.
// Usage: npx tsx bench/trainAb.ts ROW BATCH PAIRS A B
//   A, B: 'default' or settings joined by '+', e.g. memPattern=off or memArena=session+memPattern=off
//   (memArena: shared, session or off), or
//   passes=SELECTION (DDPM_PASSES's syntax with ',' inside it, e.g. passes=-recompute-norm-act), or
//   kernels=-NAME[,-NAME] (the engine's fused kernels or capabilities without these, e.g.
//   kernels=-GroupNormSilu), or optim=off (Adam and the EMA without the engine's native passes), or
//   precision=bf16 (or int8, float32: a forward row's convolutions, as the precision suite's rows), or
//   tile=2, 4 or auto (the Winograd tile, DDPM_WINOGRAD_TILE while the side is built; auto: the measured rule)
// Example: npx tsx bench/trainAb.ts S-train 64 12 default memPattern=off

import { type Engine, MEM_ARENAS, type MemArena, type SessionOptions } from '../src/engine/engine.js';
import { nodeEngine } from '../src/engine/node.js';
import type { FusedKernel } from '../src/graph/graph.js';
import { createOurs, type OursRunner, ROWS } from './rows.js';

type MemSettings = Pick<SessionOptions, 'memArena' | 'memPattern'>;

const base = nodeEngine();

interface Settings extends MemSettings {
  passes?: string;
  tile?: '2' | '4' | 'auto';
  precision?: 'float32' | 'int8' | 'bf16';
  withoutKernels?: string[];
  optim?: boolean;
}

function settings(arg: string): Settings {
  const out: { -readonly [K in keyof Settings]: Settings[K] } = {};
  for (const kv of arg.split('+').filter((x) => x !== 'default')) {
    const [k, v = ''] = kv.split('=');
    if (k === 'passes') {
      out.passes = v;
      continue;
    }
    if (k === 'kernels') {
      const names = v.split(',');
      const known = base.fusedKernels ?? [];
      for (const n of names) {
        if (!n.startsWith('-') || !known.includes(n.slice(1) as FusedKernel))
          throw new Error(`trainAb: ${kv}: expected -NAME of the engine's kernels (${known.join(', ')})`);
      }
      out.withoutKernels = names.map((n) => n.slice(1));
      continue;
    }
    if (k === 'tile') {
      if (v !== '2' && v !== '4' && v !== 'auto')
        throw new Error(`trainAb: ${kv}: the value must be 2, 4 or auto`);
      out.tile = v;
      continue;
    }
    if (k === 'precision') {
      if (v !== 'float32' && v !== 'int8' && v !== 'bf16')
        throw new Error(`trainAb: ${kv}: the value must be float32, int8 or bf16`);
      out.precision = v;
      continue;
    }
    if (k === 'memArena') {
      if (!MEM_ARENAS.includes(v as MemArena))
        throw new Error(`trainAb: ${kv}: the value must be one of ${MEM_ARENAS.join(', ')}`);
      out.memArena = v as MemArena;
      continue;
    }
    if (v !== 'on' && v !== 'off') throw new Error(`trainAb: ${kv}: the value must be on or off`);
    switch (k) {
      case 'optim':
        out.optim = v === 'on';
        break;
      case 'memPattern':
        out.memPattern = v === 'on';
        break;
      default:
        throw new Error(
          `trainAb: unknown setting ${k} (memArena, memPattern, passes, kernels, optim, precision, tile)`,
        );
    }
  }
  return out;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timed(r: OursRunner): Promise<{ wall: number; cpu: number }> {
  await sleep(400);
  const t = performance.now();
  const c = process.cpuUsage();
  await r.run();
  const d = process.cpuUsage(c);
  return { wall: performance.now() - t, cpu: (d.user + d.system) / 1000 };
}

const [row, batchArg, pairsArg, aArg = 'default', bArg = 'default'] = process.argv.slice(2);
const def = ROWS.find((r) => r.name === row);
if (!def) throw new Error(`trainAb: unknown row ${row}`);
const engine = (m: MemSettings, without: readonly string[] = [], optim = true): Engine => ({
  ...base,
  fusedKernels: base.fusedKernels?.filter((k) => !without.includes(k)),
  optimKernels: optim ? base.optimKernels : undefined,
  createSession: (model, o = {}) => base.createSession(model, { ...o, ...m }),
});
const batch = Number(batchArg);
/** One side's runner; its graph passes are chosen through DDPM_PASSES while it is built. */
async function side(arg: string): Promise<OursRunner> {
  const { passes, withoutKernels, optim, precision, tile, ...mem } = settings(arg);
  const saved = process.env.DDPM_PASSES;
  const savedTile = process.env.DDPM_WINOGRAD_TILE;
  if (passes !== undefined) process.env.DDPM_PASSES = passes;
  if (tile === 'auto') delete process.env.DDPM_WINOGRAD_TILE;
  else if (tile !== undefined) process.env.DDPM_WINOGRAD_TILE = tile;
  try {
    return await createOurs(
      engine(mem, withoutKernels, optim),
      { ...def!, batch, ...(precision ? { precision } : {}) },
      2,
    );
  } finally {
    if (saved === undefined) delete process.env.DDPM_PASSES;
    else process.env.DDPM_PASSES = saved;
    if (savedTile === undefined) delete process.env.DDPM_WINOGRAD_TILE;
    else process.env.DDPM_WINOGRAD_TILE = savedTile;
  }
}
const A = await side(aArg);
const B = await side(bArg);
for (let i = 0; i < 2; i++) {
  await A.warmup();
  await B.warmup();
}
const res = { wa: [] as number[], wb: [] as number[], ca: [] as number[], cb: [] as number[] };
const ratioWall: number[] = [];
const ratioCpu: number[] = [];
for (let i = 0; i < Number(pairsArg); i++) {
  const aFirst = i % 2 === 0;
  const a1 = aFirst ? await timed(A) : null;
  const b = await timed(B);
  const a = a1 ?? (await timed(A));
  res.wa.push(a.wall);
  res.wb.push(b.wall);
  res.ca.push(a.cpu);
  res.cb.push(b.cpu);
  ratioWall.push(b.wall / a.wall);
  ratioCpu.push(b.cpu / a.cpu);
  console.log(
    `pair ${i + 1}: A ${a.wall.toFixed(0)} ms (CPU ${a.cpu.toFixed(0)}), B ${b.wall.toFixed(0)} ms (CPU ${b.cpu.toFixed(0)})`,
  );
}
await A.release();
await B.release();
console.log(
  `${row} batch ${batch}, A = ${aArg}, B = ${bArg}: median wall A ${median(res.wa).toFixed(0)} ms, B ${median(res.wb).toFixed(0)} ms; ` +
    `median CPU A ${median(res.ca).toFixed(0)} ms, B ${median(res.cb).toFixed(0)} ms; ` +
    `median paired B/A: wall ${median(ratioWall).toFixed(3)}, CPU ${median(ratioCpu).toFixed(3)}`,
);
