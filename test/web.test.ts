// The browser demo in headless Chromium (playwright-core, Debian's /usr/bin/chromium): builds dist-web/,
// serves it with the demo server (COOP/COEP: cross-origin isolated) on an ephemeral port and checks
// - that onnxruntime-web, in the page's worker, computes what onnxruntime-node computes for the same
//   TypeScript-built graph: the U-Net forward of a hash-initialised model (wasm; WebGPU against wasm and
//   Node when Chromium gives an adapter) and short runs of three samplers from a model folder over HTTP;
// - that wasm runs on more than one thread when isolated, and says why not otherwise;
// - the page as a user meets it, with the shipped MNIST model: Generate runs in the worker while the page
//   stays responsive (timer gaps under 200 ms), with a progress bar, an aria-live status and text
//   alternatives; Load during a run and a failed load keep the run and the working model; bad query
//   values give a message and the default; the settings follow in the URL; nothing scrolls sideways at a
//   phone's width. Screenshots: /tmp/ddpm-web-progress.png, /tmp/ddpm-web-done.png, /tmp/ddpm-web-phone.png.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decode } from 'fast-png';
import type { Browser, Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.mjs';
import { launchChromium, noChromium } from '../scripts/chromium.js';
import { MIME, startServer } from '../scripts/serve.mjs';
import { nodeEngine } from '../src/engine/node.js';
import type { ModelSpec } from '../src/model/spec.js';
import { PAPER_DIFFUSION } from '../src/model/spec.js';
import { loadModel, saveDiffusers, saveModel } from '../src/model/weights.js';
import { initParams, SMALL_UNET, TINY_UNET, type UNetConfig } from '../src/nn/unet.js';
import { allClose, relErr } from '../src/util/allclose.js';
import { fixtureForward, sampleImages, type WebSampler } from '../src/web/core.js';

const FORWARD_BATCH = 2;
const SAMPLE = { seed: 7, steps: 5, n: 4 };
/**
 * The WebGPU check's model: every op of the U-Net (two levels, down/upsampling, attention) at 8x8 with
 * 8 channels. Headless Chromium's adapter is usually SwiftShader (WebGPU on the CPU), where compiling
 * the shaders dominates: a few tens of seconds for this model, minutes for SMALL_UNET.
 */
const WEBGPU_UNET: UNetConfig = {
  ...TINY_UNET,
  resolution: 8,
  ch: 8,
  chMult: [1, 1],
  attnResolutions: [4],
  groups: 4,
};

const text = (page: Page, id: string) =>
  page.evaluate((i) => document.getElementById(i)!.textContent ?? '', id);

/**
 * A plain static host for dist-web/ (at /) and a model folder (at /model/), without the COOP/COEP headers:
 * what any static host does by default.
 */
function plainStaticServer(web: string, model: string): Promise<{ url: string; close(): Promise<void> }> {
  const srv: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.startsWith('/model/')
      ? join(model, path.slice('/model/'.length))
      : join(web, path === '/' ? 'index.html' : path);
    if (path.includes('..') || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const ext = file.slice(file.lastIndexOf('.'));
    res.writeHead(200, { 'content-type': MIME[ext] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) =>
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      ok({
        url: `http://localhost:${port}`,
        close: () =>
          new Promise<void>((done) => {
            srv.close(() => done());
            srv.closeAllConnections();
          }),
      });
    }),
  );
}

/** Wait until the status line says the run ended; returns it. */
/** The status that ended the run, read in the same check that saw it (a later message, such as a load
 * finishing, may replace it a moment after). */
async function runEnded(page: Page, timeout = 60_000): Promise<string> {
  const seen = await page.waitForFunction(
    () => {
      const status = document.getElementById('status')!.textContent ?? '';
      return /^(Done|Stopped)|failed/.test(status) ? status : false;
    },
    undefined,
    { timeout },
  );
  return (await seen.jsonValue()) as string;
}

