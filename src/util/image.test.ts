// Image output: byte conversion, grid layout, PNG round trip, loss-curve plot, and GIF structure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode as decodePng } from 'fast-png';
import { encodeGif, reverseChainGif } from './gif.js';
import { encodePng, makeGrid, plotLossCurve, toByte, toUint8Image } from './image.js';

test('image: [-1, 1] -> bytes rounds and clamps', () => {
  assert.deepEqual(
    [-1, 1, 0, -0.5, 1 / 127.5 - 1, 2, -3, Number.NaN].map(toByte),
    [0, 255, 128, 64, 1, 255, 0, 0],
  );
  const img = toUint8Image({ data: Float32Array.from([-1, 1, 0, -1, 1, 1, 1, -1]), shape: [1, 2, 2, 2] });
  assert.deepEqual([img.width, img.height, img.channels], [2, 2, 2]);
  // CHW -> HWC: pixel k has channel 0 = data[k], channel 1 = data[4 + k].
  assert.deepEqual(Array.from(img.pixels), [0, 255, 255, 255, 128, 255, 0, 0]);
});

test('image: makeGrid places image k at (pad + col (W + pad), pad + row (H + pad)); empty cells are padValue', () => {
  const [n, c, h, w] = [5, 3, 2, 3];
  const data = new Float32Array(n * c * h * w);
  // Byte of image k, channel ch, pixel (y, x): distinct for every k, ch, y, x.
  const byteOf = (k: number, ch: number, y: number, x: number) => 40 * k + 10 * ch + 3 * y + x;
  for (let k = 0; k < n; k++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) data[((k * c + ch) * h + y) * w + x] = byteOf(k, ch, y, x) / 127.5 - 1;
      }
    }
  }
  const g = makeGrid({ data, shape: [n, c, h, w] }, { nrow: 2, padding: 1, padValue: 7 });
  assert.deepEqual([g.width, g.height, g.channels], [2 * 4 + 1, 3 * 3 + 1, 3]);
  for (let Y = 0; Y < g.height; Y++) {
    for (let X = 0; X < g.width; X++) {
      const col = Math.floor((X - 1) / 4);
      const row = Math.floor((Y - 1) / 3);
      const x = X - 1 - 4 * col;
      const y = Y - 1 - 3 * row;
      const k = row * 2 + col;
      const inside = X >= 1 && Y >= 1 && x < w && y < h && k < n;
      for (let ch = 0; ch < c; ch++) {
        assert.equal(
          g.pixels[(Y * g.width + X) * 3 + ch],
          inside ? byteOf(k, ch, y, x) : 7,
          `(${X}, ${Y}) ch ${ch}`,
        );
      }
    }
  }
  const wide = makeGrid({ data: new Float32Array(2 * 4), shape: [2, 1, 2, 2] });
  assert.deepEqual([wide.width, wide.height], [2 * 4 + 2, 6], 'fewer images than nrow: one row of N');
});

test('image: PNG encode -> decode round trip (gray and RGB)', () => {
  for (const channels of [1, 3]) {
    const img = {
      width: 7,
      height: 5,
      channels,
      pixels: Uint8Array.from({ length: 35 * channels }, (_, i) => (i * 29) % 256),
    };
    const png = encodePng(img);
    assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const back = decodePng(png);
    assert.deepEqual([back.width, back.height, back.channels, back.depth], [7, 5, channels, 8]);
    assert.deepEqual(Array.from(back.data), Array.from(img.pixels));
  }
});

test('image: loss curve has white background, axes and a falling smoothed curve', () => {
  const points = Array.from({ length: 200 }, (_, i) => ({ step: i * 10, loss: 1 / (1 + i) + 0.01 }));
  const img = plotLossCurve(points, { width: 200, height: 100 });
  assert.deepEqual([img.width, img.height, img.channels], [200, 100, 3]);
  const at = (x: number, y: number) =>
    Array.from(img.pixels.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3));
  assert.deepEqual(at(199, 0), [255, 255, 255]);
  assert.deepEqual(at(40, 50), [0, 0, 0], 'y axis at x = 40');
  assert.deepEqual(at(100, 70), [0, 0, 0], 'x axis at y = 70');
  // Topmost dark-blue pixel in a column: higher on the left than on the right for a falling loss.
  const top = (x: number) => {
    for (let y = 0; y < 100; y++) if (at(x, y).join() === '20,60,160') return y;
    return -1;
  };
  assert.ok(
    top(60) >= 0 && top(180) >= 0 && top(60) < top(180),
    `curve at x=60: ${top(60)}, x=180: ${top(180)}`,
  );
  plotLossCurve([], {}); // no points: axes only, no throw
  plotLossCurve([{ step: 1, loss: 0.5 }], { logY: false });
});

/** Walks a GIF's block structure; returns header, global palette size, frame count and delays. */
function parseGif(b: Uint8Array) {
  const header = String.fromCharCode(...b.subarray(0, 6));
  const flags = b[10]!;
  const gct = flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0;
  const palette = b.subarray(13, 13 + gct);
  let p = 13 + gct;
  const skipSub = () => {
    while (b[p]! !== 0) p += b[p]! + 1;
    p++;
  };
  let frames = 0;
  const delays: number[] = [];
  for (;;) {
    const tag = b[p++];
    if (tag === 0x3b) break;
    if (tag === 0x21) {
      const label = b[p++];
      if (label === 0xf9) delays.push(b[p + 2]! | (b[p + 3]! << 8));
      skipSub();
    } else if (tag === 0x2c) {
      frames++;
      const f = b[p + 8]!;
      p += 9 + (f & 0x80 ? 3 * 2 ** ((f & 7) + 1) : 0) + 1; // descriptor, local palette, LZW code size
      skipSub();
    } else {
      throw new Error(`bad GIF block 0x${tag?.toString(16)} at ${p - 1}`);
    }
  }
  return {
    header,
    width: b[6]! | (b[7]! << 8),
    height: b[8]! | (b[9]! << 8),
    palette,
    frames,
    delays,
    end: p,
  };
}

test('gif: reverse-chain GIF has one frame per step, gray palette for 1 channel, last frame held', () => {
  const steps = Array.from({ length: 5 }, (_, s) => ({
    data: Float32Array.from({ length: 4 * 1 * 6 * 6 }, (_, i) => Math.sin(i + s)),
    shape: [4, 1, 6, 6],
  }));
  const gif = reverseChainGif(steps, { nrow: 2, padding: 1 }, { delayMs: 50, lastDelayMs: 1000 });
  const g = parseGif(gif);
  assert.equal(g.header, 'GIF89a');
  assert.deepEqual([g.width, g.height, g.frames, g.end], [2 * 7 + 1, 2 * 7 + 1, 5, gif.length]);
  assert.deepEqual(g.delays, [5, 5, 5, 5, 100]);
  assert.equal(g.palette.length, 256 * 3);
  for (const v of [0, 1, 128, 255])
    assert.deepEqual(Array.from(g.palette.subarray(3 * v, 3 * v + 3)), [v, v, v]);

  const rgb = Array.from({ length: 3 }, (_, s) => ({
    width: 9,
    height: 4,
    channels: 3,
    pixels: Uint8Array.from({ length: 9 * 4 * 3 }, (_, i) => (i * 7 + s * 50) % 256),
  }));
  const r = parseGif(encodeGif(rgb));
  assert.deepEqual([r.header, r.frames, r.width, r.height], ['GIF89a', 3, 9, 4]);
  assert.throws(() => encodeGif([rgb[0]!, { ...rgb[0]!, width: 8 }]), /frame 1 is 8x4x3/);
});
