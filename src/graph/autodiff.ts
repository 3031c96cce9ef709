// Reverse-mode differentiation at graph-build time: walk the nodes that lead to `y` backwards and
// append, for each, the ONNX nodes of its gradient rule. The result is one graph holding the
// forward pass and the gradients of every requested leaf, which ONNX Runtime then runs as a whole.
//
// Conv rules were chosen by measurement (issue #2): input gradient as a Conv with the kernel flipped
// and transposed in-graph (stride 1) or a ConvTranspose (stride 2); weight gradient as an im2col of
// x, or of dy where the conv has fewer output than input channels (a plain one-hot Conv, or a GEMM
// with a 0/1 selection matrix for small images), then one batched MatMul per sample. Sums over
// leading axes (bias gradients, the batch sum of the weight gradient) are ones-row MatMuls, which ORT
// runs faster. Composites can carry one fused rule (meta.fused: GroupNorm's backward in 7 passes).

import {
  FUSED_DOMAIN,
  type Fused,
  type Graph,
  GraphError,
  type Node,
  shapeStr,
  type Value,
} from './graph.js';

type Rule = (g: Graph, node: Node, dy: Value) => (Value | null)[];

/** Gradients of scalar y (shape [] or [1]) with respect to each of `wrt` (zeros where unreachable). */
export function grad(g: Graph, y: Value, wrt: readonly Value[], seed?: Value): Value[] {
  if (y.shape.reduce((a, b) => a * b, 1) !== 1 && !seed) {
    throw new GraphError('grad', `output ${shapeStr(y.shape)} is not a scalar; pass a seed gradient`);
  }
  // Nodes that y depends on (reverse topological order), and the values that depend on a wanted leaf.
  const order = g.liveNodes([y]).reverse();
  const dependsOnWanted = new Set<number>(wrt.map((v) => v.id));
  for (const n of g.nodes) {
    if (n.inputs.some((v) => dependsOnWanted.has(v.id))) for (const o of n.outputs) dependsOnWanted.add(o.id);
  }
  const firstNew = g.nodes.length;
  const grads = new Map<number, Value>();
  grads.set(y.id, seed ?? g.constant(new Float32Array(y.shape.reduce((a, b) => a * b, 1)).fill(1), y.shape));
  for (const node of order) {
    // Multi-output nodes (LayerNormalization's saved statistics) are differentiated through output 0 only.
    const out = node.outputs[0]!;
    if (node.outputs.slice(1).some((o) => grads.has(o.id))) {
      throw new GraphError(node.op, 'only the first output of a multi-output node can be differentiated');
    }
    const dy = grads.get(out.id);
    if (!dy) continue;
    if (!node.inputs.some((v) => dependsOnWanted.has(v.id))) continue;
    const fused = node.meta?.fused as Fused | undefined;
    const rule = fused ? FUSED_RULES[fused.kind] : RULES[node.op];
    if (!rule) throw new GraphError(node.op, 'has no gradient rule');
    const dxs = g.scope(`grad/${fused?.kind ?? node.op}`, () => rule(g, node, dy));
    (fused?.inputs ?? node.inputs).forEach((x, i) => {
      const dx = dxs[i];
      if (!dx || !dependsOnWanted.has(x.id)) return;
      if (dx.shape.join(',') !== x.shape.join(',')) {
        throw new GraphError(
          node.op,
          `gradient rule gave ${shapeStr(dx.shape)} for input ${shapeStr(x.shape)}`,
        );
      }
      const prev = grads.get(x.id);
      grads.set(x.id, prev ? g.add(prev, dx) : dx);
    });
  }
  for (const n of g.nodes.slice(firstNew)) g.gradientNodes.add(n);
  return wrt.map(
    (v) => grads.get(v.id) ?? g.constant(new Float32Array(v.shape.reduce((a, b) => a * b, 1)), v.shape),
  );
}

/** Sum a broadcast gradient back down to `shape`. */
export function unbroadcast(g: Graph, dy: Value, shape: readonly number[]): Value {
  if (dy.shape.join(',') === shape.join(',')) return dy;
  const lead = dy.shape.length - shape.length;
  const axes: number[] = [];
  dy.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  if (axes.every((a, i) => a === i)) return g.reshape(sumLeading(g, dy, axes.length), shape);
  return g.reshape(g.reduceSum(dy, axes, true), shape);
}

