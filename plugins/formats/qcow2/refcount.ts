// qcow2 reference counts: the refcount table, refcount blocks and cluster allocation

import { MetadataCache } from "../../../core/block/metadata_cache.ts";
import { IoError } from "../../../core/errors.ts";
import { QCOW_MAX_REFTABLE_SIZE } from "./header.ts";
import {
  entryOffset,
  type Layout,
  offsetHi,
  offsetLo,
  REFT_RESERVED_MASK,
  type SyncFile,
} from "./layout.ts";

/** Where the refcount table lives; the owner persists changes to the header. */
export interface ReftableLocation {
  offset: number;
  clusters: number;
}

/** Reads a refcount of `bits` width from a refcount block. */
export function readRefcount(view: DataView, index: number, order: number): number {
  switch (order) {
    case 4:
      return view.getUint16(index * 2);
    case 3:
      return view.getUint8(index);
    case 5:
      return view.getUint32(index * 4);
    case 6:
      return view.getUint32(index * 8) * 0x100000000 + view.getUint32(index * 8 + 4);
    default: {
      // Sub-byte widths: entry 0 is the least significant bits of byte 0.
      const bits = 1 << order;
      const perByte = 8 >> order;
      const byte = view.getUint8(Math.floor(index / perByte));
      return (byte >> ((index % perByte) * bits)) & ((1 << bits) - 1);
    }
  }
}

/** Writes a refcount of `bits` width into a refcount block. */
export function writeRefcount(view: DataView, index: number, order: number, value: number): void {
  switch (order) {
    case 4:
      view.setUint16(index * 2, value);
      return;
    case 3:
      view.setUint8(index, value);
      return;
    case 5:
      view.setUint32(index * 4, value);
      return;
    case 6:
      view.setUint32(index * 8, Math.floor(value / 0x100000000));
      view.setUint32(index * 8 + 4, value >>> 0);
      return;
    default: {
      const bits = 1 << order;
      const perByte = 8 >> order;
      const at = Math.floor(index / perByte);
      const shift = (index % perByte) * bits;
      const mask = ((1 << bits) - 1) << shift;
      view.setUint8(at, (view.getUint8(at) & ~mask) | ((value << shift) & mask));
    }
  }
}

/** The largest refcount an entry of `order` holds (64-bit ones are capped at 2^53 - 1). */
export function maxRefcount(order: number): number {
  return order >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (2 ** order) - 1;
}

/**
 * Reference counts of host clusters: reads and updates refcount blocks through a
 * metadata cache and allocates free clusters, growing the refcount table when it
 * runs out (new blocks and table are written before the header points to them).
 */
export class Refcounts {
  #layout: Layout;
  #file: SyncFile;
  #cache: MetadataCache;
  #table: number[] = [];
  #location: ReftableLocation;
  #onTableMoved: (loc: ReftableLocation) => void;
  #freeClusterIndex = 0;
  #freeByteOffset = 0;
  /** Called when a cluster's refcount drops to zero (drop it from other caches, discard it). */
  onFreed: ((offset: number, clusters: number) => void) | null = null;

