// The browser demo page: the controls, the live view and the settings in the URL. It never runs a network
// itself: every model load, sampling run and training step is a call to the module worker (worker.ts,
// protocol.ts), so the page stays responsive while the worker samples or trains (multi-threaded wasm when the
// page is cross-origin isolated, WebGPU when asked). The Train section (Algorithm 1 in the page: web/train.ts)
// draws the loss curve and samples, and downloads and uploads ddpm train's checkpoint files. Query parameters (settings.ts): ?model=URL, ?sampler=, ?steps=, ?n=,
// ?seed=, ?backend=wasm|webgpu, ?threads=N, ?view=xt. window.ddpmTest is the hook test/web.test.ts drives.

import { SAMPLER_NAMES } from '../diffusion/samplers.js';
import type { ExecutionProvider } from '../engine/engine.js';
import type { UNetConfig } from '../nn/unet.js';
import { encodePng, makeGrid, type RasterImage } from '../util/image.js';
import { concatBatch, type Tensor } from '../util/tensor.js';
import type { WebSampler } from './core.js';
import type {
  FromWorker,
  ModelInfo,
  ModelSource,
  OpName,
  PickedFile,
  SampleEvent,
  ToWorker,
  TrainArgs,
  TrainEvent,
  TrainFrom,
  TrainInfo,
  WireTensor,
  WorkerEnv,
  WorkerOps,
} from './protocol.js';
import { PAGE_TINY, type PageTrainConfig } from './trainConfig.js';
import {
  autoBackend,
  type Backend,
  checkInt,
  DEFAULTS,
  MAX_IMAGES,
  MAX_SEED,
  plural,
  readSettings,
  type Settings,
  samplerTitle,
  settingsQuery,
} from './settings.js';

// ---- the worker ----

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onEvent?: (e: unknown) => void;
}

class WorkerClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(url: URL) {
    this.worker = new Worker(url, { type: 'module', name: 'ddpm-worker' });
    this.worker.addEventListener('message', (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.type === 'event') p.onEvent?.(m.event);
      else {
        this.pending.delete(m.id);
        if (m.type === 'result') p.resolve(m.value);
        else {
          const e = new Error(m.message);
          e.name = m.name;
          p.reject(e);
        }
      }
    });
    this.worker.addEventListener('error', (ev) => {
      const e = new Error(
        `the worker failed to start or crashed (${ev.message || 'no message'}); reload the page`,
      );
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  call<K extends OpName>(
    op: K,
    args: WorkerOps[K]['args'],
    onEvent?: (e: WorkerOps[K]['event']) => void,
    transfer: Transferable[] = [],
  ): { id: number; done: Promise<WorkerOps[K]['result']> } {
    const id = this.nextId++;
    const done = new Promise<WorkerOps[K]['result']>((resolve, reject) => {
      this.pending.set(id, {
        resolve: resolve as (v: unknown) => void,
        reject,
        onEvent: onEvent as ((e: unknown) => void) | undefined,
      });
    });
    this.worker.postMessage({ type: 'call', id, op, args } as ToWorker, transfer);
    return { id, done };
  }

  cancel(id: number): void {
    this.worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
  }
}

// ---- the page ----

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}
const ui = {
  modelInfo: el<HTMLSpanElement>('modelInfo'),
  modelUrl: el<HTMLInputElement>('modelUrl'),
  load: el<HTMLButtonElement>('load'),
  pick: el<HTMLInputElement>('pick'),
  form: el<HTMLFormElement>('controls'),
  sampler: el<HTMLSelectElement>('sampler'),
  steps: el<HTMLInputElement>('steps'),
  n: el<HTMLInputElement>('n'),
  seed: el<HTMLInputElement>('seed'),
  backend: el<HTMLSelectElement>('backend'),
  showXt: el<HTMLInputElement>('showXt'),
  sample: el<HTMLButtonElement>('sample'),
  stop: el<HTMLButtonElement>('stop'),
  save: el<HTMLButtonElement>('save'),
  runtime: el<HTMLParagraphElement>('runtime'),
  gpuWarning: el<HTMLParagraphElement>('gpuWarning'),
  notices: el<HTMLUListElement>('notices'),
  status: el<HTMLDivElement>('status'),
  bar: el<HTMLProgressElement>('bar'),
  progressText: el<HTMLSpanElement>('progressText'),
  timing: el<HTMLDivElement>('timing'),
  current: el<HTMLCanvasElement>('current'),
  currentCaption: el<HTMLElement>('currentCaption'),
  progress: el<HTMLCanvasElement>('progress'),
  progressCaption: el<HTMLElement>('progressCaption'),
  blend: el<HTMLElement>('blend'),
  blendForm: el<HTMLFormElement>('blendForm'),
  blendA: el<HTMLInputElement>('blendA'),
  blendB: el<HTMLInputElement>('blendB'),
  blendRun: el<HTMLButtonElement>('blendRun'),
  mix: el<HTMLInputElement>('mix'),
  mixOut: el<HTMLOutputElement>('mixOut'),
  blendOne: el<HTMLCanvasElement>('blendOne'),
  blendCaption: el<HTMLElement>('blendCaption'),
  blendStrip: el<HTMLCanvasElement>('blendStrip'),
};

/** The status line (aria-live): state changes and errors only, not every step. */
function status(msg: string, error = false): void {
  ui.status.textContent = msg;
  ui.status.className = error ? 'error' : '';
}

/** Messages about the URL's settings or the environment (shown until the page is reloaded). */
function notice(msg: string): void {
  const li = document.createElement('li');
  li.textContent = msg;
  ui.notices.append(li);
  ui.notices.hidden = false;
}

/** Gray or RGB bytes -> the canvas, at its own pixel size (CSS scales it). */
function draw(canvas: HTMLCanvasElement, img: RasterImage): void {
  canvas.width = img.width;
  canvas.height = img.height;
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

const fmtS = (ms: number): string =>
  ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;

/** Which steps get a column in the progressive strip: up to 10, evenly spread, first and last included. */
function columnSteps(total: number): Set<number> {
  const k = Math.min(10, total);
  const s = new Set<number>();
  for (let j = 0; j < k; j++) s.add(k === 1 ? 1 : 1 + Math.round((j * (total - 1)) / (k - 1)));
  return s;
}

/** Rows: images (up to 8); columns: the recorded predicted x_0 (blank until reached), then the sample. */
function progressStrip(frames: Tensor[], cols: number, rows: number, imgShape: number[]): RasterImage {
  const per = imgShape.reduce((a, b) => a * b, 1);
  const blank: Tensor = { data: new Float32Array(per).fill(1), shape: [1, ...imgShape] };
  const tiles: Tensor[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const f = frames[c];
      tiles.push(f ? { data: f.data.subarray(r * per, (r + 1) * per), shape: [1, ...imgShape] } : blank);
    }
  }
  return makeGrid(concatBatch(tiles), { nrow: cols, padding: 1 });
}

