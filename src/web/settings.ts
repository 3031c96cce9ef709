// The demo's settings: read from the query string (a shareable URL), checked with messages that say what
// was wrong and what is used instead, and written back as they change. Pure (no DOM): unit-tested in Node.

import { isSamplerName, SAMPLER_NAMES, type SamplerName } from '../diffusion/samplers.js';

export type Backend = 'wasm' | 'webgpu';

export interface Settings {
  readonly model: string;
  readonly sampler: SamplerName;
  readonly steps: number;
  readonly n: number;
  readonly seed: number;
  /** Undefined: automatic (autoBackend). */
  readonly backend?: Backend;
  /** wasm threads asked for (?threads=N); undefined: all cores. */
  readonly threads?: number;
  /** Show x_t instead of the predicted x_0. */
  readonly xt: boolean;
}

/**
 * The defaults: a first result in seconds on a 2-core CPU (about 0.3-0.5 s per step at 4 images here), the
 * model's guess visible from the first step. DPM-Solver++(2M) is, of the CLI's samplers, the best at few steps
 * on the shipped model (README quality table: FID 0.89 at 10 steps, 0.61 at 20; DDIM 0.91 and 0.69).
 */
export const DEFAULTS: Settings = {
  model: '/model/',
  sampler: 'dpm++2m',
  steps: 15,
  n: 4,
  seed: 0,
  backend: undefined,
  xt: false,
};

export const MAX_IMAGES = 64;
export const MAX_SEED = 2 ** 31 - 1;

/** "1 image", "2 images". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

/** A whole number in [lo, hi] from text, or a message saying what is expected. */
export function checkInt(text: string, what: string, lo: number, hi: number): Checked<number> {
  const s = text.trim();
  if (s === '') return { ok: false, message: `${what}: empty; enter a whole number from ${lo} to ${hi}` };
  if (!/^[+-]?\d+$/.test(s))
    return {
      ok: false,
      message: `${what}: "${s.slice(0, 20)}" is not a whole number; enter one from ${lo} to ${hi}`,
    };
  const v = Number(s);
  if (v < lo || v > hi)
    return { ok: false, message: `${what}: ${s} is out of range; enter a whole number from ${lo} to ${hi}` };
  return { ok: true, value: v };
}

export interface Limits {
  /** The model's T (steps at most T). */
  readonly T: number;
  /** The most wasm threads that help here. */
  readonly maxThreads: number;
}

/** Settings from a query string; every bad value gives a message and the default instead. */
export function readSettings(
  query: URLSearchParams,
  limits: Limits,
): { settings: Settings; messages: string[] } {
  const messages: string[] = [];
  const int = (key: string, lo: number, hi: number, def: number, say: (v: number) => string): number => {
    const raw = query.get(key);
    if (raw === null) return def;
    const c = checkInt(raw, `?${key}=${raw.slice(0, 20)}`, lo, hi);
    if (c.ok) return c.value;
    messages.push(`${c.message}. Using ${say(def)}.`);
    return def;
  };
  let sampler = DEFAULTS.sampler;
  const s = query.get('sampler');
  if (s !== null) {
    if (isSamplerName(s)) sampler = s;
    else
      messages.push(
        `?sampler=${s.slice(0, 20)} is not a sampler (${SAMPLER_NAMES.join(', ')}). Using ${DEFAULTS.sampler}.`,
      );
  }
  let backend: Backend | undefined;
  const b = query.get('backend');
  if (b !== null) {
    if (b === 'wasm' || b === 'webgpu') backend = b;
    else
      messages.push(
        `?backend=${b.slice(0, 20)}: expected wasm or webgpu. Choosing automatically (WebGPU on a hardware GPU, else wasm).`,
      );
  }
  let threads: number | undefined;
  const t = query.get('threads');
  if (t !== null) {
    const c = checkInt(t, `?threads=${t.slice(0, 20)}`, 1, limits.maxThreads);
    if (c.ok) threads = c.value;
    else messages.push(`${c.message}. Using all cores.`);
  }
  const model = query.get('model') ?? DEFAULTS.model;
  const settings: Settings = {
    model: model.trim() || DEFAULTS.model,
    sampler,
    steps: int('steps', 1, limits.T, DEFAULTS.steps, (v) => plural(v, 'step')),
    n: int('n', 1, MAX_IMAGES, DEFAULTS.n, (v) => plural(v, 'image')),
    seed: int('seed', 0, MAX_SEED, DEFAULTS.seed, (v) => `seed ${v}`),
    backend,
    threads,
    xt: query.get('view') === 'xt',
  };
  return { settings, messages };
}

/** The query string of settings: only what differs from the defaults, so a default URL stays short. */
export function settingsQuery(s: Settings): string {
  const q = new URLSearchParams();
  if (s.model !== DEFAULTS.model) q.set('model', s.model);
  if (s.sampler !== DEFAULTS.sampler) q.set('sampler', s.sampler);
  if (s.steps !== DEFAULTS.steps) q.set('steps', String(s.steps));
  if (s.n !== DEFAULTS.n) q.set('n', String(s.n));
  if (s.seed !== DEFAULTS.seed) q.set('seed', String(s.seed));
  if (s.backend !== undefined) q.set('backend', s.backend);
  if (s.threads !== undefined) q.set('threads', String(s.threads));
  if (s.xt) q.set('view', 'xt');
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** The backend when the URL names none: WebGPU on a hardware adapter, else wasm (a software adapter is slower). */
export function autoBackend(webgpu: { ok: boolean; software: boolean }): Backend {
  return webgpu.ok && !webgpu.software ? 'webgpu' : 'wasm';
}

/** Plain-language names of the samplers, with the paper's term. */
export function samplerTitle(s: SamplerName): string {
  switch (s) {
    case 'ddpm':
      return 'Original DDPM (Algorithm 2): random, needs many steps';
    case 'ddim':
      return 'DDIM: deterministic, fewer steps';
    case 'dpm++2m':
      return 'DPM-Solver++ (2M): fast, good in 10-20 steps';
    case 'dpm++3m':
      return 'DPM-Solver++ (3M): fast, from about 15 steps';
    case 'euler':
      return 'Euler (Karras et al.): simple, deterministic';
    case 'heun':
      return 'Heun (Karras et al.): 2 network passes per step';
  }
}
