// scripts/eval-shards.ts, as users run it: two processes share one evaluation's shards (each shard run once),
// the last one merges, and the merged FID is the one run's; a part holding several shards (merge --out)
// counts as them; a claim left by a process that is gone is taken over; a folder keeps to one evaluation.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ddpmInTemp, ROOT, type Run, startDdpm } from './ddpmProcess.js';

const { dir: TMP, ddpm } = ddpmInTemp('ddpm-eval-shards-');
const SCRIPT = ['--import', import.meta.resolve('tsx'), join(ROOT, 'scripts', 'eval-shards.ts')];
const REF = join(TMP, 'ref.npz');
const EVAL = (log: string) =>
  ['fid', '--n', '16', '--batch', '4', '--sampler', 'ddim', '--steps', '2', '--threads', '1'].concat([
    '--checkpoint',
    'none',
    '--ref',
    REF,
    '--log',
    log,
  ]);
const shardsRun = (dir: string, shards: number, evalArgs: string[]) =>
  startDdpm(['--dir', dir, '--shards', String(shards), '--', ...evalArgs], { cwd: TMP, node: SCRIPT }).done;

function ok(r: Run): Run {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
const fidOf = (line: string) =>
  Object.entries(JSON.parse(line).results as Record<string, number>).find(([k]) => k.startsWith('FID['))![1];

before(async () => {
  ok(await ddpm(['eval', 'stats', '--data', 'mnist:test', '--out', REF, '--threads', '1']));
});

describe('scripts/eval-shards.ts', () => {
  it('shares the shards between two processes, merges once, and gives the one run’s FID', async () => {
    const dir = join(TMP, 'shared');
    const [a, b] = await Promise.all([
      shardsRun(dir, 4, EVAL('shards.jsonl')),
      shardsRun(dir, 4, EVAL('shards.jsonl')),
    ]);
    ok(a);
    ok(b);
    const started = `${a.stdout}${b.stdout}`.match(/eval-shards: shard \d+ of 4/g) ?? [];
    assert.deepEqual(
      [...started].sort(),
      [1, 2, 3, 4].map((k) => `eval-shards: shard ${k} of 4`),
    );
    assert.deepEqual(
      readdirSync(dir)
        .filter((f) => f.endsWith('.npz'))
        .sort(),
      [1, 2, 3, 4].map((k) => `part-${k}-of-4.npz`),
    );
    assert.deepEqual(readdirSync(join(dir, 'claims')), [], 'claims released');
    const merged = readFileSync(join(dir, 'merged.jsonl'), 'utf8').trim().split('\n');
    assert.equal(merged.length, 1, 'merged once');
    ok(await ddpm(['eval', ...EVAL('single.jsonl')]));
    const single = readFileSync(join(TMP, 'single.jsonl'), 'utf8').trim();
    const [got, want] = [fidOf(merged[0]!), fidOf(single)];
    assert.ok(Math.abs(got - want) <= 1e-9 * Math.abs(want), `merged FID ${got} against one run's ${want}`);
    // Run again: nothing to do.
    assert.match(ok(await shardsRun(dir, 4, EVAL('shards.jsonl'))).stdout, /all 4 shards were merged before/);
  });

  it('counts a part that holds several shards (merge --out) as those shards', async () => {
    // The first test's shards 1 and 2 carried into a new folder as one file: only 3 and 4 run here.
    const from = (k: number) => join(TMP, 'shared', `part-${k}-of-4.npz`);
    const dir = join(TMP, 'carried');
    mkdirSync(dir);
    ok(await ddpm(['eval', 'merge', '--out', join(dir, 'part-1-2-of-4.npz'), from(1), from(2)]));
    const r = ok(await shardsRun(dir, 4, EVAL('carried.jsonl')));
    assert.deepEqual(
      r.stdout.match(/eval-shards: shard \d+ of 4/g),
      [3, 4].map((k) => `eval-shards: shard ${k} of 4`),
    );
    const merged = readFileSync(join(dir, 'merged.jsonl'), 'utf8').trim();
    const single = readFileSync(join(TMP, 'single.jsonl'), 'utf8').trim();
    const [got, want] = [fidOf(merged), fidOf(single)];
    assert.ok(Math.abs(got - want) <= 1e-9 * Math.abs(want), `merged FID ${got} against one run's ${want}`);
  });

  it('takes over a claim whose process is gone, and refuses another evaluation in the same folder', async () => {
    const dir = join(TMP, 'stale');
    mkdirSync(join(dir, 'claims', '1'), { recursive: true });
    writeFileSync(
      join(dir, 'claims', '1', 'owner.json'),
      JSON.stringify({ host: hostname(), pid: 2 ** 22 + 1 }),
    );
    const r = ok(await shardsRun(dir, 1, EVAL('stale.jsonl')));
    assert.match(r.stdout, /eval-shards: shard 1 of 1/);
    assert.ok(existsSync(join(dir, 'part-1-of-1.npz')) && existsSync(join(dir, 'merged.jsonl')));
    const other = await shardsRun(dir, 1, [...EVAL('stale.jsonl'), '--seed', '5']);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /holds the shards of another evaluation/);
    const shard = await shardsRun(join(TMP, 'x'), 2, ['fid', '--shard', '1/2']);
    assert.equal(shard.code, 2);
    assert.match(shard.stderr, /--shard is set per shard by this script/);
    const noDashes = await startDdpm(['--dir', join(TMP, 'y'), '--shards', '2', 'fid', '--n', '8'], {
      cwd: TMP,
      node: SCRIPT,
    }).done;
    assert.equal(noDashes.code, 2);
    assert.match(noDashes.stderr, /Unknown option '--n'.*the eval's own options go after '--'/);
  });
});
