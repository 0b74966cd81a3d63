// VMDK on-disk structures: the sparse extent header (VMDK4 "KDMV", VMFS "COWD"), markers, probing

import { ImageFormatError } from "../../../core/errors.ts";

/** Magic of a hosted sparse extent (VMDK 5.0 spec §"Hosted Sparse Extent Header"), big-endian. */
export const VMDK4_MAGIC = 0x4b444d56; // "KDMV"
/** Magic of an ESX (VMFS) sparse extent. */
export const VMDK3_MAGIC = 0x434f5744; // "COWD"
/** `compressAlgorithm` of a deflate-compressed (streamOptimized) extent. */
export const VMDK4_COMPRESSION_DEFLATE = 1;
/** Header flags. */
export const VMDK4_FLAG_NL_DETECT = 1 << 0;
export const VMDK4_FLAG_RGD = 1 << 1;
export const VMDK4_FLAG_ZERO_GRAIN = 1 << 2;
export const VMDK4_FLAG_COMPRESS = 1 << 16;
export const VMDK4_FLAG_MARKER = 1 << 17;
/** `gdOffset` of a stream whose grain directory sits in the footer at the end. */
export const VMDK4_GD_AT_END = 0xffffffffffffffffn;
/** A grain table entry of a zeroed grain (with VMDK4_FLAG_ZERO_GRAIN). */
export const VMDK_GTE_ZEROED = 1;
/** Marker types of a streamOptimized extent. */
export const MARKER_END_OF_STREAM = 0;
export const MARKER_GRAIN_TABLE = 1;
export const MARKER_GRAIN_DIRECTORY = 2;
export const MARKER_FOOTER = 3;

export const SECTOR_SIZE = 512;
/** Bytes of the embedded descriptor area QEMU reads and rewrites (20 sectors). */
export const DESC_SIZE = 20 * SECTOR_SIZE;
/** Grains larger than 1 GiB mean a corrupt header (QEMU's bound). */
export const MAX_GRANULARITY_SECTORS = 0x200000;
/** The largest grain directory QEMU allocates (entries). */
export const MAX_L1_ENTRIES = 32 * 1024 * 1024;
/** A sparse extent cannot address more sectors than a 32-bit grain table entry holds. */
export const VMDK_EXTENT_MAX_SECTORS = 2 ** 32;
/** Bytes of a VMDK4 header including its magic (the packed C struct). */
export const VMDK4_HEADER_BYTES = 4 + 75;

/** The fields of a hosted sparse extent header. */
export interface Vmdk4Header {
  version: number;
  flags: number;
  /** Sectors of guest data in this extent. */
  capacity: bigint;
  /** Sectors per grain. */
  granularity: bigint;
  descOffset: bigint;
  descSize: bigint;
  numGtesPerGt: number;
  rgdOffset: bigint;
  gdOffset: bigint;
  grainOffset: bigint;
  compressAlgorithm: number;
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Reads the VMDK4 header at the start of `buf` (magic included); the magic is not checked. */
export function parseVmdk4Header(buf: Uint8Array): Vmdk4Header {
  if (buf.length < VMDK4_HEADER_BYTES) throw new ImageFormatError("Image not in VMDK format");
  const v = view(buf);
  return {
    version: v.getUint32(4, true),
    flags: v.getUint32(8, true),
    capacity: v.getBigUint64(12, true),
    granularity: v.getBigUint64(20, true),
    descOffset: v.getBigUint64(28, true),
    descSize: v.getBigUint64(36, true),
    numGtesPerGt: v.getUint32(44, true),
    rgdOffset: v.getBigUint64(48, true),
    gdOffset: v.getBigUint64(56, true),
    grainOffset: v.getBigUint64(64, true),
    compressAlgorithm: v.getUint16(77, true),
  };
}

/** Encodes a VMDK4 header with its magic and the newline-detection bytes, as QEMU writes it. */
export function encodeVmdk4Header(h: Vmdk4Header): Uint8Array {
  const buf = new Uint8Array(VMDK4_HEADER_BYTES);
  const v = view(buf);
  v.setUint32(0, VMDK4_MAGIC);
  v.setUint32(4, h.version, true);
  v.setUint32(8, h.flags, true);
  v.setBigUint64(12, h.capacity, true);
  v.setBigUint64(20, h.granularity, true);
  v.setBigUint64(28, h.descOffset, true);
  v.setBigUint64(36, h.descSize, true);
  v.setUint32(44, h.numGtesPerGt, true);
  v.setBigUint64(48, h.rgdOffset, true);
  v.setBigUint64(56, h.gdOffset, true);
  v.setBigUint64(64, h.grainOffset, true);
  // One filler byte, then "\n \r\n": a reader sees if a text transfer mangled line ends.
  buf.set([0x0a, 0x20, 0x0d, 0x0a], 73);
  v.setUint16(77, h.compressAlgorithm, true);
  return buf;
}

/** The fields of an ESX "COWD" sparse extent header that matter for reading. */
export interface Vmdk3Header {
  diskSectors: number;
  granularity: number;
  l1dirOffset: number;
  l1dirSize: number;
}

/** Reads a COWD header at the start of `buf` (magic included). */
export function parseVmdk3Header(buf: Uint8Array): Vmdk3Header {
  if (buf.length < 44) throw new ImageFormatError("Image not in VMDK format");
  const v = view(buf);
  return {
    diskSectors: v.getUint32(12, true),
    granularity: v.getUint32(16, true),
    l1dirOffset: v.getUint32(20, true),
    l1dirSize: v.getUint32(24, true),
  };
}

/** One 512-byte marker of a stream (lba, size, type), as the footer check reads it. */
export interface Marker {
  value: bigint;
  size: number;
  type: number;
}

/** Reads the marker at the start of `buf`. */
export function parseMarker(buf: Uint8Array): Marker {
  const v = view(buf);
  return {
    value: v.getBigUint64(0, true),
    size: v.getUint32(8, true),
    type: v.getUint32(12, true),
  };
}

/** The first four bytes of `buf` as a big-endian number (0 when shorter). */
export function magicOf(buf: Uint8Array): number {
  return buf.length < 4 ? 0 : view(buf).getUint32(0);
}

const VERSION_LINES = ["version=1", "version=2", "version=3"];

/**
 * Scores a file header: 100 for a sparse extent magic, or for a text descriptor whose
 * first line after comments and blank lines is `version=1..3` (QEMU's vmdk_probe).
 */
export function probeVmdk(header: Uint8Array): number {
  if (header.length < 4) return 0;
  const magic = magicOf(header);
  if (magic === VMDK3_MAGIC || magic === VMDK4_MAGIC) return 100;
  let p = 0;
  const end = header.length;
  while (p < end) {
    const c = header[p];
    if (c === 0x23) { // '#': a comment line
      while (p < end && header[p] !== 0x0a) p++;
      p++;
      continue;
    }
    if (c === 0x20) { // only blank lines may precede the version line
      while (p < end && header[p] === 0x20) p++;
      if (p < end && header[p] === 0x0d) p++;
      if (p === end || header[p] !== 0x0a) return 0;
      p++;
      continue;
    }
    const rest = String.fromCharCode(...header.subarray(p, Math.min(end, p + 11)));
    for (const v of VERSION_LINES) {
      if (rest.startsWith(`${v}\n`) || rest.startsWith(`${v}\r\n`)) return 100;
    }
    return 0;
  }
  return 0;
}