/**
 * Sum over the first k axes as a ones-row MatMul: [1, M] @ [M, rest]. ONNX Runtime's ReduceSum over
 * leading axes (bias gradients of the attention projections) is 3-4x slower than this GEMV.
 */
export function sumLeading(g: Graph, x: Value, k: number): Value {
  const m = x.shape.slice(0, k).reduce((a, b) => a * b, 1);
  const rest = x.shape.slice(k);
  const n = rest.reduce((a, b) => a * b, 1);
  const s = g.matmul(g.constant(new Float32Array(m).fill(1), [1, m]), g.reshape(x, [m, n])); // [1, rest]
  return g.reshape(s, rest);
}

function intsOf(g: Graph, v: Value): number[] {
  const leaf = g.leaves.find((l) => l.value.id === v.id);
  if (leaf?.kind !== 'const') throw new GraphError('grad', `expected a constant operand, got ${v.name}`);
  return Array.from(leaf.data as ArrayLike<number | bigint>, Number);
}

/** The fused GroupNorm + SiLU node n's gradient at input x: the native GroupNormSiluGrad -> dx, dgamma, dbeta. */
function groupNormSiluGrad(g: Graph, n: Node, dy: Value, x: Value): Value[] {
  const [, gamma, beta] = n.inputs as [Value, Value, Value];
  const { groups, epsilon } = n.attrs;
  return g.node(
    'GroupNormSiluGrad',
    [dy, x, gamma, beta],
    [x.shape, gamma.shape, beta.shape],
    { groups: groups!, epsilon: epsilon! },
    undefined,
    undefined,
    FUSED_DOMAIN,
  );
}

