// qcow2 persistent dirty bitmaps on disk: the bitmaps extension, the bitmap directory and
// bitmap tables, with every check QEMU makes before it trusts them (qcow2.txt "Bitmaps")

import { ImageFormatError } from "../../../core/errors.ts";
import type { SyncFile } from "./layout.ts";

/** Bitmap directory entry limits (QEMU's qcow2-bitmap.c). */
export const BME_MAX_TABLE_SIZE = 0x8000000;
/** The largest bitmap QEMU keeps in memory, in serialized bytes (512 MiB). */
export const BME_MAX_PHYS_SIZE = 0x20000000;
export const BME_MAX_GRANULARITY_BITS = 31;
export const BME_MIN_GRANULARITY_BITS = 9;
export const BME_MAX_NAME_SIZE = 1023;
/** Directory entry flags. */
export const BME_FLAG_IN_USE = 1 << 0;
export const BME_FLAG_AUTO = 1 << 1;
export const BME_RESERVED_FLAGS = 0xfffffffc;
/** Bitmap table entry: bits 1..8 and 56..63 are reserved; bit 0 means "all ones" without an offset. */
export const BME_TABLE_ENTRY_FLAG_ALL_ONES = 1;
/** The only bitmap type: dirty tracking. */
export const BT_DIRTY_TRACKING_BITMAP = 1;
/** QEMU's limits on the bitmaps of one image (qcow2.h). */
export const QCOW2_MAX_BITMAPS = 65535;
export const QCOW2_MAX_BITMAP_DIRECTORY_SIZE = 1024 * QCOW2_MAX_BITMAPS;
/** Bytes of the bitmaps header extension. */
export const BITMAPS_EXTENSION_BYTES = 24;
/** Bytes of a directory entry before its name. */
const DIR_ENTRY_HEADER_BYTES = 24;

/** The bitmaps header extension: where the directory is and how many bitmaps it lists. */
export interface BitmapsExtension {
  nbBitmaps: number;
  directorySize: number;
  directoryOffset: number;
}

/** One bitmap directory entry. */
export interface BitmapDirEntry {
  tableOffset: number;
  /** Entries in the bitmap table (one per cluster of serialized bits). */
  tableSize: number;
  flags: number;
  granularityBits: number;
  name: string;
}

/** One bitmap table entry, decoded. */
export interface BitmapTableEntry {
  /** Host offset of the data cluster, 0 when none. */
  offset: number;
  /** With no data cluster: every bit of the cluster is set. */
  allOnes: boolean;
}

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

function u64(view: DataView, at: number): number {
  return view.getUint32(at) * 0x100000000 + view.getUint32(at + 4);
}

function putU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x100000000));
  view.setUint32(at + 4, value >>> 0);
}

/**
 * Decodes the bitmaps extension with QEMU's checks (qcow2_read_extensions).
 * @throws ImageFormatError in QEMU's words
 */
