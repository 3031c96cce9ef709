// Serialise a Graph to an ONNX ModelProto (opset 17, IR version 8) that onnxruntime-node and
// onnxruntime-web both load; and read back an ONNX file's metadata and float32 initializers (readOnnx). Only the nodes the requested outputs depend on are written.
// Parameters go in as initializers (inference: ORT can pre-pack weights) or as graph inputs
// (training: the optimiser in TypeScript feeds fresh weights every step); toOnnxWithFeeds makes chosen
// constants graph inputs too, for engines that read feeds in place.

import { type Attr, type ConstData, FUSED_DOMAIN, type Graph, type Value } from './graph.js';
import type { Tensor } from '../util/tensor.js';
import { Msg, ProtobufError, readFields } from './protobuf.js';

export const OPSET = 17;

export interface ExportOptions {
  /** Graph outputs, by ONNX name. */
  readonly outputs: Readonly<Record<string, Value>>;
  /** 'initializer': weights baked in; 'input': every parameter becomes a graph input of the same name. */
  readonly params: 'initializer' | 'input';
  readonly name?: string;
  /** The leading dimension of the inputs and outputs is the symbolic "batch" (build with keepLeadingDim). */
  readonly dynamicBatch?: boolean;
  /** Every parameter is written (as an initializer), also those no output depends on. */
  readonly allParams?: boolean;
  /** ModelProto metadata_props (key -> value) and doc_string. */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly doc?: string;
}

const ELEM = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7 } as const;

function valueInfo(name: string, v: Value, batch = false): Msg {
  const shape = new Msg();
  v.shape.forEach((d, i) => {
    shape.msg(1, batch && i === 0 ? new Msg().string(2, 'batch') : new Msg().int(1, d));
  });
  const tensorType = new Msg().int(1, ELEM[v.dtype]).msg(2, shape);
  return new Msg().string(1, name).msg(2, new Msg().msg(1, tensorType));
}

function tensorProto(name: string, v: Value, data: ConstData): Msg {
  const m = new Msg();
  for (const d of v.shape) m.int(1, d);
  m.int(2, ELEM[v.dtype]);
  m.string(8, name);
  m.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return m;
}

function attribute(name: string, a: Attr): Msg {
  const m = new Msg().string(1, name);
  if (typeof a === 'number') {
    if (!Number.isInteger(a)) throw new Error(`attribute ${name}: use {floats:[x]} for a float`);
    return m.int(3, a).int(20, 2);
  }
  if (typeof a === 'string') return m.string(4, a).int(20, 3);
  if (Array.isArray(a)) return m.packedInts(8, a as number[]).int(20, 7);
  const fl = (a as { floats: number[] }).floats;
  if (fl.length === 1) return m.float(2, fl[0]!).int(20, 1);
  return m.packedFloats(7, fl).int(20, 6);
}

export function toOnnx(g: Graph, opts: ExportOptions): Uint8Array {
  return serialize(g, opts, () => false).model;
}

/** A model some of whose constants are graph inputs, fed by the caller on every run (toOnnxWithFeeds). */
export interface ModelWithFeeds {
  readonly model: Uint8Array;
  /** The constants left out of `model`'s bytes, by input name: feed them with every run. */
  readonly feeds: Record<string, Tensor>;
}

/**
 * toOnnx, with the float32 constants `feed` picks written as graph inputs instead of initializers, and returned
 * beside the bytes: for an engine that reads feeds in place (Engine.feedsInPlace), a large model's weights are
 * then neither serialised, nor parsed, nor copied by ONNX Runtime at load; the caller's arrays are the only copy.
 */
export function toOnnxWithFeeds(g: Graph, opts: ExportOptions, feed: (v: Value) => boolean): ModelWithFeeds {
  return serialize(g, opts, feed);
}

function serialize(g: Graph, opts: ExportOptions, feed: (v: Value) => boolean): ModelWithFeeds {
  const feeds: Record<string, Tensor> = {}; // picked once, in the initializer loop below
  const outs = Object.entries(opts.outputs);
  const live = g.liveNodes(outs.map(([, v]) => v));
  const used = new Set<number>();
  for (const n of live) for (const v of n.inputs) used.add(v.id);
  for (const [, v] of outs) used.add(v.id);

  const graph = new Msg();
  // Output renaming: an output's ONNX name may differ from the value's name; add Identity nodes.
  const nodeMsgs: Msg[] = live.map((n) => {
    const m = new Msg();
    for (const v of n.inputs) m.string(1, v.name);
    for (const v of n.outputs) m.string(2, v.name);
    m.string(3, `${n.op}_${n.outputs[0]!.name}`);
    m.string(4, n.op);
    for (const [k, a] of Object.entries(n.attrs)) m.msg(5, attribute(k, a));
    if (n.domain) m.string(7, n.domain);
    return m;
  });
  for (const [name, v] of outs) {
    if (name !== v.name) {
      nodeMsgs.push(
        new Msg().string(1, v.name).string(2, name).string(3, `out_${name}`).string(4, 'Identity'),
      );
    }
  }
  for (const m of nodeMsgs) graph.msg(1, m);
  graph.string(2, opts.name ?? 'ddpm');
  for (const leaf of g.leaves) {
    if (!used.has(leaf.value.id) && !(opts.allParams && leaf.kind === 'param')) continue;
    if (leaf.kind === 'const' || (leaf.kind === 'param' && opts.params === 'initializer')) {
      const d = leaf.data;
      if (leaf.kind === 'const' && d instanceof Float32Array && feed(leaf.value))
        feeds[leaf.value.name] = { data: d, shape: leaf.value.shape };
      else graph.msg(5, tensorProto(leaf.value.name, leaf.value, d));
    }
  }
  for (const leaf of g.leaves) {
    if (!used.has(leaf.value.id)) continue;
    const opaque = leaf.kind === 'const' && leaf.opaque;
    const fed = leaf.value.name in feeds;
    if (leaf.kind === 'input' || opaque || fed || (leaf.kind === 'param' && opts.params === 'input')) {
      graph.msg(11, valueInfo(leaf.value.name, leaf.value, opts.dynamicBatch && leaf.kind === 'input'));
    }
  }
  for (const [name, v] of outs) graph.msg(12, valueInfo(name, v, opts.dynamicBatch));
  // A custom op's output shapes, which ONNX Runtime cannot infer (it has no schema for the domain).
  for (const n of live) {
    if (n.domain !== FUSED_DOMAIN) continue;
    for (const v of n.outputs) if (!outs.some(([, o]) => o.id === v.id)) graph.msg(13, valueInfo(v.name, v));
  }

  const model = new Msg()
    .int(1, 8)
    .string(2, 'ddpm-ts')
    .string(3, '0.1.0')
    .msg(7, graph)
    .msg(8, new Msg().string(1, '').int(2, OPSET));
  if (opts.doc) model.string(6, opts.doc);
  for (const [k, v] of Object.entries(opts.metadata ?? {}))
    model.msg(14, new Msg().string(1, k).string(2, v));
  for (const d of new Set(live.flatMap((n) => (n.domain ? [n.domain] : [])))) {
    model.msg(8, new Msg().string(1, d).int(2, 1));
  }
  return { model: model.toBytes(), feeds };
}

