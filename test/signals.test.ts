// Ctrl-C and SIGTERM (spawned as users run the command, bin/ddpm.mjs): `ddpm train` finishes the current
// step, writes a checkpoint of it, prints where it is and the command that resumes, and exits with 130
// (SIGINT) / 143 (SIGTERM); the printed command resumes to exactly the weights of an uninterrupted run; a
// second signal exits at once. `ddpm sample`, `bpd` and `interpolate` stop within a network call and write
// nothing. Tiny model (0.7M parameters, 16x16, T = 50) for training; the shipped model (T = 1000) for the
// others, so that the signal lands mid-chain.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readLog } from '../src/train/trainer.js';
import { compareClose } from '../src/util/allclose.js';
import { ROOT, type Run, type Started, startDdpm } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-signals-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const STEPS = 40;
const TRAIN = [
  'train',
  ...['--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8', '--resolution', '16'],
  ...['--T', '50', '--batch', '4', '--threads', '1', '--steps', String(STEPS), '--checkpoint-every', '100'],
  ...['--sample-every', '0', '--log-every', '1'],
];

function start(args: readonly string[], opts: { node?: readonly string[] } = {}): Started {
  return startDdpm(args, { cwd: ROOT, ...opts });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function loggedSteps(run: string): number[] {
  const p = join(run, 'log.jsonl');
  return existsSync(p) ? readLog(p).map((r) => r.step) : [];
}

/** Poll until `ready()` or the process ends (then returns false). */
async function waitFor(done: Promise<Run>, ready: () => boolean): Promise<boolean> {
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  while (!finished && !ready()) await sleep(10);
  return !finished;
}

/** Start a training run and send `sig` once it has logged `atLeast` steps more than it started with. */
async function trainAndSignal(run: string, sig: NodeJS.Signals, atLeast: number): Promise<Run> {
  const from = loggedSteps(run).length;
  const { child, done } = start([...TRAIN, '--run', run]);
  const ok = await waitFor(done, () => loggedSteps(run).length >= from + atLeast);
  assert.ok(ok, `the run ended before ${atLeast} more steps`);
  child.kill(sig);
  return done;
}

function ckptStep(run: string): number {
  return (loadCheckpoint(join(run, 'checkpoint.safetensors')).meta.state as { step: number }).step;
}

/** Which parts of two runs' checkpoints differ: the metadata, or tensors with their largest difference. */
function checkpointDiff(a: string, b: string): string {
  const ca = loadCheckpoint(join(a, 'checkpoint.safetensors'));
  const cb = loadCheckpoint(join(b, 'checkpoint.safetensors'));
  const out: string[] = [];
  if (JSON.stringify(ca.meta) !== JSON.stringify(cb.meta))
    out.push(`meta ${JSON.stringify(ca.meta)} vs ${JSON.stringify(cb.meta)}`);
  for (const part of ['params', 'ema', 'adamM', 'adamV'] as const) {
    for (const [k, va] of ca[part]) {
      const vb = cb[part].get(k);
      const c = vb && compareClose(va, vb, 0, 0);
      if (!c) out.push(`${part}.${k} missing`);
      else if (!c.ok) out.push(`${part}.${k} max |diff| ${c.maxAbsErr}`);
    }
  }
  return out.length
    ? out.slice(0, 8).join('; ') + (out.length > 8 ? ` (+${out.length - 8} more)` : '')
    : 'bytes only';
}

function tempFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => /\.tmp-/.test(f))
    : [];
}

