// The demo's module worker: all inference happens here, so the page never blocks. It owns onnxruntime-web
// (multi-threaded wasm when the page is cross-origin isolated, WebGPU when asked), the loaded models and
// their compiled sessions, and answers the calls of protocol.ts. Loading a model never touches a session
// in use: a model the page drops is released once the run using it has ended. Sampling runs one call at
// a time; between network calls the worker yields to its message queue, so a cancel is seen at once.
// Training (web/train.ts) runs here too: one run at a time, each of its steps a job of the same queue, so a
// sampling call waits at most one step; pause, resume and checkpoint downloads are served between steps.

import { interpolate } from '../diffusion/interpolate.js';
import { respacedDiffusion, spacedTimesteps } from '../diffusion/respace.js';
import { concatBatch, type Tensor } from '../util/tensor.js';
import { parseMnistBin } from '../data/mnistDigits.js';
import type { ExecutionProvider } from '../engine/engine.js';
import { diffusionFromSpec } from '../model/spec.js';
import { countParams } from '../nn/unet.js';
import { decodeCheckpoint } from '../train/checkpointCodec.js';
import { cloneParams } from '../train/optim.js';
import type { RunIdentityOptions } from '../train/step.js';
import type { UNetDenoiser } from '../sample/denoiser.js';
import { Rng } from '../util/rng.js';
import {
  compileModel,
  fetchModel,
  fixtureForward,
  modelFromFiles,
  sampleImages,
  type WebModel,
} from './core.js';
import { configureOrt, webEngine, webGpuStatus } from './engine.js';
import {
  digitsDataset,
  imagesDataset,
  optionsOfIdentity,
  PageTrainer,
  pageRunOptions,
  resumeArgs,
} from './train.js';
import {
  type FromWorker,
  type InterpolateDone,
  type ModelInfo,
  type ModelSource,
  type OpName,
  type SampleDone,
  type SampleEvent,
  type ToWorker,
  type TrainArgs,
  type TrainDone,
  type TrainEvent,
  type TrainInfo,
  transferables,
  type WireTensor,
  type WorkerEnv,
  type WorkerOps,
} from './protocol.js';

interface Entry {
  readonly model: WebModel;
  /** The compiled session of the last run (provider and batch), kept for the next run. */
  compiled: { key: string; den: UNetDenoiser } | null;
  /** Running calls that use the model. */
  users: number;
  dropped: boolean;
}

const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void =>
  (self as unknown as Worker).postMessage(m, transfer);

let threads = 1;
let nextModel = 1;
const models = new Map<number, Entry>();
const cancels = new Map<number, AbortController>();
/** Sampling and forward calls run one after another. */
let queue: Promise<unknown> = Promise.resolve();

/** A macrotask boundary (faster than setTimeout's clamped 4 ms): lets 'cancel' messages in. */
function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

async function releaseEntry(e: Entry): Promise<void> {
  const c = e.compiled;
  e.compiled = null;
  if (c) await c.den.release();
}

function entryOf(model: number): Entry {
  const e = models.get(model);
  if (!e || e.dropped) throw new Error(`no loaded model #${model} (load one first)`);
  return e;
}

const wire = (data: Float32Array, shape: readonly number[]): WireTensor => ({
  data: data.slice(),
  shape: [...shape],
});

async function loadSource(source: ModelSource): Promise<WebModel> {
  if (source.kind === 'url') return fetchModel(new URL(source.url, location.href).href);
  // Picked folder: paths relative to it (the folder's own name stripped when every path has it).
  const paths = source.files.map((f) => f.path.replace(/^\/+/, ''));
  const first = paths[0]?.split('/')[0];
  const strip = first !== undefined && paths.every((p) => p.startsWith(`${first}/`)) ? first.length + 1 : 0;
  const files = new Map(paths.map((p, i) => [p.slice(strip), new Uint8Array(source.files[i]!.data)]));
  return modelFromFiles(files, strip ? `${first}/` : 'the picked files: ');
}

