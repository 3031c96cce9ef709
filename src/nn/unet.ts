// The paper's U-Net (Ho et al. 2020, Appendix B; PixelCNN++ backbone with Wide-ResNet blocks,
// GroupNorm, sinusoidal timestep embedding and self-attention at 16x16), built on the graph builder.
// Parameter names and shapes are exactly those of diffusers' UNet2DModel, so the paper's released
// CIFAR-10 weights (google/ddpm-cifar10-32) load by name. The optional config fields are diffusers'
// UNet2DModel variations (diffusers src/diffusers/models/unets/unet_2d.py, resnet.py, attention_processor.py):
// multi-head attention, the timestep features' order and shift, the downsampler's padding, input centring,
// the ResNet activation, the mid block's scale factor and attention; absent, each is the paper's network.
// The file is the network and nothing else: the algebraic rewrites that make it fast (attention-norm
// folding, the cancelled timestep shift, the dropped key bias, the phase-split upsampling, the fused
// GroupNorm + SiLU, the blocked layout) are graph passes applied to what it records (src/graph/passes).

import type { Graph, Value } from '../graph/graph.js';
import { hashUniform, Rng } from '../util/rng.js';

export interface UNetConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly resolution: number;
  readonly ch: number;
  readonly chMult: readonly number[];
  readonly numResBlocks: number;
  /** Resolutions (e.g. [16]) whose levels get self-attention; the middle block always has it. */
  readonly attnResolutions: readonly number[];
  readonly dropout: number;
  readonly groups: number;
  readonly eps: number;
  /** Channels per attention head (diffusers attention_head_dim); absent = one head over all channels. */
  readonly headDim?: number;
  /** Timestep features [cos, sin] instead of the paper's [sin, cos] (flip_sin_to_cos). */
  readonly flipSinToCos?: boolean;
  /** Frequencies f_i = exp(-ln(10000) i / (ch/2 - freqShift)) (freq_shift); absent = 1, the paper's. */
  readonly freqShift?: number;
  /** Stride-2 downsampling conv: 0 = pad right/bottom by one (the paper's, TF SAME), 1 = pad one on every side. */
  readonly downsamplePadding?: 0 | 1;
  /** The network sees 2x - 1 (center_input_sample). */
  readonly centerInput?: boolean;
  /** The ResNet blocks' activation (act_fn); the time MLP and the output stay SiLU, as in diffusers. */
  readonly act?: Activation;
  /** The mid block's residual sums (resnets and attention) are divided by it (mid_block_scale_factor). */
  readonly midScale?: number;
  /** false: no attention in the mid block (add_attention). */
  readonly midAttention?: boolean;
  /**
   * diffusers' resnet_time_scale_shift "scale_shift": each ResNet's time_emb_proj gives 2C values, scale then
   * shift, and h = norm2(h) (1 + scale) + shift replaces norm2(h + temb).
   */
  readonly timeScaleShift?: boolean;
  /** false: the mid block's attention has no GroupNorm (diffusers' scale_shift without attn_norm_num_groups). */
  readonly midAttentionNorm?: boolean;
}

/** ResNet activations: SiLU (the paper's; trains), ReLU and Mish (x tanh(softplus x)), inference only. */
export type Activation = 'silu' | 'relu' | 'mish';
export const ACTIVATIONS: readonly Activation[] = ['silu', 'relu', 'mish'];

/** The paper's CIFAR-10 model: 35,746,307 parameters. */
export const CIFAR10_UNET: UNetConfig = {
  inChannels: 3,
  outChannels: 3,
  resolution: 32,
  ch: 128,
  chMult: [1, 2, 2, 2],
  numResBlocks: 2,
  attnResolutions: [16],
  dropout: 0.1,
  groups: 32,
  eps: 1e-6,
};

/** The 2.2M-parameter model of the benchmarks and the shipped MNIST model. */
export const SMALL_UNET: UNetConfig = { ...CIFAR10_UNET, inChannels: 1, outChannels: 1, ch: 32 };

/** A 0.7M-parameter model at 16x16 for tests and quick experiments. */
export const TINY_UNET: UNetConfig = {
  ...SMALL_UNET,
  resolution: 16,
  chMult: [1, 2],
  numResBlocks: 1,
  attnResolutions: [8],
  dropout: 0,
};

