// One memory measurement of our side, in its own process (bench/memory.ts starts it): build the row's
// session at the given batch, run it `runs` times (the first two are ONNX Runtime's warm-up), and print one
// JSON line with the process's peak resident memory (getrusage's maxrss) and the set-up time.
// Usage: tsx bench/memoryChild.ts ROW BATCH RUNS THREADS

import { nodeEngine } from '../src/engine/node.js';
import { createOurs, ROWS } from './rows.js';

const [name, batchArg, runsArg, threadsArg] = process.argv.slice(2);
const def = ROWS.find((r) => r.name === name);
if (!def) throw new Error(`memoryChild: unknown row ${name}`);
const batch = Number(batchArg);
const runs = Number(runsArg);
const t0 = performance.now();
const ours = await createOurs(nodeEngine(), { ...def, batch }, Number(threadsArg));
const setupMs = performance.now() - t0;
const t1 = performance.now();
for (let i = 0; i < runs; i++) await ours.run();
const runMs = (performance.now() - t1) / runs;
await ours.release();
process.stdout.write(
  `${JSON.stringify({ maxrss_mb: process.resourceUsage().maxRSS / 1024, setup_ms: setupMs, run_ms: runMs })}\n`,
);
