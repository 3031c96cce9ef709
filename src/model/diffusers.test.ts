// diffusers interop, checked: UNet2DModel configs (every honoured key, missing keys as diffusers' defaults)
// against the independent PyTorch reference (reference/diffusers_unet.py, float64) through the whole import
// path (config.json + safetensors -> loadModel -> the inference graph); every refused key and value with its
// message; scheduler configs (google/ddpm-cifar10-32's, DDIMScheduler's defaults) to diffusers' coefficients.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { nodeEngine } from '../engine/node.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import { nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { runPasses } from '../graph/passes/index.js';
import { buildUNet, fnv1a, initParams, TINY_UNET, unetParamSpecs } from '../nn/unet.js';
import { createDenoiser } from '../sample/denoiser.js';
import { relErr } from '../util/allclose.js';
import { hashUniform } from '../util/rng.js';
import { encodeSafeTensors } from '../util/safetensors.js';
import type { Tensor } from '../util/tensor.js';
import { ddimTimestepsFor } from '../diffusion/ddim.js';
import {
  diffusersSchedulerConfig,
  diffusersUnetConfig,
  diffusionFromScheduler,
  exportTimestepNote,
  OWN_SPACING_KEY,
  unetFromDiffusers,
} from './diffusers.js';
import { defaultSpec, diffusionFromSpec } from './spec.js';
import { loadModel, saveDiffusers, saveModel } from './weights.js';

interface Case {
  name: string;
  config: Record<string, unknown>;
  shape: [number, number, number, number];
  params: [string, number[]][];
  output: number[];
  /** d sum(out * r) / d name (and "x"), float64, where recorded. */
  grads?: Record<string, number[]>;
}
const FIX: { t: number[]; cases: Case[] } = JSON.parse(
  readFileSync(new URL('../../test/fixtures/diffusers_unet.json', import.meta.url), 'utf8'),
);

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-diffusers-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** A diffusers UNet folder: config.json and the fixture weights (legacy attention names if asked). */
function unetFolder(name: string, config: Record<string, unknown>, legacy = false): string {
  const dir = join(TMP, name);
  mkdirSync(dir, { recursive: true });
  const cfg = unetFromDiffusers(config, 'config.json');
  const p = initParams(cfg, 'fixture');
  const rename = (k: string) =>
    legacy
      ? k
          .replace('.to_q.', '.query.')
          .replace('.to_k.', '.key.')
          .replace('.to_v.', '.value.')
          .replace('.to_out.0.', '.proj_attn.')
      : k;
  const tensors = unetParamSpecs(cfg).map(
    (s) => [rename(s.name), { data: p.get(s.name)!, shape: s.shape }] as const,
  );
  writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors'), Buffer.concat(encodeSafeTensors(tensors)));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('UNet2DModel configs against the PyTorch reference (reference/diffusers_unet.py)', () => {
  for (const c of FIX.cases) {
    it(`${c.name}: same parameter names, outputs at t = ${FIX.t.join(', ')} within 1e-4`, async () => {
      const dir = unetFolder(c.name, c.config, c.name === 'ddpm-cifar10');
      const m = loadModel(dir);
      assert.deepEqual(
        unetParamSpecs(m.spec.unet)
          .map((s) => s.name)
          .sort(),
        c.params.map(([n]) => n).sort(),
      );
      const den = await createDenoiser(nodeEngine(), m.spec.unet, m.params, c.shape[0], { threads: 1 });
      const n = c.shape.reduce((a, b) => a * b, 1);
      const x = { data: hashUniform(fnv1a('x'), n, 1), shape: c.shape };
      const out = await den.denoise(x, Int32Array.from(FIX.t));
      await den.release();
      const err = relErr(out.data, Float64Array.from(c.output));
      if (process.env.DDPM_PRINT_ERRORS) console.log(`${c.name}: relative L2 error ${err.toExponential(2)}`);
      assert.ok(err <= 1e-4, `relative error ${err}`);
    });
  }
});

