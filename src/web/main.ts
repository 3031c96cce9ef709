// The browser demo page: loads a model folder (config.json + model.safetensors), compiles the U-Net with
// the same graph builder as Node, samples with Algorithm 2 (respaced) or DDIM on onnxruntime-web (wasm or
// WebGPU) and draws the predicted x_0 of every step live. Query parameters: ?model=URL,
// ?backend=wasm|webgpu, ?threads=N (when cross-origin isolated). window.ddpmTest is the hook test/web.test.ts drives.

import type { ExecutionProvider } from '../engine/engine.js';
import type { UNetDenoiser } from '../sample/denoiser.js';
import type { UNetConfig } from '../nn/unet.js';
import { countParams } from '../nn/unet.js';
import { makeGrid, type RasterImage } from '../util/image.js';
import { concatBatch, type Tensor } from '../util/tensor.js';
import {
  compileModel,
  fetchModel,
  fixtureForward,
  sampleImages,
  type WebModel,
  type WebSampler,
} from './core.js';
import { configureOrt, webEngine, webGpuStatus } from './engine.js';

const query = new URLSearchParams(location.search);
const threadsParam = query.get('threads');
const threads = configureOrt({
  wasmPaths: new URL('./ort/', import.meta.url).href,
  threads: threadsParam ? Number(threadsParam) : undefined,
});

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}
const ui = {
  model: el<HTMLInputElement>('model'),
  load: el<HTMLButtonElement>('load'),
  modelInfo: el<HTMLSpanElement>('modelInfo'),
  form: el<HTMLFormElement>('controls'),
  seed: el<HTMLInputElement>('seed'),
  sampler: el<HTMLSelectElement>('sampler'),
  steps: el<HTMLInputElement>('steps'),
  n: el<HTMLInputElement>('n'),
  backend: el<HTMLSelectElement>('backend'),
  showXt: el<HTMLInputElement>('showXt'),
  sample: el<HTMLButtonElement>('sample'),
  stop: el<HTMLButtonElement>('stop'),
  status: el<HTMLDivElement>('status'),
  timing: el<HTMLDivElement>('timing'),
  current: el<HTMLCanvasElement>('current'),
  currentCaption: el<HTMLElement>('currentCaption'),
  progress: el<HTMLCanvasElement>('progress'),
};

function status(msg: string, error = false): void {
  ui.status.textContent = msg;
  ui.status.className = error ? 'error' : '';
}

/** Gray or RGB bytes -> an RGBA canvas at `scale` CSS pixels per image pixel. */
function draw(canvas: HTMLCanvasElement, img: RasterImage, scale: number): void {
  canvas.width = img.width;
  canvas.height = img.height;
  canvas.style.width = `${img.width * scale}px`;
  canvas.style.height = `${img.height * scale}px`;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const data = ctx.createImageData(img.width, img.height);
  const c = img.channels;
  for (let p = 0; p < img.width * img.height; p++) {
    const r = img.pixels[p * c]!;
    data.data[p * 4] = r;
    data.data[p * 4 + 1] = c >= 3 ? img.pixels[p * c + 1]! : r;
    data.data[p * 4 + 2] = c >= 3 ? img.pixels[p * c + 2]! : r;
    data.data[p * 4 + 3] = c === 4 ? img.pixels[p * c + 3]! : 255;
  }
  ctx.putImageData(data, 0, 0);
}

/** Integer control value clamped to [lo, hi]. */
function intOf(input: HTMLInputElement, lo: number, hi: number): number {
  const v = Math.round(Number(input.value));
  const r = Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : lo;
  input.value = String(r);
  return r;
}

/** Let the browser paint (one animation frame) between network calls. */
const nextFrame = (): Promise<void> =>
  new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

let model: WebModel | null = null;
let compiled: { key: string; den: UNetDenoiser } | null = null;
let running: AbortController | null = null;

async function releaseCompiled(): Promise<void> {
  const c = compiled;
  compiled = null;
  if (c) await c.den.release();
}

