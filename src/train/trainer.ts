// Training (Algorithm 1 of Ho et al. 2020) with the paper's recipe (Appendix B) and a run folder
// that survives crashes: checkpoints every N steps written atomically, and rerunning the same
// command resumes from the last one. A resumed run ends with exactly the weights an uninterrupted
// run of the same length would have: every source of randomness (timesteps, noise, dropout masks,
// batch order and flips) lives in saved RNG states, and each step is a deterministic function of them.
//
// Run folder: config.json (the run's options), checkpoint.safetensors, log.jsonl (one JSON line per
// logged step), loss.png, samples/step_NNNNNN.png (EMA weights; while the EMA still holds over 1% of
// the initialisation also step_NNNNNN_raw.png from the raw weights; a run shorter than its sample interval
// draws one 16-image grid at its end instead), model/ (EMA weights + ModelSpec).
// A stop request (TrainHooks.signal: Ctrl-C in `ddpm train`) ends the run after the current step with a
// checkpoint of that step, from which the same command resumes as from any other.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchLoader } from '../data/loader.js';
import { openDataset } from '../data/open.js';
import { ancestralSample, DEFAULT_RESPACED_STEPS } from '../diffusion/ancestral.js';
import type { Denoiser, LossType } from '../diffusion/types.js';
import type { Engine, MemArena } from '../engine/engine.js';
import type { ModelSpec } from '../model/spec.js';
import { diffusionFromSpec } from '../model/spec.js';
import { saveModel } from '../model/weights.js';
import { initParams, type ParamStore, unetParamSpecs } from '../nn/unet.js';
import { createDenoiser } from '../sample/denoiser.js';
import { removeStaleTemps, writeFileAtomic } from '../util/atomicFile.js';
import { fsError } from '../util/fsErrors.js';
import { isJsonObject } from '../util/jsonCheck.js';
import { makeGrid, plotLossCurve } from '../util/image.js';
import { writePngAtomic } from '../util/imageFile.js';
import { Rng } from '../util/rng.js';
import { loadCheckpoint, resumeState, saveCheckpoint } from './checkpoint.js';
import { type AdamConfig, cloneParams, emaInitShare, newAdamState, PAPER_ADAM } from './optim.js';
import { createTimestepSampler, type TimestepSamplerKind } from './resample.js';
import { type RunState, runIdentity, trainStep } from './step.js';
import { createTrainSession, microbatchPlan } from './trainGraph.js';

export interface TrainOptions {
  readonly runDir: string;
  /** Dataset spec for openDataset ('mnist', 'fashion-mnist', 'cifar10:PATH', 'folder:PATH', ...). */
  readonly data: string;
  readonly spec: ModelSpec;
  readonly batch: number;
  /** Total optimiser steps of the run (a resumed run may raise it). */
  readonly steps: number;
  readonly adam: AdamConfig;
  readonly emaDecay: number;
  /** EMA warmup: decay min(emaDecay, (1 + step) / (10 + step)) (see emaDecayAt); off = the original code's. */
  readonly emaWarmup: boolean;
  /** Random horizontal flips (only where the data allows them; never for digits). */
  readonly flip: boolean;
  readonly seed: number;
  readonly checkpointEvery: number;
  /** Write a sample grid every N steps (0 = never). */
  readonly sampleEvery: number;
  readonly sampleCount: number;
  readonly logEvery: number;
  /** ONNX Runtime intra-op threads (0 = one per core). */
  readonly threads: number;
  /**
   * Gradient accumulation: run each batch in chunks of at most this many images (trainGraph.ts,
   * microbatchPlan), then one Adam step and one EMA update on the whole batch's gradient; the same weights
   * as the whole batch at once to float rounding, in the memory of a chunk. Undefined: the whole batch.
   * Not part of the run's identity: a run may resume with another value (like threads).
   */
  readonly microbatch?: number;
  /**
   * ONNX Runtime's CPU arena of the training session (TrainSessionOptions.memArena; default 'session'). Not
   * part of the run's identity, like threads.
   */
  readonly memArena?: MemArena;
  /** 'mse': L_simple (eq. 14, the paper's choice); 'kl': the bound's term L_{t-1} in bits/dim. */
  readonly loss: LossType;
  /**
   * How t is drawn: 'uniform' (Algorithm 1, default) or, for loss 'kl' only, 'loss-second-moment' importance
   * sampling (Nichol & Dhariwal 2021 sec. 3.3; resample.ts).
   */
  readonly timestepSampler?: TimestepSamplerKind;
  /** Evaluate the EMA weights every N steps with TrainHooks.evaluate (0 = never). */
  readonly evalEvery?: number;
  /**
   * Start from these weights (a trained model's) instead of the paper's random initialisation; the
   * optimiser starts afresh (its moments and the learning-rate warmup), the EMA from the same weights.
   */
  readonly init?: { readonly source: string; readonly weightsHash: string; readonly params: ParamStore };
}