describe('scale_shift trains: gradients of the training graph against the PyTorch reference', () => {
  it('scale-shift: d sum(out * r) / d (x, time_emb_proj, norm2, mid attention, time embedding) within 1e-4', async () => {
    const c = FIX.cases.find((k) => k.name === 'scale-shift')!;
    const grads = c.grads!;
    const cfg = unetFromDiffusers(c.config, 'c');
    assert.equal(cfg.timeScaleShift, true);
    assert.equal(cfg.midAttentionNorm, false);
    const shape = c.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const g = new Graph();
    const x = g.input('x', shape);
    const t = g.input('t', [shape[0]!]);
    const store = initParams(cfg, 'fixture');
    // as buildTrainModel: the training form, the forward passes before the gradient, the layout passes after
    const u = buildUNet(g, cfg, store, x, t, { training: true });
    runPasses(g, [u.out], 'forward', { training: true });
    const r = g.constant(hashUniform(fnv1a('r'), n, 1), u.out.shape);
    const loss = g.reduceSum(g.mul(u.out, r), [0, 1, 2, 3], false);
    const names = Object.keys(grads).filter((k) => k !== 'x');
    const gs = grad(g, loss, [x, ...names.map((k) => u.params.get(k)!)]);
    const outputs: Record<string, Value> = { 'grad.x': gs[0]! };
    names.forEach((k, i) => {
      outputs[`grad.${k}`] = gs[i + 1]!;
    });
    // the engine's own block (16 with AVX-512, 8 with AVX2): a graph blocked for another CPU crashes ORT
    const nchwcBlock = await nchwcBlockOf(nodeEngine());
    runPasses(g, Object.values(outputs), 'layout', { training: true, nchwcBlock });
    const s = await nodeEngine().createSession(toOnnx(g, { outputs, params: 'input' }), { threads: 1 });
    const feeds: Record<string, Tensor> = {
      x: { data: hashUniform(fnv1a('x'), n, 1), shape },
      t: { data: Float32Array.from(FIX.t), shape: [shape[0]!] },
    };
    for (const [k, v] of u.params) feeds[k] = { data: store.get(k)!, shape: v.shape };
    const res = await s.run(feeds);
    await s.release();
    for (const k of Object.keys(grads)) {
      const err = relErr(res[`grad.${k}`]!.data, Float64Array.from(grads[k]!));
      if (process.env.DDPM_PRINT_ERRORS) console.log(`grad ${k}: relative L2 error ${err.toExponential(2)}`);
      assert.ok(err <= 1e-4, `${k}: relative error ${err}`);
    }
  });

  it('exports back to the same config keys (scale_shift; attn_norm_num_groups where the mid attention is normed)', () => {
    for (const name of ['scale-shift', 'scale-shift-attn-norm']) {
      const c = FIX.cases.find((k) => k.name === name)!;
      const cfg = unetFromDiffusers(c.config, 'c');
      const out = diffusersUnetConfig(cfg);
      assert.equal(out.resnet_time_scale_shift, 'scale_shift');
      assert.equal(out.attn_norm_num_groups, c.config.attn_norm_num_groups ?? null);
      assert.deepEqual(unetFromDiffusers(out, 'back'), cfg);
    }
    const plain = unetFromDiffusers(BASE, 'c');
    assert.throws(
      () => diffusersUnetConfig({ ...plain, midAttentionNorm: false }),
      /export: a mid-block attention without GroupNorm .*only with resnet_time_scale_shift "scale_shift"/,
    );
  });
});

const BASE = FIX.cases[0]!.config;

/** unetFromDiffusers(BASE with key = value) must throw a message matching `says`, naming the key. */
function refuses(key: string, value: unknown, says: RegExp, base: Record<string, unknown> = BASE): void {
  const cfg = { ...base, [key]: value };
  assert.throws(
    () => unetFromDiffusers(cfg, '/m/config.json'),
    (e: Error) => {
      assert.ok(!(e instanceof TypeError), e.message);
      assert.ok(e.message.startsWith('/m/config.json: '), e.message);
      assert.ok(e.message.includes(`"${key}"`), `names the key: ${e.message}`);
      assert.match(e.message, says);
      return true;
    },
  );
}

