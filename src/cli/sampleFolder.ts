// `ddpm sample --out DIR/`: one PNG per image, for other tools (pytorch-fid, clean-fid, torch-fidelity) to read.
// Image i is drawn from noise stream (seed, i), as `ddpm eval` draws it (eval/imageSource.ts), so the folder
// holds the images `ddpm eval --n N --seed S` scores with the same model and sampler, 8-bit as PNGs are.
// Long runs go on: images are written as their batch ends (each file atomically), Ctrl-C stops after the
// current batch, and the same command run again draws only the images whose files are missing. A
// `sampling.json` in the folder records what drew the images; a folder of another sampling is refused.

import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { samplerEntry } from '../diffusion/samplers.js';
import { paramsHash } from '../eval/hash.js';
import { modelImages } from '../eval/imageSource.js';
import type { LoadedModel } from '../model/weights.js';
import { writeFileAtomic } from '../util/atomicFile.js';
import { encodePng, toUint8Image } from '../util/image.js';
import { UsageError, type Parsed } from './args.js';
import { commandDenoiser } from './precisionOption.js';
import { ProgressBar } from './progress.js';
import { describeSampling, type SamplingChoice, samplingLabel } from './samplingOption.js';
import { Interrupted, type StopRequest, yielding } from './signals.js';

/** Images drawn (and written) at a time when --batch is auto. */
const FOLDER_BATCH = 64;

/** Whether --out names a folder: it ends with a path separator ('samples/'). An existing folder named
 * without one is refused as an output file (checkOutputs), so a grid is never spread into a folder by mistake. */
export function isFolderOut(out: string): boolean {
  return /[\\/]$/.test(out);
}

/** The file of image i (six digits, so that a folder can grow to a larger --n with the same names). */
export function imageFileName(i: number): string {
  return `${String(i).padStart(6, '0')}.png`;
}

/** What drew a folder's images; two runs may share a folder only if these agree. */
interface FolderRecord {
  readonly format: 'ddpm-ts/samples/v1';
  readonly model: string;
  readonly weightsHash: string;
  readonly sampler: string;
  readonly steps: number;
  readonly eta: number;
  readonly seed: number;
  readonly imageShape: readonly number[];
  readonly precision: string;
}

const RECORD = 'sampling.json';

/** Differences between a folder's record and this run's, as 'seed: 0 there, 5 here'. */
function differences(a: FolderRecord, b: FolderRecord): string[] {
  const out: string[] = [];
  for (const k of Object.keys(b) as (keyof FolderRecord)[]) {
    if (k === 'model') continue; // the same weights may sit in another folder: the hash decides
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) {
      out.push(`${k}: ${JSON.stringify(a[k])} there, ${JSON.stringify(b[k])} here`);
    }
  }
  return out;
}