const RULES: Record<string, Rule> = {
  Identity: (_g, n, dy) => [n.meta?.stopGradient ? null : dy], // Graph.stopGradient: no gradient
  // The native engine's fused GroupNorm + SiLU (NCHW): its backward is that engine's one kernel too.
  GroupNormSilu: (g, n, dy) => {
    if (n.domain !== FUSED_DOMAIN || n.attrs.block)
      throw new GraphError(n.op, 'only the NCHW fused op has a gradient');
    return groupNormSiluGrad(g, n, dy, n.inputs[0]!);
  },
  // SiLU(GroupNorm(x + s)) (graph pass fuse-shift-groupnorm-silu): the sum made again here (the forward
  // never writes it), then GroupNormSilu's gradient; ds [N, C] is dx summed over the spatial axes.
  GroupNormSiluShift: (g, n, dy) => {
    if (n.attrs.block) throw new GraphError(n.op, 'only the NCHW fused op has a gradient');
    const [x, , , shift] = n.inputs as [Value, Value, Value, Value];
    const [nb, c] = x.shape as [number, number];
    const xs = g.add(x, g.reshape(shift, [nb, c, ...x.shape.slice(2).map(() => 1)])); // [N, C, H, W]
    const [dx, dgamma, dbeta] = groupNormSiluGrad(g, n, dy, xs);
    return [dx, dgamma, dbeta, g.reshape(unbroadcast(g, dx!, [nb, c, 1, 1]), [nb, c])];
  },
  // The native engine's attention (graph pass fuse-attention): its gradient is that engine's one kernel too,
  // which makes the softmax weights again from the forward's log-sum-exp (output 1) instead of keeping them.
  Attention: (g, n, dy) => {
    if (n.domain !== FUSED_DOMAIN) throw new GraphError(n.op, 'only the fused op has a gradient');
    const [q, k, v] = n.inputs as [Value, Value, Value];
    const [o, lse] = n.outputs as [Value, Value];
    return g.node(
      'AttentionGrad',
      [q, k, v, o, lse, dy],
      [q.shape, k.shape, v.shape],
      { ...n.attrs },
      undefined,
      undefined,
      FUSED_DOMAIN,
    );
  },
  // The native engine's dropout (graph pass kernel-dropout): y = x * mask, so dx = dy * mask, the same
  // kernel with the same key and site (the mask is made again, never kept).
  DropoutMul: (g, n, dy) => {
    if (n.domain !== FUSED_DOMAIN) throw new GraphError(n.op, 'only the fused op has a gradient');
    const key = n.inputs[1]!;
    return [
      g.node('DropoutMul', [dy, key], [dy.shape], { ...n.attrs }, undefined, undefined, FUSED_DOMAIN)[0]!,
      null,
    ];
  },
  Add: (g, n, dy) => [unbroadcast(g, dy, n.inputs[0]!.shape), unbroadcast(g, dy, n.inputs[1]!.shape)],
  Sub: (g, n, dy) => [unbroadcast(g, dy, n.inputs[0]!.shape), unbroadcast(g, g.neg(dy), n.inputs[1]!.shape)],
  Mul: (g, n, dy) => {
    const [a, b] = n.inputs as [Value, Value];
    if (n.meta?.silu) {
      // y = x s(x): dy/dx = s + y (1 - s), four passes instead of six through Mul and Sigmoid.
      const y = n.outputs[0]!;
      return [g.mul(dy, g.add(b, g.mul(y, g.sub(g.scalar(1), b)))), null];
    }
    if (a.id === b.id) return [g.mul(dy, g.scale(a, 2)), null];
    return [unbroadcast(g, g.mul(dy, b), a.shape), unbroadcast(g, g.mul(dy, a), b.shape)];
  },
  Div: (g, n, dy) => {
    const [a, b] = n.inputs as [Value, Value];
    const y = n.outputs[0]!;
    const da = g.div(dy, b);
    return [unbroadcast(g, da, a.shape), unbroadcast(g, g.neg(g.mul(da, y)), b.shape)];
  },
  Neg: (g, _n, dy) => [g.neg(dy)],
  Exp: (g, n, dy) => [g.mul(dy, n.outputs[0]!)],
  Log: (g, n, dy) => [g.div(dy, n.inputs[0]!)],
  Sqrt: (g, n, dy) => [g.div(g.scale(dy, 0.5), n.outputs[0]!)],
  Sin: (g, n, dy) => [g.mul(dy, g.cos(n.inputs[0]!))],
  Cos: (g, n, dy) => [g.neg(g.mul(dy, g.sin(n.inputs[0]!)))],
  Tanh: (g, n, dy) => {
    const y = n.outputs[0]!;
    return [g.mul(dy, g.sub(g.scalar(1), g.mul(y, y)))];
  },
  Sigmoid: (g, n, dy) => {
    const y = n.outputs[0]!;
    return [g.mul(dy, g.mul(y, g.sub(g.scalar(1), y)))];
  },
  MatMul: (g, n, dy) => {
    const [a, b] = n.inputs as [Value, Value];
    const tr = (v: Value) => {
      const r = v.shape.length;
      const perm = [...Array(r).keys()];
      perm[r - 2] = r - 1;
      perm[r - 1] = r - 2;
      return g.transpose(v, perm);
    };
    return [unbroadcast(g, g.matmul(dy, tr(b)), a.shape), unbroadcast(g, g.matmul(tr(a), dy), b.shape)];
  },
  Reshape: (g, n, dy) => [g.reshape(dy, n.inputs[0]!.shape), null],
  Transpose: (g, n, dy) => {
    const perm = n.attrs.perm as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    // dy = a @ b, fresh from a MatMul rule (attention's softmax weights): (a @ b)^T = b^T @ a^T, whose
    // transposes ONNX Runtime folds into the product, instead of materialising dy^T. (Were that
    // product also used elsewhere it would be computed twice; gradients of single-use values are not.)
    const r = perm.length;
    const swapsLast = r >= 2 && perm.every((p, i) => (i < r - 2 ? p === i : p === 2 * r - 3 - i));
    if (swapsLast && dy.producer?.op === 'MatMul' && dy.producer.inputs.every((v) => v.shape.length === r)) {
      const [a, b] = dy.producer.inputs as [Value, Value];
      return [g.matmul(g.transpose(b, perm), g.transpose(a, perm))];
    }
    return [g.transpose(dy, inv)];
  },
  Concat: (g, n, dy) => {
    const axis = n.attrs.axis as number;
    let off = 0;
    return n.inputs.map((x) => {
      const d = x.shape[axis]!;
      const s = g.slice(dy, [axis], [off], [off + d]);
      off += d;
      return s;
    });
  },
  Pad: (g, n, dy) => {
    const x = n.inputs[0]!;
    const pads = intsOf(g, n.inputs[1]!);
    const r = x.shape.length;
    const axes = [...Array(r).keys()];
    return [
      g.slice(
        dy,
        axes,
        pads.slice(0, r),
        axes.map((a) => pads[a]! + x.shape[a]!),
      ),
      null,
    ];
  },
  Slice: (g, n, dy) => {
    const x = n.inputs[0]!;
    const starts = intsOf(g, n.inputs[1]!);
    const axes = intsOf(g, n.inputs[3]!);
    const steps = intsOf(g, n.inputs[4]!);
    let d = dy;
    const r = x.shape.length;
    const before = new Array(r).fill(0);
    const after = new Array(r).fill(0);
    const flipAxes: number[] = [];
    axes.forEach((a, i) => {
      const dim = x.shape[a]!;
      const len = dy.shape[a]!;
      const st = starts[i]! < 0 ? starts[i]! + dim : starts[i]!;
      if (steps[i] === 1) {
        const s = Math.min(Math.max(st, 0), dim);
        before[a] = s;
        after[a] = dim - s - len;
      } else {
        const s = Math.min(Math.max(st, -1), dim - 1);
        flipAxes.push(a);
        before[a] = s - len + 1;
        after[a] = dim - 1 - s;
      }
    });
    if (flipAxes.length) {
      d = g.slice(
        d,
        flipAxes,
        flipAxes.map(() => -1),
        flipAxes.map(() => -(2 ** 31)),
        flipAxes.map(() => -1),
      );
    }
    return [g.pad(d, [...before, ...after]), null, null, null, null];
  },
  Expand: (g, n, dy) => [unbroadcast(g, dy, n.inputs[0]!.shape), null],
  ReduceSum: (g, n, dy) => {
    const x = n.inputs[0]!;
    const axes = intsOf(g, n.inputs[1]!);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return [g.expand(g.reshape(dy, kept), x.shape), null];
  },
  Softmax: (g, n, dy) => {
    const y = n.outputs[0]!;
    const axis = n.attrs.axis as number;
    const s = g.reduceSum(g.mul(dy, y), [axis], true);
    return [g.mul(y, g.sub(dy, s))];
  },
  // y = scale * xhat + bias per channel, xhat = (x - mean) / sigma over the spatial axes.
  InstanceNormalization: (g, n, dy) => {
    const [x, scale] = n.inputs as [Value, Value, Value];
    const eps = (n.attrs.epsilon as { floats: number[] }).floats[0]!;
    const axes = x.shape.slice(2).map((_, i) => i + 2);
    const cshape = [x.shape[1]!, ...axes.map(() => 1)]; // [C, 1, ...]
    const mean = g.reduceMean(x, axes);
    const xc = g.sub(x, mean);
    const rstd = g.div(g.scalar(1), g.sqrt(g.add(g.reduceMean(g.mul(xc, xc), axes), g.scalar(eps))));
    const xhat = g.mul(xc, rstd);
    const dxhat = g.mul(dy, g.reshape(scale, cshape));
    const mdy = g.reduceMean(dxhat, axes);
    const mdyy = g.reduceMean(g.mul(dxhat, xhat), axes);
    const dx = g.mul(rstd, g.sub(g.sub(dxhat, mdy), g.mul(xhat, mdyy)));
    const perChannel = (v: Value) => g.reshape(sumLeading(g, g.reduceSum(v, axes, false), 1), [x.shape[1]!]);
    return [dx, perChannel(g.mul(dy, xhat)), perChannel(dy)];
  },
  // Only the unit-scale, no-bias form that normalizeLastAxis emits; outputs[2] is 1/sigma [..., 1].
  LayerNormalization: (g, n, dy) => {
    const y = n.outputs[0]!;
    const rstd = n.outputs[2]!;
    const axis = [y.shape.length - 1];
    const mdy = g.reduceMean(dy, axis);
    const mdyy = g.reduceMean(g.mul(dy, y), axis);
    return [g.mul(g.sub(g.sub(dy, mdy), g.mul(y, mdyy)), rstd), null];
  },
  // Nearest 2x upsampling: each input pixel receives the sum of its 2x2 block of dy, as 4 x AveragePool
  // (exact: the average and the factor 4 are powers of two), twice as fast in ORT as ReduceSum over
  // the block axes of [N, C, H, 2, W, 2].
  Resize: (g, n, dy) => {
    const [nn, c, h, w] = n.inputs[0]!.shape as [number, number, number, number];
    const attrs = { kernel_shape: [2, 2], strides: [2, 2] };
    const avg = g.node('AveragePool', [dy], [[nn, c, h, w]], attrs)[0]!;
    return [g.scale(avg, 4), null, null];
  },
  Conv: (g, n, dy) => {
    const [x, w, b] = n.inputs as [Value, Value, Value | undefined];
    const strides = n.attrs.strides as number[];
    const pads = n.attrs.pads as [number, number, number, number];
    return [
      convInputGrad(g, dy, x, w, strides, pads),
      convWeightGrad(g, dy, x, w, strides, pads),
      b ? sumLeading(g, g.reduceSum(dy, [2, 3], false), 1) : null, // [N, Cout] -> [Cout]
    ];
  },
};

