// Image folders on PNG / JPEG files the test writes: resize + centre-crop geometry against the closed form
// for linear gradients, colour conversion, file order, and errors naming the bad file.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encode as encodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { allClose } from '../util/allclose.js';
import { DataError } from './dataset.js';
import { listImages, loadImageFolder } from './folder.js';
import { resizeCenterCrop, resizeGeometry } from './resize.js';

const root = mkdtempSync(join(tmpdir(), 'ddpm-folder-'));
after(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Bytes of image i of a dataset, CHW. */
function bytesOf(ds: ReturnType<typeof loadImageFolder>, i: number): number[] {
  const out = new Float32Array(ds.channels * ds.height * ds.width);
  ds.get(i, out, 0);
  return Array.from(out, (v) => (v + 1) * 127.5);
}

test('resize: geometry is short side -> res, then a centred crop', () => {
  assert.deepEqual(resizeGeometry(64, 32, 16), { resizedW: 32, resizedH: 16, left: 8, top: 0 });
  assert.deepEqual(resizeGeometry(30, 50, 10), { resizedW: 10, resizedH: 16, left: 0, top: 3 });
  assert.deepEqual(resizeGeometry(8, 8, 8), { resizedW: 8, resizedH: 8, left: 0, top: 0 });
  // A constant image stays constant at any scale.
  const out = resizeCenterCrop(new Float32Array(2 * 13 * 29).fill(93), 2, 13, 29, 7);
  allClose(out, new Float32Array(2 * 49).fill(93), 0, 1e-9, 'constant resize');
});

test('resize: downscaling is antialiased (averages what a point sample would alias)', () => {
  // Columns 255, 0, 0, 255, 0, 0, ... shrunk 3x: the triangle filter of support 3 centred on input
  // 3x + 1.5 weighs the two bright columns 3x and 3x + 3 by 2/3 and 1/3 of a total 3: 255 / 3 = 85.
  // A point sample (nearest or plain bilinear at input 3x + 1) would give 0. Columns 0 and 15 lose a tap.
  const src = new Float32Array(48 * 48);
  for (let k = 0; k < src.length; k++) src[k] = (k % 48) % 3 === 0 ? 255 : 0;
  const out = resizeCenterCrop(src, 1, 48, 48, 16);
  for (let y = 0; y < 16; y++) {
    allClose(out.subarray(y * 16 + 1, y * 16 + 15), new Array(14).fill(85), 0, 1e-4, `row ${y}`);
  }
});

test('folder: downscaled RGB PNG gradient matches the closed form of an area-averaging resize', () => {
  // 64x32 RGB: R = 4x, G = 4y, B = 77. res 16: scale 1/2, resized 32x16, crop left 8.
  // Output pixel (x, y) is centred at input (2(x + 8) + 0.5, 2y + 0.5) in pixel-centre coordinates,
  // and a symmetric filter of a linear function returns its value there: R = 4(2x + 16.5), G = 4(2y + 0.5).
  const w = 64;
  const h = 32;
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) rgb.set([4 * x, 4 * y, 77], (y * w + x) * 3);
  }
  const d = folder('grad');
  writeFileSync(join(d, 'a.png'), encodePng({ width: w, height: h, data: rgb, channels: 3 }));
  const ds = loadImageFolder(d, { resolution: 16 });
  assert.deepEqual([ds.n, ds.channels, ds.height, ds.width, ds.canFlip], [1, 3, 16, 16, true]);
  const got = bytesOf(ds, 0);
  for (let y = 1; y < 15; y++) {
    // rows 0 and 15 touch the image border, where the filter is cut off
    for (let x = 0; x < 16; x++) {
      const at = (c: number) => got[(c * 16 + y) * 16 + x]!;
      allClose(
        [at(0), at(1), at(2)],
        [4 * (2 * x + 16.5), 4 * (2 * y + 0.5), 77],
        0,
        1e-3,
        `pixel (${x}, ${y})`,
      );
    }
  }
});

test('folder: upscaled grayscale PNG is bilinear, gray replicated to RGB or kept as 1 channel', () => {
  // 8 wide, 4 high, value 20x. res 8: scale 2, resized 16x8, crop left 4: output x samples input
  // u = (x + 4 + 0.5) / 2 - 0.5 = x / 2 + 1.75, so value 20u = 10x + 35 on every row.
  const g = new Uint8Array(8 * 4);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 8; x++) g[y * 8 + x] = 20 * x;
  const d = folder('gray');
  writeFileSync(join(d, 'g.png'), encodePng({ width: 8, height: 4, data: g, channels: 1 }));
  const want = Array.from({ length: 64 }, (_, k) => 10 * (k % 8) + 35);
  const rgb = loadImageFolder(d, { resolution: 8 });
  const got = bytesOf(rgb, 0);
  for (let c = 0; c < 3; c++) allClose(got.slice(c * 64, (c + 1) * 64), want, 0, 1e-3, `channel ${c}`);
  const gray = loadImageFolder(d, { resolution: 8, channels: 1 });
  assert.equal(gray.channels, 1);
  allClose(bytesOf(gray, 0), want, 0, 1e-3, 'gray');
});