describe('signals', () => {
  it('train: SIGINT / SIGTERM checkpoint the current step, print the resume command, and resume bit-exactly', {
    timeout: 240_000,
  }, async () => {
    const A = join(TMP, 'A');
    const B = join(TMP, 'B');
    const a = await start([...TRAIN, '--run', A]).done;
    assert.equal(a.code, 0, `uninterrupted run failed:\n${a.stderr}`);

    const resumeLines: string[] = [];
    const stops: number[] = [];
    for (const [sig, status, atLeast] of [
      ['SIGINT', 130, 3],
      ['SIGTERM', 143, 5],
    ] as const) {
      const r = await trainAndSignal(B, sig, atLeast);
      assert.equal(r.code, status, `exit status after ${sig}:\n${r.stderr}`);
      assert.equal(r.signal, null, 'the process exits by itself, not by the signal');
      const logged = loggedSteps(B).at(-1)!;
      stops.push(logged);
      const ck = join(B, 'checkpoint.safetensors');
      // The checkpoint holds the last finished step: no step is lost.
      assert.equal(ckptStep(B), logged, `checkpoint step vs the last logged step:\n${r.stderr}`);
      assert.ok(logged < STEPS, `the run was stopped before its end (step ${logged})`);
      assert.ok(
        r.stderr.includes(`stopped by ${sig} after step ${logged} of ${STEPS}; checkpoint written: ${ck}`),
        `says where the checkpoint is:\n${r.stderr}`,
      );
      const line = /^resume with: (.*)$/m.exec(r.stderr)?.[1];
      assert.ok(line, `prints the resume command:\n${r.stderr}`);
      resumeLines.push(line);
      assert.deepEqual(tempFiles(B), [], 'no temporary file left');
    }
    // The exact command line, runnable as printed from the folder it ran in.
    const expected = ['node', 'bin/ddpm.mjs', ...TRAIN, '--run', B].join(' ');
    assert.deepEqual(resumeLines, [expected, expected]);
    const words = expected.split(' ');
    assert.equal(words[1], 'bin/ddpm.mjs');
    const c = await start(words.slice(2)).done;
    assert.equal(c.code, 0, `resumed run failed:\n${c.stderr}`);
    assert.match(c.stderr, /resumed .* at step \d+/);

    // The logs first: a difference there names the first step that differs, relative to the stops.
    const la = readLog(join(A, 'log.jsonl'));
    const lb = readLog(join(B, 'log.jsonl'));
    const first = la.findIndex((r, i) => lb[i]?.step !== r.step || lb[i]?.loss !== r.loss);
    assert.equal(
      first,
      -1,
      `log: step ${la[first]?.step} differs (loss ${la[first]?.loss} uninterrupted, ${lb[first]?.loss} resumed; stops after steps ${stops.join(', ')})`,
    );
    for (const f of ['checkpoint.safetensors', join('model', 'model.safetensors')]) {
      // the explanation (both checkpoints read again) only when the bytes differ
      if (!readFileSync(join(A, f)).equals(readFileSync(join(B, f))))
        assert.fail(
          `${f}: the interrupted and resumed run differs from the uninterrupted one (stops after steps ${stops.join(', ')}): ${checkpointDiff(A, B)}`,
        );
    }
    assert.deepEqual(
      lb.map((r) => [r.step, r.loss]),
      la.map((r) => [r.step, r.loss]),
      'log: every step once, the same losses',
    );
  });

  it('train: a second SIGINT exits at once and the last checkpoint stays whole', {
    timeout: 120_000,
  }, async () => {
    const D = join(TMP, 'D');
    const { child, done } = start([...TRAIN, '--run', D]);
    assert.ok(await waitFor(done, () => loggedSteps(D).length >= 2), 'the run ended early');
    child.kill('SIGINT');
    child.kill('SIGINT');
    const r = await done;
    assert.equal(r.code, 130, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, 'no stack trace');
    if (existsSync(join(D, 'checkpoint.safetensors'))) assert.ok(ckptStep(D) >= 1);
    assert.deepEqual(tempFiles(D), [], 'no temporary file left');
  });

  it('the second signal exits at once even while the command is busy', { timeout: 60_000 }, async () => {
    // A command that waits (as between network calls) and never finishes by itself.
    const script = [
      `import { catchStopSignals } from ${JSON.stringify(join(ROOT, 'src', 'cli', 'signals.ts'))};`,
      `catchStopSignals('test', 'stopping soon');`,
      `setInterval(() => {}, 1000);`,
      `process.stderr.write('ready\\n');`,
    ].join('\n');
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const { child, done, stderr } = start([], {
        node: ['--import', 'tsx', '--input-type=module', '-e', script],
      });
      assert.ok(await waitFor(done, () => stderr().includes('ready')), stderr());
      child.kill(sig);
      assert.ok(await waitFor(done, () => stderr().includes('stopping soon')), stderr());
      const t0 = performance.now();
      child.kill(sig);
      const r = await done;
      assert.equal(r.code, sig === 'SIGINT' ? 130 : 143, r.stderr);
      assert.match(r.stderr, new RegExp(`ddpm test: second ${sig}: exiting now`));
      assert.ok(performance.now() - t0 < 5000, 'exits at once');
    }
  });

  it('sample, bpd and interpolate stop mid-chain and write nothing', { timeout: 180_000 }, async () => {
    const out = join(TMP, 'out');
    mkdirSync(out);
    const cases = [
      {
        args: [
          'sample',
          '--n',
          '1',
          '--steps',
          '1000',
          '--out',
          join(out, 's.png'),
          '--gif',
          join(out, 's.gif'),
        ],
        sig: 'SIGINT',
        status: 130,
        bar: 'sample [',
        says: 'stopped by SIGINT: no file written',
      },
      {
        args: ['bpd', '--n', '1', '--json', join(out, 'b.json')],
        sig: 'SIGTERM',
        status: 143,
        bar: 'bpd [',
        says: `stopped by SIGTERM: no bits/dim measured, ${join(out, 'b.json')} not written`,
      },
      {
        args: ['interpolate', '--lambdas', '2', '--out', join(out, 'i.png')],
        sig: 'SIGINT',
        status: 130,
        bar: 'interpolate [',
        says: 'stopped by SIGINT: no file written',
      },
    ] as const;
    for (const c of cases) {
      const { child, done, stderr } = start([...c.args, '--threads', '1']);
      const ok = await waitFor(done, () => stderr().includes(c.bar));
      assert.ok(ok, `ddpm ${c.args[0]} ended before the signal:\n${stderr()}`);
      child.kill(c.sig);
      const r = await done;
      assert.equal(r.code, c.status, `ddpm ${c.args[0]}:\n${r.stderr}`);
      assert.ok(r.stderr.includes(c.says), `ddpm ${c.args[0]}:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, 'no stack trace');
      assert.deepEqual(readdirSync(out), [], `ddpm ${c.args[0]} left files`);
    }
  });
});
