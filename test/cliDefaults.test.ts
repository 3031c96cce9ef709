// The `ddpm` command's defaults end to end (issue 15, item 6): -h for every command and subcommand,
// --version from package.json, "did you mean" for mistyped commands and options, the jsd schedule
// (beta_T = 1) refused with its reason before any work, image folders trained in colour when they have it,
// a run shorter than --sample-every drawing one small grid with a progress line.

import assert from 'node:assert/strict';
import {
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
import { after, describe, it } from 'node:test';
import { decode, encode } from 'fast-png';
import { sourceChannels } from '../src/data/open.js';
import { ddpmIn, ROOT, type Run } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-defaults-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const ddpm = ddpmIn(TMP);

/** A folder of n 20x20 RGB PNGs; gray ones have R = G = B everywhere. */
function pngFolder(name: string, n: number, gray: boolean): string {
  const dir = join(TMP, name);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(20 * 20 * 3);
    for (let p = 0; p < 400; p++) {
      const v = (p * 7 + i * 31) % 256;
      data.set(gray ? [v, v, v] : [v, 255 - v, (v * 3) % 256], p * 3);
    }
    writeFileSync(join(dir, `img${i}.png`), encode({ width: 20, height: 20, data, channels: 3, depth: 8 }));
  }
  return dir;
}

/** A tiny training run (16x16, T = 20, 0.7M parameters), one ORT thread, no sample grids. */
function tinyTrain(run: string, ...more: string[]): string[] {
  return [
    'train',
    ...['--run', run, '--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8'],
    ...['--resolution', '16', '--T', '20', '--batch', '2', '--steps', '1', '--threads', '1'],
    ...more,
  ];
}

/** Runs the argument lists two at a time (two cores; each spawn mostly loads modules). */
async function both(list: readonly (readonly string[])[]): Promise<Run[]> {
  const out: Run[] = [];
  for (let i = 0; i < list.length; i += 2) out.push(...(await Promise.all(list.slice(i, i + 2).map(ddpm))));
  return out;
}

describe('ddpm defaults', () => {
  it('-h shows the help of every command and subcommand', async () => {
    const cases: [string[], RegExp][] = [
      [['train', '-h'], /usage: ddpm train/],
      [['sample', '-h'], /usage: ddpm sample/],
      [['bpd', '-h'], /usage: ddpm bpd/],
      [['interpolate', '-h'], /usage: ddpm interpolate/],
      [['export', '-h'], /ddpm export/],
      [['eval', 'fid', '-h'], /ddpm eval <metrics>/],
      [['eval', 'stats', '-h'], /usage: ddpm eval stats/],
      [['eval', 'merge', '-h'], /ddpm eval merge/],
      [['eval', 'classifier', '-h'], /ddpm eval classifier/],
      [['help', 'sample'], /usage: ddpm sample/],
    ];
    const runs = await both(cases.map((c) => c[0]));
    runs.forEach((r, i) => {
      const [args, says] = cases[i]!;
      assert.equal(r.code, 0, `ddpm ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, says, `ddpm ${args.join(' ')}`);
      assert.match(r.stdout, /-h, --help/, `ddpm ${args.join(' ')}`);
    });
  });

  it('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const [r] = await both([['--version']]);
    assert.equal(r!.code, 0, r!.stderr);
    assert.equal(r!.stdout.trim(), `ddpm-ts ${pkg.version}`);
  });

  it('suggests the nearest command or option for a typo', async () => {
    const cases: [string[], string][] = [
      [['sampel'], "unknown command 'sampel' (did you mean 'sample'?)"],
      [['--verison'], "(did you mean '--version'?)"],
      [['sample', '--stpes', '3'], "Unknown option '--stpes' (did you mean '--steps'?)"],
      [['train', '--scheduel', 'linear'], "(did you mean '--schedule'?)"],
      [['eval', 'stats', '--dat', 'mnist'], "(did you mean '--data'?)"],
    ];
    const runs = await both(cases.map((c) => c[0]));
    runs.forEach((r, i) => {
      const [args, says] = cases[i]!;
      assert.equal(r.code, 2, `ddpm ${args.join(' ')}`);
      assert.ok(r.stderr.includes(says), `ddpm ${args.join(' ')}: ${r.stderr}`);
    });
    const [none] = await both([['frobnicate']]);
    assert.equal(none!.code, 2);
    assert.doesNotMatch(none!.stderr, /did you mean/);
  });

  it('refuses --schedule jsd with the reason, before creating the run', async () => {
    const run = join(TMP, 'jsd');
    const [r] = await both([tinyTrain(run, '--schedule', 'jsd', '--sample-every', '0')]);
    assert.equal(r!.code, 2, r!.stderr);
    assert.match(r!.stderr, /--schedule jsd is not supported: its last beta is 1/);
    assert.match(r!.stderr, /NaN/);
    assert.equal(existsSync(run), false);
  });

  it("trains an image folder with the data's own channels and says which it chose", async () => {
    const colour = pngFolder('colour', 4, false);
    const gray = pngFolder('gray', 4, true);
    assert.equal(sourceChannels(`folder:${colour}`).channels, 3);
    assert.equal(sourceChannels(gray).channels, 1);
    assert.equal(sourceChannels('mnist').channels, 1);
    const [c, g] = await both([
      tinyTrain(join(TMP, 'run-colour'), '--data', `folder:${colour}`, '--sample-every', '0'),
      tinyTrain(join(TMP, 'run-gray'), '--data', `folder:${gray}`, '--sample-every', '0'),
    ]);
    assert.equal(c!.code, 0, c!.stderr);
    assert.equal(g!.code, 0, g!.stderr);
    assert.match(
      c!.stderr,
      /holds colour images \(4 of 4 looked at\): training with 3 channels \(RGB\); pass --channels 1/,
    );
    assert.match(
      g!.stderr,
      /holds grayscale images .*: training with 1 channel \(grayscale\); pass --channels 3/,
    );
    const inChannels = (run: string) =>
      (
        JSON.parse(readFileSync(join(TMP, run, 'model', 'config.json'), 'utf8')) as {
          unet: { inChannels: number };
        }
      ).unet.inChannels;
    assert.equal(inChannels('run-colour'), 3);
    assert.equal(inChannels('run-gray'), 1);
  });

  it('a run shorter than --sample-every draws one small grid with a progress line', async () => {
    const run = join(TMP, 'short');
    const [r] = await both([tinyTrain(run)]); // --sample-every: the default, 2000
    assert.equal(r!.code, 0, r!.stderr);
    assert.match(
      r!.stderr,
      /the run \(1 step\) is shorter than --sample-every 2000: one grid of 16 images from the raw weights/,
    );
    assert.match(r!.stderr, /samples \[#+\] 20\/20 network calls/);
    assert.deepEqual(readdirSync(join(run, 'samples')), ['step_000001.png']);
    const png = decode(readFileSync(join(run, 'samples', 'step_000001.png')));
    const side = (n: number) => n * 16 + (n + 1) * 2; // 4x4 images of 16 pixels, 2-pixel borders
    assert.equal(png.width, side(4), 'a 4x4 grid');
  });
});
