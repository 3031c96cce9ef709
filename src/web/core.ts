// The browser demo's model logic, kept free of DOM and of any particular ONNX Runtime build so that the
// page and the Node test run exactly the same code: model folders fetched over HTTP (config.json +
// model.safetensors), the fixture forward pass of the web test, and sampling with the CLI's sampler
// registry (diffusion/samplers.ts: Algorithm 2 respaced, DDIM, DPM-Solver++, Euler, Heun) with the
// predicted x_0 of every step. Same seed, sampler, steps and image count: the same images as `ddpm sample`.

import { type SamplerName, samplerEntry } from '../diffusion/samplers.js';
import type { StepInfo } from '../diffusion/types.js';
import type { Engine, ExecutionProvider } from '../engine/engine.js';
import { diffusionFromScheduler, unetFromDiffusers } from '../model/diffusers.js';
import { checkParams } from '../model/params.js';
import { chainVarType, diffusionFromSpec, type ModelSpec, validateSpec } from '../model/spec.js';
import { initParams, type ParamStore, type UNetConfig } from '../nn/unet.js';
import { createDenoiser, type UNetDenoiser } from '../sample/denoiser.js';
import { hashUniform, Rng } from '../util/rng.js';
import { parseSafeTensors } from '../util/safetensors.js';
import type { Tensor } from '../util/tensor.js';

export interface WebModel {
  readonly spec: ModelSpec;
  readonly params: ParamStore;
  /** Where it came from (URL of the folder), for messages and caching. */
  readonly source: string;
}

/** A model folder from its two files' contents. */
export function parseModel(configJson: string, weights: Uint8Array, source: string): WebModel {
  return modelFromFiles(
    new Map([
      ['config.json', new TextEncoder().encode(configJson)],
      ['model.safetensors', weights],
    ]),
    source,
  );
}

