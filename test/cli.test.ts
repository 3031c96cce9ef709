// The `ddpm` command end to end (spawned as users run it, bin/ddpm.mjs): bad input to every command fails
// with exit code 2 (usage) or 1 (files, data) and a message naming the problem; --help lists each option;
// train (Algorithm 1) -> sample (Algorithm 2 / DDIM) -> bpd (eq. 5) -> interpolate (Fig. 8) on a tiny model.
// The bound of a model whose output conv is (nearly) zero, eps_theta = 0, is checked against its
// closed form (derived below, independently of src/diffusion).

import { exactNormalCdf } from '../src/diffusion/testing.js';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decode, encode } from 'fast-png';
import { BPD_OPTIONS } from '../src/cli/bpd.js';
import { INTERPOLATE_OPTIONS } from '../src/cli/interpolate.js';
import { SAMPLE_OPTIONS } from '../src/cli/sample.js';
import { TRAIN_OPTIONS } from '../src/cli/train.js';
import { openDataset } from '../src/data/open.js';
import { parseSafeTensors } from '../src/util/safetensors.js';
import { nativeKernelNames } from '../src/engine/native.js';
import { ddpmIn, ROOT, startDdpm } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-cli-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const ddpm = ddpmIn(TMP);

/** Run jobs two at a time (each spawn mostly loads modules; the machine has two cores). */
async function pool<T>(jobs: readonly (() => Promise<T>)[], width = 2): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

// Tiny model: 0.7M parameters, 16x16 digits, T = 50; one ORT thread everywhere.
const T = 50;
const RUN = join(TMP, 'run');
const MODEL = join(RUN, 'model');
const TRAIN = [
  'train',
  ...['--run', RUN, '--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8'],
  ...['--resolution', '16', '--T', String(T), '--batch', '4', '--steps', '2', '--checkpoint-every', '2'],
  // The original code's plain EMA: after two steps it is still the initialisation (eps_theta ~ 0).
  ...['--sample-every', '0', '--threads', '1', '--ema', '0.9999', '--no-ema-warmup'],
];

interface BadCase {
  readonly args: readonly string[];
  readonly code: 1 | 2;
  /** Every pattern must match stderr. */
  readonly says: readonly (RegExp | string)[];
}

const COMMANDS = {
  train: TRAIN_OPTIONS,
  sample: SAMPLE_OPTIONS,
  bpd: BPD_OPTIONS,
  interpolate: INTERPOLATE_OPTIONS,
} as const;