async function loadModel(url: string): Promise<void> {
  ui.sample.disabled = true;
  status(`Loading ${url} …`);
  await releaseCompiled();
  model = null;
  try {
    const t0 = performance.now();
    model = await fetchModel(url);
    const c = model.spec.unet;
    ui.modelInfo.textContent =
      `${(countParams(c) / 1e6).toFixed(2)}M parameters, ${c.inChannels}×${c.resolution}×${c.resolution}, ` +
      `T = ${model.spec.diffusion.T}${model.spec.data ? `, trained on ${model.spec.data}` : ''}`;
    ui.steps.max = String(model.spec.diffusion.T);
    status(`Loaded ${model.source} in ${(performance.now() - t0).toFixed(0)} ms. Press Sample.`);
    ui.sample.disabled = false;
  } catch (e) {
    ui.modelInfo.textContent = '';
    status(
      `Could not load a model from ${url}: ${(e as Error).message}\n` +
        'A model folder holds config.json and model.safetensors (ddpm train writes one to <run>/model); ' +
        'the demo server serves one, chosen with `npm run demo -- --model FOLDER`, at /model/.',
      true,
    );
  }
}

/** Which steps get a column in the progressive strip: up to 10, evenly spread, first and last included. */
function columnSteps(total: number): Set<number> {
  const k = Math.min(10, total);
  const s = new Set<number>();
  for (let j = 0; j < k; j++) s.add(k === 1 ? 1 : 1 + Math.round((j * (total - 1)) / (k - 1)));
  return s;
}

function progressStrip(
  frames: Tensor[],
  cols: number,
  rows: number,
  per: number,
  shape: number[],
): RasterImage {
  const blank: Tensor = { data: new Float32Array(per).fill(1), shape: [1, ...shape] };
  const tiles: Tensor[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const f = frames[c];
      tiles.push(f ? { data: f.data.subarray(r * per, (r + 1) * per), shape: [1, ...shape] } : blank);
    }
  }
  return makeGrid(concatBatch(tiles), { nrow: cols, padding: 1 });
}

function samplerName(s: WebSampler): string {
  switch (s) {
    case 'ddpm':
      return 'DDPM (Algorithm 2)';
    case 'ddim':
      return 'DDIM';
  }
}

async function runSample(): Promise<void> {
  if (!model || running) return;
  const m = model;
  const seed = intOf(ui.seed, -(2 ** 31), 2 ** 31 - 1);
  const steps = intOf(ui.steps, 1, m.spec.diffusion.T);
  const sampler = ui.sampler.value as WebSampler;
  const samplerText = samplerName(sampler);
  const n = intOf(ui.n, 1, 64);
  const provider = ui.backend.value as ExecutionProvider;
  const ctrl = new AbortController();
  running = ctrl;
  ui.sample.disabled = true;
  ui.stop.disabled = false;
  ui.timing.textContent = '';
  const cfg = m.spec.unet;
  const per = cfg.inChannels * cfg.resolution * cfg.resolution;
  const imgShape = [cfg.inChannels, cfg.resolution, cfg.resolution];
  const nrow = Math.ceil(Math.sqrt(n));
  const scale = Math.max(1, Math.floor(Math.min(8, 384 / (nrow * (cfg.resolution + 2)))));
  const rows = Math.min(n, 8);
  const cols = Math.min(10, steps) + 1;
  const record = columnSteps(steps);
  const frames: Tensor[] = [];
  const backendText = provider === 'wasm' ? `wasm, ${threads} thread${threads > 1 ? 's' : ''}` : provider;
  try {
    const key = `${m.source}|${provider}|${n}`;
    let compileMs = 0;
    if (compiled?.key !== key) {
      await releaseCompiled();
      status(`Building the graph and compiling it for ${provider} (batch ${n}) …`);
      await nextFrame();
      const t0 = performance.now();
      compiled = { key, den: await compileModel(webEngine(provider), m, n, { provider }) };
      compileMs = performance.now() - t0;
    }
    status(`Sampling: ${samplerText}, ${steps} steps, ${n} images, seed ${seed} (${backendText}) …`);
    let netMs = 0;
    const res = await sampleImages(webEngine(provider), m, {
      seed,
      sampler,
      steps,
      n,
      provider,
      denoiser: compiled.den,
      signal: ctrl.signal,
      pause: nextFrame,
      onStep: (s) => {
        netMs += s.stepMs;
        const shown = ui.showXt.checked ? s.xt : s.predXstart;
        draw(ui.current, makeGrid(shown, { nrow, padding: 2 }), scale);
        ui.currentCaption.textContent = `${ui.showXt.checked ? 'x_t' : 'Predicted x_0'} at step ${s.step}/${s.total} (t = ${s.modelT + 1}).`;
        if (record.has(s.step)) {
          frames.push({ data: s.predXstart.data.slice(0, rows * per), shape: [rows, ...imgShape] });
          draw(ui.progress, progressStrip(frames, cols, rows, per, imgShape), 3);
        }
        ui.timing.textContent =
          `${backendText} · ${compileMs ? `compile ${compileMs.toFixed(0)} ms · ` : ''}` +
          `step ${s.step}/${s.total} · ${s.stepMs.toFixed(1)} ms this step · ${(netMs / s.step).toFixed(1)} ms/step mean`;
      },
    });
    frames.push({ data: res.sample.data.slice(0, rows * per), shape: [rows, ...imgShape] });
    draw(ui.current, makeGrid(res.sample, { nrow, padding: 2 }), scale);
    ui.currentCaption.textContent = `Samples (x_0 after ${steps} steps).`;
    draw(ui.progress, progressStrip(frames, cols, rows, per, imgShape), 3);
    ui.timing.textContent =
      `${backendText} · ${compileMs ? `compile ${compileMs.toFixed(0)} ms · ` : 'compiled session reused · '}` +
      `${steps} steps × ${n} images in ${(res.sampleMs / 1000).toFixed(2)} s · ` +
      `${(res.sampleMs / steps).toFixed(1)} ms/step · ${(res.sampleMs / steps / n).toFixed(2)} ms/image/step`;
    status(`Done: ${n} images, ${samplerText} ${steps} steps, seed ${seed}.`);
  } catch (e) {
    if ((e as Error).name === 'AbortError') status('Stopped.');
    else {
      await releaseCompiled();
      status(`Sampling failed on ${provider}: ${(e as Error).message}`, true);
    }
  } finally {
    running = null;
    ui.sample.disabled = false;
    ui.stop.disabled = true;
  }
}

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void runSample();
});
ui.stop.addEventListener('click', () => running?.abort());
ui.load.addEventListener('click', () => void loadModel(ui.model.value.trim()));

