// The page's training settings (Ho et al. 2020, Algorithm 1 with Appendix B's recipe at a tiny scale): the
// network and recipe the Train form sets, the ModelSpec and run options `ddpm train` builds from the same
// values, and the `ddpm train` options that resume a checkpoint of the run. Pure and free of ONNX Runtime,
// so the page's main.js uses it without the worker's engine (web/train.ts runs the training).

import type { ModelSpec } from '../model/spec.js';
import { PAPER_DIFFUSION } from '../model/spec.js';
import { SMALL_UNET, type UNetConfig } from '../nn/unet.js';
import { type AdamConfig, PAPER_ADAM } from '../train/optim.js';
import type { RunIdentityOptions, runIdentity } from '../train/step.js';

/** What the page's Train form sets: the network's size, the data and the recipe. */
export interface PageTrainConfig {
  /** 'mnist' (the embedded digits) or 'folder:NAME' (images the user gave the page). */
  readonly data: string;
  /** Image side (the digits are resized to it). */
  readonly resolution: number;
  readonly channels: 1 | 3;
  /** U-Net base channels (a multiple of 32: the paper's GroupNorm has 32 groups). */
  readonly ch: number;
  readonly chMult: readonly number[];
  readonly numResBlocks: number;
  readonly attn: readonly number[];
  readonly dropout: number;
  readonly batch: number;
  readonly lr: number;
  readonly warmup: number;
  readonly gradClip: number;
  readonly emaDecay: number;
  readonly seed: number;
  /** Test only: other U-Net fields (e.g. fewer GroupNorm groups for a smaller WebGPU check); no CLI option resumes them. */
  readonly unet?: Partial<UNetConfig>;
}

/**
 * The page's default: a tiny U-Net (16x16 digits, 32 base channels, two levels, one ResNet block each,
 * 0.7M parameters: TINY_UNET), 8 images a step, a learning rate 10x the paper's with a 10-step warmup instead
 * of 5000: on the embedded digits the loss falls from about 0.8 to below 0.1 within 40 steps (tens of seconds on
 * 2 cores' wasm). The EMA decay 0.999 with its warmup (the average leaves the initialisation within a few steps).
 */
export const PAGE_TINY: PageTrainConfig = {
  data: 'mnist',
  resolution: 16,
  channels: 1,
  ch: 32,
  chMult: [1, 2],
  numResBlocks: 1,
  attn: [8],
  dropout: 0,
  batch: 8,
  lr: 2e-3,
  warmup: 10,
  gradClip: 1,
  emaDecay: 0.999,
  seed: 0,
};

/** The ModelSpec `ddpm train` builds from the same options (same keys in the same order: identities compare as JSON). */
export function pageSpec(c: PageTrainConfig): ModelSpec {
  return {
    format: 'ddpm-ts/model/v1',
    unet: {
      ...SMALL_UNET,
      inChannels: c.channels,
      outChannels: c.channels,
      resolution: c.resolution,
      ch: c.ch,
      chMult: [...c.chMult],
      numResBlocks: c.numResBlocks,
      attnResolutions: [...c.attn],
      dropout: c.dropout,
      ...c.unet,
    },
    diffusion: { ...PAPER_DIFFUSION },
    data: c.data,
  };
}

/** The trainer's options for a page config (ddpm train's defaults where the page has no control). */
export function pageRunOptions(c: PageTrainConfig): RunIdentityOptions {
  const adam: AdamConfig = { ...PAPER_ADAM, lr: c.lr, warmup: c.warmup, gradClip: c.gradClip };
  return {
    data: c.data,
    spec: pageSpec(c),
    batch: c.batch,
    adam,
    emaDecay: c.emaDecay,
    emaWarmup: true,
    flip: true,
    seed: c.seed,
    loss: 'mse',
  };
}

/**
 * The `ddpm train` options that give a run this identity (so `ddpm train --run DIR ...these` resumes a
 * checkpoint of it), or the reason none do.
 */
