// VHDX on-disk structures: file identifier, headers, region table, metadata table and items

import { ImageFormatError, NotSupportedError } from "../../../core/errors.ts";
import { setVhdxChecksum, vhdxChecksumValid } from "./crc32c.ts";
import { VHDX_FILE_SIGNATURE } from "./probe.ts";

export { probeVhdx, VHDX_FILE_SIGNATURE } from "./probe.ts";

/** 1 MiB: the unit of every VHDX object placement (MS-VHDX §2.1). */
export const MiB = 1 << 20;
/** Each of the file identifier, two headers and two region tables fills a 64 KiB block. */
export const VHDX_HEADER_BLOCK_SIZE = 64 * 1024;
export const VHDX_FILE_ID_OFFSET = 0;
export const VHDX_HEADER1_OFFSET = VHDX_HEADER_BLOCK_SIZE;
export const VHDX_HEADER2_OFFSET = 2 * VHDX_HEADER_BLOCK_SIZE;
export const VHDX_REGION_TABLE_OFFSET = 3 * VHDX_HEADER_BLOCK_SIZE;
export const VHDX_REGION_TABLE2_OFFSET = 4 * VHDX_HEADER_BLOCK_SIZE;
/** The header section ends at 1 MiB; the log usually starts there. */
export const VHDX_HEADER_SECTION_END = MiB;
/** A header is checksummed over its 4 KiB, although its fields take 80 bytes. */
export const VHDX_HEADER_SIZE = 4096;
/** Bytes of the header fields (what QEMU writes back on an update). */
export const VHDX_HEADER_FIELDS_SIZE = 80;
/** The metadata table: a 32-byte header and up to 2047 32-byte entries. */
export const VHDX_METADATA_TABLE_MAX_SIZE = 32 * 2048;
/** Metadata items of a new image start 64 KiB into the metadata region. */
export const VHDX_METADATA_ITEMS_OFFSET = 64 * 1024;

export const VHDX_HEADER_SIGNATURE = "head";
export const VHDX_REGION_SIGNATURE = "regi";
export const VHDX_METADATA_SIGNATURE = "metadata";

/** Region table entry flag: a reader must understand the region to open the file. */
export const VHDX_REGION_ENTRY_REQUIRED = 0x1;
/** Metadata entry flags. */
export const VHDX_META_FLAGS_IS_USER = 0x1;
export const VHDX_META_FLAGS_IS_VIRTUAL_DISK = 0x2;
export const VHDX_META_FLAGS_IS_REQUIRED = 0x4;
/** File parameter flags: a fixed image, and a differencing image. */
export const VHDX_PARAMS_LEAVE_BLOCKS_ALLOCED = 0x1;
export const VHDX_PARAMS_HAS_PARENT = 0x2;

/** Payload block sizes a reader accepts. */
export const VHDX_BLOCK_SIZE_MIN = MiB;
export const VHDX_BLOCK_SIZE_MAX = 256 * MiB;
/** Sectors a sector bitmap block describes (MS-VHDX §2.5). */
export const VHDX_MAX_SECTORS_PER_BLOCK = 1 << 23;
/** The largest virtual disk: 64 TiB. */
export const VHDX_MAX_IMAGE_SIZE = 64 * 1024 * 1024 * MiB;

/**
 * The bytes of a GUID as VHDX stores it (the Microsoft layout: the first three
 * groups little-endian, the last eight bytes as written).
 */
