// A minimal protocol-buffers writer: just enough wire format (varints, fixed32, length-delimited)
// to serialise ONNX ModelProto without a dependency. Messages are kept as lists of chunks so large
// weight buffers are copied once, when the final model bytes are assembled.

export class Msg {
  readonly parts: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }

  private tag(field: number, wire: number): void {
    this.push(varint(field * 8 + wire));
  }

  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.push(varint(v));
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.push(varint(b.length));
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Msg): this {
    this.tag(field, 2);
    this.push(varint(m.length));
    for (const p of m.parts) this.push(p);
    return this;
  }

  /** Packed repeated varints. */
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const inner = new Msg();
    for (const v of vs) inner.push(varint(v));
    return this.msg(field, inner);
  }

  /** Packed repeated float32. */
  packedFloats(field: number, vs: readonly number[]): this {
    const b = new Uint8Array(4 * vs.length);
    const dv = new DataView(b.buffer);
    vs.forEach((v, i) => {
      dv.setFloat32(4 * i, v, true);
    });
    return this.bytes(field, b);
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

/** Base-128 varint; negative int64 as ten bytes of two's complement. */
export function varint(v: number | bigint): Uint8Array {
  let x = BigInt.asUintN(64, BigInt(v));
  if (x < 128n) return Uint8Array.of(Number(x));
  const out: number[] = [];
  while (x >= 128n) {
    out.push(Number(x & 127n) | 128);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}
