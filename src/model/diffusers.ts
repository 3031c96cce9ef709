// diffusers' config files, both ways and exactly (browser-safe): UNet2DModel's config.json and the
// DDPMScheduler / DDIMScheduler scheduler_config.json read into a ModelSpec, every key either honoured or
// refused with an error naming the key, its value and what is supported; and a ModelSpec written back as
// the configs diffusers' DDPMPipeline.from_pretrained loads. A missing key means diffusers' default, as
// diffusers reads it (UNet2DModel.__init__ and the schedulers' __init__ in diffusers src/diffusers/models/
// unets/unet_2d.py, schedulers/scheduling_ddpm.py, scheduling_ddim.py); `null` means None (for
// attention_head_dim: one head over all channels, unlike a missing key's 8).

import { getBetaSchedule } from '../diffusion/schedules.js';
import { type ModelMeanType, type ModelVarType, unreachable } from '../diffusion/types.js';
import { type Activation, UNET_LIMITS, type UNetConfig, validateConfig } from '../nn/unet.js';
import { describeJson, JsonChecker } from '../util/jsonCheck.js';
import { type DiffusionSpec, MAX_T } from './spec.js';

/** The diffusers version whose config layout the exported files follow. */
export const DIFFUSERS_VERSION = '0.27.2';

/** UNet2DModel.__init__'s defaults for the keys read here. */
export const UNET_DEFAULTS = {
  sample_size: null,
  in_channels: 3,
  out_channels: 3,
  center_input_sample: false,
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  freq_shift: 0,
  flip_sin_to_cos: true,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
  mid_block_type: 'UNetMidBlock2D',
  up_block_types: ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
  block_out_channels: [224, 448, 672, 896],
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  downsample_padding: 1,
  downsample_type: 'conv',
  upsample_type: 'conv',
  dropout: 0,
  act_fn: 'silu',
  attention_head_dim: 8,
  norm_num_groups: 32,
  attn_norm_num_groups: null,
  norm_eps: 1e-5,
  resnet_time_scale_shift: 'default',
  add_attention: true,
  class_embed_type: null,
  num_class_embeds: null,
  num_train_timesteps: null,
} as const;

/** DDPMScheduler's and DDIMScheduler's defaults (the union of their keys). */
export const SCHEDULER_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  variance_type: 'fixed_small',
  clip_sample: true,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1,
  sample_max_value: 1,
  timestep_spacing: 'leading',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  set_alpha_to_one: true,
} as const;

const SCHEDULER_CLASSES = ['DDPMScheduler', 'DDIMScheduler'] as const;

/** A config reader: each key's value (diffusers' default when missing), and every key must be read. */
class Keys {
  readonly chk: JsonChecker;
  private readonly read = new Set<string>();
  constructor(
    readonly raw: Record<string, unknown>,
    readonly source: string,
    private readonly defaults: Record<string, unknown>,
  ) {
    this.chk = new JsonChecker(source);
  }
  /** The value as diffusers sees it: the file's (null included) or the default when the key is missing. */
  get(key: string): unknown {
    this.read.add(key);
    return key in this.raw ? this.raw[key] : this.defaults[key];
  }
  refuse(key: string, supported: string): never {
    throw new Error(`${this.source}: "${key}" is ${describeJson(this.get(key))}; supported: ${supported}`);
  }
  int(key: string, min = 1): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.chk.fail(key, v, min === 1 ? 'a positive integer' : `an integer >= ${min}`);
    return v as number;
  }
  num(key: string, lo: number, hi: number, hiOpen = false): number {
    return this.chk.num({ [key]: this.get(key) }, key, key, lo, hi, hiOpen);
  }
  bool(key: string): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') this.chk.fail(key, v, 'true or false');
    return v as boolean;
  }
  /** The value must be one of `allowed` (each refused value names what is supported). */
  oneOf<T>(
    key: string,
    allowed: readonly T[],
    supported = allowed.map((a) => JSON.stringify(a)).join(', '),
  ): T {
    const v = this.get(key) as T;
    if (!allowed.includes(v)) this.refuse(key, supported);
    return v;
  }
  /** Keys nobody read: unknown to the class (a newer diffusers, a typo, another model class). */
  unread(): string[] {
    return Object.keys(this.raw).filter((k) => !k.startsWith('_') && !this.read.has(k));
  }
}

/**
 * diffusers UNet2DModel config.json -> UNetConfig, exactly or not at all: every key is honoured or refused
 * (naming it, its value and what is supported); keys UNet2DModel does not have are refused too.
 */