export function guidBytes(text: string): Uint8Array {
  const hex = text.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`Invalid GUID '${text}'`);
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** Region GUIDs (MS-VHDX §2.2.3.2). */
export const BAT_GUID = guidBytes("2DC27766-F623-4200-9D64-115E9BFD4A08");
export const METADATA_GUID = guidBytes("8B7CA206-4790-4B9A-B8FE-575F050F886E");
/** Metadata item GUIDs (MS-VHDX §2.6.2). */
export const FILE_PARAMETERS_GUID = guidBytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
export const VIRTUAL_DISK_SIZE_GUID = guidBytes("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
export const PAGE83_DATA_GUID = guidBytes("BECA12AB-B2E6-4523-93EF-C309E000C746");
export const LOGICAL_SECTOR_SIZE_GUID = guidBytes("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
export const PHYSICAL_SECTOR_SIZE_GUID = guidBytes("CDA348C7-445D-4471-9CC9-E9885251C556");
export const PARENT_LOCATOR_GUID = guidBytes("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

/** A fresh random (version 4) GUID. */
export function randomGuid(): Uint8Array {
  const g = crypto.getRandomValues(new Uint8Array(16));
  g[7] = (g[7] & 0x0f) | 0x40; // data3's high nibble, stored little-endian
  g[8] = (g[8] & 0x3f) | 0x80;
  return g;
}

/** True when two GUIDs are the same bytes. */
export function guidEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True for the all-zero GUID (no log, in a header). */
export function guidIsZero(g: Uint8Array): boolean {
  return g.every((b) => b === 0);
}

function ascii(buf: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...buf.subarray(at, at + len));
}

function putAscii(buf: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) buf[at + i] = text.charCodeAt(i);
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

function putU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

/** The file type identifier: the signature and the creator in UTF-16LE (diagnostic only). */
export function encodeFileIdentifier(creator: string): Uint8Array {
  const buf = new Uint8Array(8 + creator.length * 2);
  putAscii(buf, 0, VHDX_FILE_SIGNATURE);
  for (let i = 0; i < creator.length; i++) {
    view(buf).setUint16(8 + i * 2, creator.charCodeAt(i), true);
  }
  return buf;
}

/** One of the two headers (MS-VHDX §2.2.2). */
export interface VhdxHeader {
  sequenceNumber: number;
  fileWriteGuid: Uint8Array;
  dataWriteGuid: Uint8Array;
  /** All zero when the log is empty. */
  logGuid: Uint8Array;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

/** Decodes a 4 KiB header block; null when its signature, checksum or version is wrong. */
export function parseHeader(buf: Uint8Array): VhdxHeader | null {
  if (buf.length < VHDX_HEADER_SIZE || ascii(buf, 0, 4) !== VHDX_HEADER_SIGNATURE) return null;
  if (!vhdxChecksumValid(buf.subarray(0, VHDX_HEADER_SIZE), 4)) return null;
  const v = view(buf);
  const h: VhdxHeader = {
    sequenceNumber: u64(v, 8),
    fileWriteGuid: buf.slice(16, 32),
    dataWriteGuid: buf.slice(32, 48),
    logGuid: buf.slice(48, 64),
    logVersion: v.getUint16(64, true),
    version: v.getUint16(66, true),
    logLength: v.getUint32(68, true),
    logOffset: u64(v, 72),
  };
  return h.version === 1 ? h : null;
}

/**
 * Encodes a header into `block` (the 4 KiB it lives in, whose reserved bytes are
 * kept, as they count in the checksum) and checksums it.
 */
export function encodeHeader(h: VhdxHeader, block = new Uint8Array(VHDX_HEADER_SIZE)): Uint8Array {
  const v = view(block);
  putAscii(block, 0, VHDX_HEADER_SIGNATURE);
  putU64(v, 8, h.sequenceNumber);
  block.set(h.fileWriteGuid, 16);
  block.set(h.dataWriteGuid, 32);
  block.set(h.logGuid, 48);
  v.setUint16(64, h.logVersion, true);
  v.setUint16(66, h.version, true);
  v.setUint32(68, h.logLength, true);
  putU64(v, 72, h.logOffset);
  setVhdxChecksum(block, 4);
  return block;
}

/**
 * Picks the current header as QEMU does: the only valid one, or the valid one with
 * the higher sequence number; two valid headers with one sequence number must be identical.
 * @returns the index (0 or 1) of the current header.
 */
export function currentHeaderIndex(h1: VhdxHeader | null, h2: VhdxHeader | null): number {
  if (h1 && !h2) return 0;
  if (!h1 && h2) return 1;
  if (!h1 || !h2) throw new ImageFormatError("No valid VHDX header found");
  if (h1.sequenceNumber > h2.sequenceNumber) return 0;
  if (h2.sequenceNumber > h1.sequenceNumber) return 1;
  // Disk2VHD writes two identical headers with one sequence number.
  const same = guidEqual(h1.fileWriteGuid, h2.fileWriteGuid) &&
    guidEqual(h1.dataWriteGuid, h2.dataWriteGuid) && guidEqual(h1.logGuid, h2.logGuid) &&
    h1.logLength === h2.logLength && h1.logOffset === h2.logOffset &&
    h1.logVersion === h2.logVersion;
  if (!same) throw new ImageFormatError("No valid VHDX header found");
  return 0;
}

/** Where one region sits in the file. */
export interface VhdxRegion {
  offset: number;
  length: number;
}

/** The two regions every VHDX file has. */
export interface VhdxRegions {
  bat: VhdxRegion;
  metadata: VhdxRegion;
}

/** Decodes and validates the 64 KiB region table. */
export function parseRegionTable(buf: Uint8Array): VhdxRegions & { all: VhdxRegion[] } {
  if (ascii(buf, 0, 4) !== VHDX_REGION_SIGNATURE) {
    throw new ImageFormatError("Invalid VHDX region table signature");
  }
  if (!vhdxChecksumValid(buf.subarray(0, VHDX_HEADER_BLOCK_SIZE), 4)) {
    throw new ImageFormatError("Invalid VHDX region table checksum");
  }
  const v = view(buf);
  const count = v.getUint32(8, true);
  if (count > 2047) throw new ImageFormatError(`Too many VHDX region table entries: ${count}`);
  let bat: VhdxRegion | undefined;
  let metadata: VhdxRegion | undefined;
  const all: VhdxRegion[] = [];
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    const guid = buf.subarray(at, at + 16);
    const region = { offset: u64(v, at + 16), length: v.getUint32(at + 24, true) };
    const flags = v.getUint32(at + 28, true);
    if (region.offset % MiB !== 0 || region.length % MiB !== 0) {
      throw new ImageFormatError(
        `VHDX region ${region.offset}-${region.offset + region.length} is not 1 MiB aligned`,
      );
    }
    all.push(region);
    if (guidEqual(guid, BAT_GUID)) {
      if (bat) throw new ImageFormatError("Duplicate VHDX BAT region");
      bat = region;
    } else if (guidEqual(guid, METADATA_GUID)) {
      if (metadata) throw new ImageFormatError("Duplicate VHDX metadata region");
      metadata = region;
    } else if (flags & VHDX_REGION_ENTRY_REQUIRED) {
      throw new NotSupportedError("VHDX image has a required region vmkit does not know");
    }
  }
  if (!bat || !metadata) throw new ImageFormatError("VHDX region table lacks the BAT or metadata");
  return { bat, metadata, all };
}

/** Encodes the region table of a new image (BAT, then metadata), checksummed. */
export function encodeRegionTable(regions: VhdxRegions): Uint8Array {
  const buf = new Uint8Array(VHDX_HEADER_BLOCK_SIZE);
  const v = view(buf);
  putAscii(buf, 0, VHDX_REGION_SIGNATURE);
  v.setUint32(8, 2, true);
  const entries: [Uint8Array, VhdxRegion][] = [[BAT_GUID, regions.bat], [
    METADATA_GUID,
    regions.metadata,
  ]];
  for (const [i, [guid, r]] of entries.entries()) {
    const at = 16 + i * 32;
    buf.set(guid, at);
    putU64(v, at + 16, r.offset);
    v.setUint32(at + 24, r.length, true);
  }
  setVhdxChecksum(buf, 4);
  return buf;
}

/** The metadata items vmkit reads (MS-VHDX §2.6.2). */
export interface VhdxMetadata {
  blockSize: number;
  /** LeaveBlocksAllocated: a fixed image. */
  fixed: boolean;
  hasParent: boolean;
  virtualDiskSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  page83: Uint8Array;
}

interface MetadataEntry {
  offset: number;
  length: number;
}

const REQUIRED_ITEMS: [string, Uint8Array][] = [
  ["file parameters", FILE_PARAMETERS_GUID],
  ["virtual disk size", VIRTUAL_DISK_SIZE_GUID],
  ["page 83 data", PAGE83_DATA_GUID],
  ["logical sector size", LOGICAL_SECTOR_SIZE_GUID],
  ["physical sector size", PHYSICAL_SECTOR_SIZE_GUID],
];

/**
 * Decodes the metadata table and the items it points to. `read(offset, length)`
 * returns bytes of the metadata region (offsets relative to its start).
 */
export function parseMetadata(
  table: Uint8Array,
  region: VhdxRegion,
  readItem: (offset: number, length: number) => Uint8Array,
): VhdxMetadata {
  if (ascii(table, 0, 8) !== VHDX_METADATA_SIGNATURE) {
    throw new ImageFormatError("Invalid VHDX metadata table signature");
  }
  const v = view(table);
  const count = v.getUint16(10, true);
  if (count > 2047) throw new ImageFormatError(`Too many VHDX metadata entries: ${count}`);
  const found = new Map<number, MetadataEntry>();
  let parentLocator = false;
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const guid = table.subarray(at, at + 16);
    const entry = { offset: v.getUint32(at + 16, true), length: v.getUint32(at + 20, true) };
    const flags = v.getUint32(at + 24, true);
    const known = REQUIRED_ITEMS.findIndex(([, g]) => guidEqual(g, guid));
    if (known >= 0) {
      if (found.has(known)) {
        throw new ImageFormatError(`Duplicate VHDX metadata item: ${REQUIRED_ITEMS[known][0]}`);
      }
      if (entry.offset + entry.length > region.length || entry.offset < 32) {
        throw new ImageFormatError(
          `VHDX metadata item ${REQUIRED_ITEMS[known][0]} lies outside the metadata region`,
        );
      }
      found.set(known, entry);
    } else if (guidEqual(guid, PARENT_LOCATOR_GUID)) {
      parentLocator = true;
    } else if (flags & VHDX_META_FLAGS_IS_REQUIRED) {
      throw new NotSupportedError("VHDX image has a required metadata item vmkit does not know");
    }
  }
  for (const [i, [name]] of REQUIRED_ITEMS.entries()) {
    if (!found.has(i)) throw new ImageFormatError(`VHDX metadata lacks the ${name} item`);
  }
  const bytes = (i: number, minLength: number): Uint8Array => {
    const e = found.get(i)!;
    if (e.length < minLength) {
      throw new ImageFormatError(`VHDX metadata item ${REQUIRED_ITEMS[i][0]} is too short`);
    }
    return readItem(e.offset, minLength);
  };
  const item = (i: number, minLength: number): DataView => view(bytes(i, minLength));
  const params = item(0, 8);
  const dataBits = params.getUint32(4, true);
  const md: VhdxMetadata = {
    blockSize: params.getUint32(0, true),
    fixed: (dataBits & VHDX_PARAMS_LEAVE_BLOCKS_ALLOCED) !== 0,
    hasParent: (dataBits & VHDX_PARAMS_HAS_PARENT) !== 0,
    virtualDiskSize: u64(item(1, 8), 0),
    page83: bytes(2, 16).slice(),
    logicalSectorSize: item(3, 4).getUint32(0, true),
    physicalSectorSize: item(4, 4).getUint32(0, true),
  };
  if (md.hasParent) {
    if (!parentLocator) {
      throw new ImageFormatError("VHDX image has a parent but no parent locator");
    }
    throw new NotSupportedError("VHDX differencing images are not supported");
  }
  const bs = md.blockSize;
  if (bs < VHDX_BLOCK_SIZE_MIN || bs > VHDX_BLOCK_SIZE_MAX || (bs & (bs - 1)) !== 0) {
    throw new ImageFormatError(`Invalid VHDX block size ${bs}`);
  }
  if (md.logicalSectorSize !== 512 && md.logicalSectorSize !== 4096) {
    throw new ImageFormatError(`Invalid VHDX logical sector size ${md.logicalSectorSize}`);
  }
  if (md.virtualDiskSize % md.logicalSectorSize !== 0) {
    throw new ImageFormatError(
      `VHDX virtual disk size ${md.virtualDiskSize} is not a multiple of the sector size`,
    );
  }
  if (md.virtualDiskSize > VHDX_MAX_IMAGE_SIZE) {
    throw new ImageFormatError(`VHDX virtual disk size ${md.virtualDiskSize} exceeds 64 TiB`);
  }
  return md;
}

/**
 * Encodes the metadata table (its 64 KiB block) and the 40 bytes of items that
 * follow it, in the order and with the flags QEMU writes.
 */
export function encodeMetadata(md: VhdxMetadata): { table: Uint8Array; items: Uint8Array } {
  const table = new Uint8Array(VHDX_HEADER_BLOCK_SIZE);
  const tv = view(table);
  putAscii(table, 0, VHDX_METADATA_SIGNATURE);
  tv.setUint16(10, 5, true);
  const items = new Uint8Array(40);
  const iv = view(items);
  iv.setUint32(0, md.blockSize, true);
  iv.setUint32(4, md.fixed ? VHDX_PARAMS_LEAVE_BLOCKS_ALLOCED : 0, true);
  putU64(iv, 8, md.virtualDiskSize);
  items.set(md.page83, 16);
  iv.setUint32(32, md.logicalSectorSize, true);
  iv.setUint32(36, md.physicalSectorSize, true);
  const layout: [Uint8Array, number, number, number][] = [
    [FILE_PARAMETERS_GUID, 0, 8, VHDX_META_FLAGS_IS_REQUIRED],
    [VIRTUAL_DISK_SIZE_GUID, 8, 8, VHDX_META_FLAGS_IS_REQUIRED | VHDX_META_FLAGS_IS_VIRTUAL_DISK],
    [PAGE83_DATA_GUID, 16, 16, VHDX_META_FLAGS_IS_REQUIRED | VHDX_META_FLAGS_IS_VIRTUAL_DISK],
    [
      LOGICAL_SECTOR_SIZE_GUID,
      32,
      4,
      VHDX_META_FLAGS_IS_REQUIRED | VHDX_META_FLAGS_IS_VIRTUAL_DISK,
    ],
    [
      PHYSICAL_SECTOR_SIZE_GUID,
      36,
      4,
      VHDX_META_FLAGS_IS_REQUIRED | VHDX_META_FLAGS_IS_VIRTUAL_DISK,
    ],
  ];
  for (const [i, [guid, at, length, flags]] of layout.entries()) {
    const e = 32 + i * 32;
    table.set(guid, e);
    tv.setUint32(e + 16, VHDX_METADATA_ITEMS_OFFSET + at, true);
    tv.setUint32(e + 20, length, true);
    tv.setUint32(e + 24, flags, true);
  }
  return { table, items };
}

/** Payload block states of a BAT entry (MS-VHDX §2.5.1.1). */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
/** The unmapped state of the 0.95 draft of the spec, which QEMU also reads as zeroes. */
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 3;
export const PAYLOAD_BLOCK_UNMAPPED = 5;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
/** The low three bits of a BAT entry are its state; bits 20-63 the offset in MiB. */
export const VHDX_BAT_STATE_BIT_MASK = 0x7;

/** The geometry every BAT computation needs. */
export interface BatGeometry {
  blockSize: number;
  /** Payload blocks per sector bitmap block. */
  chunkRatio: number;
  /** Payload blocks covering the disk. */
  dataBlocks: number;
  /** BAT entries: payload entries with a sector bitmap entry after each chunk. */
  batEntries: number;
}

/**
 * The BAT geometry of a disk, computed as QEMU does, including its 32-bit
 * arithmetic for an empty disk (which gives a BAT of millions of entries).
 */
export function batGeometry(
  virtualDiskSize: number,
  blockSize: number,
  logicalSectorSize: number,
): BatGeometry {
  const chunkRatio = (VHDX_MAX_SECTORS_PER_BLOCK * logicalSectorSize) / blockSize;
  const dataBlocks = Math.ceil(virtualDiskSize / blockSize);
  const chunkBits = Math.log2(chunkRatio);
  const bitmapEntries = ((dataBlocks - 1) >>> 0) >>> chunkBits;
  return { blockSize, chunkRatio, dataBlocks, batEntries: dataBlocks + bitmapEntries };
}

/** The BAT index of payload block `block` (a sector bitmap entry follows each chunk). */
export function batIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}
