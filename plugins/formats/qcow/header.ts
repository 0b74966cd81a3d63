// The qcow (version 1) header: probe, decode, validate and encode

import { ImageFormatError, NotSupportedError } from "../../../core/errors.ts";

/** "QFI\xfb", shared with qcow2; the version tells them apart. */
export const QCOW_MAGIC = 0x514649fb;
export const QCOW_VERSION = 1;
export const QCOW_CRYPT_NONE = 0;
export const QCOW_CRYPT_AES = 1;
/** Bytes of the header; the backing file name usually follows it. */
export const QCOW_HEADER_SIZE = 48;
/** The longest backing file name QEMU reads. */
export const QCOW_MAX_BACKING_NAME = 1023;

/** The decoded header. */
export interface QcowHeader {
  backingFileOffset: number;
  backingFileSize: number;
  mtime: number;
  sizeBytes: number;
  clusterBits: number;
  l2Bits: number;
  cryptMethod: number;
  l1TableOffset: number;
}

function u64(v: DataView, at: number): number {
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
}

function putU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, Math.floor(value / 2 ** 32));
  v.setUint32(at + 4, value % 2 ** 32);
}

/** Scores a file header: 100 for the magic with version 1 in a full header, as QEMU. */
export function probeQcow(header: Uint8Array): number {
  if (header.length < QCOW_HEADER_SIZE) return 0;
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return v.getUint32(0) === QCOW_MAGIC && v.getUint32(4) === QCOW_VERSION ? 100 : 0;
}

/** Decodes and validates a header with QEMU's checks and messages. */
export function parseQcowHeader(buf: Uint8Array): QcowHeader {
  if (buf.length < QCOW_HEADER_SIZE) throw new ImageFormatError("Image not in qcow format");
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0) !== QCOW_MAGIC) throw new ImageFormatError("Image not in qcow format");
  const version = v.getUint32(4);
  if (version !== QCOW_VERSION) throw new NotSupportedError(`Unsupported qcow version ${version}`);
  const h: QcowHeader = {
    backingFileOffset: u64(v, 8),
    backingFileSize: v.getUint32(16),
    mtime: v.getUint32(20),
    sizeBytes: u64(v, 24),
    clusterBits: v.getUint8(32),
    l2Bits: v.getUint8(33),
    cryptMethod: v.getUint32(36),
    l1TableOffset: u64(v, 40),
  };
  if (h.sizeBytes <= 1) {
    throw new ImageFormatError("Image size is too small (must be at least 2 bytes)");
  }
  if (h.clusterBits < 9 || h.clusterBits > 16) {
    throw new ImageFormatError("Cluster size must be between 512 and 64k");
  }
  // l2_bits counts 8-byte entries, so the table is 2^(l2_bits + 3) bytes.
  if (h.l2Bits < 6 || h.l2Bits > 13) {
    throw new ImageFormatError("L2 table size must be between 512 and 64k");
  }
  if (h.cryptMethod > QCOW_CRYPT_AES) {
    throw new ImageFormatError("invalid encryption method in qcow header");
  }
  if (h.cryptMethod === QCOW_CRYPT_AES) {
    throw new NotSupportedError("Encrypted qcow images are not supported");
  }
  if (h.sizeBytes > Number.MAX_SAFE_INTEGER) throw new ImageFormatError("Image too large");
  if (h.backingFileOffset !== 0 && h.backingFileSize > QCOW_MAX_BACKING_NAME) {
    throw new ImageFormatError("Backing file name too long");
  }
  return h;
}

/** Entries of the L1 table: one per 2^(cluster_bits + l2_bits) bytes of disk. */
export function l1Entries(h: QcowHeader): number {
  return Math.ceil(h.sizeBytes / 2 ** (h.clusterBits + h.l2Bits));
}

/** Encodes a header (big-endian, as every qcow field). */
export function encodeQcowHeader(h: QcowHeader): Uint8Array {
  const buf = new Uint8Array(QCOW_HEADER_SIZE);
  const v = new DataView(buf.buffer);
  v.setUint32(0, QCOW_MAGIC);
  v.setUint32(4, QCOW_VERSION);
  putU64(v, 8, h.backingFileOffset);
  v.setUint32(16, h.backingFileSize);
  v.setUint32(20, h.mtime);
  putU64(v, 24, h.sizeBytes);
  v.setUint8(32, h.clusterBits);
  v.setUint8(33, h.l2Bits);
  v.setUint32(36, h.cryptMethod);
  putU64(v, 40, h.l1TableOffset);
  return buf;
}
