// Where evaluated images come from: a trained model and a sampler (generated batch by batch, each image
// from its own noise stream, see diffusion/imageNoise.ts), or a data set / folder of images. A source
// hands out any range of images as a [count, C, H, W] tensor in [-1, 1]; nothing keeps all of them.

import type { ImageDataset } from '../data/dataset.js';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { perImageNoise } from '../diffusion/imageNoise.js';
import { runSampler, type SamplerName } from '../diffusion/samplers.js';
import type { Denoiser } from '../diffusion/types.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';

export interface ImageSource {
  /** What the images are, for the printed summary. */
  readonly description: string;
  /** Images available (a model: as many as asked for). */
  readonly n: number;
  /** [C, H, W] of one image. */
  readonly imageShape: readonly [number, number, number];
  /** Images start .. start + count - 1: [count, C, H, W] in [-1, 1]; onProgress gets the fraction done. */
  images(start: number, count: number, onProgress?: (fraction: number) => void): Promise<Tensor>;
}

/** How a model's images are drawn; the samplers `ddpm sample` offers (diffusion/samplers.ts). */
export interface SamplerChoice {
  /** 'ddpm' = Algorithm 2 (on the chain respaced to `steps` when steps < T); 'ddim', 'dpm++2m', ... */
  readonly sampler: SamplerName;
  readonly steps: number;
  /** DDIM's noise (0 = deterministic). */
  readonly eta: number;
  readonly seed: number;
}

/** n images of a model: image i comes from noise stream (seed, i), whatever batch it is generated in. */
export function modelImages(
  diffusion: GaussianDiffusion,
  denoise: Denoiser,
  imageShape: readonly [number, number, number],
  n: number,
  choice: SamplerChoice,
  description: string,
): ImageSource {
  return {
    description,
    n,
    imageShape,
    images: (start, count, progress) => {
      const shape = [count, ...imageShape];
      const noiseFn = perImageNoise(choice.seed, start, count);
      const rng = new Rng(0); // unused: every draw goes through noiseFn
      const onProgress =
        progress && (({ step, total }: { step: number; total: number }) => progress(step / total));
      return runSampler(choice.sampler, diffusion, denoise, shape, rng, {
        steps: choice.steps,
        eta: choice.eta,
        noiseFn,
        onProgress,
      });
    },
  };
}

/** The first n images of a data set (all of it by default), in order. */
export function datasetImages(ds: ImageDataset, n = ds.n): ImageSource {
  const count = Math.min(n, ds.n);
  const imageShape: [number, number, number] = [ds.channels, ds.height, ds.width];
  const per = ds.channels * ds.height * ds.width;
  return {
    description: ds.name,
    n: count,
    imageShape,
    images: async (start, m) => {
      if (start < 0 || start + m > count)
        throw new RangeError(`images ${start}..${start + m - 1} of ${count}`);
      const data = new Float32Array(m * per);
      for (let i = 0; i < m; i++) ds.get(start + i, data, i * per);
      return { data, shape: [m, ...imageShape] };
    },
  };
}
