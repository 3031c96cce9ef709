// The readers' fuzz campaign (`npm run fuzz`): for each reader of test/fuzz/readers.ts, RUNS generated inputs
// (mutated valid files) in a child process with a watchdog, so a hang or a crash is a finding too, not the end of
// the campaign. Prints per reader the cases run, parsed, refused (the reader's own error) and the distinct
// findings (foreign errors, unclear messages, bad or oversized results, slow cases, large allocations), each
// with a case that shows it. Exit status 1 when anything was found.
// Usage: npm run fuzz [-- --runs N] [--seed S] [--json FILE] [READER...]   (also FUZZ_RUNS, FUZZ_SEED)
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CAMPAIGN = join(ROOT, 'test', 'fuzz', 'campaign.ts');
const READERS = [
  'safetensors',
  'model-config',
  'model-weights',
  'diffusers-scheduler',
  'checkpoint',
  'run-log',
  'idx',
  'idx-labels',
  'cifar10',
  'png',
  'jpeg',
  'npz',
  'npz-reference',
  'npz-partial',
  'onnx',
  'classifier',
  'pth',
];
/** A child that reports no progress for this long is hung (it reports every half second while it runs). */
const STALL_MS = 30_000;

const { values, positionals } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.FUZZ_RUNS ?? '20000' },
    seed: { type: 'string', default: process.env.FUZZ_SEED ?? String(Date.now() % 1e9) },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  allowPositionals: true,
});
if (values.help) {
  console.log(
    `usage: npm run fuzz [-- --runs N (default 20000, or FUZZ_RUNS)] [--seed S] [--json FILE] [READER...]\nreaders: ${READERS.join(', ')}`,
  );
  process.exit(0);
}
const runs = Number(values.runs);
const seed = Number(values.seed);
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
  console.error(`fuzz: --runs ${values.runs} / --seed ${values.seed}: expected integers (runs >= 1)`);
  process.exit(2);
}
const unknown = positionals.filter((r) => !READERS.includes(r));
if (unknown.length) {
  console.error(`fuzz: no reader ${unknown.join(', ')}; readers: ${READERS.join(', ')}`);
  process.exit(2);
}

/** One reader's campaign in a child; resolves with its tally, or a tally of the hang / crash that ended it. */
function runReader(reader, from) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', CAMPAIGN, reader, String(runs - from), String(seed + from)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    let progress = 0;
    let tally;
    let hung = false;
    let timer = setTimeout(stall, STALL_MS);
    function stall() {
      hung = true;
      child.kill('SIGKILL');
    }
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop();
      for (const line of lines) {
        let m;
        try {
          m = JSON.parse(line);
        } catch {
          continue; // not one of campaign.ts's lines (a stray print of a reader)
        }
        if (m.progress !== undefined) {
          progress = m.progress;
          clearTimeout(timer);
          timer = setTimeout(stall, STALL_MS);
        }
        if (m.tally) tally = m.tally;
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (tally) return resolve(tally);
      const what = hung ? `hung: no progress for ${STALL_MS / 1000} s` : `crashed (exit ${code ?? signal})`;
      resolve({
        target: reader,
        runs: progress,
        parsed: 0,
        refused: 0,
        ms: 0,
        ended: true,
        findings: [
          {
            signature: `${hung ? 'hang' : 'crash'}`,
            count: 1,
            kind: hung ? 'hang' : 'crash',
            detail: `${what} near case ${from + progress} of seed ${seed} (replay: node --import tsx test/fuzz/campaign.ts ${reader} ${runs - from} ${seed + from})${err ? `: ${err.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
            where: '',
          },
        ],
      });
    });
  });
}

const t0 = performance.now();
const results = [];
console.log(`fuzz: ${runs} cases per reader, seed ${seed}`);
for (const reader of positionals.length ? positionals : READERS) {
  const r = await runReader(reader, 0);
  results.push(r);
  const s = (r.ms / 1000).toFixed(1);
  console.log(
    `${reader.padEnd(20)} ${String(r.runs).padStart(7)} cases  ${String(r.parsed).padStart(6)} parsed  ${String(r.refused).padStart(6)} refused  ${String(r.findings.length).padStart(3)} findings  (${s} s in the reader)`,
  );
  for (const f of r.findings)
    console.log(`    ${f.count} x ${f.kind}: ${f.detail.slice(0, 300)}${f.where ? ` [${f.where}]` : ''}`);
}
const total = results.reduce((n, r) => n + r.runs, 0);
const found = results.reduce((n, r) => n + r.findings.length, 0);
console.log(
  `fuzz: ${total} cases over ${results.length} readers in ${((performance.now() - t0) / 1000).toFixed(0)} s; ${found} distinct finding(s)`,
);
if (values.json) writeFileSync(values.json, `${JSON.stringify({ runs, seed, results }, null, 2)}\n`);
process.exitCode = found ? 1 : 0;