export type ParamKind = 'conv' | 'linear' | 'bias' | 'normWeight' | 'normBias';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: ParamKind;
  /** Paper initialisation zeroes the last conv of each block and of the network. */
  readonly zeroInit: boolean;
}

export type ParamStore = Map<string, Float32Array>;

export type InitMode = 'paper' | 'fixture';

/**
 * Upper bounds of a U-Net config read from a file, far above any real model (the paper's CIFAR-10 network: ch
 * 128, 4 levels, 2 blocks, resolution 32): a config beyond them is corrupt or crafted, and enumerating its
 * parameters would take forever or exhaust memory before the weights could disagree with it.
 */
export const UNET_LIMITS = {
  channels: 64,
  resolution: 4096,
  ch: 4096,
  levels: 12,
  mult: 64,
  numResBlocks: 64,
  attnResolutions: 64,
} as const;

export function validateConfig(c: UNetConfig): void {
  const bad = (m: string) => {
    throw new Error(`U-Net config: ${m}`);
  };
  const L = UNET_LIMITS;
  const over = (what: string, v: number, max: number) => {
    if (v > max) bad(`${what} ${v} is over ${max}, far beyond any real model: a corrupt or crafted config`);
  };
  over('inChannels', c.inChannels, L.channels);
  over('outChannels', c.outChannels, L.channels);
  over('resolution', c.resolution, L.resolution);
  over('ch', c.ch, L.ch);
  over('the number of levels (chMult entries)', c.chMult.length, L.levels);
  for (const m of c.chMult) over('a chMult entry', m, L.mult);
  over('numResBlocks', c.numResBlocks, L.numResBlocks);
  over('the number of attnResolutions', c.attnResolutions.length, L.attnResolutions);
  if (c.ch % c.groups !== 0) {
    const near = Math.max(c.groups, Math.round(c.ch / c.groups) * c.groups);
    bad(
      `ch ${c.ch} must be divisible by groups ${c.groups} (GroupNorm's groups; the nearest multiple of ${c.groups} is ${near})`,
    );
  }
  for (const m of c.chMult)
    if ((c.ch * m) % c.groups !== 0) bad(`ch*mult ${c.ch * m} not divisible by ${c.groups}`);
  if (c.resolution % 2 ** (c.chMult.length - 1) !== 0) {
    bad(`resolution ${c.resolution} must be divisible by 2^${c.chMult.length - 1} (one halving per level)`);
  }
  if (c.ch % 2 !== 0) bad('ch must be even (sinusoidal embedding)');
  if (!(c.dropout >= 0 && c.dropout < 1)) bad(`dropout ${c.dropout} must be in [0, 1)`);
  const shift = c.freqShift ?? 1;
  if (!(Number.isInteger(shift) && shift < c.ch / 2))
    bad(`freqShift ${shift} must be an integer below ch/2 = ${c.ch / 2}`);
  if (c.midScale !== undefined && !(c.midScale > 0)) bad(`midScale ${c.midScale} must be positive`);
  if (c.act !== undefined && !ACTIVATIONS.includes(c.act))
    bad(`act "${c.act}" is not one of ${ACTIVATIONS.join(', ')}`);
  if (c.headDim !== undefined) {
    if (!(Number.isInteger(c.headDim) && c.headDim > 0))
      bad(`headDim ${c.headDim} must be a positive integer`);
    const attnCh = c.chMult
      .filter((_, i) => c.attnResolutions.includes(c.resolution / 2 ** i))
      .map((m) => c.ch * m);
    if (c.midAttention !== false) attnCh.push(c.ch * c.chMult.at(-1)!);
    for (const C of attnCh)
      if (C % c.headDim !== 0) bad(`attention over ${C} channels cannot split into heads of ${c.headDim}`);
  }
}

/** Whether the attention at `prefix` starts with a GroupNorm (all but a midAttentionNorm-false mid block's). */
function attnNormed(c: UNetConfig, prefix: string): boolean {
  return !(prefix.startsWith('mid_block') && c.midAttentionNorm === false);
}

