// `ddpm train`: Algorithm 1 with the paper's recipe; rerunning the same command resumes the run.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Engine, MEM_ARENAS, type MemArena } from '../engine/engine.js';
import { FileSystemError } from '../util/fsErrors.js';
import { defaultSpec, type ModelSpec, outputChannelsFor } from '../model/spec.js';
import type { BetaScheduleKind, LossType, ModelMeanType, ModelVarType } from '../diffusion/types.js';
import { sourceChannels } from '../data/open.js';
import { addVarianceChannels, countParams } from '../nn/unet.js';
import type { TimestepSamplerKind } from '../train/resample.js';
import { DEFAULT_TRAIN, type EvalLog, type TrainOptions, train } from '../train/trainer.js';
import type { ParamStore } from '../nn/unet.js';
import { diffusionFromSpec } from '../model/spec.js';
import { createDenoiser } from '../sample/denoiser.js';
import { computeMetrics, extractFeatures, type Reference, shardRanges } from '../eval/evaluate.js';
import { metricLabel } from '../eval/featureNet.js';
import { paramsHash } from '../eval/hash.js';
import { modelImages } from '../eval/imageSource.js';
import { defaultRef, openFeatureNet, openReference } from './eval.js';
import { UsageError } from './args.js';
import { helpText, type OptTable, parseOptions } from './args.js';
import { formatDuration, ProgressBar } from './progress.js';
import { EP_OPTION, openEpOption } from './epOption.js';
import { openModelOption } from './modelOption.js';
import { checkOutputFolder } from './outputs.js';
import { catchStopSignals, commandLine, Interrupted, type StopRequest } from './signals.js';

const d = DEFAULT_TRAIN;
const s = defaultSpec();

