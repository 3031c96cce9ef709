// Short content hashes that label evaluation results: the first 8 hex digits of a SHA-256, over file bytes
// or over a parameter store in a canonical order (names sorted, each name then its float32 bytes).

import { createHash } from 'node:crypto';

/** First 8 hex digits of the SHA-256 of the concatenated byte views. */
export function sha256Hex8(...parts: readonly ArrayBufferView[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return h.digest('hex').slice(0, 8);
}

/** The hash of a set of named tensors, independent of file layout and key order. */
export function paramsHash(params: ReadonlyMap<string, Float32Array>): string {
  const h = createHash('sha256');
  for (const name of [...params.keys()].sort()) {
    h.update(name);
    const v = params.get(name)!;
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex').slice(0, 8);
}
