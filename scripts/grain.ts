// Background grain of sample grids: the fraction of pixels at faint grey levels (8 to 60 of 255), which
// real MNIST digits have only along stroke edges. FID with the domain classifier hardly sees this grain
// (README, "The default"); this number does. Reads grids written by `ddpm sample` (32x32 tiles, padding 2)
// and, for comparison, the same count on real digits.
//
//   npx tsx scripts/grain.ts samples.png other.png [--data mnist --n 64]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeImage } from '../src/data/imageDecode.js';
import { openDataset } from '../src/data/open.js';

const FAINT = { lo: 8, hi: 60 };
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    data: { type: 'string' },
    n: { type: 'string', default: '64' },
    tile: { type: 'string', default: '32' },
  },
});

const faint = (v: number) => v >= FAINT.lo && v <= FAINT.hi;

/** Faint pixels of a grid's tiles (the padding skipped), first channel. */
function gridGrain(file: string, tile: number, pad = 2): { faint: number; pixels: number } {
  const img = decodeImage(readFileSync(file), file);
  let f = 0;
  let n = 0;
  for (let y0 = pad; y0 + tile <= img.height; y0 += tile + pad)
    for (let x0 = pad; x0 + tile <= img.width; x0 += tile + pad)
      for (let y = 0; y < tile; y++)
        for (let x = 0; x < tile; x++) {
          n++;
          if (faint(img.data[((y0 + y) * img.width + x0 + x) * img.channels]!)) f++;
        }
  return { faint: f, pixels: n };
}

const show = (name: string, r: { faint: number; pixels: number }) =>
  console.log(
    `${name}: ${((100 * r.faint) / r.pixels).toFixed(1)}% of ${r.pixels} pixels at grey ${FAINT.lo}-${FAINT.hi}`,
  );

for (const file of positionals) show(file, gridGrain(file, Number(values.tile)));
if (values.data) {
  const ds = openDataset(values.data);
  const n = Math.min(Number(values.n), ds.n);
  const per = ds.channels * ds.height * ds.width;
  let f = 0;
  for (let i = 0; i < n * per; i++) if (faint(ds.pixels[i]!)) f++;
  show(`${values.data} (first ${n} images)`, { faint: f, pixels: n * per });
}
