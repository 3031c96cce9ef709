// One large `ddpm eval` as N shards in a folder, run by as many processes as you start: each takes the next
// shard that is neither written nor taken by a live process (a claim folder per shard, made atomically),
// runs `ddpm eval ... --shard K/N --out DIR/part-K-of-N.npz`, and goes on until none is left; the process
// that finds all N parts written merges them (`ddpm eval merge`, one JSON line in DIR/merged.jsonl). Start
// one per core, or one per machine on a shared folder. Stopped (Ctrl-C, a lost session), it loses nothing:
// the same command again skips the written parts, takes over the claims of processes that are gone (same
// host; another host's stale claim is freed by removing DIR/claims/K), and a shard in progress goes on
// from its own checkpoint (OUT.partial.npz). A part that holds several shards (`ddpm eval merge --out
// DIR/part-1-25-of-100.npz ...`, e.g. a run's progress carried from another machine as one file) counts as
// those shards.
//
//   npx tsx scripts/eval-shards.ts --dir runs/alg2 --shards 100 -- fid,is,kid,pr --model models/mnist \
//     --ref mnist --n 10000 --sampler ddpm --steps 1000 --var-type fixedsmall --batch 100 --threads 1
//
// The folder belongs to one evaluation: its command is kept in DIR/command.json, and a different one is
// refused (so parts of two evaluations never mix).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseShardSet } from '../src/eval/shardSet.js';
import { writeFileAtomic } from '../src/util/atomicFile.js';

const ddpm = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'ddpm.mjs');
const USAGE = 'usage: npx tsx scripts/eval-shards.ts --dir DIR --shards N -- METRICS [ddpm eval options]';

function fail(message: string): never {
  console.error(`eval-shards: ${message}`);
  process.exit(2);
}