const hw = navigator.hardwareConcurrency || 1;
const query = new URLSearchParams(location.search);
const initial = readSettings(query, { T: 1000, maxThreads: Math.max(16, hw) });
for (const m of initial.messages) notice(m);
let settings: Settings = initial.settings;

for (const name of SAMPLER_NAMES) {
  const o = document.createElement('option');
  o.value = name;
  o.textContent = samplerTitle(name);
  ui.sampler.append(o);
}
ui.sampler.value = settings.sampler;
ui.steps.value = String(settings.steps);
ui.n.value = String(settings.n);
ui.n.max = String(MAX_IMAGES);
ui.seed.value = String(settings.seed);
ui.seed.max = String(MAX_SEED);
ui.showXt.checked = settings.xt;
ui.modelUrl.value = settings.model;

/** The controls' values when they are valid, else the message of the first bad one (and that control). */
function readControls(
  T: number,
): { ok: true; s: Settings } | { ok: false; message: string; input: HTMLInputElement } {
  const checks: [HTMLInputElement, string, number, number][] = [
    [ui.steps, 'Steps', 1, T],
    [ui.n, 'Images', 1, MAX_IMAGES],
    [ui.seed, 'Seed', 0, MAX_SEED],
  ];
  const v: number[] = [];
  for (const [input, what, lo, hi] of checks) {
    const c: ReturnType<typeof checkInt> = input.validity.badInput
      ? { ok: false, message: `${what}: not a number; enter a whole number from ${lo} to ${hi}` }
      : checkInt(input.value, what, lo, hi);
    input.setCustomValidity(c.ok ? '' : c.message);
    input.setAttribute('aria-invalid', String(!c.ok));
    if (!c.ok) return { ok: false, message: c.message, input };
    v.push(c.value);
  }
  return {
    ok: true,
    s: {
      ...settings,
      sampler: ui.sampler.value as WebSampler,
      steps: v[0]!,
      n: v[1]!,
      seed: v[2]!,
      backend: backendChosen ? (ui.backend.value as Backend) : settings.backend,
      xt: ui.showXt.checked,
    },
  };
}

/** Keep the URL in step with valid settings (replaceState: no history entry per keystroke). */
function syncUrl(): void {
  const r = readControls(model?.T ?? 1000);
  if (r.ok) settings = r.s;
  history.replaceState(null, '', `${location.pathname}${settingsQuery(settings)}`);
  showGpuWarning();
}
/** Whether the user (or the URL) chose the backend; else it is automatic and stays out of the URL. */
let backendChosen = settings.backend !== undefined;
ui.backend.addEventListener('change', () => {
  backendChosen = true;
});
ui.form.addEventListener('input', syncUrl);
ui.form.addEventListener('change', syncUrl);

const client = new WorkerClient(new URL('./worker.js', import.meta.url));
let env: WorkerEnv | null = null;
let model: ModelInfo | null = null;
let loadSeq = 0;
let run: { id: number } | null = null;
let lastSample: {
  t: WireTensor;
  name: string;
  model: number;
  provider: ExecutionProvider;
  seed: number;
} | null = null;
/** The last blend: its images [L, C, H, W] and weights. */
let lastBlend: { images: WireTensor; lambdas: number[] } | null = null;

function showGpuWarning(): void {
  const soft = env?.webgpu.ok && env.webgpu.software;
  ui.gpuWarning.hidden = !(soft && ui.backend.value === 'webgpu');
}

/**
 * Make a freshly loaded model the page's model, releasing the one it replaces; false (and the new one
 * released) when a later load was asked for meanwhile (seq is no longer loadSeq).
 */
function adoptModel(info: ModelInfo, seq: number): boolean {
  if (seq !== loadSeq) {
    void client.call('drop', { model: info.model }).done.catch(() => undefined);
    return false;
  }
  const old = model;
  model = info;
  if (old) void client.call('drop', { model: old.model }).done.catch(() => undefined);
  ui.modelInfo.textContent = describeModel(info);
  ui.steps.max = String(info.T);
  return true;
}

function describeModel(m: ModelInfo): string {
  const what = m.data === 'mnist' ? 'handwritten digits (MNIST)' : m.data ? `${m.data} images` : 'images';
  return (
    `${what}, ${m.channels === 1 ? 'grayscale' : 'colour'} ${m.resolution}×${m.resolution}; ` +
    `${(m.params / 1e6).toFixed(1)} million parameters, T = ${m.T} noise levels (${m.source})`
  );
}

/** Load a model; the one in use (and any run on it) is kept until the new one has loaded. */
async function loadModel(source: ModelSource, label: string, transfer: Transferable[] = []): Promise<void> {
  const seq = ++loadSeq;
  status(`Loading ${label} …${run ? ' (the run in progress continues with the current model)' : ''}`);
  ui.load.disabled = true;
  try {
    const info = await client.call('load', { source }, undefined, transfer).done;
    if (!adoptModel(info, seq)) return;
    if (source.kind === 'url') {
      settings = { ...settings, model: source.url };
      syncUrl();
    }
    status(`Loaded ${label} in ${fmtS(info.loadMs)}.${run ? ' The next run uses it.' : ' Press Generate.'}`);
    // Compile for the current settings now, so the first Generate starts sampling at once.
    const r = readControls(info.T);
    if (r.ok && !run)
      void client
        .call('prepare', { model: info.model, provider: ui.backend.value as ExecutionProvider, batch: r.s.n })
        .done.catch(() => undefined);
  } catch (e) {
    if (seq !== loadSeq) return;
    status(
      `Could not load ${label}: ${(e as Error).message}\n` +
        (model ? `Still using ${model.source}. ` : '') +
        'A model folder holds config.json and model.safetensors (ddpm train writes one to <run>/model); ' +
        'the demo server serves one at /model/, chosen with `ddpm serve --model FOLDER` ' +
        '(or `npm run demo -- --model FOLDER`); or pick a folder under "Use another model".',
      true,
    );
  } finally {
    if (seq === loadSeq) ui.load.disabled = false;
    ui.sample.disabled = model === null || run !== null;
  }
}

function samplerShort(s: WebSampler): string {
  return samplerTitle(s).split(':')[0]!;
}

