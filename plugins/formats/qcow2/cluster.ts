// qcow2 cluster mapping: guest offset -> host offset through the L1 table and cached L2 slices

import { type CacheEntry, MetadataCache } from "../../../core/block/metadata_cache.ts";
import { IoError } from "../../../core/errors.ts";
import { QCOW_MAX_L1_SIZE } from "./header.ts";
import {
  entryOffset,
  type Layout,
  offsetHi,
  offsetLo,
  QCOW2_SUBCLUSTER_COMPRESSED,
  QCOW2_SUBCLUSTER_INVALID,
  QCOW2_SUBCLUSTER_NORMAL,
  QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC,
  QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN,
  QCOW2_SUBCLUSTER_ZERO_ALLOC,
  QCOW2_SUBCLUSTER_ZERO_PLAIN,
  QCOW_OFLAG_COMPRESSED_HI,
  QCOW_OFLAG_COPIED_HI,
  QCOW_OFLAG_ZERO,
  type SyncFile,
} from "./layout.ts";
import type { Refcounts } from "./refcount.ts";

/** The answer of {@linkcode ClusterMap.lookup}, reused between calls to keep the read path allocation-free. */
export interface Mapping {
  /** A `QCOW2_SUBCLUSTER_*` type. */
  type: number;
  /** Host offset of the queried byte (normal and allocated-zero runs), or of the compressed data. */
  hostOffset: number;
  /** Bytes from the queried offset with this type (and contiguous host offsets). */
  bytes: number;
  /** Host bytes of the compressed data (compressed clusters only). */
  compressedBytes: number;
}

/** A fresh {@linkcode Mapping}. */
export function newMapping(): Mapping {
  return { type: 0, hostOffset: 0, bytes: 0, compressedBytes: 0 };
}

/** Classifies one (sub)cluster from its L2 entry halves and, with extended L2, its bitmap. */
export function subclusterType(
  hi: number,
  lo: number,
  bitmapZero: number,
  bitmapAlloc: number,
  sc: number,
  extended: boolean,
  hasDataFile: boolean,
): number {
  if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) return QCOW2_SUBCLUSTER_COMPRESSED;
  const allocated = (hi & 0x00ffffff) !== 0 || (lo & 0xfffffe00) !== 0 ||
    (hasDataFile && (hi & QCOW_OFLAG_COPIED_HI) !== 0);
  if (!extended) {
    if ((lo & QCOW_OFLAG_ZERO) !== 0) {
      return allocated ? QCOW2_SUBCLUSTER_ZERO_ALLOC : QCOW2_SUBCLUSTER_ZERO_PLAIN;
    }
    return allocated ? QCOW2_SUBCLUSTER_NORMAL : QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
  }
  const a = (bitmapAlloc >>> sc) & 1;
  const z = (bitmapZero >>> sc) & 1;
  if (a && z) return QCOW2_SUBCLUSTER_INVALID;
  if (allocated) {
    if (a) return QCOW2_SUBCLUSTER_NORMAL;
    return z ? QCOW2_SUBCLUSTER_ZERO_ALLOC : QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC;
  }
  if (a) return QCOW2_SUBCLUSTER_INVALID;
  return z ? QCOW2_SUBCLUSTER_ZERO_PLAIN : QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
}

/** Where the L1 table lives; the owner writes it into the header. */
export interface L1Location {
  offset: number;
  size: number;
}

/**
 * The active L1 table (in memory, written through) and the L2 slice cache. Lookup
 * is synchronous: on a cache hit it is one map probe and a few 32-bit reads.
 */
export class ClusterMap {
  #layout: Layout;
  #file: SyncFile;
  #cache: MetadataCache;
  #l1: Uint8Array;
  #l1View: DataView;
  #l1Size: number;
  #l1Offset: number;
  #sliceBytes: number;
  #sliceEntries: number;
  #hasDataFile: boolean;
  #onL1Moved: (loc: L1Location) => void;