/** What readOnnx finds in an ONNX model: its metadata_props and its float32 initializers by name. */
export interface OnnxContents {
  readonly metadata: Record<string, string>;
  readonly initializers: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * Read an ONNX ModelProto's metadata and float32 initializers (raw_data or float_data), nothing else. Every
 * failure (a truncated or corrupt message, an initializer whose data does not fill its shape) is an Error naming
 * `source`.
 */
export function readOnnx(bytes: Uint8Array, source = 'onnx'): OnnxContents {
  try {
    return readOnnxFields(bytes, source);
  } catch (e) {
    if (e instanceof ProtobufError)
      throw new Error(`${source}: not an ONNX model, or a corrupt one (${e.message})`);
    throw e;
  }
}

function readOnnxFields(bytes: Uint8Array, source: string): OnnxContents {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const metadata: Record<string, string> = {};
  const initializers = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const f of readFields(bytes)) {
    if (f.field === 14 && f.value instanceof Uint8Array) {
      const kv = readFields(f.value);
      const k = kv.find((x) => x.field === 1)?.value;
      const v = kv.find((x) => x.field === 2)?.value;
      if (k instanceof Uint8Array && v instanceof Uint8Array) metadata[text(k)] = text(v);
    }
    if (f.field !== 7 || !(f.value instanceof Uint8Array)) continue;
    for (const gf of readFields(f.value)) {
      if (gf.field !== 5 || !(gf.value instanceof Uint8Array)) continue;
      const shape: bigint[] = [];
      let name = '';
      let type = 0n;
      let raw: Uint8Array | null = null;
      const floats: number[] = [];
      for (const tf of readFields(gf.value)) {
        if (tf.field === 1) {
          if (typeof tf.value === 'bigint') shape.push(tf.value);
          else if (tf.value instanceof Uint8Array)
            for (const d of readFields(packedAsVarints(tf.value))) shape.push(d.value as bigint);
        } else if (tf.field === 2 && typeof tf.value === 'bigint') type = tf.value;
        else if (tf.field === 8 && tf.value instanceof Uint8Array) name = text(tf.value);
        else if (tf.field === 9 && tf.value instanceof Uint8Array) raw = tf.value;
        else if (tf.field === 4) {
          if (typeof tf.value === 'number') floats.push(tf.value);
          else if (tf.value instanceof Uint8Array) {
            const dv = new DataView(tf.value.buffer, tf.value.byteOffset, tf.value.byteLength);
            for (let o = 0; o + 4 <= tf.value.byteLength; o += 4) floats.push(dv.getFloat32(o, true));
          }
        }
      }
      if (type !== BigInt(ELEM.float32)) continue;
      // Dimensions are int64 (a negative one reads as a huge varint); the product is checked against the data.
      const n = shape.reduce((a, b) => a * b, 1n);
      const have = raw ? raw.byteLength / 4 : floats.length;
      if (
        !Number.isInteger(have) ||
        shape.some((d) => d > BigInt(Number.MAX_SAFE_INTEGER)) ||
        n !== BigInt(have)
      ) {
        throw new Error(
          `${source}: initializer ${name} has ${raw ? `${raw.byteLength} bytes` : `${floats.length} values`} for shape [${shape}]: a corrupt file`,
        );
      }
      let data: Float32Array;
      if (raw) {
        data = new Float32Array(Number(n));
        new Uint8Array(data.buffer).set(raw);
      } else data = Float32Array.from(floats);
      initializers.set(name, { shape: shape.map(Number), data });
    }
  }
  return { metadata, initializers };
}

/** A packed repeated varint field re-read as a sequence of field-1 varints. */
function packedAsVarints(b: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    if (i === 0 || b[i - 1]! < 0x80) out.push(0x08);
    out.push(b[i]!);
  }
  return Uint8Array.from(out);
}