/** Every parameter, in diffusers state_dict naming. */
export function unetParamSpecs(c: UNetConfig): ParamSpec[] {
  validateConfig(c);
  const specs: ParamSpec[] = [];
  const conv = (name: string, o: number, i: number, k: number, zero = false) => {
    specs.push({ name: `${name}.weight`, shape: [o, i, k, k], kind: 'conv', zeroInit: zero });
    specs.push({ name: `${name}.bias`, shape: [o], kind: 'bias', zeroInit: true });
  };
  const linear = (name: string, o: number, i: number, zero = false) => {
    specs.push({ name: `${name}.weight`, shape: [o, i], kind: 'linear', zeroInit: zero });
    specs.push({ name: `${name}.bias`, shape: [o], kind: 'bias', zeroInit: true });
  };
  const norm = (name: string, n: number) => {
    specs.push({ name: `${name}.weight`, shape: [n], kind: 'normWeight', zeroInit: false });
    specs.push({ name: `${name}.bias`, shape: [n], kind: 'normBias', zeroInit: true });
  };
  const temb = 4 * c.ch;
  const resnet = (p: string, i: number, o: number) => {
    norm(`${p}.norm1`, i);
    conv(`${p}.conv1`, o, i, 3);
    linear(`${p}.time_emb_proj`, c.timeScaleShift ? 2 * o : o, temb);
    norm(`${p}.norm2`, o);
    conv(`${p}.conv2`, o, o, 3, true);
    if (i !== o) conv(`${p}.conv_shortcut`, o, i, 1);
  };
  const attn = (p: string, n: number) => {
    if (attnNormed(c, p)) norm(`${p}.group_norm`, n);
    linear(`${p}.to_q`, n, n);
    linear(`${p}.to_k`, n, n);
    linear(`${p}.to_v`, n, n);
    linear(`${p}.to_out.0`, n, n, true);
  };
  conv('conv_in', c.ch, c.inChannels, 3);
  linear('time_embedding.linear_1', temb, c.ch);
  linear('time_embedding.linear_2', temb, temb);
  for (const s of walk(c)) {
    switch (s.kind) {
      case 'resnet':
        resnet(s.prefix, s.inCh, s.outCh);
        break;
      case 'attn':
        attn(s.prefix, s.outCh);
        break;
      case 'down':
      case 'up':
        conv(`${s.prefix}.conv`, s.outCh, s.outCh, 3);
        break;
    }
  }
  norm('conv_norm_out', c.ch);
  conv('conv_out', c.outChannels, c.ch, 3, true);
  return specs;
}

type Step =
  | {
      kind: 'resnet';
      prefix: string;
      inCh: number;
      outCh: number;
      skipCh: number;
      res: number;
      path: 'down' | 'mid' | 'up';
    }
  | { kind: 'attn'; prefix: string; outCh: number; res: number }
  | { kind: 'down' | 'up'; prefix: string; outCh: number; res: number };

/** The network as a flat list of blocks, in execution order (shared by specs and the builder). */
function walk(c: UNetConfig): Step[] {
  const steps: Step[] = [];
  const levels = c.chMult.length;
  const skips: number[] = [c.ch];
  let ch = c.ch;
  let res = c.resolution;
  for (let i = 0; i < levels; i++) {
    const out = c.ch * c.chMult[i]!;
    for (let j = 0; j < c.numResBlocks; j++) {
      steps.push({
        kind: 'resnet',
        prefix: `down_blocks.${i}.resnets.${j}`,
        inCh: ch,
        outCh: out,
        skipCh: 0,
        res,
        path: 'down',
      });
      ch = out;
      if (c.attnResolutions.includes(res))
        steps.push({ kind: 'attn', prefix: `down_blocks.${i}.attentions.${j}`, outCh: ch, res });
      skips.push(ch);
    }
    if (i !== levels - 1) {
      steps.push({ kind: 'down', prefix: `down_blocks.${i}.downsamplers.0`, outCh: ch, res });
      res /= 2;
      skips.push(ch);
    }
  }
  steps.push({
    kind: 'resnet',
    prefix: 'mid_block.resnets.0',
    inCh: ch,
    outCh: ch,
    skipCh: 0,
    res,
    path: 'mid',
  });
  if (c.midAttention !== false)
    steps.push({ kind: 'attn', prefix: 'mid_block.attentions.0', outCh: ch, res });
  steps.push({
    kind: 'resnet',
    prefix: 'mid_block.resnets.1',
    inCh: ch,
    outCh: ch,
    skipCh: 0,
    res,
    path: 'mid',
  });
  for (let u = 0; u < levels; u++) {
    const i = levels - 1 - u;
    const out = c.ch * c.chMult[i]!;
    for (let j = 0; j < c.numResBlocks + 1; j++) {
      const skip = skips.pop()!;
      steps.push({
        kind: 'resnet',
        prefix: `up_blocks.${u}.resnets.${j}`,
        inCh: ch + skip,
        outCh: out,
        skipCh: skip,
        res,
        path: 'up',
      });
      ch = out;
      if (c.attnResolutions.includes(res))
        steps.push({ kind: 'attn', prefix: `up_blocks.${u}.attentions.${j}`, outCh: ch, res });
    }
    if (i !== 0) {
      steps.push({ kind: 'up', prefix: `up_blocks.${u}.upsamplers.0`, outCh: ch, res });
      res *= 2;
    }
  }
  return steps;
}