export const TRAIN_OPTIONS: OptTable = {
  run: {
    kind: 'string',
    help: 'run folder (checkpoints, log, samples); rerun to resume',
    default: 'runs/mnist',
  },
  data: {
    kind: 'string',
    help: 'data: mnist | fashion-mnist | cifar10:PATH | folder:PATH | idx:PATH',
    default: d.data,
  },
  steps: { kind: 'int', help: 'total optimiser steps', default: d.steps, min: 1 },
  batch: { kind: 'int', help: 'batch size', default: d.batch, min: 1 },
  microbatch: {
    kind: 'int',
    help: "gradient accumulation: run each batch in chunks of at most N images (activations take the memory of a chunk), then one Adam step on the whole batch's gradient: the same result as --batch at once to float rounding; a run may resume with another value (default: the whole batch)",
    min: 1,
  },
  'mem-arena': {
    kind: 'string',
    help: "ONNX Runtime's memory arena for the training session: session (its own, the default), shared (the native engine's process-wide arena in regions of at most 16 MB: a lower peak at large batches, L batch 64 4.5 against 5.0 GB, a higher one at small), off (every tensor allocated and freed: slower)",
    default: 'session',
    choices: [...MEM_ARENAS],
  },
  lr: { kind: 'float', help: 'Adam learning rate', default: d.adam.lr, min: 0 },
  warmup: { kind: 'int', help: 'linear warmup steps', default: d.adam.warmup, min: 0 },
  'grad-clip': {
    kind: 'float',
    help: 'global gradient-norm clip (0 = off)',
    default: d.adam.gradClip,
    min: 0,
  },
  'adam-eps': { kind: 'float', help: 'Adam epsilon', default: d.adam.eps, min: 0 },
  ema: { kind: 'float', help: 'EMA decay of the weights', default: d.emaDecay, min: 0 },
  'no-ema-warmup': {
    kind: 'bool',
    help: 'plain EMA as the original code (default: decay min(ema, (1+step)/(10+step)), so short runs do not keep the initialisation)',
  },
  dropout: { kind: 'float', help: 'dropout in the ResNet blocks', default: s.unet.dropout, min: 0 },
  'no-flip': { kind: 'bool', help: 'disable random horizontal flips (never used for digits)' },
  resolution: {
    kind: 'int',
    help: 'image size (power-of-two multiple of the level count)',
    default: s.unet.resolution,
    min: 4,
  },
  channels: {
    kind: 'int',
    help: "image channels (1 or 3; default: the data's own: digits 1, CIFAR-10 3, an image folder 3 if its images have colour, else 1)",
    min: 1,
  },
  ch: { kind: 'int', help: 'U-Net base channels', default: s.unet.ch, min: 1 },
  'ch-mult': { kind: 'list', help: 'channel multiplier per level', default: s.unet.chMult },
  'res-blocks': { kind: 'int', help: 'ResNet blocks per level', default: s.unet.numResBlocks, min: 1 },
  attn: { kind: 'list', help: 'resolutions with self-attention', default: s.unet.attnResolutions },
  init: {
    kind: 'string',
    help: "start from a trained model's weights (a model folder such as models/mnist, or a run folder: its EMA) with a fresh optimiser, to train it further; the architecture and diffusion options must match the model's",
  },
  T: { kind: 'int', help: 'diffusion steps', default: s.diffusion.T, min: 1 },
  schedule: {
    kind: 'string',
    help: "beta schedule ('jsd' is refused: its beta_T = 1 leaves the last reverse step undefined)",
    default: s.diffusion.schedule,
    choices: ['linear', 'cosine', 'quad', 'sigmoid', 'const', 'jsd'],
  },
  'beta-start': { kind: 'float', help: 'first beta', default: s.diffusion.betaStart, min: 0 },
  'beta-end': { kind: 'float', help: 'last beta', default: s.diffusion.betaEnd, min: 0 },
  loss: {
    kind: 'string',
    help: "training loss: mse (L_simple, the paper's) or kl (the bound's terms, bits/dim)",
    default: d.loss,
    choices: ['mse', 'kl'],
  },
  'timestep-sampler': {
    kind: 'string',
    help: "how t is drawn: uniform (Algorithm 1) or, with --loss kl, loss-second-moment (importance sampling, Nichol & Dhariwal 2021 sec. 3.3: p_t ~ sqrt(E[L_t^2]) over each t's last 10 losses, uniform until all T have 10, each loss weighted 1 / (T p_t))",
    default: 'uniform',
    choices: ['uniform', 'loss-second-moment'],
  },
  'mean-type': {
    kind: 'string',
    help: "what the network predicts: eps (the paper's), xstart (x_0), xprev (the posterior mean), v (sqrt(abar) eps - sqrt(1-abar) x_0, Salimans & Ho 2022)",
    default: s.diffusion.modelMeanType,
    choices: ['eps', 'xstart', 'xprev', 'v'],
  },
  'var-type': {
    kind: 'string',
    help: 'reverse-process variance: fixedlarge (beta_t), fixedsmall (beta~_t), or learned-range (Nichol & Dhariwal 2021: the U-Net outputs twice the channels, the last half interpolating log beta~_t .. log beta_t; trained with L_hybrid = L_simple + 0.001 L_vlb under --loss mse, L_vlb alone under --loss kl; ddpm sample --sampler ddpm and ddpm bpd use it, the other samplers only its mean output)',
    default: s.diffusion.modelVarType,
    choices: ['fixedlarge', 'fixedsmall', 'learned-range'],
  },
  seed: { kind: 'int', help: 'random seed', default: d.seed },
  'checkpoint-every': { kind: 'int', help: 'steps between checkpoints', default: d.checkpointEvery, min: 1 },
  'sample-every': {
    kind: 'int',
    help: 'steps between sample grids (0 = never)',
    default: d.sampleEvery,
    min: 0,
  },
  'log-every': { kind: 'int', help: 'steps between log lines', default: d.logEvery, min: 1 },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: d.threads, min: 0 },
  ep: EP_OPTION,
  'eval-every': {
    kind: 'int',
    help: 'steps between FIDs of the EMA weights on --eval-n images (DDIM 20 steps), logged and drawn in loss.png (0 = never)',
    default: 0,
    min: 0,
  },
  'eval-n': {
    kind: 'int',
    help: 'images per training FID (small n biases FID upward: compare within a run, not with ddpm eval)',
    default: 500,
    min: 2,
  },
  'eval-ref': {
    kind: 'string',
    help: 'reference of the training FID (default: the data set; fashion-mnist: its test split)',
  },
  features: {
    kind: 'string',
    help: 'feature network of the training FID (see ddpm eval --help)',
    default: 'auto',
  },
};