export function unetFromDiffusers(c: Record<string, unknown>, source: string): UNetConfig {
  const k = new Keys(c, source, UNET_DEFAULTS);
  const cls = c._class_name;
  if (cls !== undefined && cls !== 'UNet2DModel')
    throw new Error(`${source}: "_class_name" is ${describeJson(cls)}; supported: "UNet2DModel"`);
  const boc = k.chk.ints(
    { block_out_channels: k.get('block_out_channels') },
    'block_out_channels',
    'block_out_channels',
    true,
  );
  const L = boc.length;
  const ch = boc[0]!;
  if (boc.some((b) => b % ch !== 0))
    k.refuse(
      'block_out_channels',
      'multiples of the first entry (the base channels), e.g. [128, 256, 256, 256]',
    );
  if (ch % 2 !== 0)
    k.refuse(
      'block_out_channels',
      'an even first entry (the width of the sinusoidal time embedding; diffusers pads an odd one with a zero column, which is not implemented here)',
    );
  const types = (key: string, names: readonly string[]): string[] => {
    const v = k.get(key);
    if (!Array.isArray(v) || v.length !== L || !v.every((t) => typeof t === 'string'))
      k.chk.fail(key, v, `an array of ${L} block names (one per block_out_channels)`);
    for (const t of v as string[])
      if (!names.includes(t)) k.refuse(key, `arrays of ${names.map((n) => JSON.stringify(n)).join(' / ')}`);
    return v as string[];
  };
  const down = types('down_block_types', ['DownBlock2D', 'AttnDownBlock2D']);
  const up = types('up_block_types', ['UpBlock2D', 'AttnUpBlock2D']);
  up.forEach((t, i) => {
    if (t.startsWith('Attn') !== down[L - 1 - i]!.startsWith('Attn'))
      k.refuse(
        'up_block_types',
        `the mirror of down_block_types (attention at the same resolutions: up block ${i} mirrors down block ${L - 1 - i}, ${down[L - 1 - i]})`,
      );
  });
  const size = k.get('sample_size');
  const side = Array.isArray(size) && size.length === 2 && size[0] === size[1] ? size[0] : size;
  if (!(typeof side === 'number' && Number.isSafeInteger(side) && side >= 1))
    k.chk.fail(
      'sample_size',
      size,
      'a positive integer or [size, size], the image size (the graphs have static shapes; null leaves it to the caller in diffusers)',
    );
  const res = side as number;
  if (res % 2 ** (L - 1) !== 0)
    k.refuse(
      'sample_size',
      `a multiple of ${2 ** (L - 1)} (halved once per block but the last, ${L} blocks: the up blocks' skip connections must match)`,
    );
  k.oneOf(
    'time_embedding_type',
    ['positional'],
    '"positional" (the sinusoidal embedding; not "fourier" or "learned")',
  );
  k.get('num_train_timesteps'); // read by the "learned" embedding only: no effect here
  const ted = k.get('time_embedding_dim');
  if (ted !== null && ted !== 4 * ch)
    k.refuse('time_embedding_dim', `null or ${4 * ch} (4 x block_out_channels[0])`);
  k.oneOf('mid_block_type', ['UNetMidBlock2D', null], '"UNetMidBlock2D"');
  k.oneOf('downsample_type', ['conv'], '"conv" (a strided convolution; not "resnet")');
  k.oneOf('upsample_type', ['conv'], '"conv" (nearest x2 then a convolution; not "resnet")');
  const scaleShift =
    k.oneOf(
      'resnet_time_scale_shift',
      ['default', 'scale_shift'],
      '"default" (the time embedding added before norm2) or "scale_shift" (norm2(h) (1 + scale) + shift); not "spatial"',
    ) === 'scale_shift';
  k.oneOf('class_embed_type', [null], 'null (an unconditional model)');
  k.oneOf('num_class_embeds', [null], 'null (an unconditional model)');
  const actName = k.oneOf(
    'act_fn',
    ['silu', 'swish', 'relu', 'mish'] as const,
    '"silu" / "swish", "relu", "mish" ("gelu" needs erf, which the graph builder does not have)',
  );
  const act: Activation = actName === 'swish' ? 'silu' : (actName as Activation);
  const groups = k.int('norm_num_groups');
  if (boc.some((b) => b % groups !== 0))
    k.refuse(
      'norm_num_groups',
      `a divisor of every block_out_channels entry (${[...new Set(boc)].join(', ')}): GroupNorm splits the channels into equal groups`,
    );
  const ang = k.get('attn_norm_num_groups');
  if (ang !== null && ang !== groups) k.refuse('attn_norm_num_groups', `null or ${groups} (norm_num_groups)`);
  const midAttention = k.bool('add_attention');
  // UNetMidBlock2D: attn_groups = attn_norm_num_groups, else norm_num_groups for "default" and None (no
  // GroupNorm before the mid block's attention) for "scale_shift".
  const midAttentionNorm = ang !== null || !scaleShift;
  const attnRes = down.flatMap((t, i) => (t.startsWith('Attn') ? [res / 2 ** i] : []));
  const hd = k.get('attention_head_dim');
  let headDim: number | undefined;
  if (hd !== null) {
    const d = k.int('attention_head_dim');
    const attnCh = [
      ...down.flatMap((t, i) => (t.startsWith('Attn') ? [boc[i]!] : [])),
      ...(midAttention ? [boc[L - 1]!] : []),
    ];
    for (const C of attnCh)
      if (C % d !== 0)
        k.refuse(
          'attention_head_dim',
          `null (one head) or a divisor of every attention block's channels (${[...new Set(attnCh)].join(', ')})`,
        );
    // One head of all channels is the paper's attention: no field. No attention anywhere: nothing to say.
    if (attnCh.some((C) => C !== d)) headDim = d;
  }
  const shift = k.int('freq_shift', 0);
  if (shift >= ch / 2) k.refuse('freq_shift', `an integer below block_out_channels[0] / 2 = ${ch / 2}`);
  const pad = k.oneOf('downsample_padding', [0, 1], "0 (pad right/bottom by one, the paper's) or 1");
  const midScale = k.num('mid_block_scale_factor', 1e-6, 1e6);
  const cfg: UNetConfig = {
    inChannels: k.int('in_channels'),
    outChannels: k.int('out_channels'),
    resolution: res,
    ch,
    chMult: boc.map((b) => b / ch),
    numResBlocks: k.int('layers_per_block'),
    attnResolutions: attnRes,
    dropout: k.num('dropout', 0, 1, true),
    groups,
    eps: k.num('norm_eps', 0, 1),
    // The diffusers variations, only where they differ from the paper's network (ModelSpec stays minimal).
    ...(headDim !== undefined ? { headDim } : {}),
    ...(k.bool('flip_sin_to_cos') ? { flipSinToCos: true } : {}),
    ...(shift !== 1 ? { freqShift: shift } : {}),
    ...(pad !== 0 ? { downsamplePadding: 1 as const } : {}),
    ...(k.bool('center_input_sample') ? { centerInput: true } : {}),
    ...(act !== 'silu' ? { act } : {}),
    ...(midScale !== 1 ? { midScale } : {}),
    ...(!midAttention ? { midAttention: false } : {}),
    ...(scaleShift ? { timeScaleShift: true } : {}),
    ...(midAttention && !midAttentionNorm ? { midAttentionNorm: false } : {}),
  };
  // The U-Net's size limits (validateConfig's), under diffusers' key names.
  const atMost = (key: string, v: number, max: number, what: string) => {
    if (v > max)
      k.chk.fail(
        key,
        k.get(key),
        `at most ${max} ${what}, far beyond any real model: a corrupt or crafted config`,
      );
  };
  const lim = UNET_LIMITS;
  atMost('in_channels', cfg.inChannels, lim.channels, 'channels');
  atMost('out_channels', cfg.outChannels, lim.channels, 'channels');
  atMost('sample_size', res, lim.resolution, 'pixels');
  atMost('block_out_channels', L, lim.levels, 'blocks');
  atMost('block_out_channels', ch, lim.ch, 'channels in the first block');
  atMost('block_out_channels', Math.max(...cfg.chMult), lim.mult, 'times the first entry');
  atMost('layers_per_block', cfg.numResBlocks, lim.numResBlocks, 'layers');
  const unknown = k.unread();
  if (unknown.length)
    throw new Error(
      `${source}: ${unknown.map((u) => `"${u}"`).join(', ')} ${unknown.length > 1 ? 'are not keys' : 'is not a key'} of diffusers' UNet2DModel config as read here; remove ${unknown.length > 1 ? 'them' : 'it'} if ${unknown.length > 1 ? 'they are' : 'it is'} meant to have no effect`,
    );
  try {
    validateConfig(cfg);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return cfg;
}

/** A UNetConfig as UNet2DModel's config.json: every key explicit, so no diffusers default is relied on. */
export function diffusersUnetConfig(c: UNetConfig): Record<string, unknown> {
  if (c.midAttentionNorm === false && !c.timeScaleShift && c.midAttention !== false)
    throw new Error(
      'export: a mid-block attention without GroupNorm (midAttentionNorm false) has a diffusers config only with resnet_time_scale_shift "scale_shift" (timeScaleShift)',
    );
  const L = c.chMult.length;
  const attn = (i: number) => c.attnResolutions.includes(c.resolution / 2 ** i);
  return {
    _class_name: 'UNet2DModel',
    _diffusers_version: DIFFUSERS_VERSION,
    sample_size: c.resolution,
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    center_input_sample: c.centerInput ?? false,
    time_embedding_type: 'positional',
    freq_shift: c.freqShift ?? 1,
    flip_sin_to_cos: c.flipSinToCos ?? false,
    down_block_types: c.chMult.map((_, i) => (attn(i) ? 'AttnDownBlock2D' : 'DownBlock2D')),
    up_block_types: c.chMult.map((_, u) => (attn(L - 1 - u) ? 'AttnUpBlock2D' : 'UpBlock2D')),
    block_out_channels: c.chMult.map((m) => m * c.ch),
    layers_per_block: c.numResBlocks,
    mid_block_scale_factor: c.midScale ?? 1,
    downsample_padding: c.downsamplePadding ?? 0,
    downsample_type: 'conv',
    upsample_type: 'conv',
    dropout: c.dropout,
    act_fn: c.act ?? 'silu',
    attention_head_dim: c.headDim ?? null,
    norm_num_groups: c.groups,
    // with scale_shift, null would drop the mid block attention's GroupNorm (diffusers' UNetMidBlock2D)
    attn_norm_num_groups: c.timeScaleShift && c.midAttentionNorm !== false ? c.groups : null,
    norm_eps: c.eps,
    resnet_time_scale_shift: c.timeScaleShift ? 'scale_shift' : 'default',
    add_attention: c.midAttention ?? true,
    class_embed_type: null,
    num_class_embeds: null,
  };
}

/**
 * A diffusers DDPMScheduler / DDIMScheduler config -> DiffusionSpec, exactly or not at all. `raw` null: no
 * scheduler config at all, read as DDPMScheduler's defaults.
 */
export function diffusionFromScheduler(raw: Record<string, unknown> | null, source: string): DiffusionSpec {
  const r = raw ?? {};
  const k = new Keys(r, source, SCHEDULER_DEFAULTS);
  const cls = r._class_name ?? 'DDPMScheduler';
  if (!SCHEDULER_CLASSES.includes(cls as (typeof SCHEDULER_CLASSES)[number]))
    throw new Error(
      `${source}: "_class_name" is ${describeJson(cls)}; supported: "DDPMScheduler", "DDIMScheduler"`,
    );
  const T = k.int('num_train_timesteps');
  if (T > MAX_T)
    k.chk.fail('num_train_timesteps', T, `at most ${MAX_T} timesteps (real models use 1000 to 4000)`);
  const schedName = k.oneOf(
    'beta_schedule',
    ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid'] as const,
    '"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"',
  );
  const schedule = ((): DiffusionSpec['schedule'] => {
    switch (schedName) {
      case 'linear':
        return 'linear';
      case 'scaled_linear': // linspace(sqrt(start), sqrt(end))^2
        return 'quad';
      case 'squaredcos_cap_v2': // Nichol & Dhariwal's cosine, betas capped at 0.999
        return 'cosine';
      case 'sigmoid':
        return 'sigmoid';
    }
  })();
  const betaStart = k.num('beta_start', 0, 1);
  const betaEnd = k.num('beta_end', 0, 1);
  const tb = k.get('trained_betas');
  let trainedBetas: number[] | undefined;
  if (tb !== null) {
    if (!Array.isArray(tb) || tb.length !== T || !tb.every((b) => typeof b === 'number' && b > 0 && b <= 1))
      k.chk.fail('trained_betas', tb, `null or an array of ${T} (num_train_timesteps) numbers in (0, 1]`);
    trainedBetas = tb as number[];
  }
  const modelMeanType = ((): ModelMeanType => {
    const p = k.oneOf(
      'prediction_type',
      ['epsilon', 'sample', 'v_prediction'] as const,
      '"epsilon", "sample", "v_prediction"',
    );
    switch (p) {
      case 'epsilon':
        return 'eps';
      case 'sample':
        return 'xstart';
      case 'v_prediction': // v = sqrt(abar) eps - sqrt(1 - abar) x_0 (diffusers' get_velocity)
        return 'v';
    }
  })();
  // DDIMScheduler has no variance_type; diffusers' DDPMScheduler built from its config uses the default.
  const modelVarType = ((): ModelVarType => {
    const v = k.oneOf(
      'variance_type',
      ['fixed_small', 'fixed_small_log', 'fixed_large', 'learned_range'] as const,
      '"fixed_small", "fixed_small_log", "fixed_large", "learned_range" ("learned", the log-variance output directly, is not implemented; "fixed_large_log" makes DDPMScheduler.step take the square root of log(beta_t) < 0)',
    );
    switch (v) {
      case 'fixed_small':
      case 'fixed_small_log': // the same sigma_t, computed through its log
        return 'fixedsmall';
      case 'fixed_large':
        return 'fixedlarge';
      case 'learned_range': // Nichol & Dhariwal eq. 15: out_channels = 2 in_channels, the last half v
        return 'learned-range';
    }
  })();
  const clip = k.bool('clip_sample');
  const range = k.num('clip_sample_range', 0, 1e6);
  if (clip && range === 0) k.refuse('clip_sample_range', 'a positive number when clip_sample is true');
  k.oneOf('thresholding', [false], 'false (dynamic thresholding is not implemented)');
  k.num('dynamic_thresholding_ratio', 0, 1); // read by thresholding only
  k.num('sample_max_value', 0, 1e6); // read by thresholding only
  k.oneOf(
    'rescale_betas_zero_snr',
    [false],
    'false (zero terminal SNR: abar_T = 0 makes the x_0 and posterior-mean formulas divide by zero at t = T-1)',
  );
  // The inference timesteps (diffusion/timesteps.ts), honoured by ddpm and ddim as diffusers' schedulers.
  const spacing = k.oneOf('timestep_spacing', ['leading', 'linspace', 'trailing'] as const);
  const stepsOffset = k.int('steps_offset', 0);
  const setAlphaToOne = k.bool('set_alpha_to_one');
  // This project's own rule, which diffusers has no spacing for, as `ddpm export` writes it (diffusers
  // drops keys starting with "_" from a config).
  const own = r[OWN_SPACING_KEY];
  if (own !== undefined) {
    if (own !== 'improved-diffusion')
      throw new Error(
        `${source}: "${OWN_SPACING_KEY}" is ${describeJson(own)}; supported: "improved-diffusion" (written by ddpm export beside timestep_spacing "${OWN_SPACING_PUBLIC}" and steps_offset 0)`,
      );
    if (spacing !== OWN_SPACING_PUBLIC || stepsOffset !== 0)
      throw new Error(
        `${source}: "${OWN_SPACING_KEY}" is "improved-diffusion" but "timestep_spacing" is ${JSON.stringify(spacing)} and "steps_offset" ${stepsOffset}; ddpm export writes it with "${OWN_SPACING_PUBLIC}" and 0: remove "${OWN_SPACING_KEY}" to sample with diffusers' timestep_spacing`,
      );
  }
  const unknown = k.unread();
  if (unknown.length)
    throw new Error(
      `${source}: ${unknown.map((u) => `"${u}"`).join(', ')} ${unknown.length > 1 ? 'are not keys' : 'is not a key'} of diffusers' DDPMScheduler / DDIMScheduler configs`,
    );
  return {
    schedule,
    betaStart,
    betaEnd,
    T,
    modelMeanType,
    modelVarType,
    ...(trainedBetas ? { trainedBetas } : {}),
    ...(!clip ? { clipRange: 0 } : range !== 1 ? { clipRange: range } : {}),
    ...(own === undefined ? { timestepSpacing: spacing } : {}),
    ...(stepsOffset !== 0 ? { stepsOffset } : {}),
    ...(!setAlphaToOne ? { setAlphaToOne } : {}),
  };
}

/** A DiffusionSpec as DDPMScheduler's scheduler_config.json (every key explicit), or an error saying why not. */
export function diffusersSchedulerConfig(d: DiffusionSpec): Record<string, unknown> {
  const prediction = ((): string => {
    switch (d.modelMeanType) {
      case 'eps':
        return 'epsilon';
      case 'xstart':
        return 'sample';
      case 'v':
        return 'v_prediction';
      case 'xprev':
        throw new Error(
          'export: an x_{t-1}-predicting model ("xprev") has no diffusers prediction_type (epsilon, sample, v_prediction)',
        );
      default:
        return unreachable(d.modelMeanType, 'model mean type');
    }
  })();
  const variance = ((): string => {
    switch (d.modelVarType) {
      case 'fixedlarge':
        return 'fixed_large';
      case 'fixedsmall':
        return 'fixed_small';
      case 'learned-range':
        return 'learned_range';
      default:
        return unreachable(d.modelVarType, 'model variance type');
    }
  })();
  // Schedules diffusers has by name; the others ('const', 'jsd') go as explicit trained_betas.
  const named = ((): string | null => {
    switch (d.schedule) {
      case 'linear':
        return 'linear';
      case 'quad':
        return 'scaled_linear';
      case 'cosine':
        return 'squaredcos_cap_v2';
      case 'sigmoid':
        return 'sigmoid';
      case 'const':
      case 'jsd':
        return null;
      default:
        return unreachable(d.schedule, 'beta schedule');
    }
  })();
  const spacing = d.timestepSpacing ?? 'improved-diffusion';
  return {
    _class_name: 'DDPMScheduler',
    _diffusers_version: DIFFUSERS_VERSION,
    num_train_timesteps: d.T,
    beta_start: d.betaStart,
    beta_end: d.betaEnd,
    beta_schedule: named ?? 'linear',
    trained_betas:
      d.trainedBetas ??
      (named
        ? null
        : Array.from(getBetaSchedule(d.schedule, { betaStart: d.betaStart, betaEnd: d.betaEnd, T: d.T }))),
    variance_type: variance,
    clip_sample: (d.clipRange ?? 1) > 0,
    clip_sample_range: (d.clipRange ?? 1) > 0 ? (d.clipRange ?? 1) : 1,
    prediction_type: prediction,
    thresholding: false,
    dynamic_thresholding_ratio: 0.995,
    sample_max_value: 1,
    ...(spacing === 'improved-diffusion'
      ? { timestep_spacing: OWN_SPACING_PUBLIC, steps_offset: 0, [OWN_SPACING_KEY]: spacing }
      : { timestep_spacing: spacing, steps_offset: d.stepsOffset ?? 0 }),
    rescale_betas_zero_snr: false,
    // DDIMScheduler's key, written only when an imported DDIM config set it false (DDPMScheduler ignores it).
    ...((d.setAlphaToOne ?? true) ? {} : { set_alpha_to_one: false }),
  };
}

/**
 * The key that carries this project's own timestep rule through a diffusers folder, and the public
 * timestep_spacing written beside it: diffusers' nearest, 'linspace' (K steps spread over [0, T-1] with both
 * ends kept, as ddpm's), which is not exact: improved-diffusion accumulates the fractional stride and numpy
 * multiplies it, so a timestep that falls on a half can round the other way (T = 1000: 278 of the 1000 step
 * counts have timesteps 1 apart, e.g. 499 against 500 at 21 steps); and ddim's stride rule is none of
 * diffusers' spacings (ddim --steps 30 of T = 1000 strides by 34; 'leading' by 33, 'linspace' ends at 999).
 */
export const OWN_SPACING_KEY = '_ddpm_ts_timestep_spacing';
export const OWN_SPACING_PUBLIC = 'linspace';

/**
 * What `ddpm export --to diffusers` says about a model's inference timesteps: nothing when the scheduler
 * config carries diffusers' own rule, else how diffusers will differ from this project's samplers.
 */
export function exportTimestepNote(d: DiffusionSpec): string | undefined {
  if ((d.timestepSpacing ?? 'improved-diffusion') !== 'improved-diffusion') return undefined;
  return (
    `this model samples with improved-diffusion's timesteps (ddpm --steps K: K evenly spread over [0, T-1] by an accumulated stride; ddim: the integer stride giving exactly K), which no diffusers timestep_spacing gives exactly: ` +
    `scheduler_config.json says "${OWN_SPACING_PUBLIC}" (DDPMScheduler then visits ddpm's timesteps but for ones on a half, which may round 1 apart; DDIMScheduler other timesteps than ddim's, stepping to t - T // K), ` +
    `and "${OWN_SPACING_KEY}": "improved-diffusion", which diffusers ignores and this project reads back`
  );
}
