// `ddpm sample --out DIR/` end to end, spawned as users run it: one PNG per image, whose pixels are the images
// `ddpm eval` draws (image i from noise stream (seed, i); recomputed here in-process through the same
// engine, 8-bit as PNGs are); a stopped or thinned folder is completed with the very same bytes; a folder of
// another sampling, or one ddpm sample did not write, is refused with what to do.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decode } from 'fast-png';
import { SHIPPED_MODEL } from '../src/cli/modelOption.js';
import { nodeEngine } from '../src/engine/node.js';
import { modelImages } from '../src/eval/imageSource.js';
import { diffusionFromSpec } from '../src/model/spec.js';
import { loadModel } from '../src/model/weights.js';
import { createDenoiser } from '../src/sample/denoiser.js';
import { toByte } from '../src/util/image.js';
import { ddpmInTemp, startDdpm } from './ddpmProcess.js';

const { dir: TMP, ddpm } = ddpmInTemp('ddpm-sample-dir-');
const ARGS = ['--sampler', 'ddim', '--steps', '5', '--batch', '4', '--threads', '1'];

const pngBytes = (path: string) => decode(readFileSync(path)).data as Uint8Array;

describe('ddpm sample --out DIR/', () => {
  it("writes one PNG per image: ddpm eval's images (noise stream (seed, i)), 8-bit", async () => {
    const r = await ddpm(['sample', ...ARGS, '--n', '6', '--out', 'a/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote 6 images to a\/ \(6 in all, 000000\.png\.\.000005\.png\): ddim, 5 steps/);
    assert.deepEqual(readdirSync(join(TMP, 'a')).sort(), [
      '000000.png',
      '000001.png',
      '000002.png',
      '000003.png',
      '000004.png',
      '000005.png',
      'sampling.json',
    ]);
    const rec = JSON.parse(readFileSync(join(TMP, 'a', 'sampling.json'), 'utf8'));
    assert.equal(rec.sampler, 'ddim-5');
    assert.equal(rec.seed, 0);
    // The same images in-process, drawn in another batch split (3 + 3): equal bytes up to a rounding step.
    const model = loadModel(SHIPPED_MODEL);
    const cfg = model.spec.unet;
    const den = await createDenoiser(nodeEngine(), cfg, model.params, 3, { threads: 1 });
    try {
      const src = modelImages(
        diffusionFromSpec(model.spec.diffusion),
        den.denoise,
        [cfg.inChannels, cfg.resolution, cfg.resolution],
        6,
        { sampler: 'ddim', steps: 5, eta: 0, seed: 0 },
        'test',
      );
      const per = cfg.resolution * cfg.resolution;
      let exact = 0;
      for (const start of [0, 3]) {
        const x = await src.images(start, 3);
        for (let k = 0; k < 3; k++) {
          const png = pngBytes(join(TMP, 'a', `00000${start + k}.png`));
          assert.equal(png.length, per);
          for (let p = 0; p < per; p++) {
            const want = toByte(x.data[k * per + p]!);
            assert.ok(Math.abs(png[p]! - want) <= 1, `image ${start + k} pixel ${p}: ${png[p]} vs ${want}`);
            if (png[p] === want) exact++;
          }
        }
      }
      assert.ok(exact >= 0.99 * 6 * per, `${exact} of ${6 * per} pixels exact`);
    } finally {
      await den.release();
    }
  });

  it('goes on: missing images are drawn again with the same bytes, a larger --n adds the rest', async () => {
    copyFileSync(join(TMP, 'a', '000001.png'), join(TMP, 'kept1.png'));
    rmSync(join(TMP, 'a', '000001.png'));
    const r = await ddpm(['sample', ...ARGS, '--n', '10', '--out', 'a/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /a\/ holds 5 of the 10 images already: drawing the other 5/);
    assert.match(r.stdout, /wrote 5 images to a\/ \(10 in all/);
    assert.deepEqual(pngBytes(join(TMP, 'a', '000001.png')), pngBytes(join(TMP, 'kept1.png')));
    const again = await ddpm(['sample', ...ARGS, '--n', '10', '--out', 'a/']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /a\/: all 10 images are there/);
  });

  it('Ctrl-C stops after the current batch; the images written stay and the command goes on', async () => {
    const slow = ['--sampler', 'ddim', '--steps', '100', '--batch', '2', '--threads', '1', '--n', '6'];
    const started = startDdpm(['sample', ...slow, '--out', 'c/'], { cwd: TMP });
    const t0 = performance.now();
    while (!/sample/.test(started.stderr()) && performance.now() - t0 < 60_000) {
      await new Promise((res) => setTimeout(res, 50));
    }
    await new Promise((res) => setTimeout(res, 300));
    started.child.kill('SIGINT');
    const stopped = await started.done;
    assert.equal(stopped.code, 130, stopped.stderr);
    const m = /stopped by SIGINT: (\d) of 6 images are in c\/; run the same command again/.exec(
      stopped.stderr,
    );
    assert.ok(m, stopped.stderr);
    const pngs = readdirSync(join(TMP, 'c')).filter((f) => f.endsWith('.png'));
    assert.equal(pngs.length, Number(m[1]));
    assert.ok(pngs.length % 2 === 0 && pngs.length < 6, `whole batches: ${pngs.length}`);
    const rest = await ddpm(['sample', ...slow, '--out', 'c/']);
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(readdirSync(join(TMP, 'c')).filter((f) => f.endsWith('.png')).length, 6);
  });

  it('ddpm eval --samples scores the folder as the model run it came from, and names that run', async () => {
    const common = ['--ref', 'mnist', '--n', '10', '--threads', '1', '--batch', '4'];
    const dir = await ddpm(['eval', 'fid', '--samples', 'a', ...common, '--log', 'dir.jsonl']);
    assert.equal(dir.code, 0, dir.stderr);
    const run = await ddpm(['eval', 'fid', ...ARGS, ...common, '--checkpoint', 'none', '--log', 'run.jsonl']);
    assert.equal(run.code, 0, run.stderr);
    const rec = (f: string) => JSON.parse(readFileSync(join(TMP, f), 'utf8').trim());
    const a = rec('dir.jsonl');
    const b = rec('run.jsonl');
    assert.equal(a.protocol.images.drawnBy.sampler, 'ddim-5');
    assert.equal(a.protocol.images.drawnBy.weightsHash, b.protocol.images.weightsHash);
    const fid = (r: { results: Record<string, number> }) =>
      Object.entries(r.results).find(([k]) => k.startsWith('FID['))![1];
    // The same 10 images, once as floats and once as 8-bit PNGs: the rounding moves FID by well under 2%.
    assert.ok(Math.abs(fid(a) - fid(b)) <= 0.02 * fid(b), `folder ${fid(a)} vs model ${fid(b)}`);
  });

  it('refuses a folder of another sampling, or one it did not write, naming what differs', async () => {
    const seed = await ddpm(['sample', ...ARGS, '--n', '2', '--seed', '5', '--out', 'a/']);
    assert.equal(seed.code, 2);
    assert.match(
      seed.stderr,
      /--out a\/: it holds images of another sampling \(seed: 0 there, 5 here\); pass another folder/,
    );
    mkdirSync(join(TMP, 'mine'));
    writeFileSync(join(TMP, 'mine', 'notes.txt'), 'x');
    const foreign = await ddpm(['sample', ...ARGS, '--n', '2', '--out', 'mine/']);
    assert.equal(foreign.code, 2);
    assert.match(foreign.stderr, /--out mine\/: it is not empty and has no sampling\.json/);
    assert.deepEqual(readdirSync(join(TMP, 'mine')), ['notes.txt'], 'nothing written there');
    const gif = await ddpm(['sample', ...ARGS, '--n', '2', '--out', 'g/', '--gif', 'x.gif']);
    assert.equal(gif.code, 2);
    assert.match(gif.stderr, /--gif and --progressive .* not a folder/);
  });
});