const ops: { [K in OpName]: (a: WorkerOps[K]['args'], ctx: CallCtx<K>) => Promise<WorkerOps[K]['result']> } =
  {
    async env(a): Promise<WorkerEnv> {
      threads = configureOrt({ wasmPaths: a.wasmPaths, threads: a.threads });
      return {
        threads,
        crossOriginIsolated: typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated,
        hardwareConcurrency: navigator.hardwareConcurrency || 1,
        webgpu: await webGpuStatus(),
      };
    },
    async load(a): Promise<ModelInfo> {
      const t0 = performance.now();
      const model = await loadSource(a.source);
      const id = nextModel++;
      models.set(id, { model, compiled: null, users: 0, dropped: false });
      const c = model.spec.unet;
      return {
        model: id,
        source: model.source,
        params: countParams(c),
        channels: c.inChannels,
        resolution: c.resolution,
        T: model.spec.diffusion.T,
        data: model.spec.data,
        loadMs: performance.now() - t0,
      };
    },
    async drop(a) {
      const e = models.get(a.model);
      if (e) {
        e.dropped = true;
        if (e.users === 0) {
          models.delete(a.model);
          await releaseEntry(e);
        }
      }
      return null;
    },
    prepare: (a) =>
      serial(() =>
        using(a.model, async (e) => ({
          compileMs: (await compiled(e, a.provider, a.batch, () => undefined)).compileMs,
        })),
      ),
    sample: (a, ctx) => serial(() => sample(a, ctx)),
    interpolate: (a, ctx) => serial(() => blend(a, ctx)),
    train: (a, ctx) => trainOp(a, ctx),
    async trainControl(a) {
      const t = training;
      if (!t) throw new Error('no training is running');
      t.paused = a.action === 'pause';
      if (!t.paused) t.wake?.();
      return { step: trainRun?.trainer.step ?? 0, paused: t.paused };
    },
    trainCheckpoint: () =>
      serial(async () => {
        const run = trainRun;
        if (!run) throw new Error('no training run yet: start one first');
        const parts = run.trainer.checkpoint();
        return { data: concatBytes(parts).buffer as ArrayBuffer, step: run.trainer.step };
      }),
    trainModel: () =>
      serial(async () => {
        const run = trainRun;
        if (!run) throw new Error('no training run yet: start one first');
        const t0 = performance.now();
        const spec = run.trainer.options.spec;
        const model: WebModel = {
          spec,
          params: cloneParams(run.trainer.ema),
          source: `the model trained in this page (step ${run.trainer.step})`,
        };
        const id = nextModel++;
        models.set(id, { model, compiled: null, users: 0, dropped: false });
        return {
          model: id,
          source: model.source,
          params: countParams(spec.unet),
          channels: spec.unet.inChannels,
          resolution: spec.unet.resolution,
          T: spec.diffusion.T,
          data: spec.data,
          loadMs: performance.now() - t0,
        };
      }),
    forward: (a) =>
      serial(async () => {
        const r = await fixtureForward(webEngine(a.provider), a.cfg, a.batch, {
          provider: a.provider,
          repeats: a.repeats,
        });
        return {
          out: wire(r.out.data, r.out.shape),
          setupMs: r.setupMs,
          firstMs: r.firstMs,
          forwardMs: r.forwardMs,
        };
      }),
  };

function serial<T>(f: () => Promise<T>): Promise<T> {
  const run = queue.then(f, f);
  queue = run.catch(() => undefined);
  return run;
}

interface CallCtx<K extends OpName> {
  readonly signal: AbortSignal;
  emit(event: WorkerOps[K]['event']): void;
}