describe('UNet2DModel: refused keys and values name the key, the value and what is supported', () => {
  it('refuses each unsupported value', () => {
    refuses('time_embedding_type', 'fourier', /"fourier" \(a string\); supported: "positional"/);
    refuses('time_embedding_type', 'learned', /"learned" .*supported: "positional"/);
    refuses('act_fn', 'gelu', /"gelu" .*supported: "silu" \/ "swish", "relu", "mish" \("gelu" needs erf/);
    refuses('act_fn', 'tanh', /"tanh" .*supported: "silu"/);
    refuses(
      'resnet_time_scale_shift',
      'ada_group',
      /"resnet_time_scale_shift" is "ada_group" \(a string\); supported: "default" .* or "scale_shift" .*; not "spatial"/,
    );
    refuses('downsample_padding', 2, /is 2 \(a number\); supported: 0 .* or 1/);
    refuses('downsample_type', 'resnet', /"resnet" .*supported: "conv"/);
    refuses('upsample_type', 'resnet', /"resnet" .*supported: "conv"/);
    refuses('class_embed_type', 'timestep', /"timestep" .*supported: null \(an unconditional model\)/);
    refuses('num_class_embeds', 10, /is 10 .*supported: null/);
    refuses('mid_block_type', 'UNetMidBlock2DCrossAttn', /supported: "UNetMidBlock2D"/);
    refuses('time_embedding_dim', 100, /is 100 .*supported: null or 64/);
    refuses('attn_norm_num_groups', 4, /is 4 .*supported: null or 8 \(norm_num_groups\)/);
    refuses(
      'attention_head_dim',
      12,
      /is 12 .*supported: null \(one head\) or a divisor of every attention block's channels \(32\)/,
    );
    refuses('freq_shift', 8, /is 8 .*supported: an integer below block_out_channels\[0\] \/ 2 = 8/);
    refuses(
      'down_block_types',
      ['DownBlock2D', 'CrossAttnDownBlock2D'],
      /supported: arrays of "DownBlock2D" \/ "AttnDownBlock2D"/,
    );
    refuses(
      'up_block_types',
      ['SkipUpBlock2D', 'UpBlock2D'],
      /supported: arrays of "UpBlock2D" \/ "AttnUpBlock2D"/,
    );
    refuses(
      'up_block_types',
      ['UpBlock2D', 'UpBlock2D'],
      /supported: the mirror of down_block_types .*up block 0 mirrors down block 1, AttnDownBlock2D/,
    );
    refuses('block_out_channels', [16, 24], /supported: multiples of the first entry/);
    refuses('block_out_channels', [15, 30], /is \[15,30\] .*supported: an even first entry/);
    refuses('norm_num_groups', 5, /is 5 .*supported: a divisor of every block_out_channels entry \(16, 32\)/);
    refuses(
      'sample_size',
      7,
      /is 7 .*supported: a multiple of 2 \(halved once per block but the last, 2 blocks/,
    );
    refuses('resnet_time_scale_shift', 'spatial', /"spatial" .*supported: "default" .*"scale_shift"/);
    refuses('_class_name', 'UNet2DConditionModel', /"UNet2DConditionModel" .*supported: "UNet2DModel"/);
  });

  it('refuses wrong types and a missing sample_size', () => {
    refuses('sample_size', null, /"sample_size" is null; expected a positive integer or \[size, size\]/);
    refuses('sample_size', [8, 16], /expected a positive integer or \[size, size\]/);
    refuses('flip_sin_to_cos', 'yes', /"flip_sin_to_cos" is "yes" \(a string\); expected true or false/);
    refuses('center_input_sample', 1, /expected true or false/);
    refuses('add_attention', null, /"add_attention" is null; expected true or false/);
    refuses('mid_block_scale_factor', 0, /expected a number in/);
    refuses('norm_eps', '1e-6', /"norm_eps" is "1e-6" \(a string\); expected a number/);
    refuses('layers_per_block', 0, /expected a positive integer/);
    refuses('dropout', 1, /expected a number in \[0, 1\)/);
    refuses('norm_num_groups', '8', /"norm_num_groups" is "8" \(a string\); expected a positive integer/);
    refuses('in_channels', 0, /"in_channels" is 0 \(a number\); expected a positive integer/);
    refuses('out_channels', 1.5, /"out_channels" is 1\.5 \(a number\); expected a positive integer/);
    refuses('freq_shift', -1, /"freq_shift" is -1 \(a number\); expected an integer >= 0/);
    refuses(
      'attention_head_dim',
      '8',
      /"attention_head_dim" is "8" \(a string\); expected a positive integer/,
    );
    refuses('block_out_channels', 'x', /expected a non-empty array of positive integers/);
    refuses('block_out_channels', [], /expected a non-empty array of positive integers/);
    // The U-Net's size limits, under diffusers' names.
    refuses('in_channels', 65, /"in_channels" is 65 .*expected at most 64 channels, far beyond/);
    refuses('out_channels', 1000, /"out_channels" is 1000 .*expected at most 64 channels/);
    refuses('sample_size', 8192, /"sample_size" is 8192 .*expected at most 4096 pixels/);
    refuses('layers_per_block', 65, /"layers_per_block" is 65 .*expected at most 64 layers/);
    refuses('block_out_channels', [8192, 8192], /expected at most 4096 channels in the first block/);
    refuses('block_out_channels', [8, 8 * 65], /expected at most 64 times the first entry/);
    const blocks = (n: number, name: string) => Array.from({ length: n }, () => name);
    refuses('block_out_channels', Array(13).fill(8), /"block_out_channels" is .*expected at most 12 blocks/, {
      ...BASE,
      sample_size: 4096,
      norm_num_groups: 1,
      down_block_types: blocks(13, 'DownBlock2D'),
      up_block_types: blocks(13, 'UpBlock2D'),
    });
  });

  it('refuses keys UNet2DModel does not have, naming them', () => {
    refuses(
      'attention_legacy_order',
      true,
      /"attention_legacy_order" is not a key of diffusers' UNet2DModel config/,
    );
    refuses('num_attention_heads', 4, /"num_attention_heads" is not a key/);
  });

  it('reads a missing key as diffusers does, and null as None', () => {
    // A missing up_block_types is UNet2DModel's default, four blocks: wrong for two block_out_channels.
    const { up_block_types: _u, ...noUp } = BASE;
    assert.throws(
      () => unetFromDiffusers(noUp, 'c'),
      /"up_block_types" is \["AttnUpBlock2D","AttnUpBlock2D","Att\.\.\. \(an array\); expected an array of 2 block names/,
    );
    const d = unetFromDiffusers(BASE, 'c');
    assert.equal(d.flipSinToCos, true); // flip_sin_to_cos defaults to True
    assert.equal(d.freqShift, 0); // freq_shift 0
    assert.equal(d.downsamplePadding, 1); // downsample_padding 1
    assert.equal(d.headDim, 8); // attention_head_dim 8
    assert.equal(d.eps, 1e-5); // norm_eps 1e-5
    assert.equal(unetFromDiffusers({ ...BASE, attention_head_dim: null }, 'c').headDim, undefined); // one head
    assert.equal(unetFromDiffusers({ ...BASE, attention_head_dim: 32 }, 'c').headDim, undefined); // also one
    assert.equal(unetFromDiffusers({ ...BASE, sample_size: [8, 8] }, 'c').resolution, 8);
    // A key that only the "learned" embedding reads has no effect on "positional".
    assert.deepEqual(unetFromDiffusers({ ...BASE, num_train_timesteps: 1000 }, 'c'), d);
  });
});

/** diffusers' DDPMScheduler config of google/ddpm-cifar10-32. */
const CIFAR_SCHEDULER = {
  _class_name: 'DDPMScheduler',
  _diffusers_version: '0.1.1',
  beta_end: 0.02,
  beta_schedule: 'linear',
  beta_start: 0.0001,
  clip_sample: true,
  num_train_timesteps: 1000,
  trained_betas: null,
  variance_type: 'fixed_large',
};

/** DDIMScheduler's config with every default, as diffusers saves it. */
const DDIM_DEFAULTS = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.27.2',
  beta_end: 0.02,
  beta_schedule: 'linear',
  beta_start: 0.0001,
  clip_sample: true,
  clip_sample_range: 1.0,
  dynamic_thresholding_ratio: 0.995,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  rescale_betas_zero_snr: false,
  sample_max_value: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  thresholding: false,
  timestep_spacing: 'leading',
  trained_betas: null,
};

function schedRefuses(key: string, value: unknown, says: RegExp): void {
  assert.throws(
    () => diffusionFromScheduler({ ...DDIM_DEFAULTS, [key]: value }, '/m/scheduler_config.json'),
    (e: Error) => {
      assert.ok(e.message.startsWith('/m/scheduler_config.json: '), e.message);
      assert.ok(e.message.includes(`"${key}"`), `names the key: ${e.message}`);
      assert.match(e.message, says);
      return true;
    },
  );
}

describe('scheduler configs', () => {
  it("google/ddpm-cifar10-32's loads to diffusers' coefficients (closed forms in float64)", () => {
    const d = diffusionFromScheduler(CIFAR_SCHEDULER, 's');
    assert.deepEqual(d, {
      schedule: 'linear',
      betaStart: 1e-4,
      betaEnd: 0.02,
      T: 1000,
      modelMeanType: 'eps',
      modelVarType: 'fixedlarge',
      timestepSpacing: 'leading', // no timestep_spacing key (diffusers 0.1): DDPMScheduler's default
    });
    const g = diffusionFromSpec(d);
    // diffusers: betas = torch.linspace(1e-4, 0.02, 1000, float32), alphas_cumprod = cumprod(1 - betas) in
    // float32. Here float64: beta_t = 1e-4 + t (0.02 - 1e-4) / 999 and abar its product. diffusers' float32
    // values differ from these by float32 rounding: measured with torch 1.13, betas by at most 1.4e-7 and abar
    // by at most 3.5e-7 (relative); abar_999 = 4.0358307e-5 (float32) against 4.0358298e-5 (float64).
    for (const t of [0, 1, 499, 998, 999])
      assert.ok(Math.abs(g.betas[t]! - (1e-4 + (t * (0.02 - 1e-4)) / 999)) < 1e-17);
    let abar = 1;
    for (let t = 0; t < 1000; t++) abar *= 1 - (1e-4 + (t * (0.02 - 1e-4)) / 999);
    assert.ok(Math.abs(g.alphasCumprod[999]! - abar) / abar < 1e-12);
    assert.ok(Math.abs(g.alphasCumprod[999]! - 4.035829765e-5) / 4.0358e-5 < 1e-9);
    assert.ok(Math.abs(g.alphasCumprod[999]! - 4.0358307e-5) / 4.0358e-5 < 3.5e-7); // diffusers' float32 value
    // fixed_large: sigma_t^2 = beta_t (diffusers' _get_variance), for every step that adds noise (t >= 1).
    for (const t of [1, 500, 999]) assert.equal(g.modelVariance[t], g.betas[t]);
    assert.equal(g.clipRange, 1);
  });

  it("DDIMScheduler's defaults load to the paper's betas, fixed_small, clipping to [-1, 1]", () => {
    const d = diffusionFromScheduler(DDIM_DEFAULTS, 's');
    assert.deepEqual(d, {
      schedule: 'linear',
      betaStart: 1e-4,
      betaEnd: 0.02,
      T: 1000,
      modelMeanType: 'eps',
      modelVarType: 'fixedsmall',
      timestepSpacing: 'leading',
    });
    assert.deepEqual(diffusionFromScheduler(null, 's'), d); // no scheduler config: DDPMScheduler's defaults
    const g = diffusionFromSpec(d);
    // fixed_small: beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t.
    const t = 500;
    const want = ((1 - g.alphasCumprod[t - 1]!) / (1 - g.alphasCumprod[t]!)) * g.betas[t]!;
    assert.ok(Math.abs(g.modelVariance[t]! - want) / want < 1e-14);
  });

  it('honours each schedule, prediction type, clipping, trained betas and the sampling keys', () => {
    const get = (o: Record<string, unknown>) => diffusionFromScheduler({ ...DDIM_DEFAULTS, ...o }, 's');
    assert.equal(get({ beta_schedule: 'scaled_linear' }).schedule, 'quad');
    assert.equal(get({ beta_schedule: 'squaredcos_cap_v2' }).schedule, 'cosine');
    assert.equal(get({ beta_schedule: 'sigmoid' }).schedule, 'sigmoid');
    assert.equal(get({ prediction_type: 'sample' }).modelMeanType, 'xstart');
    assert.equal(get({ prediction_type: 'v_prediction' }).modelMeanType, 'v');
    assert.equal(get({ variance_type: 'learned_range' }).modelVarType, 'learned-range');
    assert.equal(get({ variance_type: 'fixed_small_log' }).modelVarType, 'fixedsmall');
    assert.equal(get({ clip_sample: false }).clipRange, 0);
    assert.equal(diffusionFromSpec(get({ clip_sample: false })).clipRange, 0);
    assert.equal(get({ clip_sample_range: 2.5 }).clipRange, 2.5);
    const tb = Array.from({ length: 1000 }, (_, i) => 0.001 + i * 1e-5);
    assert.deepEqual(Array.from(diffusionFromSpec(get({ trained_betas: tb })).betas), tb);
    const sampling = get({ timestep_spacing: 'trailing', steps_offset: 1, set_alpha_to_one: false });
    assert.deepEqual(
      [sampling.timestepSpacing, sampling.stepsOffset, sampling.setAlphaToOne],
      ['trailing', 1, false],
    );
    assert.deepEqual(diffusionFromSpec(sampling).timestepRule, {
      spacing: 'trailing',
      stepsOffset: 1,
      setAlphaToOne: false,
    });
    // scaled_linear: linspace(sqrt(start), sqrt(end))^2, as diffusers.
    const q = diffusionFromSpec(
      get({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 }),
    );
    assert.ok(Math.abs(q.betas[0]! - 0.00085) < 1e-18 && Math.abs(q.betas[999]! - 0.012) < 1e-17);
  });

  it("inference timesteps: diffusers' values (missing keys at its defaults) reach the samplers; ours go out and back", () => {
    const ruleOf = (c: Record<string, unknown> | null) => diffusionFromSpec(diffusionFromScheduler(c, 's'));
    const leading = { spacing: 'leading', stepsOffset: 0, setAlphaToOne: true };
    // google/ddpm-cifar10-32 (no timestep_spacing / steps_offset / set_alpha_to_one keys) and DDIM's defaults
    assert.deepEqual(ruleOf(CIFAR_SCHEDULER).timestepRule, leading);
    assert.deepEqual(ruleOf(DDIM_DEFAULTS).timestepRule, leading);
    assert.deepEqual(ruleOf(null).timestepRule, leading);
    const ddim10 = ddimTimestepsFor(ruleOf(CIFAR_SCHEDULER), { steps: 10 });
    assert.deepEqual(Array.from(ddim10).reverse(), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    // Stable Diffusion's DDIM style: steps_offset 1, set_alpha_to_one false
    const sd = ruleOf({ ...DDIM_DEFAULTS, steps_offset: 1, set_alpha_to_one: false });
    assert.deepEqual(sd.timestepRule, { spacing: 'leading', stepsOffset: 1, setAlphaToOne: false });
    assert.deepEqual(Array.from(ddimTimestepsFor(sd, { steps: 50 })).slice(-2), [961, 981]);
    // export: diffusers' rule written back as it came; ours as linspace + our key, read back as ours
    const imported = diffusionFromScheduler({ ...DDIM_DEFAULTS, timestep_spacing: 'trailing' }, 's');
    const out = diffusersSchedulerConfig(imported);
    assert.deepEqual(
      [out.timestep_spacing, out.steps_offset, OWN_SPACING_KEY in out],
      ['trailing', 0, false],
    );
    assert.equal(exportTimestepNote(imported), undefined);
    const ours = defaultSpec().diffusion;
    const mine = diffusersSchedulerConfig(ours);
    assert.deepEqual(
      [mine.timestep_spacing, mine.steps_offset, mine[OWN_SPACING_KEY]],
      ['linspace', 0, 'improved-diffusion'],
    );
    assert.deepEqual(diffusionFromScheduler(mine, 's'), { ...ours, modelVarType: 'fixedlarge' });
    assert.match(exportTimestepNote(ours)!, /no diffusers timestep_spacing gives exactly/);
    // our key is honoured only beside what export writes with it
    assert.throws(
      () => diffusionFromScheduler({ ...mine, [OWN_SPACING_KEY]: 'leading' }, 's'),
      /"_ddpm_ts_timestep_spacing" is "leading" \(a string\); supported: "improved-diffusion"/,
    );
    assert.throws(
      () => diffusionFromScheduler({ ...mine, timestep_spacing: 'leading' }, 's'),
      /"_ddpm_ts_timestep_spacing" is "improved-diffusion" but "timestep_spacing" is "leading" and "steps_offset" 0/,
    );
  });

  it('refuses each unsupported key and value, naming it and what is supported', () => {
    schedRefuses(
      'prediction_type',
      'velocity',
      /"velocity" \(a string\); supported: "epsilon", "sample", "v_prediction"/,
    );
    schedRefuses(
      'variance_type',
      'learned',
      /"learned" .*supported: "fixed_small", "fixed_small_log", "fixed_large", "learned_range" \("learned", the log-variance output directly, is not implemented/,
    );
    schedRefuses('variance_type', 'fixed_large_log', /"fixed_large_log" .*square root of log\(beta_t\)/);
    schedRefuses(
      'beta_schedule',
      'exponential',
      /"exponential" .*supported: "linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"/,
    );
    schedRefuses(
      'thresholding',
      true,
      /is true .*supported: false \(dynamic thresholding is not implemented\)/,
    );
    schedRefuses('rescale_betas_zero_snr', true, /is true .*supported: false/);
    schedRefuses('timestep_spacing', 'uniform', /"uniform" .*supported: "leading", "linspace", "trailing"/);
    schedRefuses('clip_sample_range', 0, /is 0 .*supported: a positive number when clip_sample is true/);
    schedRefuses(
      'trained_betas',
      [0.1, 0.2],
      /"trained_betas" is \[0\.1,0\.2\] .*expected null or an array of 1000/,
    );
    schedRefuses(
      'num_train_timesteps',
      '1000',
      /"num_train_timesteps" is "1000" \(a string\); expected a positive integer/,
    );
    schedRefuses('num_train_timesteps', 10 ** 7, /is 10000000 .*expected at most 100000 timesteps/);
    schedRefuses('beta_start', -1, /"beta_start" is -1 \(a number\); expected a number in \[0, 1\]/);
    schedRefuses('beta_end', 2, /"beta_end" is 2 \(a number\); expected a number in \[0, 1\]/);
    schedRefuses('clip_sample', 'yes', /"clip_sample" is "yes" \(a string\); expected true or false/);
    schedRefuses('set_alpha_to_one', 1, /"set_alpha_to_one" is 1 \(a number\); expected true or false/);
    schedRefuses('steps_offset', -1, /"steps_offset" is -1 \(a number\); expected an integer >= 0/);
    schedRefuses('dynamic_thresholding_ratio', 2, /expected a number in \[0, 1\]/);
    schedRefuses('sample_max_value', -1, /expected a number in \[0, 1000000\]/);
    schedRefuses(
      'prediction_type',
      null,
      /"prediction_type" is null; supported: "epsilon", "sample", "v_prediction"/,
    );
    schedRefuses(
      'skip_prk_steps',
      true,
      /"skip_prk_steps" is not a key of diffusers' DDPMScheduler \/ DDIMScheduler configs/,
    );
    schedRefuses(
      '_class_name',
      'PNDMScheduler',
      /"PNDMScheduler" .*supported: "DDPMScheduler", "DDIMScheduler"/,
    );
  });
});

describe('pipeline folders (model_index.json, unet/, scheduler/), written and read', () => {
  const spec = { ...defaultSpec(), unet: TINY_UNET };
  delete (spec as { data?: string }).data; // diffusers' configs have no place for the data set's name

  it('ours -> diffusers pipeline folder -> ours: the same spec and bit-identical weights', () => {
    const dir = join(TMP, 'pipe');
    const p = initParams(TINY_UNET, 'fixture');
    saveDiffusers(dir, spec, p);
    for (const f of [
      'model_index.json',
      'unet/config.json',
      'unet/diffusion_pytorch_model.safetensors',
      'scheduler/scheduler_config.json',
    ])
      assert.ok(existsSync(join(dir, f)), f);
    const idx = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    assert.deepEqual(idx.unet, ['diffusers', 'UNet2DModel']);
    assert.equal(JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8'))._class_name, 'UNet2DModel');
    for (const path of [dir, join(dir, 'unet')]) {
      const m = loadModel(path);
      assert.deepEqual(m.spec, spec);
      for (const [k, v] of p)
        assert.ok(Buffer.from(m.params.get(k)!.buffer).equals(Buffer.from(v.buffer)), k);
    }
  });

  it('every diffusers variation and scheduler setting survives the round trip', () => {
    const unet = unetFromDiffusers(FIX.cases[2]!.config, 'c'); // mish, centred, scaled, 2 heads, shift 2
    const diffusion = diffusionFromScheduler(
      {
        ...DDIM_DEFAULTS,
        beta_schedule: 'squaredcos_cap_v2',
        clip_sample_range: 2,
        prediction_type: 'sample',
        steps_offset: 1,
      },
      's',
    );
    const s2 = { format: 'ddpm-ts/model/v1' as const, unet, diffusion };
    const dir = join(TMP, 'pipe2');
    saveDiffusers(dir, s2, initParams(unet, 'fixture'));
    assert.deepEqual(loadModel(dir).spec, s2);
    // ... and through our own folder format too.
    saveModel(join(TMP, 'ours2'), s2, initParams(unet, 'fixture'));
    assert.deepEqual(loadModel(join(TMP, 'ours2')).spec, s2);
  });

  it('v_prediction and learned_range: imported, exported and read back (the U-Net with 2C outputs)', async () => {
    const unet = { ...TINY_UNET, outChannels: 2 * TINY_UNET.inChannels };
    for (const [mean, variance, unetCfg] of [
      ['v', 'fixedlarge', TINY_UNET],
      ['eps', 'learned-range', unet],
      ['v', 'learned-range', unet],
    ] as const) {
      const s2 = {
        format: 'ddpm-ts/model/v1' as const,
        unet: unetCfg,
        diffusion: { ...spec.diffusion, modelMeanType: mean, modelVarType: variance },
      };
      const dir = join(TMP, `pipe-${mean}-${variance}`);
      const p = initParams(unetCfg, 'fixture');
      saveDiffusers(dir, s2, p);
      const sched = JSON.parse(readFileSync(join(dir, 'scheduler/scheduler_config.json'), 'utf8'));
      assert.equal(sched.prediction_type, mean === 'v' ? 'v_prediction' : 'epsilon');
      assert.equal(sched.variance_type, variance === 'learned-range' ? 'learned_range' : 'fixed_large');
      const cfg = JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8'));
      assert.equal(cfg.out_channels, unetCfg.outChannels);
      const m = loadModel(dir);
      assert.deepEqual(m.spec, s2);
      for (const [k, v] of p)
        assert.ok(Buffer.from(m.params.get(k)!.buffer).equals(Buffer.from(v.buffer)), k);
    }
    // a learned_range scheduler beside a U-Net with C outputs (or the reverse) is refused, saying what to change
    const dir = join(TMP, 'pipe-mismatch');
    saveDiffusers(
      dir,
      { ...spec, diffusion: { ...spec.diffusion, modelVarType: 'learned-range' }, unet },
      initParams(unet, 'fixture'),
    );
    const sc = join(dir, 'scheduler/scheduler_config.json');
    const fixedSched = { ...JSON.parse(readFileSync(sc, 'utf8')), variance_type: 'fixed_large' };
    writeFileSync(sc, JSON.stringify(fixedSched));
    const m = loadModel(dir); // a network alone may have any outputs; the diffusion refuses them when sampling
    const g = diffusionFromSpec(m.spec.diffusion);
    const twice = async (x: { readonly shape: readonly number[] }) => ({
      data: new Float32Array(2 * x.shape.reduce((a, b) => a * b, 1)),
      shape: [x.shape[0]!, 2 * x.shape[1]!, ...x.shape.slice(2)],
    });
    await assert.rejects(
      g.predictXstart(twice, { data: new Float32Array(16), shape: [1, 1, 4, 4] }, Int32Array.of(5), true),
      /twice the image channels, as a learned-variance model's, but the variance type is "fixedlarge"; load it with the variance type "learned-range" \(diffusers: variance_type "learned_range"\)/,
    );
    saveModel(
      join(TMP, 'bad-ours'),
      { ...spec, diffusion: { ...spec.diffusion, modelVarType: 'learned-range' } },
      initParams(TINY_UNET, 'fixture'),
    );
    assert.throws(
      () => loadModel(join(TMP, 'bad-ours')),
      /config\.json: the U-Net outputs 1 channels for 1-channel images, but the variance type "learned-range" needs 2 \(the mean output, then the variance values\); set out_channels \/ outChannels to twice/,
    );
  });

  it('schedules diffusers has no name for go as trained_betas, exactly', () => {
    const d = { ...spec.diffusion, schedule: 'jsd' as const };
    const dir = join(TMP, 'pipe3');
    saveDiffusers(dir, { ...spec, diffusion: d }, initParams(TINY_UNET, 'fixture'));
    const back = loadModel(dir).spec.diffusion;
    assert.deepEqual(Array.from(diffusionFromSpec(back).betas), Array.from(diffusionFromSpec(d).betas));
  });

  it('refuses what diffusers cannot express, and pipelines it cannot load', () => {
    assert.throws(
      () =>
        saveDiffusers(
          join(TMP, 'x'),
          { ...spec, diffusion: { ...spec.diffusion, modelMeanType: 'xprev' } },
          initParams(TINY_UNET, 'fixture'),
        ),
      /"xprev"\) has no diffusers prediction_type/,
    );
    const dir = join(TMP, 'pipe4');
    saveDiffusers(dir, spec, initParams(TINY_UNET, 'fixture'));
    const idx = (o: unknown) => writeFileSync(join(dir, 'model_index.json'), JSON.stringify(o));
    idx({
      _class_name: 'LDMPipeline',
      unet: ['diffusers', 'UNet2DModel'],
      scheduler: ['diffusers', 'DDIMScheduler'],
    });
    assert.throws(
      () => loadModel(dir),
      /model_index\.json: "_class_name" is "LDMPipeline" .*expected one of "DDPMPipeline", "DDIMPipeline"/,
    );
    idx({
      _class_name: 'DDPMPipeline',
      unet: ['diffusers', 'UNet2DModel'],
      scheduler: ['diffusers', 'DDPMScheduler'],
      vqvae: ['diffusers', 'VQModel'],
    });
    assert.throws(
      () => loadModel(dir),
      /model_index\.json: the pipeline has a "vqvae" component .*supported: unet and scheduler only/,
    );
    idx({
      _class_name: 'DDPMPipeline',
      unet: ['diffusers', 'UNet2DConditionModel'],
      scheduler: ['diffusers', 'DDPMScheduler'],
    });
    assert.throws(
      () => loadModel(dir),
      /"unet" is \["diffusers","UNet2DConditionModel"\] .*expected \["diffusers", "UNet2DModel"\]/,
    );
    idx({
      _class_name: 'DDPMPipeline',
      unet: ['diffusers', 'UNet2DModel'],
      scheduler: ['diffusers', 'PNDMScheduler'],
    });
    assert.throws(
      () => loadModel(dir),
      /"scheduler" is .*PNDMScheduler.* expected \["diffusers", "DDPMScheduler"\] or \["diffusers", "DDIMScheduler"\]/,
    );
  });
});
