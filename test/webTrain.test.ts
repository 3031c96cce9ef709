// Training in the page (Ho et al. 2020, Algorithm 1; issue 17 item 1) in headless Chromium (playwright-core,
// Debian's /usr/bin/chromium), served by the demo server (COOP/COEP: cross-origin isolated, wasm threads):
// - the Train section trains the tiny default model for a few dozen steps in the worker: the loss falls
//   (mean of the first steps against the last, with a margin), steps/s, samples, pause and resume, the
//   loss curve's text alternative, an aria-live status, and the page's thread is never blocked; the trained
//   model then draws in the Drawing section;
// - one step's gradient (every parameter) and the weights, EMA and Adam moments after it match Node's
//   trainer (ddpm train's train() on the native engine) for the same data, seed and weights, to float
//   rounding (allClose), and the random streams and data position are identical;
// - a checkpoint downloaded from the page resumes in `node bin/ddpm.mjs train --run DIR` (with the options
//   the page prints) at its step, and the next step there matches the page's; a checkpoint of Node's
//   trainer uploaded to the page continues at its step and matches Node's continuation;
// - a picked folder of images trains in the page and its checkpoint resumes in `ddpm train --data folder:`;
// - on WebGPU, when Chromium offers an adapter: a short training run agrees with wasm.
// Screenshot: /tmp/ddpm-web-train.png.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.mjs';
import { launchChromium, noChromium } from '../scripts/chromium.js';
import { startServer } from '../scripts/serve.mjs';
import { BatchLoader } from '../src/data/loader.js';
import { openDataset } from '../src/data/open.js';
import { nodeEngine } from '../src/engine/node.js';
import { diffusionFromSpec } from '../src/model/spec.js';
import { initParams } from '../src/nn/unet.js';
import { type CheckpointState, loadCheckpoint } from '../src/train/checkpoint.js';
import { decodeCheckpoint } from '../src/train/checkpointCodec.js';
import { cloneParams, newAdamState } from '../src/train/optim.js';
import { createTimestepSampler } from '../src/train/resample.js';
import { trainStep } from '../src/train/step.js';
import { createTrainSession } from '../src/train/trainGraph.js';
import { DEFAULT_TRAIN, type TrainOptions, train } from '../src/train/trainer.js';
import { allClose, compareClose } from '../src/util/allclose.js';
import { encodePng } from '../src/util/image.js';
import { Rng } from '../src/util/rng.js';
import { PAGE_TINY, type PageTrainConfig, pageRunOptions } from '../src/web/trainConfig.js';
import { ddpmIn, ROOT } from './ddpmProcess.js';

/** The page's default run (the tiny U-Net on 16x16 digits) with the test's seed. */
const CONFIG: PageTrainConfig = { ...PAGE_TINY, seed: 3 };

/**
 * Tolerances against Node (the native engine: fused GroupNorm + SiLU, blocked layout; the page: plain ONNX
 * on wasm): gradients (and Adam's moments, made of them) to float rounding, rtol 1e-3 and atol 1e-4 of the
 * tensor's largest value (floored at 1e-3 of the model's largest: a gradient that is 0 in exact arithmetic,
 * such as a bias before a GroupNorm, is all rounding). Adam's first update is
 * lr_1 g / (|g| + eps) per element (m and v hold g and g^2 alone), a sign function: where rounding moves a
 * gradient element that is ~0 by more than itself the update differs by up to 2 lr_1, so weights get
 * atol 2 lr_1 (lr_1 = lr / warmup), and at most 0.1% of them may differ by more than 1e-7.
 */
