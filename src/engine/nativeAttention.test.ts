// The native Attention kernel and its gradient (native/attention.cc, Graph.attentionFused, graph pass
// fuse-attention) against softmax attention written out in float64: outputs and the gradients of q, k and v
// for a seed dO, on S's shape (256 queries: several blocks and a shorter last one), on heads whose
// channel counts differ between keys and values, and on the smallest grid the kernel takes (4x4).

import { describe, it } from 'node:test';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { nativeEngine, nativeKernelNames } from './native.js';

const engine = nativeEngine();
const skip = !engine
  ? 'the native binding is not built (no C++ compiler at npm ci)'
  : !nativeKernelNames().includes('Attention')
    ? 'this build has no Attention kernel'
    : false;

interface Reference {
  o: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** Softmax attention and its gradients in float64, per sample and head, on [N, C, L] tensors. */
function reference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  dO: Float32Array,
  dims: { n: number; c: number; cv: number; l: number; heads: number; scale: number },
): Reference {
  const { n, c, cv, l, heads, scale } = dims;
  const [d, dv] = [c / heads, cv / heads];
  const r: Reference = {
    o: new Float64Array(n * cv * l),
    dq: new Float64Array(n * c * l),
    dk: new Float64Array(n * c * l),
    dv: new Float64Array(n * cv * l),
  };
  const p = new Float64Array(l * l);
  const dp = new Float64Array(l * l);
  for (let b = 0; b < n; b++)
    for (let h = 0; h < heads; h++) {
      const qk = (ch: number, i: number) => (b * c + h * d + ch) * l + i; // q, k, dq, dk index
      const vo = (ch: number, i: number) => (b * cv + h * dv + ch) * l + i; // v, o, dO, dv index
      for (let i = 0; i < l; i++) {
        let max = -Infinity;
        for (let j = 0; j < l; j++) {
          let s = 0;
          for (let ch = 0; ch < d; ch++) s += q[qk(ch, i)]! * k[qk(ch, j)]!;
          p[i * l + j] = scale * s;
          max = Math.max(max, scale * s);
        }
        let sum = 0;
        for (let j = 0; j < l; j++) sum += p[i * l + j] = Math.exp(p[i * l + j]! - max);
        for (let j = 0; j < l; j++) p[i * l + j]! /= sum;
      }
      for (let ch = 0; ch < dv; ch++)
        for (let i = 0; i < l; i++) {
          let s = 0;
          for (let j = 0; j < l; j++) s += p[i * l + j]! * v[vo(ch, j)]!;
          r.o[vo(ch, i)] = s;
        }
      // dv = dO p, dp = dO^T v, ds = p (dp - rowsum(p dp)), dq = scale k ds^T, dk = scale q ds
      for (let ch = 0; ch < dv; ch++)
        for (let j = 0; j < l; j++) {
          let s = 0;
          for (let i = 0; i < l; i++) s += dO[vo(ch, i)]! * p[i * l + j]!;
          r.dv[vo(ch, j)] = s;
        }
      for (let i = 0; i < l; i++) {
        let rowDot = 0;
        for (let j = 0; j < l; j++) {
          let s = 0;
          for (let ch = 0; ch < dv; ch++) s += dO[vo(ch, i)]! * v[vo(ch, j)]!;
          dp[i * l + j] = s;
          rowDot += p[i * l + j]! * s;
        }
        for (let j = 0; j < l; j++) dp[i * l + j] = p[i * l + j]! * (dp[i * l + j]! - rowDot); // ds
      }
      for (let ch = 0; ch < d; ch++)
        for (let i = 0; i < l; i++) {
          let sq = 0;
          let sk = 0;
          for (let j = 0; j < l; j++) {
            sq += dp[i * l + j]! * k[qk(ch, j)]!;
            sk += dp[j * l + i]! * q[qk(ch, j)]!;
          }
          r.dq[qk(ch, i)] = scale * sq;
          r.dk[qk(ch, i)] = scale * sk;
        }
    }
  return r;
}

describe('native Attention and AttentionGrad', { skip }, () => {
  for (const [n, heads, c, cv, side, scale, why] of [
    [3, 1, 64, 64, 16, 0.125, "S's attention: 256 queries, blocks of 48 and a shorter last one"],
    [2, 2, 32, 48, 12, 1, 'two heads, 16 key and 24 value channels each, 144 queries, scale 1 (folded)'],
    [5, 1, 8, 16, 4, 0.3, 'the smallest: 16 queries, 8 channels'],
  ] as [number, number, number, number, number, number, string][]) {
    it(`${why}: o, dq, dk, dv match float64`, async () => {
      const l = side * side;
      const rng = new Rng(n * 31 + c);
      const t = (ch: number) => rng.normalArray(n * ch * l);
      const [q, k, v, dO] = [t(c), t(c), t(cv), t(cv)];
      const g = new Graph();
      const [qi, ki, vi, di] = [
        g.input('q', [n, c, l]),
        g.input('k', [n, c, l]),
        g.input('v', [n, cv, l]),
        g.input('dO', [n, cv, l]),
      ];
      const o = g.attentionFused(qi, ki, vi, heads, scale);
      const [dq, dk, dv] = grad(g, o, [qi, ki, vi], di);
      const outputs = { o, dq: dq!, dk: dk!, dv: dv! };
      const s = await engine!.createSession(toOnnx(g, { outputs, params: 'initializer' }), { threads: 2 });
      try {
        const got = await s.run({
          q: { data: q, shape: [n, c, l] },
          k: { data: k, shape: [n, c, l] },
          v: { data: v, shape: [n, cv, l] },
          dO: { data: dO, shape: [n, cv, l] },
        });
        const want = reference(q, k, v, dO, { n, c, cv, l, heads, scale });
        for (const name of ['o', 'dq', 'dk', 'dv'] as const)
          allClose(got[name]!.data, want[name], 2e-4, 2e-4, `Attention ${name}`);
      } finally {
        await s.release();
      }
    });
  }
});
