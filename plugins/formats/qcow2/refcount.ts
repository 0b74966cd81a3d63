// qcow2 reference counts: the refcount table, refcount blocks and cluster allocation

import { type CacheEntry, MetadataCache } from "../../../core/block/metadata_cache.ts";
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

/** Words of the refcount table looked at per native zero test when it loads. */
const REFT_SCAN_WORDS = 1024;

/**
 * True when `words[from, to)` holds a non-zero word. `Math.max` runs natively: an
 * unoptimized loop over the words cost ten times as much in a fresh process.
 */
function anyNonZero(words: Uint32Array, from: number, to: number): boolean {
  return Math.max.apply(null, words.subarray(from, to) as unknown as number[]) !== 0;
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
    const table: number[] = new Array(bytes / 8).fill(0);
    // Most of a table is zeroes (one 64 KiB cluster counts 8192 refcount blocks), and this
    // runs once per open, before V8 optimizes anything: entry by entry, a 64 KiB table
    // took 1.6 ms of `img info`'s start. Runs of zero entries are skipped natively.
    const words = new Uint32Array(buf.buffer);
    for (let w = 0; w < words.length; w += REFT_SCAN_WORDS) {
      if (!anyNonZero(words, w, w + REFT_SCAN_WORDS)) continue;
      for (let v = w; v < w + REFT_SCAN_WORDS && v < words.length; v += 32) {
        if (!anyNonZero(words, v, v + 32)) continue;
        for (let i = v >> 1; i < (v + 32) >> 1 && i < table.length; i++) {
          const hi = view.getUint32(i * 8);
          const lo = view.getUint32(i * 8 + 4);
          table[i] = hi * 0x100000000 + ((lo & ~REFT_RESERVED_MASK) >>> 0);
          if (table[i] % cs !== 0) {
            throw new IoError("Image is corrupt (unaligned refblock offset)");
          }
        }
      }
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
    while (!this.#update(offset, bytes, delta, true)) {
      // A refcount block was allocated on the way: count again with it in place.
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

  /**
   * QEMU's `qcow2_shrink_reftable` after a shrink: refcount blocks that count nothing
   * (but themselves) leave the table, the whole table is written and synced, and each
   * dropped block then loses its own reference.
   * @returns the host offsets of the dropped blocks (to discard, as QEMU does)
   */
  shrinkTable(): number[] {
    const cs = this.#layout.clusterSize;
    const entries = this.#layout.refcountBlockEntries;
    const order = this.#layout.refcountOrder;
    const kept = this.#table.slice();
    for (let t = 0; t < kept.length; t++) {
      const block = kept[t];
      if (block === 0) continue;
      const own = Math.floor(block / cs / entries) === t ? (block / cs) % entries : -1;
      const view = this.#cache.get(block).view;
      let unused = true;
      for (let i = 0; i < entries && unused; i++) {
        if (i !== own && readRefcount(view, i, order) !== 0) unused = false;
      }
      if (unused) kept[t] = 0;
    }
    const bytes = this.#location.clusters * cs;
    const buf = new Uint8Array(bytes);
    const view = new DataView(buf.buffer);
    for (let t = 0; t < kept.length && t * 8 < bytes; t++) {
      view.setUint32(t * 8, offsetHi(kept[t]));
      view.setUint32(t * 8 + 4, offsetLo(kept[t]));
    }
    this.#file.writeSync(this.#location.offset, buf);
    this.#file.syncSync();
    const dropped: number[] = [];
    for (let t = 0; t < kept.length; t++) {
      const block = this.#table[t];
      if (block === 0 || kept[t] !== 0) continue;
      // qcow2_discard_refcount_block: the block's own refcount, in whichever block counts it.
      const c = block / cs;
      const home = this.#table[Math.floor(c / entries)];
      if (home !== 0) {
        const e = this.#cache.get(home);
        writeRefcount(e.view, c % entries, order, 0);
        this.#cache.markDirty(e);
        if (c < this.#freeClusterIndex) this.#freeClusterIndex = c;
      }
      this.#cache.discard(block);
      this.#table[t] = 0;
      dropped.push(block);
    }
    return dropped;
  }

  /** Sets the refcount of cluster `index` to `value` (check repair). */
  set(index: number, value: number): void {
    let e: CacheEntry | null = null;
    while (e === null) e = this.#block(index);
    const entries = this.#layout.refcountBlockEntries;
    writeRefcount(e.view, index % entries, this.#layout.refcountOrder, value);
    this.#cache.markDirty(e);
    if (value === 0 && index < this.#freeClusterIndex) this.#freeClusterIndex = index;
  }

  /**
   * Allocates `count` contiguous free clusters and counts them (refcount 1), as
   * `qcow2_alloc_clusters`: the first free run from the free-cluster index, searched
   * again whenever counting it had to place a new refcount block first.
   * @returns the host offset of the first one
   */
  allocClusters(count: number): number {
    const cs = this.#layout.clusterSize;
    for (;;) {
      const start = this.#allocNoref(count);
      if (this.#update(start * cs, count * cs, 1, true)) return start * cs;
    }
  }

  /**
   * Counts the free clusters from `offset` on, up to `count` of them, as
   * `qcow2_alloc_clusters_at`; it stops at the first one in use.
   * @returns how many were allocated
   */
  allocClustersAt(offset: number, count: number): number {
    const cs = this.#layout.clusterSize;
    const first = offset / cs;
    for (;;) {
      let n = 0;
      while (n < count && this.get(first + n) === 0) n++;
      if (this.#update(offset, n * cs, 1, true)) return n;
    }
  }

  /** The last cluster with a reference before `fileBytes`, or -1 (`qcow2_get_last_cluster`). */
  lastUsedCluster(fileBytes: number): number {
    for (let c = Math.ceil(fileBytes / this.#layout.clusterSize) - 1; c >= 0; c--) {
      if (this.get(c) > 0) return c;
    }
    return -1;
  }

  /**
   * Allocates `bytes` (at most one cluster) for compressed data, packing it after
   * the previous compressed cluster as QEMU's `qcow2_alloc_bytes`: every host
   * cluster the data touches gets one more reference.
   */
  allocBytes(bytes: number): number {
    const cs = this.#layout.clusterSize;
    let offset = this.#freeByteOffset;
    // A cluster whose refcount is already at the maximum takes no more (1-bit refcounts).
    if (
      offset !== 0 && this.get(Math.floor(offset / cs)) >= maxRefcount(this.#layout.refcountOrder)
    ) {
      offset = 0;
    }
    let room = cs - (offset % cs);
    for (;;) {
      if (offset === 0 || room < bytes) {
        const fresh = this.#allocNoref(1) * cs;
        // Data that spills over goes on in the next cluster only when that one is the
        // free cluster found; otherwise it starts afresh there.
        if (offset === 0 || Math.ceil(offset / cs) * cs !== fresh) {
          offset = fresh;
          room = cs;
        } else {
          room += cs;
        }
      }
      if (this.#update(offset, bytes, 1, true)) break;
      offset = 0;
    }
    this.#freeByteOffset = (offset + bytes) % cs === 0 ? 0 : offset + bytes;
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

  /**
   * Takes `count` clusters with refcount 0 from the free-cluster index on without
   * counting them, as `alloc_clusters_noref`: the index moves past every cluster
   * looked at, so a cluster in use restarts the run after it.
   * @returns the first cluster's index
   */
  #allocNoref(count: number): number {
    let run = 0;
    while (run < count) {
      run = this.get(this.#freeClusterIndex++) === 0 ? run + 1 : 0;
    }
    return this.#freeClusterIndex - count;
  }

  /**
   * QEMU's `update_refcount`: false (its -EAGAIN) when a refcount block had to be
   * allocated first; the changes made so far are then undone and the free-cluster
   * index goes back to the first cluster, so the caller's search finds the clusters
   * the new block left free. `report` says whether freed clusters reach {@linkcode onFreed}.
   */
  #update(offset: number, bytes: number, delta: number, report: boolean): boolean {
    if (bytes <= 0) return true;
    const cs = this.#layout.clusterSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + bytes - 1) / cs);
    const entries = this.#layout.refcountBlockEntries;
    const order = this.#layout.refcountOrder;
    const max = maxRefcount(order);
    let e: CacheEntry | null = null;
    for (let c = first; c <= last; c++) {
      if (e === null || c % entries === 0) {
        if (delta < 0 && !this.#hasBlock(Math.floor(c / entries))) {
          throw new IoError(`Refcount of cluster ${c} cannot drop below zero`);
        }
        e = this.#block(c);
        if (e === null) {
          if (this.#freeClusterIndex > first) this.#freeClusterIndex = first;
          this.#update(offset, c * cs - offset, -delta, false);
          return false;
        }
      }
      const i = c % entries;
      const value = readRefcount(e.view, i, order) + delta;
      if (value < 0 || value > max) {
        throw new IoError(`Refcount of cluster ${c} out of range: ${value}`);
      }
      writeRefcount(e.view, i, order, value);
      this.#cache.markDirty(e);
      if (value === 0) {
        if (c < this.#freeClusterIndex) this.#freeClusterIndex = c;
        if (report) this.onFreed?.(c * cs, 1);
      }
    }
    return true;
  }

  #hasBlock(t: number): boolean {
    return t < this.#table.length && this.#table[t] !== 0;
  }

  /**
   * The refcount block counting cluster `c`, or null (QEMU's -EAGAIN from
   * `alloc_refcount_block`) after allocating it. The new block takes the next free
   * cluster, past whatever the caller has taken without counting yet; in its own
   * range it counts itself, elsewhere it is counted like any cluster (which may
   * allocate that range's block first). A block beyond the end of the refcount
   * table makes a new table: see {@linkcode refcountArea}.
   */
  #block(c: number): CacheEntry | null {
    const entries = this.#layout.refcountBlockEntries;
    const cs = this.#layout.clusterSize;
    const t = Math.floor(c / entries);
    if (this.#hasBlock(t)) return this.#cache.get(this.#table[t]);
    const fresh = this.#allocNoref(1);
    let e: CacheEntry;
    if (Math.floor(fresh / entries) === t) {
      e = this.#cache.getEmpty(fresh * cs);
      writeRefcount(e.view, fresh % entries, this.#layout.refcountOrder, 1);
    } else {
      if (!this.#update(fresh * cs, cs, 1, true)) return null;
      this.#cache.flush();
      e = this.#cache.getEmpty(fresh * cs);
    }
    this.#cache.markDirty(e);
    // The block must be on disk before the table points to it.
    this.#cache.flush();
    this.#file.syncSync();
    if (t < this.#table.length) {
      this.#table[t] = fresh * cs;
      const entry = new Uint8Array(8);
      const v = new DataView(entry.buffer);
      v.setUint32(0, offsetHi(fresh * cs));
      v.setUint32(4, offsetLo(fresh * cs));
      this.#file.writeSync(this.#location.offset + t * 8, entry);
      this.#file.syncSync();
      return null;
    }
    // The table is too small: a new one goes after the refcount ranges used so far,
    // with the blocks that count it, and takes the new block at index t.
    const blocksUsed = Math.ceil(Math.max(c + 1, fresh + 1) / entries);
    this.refcountArea(blocksUsed * entries * cs, 0, true, t, fresh * cs);
    return null;
  }

  /**
   * QEMU's `qcow2_refcount_area`: from `start` (a cluster boundary with nothing
   * after it), new refcount blocks and a new refcount table that count themselves and
   * `additional` clusters after them; with `generous`, the table gets half as many
   * entries again as needed. `newBlock`, when not 0, enters the table at `newIndex`.
   * The header then points to the new table and the old one is freed.
   * @returns the offset after the new structures
   */
  refcountArea(
    start: number,
    additional: number,
    generous: boolean,
    newIndex: number,
    newBlock: number,
  ): number {
    const layout = this.#layout;
    const cs = layout.clusterSize;
    const entries = layout.refcountBlockEntries;
    const blockCount =
      refcountMetadata(start / cs + additional, cs, layout.refcountOrder, generous).blocks;
    const tooBig = () =>
      new IoError(
        "This operation would make the refcount table grow beyond the maximum size supported by QEMU, aborting",
      );
    if (blockCount > QCOW_MAX_REFTABLE_SIZE) throw tooBig();
    const areaIndex = Math.floor(start / cs / entries);
    let tableSize = generous ? blockCount + Math.ceil(blockCount / 2) : blockCount;
    tableSize = Math.ceil(tableSize / (cs / 8)) * (cs / 8);
    const tableClusters = (tableSize * 8) / cs;
    if (tableSize > QCOW_MAX_REFTABLE_SIZE) throw tooBig();
    const table = new Array<number>(tableSize).fill(0);
    for (let i = 0; i < Math.min(tableSize, this.#table.length); i++) table[i] = this.#table[i];
    if (newBlock !== 0) table[newIndex] = newBlock;
    let fresh = 0;
    for (let i = areaIndex; i < blockCount; i++) if (table[i] === 0) fresh++;
    const tableOffset = start + fresh * cs;
    const end = tableOffset + tableClusters * cs;
    let blockOffset = start;
    for (let i = areaIndex; i < blockCount; i++) {
      let e: CacheEntry;
      if (table[i] !== 0) {
        e = this.#cache.get(table[i]);
      } else {
        e = this.#cache.getEmpty(blockOffset);
        this.#cache.markDirty(e);
        table[i] = blockOffset;
        blockOffset += cs;
      }
      const covered = i * entries * cs;
      if (covered < end) {
        const from = covered < start ? (start - covered) / cs : 0;
        const to = Math.min((end - covered) / cs, entries);
        for (let j = from; j < to; j++) writeRefcount(e.view, j, layout.refcountOrder, 1);
        this.#cache.markDirty(e);
      }
    }
    this.#cache.flush();
    const buf = new Uint8Array(tableClusters * cs);
    const view = new DataView(buf.buffer);
    for (let i = 0; i < tableSize; i++) {
      view.setUint32(i * 8, offsetHi(table[i]));
      view.setUint32(i * 8 + 4, offsetLo(table[i]));
    }
    this.#file.writeSync(tableOffset, buf);
    this.#file.syncSync();
    const old = this.#location;
    this.#table = table;
    this.#location = { offset: tableOffset, clusters: tableClusters };
    this.#onTableMoved(this.location);
    this.#update(old.offset, old.clusters * cs, -1, true);
    return end;
  }

  /** Decodes a refcount table entry read from disk (for check). */
  static entry(hi: number, lo: number): number {
    return entryOffset(hi, lo);
  }
}

/**
 * The refcount blocks and table clusters needed to count `clusters` clusters and the
 * refcount structures themselves: the fixed point `qcow2_refcount_metadata_size`
 * iterates to. With `generous`, room for a table half as large again is counted too.
 */
export function refcountMetadata(
  clusters: number,
  clusterSize: number,
  refcountOrder: number,
  generous: boolean,
): { blocks: number; tableClusters: number } {
  const perTableCluster = clusterSize / 8;
  const perBlock = (clusterSize * 8) / 2 ** refcountOrder;
  let table = 0;
  let blocks = 0;
  let n = 0;
  let last: number;
  do {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / perTableCluster);
    n = clusters + blocks + table;
    if (n === last && generous) {
      clusters += Math.ceil(table / 2);
      n = 0;
      generous = false;
    }
  } while (n !== last);
  return { blocks, tableClusters: table };
}