async function runSample(): Promise<void> {
  const m = model;
  if (!m || run) return;
  const r = readControls(m.T);
  if (!r.ok) {
    status(r.message, true);
    r.input.focus();
    return;
  }
  const s = r.s;
  settings = s;
  syncUrl();
  const provider = ui.backend.value as ExecutionProvider;
  const imgShape = [m.channels, m.resolution, m.resolution];
  const per = m.channels * m.resolution * m.resolution;
  const nrow = Math.ceil(Math.sqrt(s.n));
  const rows = Math.min(s.n, 8);
  const frames: Tensor[] = [];
  let record = new Set<number>();
  let cols = 1;
  const what = `${plural(s.n, 'image')}, ${samplerShort(s.sampler)}, ${plural(s.steps, 'step')}, seed ${s.seed}`;
  const backendText =
    provider === 'wasm'
      ? `CPU (WebAssembly), ${plural(env?.threads ?? 1, 'thread')}`
      : `GPU (WebGPU${env?.webgpu.software ? ', software adapter' : ''})`;
  ui.sample.disabled = true;
  ui.stop.disabled = false;
  ui.save.disabled = true;
  ui.timing.textContent = '';
  ui.bar.removeAttribute('value'); // indeterminate until the first step
  const t0 = performance.now();
  let sampleStart = 0;
  let last: { step: number; total: number; calls: number } | null = null;
  const totalSteps = s.steps;
  let phase = `Preparing: ${what} on ${backendText}`;
  const tick = (): void => {
    const el = performance.now() - t0;
    if (!last) ui.progressText.textContent = `${phase} · ${fmtS(el)}`;
    else {
      const per = (performance.now() - sampleStart) / Math.max(1, last.step);
      const left = Math.max(0, per * (last.total - last.step));
      ui.progressText.textContent = `Step ${last.step} of ${last.total} · ${fmtS(el)} elapsed · about ${fmtS(left)} left`;
    }
  };
  const timer = setInterval(tick, 250);
  tick();
  // Draw the newest step once per frame (events can arrive faster than the screen repaints).
  let pendingDraw: Extract<SampleEvent, { kind: 'step' }> | null = null;
  const drawStep = (): void => {
    const ev = pendingDraw;
    pendingDraw = null;
    if (!ev) return;
    const shown = s.xt && ev.xt ? ev.xt : ev.predX0;
    draw(ui.current, makeGrid(shown, { nrow, padding: 2 }));
    ui.current.setAttribute(
      'aria-label',
      `${s.xt ? 'Noisy images x_t' : "The model's guess of the final images"} at step ${ev.step} of ${ev.total}: ` +
        `${plural(s.n, 'image')} in a grid of ${nrow} columns`,
    );
    ui.currentCaption.textContent = `${s.xt ? 'Noisy image x_t' : 'Predicted x_0 (the model’s guess of the final image)'} at step ${ev.step} of ${ev.total} (t = ${ev.modelT + 1}).`;
  };
  const job = client.call(
    'sample',
    {
      model: m.model,
      provider,
      sampler: s.sampler,
      steps: s.steps,
      n: s.n,
      seed: s.seed,
      withXt: s.xt,
    },
    (ev) => {
      if (ev.kind === 'compiling') {
        phase = `Compiling the network for ${provider === 'wasm' ? 'WebAssembly' : 'WebGPU'} (once per backend and image count)`;
        tick();
        return;
      }
      if (!last) {
        sampleStart = performance.now() - ev.stepMs;
        record = columnSteps(ev.total);
        cols = Math.min(10, ev.total) + 1;
        status(`Generating ${what} on ${backendText} …`);
      }
      last = ev;
      ui.bar.max = ev.total;
      ui.bar.value = ev.step;
      const ms = (performance.now() - sampleStart) / ev.calls;
      const unit = ev.calls === ev.step ? 'step' : 'network pass';
      ui.timing.textContent = `${backendText} · ${ms.toFixed(0)} ms per ${unit} (${plural(s.n, 'image')} per ${unit})`;
      if (record.has(ev.step)) {
        frames.push({ data: ev.predX0.data.subarray(0, rows * per), shape: [rows, ...imgShape] });
        draw(ui.progress, progressStrip(frames, cols, rows, imgShape));
      }
      if (!pendingDraw) requestAnimationFrame(drawStep);
      pendingDraw = ev;
      tick();
    },
  );
  run = { id: job.id };
  try {
    const res = await job.done;
    pendingDraw = null;
    frames.push({ data: res.sample.data.subarray(0, rows * per), shape: [rows, ...imgShape] });
    draw(ui.current, makeGrid(res.sample, { nrow, padding: 2 }));
    draw(ui.progress, progressStrip(frames, cols, rows, imgShape));
    const gridText = `${plural(s.n, 'generated image')} in a grid of ${nrow} columns (${what})`;
    ui.current.setAttribute('aria-label', gridText);
    ui.currentCaption.textContent = `Result: ${what}.`;
    ui.progress.setAttribute(
      'aria-label',
      `How the model's guess of the final image sharpens over the ${plural(totalSteps, 'step')}, ` +
        `left to right, for the first ${plural(rows, 'image')} (one row each); the final samples last.`,
    );
    ui.bar.max = 1;
    ui.bar.value = 1;
    const msStep = res.sampleMs / res.calls;
    // Heun makes 2 network passes per step: its time is per pass.
    const unit = res.calls === totalSteps ? 'step' : 'network pass';
    ui.timing.textContent =
      `${backendText} · ${msStep.toFixed(0)} ms per ${unit} (${plural(s.n, 'image')} per ${unit}, ` +
      `${(msStep / s.n).toFixed(1)} ms per image) · ${plural(res.calls, 'network pass', 'network passes')} in ${fmtS(res.sampleMs)}` +
      (res.compileMs ? ` · compiled in ${fmtS(res.compileMs)}` : ' · compiled network reused');
    ui.progressText.textContent = `Done in ${fmtS(performance.now() - t0)}`;
    lastSample = {
      t: res.sample,
      name: `ddpm-${s.sampler}-${s.steps}-seed${s.seed}-n${s.n}.png`,
      model: m.model,
      provider,
      seed: s.seed,
    };
    ui.save.disabled = false;
    ui.blend.hidden = s.n < 2;
    ui.blendA.max = ui.blendB.max = String(s.n);
    status(`Done: ${what}, in ${fmtS(performance.now() - t0)}.`);
  } catch (e) {
    ui.bar.value = 0;
    if ((e as Error).name === 'AbortError') {
      status('Stopped.');
      ui.progressText.textContent = 'Stopped.';
    } else {
      ui.progressText.textContent = 'Failed.';
      status(
        `Generating failed on ${backendText}: ${(e as Error).message}` +
          (provider === 'webgpu' ? '\nChoose "CPU (WebAssembly)" under "Compute on" and try again.' : ''),
        true,
      );
    }
  } finally {
    clearInterval(timer);
    run = null;
    ui.sample.disabled = model === null;
    ui.stop.disabled = true;
  }
}