/** Check (or start) the folder: a new or empty one, or one of the same sampling. Returns the files present. */
function openFolder(dir: string, record: FolderRecord): Set<string> {
  const fail = (why: string): never => {
    throw new UsageError(`ddpm sample: --out ${dir}: ${why}`);
  };
  if (existsSync(dir)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return fail('is a file; a folder (ending in /) gets one PNG per image');
    }
    const recPath = join(dir, RECORD);
    if (existsSync(recPath)) {
      let had: FolderRecord;
      try {
        had = JSON.parse(readFileSync(recPath, 'utf8')) as FolderRecord;
      } catch (e) {
        return fail(
          `its ${RECORD} is not valid JSON (${(e as Error).message}); delete the folder to start over`,
        );
      }
      if (had.format !== record.format) fail(`its ${RECORD} is not a ddpm sample record`);
      const diff = differences(had, record);
      if (diff.length) {
        fail(
          `it holds images of another sampling (${diff.join('; ')}); pass another folder, or delete this one`,
        );
      }
    } else if (names.some((n) => !n.startsWith('.'))) {
      fail(
        `it is not empty and has no ${RECORD} (not a folder ddpm sample wrote); pass a new or empty folder`,
      );
    }
    return new Set(names);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(`cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return new Set();
}

export async function sampleToFolder(
  o: Parsed,
  model: LoadedModel,
  sampling: SamplingChoice,
  diffusion: GaussianDiffusion,
  stop: StopRequest,
): Promise<void> {
  const dir = o.out as string;
  const cfg = model.spec.unet;
  const n = o.n as number;
  if (o.gif !== undefined || o.progressive !== undefined) {
    throw new UsageError(
      'ddpm sample: --gif and --progressive draw one chain into one file; use them with a PNG grid (--out FILE.png), not a folder',
    );
  }
  const imageShape = [cfg.inChannels, cfg.resolution, cfg.resolution] as const;
  const choice = {
    sampler: sampling.sampler,
    steps: sampling.steps,
    eta: o.eta as number,
    seed: o.seed as number,
  };
  const label = samplingLabel(sampling, choice.eta, diffusion.numTimesteps);
  const record: FolderRecord = {
    format: 'ddpm-ts/samples/v1',
    model: model.source,
    weightsHash: paramsHash(model.params),
    sampler: label,
    steps: choice.steps,
    eta: choice.eta,
    seed: choice.seed,
    imageShape,
    precision: o.precision as string,
  };
  const present = openFolder(dir, record);
  const batch = o.batch === 'auto' ? Math.min(FOLDER_BATCH, n) : (o.batch as number);
  const todo: { start: number; count: number }[] = [];
  let have = 0;
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    let missing = 0;
    for (let i = start; i < start + count; i++) if (!present.has(imageFileName(i))) missing++;
    have += count - missing;
    if (missing > 0) todo.push({ start, count });
  }
  const bar = new ProgressBar('sample');
  if (have > 0)
    bar.log(`ddpm sample: ${dir} holds ${have} of the ${n} images already: drawing the other ${n - have}`);
  if (todo.length === 0) {
    console.log(`${dir}: all ${n} images are there (${describeSampling(sampling)}, seed ${choice.seed})`);
    return;
  }
  writeFileAtomic(join(dir, RECORD), `${JSON.stringify(record, null, 2)}\n`);
  const callsPerImage = samplerEntry(choice.sampler).calls(diffusion, choice.steps);
  const picked = await commandDenoiser(
    'sample',
    o,
    { cfg, params: model.params, diffusion },
    { images: n - have, callsPerImage, batch: o.batch as number | 'auto', limit: batch },
  );
  const den = picked.denoiser;
  const source = modelImages(
    diffusion,
    yielding(den.denoise), // Ctrl-C gets through between network calls
    imageShape,
    n,
    choice,
    dir,
  );
  const per = imageShape[0] * imageShape[1] * imageShape[2];
  const total = todo.reduce((a, r) => a + r.count, 0);
  const t0 = performance.now();
  let done = 0;
  let written = 0;
  try {
    for (const r of todo) {
      const x = await source.images(r.start, r.count, (f) =>
        bar.update(Math.floor(done + f * r.count), total),
      );
      for (let k = 0; k < r.count; k++) {
        const name = imageFileName(r.start + k);
        if (present.has(name)) continue; // kept: only the missing images of a batch are written
        const img = { data: x.data.subarray(k * per, (k + 1) * per), shape: [...imageShape] };
        writeFileAtomic(join(dir, name), encodePng(toUint8Image(img)));
        written++;
      }
      done += r.count;
      bar.update(done, total);
      const got = stop.received();
      if (got && done < total) {
        throw new Interrupted(
          got,
          `stopped by ${got}: ${have + written} of ${n} images are in ${dir}; run the same command again to draw the rest`,
        );
      }
    }
  } finally {
    await den.release();
    bar.done();
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `wrote ${written} images to ${dir} (${n} in all, ${imageFileName(0)}..${imageFileName(n - 1)}): ${describeSampling(sampling)} (${callsPerImage} network calls per image), seed ${choice.seed}, ${secs.toFixed(1)} s`,
  );
}