export function parseBitmapsExtension(data: Uint8Array, clusterSize: number): BitmapsExtension {
  if (data.length !== BITMAPS_EXTENSION_BYTES) {
    throw new ImageFormatError("bitmaps_ext: Invalid extension length");
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nbBitmaps = view.getUint32(0);
  if (view.getUint32(4) !== 0) {
    throw new ImageFormatError("bitmaps_ext: Reserved field is not zero");
  }
  const directorySize = u64(view, 8);
  const directoryOffset = u64(view, 16);
  if (nbBitmaps > QCOW2_MAX_BITMAPS) {
    throw new ImageFormatError(
      `bitmaps_ext: Image has ${nbBitmaps} bitmaps, exceeding the QEMU supported maximum of ${QCOW2_MAX_BITMAPS}`,
    );
  }
  if (nbBitmaps === 0) throw new ImageFormatError("found bitmaps extension with zero bitmaps");
  if (directoryOffset % clusterSize !== 0) {
    throw new ImageFormatError("bitmaps_ext: invalid bitmap directory offset");
  }
  if (directorySize > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
    throw new ImageFormatError(
      `bitmaps_ext: bitmap directory size (${directorySize}) exceeds the maximum supported size (${QCOW2_MAX_BITMAP_DIRECTORY_SIZE})`,
    );
  }
  return { nbBitmaps, directorySize, directoryOffset };
}

/** Encodes the bitmaps extension. */
export function encodeBitmapsExtension(ext: BitmapsExtension): Uint8Array {
  const data = new Uint8Array(BITMAPS_EXTENSION_BYTES);
  const view = new DataView(data.buffer);
  view.setUint32(0, ext.nbBitmaps);
  putU64(view, 8, ext.directorySize);
  putU64(view, 16, ext.directoryOffset);
  return data;
}

/** Bytes a directory entry takes with a name of `nameBytes` bytes (8-aligned). */
export function dirEntryBytes(nameBytes: number): number {
  return (DIR_ENTRY_HEADER_BYTES + nameBytes + 7) & ~7;
}

/** The encoded length of a bitmap name. */
export function nameBytes(name: string): number {
  return encoder.encode(name).length;
}

/** Serialized bytes of a bitmap of `sizeBytes` at `granularity` (whole 64-bit words). */
export function serializedBytes(sizeBytes: number, granularity: number): number {
  return Math.ceil(Math.ceil(sizeBytes / granularity) / 64) * 8;
}

/**
 * QEMU's check_dir_entry: the shape of an entry, its table's place and size, and a
 * table big enough for the disk (unless the bitmap is in use).
 */
export function dirEntryValid(e: BitmapDirEntry, clusterSize: number, diskBytes: number): boolean {
  return entryShapeValid(e, clusterSize) && entrySizeValid(e, clusterSize, diskBytes);
}

function entryShapeValid(e: BitmapDirEntry, clusterSize: number): boolean {
  return e.tableSize !== 0 && e.tableOffset !== 0 && e.tableOffset % clusterSize === 0 &&
    e.tableSize <= BME_MAX_TABLE_SIZE && e.granularityBits <= BME_MAX_GRANULARITY_BITS &&
    e.granularityBits >= BME_MIN_GRANULARITY_BITS && (e.flags & BME_RESERVED_FLAGS) === 0;
}

function entrySizeValid(e: BitmapDirEntry, clusterSize: number, diskBytes: number): boolean {
  const physBytes = e.tableSize * clusterSize;
  if (physBytes > BME_MAX_PHYS_SIZE) return false;
  return (e.flags & BME_FLAG_IN_USE) !== 0 || diskBytes <= physBytes * 8 * 2 ** e.granularityBits;
}

/** Reads `bytes` at `offset`; what lies past the end of the file reads as zeroes, as QEMU's file driver. */
export function readClamped(file: SyncFile, offset: number, bytes: number): Uint8Array {
  const buf = new Uint8Array(bytes);
  const available = Math.max(0, Math.min(bytes, file.size() - offset));
  if (available > 0) file.readSync(offset, buf.subarray(0, available));
  return buf;
}

/**
 * Reads and checks the bitmap directory (QEMU's bitmap_list_load).
 * @throws ImageFormatError in QEMU's words
 */
export function readDirectory(
  file: SyncFile,
  ext: BitmapsExtension,
  clusterSize: number,
  diskBytes: number,
): BitmapDirEntry[] {
  if (ext.directorySize === 0) {
    throw new ImageFormatError("Requested bitmap directory size is zero");
  }
  const dir = readClamped(file, ext.directoryOffset, ext.directorySize);
  const view = new DataView(dir.buffer);
  const entries: BitmapDirEntry[] = [];
  let at = 0;
  while (at < dir.length) {
    if (at + DIR_ENTRY_HEADER_BYTES > dir.length) {
      throw new ImageFormatError("Broken bitmap directory");
    }
    if (entries.length + 1 > ext.nbBitmaps) {
      throw new ImageFormatError("More bitmaps found than specified in header extension");
    }
    const nameSize = view.getUint16(at + 18);
    const extraDataSize = view.getUint32(at + 20);
    const size = DIR_ENTRY_HEADER_BYTES + nameSize + extraDataSize;
    const next = at + ((size + 7) & ~7);
    if (next > dir.length) throw new ImageFormatError("Broken bitmap directory");
    if (extraDataSize !== 0) throw new ImageFormatError("Bitmap extra data is not supported");
    const nameStart = at + DIR_ENTRY_HEADER_BYTES;
    const e: BitmapDirEntry = {
      tableOffset: u64(view, at),
      tableSize: view.getUint32(at + 8),
      flags: view.getUint32(at + 12),
      granularityBits: dir[at + 17],
      name: decoder.decode(dir.subarray(nameStart, nameStart + nameSize)),
    };
    const type = dir[at + 16];
    if (
      type !== BT_DIRTY_TRACKING_BITMAP || nameSize > BME_MAX_NAME_SIZE ||
      !dirEntryValid(e, clusterSize, diskBytes)
    ) {
      // QEMU prints the name with %.*s: up to its first NUL.
      const shown = e.name.split("\0")[0];
      throw new ImageFormatError(`Bitmap '${shown}' doesn't satisfy the constraints`);
    }
    entries.push(e);
    at = next;
  }
  if (entries.length !== ext.nbBitmaps) {
    throw new ImageFormatError("Less bitmaps found than specified in header extension");
  }
  return entries;
}

/** Encodes a bitmap directory (QEMU's bitmap_list_store). */
export function encodeDirectory(entries: readonly BitmapDirEntry[]): Uint8Array {
  const names = entries.map((e) => encoder.encode(e.name));
  const total = names.reduce((sum, n) => sum + dirEntryBytes(n.length), 0);
  const dir = new Uint8Array(total);
  const view = new DataView(dir.buffer);
  let at = 0;
  entries.forEach((e, i) => {
    putU64(view, at, e.tableOffset);
    view.setUint32(at + 8, e.tableSize);
    view.setUint32(at + 12, e.flags);
    dir[at + 16] = BT_DIRTY_TRACKING_BITMAP;
    dir[at + 17] = e.granularityBits;
    view.setUint16(at + 18, names[i].length);
    dir.set(names[i], at + DIR_ENTRY_HEADER_BYTES);
    at += dirEntryBytes(names[i].length);
  });
  return dir;
}

/** Decodes one table entry; undefined when QEMU's check_table_entry refuses it. */
export function decodeTableEntry(
  hi: number,
  lo: number,
  clusterSize: number,
): BitmapTableEntry | undefined {
  // Reserved: bits 56..63 and 1..8.
  if ((hi & 0xff000000) !== 0 || (lo & 0x1fe) !== 0) return undefined;
  const offset = hi * 0x100000000 + (lo - (lo & 0x1ff));
  const allOnes = (lo & BME_TABLE_ENTRY_FLAG_ALL_ONES) !== 0;
  if (offset !== 0 && (allOnes || offset % clusterSize !== 0)) return undefined;
  return { offset, allOnes: offset === 0 && allOnes };
}

/**
 * Reads a bitmap table and checks every entry (QEMU's bitmap_table_load). Only the part
 * inside the file is read (the rest reads as zeroes: clean clusters), so the work stays
 * within the file's size.
 * @returns the entries that are not zero, by index, or undefined when one is invalid
 */
export function readBitmapTable(
  file: SyncFile,
  entry: Pick<BitmapDirEntry, "tableOffset" | "tableSize">,
  clusterSize: number,
): Array<[number, BitmapTableEntry]> | undefined {
  const inFile = Math.max(0, Math.min(entry.tableSize * 8, file.size() - entry.tableOffset));
  const raw = readClamped(file, entry.tableOffset, Math.floor(inFile / 8) * 8);
  const view = new DataView(raw.buffer);
  const out: Array<[number, BitmapTableEntry]> = [];
  for (let i = 0; i < raw.length / 8; i++) {
    const hi = view.getUint32(i * 8);
    const lo = view.getUint32(i * 8 + 4);
    if (hi === 0 && lo === 0) continue;
    const e = decodeTableEntry(hi, lo, clusterSize);
    if (!e) return undefined;
    out.push([i, e]);
  }
  return out;
}

/** Encodes a bitmap table of data cluster offsets (0 for a clean cluster). */
export function encodeBitmapTable(offsets: readonly number[]): Uint8Array {
  const raw = new Uint8Array(offsets.length * 8);
  const view = new DataView(raw.buffer);
  offsets.forEach((o, i) => putU64(view, i * 8, o));
  return raw;
}
