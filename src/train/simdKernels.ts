// The optimiser's two elementwise passes (paper Appendix B), Adam's update and the EMA blend, as a small
// WebAssembly SIMD module (two float64 lanes), assembled here from its instructions: nothing is built or fetched.
// Each is bit-identical to its plain loop in optim.ts (the same IEEE float64 operations in the same
// order, rounded to float32 at the same points), so a run does not change when the faster path is
// taken, and a checkpoint resumes bit-exactly either way. The arrays are copied through the module's
// memory in cache-sized chunks. Where WebAssembly SIMD is missing, `simdKernels()` returns null.

/** Elements per chunk: four float32 chunks (p, g, m, v) are 256 KB, within a core's L2 cache. */
const CHUNK = 16384;
const BYTES = CHUNK * 4;

// ---- a minimal WebAssembly encoder ----------------------------------------------------------------

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

// Instructions used below (core and SIMD opcodes of the WebAssembly 2.0 specification).
const op = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Const: (n: number) => [0x41, ...sleb(n)],
  i32Add: [0x6a],
  i32LtS: [0x48],
  i32Shl: [0x74],
  loop: [0x03, 0x40],
  block: [0x02, 0x40],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  end: [0x0b],
  simd: (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm],
};
/** Two float32 at byte address (stack) + offset, widened to float64x2. */
const loadPair = (offset: number) => [
  ...op.simd(0x5d, ...uleb(3), ...uleb(offset)), // v128.load64_zero
  ...op.simd(0x5f), // f64x2.promote_low_f32x4
];
/** Store lanes 0-1 of a float32x4 (the rounded pair) at byte address + offset: v128.store64_lane. */
const storePair = (offset: number) => op.simd(0x5b, ...uleb(3), ...uleb(offset), 0);
const f64x2 = {
  splat: op.simd(0x14),
  sqrt: op.simd(0xef),
  add: op.simd(0xf0),
  sub: op.simd(0xf1),
  mul: op.simd(0xf2),
  div: op.simd(0xf3),
  /** float64x2 -> float32 in lanes 0-1 (round to nearest even, as a Float32Array store). */
  demote: op.simd(0x5e),
  promote: op.simd(0x5f),
};

/** A counted loop over element pairs: `body` runs with local `addr` = 4 * i for i = 0, 2, .. < n. */
function pairLoop(n: number, i: number, addr: number, body: number[]): number[] {
  return [
    ...op.i32Const(0),
    ...op.localSet(i),
    ...op.block,
    ...op.loop,
    ...op.localGet(i),
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.localSet(addr),
    ...body,
    ...op.localGet(i),
    ...op.i32Const(2),
    ...op.i32Add,
    ...op.localTee(i),
    ...op.localGet(n),
    ...op.i32LtS,
    ...op.brIf(0),
    ...op.end,
    ...op.end,
  ];
}

/**
 * adam(n, b1, c1, b2, c2, alpha, eps, clip) over p, g, m, v at byte offsets 0, BYTES, 2 BYTES, 3 BYTES:
 * g' = g clip; m = b1 m + c1 g'; v = b2 v + (c2 g') g'; p = p - (alpha m) / (sqrt(v) + eps), with m and
 * v rounded to float32 before p uses them (c1 = 1 - b1, c2 = 1 - b2).
 */
function adamBody(): number[] {
  // params 0..7: n, b1, c1, b2, c2, alpha, eps, clip; locals: 8 i, 9 addr, 10.. v128 constants, 16.. temps
  const [N, I, ADDR] = [0, 8, 9];
  const [B1, C1, B2, C2, ALPHA, EPS, CLIP] = [10, 11, 12, 13, 14, 15, 16];
  const [G, M, V] = [17, 18, 19];
  const splat = (param: number, local: number) => [
    ...op.localGet(param),
    ...f64x2.splat,
    ...op.localSet(local),
  ];
  const at = (reg: number) => [...op.localGet(ADDR), ...loadPair(reg * BYTES)];
  /** Moment `reg` <- decay * it + (c * g') then `more`, rounded to float32, stored, and kept in `keep`. */
  const moment = (reg: number, decay: number, c: number, more: number[], keep: number) => [
    ...op.localGet(ADDR),
    ...op.localGet(decay),
    ...at(reg),
    ...f64x2.mul,
    ...op.localGet(c),
    ...op.localGet(G),
    ...f64x2.mul,
    ...more,
    ...f64x2.add,
    ...f64x2.demote,
    ...op.localTee(keep),
    ...storePair(reg * BYTES),
  ];
  const body = [
    // g' = g * clip
    ...at(1),
    ...op.localGet(CLIP),
    ...f64x2.mul,
    ...op.localSet(G),
    ...moment(2, B1, C1, [], M), // m = b1 * m + c1 * g'
    ...moment(3, B2, C2, [...op.localGet(G), ...f64x2.mul], V), // v = b2 * v + (c2 * g') * g'
    // p = p - (alpha * m) / (sqrt(v) + eps)
    ...op.localGet(ADDR),
    ...at(0),
    ...op.localGet(ALPHA),
    ...op.localGet(M),
    ...f64x2.promote,
    ...f64x2.mul,
    ...op.localGet(V),
    ...f64x2.promote,
    ...f64x2.sqrt,
    ...op.localGet(EPS),
    ...f64x2.add,
    ...f64x2.div,
    ...f64x2.sub,
    ...f64x2.demote,
    ...storePair(0),
  ];
  const code = [
    ...splat(1, B1),
    ...splat(2, C1),
    ...splat(3, B2),
    ...splat(4, C2),
    ...splat(5, ALPHA),
    ...splat(6, EPS),
    ...splat(7, CLIP),
    ...pairLoop(N, I, ADDR, body),
    ...op.end,
  ];
  const locals = vec([
    [2, I32],
    [10, V128],
  ]);
  return [...locals, ...code];
}