describe('ddpm', () => {
  before(async () => {
    const r = await ddpm(TRAIN);
    assert.equal(r.code, 0, `training the tiny model failed:\n${r.stderr}`);
    // Broken model folders for the error cases.
    const bad = (name: string, config: string) => {
      const dir = join(TMP, name);
      mkdirSync(dir);
      copyFileSync(join(MODEL, 'model.safetensors'), join(dir, 'model.safetensors'));
      writeFileSync(join(dir, 'config.json'), config);
    };
    bad('badjson', '{"format": "ddpm-ts/model/v1", "unet": {');
    const cfg = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'));
    bad('mismatch', JSON.stringify({ ...cfg, unet: { ...cfg.unet, ch: 64 } }));
    bad('noweights', JSON.stringify(cfg));
    rmSync(join(TMP, 'noweights', 'model.safetensors'));
  });

  it('rejects bad input to every command with the exit code and a message naming the problem', async () => {
    const cases: BadCase[] = [
      { args: ['frobnicate'], code: 2, says: ["unknown command 'frobnicate'", /interpolate/] },
      ...Object.keys(COMMANDS).map(
        (cmd): BadCase => ({
          args: [cmd, '--bogus', '1'],
          code: 2,
          says: ["Unknown option '--bogus'", `ddpm ${cmd} --help`],
        }),
      ),
      { args: ['train', '--steps', '1.5'], code: 2, says: ['--steps "1.5": expected an integer'] },
      { args: ['train', '--steps', 'ten'], code: 2, says: ['--steps "ten": expected an integer'] },
      { args: ['sample', '--steps', '2e3'], code: 2, says: ['--steps "2e3": expected an integer'] },
      { args: ['train', '--batch=-4'], code: 2, says: ['--batch "-4": must be at least 1'] },
      { args: ['train', '--batch', '-3'], code: 2, says: ['--batch needs a value', '--batch=-3'] },
      { args: ['train', '--lr=-1e-4'], code: 2, says: ['--lr "-1e-4": must be at least 0'] },
      {
        args: ['train', '--ch-mult', '1,two'],
        code: 2,
        says: ['--ch-mult "1,two": expected comma-separated'],
      },
      {
        args: ['train', '--schedule', 'cubic'],
        code: 2,
        says: ['--schedule "cubic": expected one of linear'],
      },
      { args: ['sample', '--n=-1'], code: 2, says: ['--n "-1": must be at least 1'] },
      {
        args: ['sample', '--sampler', 'lms'],
        code: 2,
        says: ['--sampler "lms": expected one of ddpm, ddim, dpm++2m, dpm++3m, euler, heun'],
      },
      { args: ['bpd', '--n', '0'], code: 2, says: ['--n "0": must be at least 1'] },
      { args: ['bpd', '--batch', '1.5'], code: 2, says: ['--batch "1.5": expected an integer'] },
      { args: ['interpolate', '--lambdas', '1'], code: 2, says: ['--lambdas "1": must be at least 2'] },
      { args: ['interpolate', '--a=-1'], code: 2, says: ['--a "-1": must be at least 0'] },
      { args: ['interpolate', '--t', '0'], code: 2, says: ['--t "0": must be at least 1'] },
      // Model folders: missing, config.json not JSON, config and weights that disagree, no weights.
      ...(['sample', 'bpd', 'interpolate'] as const).flatMap((cmd): BadCase[] => [
        {
          args: [cmd, '--model', join(TMP, 'nope')],
          code: 2,
          says: [`model ${join(TMP, 'nope')} does not exist`],
        },
        {
          args: [cmd, '--model', join(TMP, 'badjson'), '--threads', '1'],
          code: 1,
          says: [`${join(TMP, 'badjson', 'config.json')} is not valid JSON`],
        },
        {
          args: [cmd, '--model', join(TMP, 'mismatch'), '--threads', '1'],
          code: 1,
          says: [join(TMP, 'mismatch', 'model.safetensors'), /the config needs|does config.json match/],
        },
      ]),
      {
        args: ['sample', '--model', join(TMP, 'noweights')],
        code: 1,
        says: [`no model.safetensors in ${join(TMP, 'noweights')}`],
      },
      {
        args: ['sample', '--model', join(ROOT, 'README.md')],
        code: 1,
        says: [`model: ${join(ROOT, 'README.md')} is not a model`],
      },
      // A reference that is not there fails before the model's set-up.
      { args: ['eval', 'fid', '--ref', 'no-such-ref'], code: 1, says: ["unknown dataset 'no-such-ref'"] },
      { args: ['eval', 'fid', '--ref', join(TMP, 'none.npz')], code: 2, says: ['none.npz: no such file'] },
      // Data specs that do not exist: the error names them.
      {
        args: ['train', '--run', join(TMP, 'r2'), '--data', 'no-such-data', '--threads', '1'],
        code: 1,
        says: ["unknown dataset 'no-such-data'", "'mnist[:train|:test]'"],
      },
      {
        args: ['bpd', '--model', MODEL, '--data', join(TMP, 'missing', 'digits.idx')],
        code: 1,
        says: [`unknown dataset '${join(TMP, 'missing', 'digits.idx')}'`],
      },
      {
        args: ['interpolate', '--model', MODEL, '--data', `cifar10:${join(TMP, 'no-cifar')}`],
        code: 1,
        says: [`${join(TMP, 'no-cifar')} does not exist`],
      },
      // Out-of-range choices that depend on the model or the data.
      {
        args: ['interpolate', '--model', MODEL, '--t', String(T + 1)],
        code: 2,
        says: [`--t ${T + 1} is beyond this model's T = ${T}`],
      },
      {
        args: ['interpolate', '--model', MODEL, '--b', '10000'],
        code: 2,
        says: ['--b 10000 is out of range', '10000 images'],
      },
      {
        args: ['interpolate', '--model', MODEL, '--a-png', join(TMP, 'none.png')],
        code: 2,
        says: [`--a-png ${join(TMP, 'none.png')} does not exist`],
      },
    ];
    const results = await pool(cases.map((c) => () => ddpm(c.args)));
    cases.forEach((c, i) => {
      const r = results[i]!;
      const what = `ddpm ${c.args.join(' ')}`;
      assert.equal(r.code, c.code, `${what}: exit code ${r.code}, expected ${c.code}\n${r.stderr}`);
      for (const s of c.says) {
        if (typeof s === 'string')
          assert.ok(r.stderr.includes(s), `${what}: stderr lacks "${s}":\n${r.stderr}`);
        else assert.match(r.stderr, s, `${what}`);
      }
      assert.doesNotMatch(r.stderr, /\n\s+at .*\(/, `${what}: a stack trace instead of a message`);
    });
  });

  it('--help of every command lists its options', async () => {
    const entries = Object.entries(COMMANDS);
    const [top, ...rs] = await pool([
      () => ddpm(['--help']),
      ...entries.map(
        ([c]) =>
          () =>
            ddpm([c, '--help']),
      ),
    ]);
    assert.equal(top!.code, 0);
    for (const c of Object.keys(COMMANDS)) assert.match(top!.stdout, new RegExp(`^  ${c} `, 'm'));
    entries.forEach(([cmd, table], i) => {
      const r = rs[i]!;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith(`usage: ddpm ${cmd} [options]`), r.stdout);
      for (const opt of Object.keys(table)) {
        assert.match(r.stdout, new RegExp(`^  --${opt}\\b`, 'm'), `ddpm ${cmd} --help lacks --${opt}`);
      }
      assert.match(r.stdout, /^ {2}-h, --help\b/m, `ddpm ${cmd} --help lacks -h, --help`);
    });
  });

  it('sample writes the expected grid; same seed, same bytes; another seed, other images', async () => {
    const out = (name: string) => join(TMP, name);
    const common = ['sample', '--model', MODEL, '--n', '4', '--steps', '5', '--threads', '1'];
    const [a, b, c] = await pool([
      () => ddpm([...common, '--seed', '1', '--out', out('s1.png')]),
      () => ddpm([...common, '--seed', '1', '--out', out('s1b.png')]),
      () => ddpm([...common, '--seed', '2', '--out', out('s2.png')]),
    ]);
    for (const r of [a, b, c]) assert.equal(r!.code, 0, r!.stderr);
    assert.match(a!.stdout, /wrote .*s1\.png: 4 images, ddpm, 5 steps \(5 network calls/);
    const png = decode(readFileSync(out('s1.png')));
    // 4 images of 16x16 in a 2x2 grid with 2-pixel padding: 2 * (16 + 2) + 2 = 38.
    assert.deepEqual([png.width, png.height, png.channels, png.depth], [38, 38, 1, 8]);
    assert.ok(readFileSync(out('s1.png')).equals(readFileSync(out('s1b.png'))), 'same seed, same PNG');
    assert.ok(!readFileSync(out('s1.png')).equals(readFileSync(out('s2.png'))), 'other seed, other PNG');
  });

  it("--precision bf16: the bfloat16 convolutions where the CPU has AVX-512 BF16 (images near float32's), else an error naming what is missing", async () => {
    const mnist = join(ROOT, 'models', 'mnist');
    const common = ['sample', '--model', mnist, '--n', '4', '--steps', '5', '--threads', '1', '--seed', '3'];
    const out = (name: string) => join(TMP, name);
    const [f32, bf16, ortNode] = await pool([
      () => ddpm([...common, '--out', out('p-f32.png')]),
      () => ddpm([...common, '--precision', 'bf16', '--out', out('p-bf16.png')]),
      () =>
        startDdpm([...common, '--precision', 'bf16', '--out', out('p-ort.png')], {
          cwd: TMP,
          env: { DDPM_ENGINE: 'onnxruntime-node' },
        }).done,
    ]);
    assert.equal(ortNode!.code, 1, ortNode!.stderr);
    assert.match(
      ortNode!.stderr,
      /--precision bf16 needs .*AVX-512 BF16.*this engine has no Winograd kernels/,
    );
    assert.ok(!existsSync(out('p-ort.png')), 'nothing written');
    assert.equal(f32!.code, 0, f32!.stderr);
    if (!nativeKernelNames().includes('WinogradBf16')) {
      assert.equal(bf16!.code, 1, bf16!.stderr);
      assert.match(bf16!.stderr, /--precision bf16 needs .*AVX-512 BF16/);
      return;
    }
    assert.equal(bf16!.code, 0, bf16!.stderr);
    const a = decode(readFileSync(out('p-f32.png'))).data;
    const b = decode(readFileSync(out('p-bf16.png'))).data;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff += Math.abs(a[i]! - b[i]!);
    // the same noise, products rounded to 8 significant bits: the same digits, pixels a grey level or so
    // apart (mean 0.087 of 255 here)
    assert.ok(diff > 0 && diff / a.length < 1, `mean pixel difference ${diff / a.length} of 255`);
  });

  it('a model\'s config.json "sampling" is the default, said in one line; the options override it', async () => {
    const dir = join(TMP, 'recommended');
    cpSync(MODEL, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    cfg.sampling = { sampler: 'ddpm', steps: 3, varType: 'fixedsmall', basis: 'a test' };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const common = ['sample', '--model', dir, '--n', '2', '--threads', '1'];
    const [rec, own, ddim, bad] = await pool([
      () => ddpm([...common, '--out', join(TMP, 'rec.png')]),
      () => ddpm([...common, '--var-type', 'fixedlarge', '--out', join(TMP, 'own.png')]),
      () => ddpm([...common, '--sampler', 'ddim', '--steps', '2', '--out', join(TMP, 'ddim.png')]),
      () => ddpm([...common, '--sampler', 'ddim', '--var-type', 'fixedsmall', '--out', join(TMP, 'bad.png')]),
    ]);
    assert.equal(rec!.code, 0, rec!.stderr);
    assert.match(
      rec!.stderr,
      /ddpm, 3 steps, variance fixedsmall: the sampler, steps and variance this model recommends \(config\.json "sampling"; a test\)/,
    );
    assert.match(rec!.stdout, /2 images, ddpm, 3 steps, variance fixedsmall \(3 network calls/);
    assert.equal(own!.code, 0, own!.stderr);
    assert.match(own!.stdout, /2 images, ddpm, 3 steps \(3 network calls/);
    assert.ok(
      !readFileSync(join(TMP, 'rec.png')).equals(readFileSync(join(TMP, 'own.png'))),
      'the variance changes the images',
    );
    assert.equal(ddim!.code, 0, ddim!.stderr);
    assert.doesNotMatch(ddim!.stderr, /recommends/);
    assert.match(ddim!.stdout, /2 images, ddim, 2 steps \(2 network calls/);
    assert.equal(bad!.code, 2, bad!.stderr);
    assert.match(
      bad!.stderr,
      /--var-type fixedsmall is the ancestral chain's variance \(--sampler ddpm\); ddim does not use it/,
    );
    assert.equal(existsSync(join(TMP, 'bad.png')), false);
  });

  it('samples from a run folder or its checkpoint: EMA weights by default, raw ones on request', async () => {
    const out = (name: string) => join(TMP, name);
    // DDIM: deterministic, so two steps' worth of change in the raw weights shows in the bytes.
    const common = [
      'sample',
      '--sampler',
      'ddim',
      '--n',
      '4',
      '--steps',
      '3',
      '--threads',
      '1',
      '--seed',
      '3',
    ];
    const [m, r, c, raw, bad] = await pool([
      () => ddpm([...common, '--model', MODEL, '--out', out('m.png')]),
      () => ddpm([...common, '--model', RUN, '--out', out('r.png')]),
      () => ddpm([...common, '--model', join(RUN, 'checkpoint.safetensors'), '--out', out('c.png')]),
      () => ddpm([...common, '--model', RUN, '--weights', 'raw', '--out', out('raw.png')]),
      () => ddpm([...common, '--model', MODEL, '--weights', 'raw', '--out', out('bad.png')]),
    ]);
    for (const x of [m, r, c, raw]) assert.equal(x!.code, 0, x!.stderr);
    const bytes = (name: string) => readFileSync(out(name));
    assert.ok(bytes('r.png').equals(bytes('m.png')), 'run folder = its model/ (EMA) folder');
    assert.ok(bytes('c.png').equals(bytes('m.png')), 'checkpoint file = its run');
    // EMA 0.9999 after two steps is still the initialisation, not the trained raw weights.
    assert.ok(!bytes('raw.png').equals(bytes('m.png')), 'raw weights differ from the EMA');
    assert.equal(bad!.code, 2);
    assert.match(bad!.stderr, /--weights raw needs a training run folder/);
  });

  it('train writes sample grids, and raw-weight grids while the EMA still holds the initialisation', async () => {
    const run = (name: string, ema: string) =>
      ddpm(
        TRAIN.map((a) => (a === RUN ? join(TMP, name) : a === '0.9999' ? ema : a)).concat([
          '--sample-every',
          '2',
          '--steps',
          '2',
        ]),
      );
    const [slow, none, warm] = await pool([
      () => run('run-ema', '0.999'),
      () => run('run-noema', '0'),
      () =>
        ddpm(
          TRAIN.filter((a) => a !== '--no-ema-warmup')
            .map((a) => (a === RUN ? join(TMP, 'run-warm') : a))
            .concat(['--sample-every', '2', '--steps', '4']),
        ),
    ]);
    for (const r of [slow, none, warm]) assert.equal(r!.code, 0, r!.stderr);
    const files = (name: string) => readdirSync(join(TMP, name, 'samples')).sort();
    assert.deepEqual(files('run-ema'), ['step_000002.png', 'step_000002_raw.png']); // 0.999^2 of the init
    assert.deepEqual(files('run-noema'), ['step_000002.png']); // decay 0: the EMA is the raw weights
    assert.match(slow!.stderr + slow!.stdout, /raw weights; the EMA still holds 100% of the initialisation/);
    // With warmup (the default) the init's share is 2/11 * 3/12 = 4.5% after step 2 and
    // 2/11 * 3/12 * 4/13 * 5/14 = 0.5% after step 4: a raw grid only at step 2.
    assert.deepEqual(files('run-warm'), ['step_000002.png', 'step_000002_raw.png', 'step_000004.png']);
    assert.match(warm!.stderr + warm!.stdout, /the EMA still holds 5% of the initialisation/);
  });

  it('bpd of a model with eps_theta ~ 0 matches the closed-form bound', async () => {
    // After 2 steps the EMA (decay 0.9999) of the zero-initialised output conv is ~1e-8: eps_theta ~ 0.
    const w = parseSafeTensors(readFileSync(join(MODEL, 'model.safetensors'))).tensors;
    for (const k of ['conv_out.weight', 'conv_out.bias']) {
      const maxAbs = w.get(k)!.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(maxAbs < 1e-6, `${k}: max |w| = ${maxAbs}`);
    }
    const n = 8;
    const json = join(TMP, 'bpd.json');
    const r = await ddpm(['bpd', '--model', MODEL, '--n', String(n), '--threads', '1', '--json', json]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}total +\d+\.\d{4} +\+- \d/m);
    type Ms = { mean: number; stdErr: number };
    const rep = JSON.parse(readFileSync(json, 'utf8')) as Record<
      'prior' | 'klSum' | 'decoder' | 'total',
      Ms
    > & {
      n: number;
      T: number;
      perStep: number[];
    };
    assert.equal(rep.n, n);
    assert.equal(rep.T, T);
    assert.equal(rep.perStep.length, T);
    assert.ok(rep.total.mean > 0 && rep.total.mean < 20, `bpd ${rep.total.mean}`);
    const sum = rep.prior.mean + rep.klSum.mean + rep.decoder.mean;
    assert.ok(Math.abs(sum - rep.total.mean) < 1e-9, 'total = prior + KL terms + decoder');
    assert.ok(Math.abs(rep.decoder.mean - rep.perStep[0]!) < 1e-9, 'perStep[0] is the decoder');

    const ds = openDataset('mnist', { resolution: 16, channels: 1 });
    const exact = closedFormBpd(ds.pixels.subarray(0, n * 256), T);
    console.log(
      `# bpd: CLI ${rep.total.mean.toFixed(4)} +- ${rep.total.stdErr.toFixed(4)}, closed form ${exact.total.toFixed(4)} ` +
        `(prior ${exact.prior.toFixed(4)}, KL ${exact.kl.toFixed(4)}, decoder ${exact.decoder.toFixed(4)})`,
    );
    // The prior is deterministic; the rest is a Monte Carlo estimate (one x_t per image and step), whose
    // error the standard error over images bounds; 0.01 covers the tanh approximation of the normal CDF.
    assert.ok(Math.abs(rep.prior.mean - exact.prior) < 1e-5, `prior ${rep.prior.mean} vs ${exact.prior}`);
    for (const [got, want, name] of [
      [rep.klSum, exact.kl, 'KL terms'],
      [rep.decoder, exact.decoder, 'decoder'],
      [rep.total, exact.total, 'total'],
    ] as const) {
      const tol = 4 * got.stdErr + 0.01;
      assert.ok(Math.abs(got.mean - want) < tol, `${name}: ${got.mean} vs closed form ${want} (tol ${tol})`);
    }
  });

  it('interpolate writes the strip: source a, the decodes, source b', async () => {
    const out = join(TMP, 'interp.png');
    const r = await ddpm(['interpolate', '--model', MODEL, '--lambdas', '5', '--threads', '1', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`from t = ${T / 2}`));
    const png = decode(readFileSync(out));
    // 7 tiles of 16x16 in one row: 7 * (16 + 2) + 2 = 128 by 16 + 4 = 20.
    assert.deepEqual([png.width, png.height, png.channels], [128, 20, 1]);
    const ds = openDataset('mnist', { resolution: 16, channels: 1 });
    const tile = (k: number) => {
      const t = new Uint8Array(256);
      for (let y = 0; y < 16; y++)
        for (let x = 0; x < 16; x++) t[y * 16 + x] = png.data[(2 + y) * 128 + 2 + k * 18 + x]!;
      return t;
    };
    assert.deepEqual(tile(0), ds.bytes(0), 'first tile: source a (MNIST #0)');
    assert.deepEqual(tile(6), ds.bytes(1), 'last tile: source b (MNIST #1)');
    // From PNG files of any size (resized and centre-cropped to the model's 16x16): an RGB gradient, and the strip.
    const grad = new Uint8Array(24 * 30 * 3).map((_, i) => (i * 7) % 256);
    writeFileSync(join(TMP, 'grad.png'), encode({ width: 24, height: 30, data: grad, channels: 3 }));
    const r2 = await ddpm([
      ...['interpolate', '--model', MODEL, '--a-png', join(TMP, 'grad.png'), '--b-png', out],
      ...['--t', '3', '--lambdas', '2', '--threads', '1', '--out', join(TMP, 'interp2.png')],
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    const png2 = decode(readFileSync(join(TMP, 'interp2.png')));
    assert.deepEqual([png2.width, png2.height], [4 * 18 + 2, 20]);
  });
});

// ---- The closed-form bound when eps_theta = 0 (paper eqs. 4-7, 13; fixedlarge variances, clipped x_0) ----
// With eps_theta = 0 the x_0 prediction is clip(x_t / sqrt(abar_t)) = clip(x_0 + s_t eps), s_t = sqrt(1/abar_t - 1),
// and mu_theta - mu~ = c1_t (clip(x_0 + s_t eps) - x_0). Per pixel, in nats:
//   L_T     = 0.5 (-1 - log(1 - abar_T) + (1 - abar_T) + abar_T x_0^2)
//   L_{t-1} = 0.5 (-1 + log(b_t / b~_t) + b~_t / b_t + c1_t^2 M(x_0, s_t) / b_t),  t = 2..T
//   M(x0, s) = E (x0 - clip(x0 + s eps))^2 = (x0+1)^2 Phi(lo) + (1-x0)^2 (1 - Phi(hi)) + s^2 (Phi(hi) - Phi(lo) - hi phi(hi) + lo phi(lo)),
//              lo = (-1 - x0) / s, hi = (1 - x0) / s
//   L_0     = E -log P(x_0 | N(clip(x_0 + s_1 eps), b~_2)) over the 256 bins (edge bins open), by quadrature.
function erfc(x: number): number {
  return 2 * exactNormalCdf(-x * Math.SQRT2); // erfc(x) = 2 Phi(-x sqrt 2)
}
const Phi = (z: number) => 0.5 * erfc(-z / Math.SQRT2);
const phi = (z: number) => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);

function closedFormBpd(bytes: Uint8Array, T: number) {
  const b = Array.from({ length: T }, (_, i) => 1e-4 + ((0.02 - 1e-4) * i) / (T - 1)); // linear, paper
  const abar: number[] = [];
  let acc = 1;
  for (const bi of b) {
    acc *= 1 - bi;
    abar.push(acc);
  }
  const prev = (i: number) => (i === 0 ? 1 : abar[i - 1]!);
  const bt = b.map((bi, i) => (bi * (1 - prev(i))) / (1 - abar[i]!));
  const c1 = b.map((bi, i) => (bi * Math.sqrt(prev(i))) / (1 - abar[i]!));
  const s = abar.map((a) => Math.sqrt((1 - a) / a));
  const M = (x0: number, sd: number) => {
    const lo = (-1 - x0) / sd;
    const hi = (1 - x0) / sd;
    return (
      (x0 + 1) ** 2 * Phi(lo) +
      (1 - x0) ** 2 * (1 - Phi(hi)) +
      sd * sd * (Phi(hi) - Phi(lo) - hi * phi(hi) + lo * phi(lo))
    );
  };
  const sigma0 = Math.sqrt(bt[1]!); // the decoder's variance: b~ of the paper's t = 2 (fixedlarge)
  const decoder = (x0: number) => {
    const h = 0.002; // trapezoid over eps in [-10, 10]
    let sum = 0;
    for (let k = -5000; k <= 5000; k++) {
      const e = k * h;
      const mean = Math.min(1, Math.max(-1, x0 + s[0]! * e));
      const up = Phi((x0 + 1 / 255 - mean) / sigma0);
      const dn = Phi((x0 - 1 / 255 - mean) / sigma0);
      const p = x0 < -0.999 ? up : x0 > 0.999 ? 1 - dn : up - dn;
      sum += (Math.abs(k) === 5000 ? 0.5 : 1) * h * phi(e) * -Math.log(Math.max(p, 1e-12));
    }
    return sum;
  };
  const count = new Float64Array(256);
  for (const v of bytes) count[v]!++;
  const aT = abar[T - 1]!;
  let prior = 0;
  let kl = 0;
  let dec = 0;
  for (let v = 0; v < 256; v++) {
    if (!count[v]) continue;
    const x0 = v / 127.5 - 1;
    const wgt = count[v]! / bytes.length / Math.LN2; // nats -> bits, mean over pixels and images
    prior += wgt * 0.5 * (-1 - Math.log(1 - aT) + (1 - aT) + aT * x0 * x0);
    for (let i = 1; i < T; i++) {
      kl +=
        wgt * 0.5 * (-1 + Math.log(b[i]! / bt[i]!) + bt[i]! / b[i]! + (c1[i]! ** 2 * M(x0, s[i]!)) / b[i]!);
    }
    dec += wgt * decoder(x0);
  }
  return { prior, kl, decoder: dec, total: prior + kl + dec };
}