  constructor(
    layout: Layout,
    file: SyncFile,
    options: {
      l1: L1Location;
      cacheEntries: number;
      sliceBytes: number;
      hasDataFile: boolean;
      onL1Moved: (loc: L1Location) => void;
    },
  ) {
    this.#layout = layout;
    this.#file = file;
    this.#sliceBytes = options.sliceBytes;
    this.#sliceEntries = options.sliceBytes / layout.l2EntryBytes;
    this.#cache = new MetadataCache(file, {
      entries: options.cacheEntries,
      entryBytes: options.sliceBytes,
      name: "L2",
    });
    this.#hasDataFile = options.hasDataFile;
    this.#onL1Moved = options.onL1Moved;
    this.#l1Size = options.l1.size;
    this.#l1Offset = options.l1.offset;
    this.#l1 = new Uint8Array(this.#l1Size * 8);
    if (this.#l1Size > 0) file.readSync(this.#l1Offset, this.#l1);
    this.#l1View = new DataView(this.#l1.buffer);
  }

  /** L2 entries in one cache slice (a whole table unless the cache is smaller than the disk needs). */
  get sliceEntries(): number {
    return this.#sliceEntries;
  }

  /** The L2 slice cache. */
  get cache(): MetadataCache {
    return this.#cache;
  }
  /** Entries in the active L1 table. */
  get l1Size(): number {
    return this.#l1Size;
  }
  /** Host offset of the active L1 table. */
  get l1Offset(): number {
    return this.#l1Offset;
  }
  /** Bytes per L2 cache entry. */
  get sliceBytes(): number {
    return this.#sliceBytes;
  }

  /** The L2 table offset in L1 entry `i` (0 when unallocated). */
  l2Offset(i: number): number {
    if (i >= this.#l1Size) return 0;
    return entryOffset(this.#l1View.getUint32(i * 8), this.#l1View.getUint32(i * 8 + 4));
  }

  /** L1 entry `i` as its raw halves. */
  l1Raw(i: number): [number, number] {
    return [this.#l1View.getUint32(i * 8), this.#l1View.getUint32(i * 8 + 4)];
  }

  /** A copy of the active L1 table's entries, as stored (big-endian). */
  copyL1(): Uint8Array {
    return this.#l1.slice(0, this.#l1Size * 8);
  }

  /**
   * Replaces every entry of the active L1 table (snapshot revert), in memory and
   * on disk; `table` holds at most `l1Size` entries, the rest become zero.
   */
  replaceL1(table: Uint8Array): void {
    this.#l1.fill(0);
    this.#l1.set(table.subarray(0, this.#l1.length));
    this.#file.writeSync(this.#l1Offset, this.#l1);
    this.#file.syncSync();
  }

  /**
   * Points lookups at another L1 table, in memory only (a snapshot's, for
   * `convert -l`); the image must be read-only, as nothing may be written through it.
   */
  useL1InMemory(table: Uint8Array, offset: number): void {
    this.#l1 = table;
    this.#l1Size = table.length / 8;
    this.#l1Offset = offset;
    this.#l1View = new DataView(table.buffer, table.byteOffset, table.length);
  }

  /** Writes L1 entry `i` in memory and on disk. */
  setL1(i: number, hi: number, lo: number): void {
    this.#l1View.setUint32(i * 8, hi);
    this.#l1View.setUint32(i * 8 + 4, lo);
    this.#file.writeSync(this.#l1Offset + i * 8, this.#l1.subarray(i * 8, i * 8 + 8));
  }

  /**
   * Maps the guest range starting at `offset` (at most `maxBytes`, which must not
   * cross the end of the image) to one run of equal type, as `qcow2_get_host_offset`.
   */
  lookup(offset: number, maxBytes: number, m: Mapping): void {
    const L = this.#layout;
    const cs = L.clusterSize;
    const clusterIndex = Math.floor(offset / cs);
    const inCluster = offset - clusterIndex * cs;
    const l1Index = Math.floor(clusterIndex / L.l2Entries);
    const l2Index = clusterIndex - l1Index * L.l2Entries;
    m.compressedBytes = 0;
    let l2Off = 0;
    if (l1Index < this.#l1Size) {
      const v = this.#l1View;
      l2Off = entryOffset(v.getUint32(l1Index * 8), v.getUint32(l1Index * 8 + 4));
    }
    if (l2Off === 0) {
      m.type = QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN;
      m.hostOffset = 0;
      m.bytes = Math.min(maxBytes, (L.l2Entries - l2Index) * cs - inCluster);
      return;
    }
    if (l2Off % cs !== 0) {
      throw new IoError(
        `L2 table offset 0x${l2Off.toString(16)} unaligned (L1 index: 0x${l1Index.toString(16)})`,
      );
    }
    const sliceIndex = Math.floor(l2Index / this.#sliceEntries);
    const slice = this.#cache.get(l2Off + sliceIndex * this.#sliceBytes);
    const first = l2Index - sliceIndex * this.#sliceEntries;
    if (L.extendedL2) {
      this.#lookupExtended(slice, first, offset, inCluster, maxBytes, m);
      return;
    }
    const view = slice.view;
    const hi = view.getUint32(first * 8);
    const lo = view.getUint32(first * 8 + 4);
    const type = subclusterType(hi, lo, 0, 0, 0, false, this.#hasDataFile);
    m.type = type;
    if (type === QCOW2_SUBCLUSTER_COMPRESSED) {
      m.hostOffset = L.compressedOffset(hi, lo);
      m.compressedBytes = L.compressedBytes(hi, lo);
      m.bytes = Math.min(maxBytes, cs - inCluster);
      return;
    }
    const host = entryOffset(hi, lo);
    if (
      (type === QCOW2_SUBCLUSTER_NORMAL || type === QCOW2_SUBCLUSTER_ZERO_ALLOC) && host % cs !== 0
    ) {
      throw new IoError(
        `Cluster allocation offset 0x${host.toString(16)} unaligned (L2 offset: 0x${
          l2Off.toString(16)
        }, L2 index: 0x${l2Index.toString(16)})`,
      );
    }
    let bytes = cs - inCluster;
    // Extend the run over following entries of the same kind (and contiguous host clusters).
    let expect = host + cs;
    for (let i = first + 1; i < this.#sliceEntries && bytes < maxBytes; i++) {
      const h2 = view.getUint32(i * 8);
      const l2 = view.getUint32(i * 8 + 4);
      if (subclusterType(h2, l2, 0, 0, 0, false, this.#hasDataFile) !== type) break;
      // count_contiguous_subclusters: clusters with a host cluster must also be contiguous.
      if (type === QCOW2_SUBCLUSTER_NORMAL || type === QCOW2_SUBCLUSTER_ZERO_ALLOC) {
        if (entryOffset(h2, l2) !== expect) break;
        expect += cs;
      }
      bytes += cs;
    }
    m.bytes = bytes < maxBytes ? bytes : maxBytes;
    m.hostOffset = type === QCOW2_SUBCLUSTER_NORMAL || type === QCOW2_SUBCLUSTER_ZERO_ALLOC
      ? host + inCluster
      : 0;
  }

  #lookupExtended(
    slice: CacheEntry,
    first: number,
    offset: number,
    inCluster: number,
    maxBytes: number,
    m: Mapping,
  ): void {
    const L = this.#layout;
    const cs = L.clusterSize;
    const scs = L.subclusterSize;
    const view = slice.view;
    let i = first;
    let sc = Math.floor(inCluster / scs);
    let hi = view.getUint32(i * 16);
    let lo = view.getUint32(i * 16 + 4);
    let zero = view.getUint32(i * 16 + 8);
    let alloc = view.getUint32(i * 16 + 12);
    const type = subclusterType(hi, lo, zero, alloc, sc, true, this.#hasDataFile);
    m.type = type;
    if (type === QCOW2_SUBCLUSTER_COMPRESSED) {
      m.hostOffset = L.compressedOffset(hi, lo);
      m.compressedBytes = L.compressedBytes(hi, lo);
      m.bytes = Math.min(maxBytes, cs - inCluster);
      return;
    }
    if (type === QCOW2_SUBCLUSTER_INVALID) {
      throw new IoError(
        `Invalid cluster entry found (L2 offset: 0x${slice.offset.toString(16)}, L2 index: 0x${
          i.toString(16)
        })`,
      );
    }
    const host = entryOffset(hi, lo);
    const hasHost = type === QCOW2_SUBCLUSTER_NORMAL || type === QCOW2_SUBCLUSTER_ZERO_ALLOC ||
      type === QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC;
    if (hasHost && host % cs !== 0) {
      throw new IoError(`Cluster allocation offset 0x${host.toString(16)} unaligned`);
    }
    m.hostOffset = hasHost ? host + inCluster : 0;
    let bytes = (sc + 1) * scs - inCluster;
    let expectHost = host;
    // Walk subclusters, then following entries, while the type (and contiguity) holds.
    for (;;) {
      sc++;
      if (sc === 32) {
        i++;
        if (i >= this.#sliceEntries) break;
        hi = view.getUint32(i * 16);
        lo = view.getUint32(i * 16 + 4);
        zero = view.getUint32(i * 16 + 8);
        alloc = view.getUint32(i * 16 + 12);
        expectHost += cs;
        sc = 0;
      }
      if (bytes >= maxBytes) break;
      if (subclusterType(hi, lo, zero, alloc, sc, true, this.#hasDataFile) !== type) break;
      if (hasHost && entryOffset(hi, lo) !== expectHost) break;
      bytes += scs;
    }
    void offset;
    m.bytes = bytes < maxBytes ? bytes : maxBytes;
  }

  /**
   * The cached L2 slice holding guest cluster `clusterIndex` and the entry's index
   * in it, or null when its L2 table is not allocated.
   */
  slice(clusterIndex: number): { entry: CacheEntry; index: number } | null {
    const L = this.#layout;
    const l1Index = Math.floor(clusterIndex / L.l2Entries);
    const l2Off = this.l2Offset(l1Index);
    if (l2Off === 0) return null;
    const l2Index = clusterIndex - l1Index * L.l2Entries;
    const sliceIndex = Math.floor(l2Index / this.#sliceEntries);
    return {
      entry: this.#cache.get(l2Off + sliceIndex * this.#sliceBytes),
      index: l2Index - sliceIndex * this.#sliceEntries,
    };
  }

  /**
   * The L2 slice for writing guest cluster `clusterIndex`: an unallocated L2 table
   * is allocated, a shared one (L1 entry without COPIED) is copied first, and the
   * L1 table grows when the cluster lies past its end.
   */
  sliceForWrite(
    clusterIndex: number,
    refcounts: Refcounts,
    lazy: boolean,
  ): { entry: CacheEntry; index: number } {
    const L = this.#layout;
    const l1Index = Math.floor(clusterIndex / L.l2Entries);
    if (l1Index >= this.#l1Size) this.growL1(l1Index + 1, refcounts, false);
    const [hi, lo] = this.l1Raw(l1Index);
    const old = entryOffset(hi, lo);
    if (old === 0 || (hi & QCOW_OFLAG_COPIED_HI) === 0) {
      this.#allocateL2(l1Index, old, refcounts, lazy);
    }
    return this.slice(clusterIndex)!;
  }

  #allocateL2(l1Index: number, old: number, refcounts: Refcounts, lazy: boolean): void {
    const cs = this.#layout.clusterSize;
    const fresh = refcounts.allocClusters(1);
    let content: Uint8Array | null = null;
    if (old !== 0) {
      this.#cache.flush();
      content = new Uint8Array(cs);
      this.#file.readSync(old, content);
    }
    for (let s = 0; s < cs; s += this.#sliceBytes) {
      const e = this.#cache.getEmpty(fresh + s);
      if (content) e.data.set(content.subarray(s, s + this.#sliceBytes));
      this.#cache.markDirty(e);
    }
    // The new table (and, through the dependency, its refcount) must be on disk
    // before the L1 entry points to it.
    if (!lazy) this.#cache.setDependency(refcounts.cache);
    this.#cache.flush();
    this.#file.syncSync();
    this.setL1(l1Index, (offsetHi(fresh) | QCOW_OFLAG_COPIED_HI) >>> 0, offsetLo(fresh));
    if (old !== 0) {
      // The shared table loses a reference only once the L1 entry that dropped it is durable.
      this.#file.syncSync();
      refcounts.free(old, cs);
    }
  }

  /**
   * Grows the active L1 table to at least `minSize` entries (exactly, or by half
   * again as QEMU does), writing the new table before the header points to it.
   */
  growL1(minSize: number, refcounts: Refcounts, exact: boolean): void {
    if (minSize <= this.#l1Size) return;
    let size = minSize;
    if (!exact) {
      size = Math.max(this.#l1Size, 1);
      while (size < minSize) size = Math.ceil((size * 3) / 2);
    }
    if (size > QCOW_MAX_L1_SIZE / 8) {
      if (minSize > QCOW_MAX_L1_SIZE / 8) throw new IoError("File too large");
      size = QCOW_MAX_L1_SIZE / 8;
    }
    const cs = this.#layout.clusterSize;
    const bytes = Math.ceil((size * 8) / cs) * cs;
    const offset = refcounts.allocClusters(bytes / cs);
    // Only the entries are written: QEMU leaves the rest of the last cluster unwritten too.
    const table = new Uint8Array(size * 8);
    table.set(this.#l1);
    refcounts.flush();
    this.#file.writeSync(offset, table);
    this.#file.syncSync();
    const oldOffset = this.#l1Offset;
    const oldBytes = Math.ceil((this.#l1Size * 8) / cs) * cs;
    this.#l1 = table;
    this.#l1View = new DataView(this.#l1.buffer);
    this.#l1Size = size;
    this.#l1Offset = offset;
    this.#onL1Moved({ offset, size });
    if (oldBytes > 0) refcounts.free(oldOffset, oldBytes);
  }

  /** Shrinks the in-memory L1 table (after truncate cleared the entries past `size`). */
  setL1Location(loc: L1Location): void {
    this.#l1Offset = loc.offset;
    if (loc.size < this.#l1Size) {
      this.#l1 = this.#l1.slice(0, loc.size * 8);
      this.#l1View = new DataView(this.#l1.buffer);
    }
    this.#l1Size = loc.size;
  }
}