function jsonOf(
  files: ReadonlyMap<string, Uint8Array>,
  name: string,
  source: string,
): Record<string, unknown> {
  const bytes = files.get(name);
  if (!bytes) throw new Error(`${source}: no ${name}`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${source}${name} is not valid JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new Error(`${source}${name} is not a JSON object`);
  return raw as Record<string, unknown>;
}

/**
 * A model from the files of a folder, by their paths relative to it: ours (config.json with "format",
 * model.safetensors), a diffusers UNet2DModel folder (config.json with "block_out_channels",
 * diffusion_pytorch_model.safetensors, scheduler_config.json if any) or a diffusers pipeline folder
 * (model_index.json, unet/, scheduler/), as `ddpm export --to diffusers` writes it.
 */
export function modelFromFiles(files: ReadonlyMap<string, Uint8Array>, source: string): WebModel {
  const dir = files.has('model_index.json') && !files.has('config.json') ? 'unet/' : '';
  if (!files.has(`${dir}config.json`)) {
    const names = [...files.keys()].slice(0, 6).join(', ') || 'no files';
    throw new Error(
      `${source}: no config.json (got ${names}); a model folder holds config.json and model.safetensors, ` +
        'as ddpm train writes to <run>/model, or is a diffusers export (model_index.json, unet/, scheduler/)',
    );
  }
  const raw = jsonOf(files, `${dir}config.json`, source);
  let spec: ModelSpec;
  if ('format' in raw) spec = validateSpec(raw as unknown as ModelSpec, `${source}${dir}config.json`);
  else if ('block_out_channels' in raw) {
    const sched = [`${dir}scheduler_config.json`, 'scheduler/scheduler_config.json'].find((f) =>
      files.has(f),
    );
    spec = {
      format: 'ddpm-ts/model/v1',
      unet: unetFromDiffusers(raw, `${source}${dir}config.json`),
      diffusion: sched
        ? diffusionFromScheduler(jsonOf(files, sched, source), `${source}${sched}`)
        : diffusionFromScheduler(null, `${source} (no scheduler_config.json: DDPMScheduler's defaults)`),
    };
  } else
    throw new Error(
      `${source}${dir}config.json: neither a ddpm-ts model config (no "format") nor a diffusers UNet2DModel config (no "block_out_channels")`,
    );
  const wname = [`${dir}model.safetensors`, `${dir}diffusion_pytorch_model.safetensors`].find((f) =>
    files.has(f),
  );
  if (!wname)
    throw new Error(
      `${source}: no ${dir}model.safetensors (or diffusion_pytorch_model.safetensors) beside config.json`,
    );
  const file = parseSafeTensors(files.get(wname)!, `${source}${wname}`);
  return { spec, params: checkParams(spec.unet, file.tensors, `${source}${wname}`), source };
}

/** Fetch a model folder by URL (a trailing slash is added): config.json and model.safetensors. */
export async function fetchModel(url: string, fetchFn: typeof fetch = fetch): Promise<WebModel> {
  const base = url.endsWith('/') ? url : `${url}/`;
  const get = async (name: string): Promise<Response> => {
    const r = await fetchFn(`${base}${name}`);
    if (!r.ok) throw new Error(`${base}${name}: HTTP ${r.status} ${r.statusText}`);
    return r;
  };
  const [cfg, w] = await Promise.all([get('config.json'), get('model.safetensors')]);
  return parseModel(await cfg.text(), new Uint8Array(await w.arrayBuffer()), base);
}

/** The web test's fixed inputs: x from hashUniform (seed 1234, in [-1, 1]), t spread over [0, T). */
export function fixtureInputs(cfg: UNetConfig, batch: number, T = 1000): { x: Tensor; t: Int32Array } {
  const shape = [batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const x = hashUniform(
    1234,
    shape.reduce((a, b) => a * b, 1),
    1,
  );
  const t = Int32Array.from({ length: batch }, (_, i) =>
    batch === 1 ? T >> 1 : Math.round((i * (T - 1)) / (batch - 1)),
  );
  return { x: { data: x, shape }, t };
}

export interface ForwardResult {
  readonly out: Tensor;
  /** Graph build + session creation, the first forward pass, and each later one (ms). */
  readonly setupMs: number;
  readonly firstMs: number;
  readonly forwardMs: number[];
}

/** U-Net forward of the hash-initialised ('fixture') model on fixtureInputs, then `repeats` timed reruns. */
export async function fixtureForward(
  engine: Engine,
  cfg: UNetConfig,
  batch: number,
  opts: { provider?: ExecutionProvider; threads?: number; repeats?: number } = {},
): Promise<ForwardResult> {
  const params = initParams(cfg, 'fixture');
  const { x, t } = fixtureInputs(cfg, batch);
  const t0 = performance.now();
  const den = await createDenoiser(engine, cfg, params, batch, {
    provider: opts.provider,
    threads: opts.threads,
  });
  const setupMs = performance.now() - t0;
  try {
    const t1 = performance.now();
    let out = await den.denoise(x, t); // first run (warm-up, and the result)
    const firstMs = performance.now() - t1;
    const forwardMs: number[] = [];
    for (let r = 0; r < (opts.repeats ?? 3); r++) {
      const s = performance.now();
      out = await den.denoise(x, t);
      forwardMs.push(performance.now() - s);
    }
    return { out, setupMs, firstMs, forwardMs };
  } finally {
    await den.release();
  }
}

/** The samplers of `ddpm sample --sampler` (diffusion/samplers.ts). */
export type WebSampler = SamplerName;

export interface SampleOptions {
  readonly seed: number;
  readonly sampler: WebSampler;
  /** Sampling steps, 1..T (network calls: samplerEntry(sampler).calls; Heun makes 2 per step but the last). */
  readonly steps: number;
  /** DDIM's noise (default 0: deterministic); the other samplers ignore it. */
  readonly eta?: number;
  /** Number of images. */
  readonly n: number;
  readonly provider?: ExecutionProvider;
  readonly threads?: number;
  /**
   * Called after each step with the predicted x_0 (paper Fig. 6) and x_t: step counts 1..total,
   * calls = network calls so far, stepMs = time since the previous step.
   */
  readonly onStep?: (s: StepInfo & { step: number; total: number; calls: number; stepMs: number }) => void;
  /** Checked between steps; sampling stops with an AbortError when it fires. */
  readonly signal?: AbortSignal;
  /** Reuse a compiled denoiser (same model and batch) instead of building one. */
  readonly denoiser?: UNetDenoiser;
  /** Awaited before each network call (the worker yields to its message queue here, to see a cancel). */
  readonly pause?: () => Promise<void>;
}

export interface SampleResult {
  readonly sample: Tensor;
  readonly setupMs: number;
  readonly sampleMs: number;
  /** Network calls made (per batch). */
  readonly calls: number;
}

/** Compile the model for a batch size (graph build + session). */
export function compileModel(
  engine: Engine,
  model: WebModel,
  batch: number,
  opts: { provider?: ExecutionProvider; threads?: number } = {},
): Promise<UNetDenoiser> {
  return createDenoiser(engine, model.spec.unet, model.params, batch, opts);
}

/** Samples from Rng(seed) noise with the chosen sampler: the demo's Sample button and the test's reference run. */
export async function sampleImages(
  engine: Engine,
  model: WebModel,
  opts: SampleOptions,
): Promise<SampleResult> {
  const cfg = model.spec.unet;
  // The ancestral chain samples with the variance the model recommends for it (config.json "sampling"),
  // as `ddpm sample` does without --var-type (README "The default").
  const diffusion = diffusionFromSpec({
    ...model.spec.diffusion,
    modelVarType: chainVarType(model.spec, opts.sampler),
  });
  const steps = Math.max(1, Math.min(Math.floor(opts.steps), diffusion.numTimesteps));
  const t0 = performance.now();
  const den =
    opts.denoiser ??
    (await compileModel(engine, model, opts.n, { provider: opts.provider, threads: opts.threads }));
  const setupMs = performance.now() - t0;
  const shape = [opts.n, cfg.inChannels, cfg.resolution, cfg.resolution];
  const t1 = performance.now();
  let last = t1;
  let step = 0;
  let calls = 0;
  try {
    const denoise = async (x: Tensor, t: Int32Array): Promise<Tensor> => {
      await opts.pause?.();
      if (opts.signal?.aborted) throw new DOMException('sampling stopped', 'AbortError');
      calls++;
      return den.denoise(x, t);
    };
    const plan = samplerEntry(opts.sampler).plan(diffusion, denoise, shape, new Rng(opts.seed), {
      steps,
      eta: opts.eta ?? 0,
    });
    const total = plan.visited.length;
    const sample = await plan.run((s: StepInfo) => {
      const now = performance.now();
      step++;
      opts.onStep?.({ ...s, step, total, calls, stepMs: now - last });
      last = now;
    });
    return { sample, setupMs, sampleMs: performance.now() - t1, calls };
  } finally {
    if (!opts.denoiser) await den.release();
  }
}