/** The model's session for (provider, batch): the last one when it matches, else a new one. */
async function compiled(
  e: Entry,
  provider: ExecutionProvider,
  batch: number,
  onCompile: () => void,
): Promise<{ den: UNetDenoiser; compileMs: number }> {
  const key = `${provider}|${batch}`;
  if (e.compiled?.key === key) return { den: e.compiled.den, compileMs: 0 };
  await releaseEntry(e);
  onCompile();
  const t0 = performance.now();
  const den = await compileModel(webEngine(provider), e.model, batch, { provider });
  e.compiled = { key, den };
  return { den, compileMs: performance.now() - t0 };
}

/** Run f with the model held (a drop waits for it); a failed session (not a stop) is not reused. */
async function using<T>(model: number, f: (e: Entry) => Promise<T>): Promise<T> {
  const e = entryOf(model);
  e.users++;
  try {
    return await f(e);
  } catch (err) {
    if ((err as Error).name !== 'AbortError') await releaseEntry(e).catch(() => undefined);
    throw err;
  } finally {
    e.users--;
    if (e.dropped && e.users === 0 && models.get(model) === e) {
      models.delete(model);
      await releaseEntry(e).catch(() => undefined);
    }
  }
}

const stopped = () => new DOMException('stopped', 'AbortError');

function blend(a: WorkerOps['interpolate']['args'], ctx: CallCtx<'interpolate'>): Promise<InterpolateDone> {
  return using(a.model, async (e) => {
    const L = Math.max(2, Math.floor(a.lambdas));
    const { den, compileMs } = await compiled(e, a.provider, L, () =>
      ctx.emit({ kind: 'compiling', provider: a.provider, batch: L }),
    );
    const base = diffusionFromSpec(e.model.spec.diffusion);
    const T = base.numTimesteps;
    const K = Math.max(2, Math.min(T, Math.floor(a.chain)));
    const chain = K < T ? respacedDiffusion(base, spacedTimesteps(T, String(K))) : base;
    const t = Math.floor(chain.numTimesteps / 2);
    let calls = 0;
    const t0 = performance.now();
    const res = await interpolate(
      chain,
      async (x: Tensor, tt: Int32Array) => {
        await yieldToMessages();
        if (ctx.signal.aborted) throw stopped();
        calls++;
        return den.denoise(x, tt);
      },
      { data: a.a.data, shape: a.a.shape },
      { data: a.b.data, shape: a.b.shape },
      new Rng(a.seed),
      {
        t,
        lambdas: Array.from({ length: L }, (_, i) => i / (L - 1)),
        onProgress: (p) => ctx.emit({ kind: 'progress', step: p.step, total: p.total }),
      },
    );
    const all = concatBatch(res.images);
    return {
      images: { data: all.data.slice(), shape: [...all.shape] },
      lambdas: res.lambdas,
      t: chain.timestepMap[t]! + 1,
      compileMs,
      ms: performance.now() - t0,
      calls,
    };
  });
}

function sample(a: WorkerOps['sample']['args'], ctx: CallCtx<'sample'>): Promise<SampleDone> {
  return using(a.model, async (e) => {
    if (ctx.signal.aborted) throw stopped();
    const { den, compileMs } = await compiled(e, a.provider, a.n, () =>
      ctx.emit({ kind: 'compiling', provider: a.provider, batch: a.n }),
    );
    const res = await sampleImages(webEngine(a.provider), e.model, {
      seed: a.seed,
      sampler: a.sampler,
      steps: a.steps,
      n: a.n,
      provider: a.provider,
      denoiser: den,
      signal: ctx.signal,
      pause: yieldToMessages,
      onStep: (s) =>
        ctx.emit({
          kind: 'step',
          step: s.step,
          total: s.total,
          calls: s.calls,
          stepMs: s.stepMs,
          modelT: s.modelT,
          predX0: wire(s.predXstart.data, s.predXstart.shape),
          xt: a.withXt ? wire(s.xt.data, s.xt.shape) : undefined,
        } satisfies SampleEvent),
    });
    return {
      sample: wire(res.sample.data, res.sample.shape),
      compileMs,
      sampleMs: res.sampleMs,
      calls: res.calls,
      threads: a.provider === 'wasm' ? threads : 0,
    };
  });
}

