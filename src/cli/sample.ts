// `ddpm sample`: images from a trained model (default: the MNIST model shipped in models/mnist) with
// Algorithm 2 (all T steps or respaced), DDIM, DPM-Solver++, Euler or Heun (diffusion/samplers.ts);
// optional animated reverse chain and progressive grid.

import { progressiveSample } from '../diffusion/progressive.js';
import { ancestralChain } from '../diffusion/timesteps.js';
import { runSampler, samplerEntry } from '../diffusion/samplers.js';
import type { StepInfo } from '../diffusion/types.js';
import { reverseChainGif } from '../util/gif.js';
import { encodePng, makeGrid } from '../util/image.js';
import { type AtomicFile, writeFilesAtomic } from '../util/atomicFile.js';
import { Rng } from '../util/rng.js';
import { concatBatch, type Tensor } from '../util/tensor.js';
import { EP_OPTION } from './epOption.js';
import { commandDenoiser, PRECISION_OPTION } from './precisionOption.js';
import { MODEL_OPTION, openModelOption, WEIGHTS_OPTION } from './modelOption.js';
import { helpText, type OptTable, type Parsed, parseOptions } from './args.js';
import { checkOutputs } from './outputs.js';
import { ProgressBar } from './progress.js';
import {
  describeSampling,
  resolveSampling,
  SAMPLER_OPTION,
  samplingDiffusion,
  STEPS_OPTION,
  VAR_TYPE_OPTION,
} from './samplingOption.js';
import { isFolderOut, sampleToFolder } from './sampleFolder.js';
import { catchStopSignals, type StopRequest } from './signals.js';

export const SAMPLE_OPTIONS: OptTable = {
  model: MODEL_OPTION,
  weights: WEIGHTS_OPTION,
  out: {
    kind: 'string',
    help: 'output PNG grid; a folder (ending in /) gets one PNG per image, image i from noise stream (seed, i) as ddpm eval draws it, and a stopped run goes on',
    default: 'samples.png',
  },
  n: { kind: 'int', help: 'number of images', default: 64, min: 1 },
  sampler: SAMPLER_OPTION,
  steps: STEPS_OPTION,
  'var-type': VAR_TYPE_OPTION,
  eta: { kind: 'float', help: 'DDIM noise (0 = deterministic)', default: 0, min: 0 },
  seed: { kind: 'int', help: 'random seed (same seed, same images)', default: 0 },
  batch: {
    kind: 'auto-int',
    help: 'images per network call; auto: measured on this machine for long jobs (at least 20,000 image-calls), else 64',
    default: 'auto',
    min: 1,
  },
  gif: { kind: 'string', help: 'also write the reverse chain as an animated GIF' },
  progressive: {
    kind: 'string',
    help: 'also write the predicted x_0 along the chain (paper Fig. 6) as a PNG',
  },
  frames: { kind: 'int', help: 'frames in --gif / --progressive', default: 10, min: 2 },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: 0, min: 0 },
  ep: EP_OPTION,
  precision: PRECISION_OPTION,
};

export async function sampleCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions('sample', argv, SAMPLE_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText('sample', 'Sample images from a trained model.', SAMPLE_OPTIONS, [
        "ddpm sample --out digits.png                             # the model's recommended sampling (MNIST: Algorithm 2, 50 respaced steps)",
        'ddpm sample --steps 1000 --out paper.png                 # Algorithm 2 exactly',
        'ddpm sample --sampler ddim --steps 50 --out fast.png     # DDIM, deterministic',
        'ddpm sample --sampler dpm++2m --steps 15 --out fast.png  # DPM-Solver++(2M), 15 network calls',
        'ddpm sample --model runs/mnist/model --gif chain.gif --progressive x0.png',
        'ddpm sample --n 10000 --out samples/                     # 000000.png .. 009999.png, for any FID tool',
      ]),
    );
    return;
  }
  const folder = isFolderOut(o.out as string);
  const stop = catchStopSignals(
    'sample',
    folder
      ? 'stopping after the current batch; the images written stay'
      : 'stopping; no file will be written',
  );
  try {
    if (folder) {
      const model = openModelOption('sample', o.model, o.weights);
      const sampling = resolveSampling('sample', o, model.spec);
      if (sampling.note) console.error(sampling.note);
      await sampleToFolder(o, model, sampling, samplingDiffusion(model, sampling), stop);
    } else {
      await sampleWith(o, stop);
    }
  } finally {
    stop.dispose();
  }
}

