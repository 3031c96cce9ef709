// `ddpm eval` end to end, spawned as users run it: reference statistics (.npz) equal the mean and unbiased
// covariance of the stored features (recomputed here in float64); a folder holding the reference images
// themselves scores FID ~ 0 and an IS near 10 (ten balanced classes); held-out real digits score
// far better than noise; a sharded evaluation merged equals the single run; and bad input fails with a
// message that names the problem. The metric formulas themselves are checked against SciPy in
// src/eval/metrics.test.ts; this file checks the plumbing that feeds them.

import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encode } from 'fast-png';
import { openDataset } from '../src/data/open.js';
import { defaultSpec } from '../src/model/spec.js';
import { saveModel } from '../src/model/weights.js';
import { initParams, TINY_UNET } from '../src/nn/unet.js';
import { allClose } from '../src/util/allclose.js';
import { readNpz } from '../src/util/npy.js';
import { Rng } from '../src/util/rng.js';
import { ddpmIn, type Run, startDdpm } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-eval-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const ddpm = ddpmIn(TMP);

function ok(r: Run): Run {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Poll until `cond` holds (every 50 ms), or fail naming what was awaited. */
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The JSON lines of an eval log. */
function logLines(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** The one result whose label starts with `metric[` in a log record. */
function result(rec: Record<string, unknown>, metric: string): number | { mean: number; std: number } {
  const results = rec.results as Record<string, number | { mean: number; std: number }>;
  const key = Object.keys(results).find((k) => k.startsWith(`${metric}[`));
  assert.ok(key, `no ${metric} in ${JSON.stringify(results)}`);
  return results[key]!;
}

/** Write images [n, 1, H, W] (bytes) as 8-bit grayscale PNGs. */
function writePngs(dir: string, pixels: Uint8Array, n: number, h: number, w: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const data = pixels.subarray(i * h * w, (i + 1) * h * w);
    writeFileSync(
      join(dir, `${String(i).padStart(5, '0')}.png`),
      encode({ width: w, height: h, data, channels: 1 }),
    );
  }
}

const COMMON = ['--threads', '1', '--batch', '50', '--log', 'eval.jsonl'];
const REF = join(TMP, 'test-ref.npz');
const SAME = join(TMP, 'test-images'); // mnist:test itself, as PNGs
const NOISE = join(TMP, 'noise');
const TRAIN = join(TMP, 'train-images'); // 1,000 digits of mnist:train

before(() => {
  const test = openDataset('mnist:test');
  writePngs(SAME, test.pixels, test.n, test.height, test.width);
  const train = openDataset('mnist:train');
  const rng = new Rng(7);
  const pick = new Uint8Array(1000 * 32 * 32);
  for (let i = 0; i < 1000; i++) {
    const j = Math.floor(rng.uniform() * train.n);
    pick.set(train.pixels.subarray(j * 1024, (j + 1) * 1024), i * 1024);
  }
  writePngs(TRAIN, pick, 1000, 32, 32);
  const noise = new Uint8Array(200 * 32 * 32);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(rng.uniform() * 256);
  writePngs(NOISE, noise, 200, 32, 32);
});

describe('ddpm eval stats', () => {
  it('writes mu and the unbiased covariance of the stored features (float64), with the network in its meta', async () => {
    const r = ok(
      await ddpm([
        'eval',
        'stats',
        '--data',
        'mnist:test',
        '--out',
        REF,
        '--with-features',
        '--threads',
        '1',
      ]),
    );
    assert.match(
      r.stdout,
      /wrote .*test-ref\.npz: mu, sigma, features of 1000 images .*mnist-classifier@[0-9a-f]{8}/,
    );
    const a = readNpz(new Uint8Array(readFileSync(REF)), REF);
    const mu = a.get('mu')!;
    const sigma = a.get('sigma')!;
    const f = a.get('features')!;
    assert.deepEqual(mu.shape, [128]);
    assert.deepEqual(sigma.shape, [128, 128]);
    assert.deepEqual(f.shape, [1000, 128]);
    assert.ok(mu.data instanceof Float64Array && sigma.data instanceof Float64Array);
    const n = 1000;
    const d = 128;
    const x = f.data as Float32Array;
    const m = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) m[j]! += x[i * d + j]! / n;
    let maxMu = 0;
    for (let j = 0; j < d; j++) maxMu = Math.max(maxMu, Math.abs(m[j]! - (mu.data[j] as number)));
    let maxSig = 0;
    let scale = 0;
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < d; q++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += (x[i * d + p]! - m[p]!) * (x[i * d + q]! - m[q]!);
        s /= n - 1;
        scale = Math.max(scale, Math.abs(s));
        maxSig = Math.max(maxSig, Math.abs(s - (sigma.data[p * d + q] as number)));
      }
    }
    assert.ok(maxMu < 1e-9 * Math.max(1, ...Array.from(m, Math.abs)), `mu off by ${maxMu}`);
    assert.ok(maxSig < 1e-9 * scale, `sigma off by ${maxSig} (scale ${scale})`);
    const meta = JSON.parse(new TextDecoder().decode(a.get('meta')!.data as Uint8Array));
    assert.equal(meta.n, 1000);
    assert.match(meta.featureNet, /^mnist-classifier@[0-9a-f]{8}$/);
  });
});