const FUSED_RULES: Record<Fused['kind'], Rule> = {
  // GroupNorm y = gamma xhat + beta, xhat normalised over each group's C/G*H*W values (1/sigma saved).
  // With per-(n, c) sums S0 = sum dy and S1 = sum dy xhat over H*W, the input gradient is an affine map
  // of dy and xhat per (n, c): dx = rstd (gamma dy - sum_g(gamma S0) / M - xhat sum_g(gamma S1) / M),
  // M = C/G*H*W and sum_g over the group's channels. It touches the activations in 7 passes where the
  // op-by-op rules (Add, Mul, LayerNormalization) take 11.
  groupNorm: (g, n, dy) => {
    const { inputs, saved, attrs } = n.meta!.fused as Fused;
    const [x, gamma] = inputs as [Value, Value, Value];
    const { y, rstd } = saved as { y: Value; rstd: Value };
    const groups = attrs.groups!;
    const [b, c] = x.shape as [number, number];
    const cpg = c / groups;
    const hw = x.shape.slice(2).reduce((a, d) => a * d, 1);
    // In the view [N, G, C/G, H*W] every per-channel and per-group factor broadcasts as it is.
    const view = [b, groups, cpg, hw];
    const dy4 = g.reshape(dy, view);
    const y4 = g.reshape(y, view);
    const gam = g.reshape(gamma, [groups, cpg, 1]);
    const s1 = g.reduceSum(g.mul(dy4, y4), [3]); // [N, G, C/G, 1]
    const s0 = g.reduceSum(dy4, [3]); // [N, G, C/G, 1]
    const r = g.reshape(rstd, [b, groups, 1, 1]);
    const rm = g.scale(r, -1 / (cpg * hw)); // -rstd / M
    const a = g.mul(r, gam); // [N, G, C/G, 1]
    const off = g.mul(rm, g.reduceSum(g.mul(s0, gam), [2])); // [N, G, 1, 1]
    const slope = g.mul(rm, g.reduceSum(g.mul(s1, gam), [2])); // [N, G, 1, 1]
    const dx = g.add(g.add(g.mul(dy4, a), g.mul(y4, slope)), off); // [N, G, C/G, H*W]
    const perChannel = (v: Value) => g.reshape(sumLeading(g, g.reshape(v, [b, c]), 1), [c]);
    return [g.reshape(dx, x.shape), perChannel(s1), perChannel(s0)];
  },
};

