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

/** One decoded field: varint / fixed values as numbers (bigint for varints), length-delimited as bytes. */
export interface Field {
  readonly field: number;
  readonly value: bigint | Uint8Array | number;
}

/** A message that does not decode: truncated, a varint over 10 bytes, an unknown wire type. */
export class ProtobufError extends Error {
  override readonly name = 'ProtobufError';
}

/** The fields of one message (a minimal reader: varint, fixed64, length-delimited, fixed32); bounds-checked. */
export function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let i = 0;
  const vint = (): bigint => {
    let r = 0n;
    for (let k = 0; k < 10; k++) {
      if (i >= buf.length) throw new ProtobufError('protobuf: truncated varint');
      const b = buf[i++]!;
      r |= BigInt(b & 0x7f) << BigInt(7 * k);
      if (b < 0x80) return r & 0xffffffffffffffffn;
    }
    throw new ProtobufError(`protobuf: a varint longer than 10 bytes at byte ${i - 10}`);
  };
  const need = (n: number, what: string) => {
    if (n > buf.length - i)
      throw new ProtobufError(
        `protobuf: ${what} at byte ${i} runs past the end of the message (${buf.length} bytes)`,
      );
  };
  while (i < buf.length) {
    const key = Number(vint() & 0xffffffffn);
    const field = key >>> 3;
    switch (key & 7) {
      case 0:
        out.push({ field, value: vint() });
        break;
      case 1:
        need(8, 'a fixed64 field');
        out.push({ field, value: view.getFloat64(i, true) });
        i += 8;
        break;
      case 2: {
        const n = vint();
        if (n > BigInt(buf.length - i))
          throw new ProtobufError('protobuf: a field runs past the end of the message');
        out.push({ field, value: buf.subarray(i, i + Number(n)) });
        i += Number(n);
        break;
      }
      case 5:
        need(4, 'a fixed32 field');
        out.push({ field, value: view.getFloat32(i, true) });
        i += 4;
        break;
      default:
        throw new ProtobufError(`protobuf: unsupported wire type ${key & 7}`);
    }
  }
  return out;
}
