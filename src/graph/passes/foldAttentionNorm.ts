// fold-attention-norm: single-head self-attention on h = GroupNorm(x) = gamma * xhat + beta with constant
// weights -> the GroupNorm's affine and the four projections folded in float64 into two [C, C] matrices
// acting on xhat (2 weight matmuls instead of 4, no affine pass). With Q = s W_k^T W_q (s the attention
// scale) the scores are (Q h_i + s W_k^T b_q) . h_j plus terms the same for every key j (the key bias's,
// and the beta side's), which softmax ignores; softmax rows sum to 1, so the value path is
// (W_o W_v diag gamma) xhat w^T + (W_o W_v beta + W_o b_v + b_o). Exact to rounding; inference graphs only.

import type { AttentionOf, GroupNormOf, Node, Value } from '../graph.js';
import {
  constant32,
  constantOf,
  type GraphPass,
  liveNodes,
  matchProjection,
  matmul64,
  type PassContext,
  type Projection,
  transpose64,
} from './util.js';

interface Match {
  readonly out: Projection;
  readonly attn: AttentionOf;
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly gn: GroupNormOf;
}

/** The output projection rooted at n, of single-head attention whose q, k, v project one GroupNorm. */
function match(n: Node, biased: Set<number>): Match | undefined {
  if (n.domain || (n.op !== 'Add' && n.op !== 'MatMul')) return undefined;
  const out = matchProjection(n.outputs[0]!);
  // A W_o @ attention that a bias Add reads is matched at that Add.
  if (!out || (n.op === 'MatMul' && biased.has(out.wx.id))) return undefined;
  const attn = out.x.producer?.meta?.attention as AttentionOf | undefined;
  if (attn?.heads !== 1) return undefined;
  const [q, k, v] = [attn.q, attn.k, attn.v].map(matchProjection);
  if (!q || !k || !v || q.x !== k.x || q.x !== v.x) return undefined;
  const h = q.x; // [N, C, L]
  const r = h.producer;
  if (r?.op !== 'Reshape' || r.domain) return undefined;
  const gn = r.inputs[0]!.producer?.meta?.groupNorm as GroupNormOf | undefined;
  if (!gn || gn.x.shape[0] !== h.shape[0] || gn.x.shape[1] !== h.shape[1]) return undefined;
  return { out, attn, q, k, v, gn };
}

function fold(ctx: PassContext, n: Node, m: Match): boolean {
  const c = m.gn.x.shape[1]!;
  const data = (u: Value | undefined, len: number) => (u ? constantOf(ctx, u) : new Float32Array(len));
  const [cq, co] = [m.q.w.shape[0]!, m.out.w.shape[0]!];
  const cv = m.v.w.shape[0]!;
  const wq = data(m.q.w, 0);
  const wk = data(m.k.w, 0);
  const wv = data(m.v.w, 0);
  const wo = data(m.out.w, 0);
  const bq = data(m.q.b, cq);
  const bv = data(m.v.b, cv);
  const bo = data(m.out.b, co);
  const gam = data(m.gn.gamma, c);
  const bet = data(m.gn.beta, c);
  if (!wq || !wk || !wv || !wo || !bq || !bv || !bo || !gam || !bet) return false;
  const s = m.attn.scale;
  const wkT = transpose64(wk, cq, c); // [C, Cq]
  const qwh = matmul64(wkT, wq, c, cq, c).map((x) => x * s); // [C, C], acts on h
  const qbh = matmul64(wkT, bq, c, cq, 1).map((x) => x * s); // [C, 1]
  const owh = matmul64(wo, wv, co, cv, c); // [Co, C], acts on h
  const qbeta = matmul64(qwh, bet, c, c, 1); // [C, 1]
  const obeta = matmul64(owh, bet, co, c, 1); // [Co, 1]
  const qw = qwh.map((x, ij) => gam[Math.floor(ij / c)]! * x * gam[ij % c]!); // diag(g) Q diag(g)
  const qb = qbh.map((x, i) => gam[i]! * (x + qbeta[i]!)); // g * (Q beta + Q_b)
  const ow = owh.map((x, ij) => x * gam[ij % c]!); // W_o W_v diag(g)
  const ob = matmul64(wo, bv, co, cv, 1).map((x, i) => x + bo[i]! + obeta[i]!);
  const g = ctx.graph;
  const [nb, , l] = m.q.x.shape as [number, number, number];
  g.replaceNode(n, () => {
    const xg = g.reshape(m.gn.x, [nb, m.gn.groups, -1]); // [N, G, C/G * L]
    const xhat = g.reshape(g.normalizeLastAxis(xg, m.gn.eps), [nb, c, l]); // [N, C, L]
    const q = g.add(g.matmul(constant32(g, qw, [c, c]), xhat), constant32(g, qb, [c, 1])); // [N, C, L]
    const v = g.matmul(constant32(g, ow, [co, c]), xhat); // [N, Co, L]
    return g.add(g.attention(q, xhat, v, 1, 1), constant32(g, ob, [co, 1])); // [N, Co, L]
  });
  return true;
}

export const foldAttentionNorm: GraphPass = {
  name: 'fold-attention-norm',
  stage: 'forward',
  scope: 'constant-weights',
  summary: "single-head attention's GroupNorm affine and q/k/v/out projections folded into two matrices",
  run(ctx) {
    const nodes = liveNodes(ctx);
    const biased = new Set<number>();
    for (const n of nodes) {
      const p = n.op === 'Add' ? matchProjection(n.outputs[0]!) : undefined;
      if (p?.b) biased.add(p.wx.id);
    }
    let count = 0;
    for (const n of nodes) {
      const m = match(n, biased);
      if (m && fold(ctx, n, m)) count++;
    }
    return count;
  },
};
