// Training in the page (Ho et al. 2020, Algorithm 1 with the Appendix B recipe): the same training graph as
// `ddpm train` (train/trainGraph.ts, in its plain-ONNX form: the browser engines have neither the native
// engine's fused kernels nor its blocked layout), the same step (train/step.ts: batch, t, eps, x_t, loss and
// gradient, Adam with warmup and clipping, EMA), the same data pipeline (data/loader.ts on the embedded
// digits, data/mnistDigits.ts) and the same checkpoint file (train/checkpointCodec.ts). So a checkpoint
// downloaded from the page resumes in `ddpm train --run DIR` (with the options resumeArgs gives) at the
// same step, and a checkpoint of `ddpm train` continues here. DOM-free and engine-agnostic: the worker runs
// it on onnxruntime-web, the test also in Node.

import { adapt, DataError, U8Dataset } from '../data/dataset.js';
import { decodeImage, hasColour, IMAGE_EXTENSIONS, imageToBytes } from '../data/imageDecode.js';
import { BatchLoader } from '../data/loader.js';
import { mnistFromClasses } from '../data/mnistDigits.js';
import { diffusionFromSpec } from '../model/spec.js';
import type { Engine } from '../engine/engine.js';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { initParams, type ParamStore, unetParamSpecs } from '../nn/unet.js';
import { type CheckpointState, encodeCheckpoint, resumeState } from '../train/checkpointCodec.js';
import { type AdamState, cloneParams, newAdamState } from '../train/optim.js';
import { createTimestepSampler, type TimestepSampler } from '../train/resample.js';
import {
  type RunIdentityOptions,
  type RunState,
  runIdentity,
  type StepResult,
  trainStep,
} from '../train/step.js';
import { createTrainSession, type TrainSession } from '../train/trainGraph.js';
import { Rng } from '../util/rng.js';

export {
  optionsOfIdentity,
  PAGE_TINY,
  type PageTrainConfig,
  pageRunOptions,
  pageSpec,
  resumeArgs,
} from './trainConfig.js';

/** A training run held in memory: its options, weights, EMA, optimiser and random streams. */
export class PageTrainer {
  private constructor(
    readonly options: RunIdentityOptions,
    readonly diffusion: GaussianDiffusion,
    private readonly loader: BatchLoader,
    private readonly timesteps: TimestepSampler,
    private readonly session: TrainSession,
    private rng: Rng,
    readonly params: ParamStore,
    readonly ema: ParamStore,
    private readonly adam: AdamState,
    private stepNo: number,
    readonly shapes: ReadonlyMap<string, readonly number[]>,
  ) {}