/** ema(n, decay, c) over e, p at byte offsets 0, BYTES: e = decay e + c p (c = 1 - decay). */
function emaBody(): number[] {
  const [N, I, ADDR, D, C] = [0, 3, 4, 5, 6];
  const body = [
    ...op.localGet(ADDR),
    ...op.localGet(D),
    ...op.localGet(ADDR),
    ...loadPair(0),
    ...f64x2.mul,
    ...op.localGet(C),
    ...op.localGet(ADDR),
    ...loadPair(BYTES),
    ...f64x2.mul,
    ...f64x2.add,
    ...f64x2.demote,
    ...storePair(0),
  ];
  const code = [
    ...op.localGet(1),
    ...f64x2.splat,
    ...op.localSet(D),
    ...op.localGet(2),
    ...f64x2.splat,
    ...op.localSet(C),
    ...pairLoop(N, I, ADDR, body),
    ...op.end,
  ];
  return [
    ...vec([
      [2, I32],
      [2, V128],
    ]),
    ...code,
  ];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const types = vec([
    [0x60, ...vec([[I32], [F64], [F64], [F64], [F64], [F64], [F64], [F64]]), ...vec([])],
    [0x60, ...vec([[I32], [F64], [F64]]), ...vec([])],
  ]);
  const funcs = vec([uleb(0), uleb(1)]);
  const pages = Math.ceil((4 * BYTES) / 65536);
  const memory = vec([[0x00, ...uleb(pages)]]);
  const exports = vec([
    [...name('adam'), 0x00, ...uleb(0)],
    [...name('ema'), 0x00, ...uleb(1)],
    [...name('memory'), 0x02, ...uleb(0)],
  ]);
  const bodies = [adamBody(), emaBody()].map((b) => [...uleb(b.length), ...b]);
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(3, funcs),
    ...section(5, memory),
    ...section(7, exports),
    ...section(10, vec(bodies)),
  ]);
}

// ---- the kernels ----------------------------------------------------------------------------------

export interface AdamCoefs {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** lr * sqrt(1 - beta2^t) / (1 - beta1^t). */
  readonly alpha: number;
  /** Gradient scale from global-norm clipping (1 = none). */
  readonly clip: number;
}

export interface SimdKernels {
  /** One Adam update of p, m, v in place from g (all the same length). */
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, c: AdamCoefs): void;
  /** e <- decay e + (1 - decay) p, in place. */
  ema(e: Float32Array, p: Float32Array, decay: number): void;
}

let cached: SimdKernels | null | undefined;

/** The WebAssembly kernels, or null where the runtime has no WebAssembly SIMD. */
export function simdKernels(): SimdKernels | null {
  if (cached !== undefined) return cached;
  cached = null;
  const bytes = moduleBytes();
  if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) return cached;
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes));
  const ex = inst.exports as {
    adam: (
      n: number,
      b1: number,
      c1: number,
      b2: number,
      c2: number,
      a: number,
      e: number,
      k: number,
    ) => void;
    ema: (n: number, d: number, c: number) => void;
    memory: WebAssembly.Memory;
  };
  const mem = new Float32Array(ex.memory.buffer);
  const region = (r: number) => mem.subarray(r * CHUNK, (r + 1) * CHUNK);
  const [r0, r1, r2, r3] = [region(0), region(1), region(2), region(3)];
  cached = {
    adam(p, g, m, v, c) {
      const [c1, c2] = [1 - c.beta1, 1 - c.beta2];
      for (let s = 0; s < p.length; s += CHUNK) {
        const e = Math.min(s + CHUNK, p.length);
        r0.set(p.subarray(s, e));
        r1.set(g.subarray(s, e));
        r2.set(m.subarray(s, e));
        r3.set(v.subarray(s, e));
        ex.adam(e - s, c.beta1, c1, c.beta2, c2, c.alpha, c.eps, c.clip);
        p.set(r0.subarray(0, e - s), s);
        m.set(r2.subarray(0, e - s), s);
        v.set(r3.subarray(0, e - s), s);
      }
    },
    ema(ePar, p, decay) {
      const c = 1 - decay;
      for (let s = 0; s < p.length; s += CHUNK) {
        const e = Math.min(s + CHUNK, p.length);
        r0.set(ePar.subarray(s, e));
        r1.set(p.subarray(s, e));
        ex.ema(e - s, decay, c);
        ePar.set(r0.subarray(0, e - s), s);
      }
    },
  };
  return cached;
}