function convInputGrad(
  g: Graph,
  dy: Value,
  x: Value,
  w: Value,
  strides: number[],
  pads: readonly number[],
): Value {
  const [, , kh, kw] = w.shape as [number, number, number, number];
  const [sh, sw] = strides as [number, number];
  if (sh === 1 && sw === 1) {
    // Full correlation with the flipped, transposed kernel.
    const wf = g.flippedKernel(w); // [Cin, Cout, kh, kw]
    const [pt, pl, pb, pr] = pads as [number, number, number, number];
    return g.conv(dy, wf, undefined, { pads: [kh - 1 - pt, kw - 1 - pl, kh - 1 - pb, kw - 1 - pr] });
  }
  const [pt, pl, pb, pr] = pads as [number, number, number, number];
  const [, , h, wd] = x.shape as [number, number, number, number];
  const [, , oh, ow] = dy.shape as [number, number, number, number];
  const oph = h - (sh * (oh - 1) + kh - pt - pb);
  const opw = wd - (sw * (ow - 1) + kw - pl - pr);
  return g.convTranspose(dy, w, { strides: [sh, sw], pads: [pt, pl, pb, pr], outputPadding: [oph, opw] });
}

/**
 * im2col of v [B, 1, H, W]: [B, kh*kw, OH*OW], tap k = (i, j) of every output position (with `flip`,
 * tap (kh-1-i, kw-1-j)). Small images (H*W <= 64) take one GEMM with a constant 0/1 selection matrix
 * [H*W, kh*kw*OH*OW]; larger ones the native engine's Im2col kernel where the graph may use it
 * (Graph.fused), else one Conv with one-hot kernels (faster in ONNX Runtime than Pad + kh*kw Slices +
 * Concat), whose kernel is an opaque constant so ORT runs the plain 9-channel conv: its blocked rewrite
 * pads the outputs to 16 channels and reorders them back (14% slower S step).
 */