// ---- test hook (test/web.test.ts) ----

export interface DdpmTestHook {
  readonly threads: number;
  webgpu(): Promise<{ ok: boolean; info: string }>;
  /** U-Net forward of initParams(cfg, 'fixture') on fixtureInputs(cfg, batch). */
  forward(a: { cfg: UNetConfig; batch: number; provider: ExecutionProvider; repeats?: number }): Promise<{
    out: number[];
    shape: number[];
    setupMs: number;
    firstMs: number;
    forwardMs: number[];
  }>;
  /** Sampling from the model folder at modelUrl, as the Sample button runs it. */
  sample(a: {
    modelUrl: string;
    seed: number;
    sampler: WebSampler;
    steps: number;
    n: number;
    provider: ExecutionProvider;
  }): Promise<{
    sample: number[];
    shape: number[];
    setupMs: number;
    sampleMs: number;
    stepsSeen: number;
  }>;
}

declare global {
  interface Window {
    ddpmTest?: DdpmTestHook;
  }
}

window.ddpmTest = {
  threads,
  webgpu: webGpuStatus,
  async forward({ cfg, batch, provider, repeats }) {
    const r = await fixtureForward(webEngine(provider), cfg, batch, { provider, repeats });
    return {
      out: Array.from(r.out.data),
      shape: [...r.out.shape],
      setupMs: r.setupMs,
      firstMs: r.firstMs,
      forwardMs: r.forwardMs,
    };
  },
  async sample({ modelUrl, seed, sampler, steps, n, provider }) {
    const m = await fetchModel(new URL(modelUrl, location.href).href);
    let stepsSeen = 0;
    const r = await sampleImages(webEngine(provider), m, {
      seed,
      sampler,
      steps,
      n,
      provider,
      onStep: () => void stepsSeen++,
    });
    return {
      sample: Array.from(r.sample.data),
      shape: [...r.sample.shape],
      setupMs: r.setupMs,
      sampleMs: r.sampleMs,
      stepsSeen,
    };
  },
};

// ---- start ----

void (async () => {
  const gpu = await webGpuStatus();
  const opt = ui.backend.querySelector<HTMLOptionElement>('option[value="webgpu"]')!;
  opt.disabled = !gpu.ok;
  opt.textContent = gpu.ok ? `WebGPU (${gpu.info})` : 'WebGPU (unavailable)';
  opt.title = gpu.info;
  const want = query.get('backend');
  if (want === 'webgpu' && gpu.ok) ui.backend.value = 'webgpu';
  const url = query.get('model') ?? ui.model.value;
  ui.model.value = url;
  await loadModel(url);
})();