/** One image of a batch tensor. */
function imageOf(t: WireTensor, i: number): WireTensor {
  const per = t.data.length / t.shape[0]!;
  return { data: t.data.slice(i * per, (i + 1) * per), shape: [1, ...t.shape.slice(1)] };
}

function showMix(): void {
  if (!lastBlend) return;
  const i = Number(ui.mix.value);
  const lam = lastBlend.lambdas[i] ?? 0;
  draw(ui.blendOne, makeGrid(imageOf(lastBlend.images, i), { nrow: 1, padding: 0 }));
  const text = `mix ${lam.toFixed(3).replace(/\.?0+$/, '')} (${Math.round((1 - lam) * 100)}% first image, ${Math.round(lam * 100)}% second)`;
  ui.mixOut.textContent = text;
  ui.mix.setAttribute('aria-valuetext', text);
  ui.blendOne.setAttribute('aria-label', `The blended image at ${text}`);
  ui.blendCaption.textContent = `The blended image at ${text}.`;
}

async function runBlend(): Promise<void> {
  const src = lastSample;
  if (!src || run) return;
  const n = src.t.shape[0]!;
  const checks: [HTMLInputElement, string][] = [
    [ui.blendA, 'First image'],
    [ui.blendB, 'Second image'],
  ];
  const idx: number[] = [];
  for (const [input, what] of checks) {
    const c = checkInt(input.value, what, 1, n);
    input.setAttribute('aria-invalid', String(!c.ok));
    if (!c.ok) {
      status(`${c.message} (the grid's images are numbered 1 to ${n})`, true);
      input.focus();
      return;
    }
    idx.push(c.value - 1);
  }
  if (src.model !== model?.model) {
    status('A new model was loaded since these images were made: press Generate first, then Blend.', true);
    return;
  }
  const L = 9;
  ui.sample.disabled = ui.blendRun.disabled = true;
  ui.stop.disabled = false;
  ui.bar.removeAttribute('value');
  const t0 = performance.now();
  const what = `images ${idx[0]! + 1} and ${idx[1]! + 1}`;
  status(`Blending ${what} …`);
  const job = client.call(
    'interpolate',
    {
      model: src.model,
      provider: src.provider,
      a: imageOf(src.t, idx[0]!),
      b: imageOf(src.t, idx[1]!),
      lambdas: L,
      chain: 50,
      seed: src.seed,
    },
    (ev) => {
      if (ev.kind === 'compiling')
        ui.progressText.textContent = `Compiling the network for a batch of ${L} …`;
      else {
        ui.bar.max = ev.total;
        ui.bar.value = ev.step;
        const el = performance.now() - t0;
        ui.progressText.textContent =
          `Blending: step ${ev.step} of ${ev.total} · ${fmtS(el)} elapsed · about ` +
          `${fmtS((el / ev.step) * (ev.total - ev.step))} left`;
      }
    },
  );
  run = { id: job.id };
  try {
    const r = await job.done;
    lastBlend = { images: r.images, lambdas: r.lambdas };
    const withEnds = concatBatch([imageOf(src.t, idx[0]!), r.images, imageOf(src.t, idx[1]!)]);
    draw(ui.blendStrip, makeGrid(withEnds, { nrow: withEnds.shape[0]!, padding: 2 }));
    ui.blendStrip.setAttribute(
      'aria-label',
      `Image ${idx[0]! + 1}, then ${plural(L, 'mix', 'mixes')} from it to image ${idx[1]! + 1}, then image ${idx[1]! + 1}`,
    );
    ui.mix.max = String(L - 1);
    ui.mix.disabled = false;
    showMix();
    ui.bar.max = 1;
    ui.bar.value = 1;
    ui.progressText.textContent = `Blended in ${fmtS(performance.now() - t0)}`;
    status(
      `Blended ${what}: noised to t = ${r.t} of ${model?.T ?? r.t}, ${plural(L, 'mix', 'mixes')}, ` +
        `${plural(r.calls, 'network pass', 'network passes')} in ${fmtS(r.ms)}. Move the Mix slider.`,
    );
  } catch (e) {
    ui.bar.value = 0;
    if ((e as Error).name === 'AbortError') status('Stopped.');
    else status(`Blending failed: ${(e as Error).message}`, true);
  } finally {
    run = null;
    ui.sample.disabled = model === null;
    ui.blendRun.disabled = false;
    ui.stop.disabled = true;
  }
}

