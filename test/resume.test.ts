// Kill-and-resume (the trainer's promise, Algorithm 1 with atomic checkpoints): a `ddpm train` run that
// is SIGKILLed at arbitrary moments (mid-step, and right as a checkpoint write starts) and restarted
// with the same command until it completes ends with checkpoint tensors (weights, EMA, Adam moments)
// bit-identical to an uninterrupted run, and its log holds every step exactly once with the same losses.
// Also: changing an identity option on resume, and a truncated checkpoint, fail with clear errors.
// Tiny model (0.7M parameters, 16x16, T = 50), one ORT thread: about 30-60 s on a loaded 2-core machine.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  watch,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readLog } from '../src/train/trainer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ddpm.mjs');
const TMP = mkdtempSync(join(tmpdir(), 'ddpm-resume-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const STEPS = 12;
const TRAIN = [
  'train',
  ...['--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8', '--resolution', '16'],
  ...['--T', '50', '--batch', '8', '--steps', String(STEPS), '--checkpoint-every', '2'],
  ...['--sample-every', '0', '--log-every', '1', '--threads', '1', '--dropout', '0.1', '--warmup', '3'],
];

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

function start(args: readonly string[]): { child: ChildProcess; done: Promise<Exit>; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done, stderr: () => stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function loggedSteps(run: string): number[] {
  const p = join(run, 'log.jsonl');
  return existsSync(p) ? readLog(p).map((r) => r.step) : [];
}

/** SIGKILL `delayMs` after this process reports its first checkpoint (so it has made progress). */
async function killMidStep(run: string, delayMs: number): Promise<Exit & { atStep: number }> {
  const { child, done, stderr } = start([...TRAIN, '--run', run]);
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  while (!finished && !/checkpoint at step \d+/.test(stderr())) await sleep(10);
  if (!finished) {
    assert.ok(existsSync(join(run, 'checkpoint.safetensors')));
    await sleep(delayMs);
    child.kill('SIGKILL');
  }
  const e = await done;
  return { ...e, atStep: loggedSteps(run).at(-1) ?? 0 };
}

/** SIGKILL the moment the run creates the temporary file of a checkpoint write (before its rename). */
async function killDuringCheckpointWrite(run: string): Promise<Exit & { staleTmp: boolean }> {
  const before = new Set(readdirSync(run));
  const { child, done } = start([...TRAIN, '--run', run]);
  const w = watch(run, (_ev, name) => {
    if (name?.startsWith('.checkpoint.safetensors.tmp-') && !before.has(name)) child.kill('SIGKILL');
  });
  const e = await done;
  w.close();
  const staleTmp = readdirSync(run).some(
    (f) => f.startsWith('.checkpoint.safetensors.tmp-') && !before.has(f),
  );
  return { ...e, staleTmp };
}

function stepOf(run: string): number {
  return (loadCheckpoint(join(run, 'checkpoint.safetensors')).meta.state as { step: number }).step;
}

test('a run killed at random moments and restarted ends bit-identical to an uninterrupted run', {
  timeout: 240_000,
}, async () => {
  const t0 = performance.now();
  const A = join(TMP, 'A');
  const B = join(TMP, 'B');
  const a = await start([...TRAIN, '--run', A]).done;
  assert.equal(a.code, 0, `uninterrupted run failed:\n${a.stderr}`);

  // Run B: kill mid-step, kill as a checkpoint write starts, kill mid-step again, then run to the end.
  const kills: string[] = [];
  const k1 = await killMidStep(B, Math.floor(Math.random() * 300));
  if (k1.signal === 'SIGKILL') kills.push(`mid-step at step ${k1.atStep}`);
  if (k1.signal === 'SIGKILL') {
    const resumeFrom = stepOf(B);
    assert.ok(resumeFrom <= k1.atStep, 'the checkpoint is never ahead of the log');
    const k2 = await killDuringCheckpointWrite(B);
    if (k2.signal === 'SIGKILL') {
      kills.push(
        `as a checkpoint write started (${k2.staleTmp ? 'torn temporary file left' : 'write had finished'})`,
      );
      // Atomic writes: whatever the moment of the kill, checkpoint.safetensors is a whole checkpoint.
      const st = stepOf(B);
      assert.ok(st >= resumeFrom && st <= STEPS, `checkpoint step ${st} after the kill`);
      const k3 = await killMidStep(B, Math.floor(Math.random() * 300));
      if (k3.signal === 'SIGKILL') kills.push(`mid-step at step ${k3.atStep} (resumed from ${st})`);
    }
  }
  let restarts = 0;
  for (; restarts < 4; restarts++) {
    if (existsSync(join(B, 'checkpoint.safetensors')) && stepOf(B) === STEPS) break;
    const r = await start([...TRAIN, '--run', B]).done;
    assert.equal(r.code, 0, `resumed run failed:\n${r.stderr}`);
  }
  assert.ok(kills.length >= 2, `the run should have been killed at least twice (kills: ${kills.join('; ')})`);
  console.log(`# kills: ${kills.join('; ')}; ${restarts} final restart(s)`);

  const ca = loadCheckpoint(join(A, 'checkpoint.safetensors'));
  const cb = loadCheckpoint(join(B, 'checkpoint.safetensors'));
  assert.deepEqual(cb.meta, ca.meta, 'step, RNG and data-loader states');
  for (const group of ['params', 'ema', 'adamM', 'adamV'] as const) {
    const ga = ca[group];
    const gb = cb[group];
    assert.deepEqual([...gb.keys()], [...ga.keys()], `${group}: tensor names`);
    assert.ok(ga.size > 0, `${group} is empty`);
    for (const [name, va] of ga) {
      const vb = gb.get(name)!;
      const same = Buffer.from(va.buffer, va.byteOffset, va.byteLength).equals(
        Buffer.from(vb.buffer, vb.byteOffset, vb.byteLength),
      );
      assert.ok(same, `${group}.${name} differs between the resumed and the uninterrupted run`);
    }
  }
  assert.ok(
    readFileSync(join(A, 'checkpoint.safetensors')).equals(readFileSync(join(B, 'checkpoint.safetensors'))),
    'checkpoint files are byte-identical',
  );
  assert.ok(
    readFileSync(join(A, 'model', 'model.safetensors')).equals(
      readFileSync(join(B, 'model', 'model.safetensors')),
    ),
    'model/ (EMA weights) is byte-identical',
  );

  // The log: every step once, in order, with the uninterrupted run's losses.
  const la = readLog(join(A, 'log.jsonl'));
  const lb = readLog(join(B, 'log.jsonl'));
  const all = Array.from({ length: STEPS }, (_, i) => i + 1);
  assert.deepEqual(
    la.map((r) => r.step),
    all,
  );
  assert.deepEqual(
    lb.map((r) => r.step),
    all,
    'resumed log: no duplicated or missing steps',
  );
  assert.deepEqual(
    lb.map((r) => [r.loss, r.lr, r.gradNorm]),
    la.map((r) => [r.loss, r.lr, r.gradNorm]),
    'losses',
  );
  // Killed writes leave no temporary files behind once the run has resumed.
  const stale = [...readdirSync(B), ...readdirSync(join(B, 'model'))].filter((f) => f.includes('.tmp-'));
  assert.deepEqual(stale, [], 'stale temporary files in the run folder');

  // Changing an identity option on resume is refused, and leaves the run untouched.
  const before = readFileSync(join(B, 'checkpoint.safetensors'));
  const changed = TRAIN.map((v, i) => (TRAIN[i - 1] === '--batch' ? '4' : v));
  const c = await start([...changed, '--run', B]).done;
  assert.equal(c.code, 1, c.stderr);
  assert.match(c.stderr, /different batch \(8 there, 4 now\)/);
  assert.match(c.stderr, /repeat the original options|new --run folder/);
  assert.ok(before.equals(readFileSync(join(B, 'checkpoint.safetensors'))), 'checkpoint untouched');

  // A truncated checkpoint: an error that names the file and says it is truncated.
  const C = join(TMP, 'C');
  mkdirSync(C);
  copyFileSync(join(B, 'checkpoint.safetensors'), join(C, 'checkpoint.safetensors'));
  truncateSync(join(C, 'checkpoint.safetensors'), Math.floor(before.length / 2));
  const d = await start([...TRAIN, '--run', C]).done;
  assert.equal(d.code, 1, d.stderr);
  assert.ok(d.stderr.includes(join(C, 'checkpoint.safetensors')), `error names the file:\n${d.stderr}`);
  assert.match(d.stderr, /truncated/);
  console.log(`# resume test: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});