export async function trainCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions('train', argv, TRAIN_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText(
        'train',
        "Train a DDPM (Algorithm 1) with the paper's recipe. Rerunning the same command resumes from the last checkpoint.",
        TRAIN_OPTIONS,
        [
          'ddpm train                                  # MNIST digits, 2.2M-parameter U-Net',
          'ddpm train --data fashion-mnist --run runs/fashion',
          'ddpm train --data cifar10:~/cifar-10-batches-bin --channels 3 --ch 128 --batch 128 --steps 800000',
          'ddpm train --data cifar10:~/cifar-10-batches-bin --channels 3 --ch 128 --ep cuda   # on a GPU; resumes on any --ep',
        ],
      ),
    );
    return;
  }
  refuseSchedule(o.schedule as BetaScheduleKind);
  if (o['timestep-sampler'] !== 'uniform' && o.loss !== 'kl')
    throw new UsageError(
      `ddpm train: --timestep-sampler ${o['timestep-sampler']} importance-samples the variational bound's terms; use it with --loss kl (the loss here is ${o.loss})`,
    );
  const microbatch = o.microbatch as number | undefined;
  if (microbatch !== undefined && microbatch > (o.batch as number))
    throw new UsageError(
      `ddpm train: --microbatch ${microbatch} is larger than the batch (--batch ${o.batch}); give at most ${o.batch}, or leave it out to run the whole batch at once`,
    );
  const channels = (o.channels as number | undefined) ?? dataChannels(o.data as string);
  const varType = o['var-type'] as ModelVarType;
  const spec: ModelSpec = {
    format: 'ddpm-ts/model/v1',
    unet: {
      ...s.unet,
      inChannels: channels,
      outChannels: outputChannelsFor(varType, channels), // 2C for learned-range: mean, then variance values
      resolution: o.resolution as number,
      ch: o.ch as number,
      chMult: o['ch-mult'] as number[],
      numResBlocks: o['res-blocks'] as number,
      attnResolutions: o.attn as number[],
      dropout: o.dropout as number,
    },
    diffusion: {
      schedule: o.schedule as BetaScheduleKind,
      betaStart: o['beta-start'] as number,
      betaEnd: o['beta-end'] as number,
      T: o.T as number,
      modelMeanType: o['mean-type'] as ModelMeanType,
      modelVarType: varType,
    },
    data: o.data as string,
  };
  // The provider starts before the run folder is touched: a missing one fails with nothing written.
  const engine = await openEpOption(o.ep);
  // The run folder is checked before anything else: room for a checkpoint (weights, EMA and Adam's two
  // moments, float32) and model/ beside it, or the temporary copy of the next checkpoint.
  checkOutputFolder('train', 'run', o.run as string, 20 * countParams(spec.unet));
  const stop = catchStopSignals('train', 'finishing the current step and writing a checkpoint');
  try {
    await trainWith(engine, spec, o, stop);
  } catch (e) {
    throw withResumeHint(e, o.run as string);
  } finally {
    stop.dispose();
  }
}

/** --channels when not given: the data's own; for a folder of images, say what was detected. */
function dataChannels(data: string): number {
  const c = sourceChannels(data);
  if (c.detected) {
    console.error(
      `ddpm train: ${data} holds ${c.detected}: training with ${c.channels} channel${c.channels === 1 ? '' : 's'} (${c.channels === 3 ? 'RGB' : 'grayscale'}); pass --channels ${c.channels === 3 ? 1 : 3} for ${c.channels === 3 ? 'grayscale' : 'RGB'}`,
    );
  }
  return c.channels;
}

/**
 * Schedules a model can be trained with. 'jsd' (1/T, 1/(T-1), ..., 1: the original code offers it for
 * its Jensen-Shannon experiments) ends with beta_T = 1, so abar_T = 0: x_T holds nothing of x_0 and
 * every formula that recovers x_0 or the posterior mean from x_T divides by sqrt(abar_T) or sqrt(alpha_T).
 * Samplers that visit t = T-1, bits/dim and the kl loss would all be NaN; it is refused before any work.
 */