ui.blendForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void runBlend();
});
ui.mix.addEventListener('input', showMix);

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void runSample();
});
ui.stop.addEventListener('click', () => {
  if (run) client.cancel(run.id);
});
ui.load.addEventListener('click', () => {
  const url = ui.modelUrl.value.trim();
  if (!url) {
    status('Model folder URL: empty; enter the URL of a folder with config.json and model.safetensors', true);
    return;
  }
  void loadModel({ kind: 'url', url }, url);
});
ui.pick.addEventListener('change', async () => {
  const list = Array.from(ui.pick.files ?? []);
  if (!list.length) return;
  const wanted = list.filter((f) => /\.(json|safetensors)$/i.test(f.name));
  const files: PickedFile[] = await Promise.all(
    wanted.map(async (f) => ({ path: f.webkitRelativePath || f.name, data: await f.arrayBuffer() })),
  );
  const label = list[0]!.webkitRelativePath
    ? `the folder ${list[0]!.webkitRelativePath.split('/')[0]}`
    : `the picked ${plural(list.length, 'file')}`;
  ui.pick.value = '';
  void loadModel(
    { kind: 'files', files },
    label,
    files.map((f) => f.data),
  );
});
ui.save.addEventListener('click', () => {
  if (!lastSample) return;
  const n = lastSample.t.shape[0]!;
  const png = encodePng(makeGrid(lastSample.t, { nrow: Math.ceil(Math.sqrt(n)), padding: 2 }));
  const url = URL.createObjectURL(new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = lastSample.name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
});

// ---- training in the page (web/train.ts in the worker) ----

const tu = {
  form: el<HTMLFormElement>('trainForm'),
  data: el<HTMLSelectElement>('trainData'),
  imagesPick: el<HTMLDivElement>('imagesPick'),
  pick: el<HTMLInputElement>('trainPick'),
  drop: el<HTMLDivElement>('dropZone'),
  until: el<HTMLInputElement>('trainUntil'),
  batch: el<HTMLInputElement>('trainBatch'),
  lr: el<HTMLInputElement>('trainLr'),
  sampleEvery: el<HTMLInputElement>('trainSampleEvery'),
  seed: el<HTMLInputElement>('trainSeed'),
  start: el<HTMLButtonElement>('trainStart'),
  pause: el<HTMLButtonElement>('trainPause'),
  stop: el<HTMLButtonElement>('trainStop'),
  newRun: el<HTMLButtonElement>('trainNew'),
  download: el<HTMLButtonElement>('trainDownload'),
  use: el<HTMLButtonElement>('trainUse'),
  upload: el<HTMLInputElement>('trainUpload'),
  status: el<HTMLDivElement>('trainStatus'),
  stats: el<HTMLDivElement>('trainStats'),
  loss: el<HTMLCanvasElement>('lossCurve'),
  lossCaption: el<HTMLElement>('lossCaption'),
  samples: el<HTMLCanvasElement>('trainSamples'),
  samplesCaption: el<HTMLElement>('trainSamplesCaption'),
  resumeHint: el<HTMLDivElement>('resumeHint'),
};

/** Images of samples drawn during training. */
const TRAIN_SAMPLES = 16;
let trainJob: { id: number } | null = null;
let trainInfo: TrainInfo | null = null;
let trainPaused = false;
let trainImages: { name: string; files: PickedFile[] } | null = null;
let trainLosses: { step: number; loss: number }[] = [];
let trainStepsPerSec = 0;

function trainStatus(msg: string, error = false): void {
  tu.status.textContent = msg;
  tu.status.className = error ? 'error' : '';
}

const fmtLoss = (v: number): string => (v >= 0.1 ? v.toFixed(3) : v.toPrecision(3));

/** The mean loss of some steps. */
const meanLoss = (xs: readonly { loss: number }[]): number => xs.reduce((a, x) => a + x.loss, 0) / xs.length;

/** The loss curve on a log scale with its running mean (10 steps), and its text alternative. */
function drawLoss(): void {
  const c = tu.loss;
  const ctx = c.getContext('2d');
  const pts = trainLosses;
  if (!ctx) return;
  const W = c.width;
  const H = c.height;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  if (pts.length === 0) return;
  const pad = { l: 46, r: 8, t: 8, b: 22 };
  const logs = pts.map((p) => Math.log10(Math.max(p.loss, 1e-8)));
  let lo = Math.min(...logs);
  let hi = Math.max(...logs);
  if (hi - lo < 0.1) {
    lo -= 0.05;
    hi += 0.05;
  }
  const s0 = pts[0]!.step;
  const s1 = Math.max(pts.at(-1)!.step, s0 + 1);
  const x = (step: number) => pad.l + ((step - s0) / (s1 - s0)) * (W - pad.l - pad.r);
  const y = (lg: number) => pad.t + ((hi - lg) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.strokeStyle = '#bbb';
  ctx.fillStyle = '#333';
  ctx.font = '11px system-ui, sans-serif';
  ctx.lineWidth = 1;
  for (const lg of [lo, (lo + hi) / 2, hi]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, y(lg));
    ctx.lineTo(W - pad.r, y(lg));
    ctx.stroke();
    ctx.fillText(fmtLoss(10 ** lg), 2, y(lg) + 4);
  }
  ctx.fillText(`step ${s0}`, pad.l, H - 6);
  const end = `step ${pts.at(-1)!.step}`;
  ctx.fillText(end, W - pad.r - ctx.measureText(end).width, H - 6);
  ctx.strokeStyle = '#9ab8ee';
  ctx.beginPath();
  pts.forEach((p, i) => {
    if (i) ctx.lineTo(x(p.step), y(logs[i]!));
    else ctx.moveTo(x(p.step), y(logs[i]!));
  });
  ctx.stroke();
  ctx.strokeStyle = '#0b3d91';
  ctx.lineWidth = 2;
  ctx.beginPath();
  pts.forEach((p, i) => {
    const win = pts.slice(Math.max(0, i - 9), i + 1);
    const v = Math.log10(Math.max(meanLoss(win), 1e-8));
    if (i) ctx.lineTo(x(p.step), y(v));
    else ctx.moveTo(x(p.step), y(v));
  });
  ctx.stroke();
  const k = Math.min(10, pts.length);
  const first = meanLoss(pts.slice(0, k));
  const last = meanLoss(pts.slice(-k));
  const text =
    `Loss curve over ${plural(pts.length, 'step')} (steps ${s0} to ${pts.at(-1)!.step}): ` +
    `mean of the first ${k} ${fmtLoss(first)}, of the last ${k} ${fmtLoss(last)}, lowest ${fmtLoss(Math.min(...pts.map((p) => p.loss)))}.`;
  c.setAttribute('aria-label', text);
  tu.lossCaption.textContent = `${text} Log scale; the darker line is the running average of 10 steps.`;
}

/** The data the form names ('mnist' or 'folder:NAME'). */
function chosenData(): string {
  return tu.data.value === 'images' && trainImages ? `folder:${trainImages.name}` : 'mnist';
}

/** Whether Start continues the run in the worker: one exists, on the data the form names. */
const continues = (): boolean => trainInfo !== null && trainInfo.data === chosenData();

function trainButtons(): void {
  const running = trainJob !== null;
  tu.start.disabled = running;
  tu.start.textContent = continues() && !running ? 'Continue training' : 'Start training';
  tu.pause.disabled = !running;
  tu.stop.disabled = !running;
  tu.newRun.disabled = running || trainInfo === null;
  tu.download.disabled = trainInfo === null;
  tu.use.disabled = trainInfo === null;
  tu.upload.disabled = running;
  tu.pause.textContent = trainPaused ? 'Resume' : 'Pause';
  tu.pause.setAttribute('aria-pressed', String(trainPaused));
}

/** The Train form's values, or the message of the first bad one (and its control). */
function readTrainControls():
  | { ok: true; until: number; sampleEvery: number; config: PageTrainConfig }
  | { ok: false; message: string; input: HTMLInputElement } {
  const ints: [HTMLInputElement, string, number, number][] = [
    [tu.until, 'Train until step', 1, 1_000_000],
    [tu.batch, 'Images per step', 1, 256],
    [tu.sampleEvery, 'Show samples every', 0, 100_000],
    [tu.seed, 'Seed', 0, MAX_SEED],
  ];
  const v: number[] = [];
  for (const [input, what, lo, hi] of ints) {
    const c = checkInt(input.value, what, lo, hi);
    input.setAttribute('aria-invalid', String(!c.ok));
    if (!c.ok) return { ok: false, message: c.message, input };
    v.push(c.value);
  }
  const lr = Number(tu.lr.value.trim());
  const lrOk = tu.lr.value.trim() !== '' && Number.isFinite(lr) && lr > 0 && lr <= 1;
  tu.lr.setAttribute('aria-invalid', String(!lrOk));
  if (!lrOk)
    return {
      ok: false,
      message: `Learning rate: "${tu.lr.value.slice(0, 20)}" is not a number above 0 and at most 1 (e.g. 0.001)`,
      input: tu.lr,
    };
  const images = tu.data.value === 'images';
  if (images && !trainImages)
    return { ok: false, message: 'Your own images: choose or drop a folder of images first', input: tu.pick };
  return {
    ok: true,
    until: v[0]!,
    sampleEvery: v[2]!,
    config: {
      ...PAGE_TINY,
      data: images ? `folder:${trainImages!.name}` : 'mnist',
      batch: v[1]!,
      lr,
      seed: v[3]!,
    },
  };
}

function describeRun(i: TrainInfo): string {
  const what = i.data === 'mnist' ? 'handwritten digits' : `the images of ${i.data.slice('folder:'.length)}`;
  return (
    `${what} (${i.images.toLocaleString('en-US')}, ${i.channels === 1 ? 'grayscale' : 'colour'} ${i.resolution}×${i.resolution}), ` +
    `${(i.params / 1e6).toFixed(2)} million parameters, ${plural(i.batch, 'image')} per step, learning rate ${i.lr}`
  );
}

function showResumeHint(i: TrainInfo, until: number): void {
  tu.resumeHint.replaceChildren();
  const p = document.createElement('p');
  if (!i.resume.ok) {
    p.textContent = `This run cannot be resumed by ddpm train: ${i.resume.why}.`;
    tu.resumeHint.append(p);
    return;
  }
  p.textContent =
    'To continue this run on the command line, put the downloaded file in a run folder as checkpoint.safetensors and run' +
    (i.data.startsWith('folder:') ? ' (from the folder that holds the image folder):' : ':');
  const code = document.createElement('code');
  code.textContent = `mkdir -p runs/page && mv checkpoint.safetensors runs/page/\nddpm train --run runs/page ${i.resume.args.join(' ')} --steps ${Math.max(until, i.step + 1)}`;
  tu.resumeHint.append(p, code);
}

async function runTraining(from: TrainFrom): Promise<void> {
  if (trainJob) return;
  const r = readTrainControls();
  if (!r.ok) {
    trainStatus(r.message, true);
    r.input.focus();
    return;
  }
  const provider = ui.backend.value as ExecutionProvider;
  const backendText =
    provider === 'wasm'
      ? `CPU (WebAssembly), ${plural(env?.threads ?? 1, 'thread')}`
      : `GPU (WebGPU${env?.webgpu.software ? ', software adapter' : ''})`;
  if (from.kind !== 'current') trainLosses = [];
  trainPaused = false;
  const images = trainImages ?? undefined;
  const args: TrainArgs = {
    from,
    ...(images ? { images } : {}),
    provider,
    until: r.until,
    sampleEvery: r.sampleEvery,
    sampleCount: TRAIN_SAMPLES,
  };
  trainStatus(
    from.kind === 'checkpoint' ? `Reading ${from.name} …` : `Preparing the training on ${backendText} …`,
  );
  let ready: TrainInfo | null = null;
  const job = client.call('train', args, (ev: TrainEvent) => {
    switch (ev.kind) {
      case 'compiling':
        trainStatus(
          `Building the training network for ${provider === 'wasm' ? 'WebAssembly' : 'WebGPU'} (the network, its loss and every gradient, as ddpm train does) …`,
        );
        break;
      case 'ready': {
        ready = ev;
        trainInfo = ev;
        trainButtons();
        trainStatus(
          `Training ${from.kind === 'checkpoint' ? `from ${from.name} ` : ''}from step ${ev.step} to ${r.until} on ${backendText}: ${describeRun(ev)}.`,
        );
        showResumeHint(ev, r.until);
        if (ev.step >= r.until)
          trainStatus(
            `The run is at step ${ev.step} already: set "Train until step" above ${ev.step} and press Continue training.`,
          );
        break;
      }
      case 'step': {
        trainLosses.push({ step: ev.step, loss: ev.loss });
        trainStepsPerSec = ev.stepsPerSec;
        if (trainInfo) trainInfo = { ...trainInfo, step: ev.step };
        tu.stats.textContent =
          `Step ${ev.step} of ${r.until} · loss ${fmtLoss(ev.loss)} · ${trainStepsPerSec.toFixed(2)} steps/s on ${backendText} · ` +
          `epoch ${ev.epoch.toFixed(3)} · learning rate ${ev.lr.toPrecision(3)}`;
        if (!pendingLoss) {
          pendingLoss = true;
          requestAnimationFrame(() => {
            pendingLoss = false;
            drawLoss();
          });
        }
        break;
      }
      case 'sampling':
        tu.samplesCaption.textContent = `Drawing samples at step ${ev.step} …`;
        break;
      case 'samples': {
        const n = ev.images.shape[0]!;
        const nrow = Math.ceil(Math.sqrt(n));
        draw(tu.samples, makeGrid(ev.images, { nrow, padding: 1 }));
        const text = `${plural(n, 'sample')} of the model at step ${ev.step} (its average weights, DPM-Solver++ 20 steps, seed 0), in a grid of ${nrow} columns`;
        tu.samples.setAttribute('aria-label', text);
        tu.samplesCaption.textContent = `${text}; drawn in ${fmtS(ev.ms)}.`;
        break;
      }
      case 'paused':
        trainStatus(`Paused at step ${ev.step}. Press Resume to go on, or download the checkpoint.`);
        break;
      case 'resumed':
        trainStatus(`Training again from step ${ev.step} to ${r.until} on ${backendText}.`);
        break;
    }
  });
  trainJob = { id: job.id };
  trainButtons();
  try {
    const done = await job.done;
    drawLoss();
    const info = trainInfo as TrainInfo | null;
    if (info) showResumeHint(info, r.until);
    if (done.stopped)
      trainStatus(`Stopped at step ${done.step}. Continue training, or download the checkpoint.`);
    else if (ready)
      trainStatus(
        `Done: step ${done.step}${trainLosses.length ? `, loss ${fmtLoss(meanLoss(trainLosses.slice(-10)))} (mean of the last ${Math.min(10, trainLosses.length)} steps)` : ''}. Raise "Train until step" to continue, or download the checkpoint.`,
      );
  } catch (e) {
    trainStatus(
      `Training failed: ${(e as Error).message}` +
        (provider === 'webgpu' ? '\nChoose "CPU (WebAssembly)" under "Compute on" and try again.' : ''),
      true,
    );
  } finally {
    trainJob = null;
    trainPaused = false;
    trainButtons();
  }
}
let pendingLoss = false;

tu.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const r = readTrainControls();
  if (!r.ok) {
    trainStatus(r.message, true);
    r.input.focus();
    return;
  }
  void runTraining(continues() ? { kind: 'current' } : { kind: 'new', config: r.config });
});
tu.newRun.addEventListener('click', () => {
  const r = readTrainControls();
  if (!r.ok) {
    trainStatus(r.message, true);
    r.input.focus();
    return;
  }
  void runTraining({ kind: 'new', config: r.config });
});
tu.pause.addEventListener('click', async () => {
  if (!trainJob) return;
  trainPaused = !trainPaused;
  trainButtons();
  try {
    await client.call('trainControl', { action: trainPaused ? 'pause' : 'resume' }).done;
  } catch (e) {
    trainStatus(`Could not ${trainPaused ? 'pause' : 'resume'}: ${(e as Error).message}`, true);
  }
});
tu.stop.addEventListener('click', () => {
  if (trainJob) client.cancel(trainJob.id);
});
tu.download.addEventListener('click', async () => {
  try {
    const ck = await client.call('trainCheckpoint', {}).done;
    const url = URL.createObjectURL(new Blob([ck.data], { type: 'application/octet-stream' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'checkpoint.safetensors';
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    trainStatus(
      `Downloaded the checkpoint of step ${ck.step} (${(ck.data.byteLength / 1e6).toFixed(1)} MB: weights, their average, Adam's moments, the random streams and the options).`,
    );
  } catch (e) {
    trainStatus(`Could not download the checkpoint: ${(e as Error).message}`, true);
  }
});
/** The run's average (EMA) weights become the model of the Drawing section. */
tu.use.addEventListener('click', async () => {
  const seq = ++loadSeq;
  try {
    const info = await client.call('trainModel', {}).done;
    if (!adoptModel(info, seq)) return;
    ui.sample.disabled = run !== null;
    status(`Using ${info.source}.${run ? ' The next run uses it.' : ' Press Generate.'}`);
    trainStatus(`The Drawing section above now uses ${info.source}: press Generate there.`);
  } catch (e) {
    trainStatus(`Could not use the model: ${(e as Error).message}`, true);
  }
});
tu.upload.addEventListener('change', async () => {
  const f = tu.upload.files?.[0];
  tu.upload.value = '';
  if (!f || trainJob) return;
  const data = await f.arrayBuffer();
  void runTraining({ kind: 'checkpoint', name: f.name, data });
});
tu.data.addEventListener('change', () => {
  tu.imagesPick.hidden = tu.data.value !== 'images';
  trainButtons();
});

function setImages(name: string, files: PickedFile[]): void {
  const pics = files.filter((f) => /\.(png|jpe?g)$/i.test(f.path));
  if (!pics.length) {
    trainStatus(`${name}: no PNG or JPEG images in it`, true);
    return;
  }
  trainImages = { name, files: pics };
  tu.data.value = 'images';
  tu.imagesPick.hidden = false;
  tu.drop.textContent = `${plural(pics.length, 'image')} from the folder ${name}. Drop another folder to replace them.`;
  trainButtons();
  trainStatus(`${plural(pics.length, 'image')} from ${name} ready: press Start training.`);
}

/** Paths inside the picked folder (its own name stripped). */
function withinFolder(paths: string[]): { name: string; paths: string[] } {
  const first = paths[0]?.split('/')[0] ?? 'images';
  const all = paths.length > 0 && paths.every((p) => p.startsWith(`${first}/`));
  return { name: all ? first : 'images', paths: all ? paths.map((p) => p.slice(first.length + 1)) : paths };
}

tu.pick.addEventListener('change', async () => {
  const list = Array.from(tu.pick.files ?? []);
  tu.pick.value = '';
  if (!list.length) return;
  const w = withinFolder(list.map((f) => f.webkitRelativePath || f.name));
  const files = await Promise.all(
    list.map(async (f, i) => ({ path: w.paths[i]!, data: await f.arrayBuffer() })),
  );
  setImages(w.name, files);
});

/** Every file under a dropped entry, with its path relative to the drop. */
async function entryFiles(e: FileSystemEntry, out: PickedFile[]): Promise<void> {
  if (e.isFile) {
    const f = await new Promise<File>((ok, err) => (e as FileSystemFileEntry).file(ok, err));
    out.push({ path: e.fullPath.replace(/^\/+/, ''), data: await f.arrayBuffer() });
  } else if (e.isDirectory) {
    const reader = (e as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((ok, err) => reader.readEntries(ok, err));
      if (!batch.length) break;
      for (const c of batch) await entryFiles(c, out);
    }
  }
}

tu.drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  tu.drop.classList.add('over');
});
tu.drop.addEventListener('dragleave', () => tu.drop.classList.remove('over'));
tu.drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  tu.drop.classList.remove('over');
  const items = Array.from(e.dataTransfer?.items ?? []);
  const entries = items.map((i) => i.webkitGetAsEntry()).filter((x) => x !== null);
  const files: PickedFile[] = [];
  try {
    for (const en of entries) await entryFiles(en, files);
    // Loose files where the browser gives no entries (no folder structure): their names as paths.
    if (!entries.length) {
      for (const f of Array.from(e.dataTransfer?.files ?? []))
        files.push({ path: f.name, data: await f.arrayBuffer() });
    }
  } catch (err) {
    trainStatus(`Could not read the dropped files: ${(err as Error).message}`, true);
    return;
  }
  const w = withinFolder(files.map((f) => f.path));
  setImages(
    w.name,
    files.map((f, i) => ({ path: w.paths[i]!, data: f.data })),
  );
});
trainButtons();
drawLoss();

