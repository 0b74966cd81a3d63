// VHD on-disk structures: the hard disk footer, the dynamic disk header, checksums and CHS geometry

import { ImageFormatError } from "../../../core/errors.ts";

/** Footer cookie (VHD spec, "Hard Disk Footer Format"). */
export const VHD_COOKIE = "conectix";
/** Dynamic disk header cookie. */
export const VHD_DYNAMIC_COOKIE = "cxsparse";
/** `Features`: the reserved bit, always set. */
export const VHD_FEATURES_RESERVED = 0x00000002;
/** `File Format Version` and the dynamic header's `Header Version`: 1.0. */
export const VHD_VERSION_1_0 = 0x00010000;
/** `Disk Type` values. */
export const VHD_FIXED = 2;
export const VHD_DYNAMIC = 3;
export const VHD_DIFFERENCING = 4;
/** `Data Offset` of a fixed disk (no dynamic header). */
export const VHD_NO_OFFSET = 0xffffffffffffffffn;
/** A BAT entry of a block not yet allocated. */
export const VHD_BAT_UNUSED = 0xffffffff;
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01 00:00 UTC). */
export const VHD_TIMESTAMP_BASE = 946684800;
/** The block size QEMU gives new dynamic disks. */
export const VHD_DEFAULT_BLOCK_SIZE = 0x200000;
/** The largest CHS geometry: 65535 cylinders, 16 heads, 255 sectors per track. */
export const VHD_MAX_GEOMETRY_SECTORS = 65535 * 16 * 255;
/** QEMU's limit on a VHD image: 2040 GiB. */
export const VHD_MAX_SECTORS = 0xff000000;

export const FOOTER_SIZE = 512;
export const DYNAMIC_HEADER_SIZE = 1024;

/** Creator applications whose images are sized by `Current Size` instead of CHS (Hyper-V and friends). */
const CURRENT_SIZE_CREATORS = ["win ", "qem2", "d2v ", "CTXS", "tap\0"];

/** The decoded hard disk footer. */
export interface VhdFooter {
  dataOffset: bigint;
  timestamp: number;
  creatorApp: string;
  originalSizeBytes: number;
  currentSizeBytes: number;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  diskType: number;
}

/** The decoded dynamic disk header. */
export interface VhdDynamicHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
}

/** A CHS geometry. */
export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

function ascii(buf: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...buf.subarray(at, at + len));
}

function putAscii(buf: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) buf[at + i] = text.charCodeAt(i);
}

/** The one's complement of the byte sum, with the checksum field itself read as zero. */
export function vhdChecksum(buf: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i < checksumAt || i >= checksumAt + 4) sum += buf[i];
  }
  return (~sum) >>> 0;
}

/** Scores a file header: 100 when it starts with the footer copy's cookie. */
export function probeVpc(header: Uint8Array): number {
  // Like qemu-img, look only at the start: a fixed disk (footer at the end) probes as raw.
  return header.length >= 8 && ascii(header, 0, 8) === VHD_COOKIE ? 100 : 0;
}

/** Decodes a footer; the cookie must match (the checksum is not enforced, as in QEMU). */
export function parseFooter(buf: Uint8Array): VhdFooter {
  if (ascii(buf, 0, 8) !== VHD_COOKIE) throw new ImageFormatError("Image not in VHD format");
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    dataOffset: v.getBigUint64(16),
    timestamp: v.getUint32(24),
    creatorApp: ascii(buf, 28, 4),
    originalSizeBytes: Number(v.getBigUint64(40)),
    currentSizeBytes: Number(v.getBigUint64(48)),
    cylinders: v.getUint16(56),
    heads: v.getUint8(58),
    sectorsPerTrack: v.getUint8(59),
    diskType: v.getUint32(60),
  };
}