  /**
   * A run from step 0 (`from` undefined: the paper's initialisation with the options' seed, as ddpm train
   * starts one) or from a checkpoint (decodeCheckpoint), on `dataset` (which must be the options' data).
   */
  static async create(
    engine: Engine,
    options: RunIdentityOptions,
    dataset: U8Dataset,
    from?: { ck: CheckpointState; source: string },
    threads = 0,
  ): Promise<PageTrainer> {
    const cfg = options.spec.unet;
    const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));
    if (dataset.channels !== cfg.inChannels || dataset.height !== cfg.resolution)
      throw new Error(
        `train: the data is ${dataset.channels}x${dataset.height}x${dataset.width}, the network wants ${cfg.inChannels}x${cfg.resolution}x${cfg.resolution}`,
      );
    const loader = new BatchLoader(dataset, {
      batchSize: options.batch,
      seed: options.seed,
      flip: options.flip,
    });
    const diffusion = diffusionFromSpec(options.spec.diffusion);
    const timesteps = createTimestepSampler(options.timestepSampler ?? 'uniform', diffusion.numTimesteps);
    let params: ParamStore;
    let ema: ParamStore;
    let adam: AdamState;
    let rng = new Rng(options.seed + 1);
    let step = 0;
    if (from) {
      const { state } = resumeState(from.ck, from.source, shapes);
      params = from.ck.params;
      ema = from.ck.ema;
      adam = { step: state.adamStep, m: from.ck.adamM, v: from.ck.adamV };
      rng = Rng.fromState(state.trainRng);
      loader.setState(state.loader);
      step = state.step;
    } else {
      params = initParams(cfg, 'paper', options.seed);
      ema = cloneParams(params);
      adam = newAdamState(params);
    }
    const session = await createTrainSession(
      engine,
      cfg,
      params,
      options.batch,
      threads,
      options.loss,
      options.spec.diffusion.modelVarType,
    );
    return new PageTrainer(
      options,
      diffusion,
      loader,
      timesteps,
      session,
      rng,
      params,
      ema,
      adam,
      step,
      shapes,
    );
  }

  /** Optimiser steps taken so far. */
  get step(): number {
    return this.stepNo;
  }

  get epochs(): number {
    return this.loader.epochsSeen;
  }

  /** One step of Algorithm 1 (train/step.ts, as ddpm train takes it). */
  async next(): Promise<StepResult> {
    const r = await trainStep(
      {
        o: this.options,
        diffusion: this.diffusion,
        loader: this.loader,
        timesteps: this.timesteps,
        session: this.session,
        rng: this.rng,
        params: this.params,
        ema: this.ema,
        adam: this.adam,
      },
      this.stepNo,
    );
    this.stepNo = r.step;
    return r;
  }

  /** The checkpoint of the current step, in ddpm train's format (checkpoint.safetensors), as parts. */
  checkpoint(): Uint8Array[] {
    const state: RunState = {
      step: this.stepNo,
      trainRng: this.rng.getState(),
      loader: this.loader.getState(),
      adamStep: this.adam.step,
      ...(this.timesteps.getState() ? { timesteps: this.timesteps.getState()! } : {}),
    };
    return encodeCheckpoint(
      {
        meta: { identity: runIdentity(this.options), state },
        params: this.params,
        ema: this.ema,
        adamM: this.adam.m,
        adamV: this.adam.v,
      },
      this.shapes,
    );
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** The embedded digits as `ddpm train --data mnist` opens them at this size (openDataset: pad to 32, then resize). */
export function digitsDataset(
  classes: readonly Uint8Array[],
  resolution: number,
  channels: 1 | 3,
): U8Dataset {
  return adapt(mnistFromClasses(classes, { pad: resolution === 28 ? 0 : 2 }), { resolution, channels });
}

/** A file of a picked or dropped folder: its path inside the folder ('cats/a.png') and bytes. */
export interface ImageFile {
  readonly path: string;
  readonly data: Uint8Array;
}

/**
 * The images of a folder as `ddpm train --data folder:DIR` reads them (data/folder.ts): .png/.jpg/.jpeg
 * files at any depth, hidden entries skipped, in sorted path order, decoded and resized by the same code;
 * colour (3 channels) when one of up to 16 files spread over the list has colour, else grayscale.
 */
export function imagesDataset(
  files: readonly ImageFile[],
  name: string,
  resolution: number,
  channels?: 1 | 3,
): U8Dataset {
  const ext = (p: string) => {
    const base = p.slice(p.lastIndexOf('/') + 1);
    const dot = base.lastIndexOf('.');
    return dot > 0 ? base.slice(dot).toLowerCase() : '';
  };
  const list = files
    .filter(
      (f) =>
        !f.path.split('/').some((part) => part.startsWith('.')) && IMAGE_EXTENSIONS.includes(ext(f.path)),
    )
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (list.length === 0)
    throw new DataError(
      `${name}: no .png, .jpg or .jpeg images among ${files.length} file${files.length === 1 ? '' : 's'}`,
    );
  const decoded = list.map((f) => decodeImage(f.data, `${name}/${f.path}`));
  let c = channels;
  if (c === undefined) {
    const k = Math.min(16, list.length);
    let colour = false;
    for (let i = 0; i < k && !colour; i++) colour = hasColour(decoded[Math.floor((i * list.length) / k)]!);
    c = colour ? 3 : 1;
  }
  const per = c * resolution * resolution;
  const pixels = new Uint8Array(list.length * per); // [n, C, res, res]
  decoded.forEach((img, i) => {
    pixels.set(imageToBytes(img, `${name}/${list[i]!.path}`, resolution, c), i * per);
  });
  return new U8Dataset({
    name: `folder:${name}`,
    n: list.length,
    channels: c,
    height: resolution,
    width: resolution,
    canFlip: true,
    pixels,
  });
}
