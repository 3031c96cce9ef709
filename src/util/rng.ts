// Seeded random numbers with state that can be saved and restored bit-exactly
// (training resumes must reproduce the same noise, timesteps and dropout masks).
//
// Rng: xoshiro128** (32-bit state words, exact in JS integer arithmetic).
// hashUniform: a counter-based generator (murmur3 fmix32 of seed and index) that the PyTorch
// reference script implements too, so both sides can build identical large weight tensors.

export interface RngState {
  readonly s: readonly [number, number, number, number];
  /** A spare standard normal from Box-Muller, or null. */
  readonly spare: number | null;
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    const next = splitmix32(seed);
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  getState(): RngState {
    return { s: [this.s0, this.s1, this.s2, this.s3], spare: this.spare };
  }

  setState(state: RngState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.s;
    this.spare = state.spare;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * A new Float32Array of n standard normals: the values n calls of normal() give, bit for bit, with the
   * state in an Int32Array (no boxed uint32 numbers). A sampling step draws 64K of them: 12 ms a step by
   * calls to normal(), under 4 ms so.
   */
  normalArray(n: number): Float32Array {
    const out = new Float32Array(n);
    let i = 0;
    if (n > 0 && this.spare !== null) {
      out[i++] = this.spare;
      this.spare = null;
    }
    const st = Int32Array.of(this.s0, this.s1, this.s2, this.s3);
    const uni = () => ((xoshiro(st) >>> 5) * 67108864 + (xoshiro(st) >>> 6)) / 9007199254740992;
    for (; i < n; i += 2) {
      let u = uni();
      while (u === 0) u = uni();
      const v = uni();
      const r = Math.sqrt(-2 * Math.log(u));
      out[i] = r * Math.cos(2 * Math.PI * v);
      const second = r * Math.sin(2 * Math.PI * v);
      if (i + 1 < n) out[i + 1] = second;
      else this.spare = second;
    }
    [this.s0, this.s1, this.s2, this.s3] = [st[0]! >>> 0, st[1]! >>> 0, st[2]! >>> 0, st[3]! >>> 0];
    return out;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(xs: T[] | Int32Array): void {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = xs[i]!;
      xs[i] = xs[j]!;
      xs[j] = tmp;
    }
  }
}

/** One step of xoshiro128** on state st (int32 words): the same bits as Rng.nextU32, as an int32. */
function xoshiro(st: Int32Array): number {
  const s1 = st[1]!;
  const r = Math.imul(rotl32(Math.imul(s1, 5), 7), 9);
  const s2 = st[2]! ^ st[0]!;
  const s3 = st[3]! ^ s1;
  st[1] = s1 ^ s2;
  st[0] = st[0]! ^ s3;
  st[2] = s2 ^ (s1 << 9);
  st[3] = rotl32(s3, 11);
  return r;
}

function rotl32(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** murmur3 fmix32 of (index * golden + seed): counter-based, mirrored in reference/torch_unet.py. */
export function hashU32(seed: number, index: number): number {
  let h = (Math.imul(index >>> 0, 0x9e3779b9) + (seed >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** n values uniform in [-scale, scale), element i = f(hashU32(seed, i)); same on the Python side. */
export function hashUniform(seed: number, n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((hashU32(seed, i) / 4294967296) * 2 - 1) * scale;
  return out;
}