// ---- training ----

/** The run in the worker (kept after its call ends: download, continue). */
let trainRun: { trainer: PageTrainer; provider: ExecutionProvider; info: TrainInfo } | null = null;
/** The training loop while a 'train' call runs. */
let training: { paused: boolean; wake: (() => void) | null } | null = null;
let digits: Promise<Uint8Array[]> | null = null;

/** The embedded digits (dist-web/data/mnist-digits.bin, beside worker.js), fetched once. */
function loadDigits(): Promise<Uint8Array[]> {
  if (!digits) {
    const url = new URL('./data/mnist-digits.bin', self.location.href).href;
    digits = (async () => {
      const r = await fetch(url);
      if (!r.ok)
        throw new Error(
          `${url}: HTTP ${r.status}: the digits are missing (build the page with npm run build:web)`,
        );
      return parseMnistBin(new Uint8Array(await r.arrayBuffer()), url);
    })();
    digits.catch(() => {
      digits = null;
    });
  }
  return digits;
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Build the trainer a 'train' call asks for (or keep the one in the worker). */
async function trainerFor(a: TrainArgs, ctx: CallCtx<'train'>): Promise<NonNullable<typeof trainRun>> {
  const cur = trainRun;
  if (a.from.kind === 'current' && cur && cur.provider === a.provider) return cur;
  let options: RunIdentityOptions;
  let from: Parameters<typeof PageTrainer.create>[3];
  switch (a.from.kind) {
    case 'new': {
      const c = a.from.config;
      // A folder's images: colour or grayscale as ddpm train decides for a folder (imagesDataset).
      const channels =
        c.data.startsWith('folder:') && a.images
          ? (imagesDataset(
              a.images.files.map((f) => ({ path: f.path, data: new Uint8Array(f.data) })),
              a.images.name,
              c.resolution,
            ).channels as 1 | 3)
          : c.channels;
      options = pageRunOptions({ ...c, channels });
      break;
    }
    case 'checkpoint': {
      const ck = decodeCheckpoint(new Uint8Array(a.from.data), a.from.name);
      options = optionsOfIdentity(ck.meta.identity as Record<string, unknown>, a.from.name);
      from = { ck, source: a.from.name };
      break;
    }
    case 'current': {
      // The run continues on another backend: rebuilt from its own checkpoint.
      if (!cur) throw new Error('no training run to continue: start one');
      const name = `the run at step ${cur.trainer.step}`;
      const ck = decodeCheckpoint(await serial(async () => concatBytes(cur.trainer.checkpoint())), name);
      options = cur.trainer.options;
      from = { ck, source: name };
      break;
    }
  }
  const u = options.spec.unet;
  const channels = u.inChannels as 1 | 3;
  let dataset: ReturnType<typeof digitsDataset>;
  if (options.data === 'mnist') dataset = digitsDataset(await loadDigits(), u.resolution, channels);
  else if (options.data.startsWith('folder:') && a.images)
    dataset = imagesDataset(
      a.images.files.map((f) => ({ path: f.path, data: new Uint8Array(f.data) })),
      a.images.name,
      u.resolution,
      channels,
    );
  else
    throw new Error(
      `the run trains on ${options.data}: choose that folder under "Your own images" first (the page has the built-in digits and folders you give it)`,
    );
  ctx.emit({ kind: 'compiling', provider: a.provider });
  const t0 = performance.now();
  const trainer = await serial(() => PageTrainer.create(webEngine(a.provider), options, dataset, from));
  const compileMs = performance.now() - t0;
  if (cur) await serial(() => cur.trainer.release()).catch(() => undefined);
  const info: TrainInfo = {
    step: trainer.step,
    params: countParams(u),
    data: options.data,
    images: dataset.n,
    channels: u.inChannels,
    resolution: u.resolution,
    batch: options.batch,
    lr: options.adam.lr,
    warmup: options.adam.warmup,
    emaDecay: options.emaDecay,
    seed: options.seed,
    resume: resumeArgs(options),
    threads: a.provider === 'wasm' ? threads : 0,
    compileMs,
  };
  trainRun = { trainer, provider: a.provider, info };
  return trainRun;
}

async function trainOp(a: TrainArgs, ctx: CallCtx<'train'>): Promise<TrainDone> {
  if (training) throw new Error('a training run is already going: pause it or stop it first');
  const loop = { paused: a.paused === true, wake: null as (() => void) | null };
  training = loop;
  try {
    const run = await trainerFor(a, ctx);
    const { trainer } = run;
    ctx.emit({ kind: 'ready', ...run.info, step: trainer.step });
    const recent: number[] = [];
    const wake = () => loop.wake?.();
    ctx.signal.addEventListener('abort', wake);
    let samplesAt = -1;
    const samples = async () => {
      if (samplesAt === trainer.step) return;
      samplesAt = trainer.step;
      ctx.emit({ kind: 'sampling', step: trainer.step });
      const t0 = performance.now();
      const ema = cloneParams(trainer.ema);
      const res = await serial(() =>
        sampleImages(
          webEngine(a.provider),
          { spec: trainer.options.spec, params: ema, source: 'the run in this page' },
          { seed: 0, sampler: 'dpm++2m', steps: 20, n: a.sampleCount, provider: a.provider },
        ),
      );
      ctx.emit({
        kind: 'samples',
        step: trainer.step,
        images: wire(res.sample.data, res.sample.shape),
        ms: performance.now() - t0,
      });
    };
    while (trainer.step < a.until) {
      await yieldToMessages();
      if (ctx.signal.aborted) break;
      if (loop.paused) {
        ctx.emit({ kind: 'paused', step: trainer.step });
        while (loop.paused && !ctx.signal.aborted) await new Promise<void>((r) => (loop.wake = r));
        loop.wake = null;
        if (ctx.signal.aborted) break;
        ctx.emit({ kind: 'resumed', step: trainer.step });
        recent.length = 0;
      }
      const t0 = performance.now();
      const r = await serial(() => trainer.next());
      const stepMs = performance.now() - t0;
      recent.push(stepMs);
      if (recent.length > 10) recent.shift();
      const mean = recent.reduce((x, y) => x + y, 0) / recent.length;
      const grads =
        a.gradsAtStep === r.step
          ? { names: [...r.grads.keys()], data: [...r.grads.values()].map((g) => g.slice()) }
          : undefined;
      ctx.emit({
        kind: 'step',
        step: r.step,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        epoch: trainer.epochs,
        stepMs,
        stepsPerSec: 1000 / mean,
        ...(grads ? { grads } : {}),
      } satisfies TrainEvent);
      if (a.sampleEvery > 0 && (r.step % a.sampleEvery === 0 || r.step === a.until)) await samples();
    }
    ctx.signal.removeEventListener('abort', wake);
    return { step: trainer.step, stopped: trainer.step < a.until };
  } finally {
    if (training === loop) training = null;
  }
}

self.addEventListener('message', (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === 'cancel') {
    cancels.get(m.id)?.abort();
    return;
  }
  const op = ops[m.op] as ((a: unknown, c: CallCtx<OpName>) => Promise<unknown>) | undefined;
  if (!op) {
    post({
      type: 'error',
      id: m.id,
      name: 'Error',
      message: `the worker has no operation '${String(m.op)}'`,
    });
    return;
  }
  const ctrl = new AbortController();
  cancels.set(m.id, ctrl);
  const ctx: CallCtx<OpName> = {
    signal: ctrl.signal,
    emit: (event) => post({ type: 'event', id: m.id, event }, transferables(event)),
  };
  op(m.args, ctx)
    .then(
      (value) => post({ type: 'result', id: m.id, value }, transferables(value)),
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        post({ type: 'error', id: m.id, name: e.name, message: e.message });
      },
    )
    .finally(() => cancels.delete(m.id));
});