function im2col(
  g: Graph,
  v: Value,
  kh: number,
  kw: number,
  [sh, sw]: readonly [number, number],
  pads: readonly [number, number, number, number],
  flip: boolean,
): Value {
  const [b, , h, w] = v.shape as [number, number, number, number];
  const [pt, pl, pb, pr] = pads;
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
  const ow = Math.floor((w + pl + pr - kw) / sw) + 1;
  const k = kh * kw;
  const tap = (q: number) => (flip ? k - 1 - q : q);
  if (h * w <= 64) {
    const sel = g.memo(`im2col|${[h, w, kh, kw, sh, sw, ...pads, flip].join(',')}`, () => {
      const cols = k * oh * ow;
      const m = new Float32Array(h * w * cols); // [H*W, kh*kw*OH*OW]
      for (let q = 0; q < k; q++) {
        const [ti, tj] = [Math.floor(tap(q) / kw), tap(q) % kw];
        for (let y = 0; y < oh; y++)
          for (let x = 0; x < ow; x++) {
            const [sy, sx] = [y * sh + ti - pt, x * sw + tj - pl];
            if (sy >= 0 && sy < h && sx >= 0 && sx < w) m[(sy * w + sx) * cols + (q * oh + y) * ow + x] = 1;
          }
      }
      return g.constant(m, [h * w, cols]);
    });
    return g.reshape(g.matmul(g.reshape(v, [b, h * w]), sel), [b, k, oh * ow]);
  }
  if (g.fused.includes('Im2col')) {
    // The native engine's kernel: a strided copy, 1.7x as fast as the one-hot Conv below
    // (the selection GEMM above stays faster on small images).
    const attrs = { kh, kw, sh, sw, pt, pl, pb, pr, flip: flip ? 1 : 0 };
    return g.node('Im2col', [v], [[b, k, oh * ow]], attrs, undefined, undefined, FUSED_DOMAIN)[0]!;
  }
  const eye = new Float32Array(k * k);
  for (let q = 0; q < k; q++) eye[q * k + tap(q)] = 1;
  const patches = g.conv(v, g.opaqueConstant(eye, [k, 1, kh, kw]), undefined, {
    strides: [sh, sw],
    pads: [pt, pl, pb, pr],
  }); // [B, kh*kw, OH, OW]
  return g.reshape(patches, [b, k, oh * ow]);
}

/**
 * The fewest input or output channels of a conv whose weight gradient the native ConvWeightGrad kernel computes:
 * it transposes one side per group of samples, which a 1-channel side (the U-Net's first and last convs) does
 * not repay; the per-sample GEMMs below are faster there.
 */
const CONV_WEIGHT_GRAD_MIN_CHANNELS = 16;

/**
 * A conv's weight gradient. Where its im2col patches would exceed Graph.maxPatchBytes, a slice of the batch
 * at a time, the slices' gradients added: the step's peak memory, reached early in the backward beside every
 * kept activation, then holds one slice's patches instead of the whole batch's.
 */