describe('browser demo (onnxruntime-web in a worker, headless Chromium)', { skip: noChromium }, () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; close(): Promise<void> };
  let tmp: string;
  const pageErrors: string[] = [];

  const launch = launchChromium;

  const newPage = async (path: string): Promise<Page> => {
    const p = await browser.newPage();
    p.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
    });
    p.on('requestfailed', (r) => pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await p.goto(`${server.url}${path}`);
    await p.waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 20_000 });
    return p;
  };

  let webDir = '';

  before(async () => {
    const built = await buildWeb();
    webDir = built.outdir;
    const leaked = built.inputs.filter((p) => /^node:|onnxruntime-node|model\/weights|engine\/node/.test(p));
    assert.deepEqual(leaked, [], 'Node-only modules in the bundle');
    // A model folder for the numeric tests: the tiny U-Net with hash-initialised (non-zero) weights.
    // /model/ is the shipped MNIST model (the server's default), which the page loads by default.
    tmp = mkdtempSync(join(tmpdir(), 'ddpm-web-'));
    const spec: ModelSpec = { format: 'ddpm-ts/model/v1', unet: TINY_UNET, diffusion: PAPER_DIFFUSION };
    saveModel(join(tmp, 'model'), spec, initParams(TINY_UNET, 'fixture'));
    saveDiffusers(join(tmp, 'pipe'), spec, initParams(TINY_UNET, 'fixture'));
    server = await startServer({ mounts: { '/test-model/': join(tmp, 'model') } });
    browser = await launch();
    // A bad ?threads: a message, and all cores.
    page = await newPage('/dist-web/?threads=abc');
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (pageErrors.length) console.log(`page messages:\n  ${pageErrors.join('\n  ')}`);
  });

  test('isolated: wasm threads = cores; ?threads=abc says so and falls back; the worker bundle holds ORT', async () => {
    for (const [file, type] of [
      ['ort/ort-wasm-simd-threaded.wasm', 'application/wasm'],
      ['ort/ort-wasm-simd-threaded.mjs', 'text/javascript'],
      ['ort/ort-wasm-simd-threaded.jsep.mjs', 'text/javascript'],
      ['main.js', 'text/javascript'],
      ['worker.js', 'text/javascript'],
    ]) {
      const r = await fetch(`${server.url}/dist-web/${file}`, { method: 'HEAD' });
      assert.equal(r.status, 200, file);
      assert.ok(r.headers.get('content-type')?.startsWith(type), `${file}: ${r.headers.get('content-type')}`);
    }
    const env = await page.evaluate(() => ({
      isolated: crossOriginIsolated,
      hw: navigator.hardwareConcurrency,
      ...window.ddpmTest!.env,
      notices: document.getElementById('notices')!.textContent,
      runtime: document.getElementById('runtime')!.textContent,
    }));
    assert.equal(env.isolated, true, 'serve.mjs sends COOP/COEP');
    assert.equal(env.crossOriginIsolated, true, 'the worker is isolated too');
    assert.equal(env.threads, Math.min(16, env.hw), 'threads = navigator.hardwareConcurrency');
    if (env.hw > 1) assert.ok(env.threads > 1, `more than one thread (${env.threads})`);
    assert.match(env.notices ?? '', /\?threads=abc: "abc" is not a whole number.*Using all cores/);
    assert.match(env.runtime ?? '', new RegExp(`${env.threads} threads? of`));
    assert.doesNotMatch(env.runtime ?? '', /NaN/);
  });

  test('wasm: U-Net forward in the worker matches onnxruntime-node', async (t) => {
    // 4 reruns: V8 runs wasm in its baseline tier until the hot functions are re-optimised.
    const web = await page.evaluate(
      ({ cfg, batch }) => window.ddpmTest!.forward({ cfg, batch, provider: 'wasm', repeats: 4 }),
      { cfg: SMALL_UNET, batch: FORWARD_BATCH },
    );
    const ref = await fixtureForward(nodeEngine(), SMALL_UNET, FORWARD_BATCH, { threads: 2, repeats: 3 });
    assert.deepEqual(web.shape, [...ref.out.shape]);
    const scale = ref.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    allClose(web.out, ref.out.data, 1e-4, 1e-5 * scale, 'wasm forward vs onnxruntime-node');
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    t.diagnostic(
      `SMALL_UNET batch ${FORWARD_BATCH}: wasm (${await page.evaluate(() => window.ddpmTest!.threads)} threads) ` +
        `${med(web.forwardMs.slice(-2)).toFixed(1)} ms/forward (first ${web.firstMs.toFixed(0)} ms; setup ` +
        `${web.setupMs.toFixed(0)} ms incl. runtime init), Node (2 threads) ${med(ref.forwardMs).toFixed(1)} ms/forward; ` +
        `rel err ${relErr(web.out, ref.out.data).toExponential(2)}, |out| <= ${scale.toFixed(2)}`,
    );
  });

  for (const sampler of ['ddpm', 'ddim', 'dpm++2m'] as const satisfies readonly WebSampler[]) {
    test(`wasm: ${sampler} sampling in the worker from a served model folder matches the Node run`, async (t) => {
      const o = { ...SAMPLE, sampler };
      const web = await page.evaluate(
        (a) => window.ddpmTest!.sample({ modelUrl: '/test-model/', provider: 'wasm', ...a }),
        o,
      );
      const model = loadModel(join(tmp, 'model'));
      const ref = await sampleImages(nodeEngine(), model, { ...o, threads: 1 });
      assert.equal(web.stepsSeen, SAMPLE.steps);
      assert.equal(web.calls, ref.calls);
      assert.deepEqual(web.shape, [...ref.sample.shape]);
      // Node's AVX-512 builds run the 3x3 convolutions as Winograd F(4x4, 3x3), about ten times the rounding of
      // the browser's direct ones: dpm++2m's multistep chain carried it to 2.95e-4 (ddpm and ddim within 1e-4).
      allClose(web.sample, ref.sample.data, 1e-4, 6e-4, `${sampler} samples, browser vs Node`);
      t.diagnostic(
        `TINY_UNET ${sampler} ${SAMPLE.steps} steps x ${SAMPLE.n} images: browser ${web.sampleMs.toFixed(0)} ms ` +
          `(${web.threads} threads), Node ${ref.sampleMs.toFixed(0)} ms; rel err ${relErr(web.sample, ref.sample.data).toExponential(2)}`,
      );
    });
  }

  test('webgpu: U-Net forward agrees with wasm and onnxruntime-node (when Chromium has an adapter)', async (t) => {
    const gpu = await page.evaluate(() => window.ddpmTest!.webgpu());
    if (!gpu.ok) {
      t.skip(`no WebGPU adapter: ${gpu.info}`);
      return;
    }
    const run = (provider: 'wasm' | 'webgpu') =>
      page.evaluate(
        ({ cfg, batch, provider }) => window.ddpmTest!.forward({ cfg, batch, provider, repeats: 1 }),
        { cfg: WEBGPU_UNET, batch: FORWARD_BATCH, provider },
      );
    const web = await run('webgpu');
    const wasm = await run('wasm');
    const ref = await fixtureForward(nodeEngine(), WEBGPU_UNET, FORWARD_BATCH, { threads: 1, repeats: 0 });
    const scale = ref.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    allClose(web.out, ref.out.data, 1e-3, 1e-4 * scale, 'webgpu forward vs onnxruntime-node');
    allClose(web.out, wasm.out, 1e-3, 1e-4 * scale, 'webgpu forward vs wasm');
    // The page warns about a software adapter (SwiftShader here) when WebGPU is chosen.
    await page.selectOption('#backend', 'webgpu');
    const warn = await page.evaluate(() => ({
      hidden: document.getElementById('gpuWarning')!.hidden,
      option: document.querySelector('#backend option[value="webgpu"]')!.textContent,
    }));
    await page.selectOption('#backend', 'wasm');
    assert.equal(warn.hidden, !gpu.software, `software adapter warning (${gpu.info})`);
    if (gpu.software) assert.match(warn.option ?? '', /software/);
    t.diagnostic(
      `WebGPU on ${gpu.info}, ${WEBGPU_UNET.resolution}x${WEBGPU_UNET.resolution} ch ${WEBGPU_UNET.ch} U-Net: setup ${web.setupMs.toFixed(0)} ms, ` +
        `first forward ${web.firstMs.toFixed(0)} ms (shader compilation), then ${web.forwardMs[0]!.toFixed(1)} ms; ` +
        `rel err ${relErr(web.out, ref.out.data).toExponential(2)} vs Node, ${relErr(web.out, wasm.out).toExponential(2)} vs wasm`,
    );
  });

  test('Generate: the page stays responsive, with a progress bar, aria-live status and text alternatives', async (t) => {
    await page.waitForFunction(
      () => !(document.getElementById('sample') as HTMLButtonElement).disabled,
      undefined,
      {
        timeout: 20_000,
      },
    );
    assert.match(await text(page, 'modelInfo'), /handwritten digits \(MNIST\)/);
    // Defaults: DPM-Solver++(2M), 15 steps, 4 images (a first result in seconds).
    assert.equal(await page.inputValue('#sampler'), 'dpm++2m');
    assert.equal(await page.inputValue('#steps'), '15');
    assert.equal(await page.inputValue('#n'), '4');
    await page.fill('#steps', '6');
    await page.fill('#n', '4');
    await page.fill('#seed', '3');
    // The settings follow in the URL.
    // (backend=wasm when the WebGPU test above chose a backend on this page.)
    assert.match(
      await page.evaluate(() => location.search),
      /^\?steps=6&seed=3(&backend=wasm)?$/,
      'non-default settings only',
    );
    // Record timer gaps on the page's thread and every status text while the worker samples.
    await page.evaluate(() => {
      const w = window as unknown as {
        gaps: number[];
        statuses: string[];
        stopGaps: () => void;
        pauseGaps: boolean;
      };
      w.gaps = [];
      w.statuses = [];
      w.pauseGaps = false;
      let last = performance.now();
      const id = setInterval(() => {
        const now = performance.now();
        if (!w.pauseGaps) w.gaps.push(now - last);
        last = now;
      }, 20);
      w.stopGaps = () => clearInterval(id);
      new MutationObserver(() =>
        w.statuses.push(document.getElementById('status')!.textContent ?? ''),
      ).observe(document.getElementById('status')!, { childList: true, characterData: true, subtree: true });
    });
    await page.click('#sample');
    await page.waitForFunction(
      () => Number((document.getElementById('bar') as HTMLProgressElement).value) >= 2,
      undefined,
      {
        timeout: 30_000,
      },
    );
    const mid = await page.evaluate(() => ({
      bar: (document.getElementById('bar') as HTMLProgressElement).value,
      max: (document.getElementById('bar') as HTMLProgressElement).max,
      progress: document.getElementById('progressText')!.textContent,
    }));
    // (The screenshot itself stops the page's thread for a moment: not counted.)
    await page.evaluate(() => {
      (window as unknown as { pauseGaps: boolean }).pauseGaps = true;
    });
    await page.screenshot({ path: '/tmp/ddpm-web-progress.png', fullPage: true });
    await page.evaluate(() => {
      (window as unknown as { pauseGaps: boolean }).pauseGaps = false;
    });
    // A text input takes typing during the run.
    await page.click('#controls summary');
    await page.fill('#modelUrl', '');
    await page.type('#modelUrl', '/typed/');
    assert.equal(await page.inputValue('#modelUrl'), '/typed/');
    const done = await runEnded(page);
    const r = await page.evaluate(() => {
      const w = window as unknown as { gaps: number[]; statuses: string[]; stopGaps: () => void };
      w.stopGaps();
      const c = document.getElementById('current') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let bright = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i]! > 128) bright++;
      const status = document.getElementById('status')!;
      return {
        gaps: w.gaps,
        statuses: w.statuses,
        live: status.getAttribute('aria-live'),
        role: status.getAttribute('role'),
        label: c.getAttribute('aria-label'),
        role2: c.getAttribute('role'),
        stripLabel: document.getElementById('progress')!.getAttribute('aria-label'),
        width: c.width,
        strip: (document.getElementById('progress') as HTMLCanvasElement).width,
        bright,
        timing: document.getElementById('timing')!.textContent,
        save: (document.getElementById('save') as HTMLButtonElement).disabled,
      };
    });
    await page.screenshot({ path: '/tmp/ddpm-web-done.png', fullPage: true });
    assert.match(done, /^Done: 4 images, DPM-Solver\+\+ \(2M\), 6 steps, seed 3, in [\d.]+ s\.$/, done);
    assert.ok(mid.max === 6 && mid.bar >= 2 && mid.bar <= 6, `progress bar ${mid.bar}/${mid.max}`);
    assert.match(
      mid.progress ?? '',
      /^Step \d of 6 · [\d.]+ s elapsed · about [\d.]+ s left$/,
      mid.progress ?? '',
    );
    const maxGap = Math.max(...r.gaps);
    assert.ok(r.gaps.length > 10, 'the timer ran during sampling');
    // A page that ran a step on its own thread would stall the timer for a whole step (300-1000 ms here).
    // The bound scales with the step time the page measured, since a loaded machine delays the timer
    // and slows the steps alike: below 250 ms, or below 60% of a step when steps are slow.
    const stepMs = Number(/(\d+) ms per step/.exec(r.timing ?? '')?.[1] ?? Number.NaN);
    const bound = Math.max(250, 0.6 * stepMs);
    assert.ok(
      maxGap < bound,
      `the page's thread was blocked for ${maxGap.toFixed(0)} ms while sampling (bound ${bound.toFixed(0)} ms, ${stepMs} ms per step)`,
    );
    assert.equal(r.live, 'polite');
    assert.equal(r.role, 'status');
    assert.ok(
      r.statuses.some((s) => s.startsWith('Generating 4 images')),
      r.statuses.join(' | '),
    );
    assert.ok(r.statuses.at(-1)?.startsWith('Done'), 'the live region announces the end');
    assert.equal(r.role2, 'img');
    assert.match(r.label ?? '', /^4 generated images in a grid of 2 columns/);
    assert.match(r.stripLabel ?? '', /over the 6 steps.*first 4 images/);
    assert.equal(r.width, 2 * 34 + 2, '4 images of 32x32 in a 2x2 grid');
    assert.equal(r.strip, 7 * 33 + 1, '6 steps and the sample');
    assert.ok(r.bright > 200, 'digits are drawn');
    assert.match(r.timing ?? '', /CPU \(WebAssembly\), \d+ threads? · \d+ ms per step \(4 images per step/);
    assert.equal(r.save, false, 'Save PNG is enabled');
    // Save PNG downloads the grid at its own pixel size.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save')]);
    assert.equal(download.suggestedFilename(), 'ddpm-dpm++2m-6-seed3-n4.png');
    const png = decode(readFileSync((await download.path())!));
    assert.deepEqual([png.width, png.height, png.channels], [2 * 34 + 2, 2 * 34 + 2, 1]);
    t.diagnostic(`${r.timing}; longest gap of a 20 ms timer on the page: ${maxGap.toFixed(0)} ms`);
  });

  test('Load during a run keeps the run; a failed load keeps the working model; Blend (Fig. 8); Stop stops', async () => {
    await page.fill('#steps', '12');
    await page.fill('#n', '2');
    await page.evaluate(() => {
      (window as unknown as { statuses: string[] }).statuses = [];
    });
    await page.click('#sample');
    await page.waitForFunction(
      () => Number((document.getElementById('bar') as HTMLProgressElement).value) >= 1,
      undefined,
      {
        timeout: 30_000,
      },
    );
    // Load another model mid-run: the run finishes on the model it started with.
    await page.fill('#modelUrl', '/test-model/');
    await page.click('#load');
    assert.match(await runEnded(page), /^Done: 2 images/);
    const said = await page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);
    assert.ok(
      said.some((x) => /run in progress continues|The next run uses it/.test(x)),
      `the load overlapped the run: ${said.join(' | ')}`,
    );
    assert.equal(
      await page.evaluate(() => (document.getElementById('current') as HTMLCanvasElement).width),
      2 * 34 + 2,
      "the run finished with the model it started with (MNIST's 32x32), not the one loaded meanwhile (16x16)",
    );
    await page.waitForFunction(
      () => /16×16/.test(document.getElementById('modelInfo')!.textContent ?? ''),
      undefined,
      {
        timeout: 10_000,
      },
    );
    // A failed load: an error that says what to do; the loaded model and Generate stay.
    const before = await text(page, 'modelInfo');
    await page.fill('#modelUrl', '/no-such-model/');
    await page.click('#load');
    await page.waitForFunction(() =>
      /Could not load/.test(document.getElementById('status')!.textContent ?? ''),
    );
    const failed = await page.evaluate(() => ({
      status: document.getElementById('status')!.textContent,
      cls: document.getElementById('status')!.className,
      info: document.getElementById('modelInfo')!.textContent,
      sample: (document.getElementById('sample') as HTMLButtonElement).disabled,
    }));
    assert.match(failed.status ?? '', /Could not load \/no-such-model\/: .*404/);
    assert.match(failed.status ?? '', /Still using .*test-model/);
    assert.equal(failed.cls, 'error');
    assert.equal(failed.info, before);
    assert.equal(failed.sample, false, 'Generate stays enabled');
    // The new model samples (its 16x16 grid), so its session was built and the old one's release did not break it.
    await page.fill('#steps', '3');
    await page.click('#sample');
    assert.match(await runEnded(page), /^Done: 2 images.*3 steps/);
    assert.equal(
      await page.evaluate(() => (document.getElementById('current') as HTMLCanvasElement).width),
      2 * 18 + 2,
    );
    // Blend the two (Fig. 8): 9 mixes on a 50-step chain from its middle, and a slider over them.
    assert.equal(await page.evaluate(() => document.getElementById('blend')!.hidden), false);
    await page.click('#blendRun');
    await page.waitForFunction(
      () => /^Blended|failed/.test(document.getElementById('status')!.textContent ?? ''),
      undefined,
      {
        timeout: 30_000,
      },
    );
    assert.match(
      await text(page, 'status'),
      /^Blended images 1 and 2: noised to t = 5\d\d of 1000, 9 mixes, 26 network passes in [\d.]+ s\./,
    );
    await page.fill('#mix', '8');
    assert.equal(await text(page, 'mixOut'), 'mix 1 (0% first image, 100% second)');
    assert.equal(
      await page.evaluate(() => (document.getElementById('blendStrip') as HTMLCanvasElement).width),
      11 * 18 + 2,
      'image 1, 9 mixes, image 2',
    );
    // Stop mid-run.
    await page.fill('#steps', '400');
    await page.click('#sample');
    await page.waitForFunction(
      () => Number((document.getElementById('bar') as HTMLProgressElement).value) >= 1,
    );
    await page.click('#stop');
    assert.equal(await runEnded(page, 10_000), 'Stopped.');
    // Bad control values: a message naming the field, no run.
    await page.fill('#steps', '0');
    await page.click('#sample');
    assert.match(
      await text(page, 'status'),
      /^Steps: 0 is out of range; enter a whole number from 1 to 1000$/,
    );
    await page.fill('#steps', '2.5');
    await page.click('#sample');
    assert.match(await text(page, 'status'), /^Steps: "2\.5" is not a whole number/);
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      'steps',
      'the bad field has the focus',
    );
    await page.fill('#steps', '3');
  });

  test('the URL sets the controls; bad values say so; phone width; a model folder picked by the file picker', async () => {
    const p = await newPage('/dist-web/?sampler=ddim&steps=7&n=1&seed=-4&backend=gpu&model=/test-model/');
    await p.setViewportSize({ width: 360, height: 800 });
    await p.waitForFunction(
      () => !(document.getElementById('sample') as HTMLButtonElement).disabled,
      undefined,
      {
        timeout: 20_000,
      },
    );
    const s = await p.evaluate(() => ({
      sampler: (document.getElementById('sampler') as HTMLSelectElement).value,
      steps: (document.getElementById('steps') as HTMLInputElement).value,
      n: (document.getElementById('n') as HTMLInputElement).value,
      seed: (document.getElementById('seed') as HTMLInputElement).value,
      notices: document.getElementById('notices')!.textContent,
    }));
    assert.deepEqual([s.sampler, s.steps, s.n, s.seed], ['ddim', '7', '1', '0']);
    assert.match(s.notices ?? '', /\?seed=-4: -4 is out of range.*Using seed 0/);
    assert.match(s.notices ?? '', /\?backend=gpu: expected wasm or webgpu\. Choosing automatically/);
    const gpu = await p.evaluate(() => window.ddpmTest!.env.webgpu);
    assert.equal(
      await p.inputValue('#backend'),
      gpu.ok && !gpu.software ? 'webgpu' : 'wasm',
      'automatic backend',
    );
    await p.click('#sample');
    assert.match(await runEnded(p), /^Done: 1 image, DDIM, 7 steps, seed 0/, 'singular "1 image"');
    const widths = await p.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      strip: document.getElementById('progress')!.getBoundingClientRect().right,
      grid: document.getElementById('current')!.getBoundingClientRect().width,
    }));
    await p.screenshot({ path: '/tmp/ddpm-web-phone.png', fullPage: true });
    assert.ok(widths.doc <= 360, `the page is ${widths.doc} px wide at a 360 px viewport`);
    assert.ok(widths.strip <= 360, `the strip ends at ${widths.strip} px`);
    assert.ok(widths.grid > 200, `one image is shown large (${widths.grid} px), not at its 32 px`);
    // A model folder picked on this computer: a diffusers pipeline export (model_index.json, unet/, scheduler/).
    await p.setInputFiles('#pick', join(tmp, 'pipe'));
    await p.waitForFunction(() =>
      /^(Loaded|Could not)/.test(document.getElementById('status')!.textContent ?? ''),
    );
    assert.match(await text(p, 'status'), /^Loaded the folder pipe in [\d.]+ s\./);
    assert.match(await text(p, 'modelInfo'), /grayscale 16×16.*\(pipe\/\)$/);
    await p.click('#sample');
    assert.match(await runEnded(p), /^Done: 1 image, DDIM, 7 steps/);
    // A folder that is no model: the message says what a model folder holds; the loaded one stays.
    await p.setInputFiles('#pick', join(tmp, 'pipe', 'scheduler'));
    await p.waitForFunction(() =>
      /Could not load/.test(document.getElementById('status')!.textContent ?? ''),
    );
    assert.match(await text(p, 'status'), /no config\.json.*Still using pipe\//s);
    await p.close();
  });

  test('a static host without the isolation headers: one thread, says why, and still samples', async () => {
    const plain = await plainStaticServer(webDir, join(tmp, 'model'));
    try {
      const p = await browser.newPage();
      await p.goto(`${plain.url}/?threads=4&steps=2&n=2&sampler=heun`);
      await p.waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 20_000 });
      const env = await p.evaluate(() => ({
        isolated: crossOriginIsolated,
        threads: window.ddpmTest!.threads,
        runtime: document.getElementById('runtime')!.textContent,
        notices: document.getElementById('notices')!.textContent,
      }));
      assert.equal(env.isolated, false);
      assert.equal(env.threads, 1);
      assert.match(
        env.runtime ?? '',
        /on 1 thread: this page is not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/,
      );
      assert.match(env.notices ?? '', /\?threads=4 needs a cross-origin isolated page.*using 1 thread/);
      await p.waitForFunction(
        () => !(document.getElementById('sample') as HTMLButtonElement).disabled,
        undefined,
        {
          timeout: 20_000,
        },
      );
      await p.click('#sample');
      assert.match(await runEnded(p), /^Done: 2 images, Heun \(Karras et al\.\), 2 steps/);
      // Heun: 2 network passes per step but the last.
      assert.match(
        await text(p, 'timing'),
        /^CPU \(WebAssembly\), 1 thread · \d+ ms per network pass \(2 images per network pass.* · 3 network passes in /,
      );
      await p.close();
    } finally {
      await plain.close();
    }
  });
});
