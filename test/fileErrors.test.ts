// Errors in the user's words, end to end (spawned as users run the command, bin/ddpm.mjs): a model whose
// config.json is null or has "ch": "abc", or whose safetensors header has a string shape, fails with a
// message naming the file and the key; a training run on a full disk (a small tmpfs) names the checkpoint,
// says the disk is full, that the last checkpoint is intact and how to resume, and leaves no temporary
// file; a run folder on a read-only file system says so. Never a JavaScript TypeError or a stack trace.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultSpec } from '../src/model/spec.js';
import { saveModel } from '../src/model/weights.js';
import { initParams, TINY_UNET } from '../src/nn/unet.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { mountTmpfs } from '../src/util/testMounts.js';
import { ddpmIn, ROOT, type Run } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-fileerr-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const ddpm = ddpmIn(ROOT);

function noCrash(r: Run, what: string): void {
  assert.doesNotMatch(
    r.stderr,
    /TypeError|is not a function|Cannot read properties/,
    `${what}: a JavaScript error`,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, `${what}: a stack trace`);
}

const TINY = ['--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8', '--resolution', '16'];
const TRAIN = ['train', ...TINY, '--T', '50', '--batch', '4', '--threads', '1', '--sample-every', '0'];

describe("errors in the user's words", () => {
  it('bad model files: the message names the file, the key and what was expected', async () => {
    const model = (name: string) => {
      const dir = join(TMP, name);
      mkdirSync(dir);
      saveModel(dir, { ...defaultSpec(), unet: TINY_UNET }, initParams(TINY_UNET, 'fixture'));
      return dir;
    };
    const nullCfg = model('null');
    writeFileSync(join(nullCfg, 'config.json'), 'null');
    const abc = model('abc');
    const cfg = JSON.parse(readFileSync(join(abc, 'config.json'), 'utf8'));
    writeFileSync(join(abc, 'config.json'), JSON.stringify({ ...cfg, unet: { ...cfg.unet, ch: 'abc' } }));
    const shape = model('shape');
    const w = readFileSync(join(shape, 'model.safetensors'));
    const hlen = Number(w.readBigUInt64LE(0));
    const header = JSON.parse(w.subarray(8, 8 + hlen).toString());
    header['conv_in.weight'].shape = 'abc';
    const hb = Buffer.from(JSON.stringify(header));
    const pre = Buffer.alloc(8);
    pre.writeBigUInt64LE(BigInt(hb.length));
    writeFileSync(join(shape, 'model.safetensors'), Buffer.concat([pre, hb, w.subarray(8 + hlen)]));

    const cases: [string[], string[]][] = [
      [
        ['sample', '--model', nullCfg],
        [join(nullCfg, 'config.json'), 'the file is null; expected a JSON object'],
      ],
      [
        ['bpd', '--model', abc],
        [join(abc, 'config.json'), '"unet.ch" is "abc" (a string); expected a positive integer'],
      ],
      [
        ['interpolate', '--model', shape],
        [
          join(shape, 'model.safetensors'),
          'tensor conv_in.weight: shape is "abc" (a string); expected an array',
        ],
      ],
    ];
    for (const [args, says] of cases) {
      const r = await ddpm([...args, '--threads', '1']);
      const what = `ddpm ${args.join(' ')}`;
      assert.equal(r.code, 1, `${what}:\n${r.stderr}`);
      for (const s of says) assert.ok(r.stderr.includes(s), `${what}: lacks "${s}":\n${r.stderr}`);
      noCrash(r, what);
    }
  });

  it('train on a full disk: names the checkpoint, keeps the last one, says how to resume', {
    timeout: 120_000,
  }, async (t) => {
    // 20 MB: the first checkpoint (11 MB) and model/ (3 MB) fit, the second checkpoint's temporary file does not.
    const m = mountTmpfs('full', 20 * 1024);
    if (typeof m === 'string') return t.skip(m);
    try {
      const run = join(m.dir, 'run');
      const args = [...TRAIN, '--run', run, '--steps', '4', '--checkpoint-every', '2'];
      const r = await ddpm(args);
      assert.equal(r.code, 1, r.stderr);
      const ckpt = join(run, 'checkpoint.safetensors');
      assert.ok(
        r.stderr.includes(`cannot write ${ckpt}: the disk holding ${run} is full (no space left on device)`),
        r.stderr,
      );
      assert.ok(r.stderr.includes(`the last checkpoint, ${ckpt}, is intact`), r.stderr);
      assert.ok(r.stderr.includes(`resume with: node bin/ddpm.mjs ${args.join(' ')}`), r.stderr);
      noCrash(r, 'train on a full disk');
      assert.equal(
        (loadCheckpoint(ckpt).meta.state as { step: number }).step,
        2,
        'the step-2 checkpoint is whole',
      );
      const temps = readdirSync(m.dir, { recursive: true })
        .map(String)
        .filter((f) => f.includes('.tmp-'));
      assert.deepEqual(temps, [], 'no temporary file left');
    } finally {
      m.unmount();
    }
  });

  it('train into a read-only file system: says so', { timeout: 60_000 }, async (t) => {
    const m = mountTmpfs('read-only');
    if (typeof m === 'string') return t.skip(m);
    try {
      const r = await ddpm([...TRAIN, '--run', join(m.dir, 'run'), '--steps', '2']);
      assert.equal(r.code, 2, r.stderr); // refused before the work (cli/outputs.ts)
      assert.match(
        r.stderr,
        new RegExp(`${m.dir} is on a read-only file system; choose a folder on a writable disk`),
      );
      noCrash(r, 'train on a read-only file system');
    } finally {
      m.unmount();
    }
  });
});
