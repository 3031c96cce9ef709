// The browser demo's model logic, kept free of DOM and of any particular ONNX Runtime build so that the
// page and the Node test run exactly the same code: model folders fetched over HTTP (config.json +
// model.safetensors), the fixture forward pass of the web test, and sampling (Algorithm 2 on a respaced
// chain, or DDIM) with the predicted x_0 of every step.

import { ancestralSample } from '../diffusion/ancestral.js';
import { ddimSample } from '../diffusion/ddim.js';
import { type StepInfo, unreachable } from '../diffusion/types.js';
import type { Engine, ExecutionProvider } from '../engine/engine.js';
import { checkParams } from '../model/params.js';
import { diffusionFromSpec, type ModelSpec, validateSpec } from '../model/spec.js';
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
  let raw: unknown;
  try {
    raw = JSON.parse(configJson);
  } catch (e) {
    throw new Error(`${source}config.json is not valid JSON (${(e as Error).message})`);
  }
  const spec = validateSpec(raw as ModelSpec, `${source}config.json`);
  const file = parseSafeTensors(weights, `${source}model.safetensors`);
  return { spec, params: checkParams(spec.unet, file.tensors, `${source}model.safetensors`), source };
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

/** 'ddpm': Algorithm 2 (on the chain respaced to `steps` when steps < T), as `ddpm sample`; 'ddim': eta 0. */
export type WebSampler = 'ddpm' | 'ddim';

export interface SampleOptions {
  readonly seed: number;
  readonly sampler: WebSampler;
  /** Network evaluations (denoising steps), 1..T. */
  readonly steps: number;
  /** Number of images. */
  readonly n: number;
  readonly provider?: ExecutionProvider;
  readonly threads?: number;
  /** Called after each step with the predicted x_0 (paper Fig. 6) and x_t; may return a promise. */
  readonly onStep?: (s: StepInfo & { step: number; total: number; stepMs: number }) => void;
  /** Checked between steps; sampling stops with an AbortError when it fires. */
  readonly signal?: AbortSignal;
  /** Reuse a compiled denoiser (same model and batch) instead of building one. */
  readonly denoiser?: UNetDenoiser;
  /** Awaited before each network call (the page yields a frame here so the canvas repaints). */
  readonly pause?: () => Promise<void>;
}

export interface SampleResult {
  readonly sample: Tensor;
  readonly setupMs: number;
  readonly sampleMs: number;
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
  const diffusion = diffusionFromSpec(model.spec.diffusion);
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
  try {
    const denoise = async (x: Tensor, t: Int32Array): Promise<Tensor> => {
      await opts.pause?.();
      if (opts.signal?.aborted) throw new DOMException('sampling stopped', 'AbortError');
      return den.denoise(x, t);
    };
    const onStep = (s: StepInfo) => {
      const now = performance.now();
      step++;
      opts.onStep?.({ ...s, step, total: steps, stepMs: now - last });
      last = now;
    };
    const rng = new Rng(opts.seed);
    let sample: Tensor;
    switch (opts.sampler) {
      case 'ddpm':
        sample = await ancestralSample(diffusion, denoise, shape, rng, { steps, onStep });
        break;
      case 'ddim':
        sample = await ddimSample(diffusion, denoise, shape, rng, { steps, eta: 0, onStep });
        break;
      default:
        return unreachable(opts.sampler, 'sampler');
    }
    return { sample, setupMs, sampleMs: performance.now() - t1 };
  } finally {
    if (!opts.denoiser) await den.release();
  }
}