describe('ddpm eval on folders of images', () => {
  it('the reference images themselves: FID ~ 0; IS of real balanced digits near its maximum, 10', async () => {
    const r = ok(
      await ddpm(['eval', 'fid,is', '--samples', SAME, '--ref', REF, '--is-splits', '1', ...COMMON]),
    );
    assert.match(r.stdout, /FID\[mnist-classifier@[0-9a-f]{8}\]/);
    const rec = logLines(join(TMP, 'eval.jsonl')).at(-1)!;
    const fid = result(rec, 'FID') as number;
    assert.ok(Math.abs(fid) < 1e-6, `FID of the reference against itself is ${fid}`);
    // IS from the classifier's logits over the same images (one split), computed here independently.
    const is = result(rec, 'IS') as { mean: number; std: number };
    assert.ok(is.mean > 1 && is.mean <= 10 + 1e-9, `IS ${is.mean} outside (1, 10]`);
    // A 99%-accurate 10-class classifier on balanced held-out digits: p(y) ~ uniform, p(y|x) peaked, IS near 10.
    assert.ok(is.mean > 8, `IS ${is.mean} of real balanced digits should be near 10`);
    assert.equal(is.std, 0);
  });

  it('held-out real digits score far better than noise (FID, precision, recall)', async () => {
    const train = ok(await ddpm(['eval', 'fid,pr', '--samples', TRAIN, '--ref', REF, ...COMMON]));
    const a = logLines(join(TMP, 'eval.jsonl')).at(-1)!;
    const noise = ok(await ddpm(['eval', 'fid,pr', '--samples', NOISE, '--ref', REF, ...COMMON]));
    const b = logLines(join(TMP, 'eval.jsonl')).at(-1)!;
    const fidReal = result(a, 'FID') as number;
    const fidNoise = result(b, 'FID') as number;
    assert.ok(
      fidReal > 0 && fidReal * 20 < fidNoise,
      `FID real ${fidReal} vs noise ${fidNoise}\n${train.stdout}\n${noise.stdout}`,
    );
    assert.ok((result(a, 'precision') as number) > 0.8, 'real digits lie in the real manifold');
    assert.ok((result(a, 'recall') as number) > 0.8, 'real digits cover the real manifold');
    assert.ok((result(b, 'precision') as number) < 0.05, 'noise lies outside the real manifold');
    // Another batch size (and so another grouping of the float32 features into the float64 sums) leaves
    // FID unchanged to rounding.
    ok(await ddpm(['eval', 'fid', '--samples', TRAIN, '--ref', REF, ...COMMON, '--batch', '7']));
    const c = logLines(join(TMP, 'eval.jsonl')).at(-1)!;
    const fidBatch7 = result(c, 'FID') as number;
    assert.ok(
      Math.abs(fidBatch7 - fidReal) <= 1e-9 * fidReal,
      `FID batch 7 ${fidBatch7} vs batch 50 ${fidReal}`,
    );
    // The log holds the protocol: feature network, reference hash, image count.
    const p = b.protocol as Record<string, Record<string, unknown>>;
    assert.equal(p.featureNet!.name, 'mnist-classifier');
    assert.equal(p.reference!.n, 1000);
    assert.equal(b.n, 200);
  });
});

