// VMDK extents: flat ones map straight into a file; sparse ones go through grain directory and tables

import type { BlockNode } from "../../../core/block/driver.ts";
import type { SyncIo } from "../../../core/block/sync_io.ts";
import { ImageFormatError, IoError } from "../../../core/errors.ts";
import { hostCompress } from "../../../core/host_zlib.ts";
import { zlibSync } from "../../../core/zlib.ts";
import { inflateInto } from "./_inflate.ts";
import {
  MAX_GRANULARITY_SECTORS,
  MAX_L1_ENTRIES,
  SECTOR_SIZE,
  VMDK_EXTENT_MAX_SECTORS,
  VMDK_GTE_ZEROED,
} from "./header.ts";

/** Grain tables kept in memory per extent (QEMU keeps 16; they are small). */
const L2_CACHE_ENTRIES = 64;

/** Where a cluster of an extent lives, as QEMU's get_cluster_offset answers. */
export type GrainLookup =
  | { kind: "data"; hostOffset: number }
  | { kind: "unallocated" }
  | { kind: "zeroed" }
  /** The tables point nowhere sensible (QEMU's VMDK_ERROR): reads see zeroes. */
  | { kind: "error" };

/** What every extent has. */
interface ExtentCommon {
  /** The file holding the extent (the image file itself for monolithic images). */
  readonly file: BlockNode;
  readonly io: SyncIo;
  /** Sectors of guest data. */
  readonly sectors: number;
  /** Guest byte offset where the extent starts. */
  startBytes: number;
  /** The type named in the descriptor (`FLAT`, `SPARSE`...); empty for a monolithic image. */
  readonly typeName: string;
}

/** A flat extent: guest bytes at `flatStartBytes` onward in the file. */
export interface FlatExtent extends ExtentCommon {
  readonly flat: true;
  readonly flatStartBytes: number;
}

/** The tables of a sparse extent, as read from its header. */
export interface SparseLayout {
  sectors: number;
  l1OffsetBytes: number;
  /** 0 when the extent has no redundant grain directory. */
  l1BackupOffsetBytes: number;
  l1Size: number;
  /** Entries per grain table. */
  l2Size: number;
  clusterSectors: number;
  compressed: boolean;
  hasMarker: boolean;
  hasZeroGrain: boolean;
  version: number;
}

/** Builds a flat extent. */
export function flatExtent(
  file: BlockNode,
  io: SyncIo,
  sectors: number,
  flatStartBytes: number,
  typeName: string,
): FlatExtent {
  return { flat: true, file, io, sectors, startBytes: 0, flatStartBytes, typeName };
}

/**
 * A sparse extent: the grain directory (L1) lists grain tables (L2), whose entries give
 * each grain's sector in the file (VMDK 5.0 spec, "Grain Directory and Grain Tables").
 */
export class SparseExtent implements ExtentCommon {
  readonly flat = false;
  startBytes = 0;
  readonly sectors: number;
  readonly clusterBytes: number;
  readonly layout: SparseLayout;
  readonly l1: Uint32Array;
  readonly l1Backup: Uint32Array | undefined;
  /** Where the next grain goes, in sectors (the file end rounded up to a grain). */
  nextClusterSector: number;
  #l2Cache = new Map<number, Uint32Array>();
  #compressedScratch: Uint8Array | null = null;

  constructor(
    readonly file: BlockNode,
    readonly io: SyncIo,
    layout: SparseLayout,
    readonly typeName: string,
  ) {
    if (layout.clusterSectors > MAX_GRANULARITY_SECTORS) {
      throw new ImageFormatError("Invalid granularity, image may be corrupt");
    }
    if (layout.l1Size > MAX_L1_ENTRIES) throw new ImageFormatError("L1 size too big");
    this.layout = layout;
    this.sectors = layout.sectors;
    this.clusterBytes = layout.clusterSectors * SECTOR_SIZE;
    const fileSectors = Math.ceil(file.size() / SECTOR_SIZE);
    this.nextClusterSector = Math.ceil(fileSectors / layout.clusterSectors) *
      layout.clusterSectors;
    this.l1 = this.#readTable(layout.l1OffsetBytes, layout.l1Size);
    this.l1Backup = layout.l1BackupOffsetBytes
      ? this.#readTable(layout.l1BackupOffsetBytes, layout.l1Size)
      : undefined;
  }