export function countParams(c: UNetConfig): number {
  return unetParamSpecs(c).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

/** FNV-1a 32-bit hash of a UTF-8 string (fixture seeds; mirrored in reference/torch_unet.py). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

function fans(s: ParamSpec): { fanIn: number; fanOut: number } {
  const [o, i, kh = 1, kw = 1] = s.shape as number[];
  return { fanIn: i! * kh * kw, fanOut: o! * kh * kw };
}

/**
 * The weights of a fixed-variance model (C output channels) for the same network with learned variances
 * (2C: eps, then the variance values v of Nichol & Dhariwal 2021 eq. 15): conv_out gains C zero output
 * channels, so v = 0 everywhere and the variance starts at the geometric mean of beta_t and beta~_t, with the
 * mean prediction unchanged. `c` is the fixed-variance config; every other parameter is shared, not copied.
 */
export function addVarianceChannels(c: UNetConfig, params: ParamStore): ParamStore {
  const w = params.get('conv_out.weight');
  const b = params.get('conv_out.bias');
  const per = c.ch * 9;
  if (!w || !b || w.length !== c.outChannels * per || b.length !== c.outChannels) {
    throw new Error(
      `addVarianceChannels: conv_out of [${c.outChannels}, ${c.ch}, 3, 3] expected, got ${w?.length ?? 'none'} weights`,
    );
  }
  const out: ParamStore = new Map(params);
  const w2 = new Float32Array(2 * w.length);
  w2.set(w);
  const b2 = new Float32Array(2 * b.length);
  b2.set(b);
  out.set('conv_out.weight', w2);
  out.set('conv_out.bias', b2);
  return out;
}

/**
 * 'paper': the original code's init (variance scaling, fan_avg, uniform; zero for the last conv of each
 * block, the attention output and the network output; biases 0; norms 1/0).
 * 'fixture': every parameter non-zero from hashUniform(fnv1a(name)), mirrored by the PyTorch reference.
 */
export function initParams(c: UNetConfig, mode: InitMode, seed = 0): ParamStore {
  const rng = new Rng(seed);
  const store: ParamStore = new Map();
  for (const s of unetParamSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    switch (mode) {
      case 'paper': {
        data = new Float32Array(n);
        if (s.kind === 'normWeight') data.fill(1);
        else if ((s.kind === 'conv' || s.kind === 'linear') && !s.zeroInit) {
          const { fanIn, fanOut } = fans(s);
          const limit = Math.sqrt(3 / ((fanIn + fanOut) / 2));
          for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * limit;
        }
        break;
      }
      case 'fixture': {
        const h = fnv1a(s.name);
        if (s.kind === 'conv' || s.kind === 'linear') data = hashUniform(h, n, Math.sqrt(3 / fans(s).fanIn));
        else data = hashUniform(h, n, 0.1);
        if (s.kind === 'normWeight') for (let i = 0; i < n; i++) data[i]! += 1;
        break;
      }
    }
    store.set(s.name, data);
  }
  return store;
}

export interface UNetGraph {
  /** Model output, [N, outChannels, H, W]. */
  readonly out: Value;
  /** Dropout-mask inputs (values 0 or 1/(1-p)), one per ResNet block, in order; empty without dropout. */
  readonly dropoutMasks: readonly Value[];
  /** Parameter values by name, in spec order. */
  readonly params: ReadonlyMap<string, Value>;
}

/**
 * Build the U-Net on g for inputs x [N, C, H, W] and t [N] (float timesteps), as the paper and diffusers'
 * UNet2DModel describe it. With `training`, dropout masks become graph inputs named `dropout.<block>` and
 * GroupNorm records the form the gradient rules use. The graph passes (src/graph/passes) then rewrite it
 * for speed: runPasses before the gradient and the layout passes after it.
 */
export function buildUNet(
  g: Graph,
  c: UNetConfig,
  store: ParamStore,
  x: Value,
  t: Value,
  opts: { training?: boolean } = {},
): UNetGraph {
  const params = new Map<string, Value>();
  for (const s of unetParamSpecs(c)) {
    const data = store.get(s.name);
    if (!data) throw new Error(`U-Net: parameter ${s.name} missing from the weights`);
    if (data.length !== s.shape.reduce((a, b) => a * b, 1)) {
      throw new Error(`U-Net: parameter ${s.name} has ${data.length} values, expected shape [${s.shape}]`);
    }
    params.set(s.name, g.param(s.name, s.shape, data));
  }
  const P = (name: string) => params.get(name)!;
  const [n, , h0, w0] = x.shape as [number, number, number, number];
  if (x.shape[1] !== c.inChannels || h0 !== c.resolution || w0 !== c.resolution) {
    throw new Error(
      `U-Net: input [${x.shape}] does not match the config (${c.inChannels}x${c.resolution}x${c.resolution})`,
    );
  }
  const masks: Value[] = [];
  const useDropout = (opts.training ?? false) && c.dropout > 0;

  // ---- layers ----
  const gnImpl = opts.training ? 'training' : 'inference';
  const groupNorm = (v: Value, p: string) =>
    g.groupNorm(v, c.groups, P(`${p}.weight`), P(`${p}.bias`), c.eps, gnImpl);
  const act = c.act ?? 'silu';
  /** The ResNet blocks' activation (act_fn). */
  const nonlinearity = (v: Value): Value => {
    switch (act) {
      case 'silu':
        return g.silu(v);
      case 'relu':
        return g.relu(v);
      case 'mish': // x tanh(softplus(x)), torch.nn.Mish
        return g.mul(v, g.tanh(g.node('Softplus', [v], [v.shape])[0]!));
      default:
        throw new Error(`U-Net: unknown activation ${String(act satisfies never)}`);
    }
  };
  /** 3x3 conv, pad 1; stride 2 pads right/bottom by one (the paper's, TF SAME) or every side (diffusers' 1). */
  const conv3 = (v: Value, p: string, stride: 1 | 2 = 1) =>
    g.conv(v, P(`${p}.weight`), P(`${p}.bias`), {
      strides: [stride, stride],
      pads: stride === 2 && c.downsamplePadding !== 1 ? [0, 0, 1, 1] : [1, 1, 1, 1],
    });
  const conv1 = (v: Value, p: string) => g.conv(v, P(`${p}.weight`), P(`${p}.bias`));
  const linear = (v: Value, p: string) => g.linear(v, P(`${p}.weight`), P(`${p}.bias`));
  /** [2C, C] with ones at (from + i, i): tp [N, 2C] times it is tp[:, from:from + C]. */
  const chunkSelector = (C: number, from: number) => {
    const m = new Float32Array(2 * C * C);
    for (let i = 0; i < C; i++) m[(from + i) * C + i] = 1;
    return g.constant(m, [2 * C, C]);
  };
  /** nn.Linear over the channels of a channels-first [N, C, L]: W h + b. */
  const project = (v: Value, p: string) =>
    g.add(g.matmul(P(`${p}.weight`), v), g.reshape(P(`${p}.bias`), [v.shape[1]!, 1]));
  const midScale = c.midScale ?? 1;
  /** A residual sum, divided by mid_block_scale_factor in the mid block (output_scale_factor). */
  const residual = (a: Value, b: Value, prefix: string) => {
    const sum = g.add(a, b);
    return prefix.startsWith('mid_block') && midScale !== 1 ? g.scale(sum, 1 / midScale) : sum;
  };

  // ---- the timestep embedding: sinusoidal features (diffusers get_timestep_embedding), then
  // linear_1 -> SiLU -> linear_2 ----
  const half = c.ch / 2;
  const shift = c.freqShift ?? 1;
  const freqs = Float32Array.from({ length: half }, (_, i) =>
    Math.exp((-Math.log(10000) * i) / (half - shift)),
  );
  const temb = g.scope('temb', () => {
    const arg = g.mul(g.reshape(t, [n, 1]), g.constant(freqs, [1, half])); // [N, ch/2]
    const sc = c.flipSinToCos ? [g.cos(arg), g.sin(arg)] : [g.sin(arg), g.cos(arg)];
    const e = g.concat(sc, 1); // [N, ch]
    return linear(g.silu(linear(e, 'time_embedding.linear_1')), 'time_embedding.linear_2'); // [N, 4ch]
  });
  const tembAct = nonlinearity(temb); // each ResnetBlock2D applies its nonlinearity to temb

  // ---- ResnetBlock2D: norm1, act, conv1, + time_emb_proj(temb), norm2, act, dropout, conv2, + shortcut ----
  const resnet = (v: Value, s: Extract<Step, { kind: 'resnet' }>) =>
    g.scope(s.prefix, () => {
      let h = conv3(nonlinearity(groupNorm(v, `${s.prefix}.norm1`)), `${s.prefix}.conv1`); // [N, out, H, W]
      const C = s.outCh;
      const tp = linear(tembAct, `${s.prefix}.time_emb_proj`); // [N, out], scale_shift [N, 2 out]
      if (c.timeScaleShift) {
        // torch.chunk(temb, 2, dim=1) as products with constant 0/1 selectors (exact): scale, then shift
        const half = (from: number) =>
          g.reshape(
            g.matmul(
              tp,
              g.memo(`chunk.${C}.${from}`, () => chunkSelector(C, from)),
            ),
            [n, C, 1, 1],
          );
        h = groupNorm(h, `${s.prefix}.norm2`);
        h = nonlinearity(g.add(g.mul(h, g.add(half(0), g.scalar(1))), half(C)));
      } else {
        h = g.add(h, g.reshape(tp, [n, C, 1, 1]));
        h = nonlinearity(groupNorm(h, `${s.prefix}.norm2`));
      }
      if (useDropout) {
        const m = g.dropoutMaskInput(`dropout.${s.prefix}`, h.shape, c.dropout, masks.length);
        masks.push(m);
        h = g.mul(h, m);
      }
      h = conv3(h, `${s.prefix}.conv2`);
      const sc = s.inCh !== s.outCh ? conv1(v, `${s.prefix}.conv_shortcut`) : v;
      return residual(sc, h, s.prefix);
    });

  // ---- Attention: group_norm, to_q / to_k / to_v, scaled dot-product attention over the H*W positions,
  // to_out.0, + residual; channels-first ([N, C, HW]) so no activation is transposed ----
  const attention = (v: Value, s: Extract<Step, { kind: 'attn' }>) =>
    g.scope(s.prefix, () => {
      const [, C, H, W] = v.shape as [number, number, number, number];
      const p = (name: string) => `${s.prefix}.${name}`;
      const normed = attnNormed(c, s.prefix) ? groupNorm(v, p('group_norm')) : v;
      const h = g.reshape(normed, [n, C, H * W]); // [N, C, HW]
      const q = project(h, p('to_q'));
      const k = project(h, p('to_k'));
      const vv = project(h, p('to_v'));
      const heads = C / (c.headDim ?? C);
      const o = project(g.attention(q, k, vv, heads), p('to_out.0')); // [N, C, HW]
      return residual(v, g.reshape(o, [n, C, H, W]), s.prefix);
    });

  // ---- the network ----
  const xin = c.centerInput ? g.sub(g.scale(x, 2), g.scalar(1)) : x; // [N, C, H, W]
  let hcur = conv3(xin, 'conv_in');
  const skips: Value[] = [hcur];
  for (const s of walk(c)) {
    switch (s.kind) {
      case 'resnet': {
        const inp = s.path === 'up' ? g.concat([hcur, skips.pop()!], 1) : hcur;
        hcur = resnet(inp, s);
        if (s.path === 'down') skips.push(hcur);
        break;
      }
      case 'attn':
        hcur = attention(hcur, s);
        if (s.prefix.startsWith('down_blocks')) skips[skips.length - 1] = hcur;
        break;
      case 'down': // Downsample2D: 3x3 conv, stride 2
        hcur = conv3(hcur, `${s.prefix}.conv`, 2);
        skips.push(hcur);
        break;
      case 'up': // Upsample2D: nearest 2x, then 3x3 conv
        hcur = conv3(g.upsample2x(hcur), `${s.prefix}.conv`);
        break;
    }
  }
  const out = conv3(g.silu(groupNorm(hcur, 'conv_norm_out')), 'conv_out');
  return { out, dropoutMasks: masks, params };
}