// ---- test hook (test/web.test.ts) ----

export interface DdpmTestHook {
  readonly threads: number;
  readonly env: WorkerEnv;
  webgpu(): Promise<{ ok: boolean; info: string; software: boolean }>;
  /** U-Net forward of initParams(cfg, 'fixture') on fixtureInputs(cfg, batch), in the worker. */
  forward(a: { cfg: UNetConfig; batch: number; provider: ExecutionProvider; repeats?: number }): Promise<{
    out: number[];
    shape: number[];
    setupMs: number;
    firstMs: number;
    forwardMs: number[];
  }>;
  /** Sampling from the model folder at modelUrl in the worker, as the Generate button runs it. */
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
    compileMs: number;
    sampleMs: number;
    calls: number;
    threads: number;
    stepsSeen: number;
  }>;
  /** A training run in the worker from a config, as the Train form starts one (gradsAtStep: that step's gradients). */
  trainRaw(a: {
    config: PageTrainConfig;
    until: number;
    provider: ExecutionProvider;
    gradsAtStep?: number;
  }): Promise<{
    steps: number[];
    losses: number[];
    stepMs: number[];
    info: TrainInfo;
    grads: { names: string[]; b64: string[] } | null;
  }>;
  /** The worker's run: its checkpoint file as base64. */
  trainCheckpoint(): Promise<{ step: number; b64: string }>;
  /** What the Train section has seen: every step's loss, the run, the last steps/s. */
  training(): {
    steps: number[];
    losses: number[];
    info: TrainInfo | null;
    stepsPerSec: number;
    running: boolean;
  };
}