  #readTable(offsetBytes: number, entries: number): Uint32Array {
    const raw = new Uint8Array(entries * 4);
    this.io.readSync(offsetBytes, raw);
    const v = new DataView(raw.buffer);
    const table = new Uint32Array(entries);
    for (let i = 0; i < entries; i++) table[i] = v.getUint32(i * 4, true);
    return table;
  }

  /** The grain table at sector `l2Sector`, from the cache or the file. */
  #l2Table(l2Sector: number): Uint32Array {
    const hit = this.#l2Cache.get(l2Sector);
    if (hit) {
      // Re-insert: the Map's order is the eviction order.
      this.#l2Cache.delete(l2Sector);
      this.#l2Cache.set(l2Sector, hit);
      return hit;
    }
    const table = this.#readTable(l2Sector * SECTOR_SIZE, this.layout.l2Size);
    if (this.#l2Cache.size >= L2_CACHE_ENTRIES) {
      this.#l2Cache.delete(this.#l2Cache.keys().next().value!);
    }
    this.#l2Cache.set(l2Sector, table);
    return table;
  }

  /** Grain directory and table indexes of extent byte offset `offset`. */
  #indexes(offset: number): { l1Index: number; l2Index: number } {
    const sector = Math.floor(offset / SECTOR_SIZE);
    const l1EntrySectors = this.layout.l2Size * this.layout.clusterSectors;
    return {
      l1Index: Math.floor(sector / l1EntrySectors),
      l2Index: Math.floor(sector / this.layout.clusterSectors) % this.layout.l2Size,
    };
  }

  /** Where the grain holding extent byte `offset` lives. */
  lookup(offset: number): GrainLookup {
    const { l1Index, l2Index } = this.#indexes(offset);
    if (l1Index >= this.layout.l1Size) return { kind: "error" };
    const l2Sector = this.l1[l1Index];
    if (l2Sector === 0) return { kind: "unallocated" };
    const entry = this.#l2Table(l2Sector)[l2Index];
    if (this.layout.hasZeroGrain && entry === VMDK_GTE_ZEROED) return { kind: "zeroed" };
    if (entry === 0) return { kind: "unallocated" };
    return { kind: "data", hostOffset: entry * SECTOR_SIZE };
  }

  /** True when the grain table that would map `offset` exists (QEMU never allocates one). */
  hasGrainTable(offset: number): boolean {
    const { l1Index } = this.#indexes(offset);
    return l1Index < this.layout.l1Size && this.l1[l1Index] !== 0;
  }

  /**
   * Takes the next grain at the end of the file: `contents` (a whole grain) is written
   * there before any table points at it, so a crash leaves at worst an unused grain.
   * @returns the grain's byte offset in the file.
   */
  allocate(contents: Uint8Array): number {
    if (this.nextClusterSector >= VMDK_EXTENT_MAX_SECTORS) {
      throw new IoError("Cannot allocate a grain: the extent file is full");
    }
    const sector = this.nextClusterSector;
    this.nextClusterSector += this.layout.clusterSectors;
    this.io.writeSync(sector * SECTOR_SIZE, contents);
    return sector * SECTOR_SIZE;
  }

  /** Notes that the file now reaches `endBytes` (a compressed grain moves the end back). */
  setEnd(endBytes: number, compressed: boolean): void {
    const end = Math.ceil(endBytes / SECTOR_SIZE);
    this.nextClusterSector = compressed ? end : Math.max(this.nextClusterSector, end);
  }

  /**
   * Points the grain of extent byte `offset` at `value` (a sector, or VMDK_GTE_ZEROED)
   * in the grain table and in its redundant copy, then flushes: the data is durable
   * before the metadata that makes it visible, as in QEMU's vmdk_L2update.
   */
  setEntry(offset: number, value: number): void {
    const { l1Index, l2Index } = this.#indexes(offset);
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, value, true);
    const l2Sector = this.l1[l1Index];
    this.io.writeSync(l2Sector * SECTOR_SIZE + l2Index * 4, entry);
    if (this.l1Backup) {
      this.io.writeSync(this.l1Backup[l1Index] * SECTOR_SIZE + l2Index * 4, entry);
    }
    this.io.flushSync();
    this.#l2Cache.get(l2Sector)?.set([value], l2Index);
  }

  /**
   * Reads compressed grain data at `hostOffset` and inflates it into `out` (one whole
   * grain: a short stream is padded with zeroes).
   */
  readCompressed(hostOffset: number, out: Uint8Array): void {
    // One scratch buffer per extent (the read is synchronous, so nothing else runs while
    // it is in use): a stream of grains no longer allocates and zeroes 128 KiB each.
    const raw = this.#compressedScratch ??= new Uint8Array(this.clusterBytes * 2);
    // A deflated grain is almost always smaller than the grain: read that much (plus the
    // marker) first and the rest only when the marker says the data is longer.
    const first = Math.min(raw.length, this.clusterBytes + SECTOR_SIZE);
    this.io.readSync(hostOffset, raw.subarray(0, first));
    let data = raw;
    let length = this.clusterBytes;
    if (this.layout.hasMarker) {
      length = new DataView(raw.buffer, raw.byteOffset).getUint32(8, true);
      data = raw.subarray(12);
      if (length + 12 > first && length <= data.length) {
        this.io.readSync(hostOffset + first, raw.subarray(first));
      }
    }
    // QEMU's vmdk fails a grain it cannot inflate with EINVAL ("Invalid argument").
    if (length === 0 || length > data.length) {
      throw new IoError(
        `Invalid compressed grain at offset ${hostOffset} in '${this.file.filename}'`,
        { code: "EINVAL" },
      );
    }
    let n: number;
    try {
      n = inflateInto(data.subarray(0, length), out.subarray(0, this.clusterBytes));
    } catch {
      throw new IoError(
        `Invalid compressed grain at offset ${hostOffset} in '${this.file.filename}'`,
        { code: "EINVAL" },
      );
    }
    out.fill(0, n, this.clusterBytes);
  }

  /**
   * A grain marker (lba, size) followed by the deflated `data`, as QEMU writes a stream
   * grain: zlib's `compress()` into twice the grain's size. The host's zlib gives
   * qemu-img's very bytes; without it (no FFI permission, no libz) node:zlib's
   * `deflateSync` gives a stream as valid but not the same bytes.
   */
  static compressedGrain(lba: number, data: Uint8Array): Uint8Array {
    const host = hostCompress();
    const deflated = host?.compress(data, Math.max(data.length * 2, 64)) ??
      zlibSync().deflateSync(data);
    const out = new Uint8Array(12 + deflated.length);
    const v = new DataView(out.buffer);
    v.setBigUint64(0, BigInt(lba), true);
    v.setUint32(8, deflated.length, true);
    out.set(deflated, 12);
    return out;
  }
}

/** Any extent. */
export type Extent = FlatExtent | SparseExtent;
