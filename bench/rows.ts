// The benchmark rows and the TypeScript side of each: the same work as the PyTorch reference server
// (reference/torch_server.py) does for the row of the same name, run through the project's own code
// paths (createDenoiser + the diffusion samplers, createTrainSession + adamStep as the trainer uses them).

import { ddimSample, ddimTimesteps, type GaussianDiffusion } from '../src/diffusion/index.js';
import type { Engine } from '../src/engine/engine.js';
import { hashInceptionWeights, inceptionFeatureNet } from '../src/eval/inception.js';
import { diffusionFromSpec, PAPER_DIFFUSION } from '../src/model/spec.js';
import { CIFAR10_UNET, initParams, SMALL_UNET, type UNetConfig } from '../src/nn/unet.js';
import { calibrateConvs } from '../src/sample/calibrate.js';
import { createDenoiser, type UNetDenoiser } from '../src/sample/denoiser.js';
import { type AdamConfig, adamStep, newAdamState, PAPER_ADAM } from '../src/train/optim.js';
import { createTrainSession } from '../src/train/trainGraph.js';
import { Rng } from '../src/util/rng.js';
import { sliceBatch, type Tensor } from '../src/util/tensor.js';

export type Suite = 'engine' | 'sample' | 'eval' | 'throughput' | 'precision';
export type RowKind = 'fwd' | 'train' | 'ddim50' | 'ancestral100' | 'inception';

export interface RowDef {
  readonly name: string;
  readonly suite: Suite;
  /** 'S' = SMALL_UNET (2.2M params, 1x32x32), 'L' = CIFAR10_UNET (35.7M, 3x32x32), 'I' = the FID Inception. */
  readonly size: 'S' | 'L' | 'I';
  readonly batch: number;
  readonly kind: RowKind;
  /** Forward-pass equivalents per run for GFLOP/s: 1 (fwd), 3 (train), the step count (sampling). */
  readonly flopFactor: number;
  readonly defaultReps: number;
  readonly what: string;
  /** The torch server's setup of the same work when its name differs (throughput rows: `S-fwd` at `batch`). */
  readonly torchName?: string;
  /**
   * Our side's convolutions: float32 (default), int8 (calibrated first, as `--precision int8`) or bf16 (the
   * Winograd products in bfloat16, as `--precision bf16`; rows skipped where the engine lacks it).
   */
  readonly precision?: 'float32' | 'int8' | 'bf16';
}

/** Images per session run of the inception row, on both sides (the torch server's INCEPTION_CHUNK). */
const INCEPTION_CHUNK = 32;

export const ROWS: readonly RowDef[] = [
  {
    name: 'S-fwd',
    suite: 'engine',
    size: 'S',
    batch: 64,
    kind: 'fwd',
    flopFactor: 1,
    defaultReps: 5,
    what: 'one forward pass of the S model, batch 64, random t',
  },
  {
    name: 'S-train',
    suite: 'engine',
    size: 'S',
    batch: 64,
    kind: 'train',
    flopFactor: 3,
    defaultReps: 5,
    what: 'one training step of the S model, batch 64: qSample, forward, backward, Adam',
  },
  {
    name: 'L-fwd',
    suite: 'engine',
    size: 'L',
    batch: 16,
    kind: 'fwd',
    flopFactor: 1,
    defaultReps: 5,
    what: 'one forward pass of the CIFAR-10 model, batch 16, random t',
  },
  {
    name: 'L-train',
    suite: 'engine',
    size: 'L',
    batch: 16,
    kind: 'train',
    flopFactor: 3,
    defaultReps: 5,
    what: 'one training step of the CIFAR-10 model, batch 16: qSample, forward, backward, Adam',
  },
  {
    name: 'S-sample-ddim50',
    suite: 'sample',
    size: 'S',
    batch: 64,
    kind: 'ddim50',
    flopFactor: 50,
    defaultReps: 3,
    what: 'a whole 50-step DDIM (eta 0) run, t = 980, 960, ..., 0, 64 images',
  },
  {
    name: 'S-sample-ancestral100',
    suite: 'sample',
    size: 'S',
    batch: 64,
    kind: 'ancestral100',
    flopFactor: 100,
    defaultReps: 3,
    what: '100 steps (t = 999 .. 900) of the 1000-step Algorithm 2 loop, 64 images',
  },
  {
    name: 'inception-fid256',
    suite: 'eval',
    size: 'I',
    batch: 256,
    kind: 'inception',
    flopFactor: 1,
    defaultReps: 3,
    what: `FID Inception features and logits of 256 images 3x32x32 (resized to 299), sessions of ${INCEPTION_CHUNK}`,
  },
];