  constructor(
    layout: Layout,
    file: SyncFile,
    options: {
      cacheEntries: number;
      location: ReftableLocation;
      onTableMoved: (loc: ReftableLocation) => void;
    },
  ) {
    this.#layout = layout;
    this.#file = file;
    this.#cache = new MetadataCache(file, {
      entries: options.cacheEntries,
      entryBytes: layout.clusterSize,
      name: "refcount",
    });
    this.#location = { ...options.location };
    this.#onTableMoved = options.onTableMoved;
    this.#loadTable();
  }

  /** The refcount block cache (the L2 cache depends on it). */
  get cache(): MetadataCache {
    return this.#cache;
  }
  /** The refcount table's place in the file. */
  get location(): ReftableLocation {
    return { ...this.#location };
  }
  /** The refcount table entries (refcount block offsets, 0 when unallocated). */
  get table(): readonly number[] {
    return this.#table;
  }

  #loadTable(): void {
    const cs = this.#layout.clusterSize;
    const bytes = this.#location.clusters * cs;
    if (bytes > QCOW_MAX_REFTABLE_SIZE) throw new IoError("Reference count table too large");
    const buf = new Uint8Array(bytes);
    this.#file.readSync(this.#location.offset, buf);
    const view = new DataView(buf.buffer);
    const table: number[] = new Array(bytes / 8);
    for (let i = 0; i < table.length; i++) {
      const hi = view.getUint32(i * 8);
      const lo = view.getUint32(i * 8 + 4);
      table[i] = hi * 0x100000000 + ((lo & ~REFT_RESERVED_MASK) >>> 0);
      if (table[i] % cs !== 0) throw new IoError("Image is corrupt (unaligned refblock offset)");
    }
    this.#table = table;
  }

  /** The refcount of cluster `index` (0 where no refcount block exists). */
  get(index: number): number {
    const entries = this.#layout.refcountBlockEntries;
    const t = Math.floor(index / entries);
    if (t >= this.#table.length) return 0;
    const block = this.#table[t];
    if (block === 0) return 0;
    const e = this.#cache.get(block);
    return readRefcount(e.view, index - t * entries, this.#layout.refcountOrder);
  }

  /**
   * Adds `delta` to the refcount of every cluster overlapping `[offset, offset + bytes)`.
   * Refcount blocks are allocated as needed; freed clusters are reported through {@linkcode onFreed}.
   */
  update(offset: number, bytes: number, delta: number): void {
    if (bytes <= 0) return;
    const cs = this.#layout.clusterSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + bytes - 1) / cs);
    const entries = this.#layout.refcountBlockEntries;
    const order = this.#layout.refcountOrder;
    const max = maxRefcount(order);
    for (let c = first; c <= last; c++) {
      const t = Math.floor(c / entries);
      if (delta > 0) this.#ensureBlock(t);
      const block = t < this.#table.length ? this.#table[t] : 0;
      if (block === 0) throw new IoError(`Refcount of cluster ${c} cannot drop below zero`);
      const e = this.#cache.get(block);
      const i = c - t * entries;
      const value = readRefcount(e.view, i, order) + delta;
      if (value < 0 || value > max) {
        throw new IoError(`Refcount of cluster ${c} out of range: ${value}`);
      }
      writeRefcount(e.view, i, order, value);
      this.#cache.markDirty(e);
      if (value === 0) {
        if (c < this.#freeClusterIndex) this.#freeClusterIndex = c;
        this.onFreed?.(c * cs, 1);
      }
    }
  }

  /**
   * Writes the whole refcount table, every cluster of it, from memory (as
   * `qcow2_shrink_reftable` does after a shrink) and syncs.
   */
  rewriteTable(): void {
    const bytes = this.#location.clusters * this.#layout.clusterSize;
    const buf = new Uint8Array(bytes);
    const view = new DataView(buf.buffer);
    for (let t = 0; t < this.#table.length && t * 8 < bytes; t++) {
      view.setUint32(t * 8, Math.floor(this.#table[t] / 0x100000000));
      view.setUint32(t * 8 + 4, this.#table[t] >>> 0);
    }
    this.#file.writeSync(this.#location.offset, buf);
    this.#file.syncSync();
  }

  /** Sets the refcount of cluster `index` to `value` (check repair). */
  set(index: number, value: number): void {
    const entries = this.#layout.refcountBlockEntries;
    const t = Math.floor(index / entries);
    this.#ensureBlock(t);
    const e = this.#cache.get(this.#table[t]);
    writeRefcount(e.view, index - t * entries, this.#layout.refcountOrder, value);
    this.#cache.markDirty(e);
    if (value === 0 && index < this.#freeClusterIndex) this.#freeClusterIndex = index;
  }

  /**
   * Allocates `count` contiguous free clusters and counts them (refcount 1).
   * @returns the host offset of the first one
   */
  allocClusters(count: number): number {
    const entries = this.#layout.refcountBlockEntries;
    for (;;) {
      const start = this.#findFree(this.#freeClusterIndex, count);
      // Make sure every block covering the run exists; allocating one may take
      // clusters from the run, so search again afterwards.
      let changed = false;
      for (
        let t = Math.floor(start / entries);
        t <= Math.floor((start + count - 1) / entries);
        t++
      ) {
        if (t >= this.#table.length || this.#table[t] === 0) {
          this.#ensureBlock(t);
          changed = true;
        }
      }
      if (changed) continue;
      const cs = this.#layout.clusterSize;
      this.update(start * cs, count * cs, 1);
      // Everything before the run is in use (for one cluster) or too fragmented for this
      // request; like QEMU's free_cluster_index, the next search starts after it.
      this.#freeClusterIndex = start + count;
      return start * cs;
    }
  }

  /**
   * Allocates `bytes` (at most one cluster) for compressed data, packing it after
   * the previous compressed cluster as QEMU's `qcow2_alloc_bytes`: every host
   * cluster the data touches gets one more reference.
   */
  allocBytes(bytes: number): number {
    const cs = this.#layout.clusterSize;
    let offset = this.#freeByteOffset;
    if (offset !== 0 && offset % cs !== 0 && this.get(Math.floor(offset / cs)) > 0) {
      const roomInCluster = cs - (offset % cs);
      if (bytes <= roomInCluster) {
        this.update(offset, bytes, 1);
        this.#freeByteOffset = offset + bytes;
        return offset;
      }
      // Spill into the next cluster if it is free, keeping the data contiguous.
      const next = Math.floor(offset / cs) + 1;
      if (this.#isFree(next)) {
        const t = Math.floor(next / this.#layout.refcountBlockEntries);
        if (t < this.#table.length && this.#table[t] !== 0) {
          this.update(offset, bytes, 1);
          if (next === this.#freeClusterIndex) this.#freeClusterIndex = next + 1;
          this.#freeByteOffset = offset + bytes;
          return offset;
        }
      }
    }
    offset = this.allocClusters(1);
    this.#freeByteOffset = offset + bytes;
    return offset;
  }

  /** Drops one reference from every cluster overlapping the range (QEMU's `qcow2_free_clusters`). */
  free(offset: number, bytes: number): void {
    this.update(offset, bytes, -1);
  }

  /** Writes dirty refcount blocks. */
  flush(): void {
    this.#cache.flush();
  }

  /** Forgets cached blocks and re-reads the table (after check rebuilt it). */
  reload(location: ReftableLocation): void {
    this.#cache.clear();
    this.#location = { ...location };
    this.#loadTable();
    this.#freeClusterIndex = 0;
    this.#freeByteOffset = 0;
  }

  #isFree(index: number): boolean {
    return this.get(index) === 0;
  }

  #findFree(from: number, count: number): number {
    let start = from;
    let run = 0;
    for (let c = from;; c++) {
      if (this.#isFree(c)) {
        if (run === 0) start = c;
        run++;
        if (run === count) return start;
      } else {
        run = 0;
      }
    }
  }

  /** Makes sure refcount block `t` exists, allocating it (and growing the table) if not. */
  #ensureBlock(t: number): void {
    if (t < this.#table.length && this.#table[t] !== 0) return;
    if (t >= this.#table.length) {
      this.#growTable(t + 1);
      if (this.#table[t] !== 0) return;
    }
    // Put the block in the first free cluster when an existing block counts it
    // (as QEMU does); otherwise in the first cluster of its own range, which
    // is free (no block means refcount 0) and where the block describes itself.
    const entries = this.#layout.refcountBlockEntries;
    const cs = this.#layout.clusterSize;
    let cluster = this.#findFree(this.#freeClusterIndex, 1);
    const home = Math.floor(cluster / entries);
    const countedElsewhere = home !== t && home < this.#table.length && this.#table[home] !== 0;
    if (home !== t && !countedElsewhere) cluster = t * entries;
    const offset = cluster * cs;
    const e = this.#cache.getEmpty(offset);
    if (countedElsewhere) {
      this.update(offset, cs, 1);
    } else {
      writeRefcount(e.view, cluster - t * entries, this.#layout.refcountOrder, 1);
    }
    this.#cache.markDirty(e);
    // The block must be on disk before the table points to it.
    this.#cache.flush();
    this.#file.syncSync();
    this.#table[t] = offset;
    const entry = new Uint8Array(8);
    const v = new DataView(entry.buffer);
    v.setUint32(0, offsetHi(offset));
    v.setUint32(4, offsetLo(offset));
    this.#file.writeSync(this.#location.offset + t * 8, entry);
    if (cluster === this.#freeClusterIndex) this.#freeClusterIndex = cluster + 1;
  }

  /**
   * Replaces the refcount table with a larger one of at least `minEntries`
   * entries, placed with the refcount blocks that describe it at the end of the
   * covered area; the old table is freed once the header points to the new one.
   */
  #growTable(minEntries: number): void {
    const layout = this.#layout;
    const cs = layout.clusterSize;
    const entries = layout.refcountBlockEntries;
    const perCluster = cs / 8;
    const oldLength = this.#table.length;
    const fileClusters = Math.ceil(this.#file.size() / cs);
    const start = Math.max(fileClusters, oldLength * entries);
    let tableEntries = Math.max(minEntries, Math.ceil(oldLength * 1.5), oldLength + 1);
    let blocks = 0;
    let tableClusters = 0;
    for (;;) {
      tableClusters = Math.ceil(tableEntries / perCluster);
      const areaEnd = start + blocks + tableClusters;
      const firstT = Math.floor(start / entries);
      const lastT = Math.floor((areaEnd - 1) / entries);
      let needBlocks = 0;
      for (let t = firstT; t <= lastT; t++) {
        if (t >= oldLength || this.#table[t] === 0) needBlocks++;
      }
      const needEntries = Math.max(tableEntries, lastT + 1);
      if (needBlocks === blocks && needEntries <= tableClusters * perCluster) {
        tableEntries = tableClusters * perCluster;
        break;
      }
      blocks = needBlocks;
      tableEntries = needEntries;
    }
    if (tableClusters * cs > QCOW_MAX_REFTABLE_SIZE) {
      throw new IoError(
        "This operation would make the refcount table grow beyond the maximum size supported by QEMU, aborting",
      );
    }
    const newTable = this.#table.slice();
    while (newTable.length < tableEntries) newTable.push(0);
    // Lay out: new refcount blocks first, then the table.
    const areaStart = start;
    const areaEnd = start + blocks + tableClusters;
    let next = areaStart;
    const newBlocks = new Map<number, Uint8Array>();
    for (let t = Math.floor(areaStart / entries); t <= Math.floor((areaEnd - 1) / entries); t++) {
      if (newTable[t] !== 0) continue;
      newTable[t] = next * cs;
      newBlocks.set(t, new Uint8Array(cs));
      next++;
    }
    const tableOffset = next * cs;
    // Count the area's clusters, in the new blocks or in existing ones.
    for (let c = areaStart; c < areaEnd; c++) {
      const t = Math.floor(c / entries);
      const fresh = newBlocks.get(t);
      if (fresh) {
        writeRefcount(new DataView(fresh.buffer), c - t * entries, layout.refcountOrder, 1);
      } else {
        const e = this.#cache.get(newTable[t]);
        writeRefcount(e.view, c - t * entries, layout.refcountOrder, 1);
        this.#cache.markDirty(e);
      }
    }
    this.#cache.flush();
    for (const [t, block] of newBlocks) this.#file.writeSync(newTable[t], block);
    const tableBuf = new Uint8Array(tableClusters * cs);
    const tv = new DataView(tableBuf.buffer);
    newTable.forEach((off, i) => {
      tv.setUint32(i * 8, offsetHi(off));
      tv.setUint32(i * 8 + 4, offsetLo(off));
    });
    this.#file.writeSync(tableOffset, tableBuf);
    this.#file.syncSync();
    const old = this.#location;
    this.#table = newTable;
    this.#location = { offset: tableOffset, clusters: tableClusters };
    this.#onTableMoved(this.location);
    this.update(old.offset, old.clusters * cs, -1);
  }

  /** Decodes a refcount table entry read from disk (for check). */
  static entry(hi: number, lo: number): number {
    return entryOffset(hi, lo);
  }
}