function convWeightGrad(
  g: Graph,
  dy: Value,
  x: Value,
  w: Value,
  strides: number[],
  pads: readonly number[],
): Value {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [o, , kh, kw] = w.shape as [number, number, number, number];
  const [, , oh, ow] = dy.shape as [number, number, number, number];
  if (g.fused.includes('ConvWeightGrad') && Math.min(c, o) >= CONV_WEIGHT_GRAD_MIN_CHANNELS) {
    // The native kernel: the product over the whole batch, register-tiled, no patches in memory.
    const [sh, sw] = strides as [number, number];
    const [pt, pl] = pads as [number, number];
    const attrs = { kh, kw, sh, sw, pt, pl };
    return g.node('ConvWeightGrad', [x, dy], [[o, c, kh, kw]], attrs, undefined, undefined, FUSED_DOMAIN)[0]!;
  }
  const shiftDy = strides[0] === 1 && strides[1] === 1 && kh * kw > 1 && c > o;
  const patchBytes = 4 * n * kh * kw * (shiftDy ? o * h * wd : c * oh * ow);
  const pieces = kh * kw > 1 ? Math.min(n, Math.ceil(patchBytes / g.maxPatchBytes)) : 1;
  if (pieces <= 1) return convWeightGradOf(g, dy, x, w, strides, pads);
  const size = Math.ceil(n / pieces);
  let sum: Value | undefined;
  for (let from = 0; from < n; from += size) {
    const to = Math.min(n, from + size);
    const part = convWeightGradOf(
      g,
      g.slice(dy, [0], [from], [to]),
      g.slice(x, [0], [from], [to]),
      w,
      strides,
      pads,
    );
    sum = sum ? g.add(sum, part) : part;
  }
  return sum!;
}

/** The weight gradient of a conv over the whole batch of x and dy. */
function convWeightGradOf(
  g: Graph,
  dy: Value,
  x: Value,
  w: Value,
  strides: number[],
  pads: readonly number[],
): Value {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [o, , kh, kw] = w.shape as [number, number, number, number];
  const [, , oh, ow] = dy.shape as [number, number, number, number];
  const [sh, sw] = strides as [number, number];
  const [pt, pl, pb, pr] = pads as [number, number, number, number];
  const dyr = g.reshape(dy, [n, o, oh * ow]); // [N, Cout, OH*OW]
  if (sh === 1 && sw === 1 && kh * kw > 1 && c > o) {
    // Fewer output than input channels (the up path's convs after a skip concat): shift dy instead
    // of x, (Cin / Cout)x less im2col. dW[o, c, i, j] = sum_n,u,v x[n, c, u, v] dy[n, o, u + pt - i,
    // v + pl - j]: the shifted copies of dy over x's grid are an im2col with flipped taps.
    const [ptop, pleft] = [kh - 1 - pt, kw - 1 - pl];
    const dycols = im2col(
      g,
      g.reshape(dy, [n * o, 1, oh, ow]),
      kh,
      kw,
      [1, 1],
      [ptop, pleft, h - oh + kh - 1 - ptop, wd - ow + kw - 1 - pleft],
      true,
    ); // [N*Cout, kh*kw, H*W]
    const perN = g.matmul(
      g.reshape(dycols, [n, o * kh * kw, h * wd]),
      g.transpose(g.reshape(x, [n, c, h * wd]), [0, 2, 1]),
    ); // [N, Cout*kh*kw, Cin]
    if (g.fused.includes('SumTranspose')) {
      // The native kernel: the batch sum and the layout [Cout, Cin, k] in one pass (ORT's Transpose of
      // [Cout, k, Cin] ran at 1.6 GB/s: 31 ms of an L-train step).
      const perN4 = g.reshape(perN, [n, o, kh * kw, c]);
      const y = g.node(
        'SumTranspose',
        [perN4],
        [[o, c, kh * kw]],
        {},
        undefined,
        undefined,
        FUSED_DOMAIN,
      )[0]!;
      return g.reshape(y, w.shape);
    }
    const sum = g.reshape(sumLeading(g, perN, 1), [o, kh * kw, c]);
    return g.reshape(g.transpose(sum, [0, 2, 1]), w.shape);
  }
  let cols: Value; // [N, Cin*kh*kw, OH*OW]
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && pt + pl + pb + pr === 0) {
    cols = g.reshape(x, [n, c, h * wd]);
  } else {
    const patches = im2col(g, g.reshape(x, [n * c, 1, h, wd]), kh, kw, [sh, sw], [pt, pl, pb, pr], false);
    cols = g.reshape(patches, [n, c * kh * kw, oh * ow]);
  }
  // cols @ dy^T rather than dy @ cols^T: MLAS then packs the small dy^T [OH*OW, Cout] per sample
  // instead of the 9x larger cols (measured 10% faster on the S model's 32x32 and 16x16 layers).
  const perN = g.matmul(cols, g.transpose(dyr, [0, 2, 1])); // [N, Cin*kh*kw, Cout]
  const sum = g.reshape(sumLeading(g, perN, 1), [c * kh * kw, o]); // [Cin*kh*kw, Cout]
  return g.reshape(g.transpose(sum, [1, 0]), w.shape);
}