function refuseSchedule(schedule: BetaScheduleKind): void {
  switch (schedule) {
    case 'linear':
    case 'cosine':
    case 'quad':
    case 'sigmoid':
    case 'const':
      return;
    case 'jsd':
      throw new UsageError(
        'ddpm train: --schedule jsd is not supported: its last beta is 1, so alphabar_T = 0 and the reverse step from t = T-1 (x_0 from x_T, the posterior mean) divides by zero; samplers that visit t = T-1, bits/dim and --loss kl would all be NaN. Use --schedule cosine (betas capped at 0.999) or linear',
      );
  }
}

/** A file-system failure mid-run (a full disk, ...): say that the last checkpoint is intact and how to resume. */
function withResumeHint(e: unknown, run: string): unknown {
  const ckpt = join(run, 'checkpoint.safetensors');
  if (!(e instanceof FileSystemError) || !existsSync(ckpt)) return e;
  return new FileSystemError(
    e.code,
    e.path,
    `${e.message}\nthe last checkpoint, ${ckpt}, is intact; once that is fixed, resume with: ${commandLine()}`,
  );
}

/**
 * --init: the model's weights, after checking that its U-Net and diffusion are the ones the options
 * describe (dropout aside, which only acts in training).
 */
function initFrom(spec: ModelSpec, path: string): TrainOptions['init'] {
  if (!existsSync(path)) {
    throw new UsageError(
      `ddpm train: --init ${path} does not exist; pass a model folder (e.g. models/mnist) or a run folder`,
    );
  }
  const m = openModelOption('train', path);
  const differs: string[] = [];
  const compare = (what: string, a: Record<string, unknown>, b: Record<string, unknown>) => {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (k === 'dropout') continue;
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) {
        differs.push(
          `${what}.${k}: ${JSON.stringify(a[k])} in the model, ${JSON.stringify(b[k])} from the options`,
        );
      }
    }
  };
  // A fixed-variance model can start a learned-variance run: the same network with C more output channels,
  // initialised to zero (addVarianceChannels), the mean prediction unchanged.
  const widen =
    m.spec.diffusion.modelVarType !== 'learned-range' &&
    spec.diffusion.modelVarType === 'learned-range' &&
    spec.unet.outChannels === 2 * m.spec.unet.outChannels;
  compare(
    'unet',
    { ...m.spec.unet },
    { ...spec.unet, ...(widen ? { outChannels: m.spec.unet.outChannels } : {}) },
  );
  compare(
    'diffusion',
    { ...m.spec.diffusion },
    { ...spec.diffusion, ...(widen ? { modelVarType: m.spec.diffusion.modelVarType } : {}) },
  );
  if (differs.length) {
    throw new UsageError(
      `ddpm train: --init ${path} is another network than the options describe:\n  ${differs.join('\n  ')}\ngive the model's architecture and diffusion options (see its config.json)`,
    );
  }
  const params = widen ? addVarianceChannels(m.spec.unet, m.params) : m.params;
  return { source: m.source, weightsHash: paramsHash(m.params), params };
}

