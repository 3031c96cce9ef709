// The browser demo in headless Chromium (playwright-core, Debian's /usr/bin/chromium): builds dist-web/,
// serves it on an ephemeral port and checks, through the page's window.ddpmTest hook, that onnxruntime-web
// computes what onnxruntime-node computes for the same TypeScript-built graph: the U-Net forward of a
// hash-initialised model (wasm; WebGPU when Chromium gives an adapter) and a short DDIM run from a model
// folder fetched over HTTP. Finally the page's own Sample button runs end to end.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.mjs';
import { startServer } from '../scripts/serve.mjs';
import { nodeEngine } from '../src/engine/node.js';
import type { ModelSpec } from '../src/model/spec.js';
import { PAPER_DIFFUSION } from '../src/model/spec.js';
import { loadModel, saveModel } from '../src/model/weights.js';
import { initParams, SMALL_UNET, TINY_UNET, type UNetConfig } from '../src/nn/unet.js';
import { allClose, relErr } from '../src/util/allclose.js';
import { fixtureForward, sampleImages, type WebSampler } from '../src/web/core.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const noChromium = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (install it: apt-get update && apt-get install -y chromium; or set CHROMIUM_PATH)`;

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

describe('browser demo (onnxruntime-web in headless Chromium)', { skip: noChromium }, () => {
  let browser: Browser;
  let page: Page;
  let server: { url: string; close(): Promise<void> };
  let tmp: string;
  const pageErrors: string[] = [];

  before(async () => {
    const built = await buildWeb();
    const leaked = built.inputs.filter((p) => /^node:|onnxruntime-node|model\/weights|engine\/node/.test(p));
    assert.deepEqual(leaked, [], 'Node-only modules in the bundle');
    // A model folder for the sampling tests: the tiny U-Net with hash-initialised (non-zero) weights.
    tmp = mkdtempSync(join(tmpdir(), 'ddpm-web-'));
    const spec: ModelSpec = { format: 'ddpm-ts/model/v1', unet: TINY_UNET, diffusion: PAPER_DIFFUSION };
    saveModel(join(tmp, 'model'), spec, initParams(TINY_UNET, 'fixture'));
    server = await startServer({ mounts: { '/test-model/': join(tmp, 'model') } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--enable-unsafe-webgpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
      headless: true,
    });
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
    });
    page.on('requestfailed', (r) => pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${server.url}/dist-web/?threads=1&model=/test-model/`);
    await page.waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (pageErrors.length) console.log(`page messages:\n  ${pageErrors.join('\n  ')}`);
  });

  test('server: MIME types, COOP/COEP (the page is cross-origin isolated), no dotfiles', async () => {
    for (const [file, type] of [
      ['ort/ort-wasm-simd-threaded.wasm', 'application/wasm'],
      ['ort/ort-wasm-simd-threaded.jsep.mjs', 'text/javascript'],
      ['main.js', 'text/javascript'],
    ]) {
      const r = await fetch(`${server.url}/dist-web/${file}`, { method: 'HEAD' });
      assert.equal(r.status, 200, file);
      assert.ok(r.headers.get('content-type')?.startsWith(type), `${file}: ${r.headers.get('content-type')}`);
    }
    assert.equal((await fetch(`${server.url}/.git/HEAD`)).status, 403);
    const env = await page.evaluate(() => ({
      isolated: crossOriginIsolated,
      threads: window.ddpmTest!.threads,
    }));
    assert.equal(env.isolated, true, 'serve.mjs sends COOP/COEP');
    assert.equal(env.threads, 1, '?threads=1');
  });

  test('wasm: U-Net forward matches onnxruntime-node', async (t) => {
    // 10 reruns: V8 runs wasm in its baseline tier until the hot functions are re-optimised.
    const web = await page.evaluate(
      ({ cfg, batch }) => window.ddpmTest!.forward({ cfg, batch, provider: 'wasm', repeats: 10 }),
      { cfg: SMALL_UNET, batch: FORWARD_BATCH },
    );
    const ref = await fixtureForward(nodeEngine(), SMALL_UNET, FORWARD_BATCH, { threads: 1, repeats: 5 });
    assert.deepEqual(web.shape, [...ref.out.shape]);
    const scale = ref.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    allClose(web.out, ref.out.data, 1e-4, 1e-5 * scale, 'wasm forward vs onnxruntime-node');
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    t.diagnostic(
      `SMALL_UNET batch ${FORWARD_BATCH}, 1 thread: wasm ${med(web.forwardMs.slice(-5)).toFixed(1)} ms/forward ` +
        `(first ${web.firstMs.toFixed(0)} ms; setup ${web.setupMs.toFixed(0)} ms incl. runtime init), ` +
        `onnxruntime-node ${med(ref.forwardMs).toFixed(1)} ms/forward (setup ${ref.setupMs.toFixed(0)} ms); ` +
        `rel err ${relErr(web.out, ref.out.data).toExponential(2)}, |out| <= ${scale.toFixed(2)}`,
    );
  });

  for (const sampler of ['ddpm', 'ddim'] as const satisfies readonly WebSampler[]) {
    test(`wasm: ${sampler} sampling from a served model folder matches the Node run`, async (t) => {
      const o = { ...SAMPLE, sampler };
      const web = await page.evaluate(
        (a) => window.ddpmTest!.sample({ modelUrl: '/test-model/', provider: 'wasm', ...a }),
        o,
      );
      const model = loadModel(join(tmp, 'model'));
      const ref = await sampleImages(nodeEngine(), model, { ...o, threads: 1 });
      assert.equal(web.stepsSeen, SAMPLE.steps);
      assert.deepEqual(web.shape, [...ref.sample.shape]);
      allClose(web.sample, ref.sample.data, 1e-4, 1e-4, `${sampler} samples, browser vs Node`);
      t.diagnostic(
        `TINY_UNET ${sampler} ${SAMPLE.steps} steps x ${SAMPLE.n} images: browser ${web.sampleMs.toFixed(0)} ms, ` +
          `Node ${ref.sampleMs.toFixed(0)} ms; rel err ${relErr(web.sample, ref.sample.data).toExponential(2)}`,
      );
    });
  }

  test('webgpu: U-Net forward matches onnxruntime-node (when Chromium has an adapter)', async (t) => {
    const gpu = await page.evaluate(() => window.ddpmTest!.webgpu());
    if (!gpu.ok) {
      t.skip(`no WebGPU adapter: ${gpu.info}`);
      return;
    }
    const web = await page.evaluate(
      ({ cfg, batch }) => window.ddpmTest!.forward({ cfg, batch, provider: 'webgpu', repeats: 1 }),
      { cfg: WEBGPU_UNET, batch: FORWARD_BATCH },
    );
    const ref = await fixtureForward(nodeEngine(), WEBGPU_UNET, FORWARD_BATCH, { threads: 1, repeats: 0 });
    const scale = ref.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    allClose(web.out, ref.out.data, 1e-3, 1e-4 * scale, 'webgpu forward vs onnxruntime-node');
    t.diagnostic(
      `WebGPU on ${gpu.info}, ${WEBGPU_UNET.resolution}x${WEBGPU_UNET.resolution} ch ${WEBGPU_UNET.ch} U-Net: setup ${web.setupMs.toFixed(0)} ms, ` +
        `first forward ${web.firstMs.toFixed(0)} ms (shader compilation), then ${web.forwardMs[0]!.toFixed(1)} ms; ` +
        `rel err ${relErr(web.out, ref.out.data).toExponential(2)}`,
    );
  });

  test('the Sample button runs Algorithm 2 (respaced) by default and draws the samples', async () => {
    await page.waitForFunction(
      () => !(document.getElementById('sample') as HTMLButtonElement).disabled,
      undefined,
      {
        timeout: 10_000,
      },
    );
    await page.fill('#steps', '3');
    await page.fill('#n', '4');
    await page.selectOption('#backend', 'wasm');
    await page.click('#sample');
    await page.waitForFunction(
      () => /^Done|failed/.test(document.getElementById('status')!.textContent ?? ''),
      undefined,
      {
        timeout: 20_000,
      },
    );
    const ui = await page.evaluate(() => {
      const c = document.getElementById('current') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let dark = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i]! < 250) dark++;
      return {
        status: document.getElementById('status')!.textContent,
        timing: document.getElementById('timing')!.textContent,
        width: c.width,
        height: c.height,
        dark,
        strip: (document.getElementById('progress') as HTMLCanvasElement).width,
      };
    });
    assert.match(ui.status ?? '', /^Done: 4 images, DDPM \(Algorithm 2\) 3 steps/, ui.status ?? '');
    // 4 images of 16x16 in a 2x2 grid with 2-pixel padding; the strip has 3 steps + the final sample.
    assert.equal(ui.width, 2 * 18 + 2);
    assert.equal(ui.height, 2 * 18 + 2);
    assert.ok(ui.dark > 100, 'the sample grid is drawn');
    assert.equal(ui.strip, 4 * 17 + 1);
    assert.match(ui.timing ?? '', /ms\/step/);
  });
});
