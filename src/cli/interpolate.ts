// `ddpm interpolate`: interpolation in latent space (Ho et al. 2020, section 4.3, Fig. 8). Two source
// images (from the data or PNG/JPEG files) are encoded to x_t with the same noise (q(x_t | x_0), eq. 4),
// mixed linearly, xbar_t = (1 - lambda) x_t + lambda x_t', and each mix is decoded with the reverse process
// (Algorithm 2 from t down to 1, the same reverse noise for every lambda). Output: one PNG row,
// source a | decodes for lambda = 0 .. 1 | source b.
// --t is the paper's 1-based t (Fig. 8 shows t = 500 of T = 1000): x_t is the image after t noising steps,
// timestep index t - 1 in the code's 0-based tables. Cost: t network calls on a batch of --lambdas images.

import { existsSync } from 'node:fs';
import { loadImageFile } from '../data/folder.js';
import { openDataset } from '../data/open.js';
import { interpolate } from '../diffusion/interpolate.js';
import { createDenoiser } from '../sample/denoiser.js';
import { makeGrid } from '../util/image.js';
import { writePngAtomic } from '../util/imageFile.js';
import { Rng } from '../util/rng.js';
import { concatBatch, type Tensor } from '../util/tensor.js';
import { helpText, type OptTable, type Parsed, parseOptions, UsageError } from './args.js';
import { EP_OPTION, openEpOption } from './epOption.js';
import { ProgressBar } from './progress.js';
import { MODEL_OPTION, openModelOption, WEIGHTS_OPTION } from './modelOption.js';
import { checkOutputs } from './outputs.js';
import { catchStopSignals, type StopRequest } from './signals.js';

export const INTERPOLATE_OPTIONS: OptTable = {
  model: MODEL_OPTION,
  weights: WEIGHTS_OPTION,
  data: {
    kind: 'string',
    help: 'data the source images come from: mnist | fashion-mnist | cifar10:PATH | folder:PATH | idx:PATH',
    default: 'mnist',
  },
  a: {
    kind: 'int',
    help: 'index of the first image in --data (MNIST: image k is a digit k mod 10)',
    default: 0,
    min: 0,
  },
  b: { kind: 'int', help: 'index of the second image in --data', default: 1, min: 0 },
  'a-png': { kind: 'string', help: 'first image from a PNG/JPEG file instead (resized, centre-cropped)' },
  'b-png': { kind: 'string', help: 'second image from a PNG/JPEG file instead' },
  t: {
    kind: 'int',
    help: "noising steps, the paper's 1-based t in 1..T (default: T/2, the paper's t = 500 of 1000)",
    min: 1,
  },
  lambdas: {
    kind: 'int',
    help: 'interpolation weights, evenly spaced from 0 to 1 inclusive',
    default: 11,
    min: 2,
  },
  seed: { kind: 'int', help: 'seed of the encoding and reverse noise', default: 0 },
  out: { kind: 'string', help: 'output PNG strip: a, the decodes, b', default: 'interpolate.png' },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: 0, min: 0 },
  ep: EP_OPTION,
};

export async function interpolateCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions('interpolate', argv, INTERPOLATE_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText(
        'interpolate',
        'Interpolate between two images in latent space (paper Fig. 8): encode both to x_t, mix, decode.',
        INTERPOLATE_OPTIONS,
        [
          'ddpm interpolate --a 0 --b 1 --out mix.png             # a 0 and a 1 of MNIST, t = 500',
          'ddpm interpolate --model runs/mnist/model --t 250 --lambdas 8',
          'ddpm interpolate --a-png one.png --b-png two.png',
        ],
      ),
    );
    return;
  }
  const stop = catchStopSignals('interpolate', 'stopping; no file will be written');
  try {
    await interpolateWith(o, stop);
  } finally {
    stop.dispose();
  }
}

async function interpolateWith(o: Parsed, stop: StopRequest): Promise<void> {
  checkOutputs('interpolate', [{ option: 'out', path: o.out as string, format: 'png' }]);
  const model = openModelOption('interpolate', o.model, o.weights);
  const cfg = model.spec.unet;
  const { diffusion } = model;
  const T = diffusion.numTimesteps;
  const t = (o.t as number | undefined) ?? Math.max(1, Math.floor(T / 2));
  if (t > T) {
    throw new UsageError(`ddpm interpolate: --t ${t} is beyond this model's T = ${T}; pick t in 1..${T}`);
  }
  const channels = cfg.inChannels as 1 | 3;
  const per = channels * cfg.resolution * cfg.resolution;
  const shape = [1, channels, cfg.resolution, cfg.resolution];

  // Each source: a PNG/JPEG file, or an image of the data (opened only if needed).
  let ds: ReturnType<typeof openDataset> | undefined;
  const source = (which: 'a' | 'b'): { x: Tensor; what: string } => {
    const file = o[`${which}-png`] as string | undefined;
    const x = new Float32Array(per);
    if (file !== undefined) {
      if (!existsSync(file)) throw new UsageError(`ddpm interpolate: --${which}-png ${file} does not exist`);
      const bytes = loadImageFile(file, cfg.resolution, channels);
      for (let k = 0; k < per; k++) x[k] = bytes[k]! / 127.5 - 1;
      return { x: { data: x, shape }, what: file };
    }
    ds ??= openDataset(o.data as string, { resolution: cfg.resolution, channels });
    const i = o[which] as number;
    if (i >= ds.n) {
      throw new UsageError(
        `ddpm interpolate: --${which} ${i} is out of range: ${o.data} has ${ds.n} images (0..${ds.n - 1})`,
      );
    }
    ds.get(i, x, 0);
    const label = ds.label?.(i);
    return {
      x: { data: x, shape },
      what: `${o.data} #${i}${label === undefined ? '' : ` (label ${label})`}`,
    };
  };
  const a = source('a');
  const b = source('b');

  const L = o.lambdas as number;
  const lambdas = Array.from({ length: L }, (_, i) => i / (L - 1));
  const bar = new ProgressBar('interpolate');
  bar.log(
    `ddpm interpolate: ${a.what} -> ${b.what}, t = ${t} of ${T}, ${L} lambdas: ${t} network calls of batch ${L}`,
  );
  const den = await createDenoiser(await openEpOption(o.ep), cfg, model.params, L, {
    threads: o.threads as number,
  });
  const t0 = performance.now();
  let images: Tensor[];
  try {
    const denoise = stop.wrap(den.denoise, 'no file written');
    ({ images } = await interpolate(diffusion, denoise, a.x, b.x, new Rng(o.seed as number), {
      t: t - 1, // 0-based index of the paper's t
      lambdas,
      sharedReverseNoise: true,
      onProgress: ({ step, total }) => bar.update(step, total),
    }));
  } finally {
    await den.release();
  }
  bar.done();
  writePngAtomic(o.out as string, makeGrid(concatBatch([a.x, ...images, b.x]), { nrow: L + 2 }));
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `wrote ${o.out}: source a, ${L} decodes (lambda = 0, ${(1 / (L - 1)).toFixed(3)}, .., 1) from t = ${t}, source b; ${secs.toFixed(1)} s`,
  );
}