/** Throughput rows: one forward pass at each batch size, images per second against the batch (issue #16 item 7). */
const THROUGHPUT_BATCHES: Readonly<Record<'S' | 'L', readonly number[]>> = {
  S: [1, 2, 4, 8, 16, 32, 64, 128, 256],
  L: [1, 2, 4, 8, 16, 32, 64, 128],
};

for (const size of ['S', 'L'] as const) {
  for (const batch of THROUGHPUT_BATCHES[size]) {
    (ROWS as RowDef[]).push({
      name: `${size}-fwd-b${batch}`,
      suite: 'throughput',
      size,
      batch,
      kind: 'fwd',
      flopFactor: 1,
      defaultReps: 3,
      what: `one forward pass of the ${size === 'S' ? 'S' : 'CIFAR-10'} model, batch ${batch}, random t`,
      torchName: `${size}-fwd`,
    });
  }
}

// The precision suite: each model's forward in float32, int8 and bf16, interleaved with PyTorch's float32
// forward.
for (const [size, batch] of [
  ['S', 64],
  ['L', 16],
] as const) {
  for (const precision of ['float32', 'int8', 'bf16'] as const) {
    (ROWS as RowDef[]).push({
      name: `${size}-fwd-${precision === 'float32' ? 'f32' : precision}`,
      suite: 'precision',
      size,
      batch,
      kind: 'fwd',
      flopFactor: 1,
      defaultReps: 5,
      what: `one forward pass of the ${size === 'S' ? 'S' : 'CIFAR-10'} model, batch ${batch}, ${precision} convolutions`,
      torchName: `${size}-fwd`,
      precision,
    });
  }
}

export function configOf(size: 'S' | 'L' | 'I'): UNetConfig {
  switch (size) {
    case 'S':
      return SMALL_UNET;
    case 'L':
      return CIFAR10_UNET;
    case 'I':
      throw new Error('bench: size I is the FID Inception, not a U-Net');
  }
}

/** One row, our side: `run` is the timed body; `warmup` runs it (or a 2-step version of a sampling loop). */
export interface OursRunner {
  run(): Promise<void>;
  /** One warm-up run: the timed body, or for the sampling rows the same loop with 2 steps. */
  warmup(): Promise<void>;
  release(): Promise<void>;
}

/**
 * The optimiser settings of the train rows: the trainer's Adam (lr 2e-4, betas 0.9/0.999, eps 1e-8) without
 * warmup or clipping, like the torch server's torch.optim.Adam. adamStep computes the global gradient norm
 * in any case, so this changes no cost, only the values.
 */
const BENCH_ADAM: AdamConfig = { ...PAPER_ADAM, warmup: 0, gradClip: 0 };

/** Options of our side that the timing rows leave at their defaults (the memory suite varies them). */
export interface OursOptions {
  /** Train rows: gradient accumulation in chunks of at most this many images (createTrainSession). */
  readonly microbatch?: number;
}

export async function createOurs(
  engine: Engine,
  row: RowDef,
  threads: number,
  opts: OursOptions = {},
): Promise<OursRunner> {
  if (row.kind === 'inception') return createInceptionRunner(engine, row.batch, threads);
  const cfg = configOf(row.size);
  const B = row.batch;
  const shape = [B, cfg.inChannels, cfg.resolution, cfg.resolution];
  const per = cfg.inChannels * cfg.resolution * cfg.resolution;
  const diffusion = diffusionFromSpec(PAPER_DIFFUSION);
  const T = diffusion.numTimesteps;
  const rng = new Rng(0);
  if (row.kind === 'train')
    return createTrainRunner(engine, cfg, B, shape, per, diffusion, rng, threads, opts.microbatch);

  // Inference rows: every weight non-zero (the fixture init), as torch's default init on the other side.
  const params = initParams(cfg, 'fixture', 0);
  const calibration =
    row.precision === 'int8'
      ? await calibrateConvs(engine, cfg, params, diffusion, { threads }, { images: 4, steps: 4 })
      : undefined;
  const den = await createDenoiser(engine, cfg, params, B, {
    threads,
    ...(calibration ? { calibration } : {}),
    ...(row.precision === 'bf16' ? { bf16: true } : {}),
  });
  switch (row.kind) {
    case 'fwd': {
      const x: Tensor = { data: rng.normalArray(B * per), shape };
      const once = async () => {
        const t = new Int32Array(B);
        for (let i = 0; i < B; i++) t[i] = rng.int(T);
        await den.denoise(x, t);
      };
      return { run: once, warmup: once, release: () => den.release() };
    }
    case 'ddim50': {
      const all = ddimTimesteps(T, 50);
      if (all.length !== 50 || all[0] !== 0 || all[49] !== 980) {
        throw new Error(`bench: ddimTimesteps(1000, 50) is [${all[0]} .. ${all.at(-1)}] x ${all.length}`);
      }
      const loop = (timesteps: Int32Array) => async () => {
        await ddimSample(diffusion, den.denoise, shape, rng, { timesteps, eta: 0, clipDenoised: false });
      };
      return { run: loop(all), warmup: loop(all.slice(-2)), release: () => den.release() };
    }
    case 'ancestral100':
      return {
        run: () => ancestralSteps(diffusion, den, shape, rng, 100),
        warmup: () => ancestralSteps(diffusion, den, shape, rng, 2),
        release: () => den.release(),
      };
  }
}