function args() {
  try {
    return parseArgs({
      options: { dir: { type: 'string' }, shards: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    // An eval option before `--` (e.g. --n): say where it goes.
    return fail(`${(e as Error).message}; the eval's own options go after '--'\n${USAGE}`);
  }
}
const { values: o, positionals: evalArgs } = args();
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!o.dir || !o.shards || evalArgs.length === 0)
  fail(`--dir, --shards and the eval's arguments are needed\n${USAGE}`);
const dir = o.dir;
const shards = Number(o.shards);
if (!(Number.isInteger(shards) && shards >= 1))
  fail(`--shards ${o.shards}: expected a whole number of at least 1`);
for (const a of evalArgs) {
  if (a === '--shard' || a === '--out' || a.startsWith('--shard=') || a.startsWith('--out=')) {
    fail(`${a} is set per shard by this script; leave it out of the eval's arguments`);
  }
}

// One evaluation per folder.
mkdirSync(join(dir, 'claims'), { recursive: true });
const commandFile = join(dir, 'command.json');
const command = JSON.stringify({ shards, args: evalArgs });
if (existsSync(commandFile)) {
  const kept = readFileSync(commandFile, 'utf8').trim();
  if (kept !== command) {
    fail(`${dir} holds the shards of another evaluation (${kept}); use another --dir, or remove that folder`);
  }
} else writeFileAtomic(commandFile, `${command}\n`); // a process starting beside it reads all or nothing

const partOf = (k: number) => join(dir, `part-${k}-of-${shards}.npz`);
const claimOf = (k: number | 'merge') => join(dir, 'claims', String(k));

/**
 * The written parts to merge and the shards they hold: DIR/part-SET-of-N.npz, SET one shard (K) or several
 * (1-25,31), those holding more shards first, each taken if it holds none of the shards already taken.
 */
function writtenParts(): { files: string[]; held: Set<number> } {
  const found: { file: string; ks: number[] }[] = [];
  for (const name of readdirSync(dir)) {
    const m = /^part-([\d,-]+)-of-(\d+)\.npz$/.exec(name);
    const set = m && Number(m[2]) === shards ? parseShardSet(`${m[1]}/${m[2]}`) : undefined;
    if (set) found.push({ file: join(dir, name), ks: set.ks });
  }
  found.sort((a, b) => b.ks.length - a.ks.length || a.ks[0]! - b.ks[0]!);
  const held = new Set<number>();
  const files: string[] = [];
  for (const f of found) {
    if (f.ks.some((k) => held.has(k))) continue;
    for (const k of f.ks) held.add(k);
    files.push(f.file);
  }
  return { files, held };
}
const me = { host: hostname(), pid: process.pid };

/** Whether the process that made a claim is gone: same host and no such process (another host's: unknown). */
function abandoned(claim: string): boolean {
  try {
    const owner = JSON.parse(readFileSync(join(claim, 'owner.json'), 'utf8')) as {
      host: string;
      pid: number;
    };
    if (owner.host !== me.host) return false;
    process.kill(owner.pid, 0);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return true; // no such process
    if (code === 'EPERM') return false; // alive, another user's
    // No readable owner yet: a process between making the claim and writing its owner, or one that died
    // there. Stale only when it is old.
    try {
      return Date.now() - statSync(claim).mtimeMs > 60_000;
    } catch {
      return false;
    }
  }
}

/** Take shard k (or the merge) for this process: true when the claim is ours. */
function claim(k: number | 'merge'): boolean {
  const c = claimOf(k);
  try {
    mkdirSync(c);
  } catch {
    if (!abandoned(c)) return false;
    rmSync(c, { recursive: true, force: true });
    try {
      mkdirSync(c);
    } catch {
      return false; // another process took it over first
    }
  }
  writeFileAtomic(join(c, 'owner.json'), JSON.stringify(me));
  return true;
}

// Ctrl-C reaches the `ddpm` child too (the terminal signals the whole group), which stops at a safe point
// and keeps its checkpoint: this process waits for it and ends with its status. SIGTERM sent to this
// process alone is passed on.
let child: ReturnType<typeof spawn> | undefined;
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child?.kill('SIGTERM'));

function run(args: string[]): Promise<number> {
  return new Promise((done) => {
    child = spawn(process.execPath, [ddpm, ...args], { stdio: 'inherit' });
    child.on('exit', (status, signal) => {
      child = undefined;
      done(signal ? 128 + (signal === 'SIGINT' ? 2 : 15) : (status ?? 1));
    });
  });
}

let ran = 0;
for (let k = 1; k <= shards; k++) {
  const { held } = writtenParts();
  if (held.has(k) || !claim(k)) continue;
  const done = held.size;
  console.log(
    `eval-shards: shard ${k} of ${shards} (${me.host}, pid ${me.pid}); ${done} of ${shards} written so far`,
  );
  const status = await run(['eval', ...evalArgs, '--shard', `${k}/${shards}`, '--out', partOf(k)]);
  rmSync(claimOf(k), { recursive: true, force: true });
  // Stopped (130, 143) or an error that every shard would repeat: end here; the next run goes on.
  if (status !== 0) process.exit(status);
  ran++;
}

const written = writtenParts();
const merged = join(dir, 'merged.jsonl');
if (written.held.size < shards) {
  const busy = readdirSync(join(dir, 'claims')).filter((c) => c !== 'merge').length;
  console.log(
    `eval-shards: ran ${ran} shard(s); ${written.held.size} of ${shards} written, ${busy} in progress elsewhere; the last process to finish merges`,
  );
} else if (existsSync(merged)) {
  console.log(`eval-shards: all ${shards} shards were merged before: ${merged}`);
} else if (claim('merge')) {
  // Checked again under the claim: another process may have merged between the check above and it.
  const status = existsSync(merged) ? 0 : await run(['eval', 'merge', ...written.files, '--log', merged]);
  rmSync(claimOf('merge'), { recursive: true, force: true });
  process.exit(status);
}
