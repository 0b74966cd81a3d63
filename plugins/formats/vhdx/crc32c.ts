// CRC-32C (Castagnoli), the checksum of every VHDX header, region table and log entry

/** The reflected Castagnoli polynomial (MS-VHDX §2.2.2 names CRC-32C). */
const CRC32C_POLY_REFLECTED = 0x82f63b78;

const TABLE = buildTable();

function buildTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY_REFLECTED : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

/**
 * Feeds `data` into a running CRC-32C state. Start from `0xffffffff` and finish
 * with {@linkcode crc32cFinish}; a checksum over several buffers chains the state.
 */
export function crc32cUpdate(state: number, data: Uint8Array): number {
  let c = state >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** The checksum of a finished running state. */
export function crc32cFinish(state: number): number {
  return (~state) >>> 0;
}

/**
 * The CRC-32C of `data`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32c } from "./crc32c.ts";
 *
 * assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
 * ```
 */
export function crc32c(data: Uint8Array): number {
  return crc32cFinish(crc32cUpdate(0xffffffff, data));
}

/**
 * The CRC-32C of `buf` with its 4-byte little-endian checksum field at `checksumAt`
 * read as zero, as every VHDX structure is checksummed. `buf` is left unchanged.
 */
export function vhdxChecksum(buf: Uint8Array, checksumAt: number): number {
  let state = crc32cUpdate(0xffffffff, buf.subarray(0, checksumAt));
  state = crc32cUpdate(state, new Uint8Array(4));
  state = crc32cUpdate(state, buf.subarray(checksumAt + 4));
  return crc32cFinish(state);
}

/** Writes the checksum of `buf` into its field at `checksumAt` (little-endian). */
export function setVhdxChecksum(buf: Uint8Array, checksumAt: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    .setUint32(checksumAt, vhdxChecksum(buf, checksumAt), true);
}

/** True when the checksum field at `checksumAt` matches the contents of `buf`. */
export function vhdxChecksumValid(buf: Uint8Array, checksumAt: number): boolean {
  const stored = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    .getUint32(checksumAt, true);
  return stored === vhdxChecksum(buf, checksumAt);
}