/**
 * The first `steps` steps (t = T-1 down) of Algorithm 2 from fresh noise: the body of
 * GaussianDiffusion.pSampleLoop (fresh z, then pSample), which has no way to stop early. No clipping of the
 * x_0 prediction (as the torch loop, which uses eps directly); fixedlarge variance from PAPER_DIFFUSION.
 */
async function ancestralSteps(
  diffusion: GaussianDiffusion,
  den: UNetDenoiser,
  shape: readonly number[],
  rng: Rng,
  steps: number,
): Promise<void> {
  const n = shape[0]!;
  const size = shape.reduce((a, c) => a * c, 1);
  let x: Tensor = { data: rng.normalArray(size), shape: [...shape] };
  for (let i = diffusion.numTimesteps - 1; i > diffusion.numTimesteps - 1 - steps; i--) {
    const t = new Int32Array(n).fill(i);
    const noise: Tensor | null = i > 0 ? { data: rng.normalArray(size), shape: [...shape] } : null;
    x = (await diffusion.pSample(den.denoise, x, t, { clipDenoised: false, noise })).sample;
  }
}

/** One training step exactly as src/train/trainer.ts does it (minus data loading and the EMA update). */
async function createTrainRunner(
  engine: Engine,
  cfg: UNetConfig,
  B: number,
  shape: number[],
  per: number,
  diffusion: GaussianDiffusion,
  rng: Rng,
  threads: number,
  microbatch?: number,
): Promise<OursRunner> {
  const params = initParams(cfg, 'paper', 0);
  const adam = newAdamState(params);
  const session = await createTrainSession(
    engine,
    cfg,
    params,
    B,
    threads,
    'mse',
    'fixedlarge',
    microbatch !== undefined ? { microbatch } : {},
  );
  const T = diffusion.numTimesteps;
  // A fixed batch in [-1, 1] (as the torch server's x0; timing does not depend on the data).
  const x0data = new Float32Array(B * per);
  for (let i = 0; i < x0data.length; i++) x0data[i] = 2 * rng.uniform() - 1;
  const x0: Tensor = { data: x0data, shape };
  const weight = new Float32Array(B).fill(1);
  const step = async () => {
    const t = new Int32Array(B);
    for (let i = 0; i < B; i++) t[i] = rng.int(T);
    const noise: Tensor = { data: rng.normalArray(B * per), shape };
    const xt = diffusion.qSample(x0, t, noise);
    const target = diffusion.mseTarget(x0, xt, t, noise);
    const out = await session.step(params, { xt, t: Float32Array.from(t), target, weight }, rng);
    if (!Number.isFinite(out.loss)) throw new Error(`bench: training loss is ${out.loss}`);
    adamStep(BENCH_ADAM, adam, params, out.grads, session.optim);
  };
  return { run: step, warmup: step, release: () => session.release() };
}

/**
 * Features of `images` 3x32x32 images in [-1, 1] through the FID Inception FeatureNet (hash weights, as the
 * torch server's), in sessions of INCEPTION_CHUNK. The session is compiled here (setup); a warm-up is one chunk.
 */
async function createInceptionRunner(engine: Engine, images: number, threads: number): Promise<OursRunner> {
  const net = await inceptionFeatureNet(engine, hashInceptionWeights(), { batch: INCEPTION_CHUNK, threads });
  const rng = new Rng(0);
  const data = new Float32Array(images * 3 * 32 * 32);
  for (let i = 0; i < data.length; i++) data[i] = 2 * rng.uniform() - 1;
  const x: Tensor = { data, shape: [images, 3, 32, 32] };
  const chunk = sliceBatch(x, 0, INCEPTION_CHUNK);
  await net.extract(chunk);
  return {
    run: async () => {
      await net.extract(x);
    },
    warmup: async () => {
      await net.extract(chunk);
    },
    release: () => net.release(),
  };
}