export const DEFAULT_TRAIN: Omit<TrainOptions, 'runDir' | 'spec'> = {
  data: 'mnist',
  batch: 64,
  steps: 10000,
  adam: PAPER_ADAM,
  emaDecay: 0.9999,
  emaWarmup: true,
  flip: true,
  seed: 0,
  checkpointEvery: 500,
  sampleEvery: 2000,
  sampleCount: 36,
  logEvery: 50,
  threads: 0,
  loss: 'mse',
};

export interface StepLog {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly stepsPerSec: number;
  readonly epoch: number;
}

export interface TrainHooks {
  /** After every optimiser step. */
  onStep?(s: StepLog & { readonly totalSteps: number; readonly etaSec: number }): void;
  /** Human-readable events (resume, checkpoint, samples). */
  onEvent?(message: string): void;
  /**
   * Sample quality of the EMA weights every evalEvery steps (e.g. a small-sample FID); logged in log.jsonl
   * and drawn in loss.png. The trainer does not know how it is measured: the caller (ddpm train) decides.
   */
  evaluate?(ema: ParamStore, step: number): Promise<EvalLog>;
  /**
   * Stop request: once aborted, the run finishes the current step, skips its sample grids and evaluation
   * (stopping them mid-way), writes a checkpoint of that step and returns with `interrupted` set.
   */
  signal?: AbortSignal;
  /** Network calls of a sample grid being drawn (for a progress line): done and total, from 1. */
  onSampling?(done: number, total: number): void;
}

/** Images of the one grid a run shorter than its sample interval draws at its end. */
export const SHORT_RUN_SAMPLES = 16;

/** A quality measurement during training: one log.jsonl line `{step, eval: {label: value}, evalN}`. */
export interface EvalLog {
  /** The metric's label with its feature network, e.g. 'FID[mnist-classifier@1a2b3c4d]'. */
  readonly label: string;
  readonly value: number;
  /** Images it was measured on (small-sample FID is biased upward; the label and n say how). */
  readonly n: number;
}

/** The options that must not change when a run resumes (step.ts, shared with the browser page). */
const identity = (o: TrainOptions) => runIdentity(o);

export interface TrainResult {
  readonly step: number;
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly resumedFrom: number;
  /** Stopped by TrainHooks.signal before `steps`. */
  readonly interrupted: boolean;
  /** The step of checkpoint.safetensors as the run leaves it (undefined: none written yet). */
  readonly checkpointStep: number | undefined;
}