async function sampleWith(o: Parsed, stop: StopRequest): Promise<void> {
  const model = openModelOption('sample', o.model, o.weights);
  const cfg = model.spec.unet;
  const n = o.n as number;
  const sampling = resolveSampling('sample', o, model.spec);
  const { sampler, steps, note } = sampling;
  const diffusion = samplingDiffusion(model, sampling);
  // All outputs are checked before sampling, and written together (all or nothing) after it.
  const pixels = n * cfg.inChannels * cfg.resolution * cfg.resolution;
  const frameCount = (o.frames as number) + 1;
  checkOutputs('sample', [
    { option: 'out', path: o.out as string, format: 'png', bytes: pixels, folderForm: 'one PNG per image' },
    o.gif === undefined
      ? undefined
      : {
          option: 'gif',
          path: o.gif as string,
          format: 'gif',
          bytes: (frameCount * pixels) / cfg.inChannels,
        },
    o.progressive === undefined
      ? undefined
      : {
          option: 'progressive',
          path: o.progressive as string,
          format: 'png',
          bytes: (frameCount * pixels * Math.min(n, 8)) / n,
        },
  ]);
  if (note) console.error(note);
  const choice = await commandDenoiser(
    'sample',
    o,
    { cfg, params: model.params, diffusion },
    {
      images: n,
      callsPerImage: samplerEntry(sampler).calls(diffusion, steps),
      batch: o.batch as number | 'auto',
    },
  );
  const den = choice.denoiser;
  const denoise = stop.wrap(den.denoise, 'no file written');
  const rng = new Rng(o.seed as number);
  const bar = new ProgressBar('sample');
  const t0 = performance.now();
  const shape = [n, cfg.inChannels, cfg.resolution, cfg.resolution];
  const onProgress = ({ step, total }: { step: number; total: number }) => bar.update(step, total);
  let x: Tensor;
  let frames: StepInfo[] = [];
  const wantFrames = o.gif !== undefined || o.progressive !== undefined;
  try {
    if (wantFrames) {
      // Algorithm 2 with fewer steps runs on the respaced chain; the other samplers pick their own timesteps.
      const chain = sampler === 'ddpm' ? ancestralChain(diffusion, steps) : diffusion;
      const res = await progressiveSample(chain, denoise, shape, rng, {
        sampler: sampler === 'ddpm' ? 'ancestral' : sampler,
        ddimSteps: steps,
        eta: o.eta as number,
        frames: o.frames as number,
        onProgress,
      });
      x = res.sample;
      frames = res.frames;
    } else {
      x = await runSampler(sampler, diffusion, denoise, shape, rng, {
        steps,
        eta: o.eta as number,
        onProgress,
      });
    }
  } finally {
    await den.release();
    bar.done();
  }
  const nrow = Math.ceil(Math.sqrt(n));
  const files: AtomicFile[] = [{ path: o.out as string, parts: [encodePng(makeGrid(x, { nrow }))] }];
  const said: string[] = [];
  const secs = (performance.now() - t0) / 1000;
  const calls = samplerEntry(sampler).calls(diffusion, steps);
  said.push(
    `wrote ${o.out}: ${n} images, ${describeSampling(sampling)} (${calls} network calls per image), ${secs.toFixed(1)} s`,
  );
  if (o.gif) {
    files.push({
      path: o.gif as string,
      parts: [reverseChainGif([...frames.map((f) => f.xt), x], { nrow })],
    });
    said.push(`wrote ${o.gif}: ${frames.length + 1} frames of x_t`);
  }
  if (o.progressive) {
    // Rows: images (up to 8); columns: predicted x_0 at the recorded steps, then the final sample.
    const rows = Math.min(n, 8);
    const per = cfg.inChannels * cfg.resolution * cfg.resolution;
    const cols = [...frames.map((f) => f.predXstart), x];
    const tiles: Tensor[] = [];
    for (let r = 0; r < rows; r++) {
      for (const c of cols)
        tiles.push({ data: c.data.subarray(r * per, (r + 1) * per), shape: [1, ...shape.slice(1)] });
    }
    files.push({
      path: o.progressive as string,
      parts: [encodePng(makeGrid(concatBatch(tiles), { nrow: cols.length }))],
    });
    said.push(
      `wrote ${o.progressive}: predicted x_0 at t = ${frames.map((f) => f.modelT + 1).join(', ')} (paper Fig. 6)`,
    );
  }
  writeFilesAtomic(files);
  for (const line of said) console.log(line);
}
