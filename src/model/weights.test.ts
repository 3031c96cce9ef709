// Model folders and safetensors: our own files round-trip exactly; a diffusers UNet2DModel folder
// (config.json + diffusion_pytorch_model.safetensors, legacy attention names, F16 weights) loads into
// the same network; bad files get errors that name them.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { initParams, TINY_UNET, unetParamSpecs } from '../nn/unet.js';
import { encodeSafeTensors, parseSafeTensors } from '../util/safetensors.js';
import { defaultSpec, type ModelSpec } from './spec.js';
import { loadModel, saveModel } from './weights.js';

const TINY = TINY_UNET;
const spec: ModelSpec = { ...defaultSpec(), unet: TINY };

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Float32 -> IEEE half bits (round to nearest even), for a float16 diffusers file. */
function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 127 + 15;
  const m = x & 0x7fffff;
  if (e <= 0) return sign | Math.round((m | 0x800000) / 2 ** (14 - e));
  const h = (sign | (e << 10)) + Math.round(m / 8192); // a mantissa carry rolls into the exponent
  return h;
}

describe('model folders', () => {
  it('save then load returns the same spec and bit-identical weights', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddpm-model-'));
    const p = initParams(TINY, 'fixture');
    saveModel(dir, spec, p);
    const m = loadModel(dir);
    assert.deepEqual(m.spec, spec);
    for (const [k, v] of p) assert.deepEqual(m.params.get(k), v, k);
    // Also by the weights file path.
    assert.equal(loadModel(join(dir, 'model.safetensors')).params.size, p.size);
  });

  it('loads a diffusers folder with legacy attention names and F16 weights', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddpm-diffusers-'));
    const p = initParams(TINY, 'fixture');
    const header: Record<string, unknown> = {};
    const blobs: Uint8Array[] = [];
    let off = 0;
    for (const s of unetParamSpecs(TINY)) {
      const legacy = s.name.replace('.to_q.', '.query.').replace('.to_out.0.', '.proj_attn.');
      const data = p.get(s.name)!;
      const half = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) half[i] = toHalf(data[i]!);
      header[legacy] = { dtype: 'F16', shape: s.shape, data_offsets: [off, off + 2 * data.length] };
      blobs.push(new Uint8Array(half.buffer));
      off += 2 * data.length;
    }
    const hb = new TextEncoder().encode(JSON.stringify(header));
    const pre = new Uint8Array(8);
    new DataView(pre.buffer).setBigUint64(0, BigInt(hb.length), true);
    writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors'), concat([pre, hb, ...blobs]));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        _class_name: 'UNet2DModel',
        sample_size: 16,
        in_channels: 1,
        out_channels: 1,
        block_out_channels: [32, 64],
        layers_per_block: 1,
        down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
        up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
        norm_num_groups: 32,
        norm_eps: 1e-6,
        flip_sin_to_cos: false,
        freq_shift: 1,
        downsample_padding: 0,
        attention_head_dim: null,
      }),
    );
    mkdirSync(join(dir, '..', 'scheduler'), { recursive: true });
    const m = loadModel(dir);
    assert.deepEqual(m.spec.unet, TINY);
    for (const [k, v] of p) {
      const got = m.params.get(k)!;
      for (let i = 0; i < v.length; i++)
        assert.ok(Math.abs(got[i]! - v[i]!) <= 1e-3 * Math.abs(v[i]!) + 1e-7, k);
    }
  });

  it('names the file and the problem for bad inputs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddpm-bad-'));
    assert.throws(() => loadModel(join(dir, 'nope')), /does not exist/);
    assert.throws(() => loadModel(dir), /no config.json/);
    writeFileSync(join(dir, 'config.json'), '{oops');
    assert.throws(() => loadModel(dir), /config.json is not valid JSON/);
    saveModel(dir, spec, initParams(TINY, 'fixture'));
    const w = join(dir, 'model.safetensors');
    const bytes = readFileSync(w);
    writeFileSync(w, bytes.subarray(0, bytes.length - 100));
    assert.throws(
      () => loadModel(dir),
      /model\.safetensors: tensor .* (lies outside the file|bytes for shape)/,
    );
    writeFileSync(w, bytes);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...spec, unet: { ...TINY, ch: 64 } }));
    assert.throws(() => loadModel(dir), /has shape .* the config needs/);
  });
});

describe('safetensors', () => {
  it('round-trips tensors and metadata, 8-byte aligned header', () => {
    const parts = encodeSafeTensors(
      [
        ['a', { data: Float32Array.of(1, -2.5, 3e-8), shape: [3] }],
        ['b.c', { data: new Float32Array(6).fill(7), shape: [2, 3] }],
      ],
      { note: 'hé' },
    );
    const buf = concat(parts);
    const hlen = Number(new DataView(buf.buffer).getBigUint64(0, true));
    assert.equal((8 + hlen) % 8, 0);
    const f = parseSafeTensors(buf);
    assert.deepEqual(f.metadata, { note: 'hé' });
    assert.deepEqual(Array.from(f.tensors.get('a')!.data), Array.from(Float32Array.of(1, -2.5, 3e-8)));
    assert.deepEqual(f.tensors.get('b.c')!.shape, [2, 3]);
    assert.throws(() => parseSafeTensors(buf.subarray(0, 5), 'x.st'), /x.st: only 5 bytes/);
  });
});