export async function train(engine: Engine, o: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const say = (m: string) => hooks.onEvent?.(m);
  const stopped = () => hooks.signal?.aborted === true;
  microbatchPlan(o.batch, o.microbatch); // a bad microbatch fails before any work
  // A run killed mid-write leaves its temporary files (checkpoint-sized); a rerun removes them.
  const stale = [o.runDir, join(o.runDir, 'model'), join(o.runDir, 'samples')].flatMap(removeStaleTemps);
  if (stale.length) say(`removed ${stale.length} temporary file(s) left by a killed run`);
  const ckptPath = join(o.runDir, 'checkpoint.safetensors');
  const logPath = join(o.runDir, 'log.jsonl');
  const cfg = o.spec.unet;
  const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));

  const dataset = openDataset(o.data, { resolution: cfg.resolution, channels: cfg.inChannels as 1 | 3 });
  try {
    mkdirSync(join(o.runDir, 'samples'), { recursive: true });
  } catch (e) {
    throw fsError(e, join(o.runDir, 'samples'), 'create-folder');
  }
  const loader = new BatchLoader(dataset, { batchSize: o.batch, seed: o.seed, flip: o.flip });
  const diffusion = diffusionFromSpec(o.spec.diffusion);
  const T = diffusion.numTimesteps;
  const timestepKind = o.timestepSampler ?? 'uniform';
  if (timestepKind !== 'uniform' && o.loss !== 'kl')
    throw new Error(
      `train: the timestep sampler "${timestepKind}" importance-samples the bound's terms; it needs the 'kl' loss (--loss kl), not '${o.loss}'`,
    );
  const timesteps = createTimestepSampler(timestepKind, T);

  let params: ParamStore;
  let ema: ParamStore;
  let adam = newAdamState(new Map());
  let rng = new Rng(o.seed + 1);
  let step = 0;
  if (existsSync(ckptPath)) {
    let ck: ReturnType<typeof loadCheckpoint>;
    try {
      ck = loadCheckpoint(ckptPath);
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n  the run cannot resume from it; move it away to start the run over from step 0`,
      );
    }
    const resumed = resumeState(ck, ckptPath, shapes);
    const st = resumed.state;
    const saved = resumed.identity as ReturnType<typeof identity>;
    const now = identity(o);
    for (const k of Object.keys(now) as (keyof typeof now)[]) {
      if (JSON.stringify(saved[k]) !== JSON.stringify(now[k])) {
        throw new Error(
          `train: ${o.runDir} holds a run with a different ${k} (${JSON.stringify(saved[k])} there, ${JSON.stringify(now[k])} now); ` +
            'use a new --run folder, or repeat the original options to resume',
        );
      }
    }
    params = ck.params;
    ema = ck.ema;
    adam = { step: st.adamStep, m: ck.adamM, v: ck.adamV };
    rng = Rng.fromState(st.trainRng);
    loader.setState(st.loader);
    step = st.step;
    // 'loss-second-moment': the loss history its timesteps are drawn from (checked by setState)
    if (timesteps.kind !== 'uniform')
      timesteps.setState((ck.meta.state as Record<string, unknown>).timesteps);
    truncateLog(logPath, step);
    say(`resumed ${o.runDir} at step ${step}`);
  } else {
    if (o.init) {
      params = cloneParams(o.init.params);
      say(`starting from the weights of ${o.init.source} (${o.init.weightsHash}) with a fresh optimiser`);
    } else {
      params = initParams(cfg, 'paper', o.seed);
    }
    ema = cloneParams(params);
    adam = newAdamState(params);
    appendLine(logPath, '', 'w');
  }
  writeFileAtomic(join(o.runDir, 'config.json'), `${JSON.stringify({ ...o, runDir: undefined }, null, 2)}\n`);
  const resumedFrom = step;
  let checkpointStep = existsSync(ckptPath) ? step : undefined;
  const checkpoint = () => {
    const state: RunState = {
      step,
      trainRng: rng.getState(),
      loader: loader.getState(),
      adamStep: adam.step,
      ...(timesteps.getState() ? { timesteps: timesteps.getState()! } : {}),
    };
    saveCheckpoint(
      ckptPath,
      { meta: { identity: identity(o), state }, params, ema, adamM: adam.m, adamV: adam.v },
      shapes,
    );
    saveModel(join(o.runDir, 'model'), o.spec, ema);
    writeLossCurve(logPath, join(o.runDir, 'loss.png'));
    checkpointStep = step;
    say(`checkpoint at step ${step}`);
  };
  /** Sample grids and evaluations stopped by the stop request end quietly; other errors propagate. */
  const unlessStopped = async (work: () => Promise<void>) => {
    try {
      await work();
    } catch (e) {
      if (!stopped()) throw e;
    }
  };

  const session = await createTrainSession(
    engine,
    cfg,
    params,
    o.batch,
    o.threads,
    o.loss,
    o.spec.diffusion.modelVarType,
    {
      ...(o.microbatch !== undefined ? { microbatch: o.microbatch } : {}),
      ...(o.memArena !== undefined ? { memArena: o.memArena } : {}),
    },
  );
  if (session.microbatch.chunks > 1) {
    const { chunks, size } = session.microbatch;
    say(`micro-batches: each batch of ${o.batch} runs as ${chunks} chunks of at most ${size} images`);
  }
  let rate = 0;
  let last = performance.now();
  try {
    while (step < o.steps) {
      // The native engine runs synchronously: without a turn of the event loop per step, signal handlers
      // (Ctrl-C: TrainHooks.signal) and timers would wait for the end of the run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (stopped()) break;
      const upd = await trainStep({ o, diffusion, loader, timesteps, session, rng, params, ema, adam }, step);
      step = upd.step;

      const now = performance.now();
      const sps = 1000 / Math.max(now - last, 1e-3);
      last = now;
      rate = rate === 0 ? sps : 0.9 * rate + 0.1 * sps;
      const rec: StepLog = {
        step,
        loss: upd.loss,
        lr: upd.lr,
        gradNorm: upd.gradNorm,
        stepsPerSec: rate,
        epoch: loader.epochsSeen,
      };
      hooks.onStep?.({ ...rec, totalSteps: o.steps, etaSec: (o.steps - step) / rate });
      if (step % o.logEvery === 0 || step === o.steps) appendLog(logPath, rec);
      if (step % o.checkpointEvery === 0 || step === o.steps) checkpoint();
      const evaluate = hooks.evaluate;
      if (
        evaluate &&
        (o.evalEvery ?? 0) > 0 &&
        (step % o.evalEvery! === 0 || step === o.steps) &&
        !stopped()
      ) {
        await unlessStopped(async () => {
          const r = await evaluate(ema, step);
          appendLine(logPath, `${JSON.stringify({ step, eval: { [r.label]: r.value }, evalN: r.n })}\n`);
          writeLossCurve(logPath, join(o.runDir, 'loss.png'));
          say(`${r.label} = ${r.value.toFixed(3)} at step ${step} (${r.n} images)`);
        });
      }
      const file = join(o.runDir, 'samples', `step_${String(step).padStart(6, '0')}.png`);
      if (o.sampleEvery > o.steps && step === o.steps && !stopped()) {
        // A run shorter than its sample interval: one small grid from the weights that show the most
        // (the raw ones while the EMA still holds over 1% of the initialisation), not two large ones.
        const initShare = emaInitShare(o.emaDecay, step, o.emaWarmup);
        const which = initShare > 0.01 ? 'raw' : 'EMA';
        const n = Math.min(o.sampleCount, SHORT_RUN_SAMPLES);
        say(
          `samples: the run (${o.steps} step${o.steps === 1 ? '' : 's'}) is shorter than --sample-every ${o.sampleEvery}: one grid of ${n} images from the ${which} weights (${DEFAULT_RESPACED_STEPS} sampling steps at most)`,
        );
        await unlessStopped(async () => {
          await writeSamples(
            engine,
            { ...o, sampleCount: n },
            which === 'raw' ? params : ema,
            file,
            stopped,
            hooks,
          );
          say(`samples: ${file}`);
        });
      } else if (o.sampleEvery > 0 && (step % o.sampleEvery === 0 || step === o.steps) && !stopped()) {
        await unlessStopped(async () => {
          await writeSamples(engine, o, ema, file, stopped);
          say(`samples: ${file}`);
          // Early in a run without EMA warmup the average still weighs the initialisation and samples
          // noise: then also show the raw weights, so a user can see that training works.
          const initShare = emaInitShare(o.emaDecay, step, o.emaWarmup);
          if (initShare > 0.01) {
            const raw = file.replace(/\.png$/, '_raw.png');
            await writeSamples(engine, o, params, raw, stopped);
            say(
              `samples: ${raw} (raw weights; the EMA still holds ${(100 * initShare).toFixed(0)}% of the initialisation)`,
            );
          }
        });
      }
    }
    // Stopped: keep the steps made since the last checkpoint.
    if (stopped() && step > resumedFrom && checkpointStep !== step) checkpoint();
  } finally {
    await session.release();
  }
  const interrupted = step < o.steps;
  return { step, params, ema, resumedFrom, interrupted, checkpointStep };
}

function appendLog(path: string, rec: StepLog): void {
  appendLine(path, `${JSON.stringify(rec)}\n`);
}

/** Append to (or with flag 'w' start) a log file; a failure (full disk, ...) names the file and its cause. */
function appendLine(path: string, text: string, flag: 'a' | 'w' = 'a'): void {
  try {
    writeFileSync(path, text, { flag });
  } catch (e) {
    throw fsError(e, path, 'write');
  }
}

/**
 * One line of log.jsonl as a record with an integer step, or undefined for a line that is not one (torn by a
 * kill during an append, or edited by hand): readers skip such lines rather than fail on them.
 */
function parseLogLine(line: string): ({ step: number } & Record<string, unknown>) | undefined {
  if (!line.trim()) return undefined;
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    return undefined;
  }
  return isJsonObject(r) && Number.isSafeInteger(r.step) && (r.step as number) >= 0
    ? (r as { step: number } & Record<string, unknown>)
    : undefined;
}

/** Drop log lines written after the checkpoint we resume from (and lines that are not records). */
function truncateLog(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => (parseLogLine(l)?.step ?? Infinity) <= step);
  writeFileAtomic(path, keep.map((l) => `${l}\n`).join(''));
}

const isNum = (v: unknown): v is number => typeof v === 'number';

/** The training steps logged in log.jsonl (evaluation lines left out: readEvalLog; broken lines skipped). */
export function readLog(path: string): StepLog[] {
  return readLines(path).filter((r) =>
    [r.loss, r.lr, r.gradNorm, r.stepsPerSec, r.epoch].every(isNum),
  ) as unknown as StepLog[];
}

/** The evaluations logged in log.jsonl: step, the metric's label and value, images used (broken lines skipped). */
export function readEvalLog(path: string): (EvalLog & { step: number })[] {
  return readLines(path).flatMap((r) =>
    isJsonObject(r.eval) && isNum(r.evalN)
      ? Object.entries(r.eval)
          .filter((e): e is [string, number] => isNum(e[1]))
          .map(([label, value]) => ({ step: r.step, label, value, n: r.evalN as number }))
      : [],
  );
}

function readLines(path: string): ({ step: number } & Record<string, unknown>)[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map(parseLogLine)
    .filter((r) => r !== undefined);
}

function writeLossCurve(logPath: string, out: string): void {
  const pts = readLog(logPath).map((r) => ({ step: r.step, loss: r.loss }));
  const secondary = readEvalLog(logPath).map((r) => ({ step: r.step, value: r.value }));
  if (pts.length >= 2) writePngAtomic(out, plotLossCurve(pts, { logY: true, secondary }));
}

/**
 * A grid from the given weights with Algorithm 2 on the respaced chain, as `ddpm sample` by default; its
 * own RNG, so training randomness is untouched.
 */
async function writeSamples(
  engine: Engine,
  o: TrainOptions,
  weights: ParamStore,
  file: string,
  stopped: () => boolean,
  hooks: TrainHooks = {},
): Promise<void> {
  const cfg = o.spec.unet;
  const den = await createDenoiser(engine, cfg, weights, o.sampleCount, { threads: o.threads });
  const denoise: Denoiser = async (x, t) => {
    await new Promise<void>((resolve) => setImmediate(resolve)); // deliver signals (see the step loop)
    if (stopped()) throw new Error('train: sampling stopped');
    return den.denoise(x, t);
  };
  try {
    const shape = [o.sampleCount, cfg.inChannels, cfg.resolution, cfg.resolution];
    const x = await ancestralSample(diffusionFromSpec(o.spec.diffusion), denoise, shape, new Rng(12345), {
      steps: DEFAULT_RESPACED_STEPS,
      ...(hooks.onSampling ? { onProgress: (p) => hooks.onSampling!(p.step, p.total) } : {}),
    });
    writePngAtomic(file, makeGrid(x, { nrow: Math.ceil(Math.sqrt(o.sampleCount)) }));
  } finally {
    await den.release();
  }
}