describe('ddpm eval of a model, sharded', () => {
  const args = ['--sampler', 'ddim', '--steps', '2', '--n', '12', '--batch', '4', '--threads', '1'];
  const mergeLogged = (log: string, parts: readonly string[]) =>
    ddpm(['eval', 'merge', ...parts, '--kid-subsets', '5', '--threads', '1', '--log', log]);
  /** FID, IS and KID of a merged record equal the single run's to 1e-9 (relative). */
  const assertSameMetrics = (r: Record<string, unknown>, single: Record<string, unknown>, what: string) => {
    for (const metric of ['FID', 'IS', 'KID']) {
      const v = (x: Record<string, unknown>) => {
        const y = result(x, metric) as number | { mean: number };
        return typeof y === 'number' ? y : y.mean;
      };
      assert.ok(
        Math.abs(v(r) - v(single)) <= 1e-9 * Math.max(1, Math.abs(v(single))),
        `${metric}: ${what} ${v(r)} vs single ${v(single)}`,
      );
    }
  };
  it('shards 1/2 + 2/2 merged give the single run (same images, same statistics)', async () => {
    const single = ok(
      await ddpm(['eval', 'fid,is,kid', ...args, '--ref', REF, '--kid-subsets', '5', '--log', 's.jsonl']),
    );
    const p1 = ok(
      await ddpm(['eval', 'fid,is,kid', ...args, '--shard', '1/2', '--out', 'p1.npz', '--ref', REF]),
    );
    assert.match(p1.stdout, /partial results of shard 1\/2 \(8 of 12 images/);
    ok(await ddpm(['eval', 'fid,is,kid', ...args, '--shard', '2/2', '--out', 'p2.npz', '--ref', REF]));
    const merged = ok(await mergeLogged('m.jsonl', ['p2.npz', 'p1.npz']));
    const s = logLines(join(TMP, 's.jsonl'))[0]!;
    const m = logLines(join(TMP, 'm.jsonl'))[0]!;
    assertSameMetrics(m, s, 'merged');
    assert.ok(Number.isFinite(result(s, 'FID') as number) && (result(s, 'FID') as number) > 0);
    assert.match(single.stdout, /12 images against .*test-ref\.npz/);
    assert.match(merged.stdout, /12 images against/);
    // The time per image: the single run's, and the merge's from the shards' own times summed.
    for (const [r, what] of [
      [s, 'single'],
      [m, 'merged'],
    ] as const)
      assert.ok((r.msPerImage as number) > 0, `${what}: msPerImage ${r.msPerImage}`);
    assert.deepEqual(
      (m.protocol as { images: unknown }).images,
      (s.protocol as { images: unknown }).images,
      'the merged row names the same images (the grid matches rows by it)',
    );
  });

  it('merge --out carries shards as one file: 1/3 and 2/3 combined, merged with 3/3, give the single run', async () => {
    const shard = (k: number) =>
      ddpm(['eval', 'fid,is,kid', ...args, '--shard', `${k}/3`, '--out', `t${k}.npz`, '--ref', REF]);
    for (const r of await Promise.all([shard(1), shard(2), shard(3)])) ok(r);
    const c = ok(await ddpm(['eval', 'merge', '--out', 't12.npz', 't2.npz', 't1.npz']));
    assert.match(c.stdout, /wrote t12\.npz: partial results of shards 1-2\/3 \(8 of 12 images\)/);
    ok(await mergeLogged('t.jsonl', ['t3.npz', 't12.npz']));
    assertSameMetrics(logLines(join(TMP, 't.jsonl'))[0]!, logLines(join(TMP, 's.jsonl'))[0]!, 'combined');
    // A shard given twice, one missing, or a shard of another split: each named.
    const twice = await ddpm(['eval', 'merge', 't12.npz', 't2.npz', 't3.npz', '--threads', '1']);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /shard 2\/3 is in both t12\.npz and t2\.npz; give it once/);
    const short = await ddpm(['eval', 'merge', 't12.npz', '--threads', '1']);
    assert.equal(short.code, 2);
    assert.match(
      short.stderr,
      /split 3 ways but the 1 partial results given hold 2 of them \(missing: 3\/3\)/,
    );
    const mixed = await ddpm(['eval', 'merge', '--out', 'x.npz', 't1.npz', 'p2.npz']);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /p2\.npz \(shard 2\/2 of N = 12\) is not a shard of the run t1\.npz is from/);
    assert.ok(!existsSync(join(TMP, 'x.npz')), 'nothing written');
  });

  it('an evaluation grows: a smaller run of the same images merged with the rest gives the larger run', async () => {
    // Images 0..3 as an N = 4 run (fid,is,kid), 4..7 from shard 2/2 of the N = 12 run above, 8..11 as shard
    // 3/3 of another N = 12 run (with pr too): together the N = 12 single run, and every metric any part
    // measured (pr from the features the kid parts kept).
    const base = args.filter((_, i) => i < 4 || i > 5); // without --n 12
    const part = (metrics: string, n: number, shard: string, out: string) =>
      ddpm(['eval', metrics, ...base, '--n', String(n), '--shard', shard, '--out', out, '--ref', REF]);
    ok(await part('fid,is,kid', 4, '1/1', 'g4.npz'));
    ok(await part('fid,is,kid,pr', 12, '3/3', 'g12c.npz'));
    const merged = ok(await mergeLogged('g.jsonl', ['g4.npz', 'p2.npz', 'g12c.npz']));
    const s = logLines(join(TMP, 's.jsonl'))[0]!;
    const g = logLines(join(TMP, 'g.jsonl'))[0]!;
    assertSameMetrics(g, s, 'grown');
    assert.match(merged.stdout, /12 images against/);
    assert.equal((g.protocol as { images: { n: number } }).images.n, 12);
    assert.ok(typeof result(g, 'precision') === 'number', 'precision merged from the kept features');
    // A part without the logits IS needs is named; so is a gap in the images.
    ok(await part('fid', 4, '1/1', 'f4.npz'));
    const noFeatures = await ddpm(['eval', 'merge', 'f4.npz', 'p2.npz', 'g12c.npz', '--threads', '1']);
    assert.equal(noFeatures.code, 2);
    assert.match(
      noFeatures.stderr,
      /f4\.npz kept no logits \(its run measured fid\), so is cannot be merged/,
    );
    const gap = await ddpm(['eval', 'merge', 'g4.npz', 'g12c.npz', '--threads', '1']);
    assert.equal(gap.code, 2);
    assert.match(gap.stderr, /the shards hold 8 of 12 images; images 4\.\.7 are in none of them/);
  });

  it('--precision int8: calibrated, the quantized convolutions counted in the protocol, a different FID', async () => {
    const f = ok(await ddpm(['eval', 'fid', ...args, '--ref', REF, '--log', 'f32.jsonl']));
    const q = ok(
      await ddpm(['eval', 'fid', ...args, '--ref', REF, '--precision', 'int8', '--log', 'q8.jsonl']),
    );
    assert.match(q.stderr, /int8: \d+ convolutions calibrated/);
    const imagesOf = (r: Record<string, unknown>) =>
      (r.protocol as { images: Record<string, unknown> }).images;
    const a = logLines(join(TMP, 'f32.jsonl'))[0]!;
    const b = logLines(join(TMP, 'q8.jsonl'))[0]!;
    assert.equal(imagesOf(a).precision, undefined);
    assert.equal(imagesOf(b).precision, 'int8');
    assert.ok((imagesOf(b).int8Convs as number) > 10, JSON.stringify(imagesOf(b)));
    // The same images to the float run's seeds, through another network: close, not equal.
    const fa = result(a, 'FID') as number;
    const fb = result(b, 'FID') as number;
    assert.ok(fa !== fb && Number.isFinite(fb), `FID float32 ${fa}, int8 ${fb}`);
    assert.match(f.stdout, /12 images against/);
  });

  it('Ctrl-C keeps the images done; the same command goes on from them to the uninterrupted result', async () => {
    // 50 steps: about a second per batch of 4, so the signal lands while the first batch is drawn.
    const slow = ['--sampler', 'ddim', '--steps', '50', '--n', '12', '--batch', '4', '--threads', '1'];
    const run = [...slow, '--ref', REF, '--kid-subsets', '5'];
    ok(await ddpm(['eval', 'fid,is,kid', ...run, '--checkpoint', 'none', '--log', 'whole.jsonl']));
    const started = startDdpm(['eval', 'fid,is,kid', ...run, '--log', 'resumed.jsonl'], { cwd: TMP });
    await waitFor(() => /of 12 images/.test(started.stderr()), 60_000, 'the run to start');
    started.child.kill('SIGINT');
    const stopped = await started.done;
    assert.equal(stopped.code, 130, stopped.stderr);
    const m =
      /stopped by SIGINT after (\d+) of 12 images; they are kept in (eval-[0-9a-f]{8}\.partial\.npz): run the same command again/.exec(
        stopped.stderr,
      );
    assert.ok(m, stopped.stderr);
    const kept = Number(m[1]);
    const ckpt = join(TMP, m[2]!);
    assert.ok(kept > 0 && kept < 12 && kept % 4 === 0, `whole batches kept: ${kept}`);
    copyFileSync(ckpt, join(TMP, 'kept.npz'));
    assert.ok(!existsSync(join(TMP, 'resumed.jsonl')), 'no result logged for a stopped run');
    // The same command: goes on, equals the uninterrupted run, and deletes its checkpoint.
    const resumed = ok(await ddpm(['eval', 'fid,is,kid', ...run, '--log', 'resumed.jsonl']));
    assert.match(resumed.stderr, new RegExp(`going on from ${m[2]}: ${kept} of 12 images done`));
    assertSameMetrics(
      logLines(join(TMP, 'resumed.jsonl'))[0]!,
      logLines(join(TMP, 'whole.jsonl'))[0]!,
      'stopped and resumed',
    );
    assert.ok(!existsSync(ckpt), 'the checkpoint is deleted when the run completes');
    // Another run's checkpoint, or a damaged one, is refused with what to do; nothing is overwritten.
    const other = await ddpm(['eval', 'fid,is,kid', ...run, '--seed', '5', '--checkpoint', 'kept.npz']);
    assert.equal(other.code, 2);
    assert.match(
      other.stderr,
      /checkpoint kept\.npz is of another evaluation \(images\.seed: 0 in the first, 5 here.*delete it to start over/,
    );
    const bytes = readFileSync(join(TMP, 'kept.npz'));
    writeFileSync(join(TMP, 'cut.npz'), bytes.subarray(0, bytes.length >> 1));
    const cut = await ddpm(['eval', 'fid,is,kid', ...run, '--checkpoint', 'cut.npz']);
    assert.equal(cut.code, 2);
    assert.match(cut.stderr, /ddpm eval: checkpoint: cut\.npz: .*delete it to start over/);
    assert.equal(readFileSync(join(TMP, 'cut.npz')).length, bytes.length >> 1);
  });

  it('merge refuses an incomplete or mixed set of shards', async () => {
    const one = await ddpm(['eval', 'merge', 'p1.npz', '--threads', '1']);
    assert.equal(one.code, 2);
    assert.match(one.stderr, /split 2 ways but the 1 partial results given hold 1 of them \(missing: 2\/2\)/);
    ok(
      await ddpm([
        'eval',
        'fid',
        ...args,
        '--seed',
        '5',
        '--shard',
        '2/2',
        '--out',
        'other.npz',
        '--ref',
        REF,
      ]),
    );
    const mixed = await ddpm(['eval', 'merge', 'p1.npz', 'other.npz', '--threads', '1']);
    assert.equal(mixed.code, 2);
    assert.match(
      mixed.stderr,
      /other\.npz comes from another evaluation than p1\.npz: images\.seed: 0 in the first, 5 here/,
    );
    // A stopped run's checkpoint (the Ctrl-C test's) holds images but no shard of a split.
    const unsharded = await ddpm(['eval', 'merge', 'kept.npz', '--threads', '1']);
    assert.equal(unsharded.code, 2);
    assert.match(unsharded.stderr, /kept\.npz records no shard \(K\/N\)/);
    const missing = await ddpm(['eval', 'merge', 'nope.npz']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.npz does not exist/);
    const notPartial = await ddpm(['eval', 'merge', REF]);
    assert.equal(notPartial.code, 2);
    assert.match(notPartial.stderr, /is not a partial result/);
  });
});

