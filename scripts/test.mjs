// Runs every *.test.ts under src/ and test/ with Node's test runner (tsx for TypeScript).
// Usage: node scripts/test.mjs [filter-substring]
// Two files at a time (most tests spend their time in one thread or in starting `ddpm` processes, so one file
// alone leaves a core of the 2-core CI machine idle), then the browser tests (test/web*) one at a time, since
// they time the page's responsiveness. DDPM_TEST_CONCURRENCY=1 runs everything one file at a time.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filter = process.argv[2];
const files = [...walk('src', []), ...walk('test', [])].filter((f) => !filter || f.includes(filter)).sort();
if (files.length === 0) {
  console.error(`no test files match ${filter ?? '*.test.ts'}`);
  process.exit(1);
}
const concurrency = Number(process.env.DDPM_TEST_CONCURRENCY ?? 2);
const browser = files.filter((f) => /^test[\\/]web/.test(f));
const rest = files.filter((f) => !browser.includes(f));
const run = (list, n) =>
  list.length === 0
    ? 0
    : (spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${n}`, ...list], {
        stdio: 'inherit',
      }).status ?? 1);
const a = run(rest, concurrency);
const b = run(browser, 1);
process.exit(a || b);