/** Bytes as base64 (test hook: large arrays cross to the test as one string). */
function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

declare global {
  interface Window {
    ddpmTest?: DdpmTestHook;
  }
}

function installTestHook(e: WorkerEnv): void {
  window.ddpmTest = {
    threads: e.threads,
    env: e,
    webgpu: async () => e.webgpu,
    async forward(a) {
      const r = await client.call('forward', a).done;
      return {
        out: Array.from(r.out.data),
        shape: r.out.shape,
        setupMs: r.setupMs,
        firstMs: r.firstMs,
        forwardMs: r.forwardMs,
      };
    },
    async trainRaw({ config, until, provider, gradsAtStep }) {
      const steps: number[] = [];
      const losses: number[] = [];
      const stepMs: number[] = [];
      let info: TrainInfo | null = null;
      let grads: { names: string[]; b64: string[] } | null = null;
      await client.call(
        'train',
        {
          from: { kind: 'new', config },
          provider,
          until,
          sampleEvery: 0,
          sampleCount: 0,
          ...(gradsAtStep !== undefined ? { gradsAtStep } : {}),
        },
        (ev) => {
          if (ev.kind === 'ready') info = ev;
          if (ev.kind !== 'step') return;
          steps.push(ev.step);
          losses.push(ev.loss);
          stepMs.push(ev.stepMs);
          if (ev.grads)
            grads = {
              names: ev.grads.names,
              b64: ev.grads.data.map((g) => toBase64(new Uint8Array(g.buffer, g.byteOffset, g.byteLength))),
            };
        },
      ).done;
      trainInfo = info;
      trainButtons();
      return { steps, losses, stepMs, info: info!, grads };
    },
    async trainCheckpoint() {
      const ck = await client.call('trainCheckpoint', {}).done;
      return { step: ck.step, b64: toBase64(new Uint8Array(ck.data)) };
    },
    training: () => ({
      steps: trainLosses.map((p) => p.step),
      losses: trainLosses.map((p) => p.loss),
      info: trainInfo,
      stepsPerSec: trainStepsPerSec,
      running: trainJob !== null,
    }),
    async sample({ modelUrl, seed, sampler, steps, n, provider }) {
      const info = await client.call('load', { source: { kind: 'url', url: modelUrl } }).done;
      let stepsSeen = 0;
      try {
        const r = await client.call(
          'sample',
          { model: info.model, provider, sampler, steps, n, seed, withXt: false },
          (ev) => {
            if (ev.kind === 'step') stepsSeen++;
          },
        ).done;
        return {
          sample: Array.from(r.sample.data),
          shape: r.sample.shape,
          compileMs: r.compileMs,
          sampleMs: r.sampleMs,
          calls: r.calls,
          threads: r.threads,
          stepsSeen,
        };
      } finally {
        await client.call('drop', { model: info.model }).done;
      }
    },
  };
}