describe('ddpm eval: bad input names the problem', () => {
  it('unknown metric, shard without --out, missing folder, missing Inception weights, statistics of another network, sampling options with --samples', async () => {
    const [metric, shard, folder, inception, other, noRef, outDir, trainRef, drawn] = await Promise.all([
      ddpm(['eval', 'fidd']),
      ddpm(['eval', 'fid', '--shard', '1/2']),
      ddpm(['eval', 'fid', '--samples', 'no-such-dir', '--ref', 'mnist:test']),
      ddpm([
        'eval',
        'fid',
        '--samples',
        SAME,
        '--ref',
        'mnist:test',
        '--features',
        'inception',
        '--inception',
        'missing.pth',
      ]),
      ddpm([
        'eval',
        'fid',
        '--samples',
        SAME,
        '--ref',
        REF,
        '--features',
        'fashion-mnist-classifier',
        '--threads',
        '1',
      ]),
      ddpm(['eval', 'fid', '--samples', SAME, '--features', 'mnist-classifier']),
      ddpm(['eval', 'stats', '--data', 'mnist:test', '--out', 'no/such/dir/x.npz']),
      ddpm(['train', '--run', 'r', '--eval-every', '2', '--eval-ref', 'nope.npz', '--threads', '1']),
      ddpm(['eval', 'fid', '--samples', SAME, '--ref', REF, '--precision', 'bf16', '--sampler', 'ddim']),
    ]);
    for (const r of [metric, shard, folder, inception, other, noRef, outDir, trainRef, drawn]) {
      assert.notEqual(r.code, 0);
    }
    assert.match(
      drawn.stderr,
      /--sampler, --precision set how a model samples; the images of --samples .* are already drawn/,
    );
    assert.match(metric.stderr, /unknown metric or command 'fidd' \(did you mean 'fid'\?\)/);
    assert.match(shard.stderr, /--shard 1\/2 writes partial results: pass --out/);
    assert.match(folder.stderr, /--samples no-such-dir: no such folder/);
    assert.match(inception.stderr, /missing\.pth/);
    assert.match(inception.stderr, /pytorch-fid|pt_inception/);
    assert.match(
      other.stderr,
      /computed with mnist-classifier@[0-9a-f]{8}, but the features now come from fashion-mnist-classifier/,
    );
    assert.match(noRef.stderr, /pass --ref/);
    assert.match(outDir.stderr, /folder .* does not exist/);
    // training checks its FID reference before the first step, and leaves no run folder
    assert.match(trainRef.stderr, /ddpm train: --eval-ref nope\.npz: no such file/);
    assert.ok(!existsSync(join(TMP, 'r')), 'no run folder for a run that never started');
  });
});

