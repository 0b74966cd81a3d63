// Fast all-zero detection for buffers, used to keep converted images sparse

/**
 * True when `buf[start, start+length)` is all zero bytes. Scans eight bytes at a
 * time where the range is aligned, which matters on the convert hot path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isZero } from "./zero.ts";
 *
 * const buf = new Uint8Array(4096);
 * assert.equal(isZero(buf, 0, 4096), true);
 * buf[4095] = 1;
 * assert.equal(isZero(buf, 0, 4096), false);
 * assert.equal(isZero(buf, 0, 4095), true);
 * ```
 */
export function isZero(buf: Uint8Array, start = 0, length = buf.length - start): boolean {
  let i = start;
  const end = start + length;
  const abs = buf.byteOffset + i;
  if ((abs & 7) === 0 && length >= 64) {
    const words = new Float64Array(buf.buffer, abs, length >>> 3);
    // A float64 view compares eight bytes at once; only all-zero bits equal +0
    // (negative zero -0 is 0x8000..., which `=== 0` also accepts, so check sign too).
    for (let w = 0; w < words.length; w++) {
      const v = words[w];
      if (v !== 0 || 1 / v < 0) return false;
    }
    i += words.length << 3;
  }
  for (; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}