// ---- start ----

void (async () => {
  status('Starting the worker …');
  try {
    env = await client.call('env', {
      wasmPaths: new URL('./ort/', import.meta.url).href,
      threads: settings.threads,
    }).done;
  } catch (e) {
    status(`Could not start the worker: ${(e as Error).message}`, true);
    return;
  }
  const iso = env.crossOriginIsolated;
  ui.runtime.textContent = iso
    ? `Runs in a background worker: CPU (WebAssembly) with ${plural(env.threads, 'thread')} ` +
      `of ${plural(env.hardwareConcurrency, 'logical core')}` +
      (env.webgpu.ok ? `, or the GPU (WebGPU: ${env.webgpu.info}).` : '; WebGPU is not available here.')
    : `Runs in a background worker on 1 thread: this page is not cross-origin isolated (the server does not send ` +
      'the Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp headers; ' +
      'see the README), so WebAssembly cannot use more cores.' +
      (env.webgpu.ok ? ` WebGPU: ${env.webgpu.info}.` : '');
  if (!iso && settings.threads !== undefined && settings.threads > 1)
    notice(`?threads=${settings.threads} needs a cross-origin isolated page (see above): using 1 thread.`);
  const opt = ui.backend.querySelector<HTMLOptionElement>('option[value="webgpu"]')!;
  opt.disabled = !env.webgpu.ok;
  opt.textContent = !env.webgpu.ok
    ? 'GPU (WebGPU): unavailable'
    : env.webgpu.software
      ? 'GPU (WebGPU): software only, slow'
      : 'GPU (WebGPU)';
  opt.title = env.webgpu.info;
  if (settings.backend === 'webgpu' && !env.webgpu.ok) {
    notice(`?backend=webgpu: WebGPU is not available here (${env.webgpu.info}). Using the CPU.`);
    settings = { ...settings, backend: 'wasm' };
  }
  ui.backend.value = settings.backend ?? autoBackend(env.webgpu);
  showGpuWarning();
  installTestHook(env);
  await loadModel({ kind: 'url', url: settings.model }, settings.model);
  // Steps beyond this model's T (the URL was read before T was known).
  const m = model as ModelInfo | null;
  if (m && settings.steps > m.T) {
    const steps = Math.min(DEFAULTS.steps, m.T);
    notice(`?steps=${settings.steps}: this model has ${m.T} noise levels; using ${steps} steps.`);
    ui.steps.value = String(steps);
    syncUrl();
  }
})();