async function trainWith(
  engine: Engine,
  spec: ModelSpec,
  o: Record<string, unknown>,
  stop: StopRequest,
): Promise<void> {
  // Only a new run starts from --init; a run with a checkpoint resumes from it (and checks the init matches).
  const init = o.init !== undefined ? initFrom(spec, o.init as string) : undefined;
  const evalEvery = o['eval-every'] as number;
  const evaluate = evalEvery > 0 ? await trainingFid(engine, spec, o, stop) : undefined;
  const bar = new ProgressBar('train');
  const sampleBar = new ProgressBar('samples');
  bar.log(
    `ddpm train: ${countParams(spec.unet).toLocaleString('en-US')} parameters, data ${o.data}, run ${o.run}`,
  );
  // --ep cpu: the native engine's fused kernels and blocked convolutions; cuda / webgpu: onnxruntime-node
  // and the standard-ONNX training graph (Engine.standardOnnxOnly). The engine is not in the run's identity.
  const res = await train(
    engine,
    {
      ...d,
      runDir: o.run as string,
      data: o.data as string,
      spec,
      batch: o.batch as number,
      steps: o.steps as number,
      adam: {
        ...d.adam,
        lr: o.lr as number,
        warmup: o.warmup as number,
        gradClip: o['grad-clip'] as number,
        eps: o['adam-eps'] as number,
      },
      emaDecay: o.ema as number,
      emaWarmup: !o['no-ema-warmup'],
      flip: !o['no-flip'],
      seed: o.seed as number,
      checkpointEvery: o['checkpoint-every'] as number,
      sampleEvery: o['sample-every'] as number,
      logEvery: o['log-every'] as number,
      threads: o.threads as number,
      ...(o.microbatch !== undefined ? { microbatch: o.microbatch as number } : {}),
      memArena: o['mem-arena'] as MemArena,
      loss: o.loss as LossType,
      timestepSampler: o['timestep-sampler'] as TimestepSamplerKind,
      evalEvery,
      ...(init ? { init } : {}),
    },
    {
      ...(evaluate ? { evaluate } : {}),
      signal: stop.signal,
      onStep: (r) =>
        bar.update(
          r.step,
          r.totalSteps,
          `loss ${r.loss.toFixed(4)} | ${r.stepsPerSec.toFixed(2)} it/s | epoch ${r.epoch.toFixed(2)} | eta ${formatDuration(r.etaSec)}`,
        ),
      onEvent: (m) => bar.log(m),
      onSampling: (done, total) => {
        sampleBar.update(done, total, 'network calls', done === 1);
        if (done === total) sampleBar.done();
      },
    },
  );
  bar.done();
  const sig = stop.received();
  if (res.interrupted && sig) {
    const ckpt = join(o.run as string, 'checkpoint.safetensors');
    const where =
      res.checkpointStep === undefined
        ? `before the first step; nothing to save`
        : res.checkpointStep === res.resumedFrom
          ? `before a step was made; the checkpoint of step ${res.checkpointStep} is unchanged: ${ckpt}`
          : `after step ${res.step} of ${o.steps}; checkpoint written: ${ckpt}`;
    const again = res.checkpointStep === undefined ? 'start again with' : 'resume with';
    throw new Interrupted(sig, `stopped by ${sig} ${where}\n${again}: ${commandLine()}`);
  }
  console.log(`done: ${res.step} steps in ${o.run} (weights: ${o.run}/model)`);
}

/**
 * The --eval-every hook: FID of the EMA weights on a small sample (DDIM, 20 steps, the same seeds every
 * time, so successive values differ by the weights only) against the reference, measured by the feature
 * network `ddpm eval` would choose. The feature network and reference are opened once.
 */
async function trainingFid(
  engine: Engine,
  spec: ModelSpec,
  o: Record<string, unknown>,
  stop: StopRequest,
): Promise<(ema: ParamStore, step: number) => Promise<EvalLog>> {
  const refSpec = (o['eval-ref'] as string | undefined) ?? defaultRef(spec.data);
  if (!refSpec) {
    throw new UsageError(
      `ddpm train: --eval-every needs a reference for its FID: pass --eval-ref (a data spec or an .npz)`,
    );
  }
  const cfg = spec.unet;
  const n = o['eval-n'] as number;
  const batch = Math.min(64, n);
  const opts = { features: o.features, batch, threads: o.threads, ep: o.ep };
  const net = await openFeatureNet('train', opts, cfg.inChannels, spec.data);
  const shape = [cfg.inChannels, cfg.resolution, cfg.resolution] as const;
  // Opened before the first step: a wrong --eval-ref fails now, not at the first evaluation.
  const ref: Reference = await openReference(refSpec, net, shape, false, batch, 'ddpm train: --eval-ref');
  const diffusion = diffusionFromSpec(spec.diffusion);
  return async (ema) => {
    const den = await createDenoiser(engine, cfg, ema, batch, { threads: o.threads as number });
    try {
      const choice = { sampler: 'ddim' as const, steps: 20, eta: 0, seed: 0 };
      const denoise = stop.wrap(den.denoise, 'training FID');
      const src = modelImages(diffusion, denoise, shape, n, choice, 'training FID');
      const set = await extractFeatures(src, net, {
        ranges: shardRanges(n, batch),
        keepFeatures: false,
        keepLogits: false,
      });
      const { fid } = computeMetrics(set, ref, ['fid']);
      return { label: `${metricLabel('FID', net)} ddim-20 n=${n}`, value: fid!, n };
    } finally {
      await den.release();
    }
  };
}