describe('ddpm bpd on padded digits', () => {
  it('reports the total bits over the 28x28 pixels (total x 1024 / 784) and says when the data is the training data', async () => {
    // a tiny 32x32 model with T = 50 (the bound's 50 terms; the shipped model's 1,000 took 28 s here)
    const model = join(TMP, 'bpd-model');
    const unet = { ...TINY_UNET, resolution: 32 };
    const spec = defaultSpec();
    saveModel(model, { ...spec, unet, diffusion: { ...spec.diffusion, T: 50 } }, initParams(unet, 'fixture'));
    const json = join(TMP, 'bpd.json');
    const r = ok(
      await ddpm(['bpd', '--model', model, '--n', '2', '--batch', '2', '--threads', '1', '--json', json]),
    );
    assert.match(
      r.stderr + r.stdout,
      /note: the model was trained on mnist, which holds the images of mnist: this is not held-out/,
    );
    assert.match(r.stdout, /total \/ 28x28/);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(j.data, 'mnist');
    assert.equal(j.heldOut, false);
    assert.equal(j.dims, 1024);
    allClose(
      [j.totalPer28x28.mean, j.totalPer28x28.stdErr],
      [(j.total.mean * 1024) / 784, (j.total.stdErr * 1024) / 784],
      1e-12,
      0,
      '28x28',
    );
    // mnist:test is a subset of the 10,000 digits a model trained on 'mnist' saw: the same note, and how to
    // get a held-out split
    const sub = ok(
      await ddpm([
        'bpd',
        '--model',
        model,
        '--data',
        'mnist:test',
        '--n',
        '2',
        '--batch',
        '2',
        '--threads',
        '1',
      ]),
    );
    assert.match(
      sub.stderr,
      /trained on mnist, which holds the images of mnist:test: this is not held-out.*--data mnist:train/,
    );
  });
});
