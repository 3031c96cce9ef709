// One reader's fuzz campaign in this process (scripts/fuzz.mjs runs one per reader, with a watchdog):
//   node --import tsx test/fuzz/campaign.ts TARGET RUNS SEED
// prints JSON lines: {"progress": n} now and then, then {"tally": ...} with the counts and distinct findings.

import { campaign, createFuzzer } from './readers.js';

const [name, runsArg, seedArg] = process.argv.slice(2);
const f = createFuzzer();
try {
  const t = f.targets.find((x) => x.name === name);
  if (!t) {
    console.error(`fuzz: no reader named ${name}; readers: ${f.targets.map((x) => x.name).join(', ')}`);
    process.exit(2);
  }
  const runs = Number(runsArg ?? 1000);
  const seed = Number(seedArg ?? 1);
  let last = performance.now();
  const tally = campaign(f, t, runs, seed, (i) => {
    const now = performance.now();
    if (now - last > 500) {
      last = now;
      process.stdout.write(`${JSON.stringify({ progress: i })}\n`);
    }
  });
  const findings = [...tally.findings].map(([signature, v]) => ({
    signature,
    count: v.count,
    kind: v.example.kind,
    detail: v.example.detail,
    where: v.where,
    case: v.case,
  }));
  process.stdout.write(`${JSON.stringify({ tally: { ...tally, findings } })}\n`);
} finally {
  f.close();
}