const GRAD_RTOL = 1e-3;
const GRAD_ATOL_SCALE = 1e-4;

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const f32 = (s: string): Float32Array => {
  const b = b64(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

/** Two checkpoints agree: the same state (step, random streams, data position) and weights to float rounding. */
function sameCheckpoint(page: CheckpointState, node: CheckpointState, lr1: number, what: string): string {
  const ps = page.meta.state as Record<string, unknown>;
  const ns = node.meta.state as Record<string, unknown>;
  assert.deepEqual(ps, ns, `${what}: the training state (step, rng, loader, adam step)`);
  assert.deepEqual(page.meta.identity, node.meta.identity, `${what}: the run's options`);
  const out: string[] = [];
  for (const [key, a, b, atol] of [
    ['params', page.params, node.params, 2 * lr1],
    ['ema', page.ema, node.ema, 2 * lr1],
    ['adam_m', page.adamM, node.adamM, 0],
    ['adam_v', page.adamV, node.adamV, 0],
  ] as const) {
    let n = 0;
    let off = 0;
    let worst = 0;
    const maxAbs = (v: Float32Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const all = Math.max(...[...b.values()].map(maxAbs));
    for (const [name, x] of a) {
      const y = b.get(name)!;
      // A tensor whose gradient is ~0 (a bias before a GroupNorm) holds rounding noise: scale floored.
      const scale = Math.max(maxAbs(y), 1e-3 * all);
      // moments: relative to the tensor's scale (they are built from the gradients)
      const tol = key.startsWith('adam') ? GRAD_ATOL_SCALE * scale : atol;
      allClose(x, y, key.startsWith('adam') ? GRAD_RTOL : 1e-5, tol, `${what}: ${key}.${name}`);
      const r = compareClose(x, y, 0, 1e-7);
      for (let i = 0; i < x.length; i++) if (Math.abs(x[i]! - y[i]!) > 1e-7) off++;
      n += x.length;
      worst = Math.max(worst, r.maxAbsErr);
    }
    if (key === 'params')
      assert.ok(off <= n / 1000, `${what}: ${off} of ${n} weights differ by more than 1e-7`);
    out.push(`${key}: max |diff| ${worst.toExponential(2)}, ${off} of ${n} beyond 1e-7`);
  }
  return out.join('; ');
}

/** What `ddpm train` options a page run's resume hint gives (its command line, the run folder replaced). */
function hintArgs(hint: string, runDir: string): string[] {
  const line = hint.split('\n').find((l) => l.startsWith('ddpm train '));
  assert.ok(line, `no ddpm train command in the hint: ${hint}`);
  return line
    .split(' ')
    .slice(2)
    .map((a) => (a === 'runs/page' ? runDir : a));
}

/** The trainer's options for a page run (ddpm train's defaults otherwise; no samples, one thread). */
/** `ddpm train` with the page's resume options, run in `cwd`: one thread, no grids, a checkpoint every step. */
function resumeInNode(cwd: string, args: string[]) {
  return ddpmIn(cwd)(['train', ...args, '--threads', '1', '--sample-every', '0', '--checkpoint-every', '1']);
}

function nodeOptions(runDir: string, steps: number): TrainOptions {
  const { init: _, ...o } = pageRunOptions(CONFIG); // a random initialisation: none
  return {
    ...DEFAULT_TRAIN,
    ...o,
    runDir,
    steps,
    checkpointEvery: 1,
    sampleEvery: 0,
    logEvery: 1,
    threads: 1,
  };
}

const text = (page: Page, id: string) =>
  page.evaluate((i) => document.getElementById(i)!.textContent ?? '', id);

describe('training in the page (onnxruntime-web in the worker, headless Chromium)', {
  skip: noChromium,
}, () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; close(): Promise<void> };
  let tmp: string;
  const pageErrors: string[] = [];

  before(async () => {
    await buildWeb();
    tmp = mkdtempSync(join(tmpdir(), 'ddpm-webtrain-'));
    server = await startServer({});
    browser = await launchChromium();
    page = await browser.newPage({ acceptDownloads: true });
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
    });
    await page.goto(`${server.url}/dist-web/`);
    await page.waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (pageErrors.length) console.log(`page messages:\n  ${pageErrors.join('\n  ')}`);
  });

  test('Train: a few dozen steps on wasm threads lower the loss; steps/s, samples, pause/resume, text alternatives', async (t) => {
    const env = await page.evaluate(() => ({
      isolated: crossOriginIsolated,
      threads: window.ddpmTest!.threads,
    }));
    assert.equal(env.isolated, true, 'the demo server makes the page cross-origin isolated');
    assert.ok(env.threads > 1, `wasm threads: ${env.threads}`);
    assert.match(await text(page, 'train'), /tiny/, 'the page says the model is a tiny one');
    const STEPS = 40;
    await page.fill('#trainUntil', String(STEPS));
    await page.fill('#trainSampleEvery', '20');
    await page.fill('#trainSeed', String(CONFIG.seed));
    await page.evaluate(() => {
      const w = window as unknown as { gaps: number[]; statuses: string[]; stopGaps: () => void };
      w.gaps = [];
      w.statuses = [];
      let last = performance.now();
      const id = setInterval(() => {
        const now = performance.now();
        w.gaps.push(now - last);
        last = now;
      }, 20);
      w.stopGaps = () => clearInterval(id);
      new MutationObserver(() =>
        w.statuses.push(document.getElementById('trainStatus')!.textContent ?? ''),
      ).observe(document.getElementById('trainStatus')!, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await page.click('#trainStart');
    // Pause after a few steps, check that no step is taken while paused, then resume.
    await page.waitForFunction(() => window.ddpmTest!.training().steps.length >= 5, undefined, {
      timeout: 120_000,
    });
    await page.click('#trainPause');
    await page.waitForFunction(() =>
      /^Paused at step \d+/.test(document.getElementById('trainStatus')!.textContent ?? ''),
    );
    const pausedAt = (await page.evaluate(() => window.ddpmTest!.training().steps.length)) as number;
    await page.waitForTimeout(1500);
    assert.equal(
      await page.evaluate(() => window.ddpmTest!.training().steps.length),
      pausedAt,
      'no step while paused',
    );
    assert.equal(await page.getAttribute('#trainPause', 'aria-pressed'), 'true');
    assert.equal(await text(page, 'trainPause'), 'Resume');
    await page.click('#trainPause');
    await page.waitForFunction(
      () => /^Done: step \d+/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      {
        timeout: 300_000,
      },
    );
    const r = await page.evaluate(() => {
      const w = window as unknown as { gaps: number[]; statuses: string[]; stopGaps: () => void };
      w.stopGaps();
      const s = document.getElementById('trainSamples') as HTMLCanvasElement;
      return {
        ...window.ddpmTest!.training(),
        gaps: w.gaps,
        statuses: w.statuses,
        live: document.getElementById('trainStatus')!.getAttribute('aria-live'),
        lossLabel: document.getElementById('lossCurve')!.getAttribute('aria-label'),
        samplesLabel: s.getAttribute('aria-label'),
        samplesWidth: s.width,
        stats: document.getElementById('trainStats')!.textContent,
        hint: document.getElementById('resumeHint')!.textContent,
      };
    });
    // (after the timer is stopped: the screenshot itself holds the page's thread)
    await page.screenshot({ path: '/tmp/ddpm-web-train.png', fullPage: true });
    assert.deepEqual(
      r.steps,
      Array.from({ length: STEPS }, (_, i) => i + 1),
      'every step once, in order',
    );
    const k = 10;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(r.losses.slice(0, k));
    const last = mean(r.losses.slice(-k));
    assert.ok(
      last < 0.6 * first,
      `loss: mean of the first ${k} steps ${first.toFixed(4)}, of the last ${k} ${last.toFixed(4)}`,
    );
    assert.equal(r.live, 'polite');
    assert.ok(
      r.statuses.some((x) => /^Training from step 0 to 40 on CPU \(WebAssembly\), \d+ threads/.test(x)),
      r.statuses.join(' | '),
    );
    assert.match(
      r.lossLabel ?? '',
      /^Loss curve over 40 steps \(steps 1 to 40\): mean of the first 10 [\d.]+, of the last 10 [\d.]+/,
    );
    assert.match(r.samplesLabel ?? '', /^16 samples of the model at step 40/);
    assert.equal(r.samplesWidth, 4 * 17 + 1, '16 samples of 16x16 in a 4x4 grid');
    assert.match(
      r.stats ?? '',
      /^Step 40 of 40 · loss [\d.]+ · [\d.]+ steps\/s on CPU \(WebAssembly\), \d+ threads/,
    );
    assert.match(
      r.hint ?? '',
      /ddpm train --run runs\/page --data mnist --channels 1 --resolution 16 --ch 32 .* --steps 41/,
    );
    const maxGap = Math.max(...r.gaps);
    assert.ok(maxGap < 250, `the page's thread was blocked for ${maxGap.toFixed(0)} ms while training`);
    // The trained model draws in the Drawing section (its EMA weights).
    await page.click('#trainUse');
    await page.waitForFunction(() =>
      /trained in this page \(step 40\)/.test(document.getElementById('modelInfo')!.textContent ?? ''),
    );
    await page.fill('#steps', '5');
    await page.fill('#n', '4');
    await page.click('#sample');
    await page.waitForFunction(
      () => /^(Done|Generating failed)/.test(document.getElementById('status')!.textContent ?? ''),
      undefined,
      {
        timeout: 120_000,
      },
    );
    assert.match(await text(page, 'status'), /^Done: 4 images/);
    assert.equal(
      await page.evaluate(() => (document.getElementById('current') as HTMLCanvasElement).width),
      2 * 18 + 2,
      "4 of the trained model's 16x16 images in a 2x2 grid",
    );
    t.diagnostic(
      `tiny U-Net (${r.info!.params} parameters), batch ${r.info!.batch}, wasm ${r.info!.threads} threads: ` +
        `${r.stepsPerSec.toFixed(2)} steps/s (last 10 steps); loss ${first.toFixed(4)} -> ${last.toFixed(4)} ` +
        `(means of the first and last ${k} of ${STEPS} steps); longest timer gap ${maxGap.toFixed(0)} ms`,
    );
  });
  test("one step: the gradient and the weights, EMA and Adam moments after it match Node's trainer", async (t) => {
    const web = await page.evaluate(
      (config) => window.ddpmTest!.trainRaw({ config, until: 1, provider: 'wasm', gradsAtStep: 1 }),
      CONFIG,
    );
    const webCk = decodeCheckpoint(
      b64((await page.evaluate(() => window.ddpmTest!.trainCheckpoint())).b64),
      'page',
    );
    // Node: train/step.ts from the trainer's starting point (the data, weights and random streams train() starts
    // from), on the native engine, for the gradient ...
    const o = pageRunOptions(CONFIG);
    const cfg = o.spec.unet;
    const params = initParams(cfg, 'paper', o.seed);
    const session = await createTrainSession(nodeEngine(), cfg, params, o.batch, 1);
    const ds = openDataset(o.data, { resolution: cfg.resolution, channels: 1 });
    const ref = await trainStep(
      {
        o,
        diffusion: diffusionFromSpec(o.spec.diffusion),
        loader: new BatchLoader(ds, { batchSize: o.batch, seed: o.seed, flip: o.flip }),
        timesteps: createTimestepSampler('uniform', o.spec.diffusion.T),
        session,
        rng: new Rng(o.seed + 1),
        params,
        ema: cloneParams(params),
        adam: newAdamState(params),
      },
      0,
    );
    allClose([web.losses[0]!], [ref.loss], 1e-5, 0, 'the loss of step 1');
    assert.ok(web.grads, 'the page sent the gradients of step 1');
    assert.deepEqual([...web.grads.names].sort(), [...ref.grads.keys()].sort());
    let worst = 0;
    const maxAbs = (v: Float32Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const all = Math.max(...[...ref.grads.values()].map(maxAbs));
    web.grads.names.forEach((name, i) => {
      const g = f32(web.grads!.b64[i]!);
      const r = ref.grads.get(name)!;
      // A gradient that is ~0 (a bias before a GroupNorm) holds rounding noise: its scale is floored.
      const scale = Math.max(maxAbs(r), 1e-3 * all);
      allClose(g, r, GRAD_RTOL, GRAD_ATOL_SCALE * scale, `the gradient of ${name}`);
      for (let k = 0; k < g.length; k++)
        worst = Math.max(worst, Math.abs(g[k]! - r[k]!) / Math.max(scale, 1e-30));
    });
    await session.release();
    // ... and ddpm train's trainer itself (train(), its run folder) for the weights after the step.
    const run = join(tmp, 'one-step');
    await train(nodeEngine(), nodeOptions(run, 1));
    const lr1 = CONFIG.lr / CONFIG.warmup;
    const diff = sameCheckpoint(
      webCk,
      loadCheckpoint(join(run, 'checkpoint.safetensors')),
      lr1,
      'after step 1',
    );
    t.diagnostic(
      `step 1: loss ${web.losses[0]!.toFixed(6)} (page) vs ${ref.loss.toFixed(6)} (Node); gradients: largest difference ` +
        `${worst.toExponential(2)} of the tensor's largest value (rtol ${GRAD_RTOL}, atol ${GRAD_ATOL_SCALE} x that); ${diff}`,
    );
  });

  test('a checkpoint downloaded from the page resumes in `ddpm train --run DIR` at its step; the next step matches', async (t) => {
    await page.fill('#trainUntil', '6');
    await page.fill('#trainSampleEvery', '0');
    await page.click('#trainNew'); // a new run from the form (the hook's run is replaced)
    await page.waitForFunction(
      () => /^Done: step 6\b/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      {
        timeout: 300_000,
      },
    );
    const run = join(tmp, 'from-page');
    mkdirSync(run, { recursive: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#trainDownload')]);
    assert.equal(download.suggestedFilename(), 'checkpoint.safetensors');
    await download.saveAs(join(run, 'checkpoint.safetensors'));
    assert.match(await text(page, 'trainStatus'), /^Downloaded the checkpoint of step 6 \([\d.]+ MB/);
    const hint = await page.evaluate(() => document.querySelector('#resumeHint code')!.textContent ?? '');
    const args = hintArgs(hint, run);
    assert.equal(args.at(-1), '7', 'the hint trains one step further');
    const res = await resumeInNode(ROOT, args);
    assert.equal(res.code, 0, `ddpm train failed:\n${res.stderr}`);
    assert.match(res.stderr + res.stdout, /resumed .* at step 6/);
    const node7 = loadCheckpoint(join(run, 'checkpoint.safetensors'));
    // The page's own step 7.
    await page.fill('#trainUntil', '7');
    await page.click('#trainStart'); // "Continue training"
    await page.waitForFunction(
      () => /^Done: step 7\b/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      {
        timeout: 300_000,
      },
    );
    const page7 = decodeCheckpoint(
      b64((await page.evaluate(() => window.ddpmTest!.trainCheckpoint())).b64),
      'page',
    );
    t.diagnostic(
      `step 7, page vs ddpm train resumed from the page's step 6: ${sameCheckpoint(page7, node7, CONFIG.lr / CONFIG.warmup, 'step 7')}`,
    );
    t.diagnostic(`ddpm train ${args.join(' ')}: ${(res.ms / 1000).toFixed(1)} s`);
  });

  test("a checkpoint of Node's trainer uploaded to the page continues at its step and matches Node's continuation", async (t) => {
    const run = join(tmp, 'from-node');
    await train(nodeEngine(), nodeOptions(run, 5));
    const file = join(tmp, 'node-step5.safetensors');
    copyFileSync(join(run, 'checkpoint.safetensors'), file);
    await page.fill('#trainUntil', '7');
    await page.setInputFiles('#trainUpload', file);
    await page.waitForFunction(
      () =>
        window.ddpmTest!.training().steps[0] === 6 &&
        /^Done: step 7\b/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      {
        timeout: 300_000,
      },
    );
    const seen = await page.evaluate(() => window.ddpmTest!.training());
    assert.deepEqual(seen.steps, [6, 7], 'the page went on from step 5');
    assert.equal(seen.info?.step, 7);
    const page7 = decodeCheckpoint(
      b64((await page.evaluate(() => window.ddpmTest!.trainCheckpoint())).b64),
      'page',
    );
    await train(nodeEngine(), nodeOptions(run, 7));
    t.diagnostic(
      `step 7, page (from Node's step 5) vs Node: ${sameCheckpoint(page7, loadCheckpoint(join(run, 'checkpoint.safetensors')), CONFIG.lr / CONFIG.warmup, 'step 7')}`,
    );
  });

  test('your own images: a picked folder trains in the page and resumes in `ddpm train --data folder:` on the same pixels', async (t) => {
    // 10 colour PNGs of 20x24 (resized and centre-cropped to 16x16 on both sides), one in a subfolder, a hidden one.
    const dir = join(tmp, 'shapes');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    const png = (i: number) => {
      const [w, h] = [20, 24];
      const px = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 3;
          px[o] = (x * 12 + i * 25) & 255;
          px[o + 1] = (y * 10 + i * 40) & 255;
          px[o + 2] = (x - 10) ** 2 + (y - 12) ** 2 < 16 + 4 * i ? 255 : 30;
        }
      return encodePng({ width: w, height: h, channels: 3, pixels: px });
    };
    for (let i = 0; i < 10; i++) writeFileSync(join(dir, i === 9 ? 'sub' : '', `img${i}.png`), png(i));
    writeFileSync(join(dir, '.hidden.png'), png(3));
    await page.selectOption('#trainData', 'images');
    // Dropped loose files (a drop without folder entries, as a synthetic drag gives): read by name. The
    // folder entries of a real drag cannot be made in a headless page; the folder is picked below instead.
    const dropped = [0, 1, 2].map((i) => Array.from(png(i)));
    await page.evaluate((pngs) => {
      const dt = new DataTransfer();
      pngs.forEach((b, i) => {
        dt.items.add(new File([new Uint8Array(b)], `drop${i}.png`, { type: 'image/png' }));
      });
      dt.items.add(new File(['not an image'], 'notes.txt', { type: 'text/plain' }));
      document
        .getElementById('dropZone')!
        .dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, dropped);
    await page.waitForFunction(() =>
      /^3 images from images ready/.test(document.getElementById('trainStatus')!.textContent ?? ''),
    );
    assert.match(await text(page, 'dropZone'), /^3 images from the folder images\. Drop another folder/);
    await page.setInputFiles('#trainPick', dir);
    await page.waitForFunction(() =>
      /images? from shapes ready/.test(document.getElementById('trainStatus')!.textContent ?? ''),
    );
    await page.fill('#trainUntil', '3');
    await page.fill('#trainSampleEvery', '3');
    assert.equal(await text(page, 'trainStart'), 'Start training', 'other data: a new run');
    await page.click('#trainStart');
    await page.waitForFunction(
      () =>
        window.ddpmTest!.training().steps[0] === 1 &&
        /^Done: step 3\b/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      { timeout: 300_000 },
    );
    const info = (await page.evaluate(() => window.ddpmTest!.training().info))!;
    assert.deepEqual(
      [info.data, info.images, info.channels, info.resolution],
      ['folder:shapes', 10, 3, 16],
      'the folder (hidden file skipped, subfolder searched) as colour 16x16 images',
    );
    const run = join(tmp, 'from-page-images');
    mkdirSync(run, { recursive: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#trainDownload')]);
    await download.saveAs(join(run, 'checkpoint.safetensors'));
    const hint = await page.evaluate(() => document.querySelector('#resumeHint code')!.textContent ?? '');
    const args = hintArgs(hint, run);
    assert.deepEqual(args.slice(0, 6), ['--run', run, '--data', 'folder:shapes', '--channels', '3']);
    // Run where the folder is, as the page says.
    const res = await resumeInNode(tmp, args);
    assert.equal(res.code, 0, `ddpm train failed:\n${res.stderr}`);
    assert.match(res.stderr + res.stdout, /resumed .* at step 3/);
    await page.fill('#trainUntil', '4');
    await page.click('#trainStart');
    await page.waitForFunction(
      () => /^Done: step 4\b/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      {
        timeout: 300_000,
      },
    );
    const page4 = decodeCheckpoint(
      b64((await page.evaluate(() => window.ddpmTest!.trainCheckpoint())).b64),
      'page',
    );
    const node4 = loadCheckpoint(join(run, 'checkpoint.safetensors'));
    t.diagnostic(
      `step 4 on the folder's images, page vs ddpm train --data folder:shapes: ${sameCheckpoint(page4, node4, CONFIG.lr / CONFIG.warmup, 'step 4')}`,
    );
    await page.selectOption('#trainData', 'digits');
  });

  test('webgpu: a short training run agrees with wasm (when Chromium has an adapter)', async (t) => {
    const gpu = await page.evaluate(() => window.ddpmTest!.webgpu());
    if (!gpu.ok) {
      t.skip(`no WebGPU adapter: ${gpu.info}`);
      console.log(`# webgpu training check skipped: no WebGPU adapter (${gpu.info})`);
      return;
    }
    // A smaller network (8x8, 8 channels, 4 groups): SwiftShader compiles every shader on the CPU.
    const config: PageTrainConfig = {
      ...CONFIG,
      resolution: 8,
      ch: 8,
      chMult: [1, 1],
      attn: [4],
      unet: { groups: 4 },
    };
    const run = (provider: 'wasm' | 'webgpu') =>
      page.evaluate((a) => window.ddpmTest!.trainRaw({ ...a, until: 3, gradsAtStep: 1 }), {
        config,
        provider,
      });
    const t0 = performance.now();
    const gpuRun = await run('webgpu');
    const gpuMs = performance.now() - t0;
    const wasm = await run('wasm');
    assert.deepEqual(gpuRun.steps, [1, 2, 3]);
    allClose(gpuRun.losses, wasm.losses, 1e-3, 1e-5, 'the losses of 3 steps, WebGPU vs wasm');
    gpuRun.grads!.names.forEach((name, i) => {
      const g = f32(gpuRun.grads!.b64[i]!);
      const w = f32(wasm.grads!.b64[wasm.grads!.names.indexOf(name)]!);
      const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      allClose(g, w, 1e-2, 1e-3 * scale, `step 1 gradient of ${name}, WebGPU vs wasm`);
    });
    t.diagnostic(
      `WebGPU on ${gpu.info}: 3 steps of an 8x8 U-Net in ${(gpuMs / 1000).toFixed(1)} s (with shader compilation; steps ` +
        `${gpuRun.stepMs.map((m) => m.toFixed(0)).join(', ')} ms), wasm ${wasm.stepMs.map((m) => m.toFixed(0)).join(', ')} ms`,
    );
  });
});