test('folder: JPEG, RGBA and 16-bit PNG decode; order is sorted and recursive; other files ignored', () => {
  const d = folder('mixed');
  mkdirSync(join(d, 'sub'));
  const w = 24;
  const h = 40;
  const rgba = new Uint8Array(w * h * 4);
  for (let k = 0; k < w * h; k++) rgba.set([200, 100, 50, 255], 4 * k);
  writeFileSync(join(d, 'b.jpg'), jpeg.encode({ width: w, height: h, data: rgba }, 95).data);
  writeFileSync(join(d, 'a.png'), encodePng({ width: w, height: h, data: rgba, channels: 4 }));
  const deep = new Uint16Array(5 * 5).fill(257 * 10);
  writeFileSync(
    join(d, 'sub', 'c.PNG'),
    encodePng({ width: 5, height: 5, data: deep, channels: 1, depth: 16 }),
  );
  writeFileSync(join(d, 'notes.txt'), 'not an image');
  writeFileSync(join(d, '.hidden.png'), 'skipped');
  assert.deepEqual(
    listImages(d).map((f) => f.slice(d.length + 1)),
    ['a.png', 'b.jpg', join('sub', 'c.PNG')],
  );
  assert.deepEqual(listImages(d, false).length, 2);
  const ds = loadImageFolder(d, { resolution: 8 });
  assert.equal(ds.n, 3);
  const col = (img: number[], c: number) => img.slice(c * 64, (c + 1) * 64);
  const a = bytesOf(ds, 0);
  const b = bytesOf(ds, 1);
  [200, 100, 50].forEach((v, c) => {
    allClose(col(a, c), new Array(64).fill(v), 0, 1e-3, `png channel ${c}`);
    allClose(col(b, c), new Array(64).fill(v), 0, 3.01, `jpeg channel ${c}`); // JPEG is lossy
  });
  allClose(bytesOf(ds, 2), new Array(3 * 64).fill(10), 0, 1e-3, '16-bit gray');
  // Luma: 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 -> 124.
  const gray = loadImageFolder(d, { resolution: 8, channels: 1, limit: 1 });
  assert.equal(gray.n, 1);
  allClose(bytesOf(gray, 0), new Array(64).fill(124), 0, 1e-3, 'luma');
});

test('folder: undecodable images and empty folders give errors naming them', () => {
  const d = folder('broken');
  const png = encodePng({ width: 4, height: 4, data: new Uint8Array(16), channels: 1 });
  writeFileSync(join(d, 'ok.png'), png);
  writeFileSync(join(d, 'trunc.png'), png.subarray(0, 30));
  assert.throws(
    () => loadImageFolder(d),
    (e: Error) => e instanceof DataError && e.message.includes(join(d, 'trunc.png')) && /PNG/.test(e.message),
  );
  rmSync(join(d, 'trunc.png'));
  writeFileSync(join(d, 'z.jpg'), 'hello, not a jpeg');
  assert.throws(
    () => loadImageFolder(d),
    (e: Error) =>
      e instanceof DataError &&
      e.message.includes(join(d, 'z.jpg')) &&
      /neither a PNG nor a JPEG/.test(e.message),
  );
  const e = folder('empty');
  writeFileSync(join(e, 'readme.txt'), 'x');
  assert.throws(
    () => loadImageFolder(e),
    (err: Error) => err instanceof DataError && err.message.includes(e) && /no \.png/.test(err.message),
  );
  assert.throws(() => loadImageFolder(join(root, 'missing')), /does not exist/);
  // A dangling link is skipped when it is not an image, and named when it is.
  const l = folder('links');
  writeFileSync(join(l, 'a.png'), png);
  symlinkSync(join(l, 'gone.conf'), join(l, 'dangling.conf'));
  assert.equal(loadImageFolder(l).n, 1);
  symlinkSync(join(l, 'gone.png'), join(l, 'b.png'));
  assert.throws(
    () => loadImageFolder(l),
    (err: Error) => err instanceof DataError && err.message.includes(join(l, 'b.png')),
  );
});