export function resumeArgs(o: RunIdentityOptions): { ok: true; args: string[] } | { ok: false; why: string } {
  const u = o.spec.unet;
  const d = o.spec.diffusion;
  const base = SMALL_UNET;
  const fixed: (keyof UNetConfig)[] = ['groups', 'eps'];
  const odd = fixed.filter((k) => JSON.stringify(u[k]) !== JSON.stringify(base[k]));
  const extra = Object.keys(u).filter((k) => !(k in base));
  if (odd.length || extra.length)
    return { ok: false, why: `ddpm train has no option for the U-Net's ${[...odd, ...extra].join(', ')}` };
  if (JSON.stringify(d) !== JSON.stringify(PAPER_DIFFUSION))
    return { ok: false, why: 'the page trains with the paper diffusion only' };
  if (o.adam.beta1 !== PAPER_ADAM.beta1 || o.adam.beta2 !== PAPER_ADAM.beta2)
    return { ok: false, why: "ddpm train has no option for Adam's betas" };
  const num = (v: number) => String(v);
  const args = [
    '--data',
    o.data,
    '--channels',
    num(u.inChannels),
    '--resolution',
    num(u.resolution),
    '--ch',
    num(u.ch),
    '--ch-mult',
    u.chMult.join(','),
    '--res-blocks',
    num(u.numResBlocks),
    '--attn',
    u.attnResolutions.join(','),
    '--dropout',
    num(u.dropout),
    '--batch',
    num(o.batch),
    '--lr',
    num(o.adam.lr),
    '--warmup',
    num(o.adam.warmup),
    '--grad-clip',
    num(o.adam.gradClip),
    '--adam-eps',
    num(o.adam.eps),
    '--ema',
    num(o.emaDecay),
    '--seed',
    num(o.seed),
    ...(o.emaWarmup ? [] : ['--no-ema-warmup']),
    ...(o.flip ? [] : ['--no-flip']),
    ...(o.loss !== 'mse' ? ['--loss', o.loss] : []),
  ];
  if (u.attnResolutions.length === 0) return { ok: false, why: 'ddpm train --attn cannot be given empty' };
  return { ok: true, args };
}

/** The run options a checkpoint's identity holds, checked enough to train on (the shapes are checked after). */
export function optionsOfIdentity(identity: Record<string, unknown>, source: string): RunIdentityOptions {
  const i = identity as Partial<ReturnType<typeof runIdentity>>;
  const bad = (what: string): never => {
    throw new Error(
      `checkpoint: ${source}: its run options have no valid ${what}; is it a ddpm train checkpoint?`,
    );
  };
  if (typeof i.data !== 'string') bad('data');
  if (!i.spec || typeof i.spec !== 'object' || !i.spec.unet || !i.spec.diffusion) bad('spec');
  if (!Number.isInteger(i.batch) || (i.batch as number) < 1) bad('batch');
  if (!i.adam || typeof i.adam.lr !== 'number') bad('adam');
  if (typeof i.emaDecay !== 'number') bad('emaDecay');
  if (typeof i.seed !== 'number') bad('seed');
  if (i.init !== undefined)
    throw new Error(
      `checkpoint: ${source}: the run started from a trained model (--init); the page starts from random weights only`,
    );
  if (i.timestepSampler !== undefined || i.loss !== undefined)
    throw new Error(
      `checkpoint: ${source}: the run uses the loss ${i.loss} / timestep sampler ${i.timestepSampler}; the page trains L_simple (--loss mse) only`,
    );
  if (i.spec!.diffusion.modelVarType === 'learned-range')
    throw new Error(`checkpoint: ${source}: a learned-variance run; the page trains fixed variances only`);
  return {
    data: i.data!,
    spec: i.spec as ModelSpec,
    batch: i.batch!,
    adam: i.adam as AdamConfig,
    emaDecay: i.emaDecay!,
    emaWarmup: i.emaWarmup !== false,
    flip: i.flip !== false,
    seed: i.seed!,
    loss: 'mse',
  };
}
