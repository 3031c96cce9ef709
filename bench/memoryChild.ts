// One memory measurement of our side, in its own process (bench/memory.ts starts it): build the row's
// session at the given batch, run it `runs` times (the first two are ONNX Runtime's warm-up), and print one
// JSON line with the process's peak resident memory (getrusage's maxrss), the set-up time and each run's wall
// and CPU time (user + system, all threads).
// Usage: tsx bench/memoryChild.ts ROW BATCH RUNS THREADS [--microbatch N] [--mem-arena shared|session|off]
//        [--mem-pattern on|off]
// --microbatch: train rows in chunks of at most N images (gradient accumulation, createTrainSession);
// --mem-arena / --mem-pattern: ONNX Runtime's CPU memory arena and memory pattern (SessionOptions; both on
// by default), for every session the row creates.

import { type Engine, MEM_ARENAS, type MemArena } from '../src/engine/engine.js';
import { nodeEngine } from '../src/engine/node.js';
import { createOurs, ROWS } from './rows.js';

const [name, batchArg, runsArg, threadsArg, ...rest] = process.argv.slice(2);
const def = ROWS.find((r) => r.name === name);
if (!def) throw new Error(`memoryChild: unknown row ${name}`);
let microbatch: number | undefined;
let memArena: MemArena | undefined;
let memPattern: boolean | undefined;
const onOff = (flag: string, v: string | undefined): boolean => {
  switch (v) {
    case 'on':
      return true;
    case 'off':
      return false;
    default:
      throw new Error(`memoryChild: ${flag} needs on or off, got ${JSON.stringify(v)}`);
  }
};
for (let i = 0; i < rest.length; i += 2) {
  const v = rest[i + 1];
  switch (rest[i]) {
    case '--microbatch':
      microbatch = Number(v);
      break;
    case '--mem-arena':
      if (!MEM_ARENAS.includes(v as MemArena))
        throw new Error(`memoryChild: --mem-arena needs ${MEM_ARENAS.join(', ')}, got ${JSON.stringify(v)}`);
      memArena = v as MemArena;
      break;
    case '--mem-pattern':
      memPattern = onOff('--mem-pattern', v);
      break;
    default:
      throw new Error(`memoryChild: unknown argument ${JSON.stringify(rest[i])}`);
  }
}
const base = nodeEngine();
const engine: Engine = {
  ...base,
  createSession: (model, opts = {}) =>
    base.createSession(model, {
      ...opts,
      ...(memArena !== undefined ? { memArena } : {}),
      ...(memPattern !== undefined ? { memPattern } : {}),
    }),
};
const batch = Number(batchArg);
const runs = Number(runsArg);
const t0 = performance.now();
const ours = await createOurs(engine, { ...def, batch }, Number(threadsArg), {
  ...(microbatch !== undefined ? { microbatch } : {}),
});
const setupMs = performance.now() - t0;
const each: number[] = [];
const cpuEach: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const c = process.cpuUsage();
  await ours.run();
  each.push(performance.now() - t);
  const d = process.cpuUsage(c);
  cpuEach.push((d.user + d.system) / 1000); // all threads: less sensitive to other jobs than wall time
}
await ours.release();
process.stdout.write(
  `${JSON.stringify({
    maxrss_mb: process.resourceUsage().maxRSS / 1024,
    setup_ms: setupMs,
    run_ms: each.reduce((a, c) => a + c, 0) / runs,
    run_ms_each: each,
    run_cpu_ms_each: cpuEach,
  })}\n`,
);