/** Encodes a footer as QEMU writes it: creator "qemu" 5.3 on "Wi2k", a fresh UUID, checksummed. */
export function encodeFooter(f: VhdFooter): Uint8Array {
  const buf = new Uint8Array(FOOTER_SIZE);
  const v = new DataView(buf.buffer);
  putAscii(buf, 0, VHD_COOKIE);
  v.setUint32(8, VHD_FEATURES_RESERVED);
  v.setUint32(12, VHD_VERSION_1_0);
  v.setBigUint64(16, f.dataOffset);
  v.setUint32(24, f.timestamp);
  putAscii(buf, 28, f.creatorApp);
  v.setUint32(32, 0x00050003);
  putAscii(buf, 36, "Wi2k");
  v.setBigUint64(40, BigInt(f.originalSizeBytes));
  v.setBigUint64(48, BigInt(f.currentSizeBytes));
  v.setUint16(56, f.cylinders);
  v.setUint8(58, f.heads);
  v.setUint8(59, f.sectorsPerTrack);
  v.setUint32(60, f.diskType);
  const uuid = crypto.getRandomValues(new Uint8Array(16));
  uuid[6] = (uuid[6] & 0x0f) | 0x40;
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
  buf.set(uuid, 68);
  v.setUint32(64, vhdChecksum(buf, 64));
  return buf;
}

/** Decodes a dynamic disk header. */
export function parseDynamicHeader(buf: Uint8Array): VhdDynamicHeader {
  if (ascii(buf, 0, 8) !== VHD_DYNAMIC_COOKIE) {
    throw new ImageFormatError("Invalid VHD dynamic header cookie");
  }
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const h = {
    tableOffset: Number(v.getBigUint64(16)),
    maxTableEntries: v.getUint32(28),
    blockSize: v.getUint32(32),
  };
  if (h.blockSize < 512 || (h.blockSize & (h.blockSize - 1)) !== 0) {
    throw new ImageFormatError(`Invalid VHD block size ${h.blockSize}`);
  }
  return h;
}

/** Encodes a dynamic disk header (no parent), checksummed. */
export function encodeDynamicHeader(h: VhdDynamicHeader): Uint8Array {
  const buf = new Uint8Array(DYNAMIC_HEADER_SIZE);
  const v = new DataView(buf.buffer);
  putAscii(buf, 0, VHD_DYNAMIC_COOKIE);
  v.setBigUint64(8, VHD_NO_OFFSET);
  v.setBigUint64(16, BigInt(h.tableOffset));
  v.setUint32(24, VHD_VERSION_1_0);
  v.setUint32(28, h.maxTableEntries);
  v.setUint32(32, h.blockSize);
  v.setUint32(36, vhdChecksum(buf, 36));
  return buf;
}

/** The geometry the VHD spec's CHS algorithm gives `totalSectors` (rounding down). */
export function specGeometry(totalSectors: number): Geometry {
  const total = Math.min(totalSectors, VHD_MAX_GEOMETRY_SECTORS);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** Sectors a geometry describes. */
export function geometrySectors(g: Geometry): number {
  return g.cylinders * g.heads * g.sectorsPerTrack;
}

/**
 * The geometry and size QEMU gives a new disk of `sizeBytes`: the smallest spec geometry
 * that holds every sector, and that geometry's size; past the largest CHS disk (about
 * 127 GiB) the geometry is the maximum and the size is kept. With `forceSize`, the
 * geometry is the maximum and the size is the one asked for.
 */
export function createGeometry(
  sizeBytes: number,
  forceSize: boolean,
): { geometry: Geometry; sizeBytes: number } {
  const sectors = Math.ceil(sizeBytes / 512);
  const max = { cylinders: 65535, heads: 16, sectorsPerTrack: 255 };
  if (forceSize) return { geometry: max, sizeBytes: sectors * 512 };
  for (let extra = 0;; extra++) {
    const g = specGeometry(sectors + extra);
    if (geometrySectors(g) === VHD_MAX_GEOMETRY_SECTORS || g.cylinders >= 65535) {
      return { geometry: max, sizeBytes: sectors * 512 };
    }
    if (geometrySectors(g) >= sectors) return { geometry: g, sizeBytes: geometrySectors(g) * 512 };
  }
}

/**
 * The virtual size of an opened disk: Hyper-V and other creators size by `Current Size`,
 * Virtual PC (and QEMU's own "qemu" images) by the CHS geometry, unless the geometry is
 * the maximum, which cannot describe a larger disk.
 */
export function footerSizeBytes(f: VhdFooter): number {
  const chs = f.cylinders * f.heads * f.sectorsPerTrack;
  if (CURRENT_SIZE_CREATORS.includes(f.creatorApp) || chs === VHD_MAX_GEOMETRY_SECTORS) {
    return f.currentSizeBytes;
  }
  return chs * 512;
}
