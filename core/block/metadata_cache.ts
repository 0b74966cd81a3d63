// Metadata cache for qcow2 L2 and refcount tables: LRU slices with dirty tracking and flush order

/**
 * Where a {@linkcode MetadataCache} reads and writes its slices: synchronous
 * positional I/O on the image file (metadata lookups sit on the request hot path).
 */
export interface MetadataStore {
  /** Reads `buf.length` bytes at `offset`. */
  readSync(offset: number, buf: Uint8Array): void;
  /** Writes `data` at `offset`. */
  writeSync(offset: number, data: Uint8Array): void;
  /** Makes every write so far durable (fdatasync); a no-op where the host cannot. */
  syncSync(): void;
}

/** One cached slice of a metadata table. */
export interface CacheEntry {
  /** Byte offset of the slice in the image file. */
  readonly offset: number;
  /** The slice bytes, as on disk (big-endian entries). */
  readonly data: Uint8Array;
  /** A view over {@linkcode data} for decoding entries. */
  readonly view: DataView;
}

/** Sizes of a {@linkcode MetadataCache}. */
export interface MetadataCacheOptions {
  /** How many slices the cache holds (at least 1). */
  entries: number;
  /** Bytes per slice (a power of two; the table's cluster size or an L2 slice size). */
  entryBytes: number;
  /** A name for error messages (`L2`, `refcount`). */
  name?: string;
}

interface Slot extends CacheEntry {
  offset: number;
  dirty: boolean;
  lru: number;
}

/**
 * An LRU cache of fixed-size metadata slices read from and written back to a
 * {@linkcode MetadataStore}, as QEMU's `qcow2-cache.c`: `get` loads a slice (or
 * finds it), `markDirty` schedules it for write-back, `flush` writes every dirty
 * slice. A cache may depend on another: before any of its dirty slices reach the
 * disk, the other cache is flushed and synced first (qcow2's L2 cache depends on
 * the refcount cache, so a new cluster is counted before a table points to it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetadataCache } from "./metadata_cache.ts";
 *
 * const disk = new Uint8Array(4096);
 * const store = {
 *   readSync: (o: number, b: Uint8Array) => b.set(disk.subarray(o, o + b.length)),
 *   writeSync: (o: number, d: Uint8Array) => disk.set(d, o),
 *   syncSync: () => {},
 * };
 * const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
 * const entry = cache.get(1024);
 * entry.data[0] = 7;
 * cache.markDirty(entry);
 * assert.equal(disk[1024], 0);
 * cache.flush();
 * assert.equal(disk[1024], 7);
 * ```
 */
export class MetadataCache {
  #store: MetadataStore;
  #slots: Slot[] = [];
  #byOffset = new Map<number, Slot>();
  #capacity: number;
  #entryBytes: number;
  #name: string;
  #lruCounter = 0;
  #dependsOn: MetadataCache | null = null;
  #dependsOnFlush = false;
  #dirtyCount = 0;
  #hits = 0;
  #misses = 0;

  constructor(store: MetadataStore, options: MetadataCacheOptions) {
    if (!Number.isInteger(options.entries) || options.entries < 1) {
      throw new RangeError(`Cache entries must be a positive integer: got ${options.entries}`);
    }
    const bytes = options.entryBytes;
    if (!Number.isInteger(bytes) || bytes < 1 || (bytes & (bytes - 1)) !== 0) {
      throw new RangeError(`Cache entry size must be a power of two: got ${bytes}`);
    }
    this.#store = store;
    this.#capacity = options.entries;
    this.#entryBytes = bytes;
    this.#name = options.name ?? "metadata";
  }

  /** Bytes per slice. */
  get entryBytes(): number {
    return this.#entryBytes;
  }
  /** How many slices the cache may hold. */
  get capacity(): number {
    return this.#capacity;
  }
  /** Slices currently dirty. */
  get dirtyCount(): number {
    return this.#dirtyCount;
  }
  /** Lookups answered from memory. */
  get hits(): number {
    return this.#hits;
  }
  /** Lookups that read the store. */
  get misses(): number {
    return this.#misses;
  }

  /**
   * Returns the slice at `offset`, reading it from the store on a miss. The
   * returned entry stays valid until the next `get`/`getEmpty` call may evict it.
   */
  get(offset: number): CacheEntry {
    const found = this.#byOffset.get(offset);
    if (found !== undefined) {
      this.#hits++;
      found.lru = ++this.#lruCounter;
      return found;
    }
    this.#misses++;
    const slot = this.#replace(offset);
    try {
      this.#store.readSync(offset, slot.data);
    } catch (e) {
      this.#byOffset.delete(offset);
      slot.offset = -1;
      throw e;
    }
    return slot;
  }

  /** Returns a zero-filled slice for `offset` without reading (a newly allocated table). */
  getEmpty(offset: number): CacheEntry {
    let slot = this.#byOffset.get(offset);
    if (slot === undefined) slot = this.#replace(offset);
    slot.data.fill(0);
    slot.lru = ++this.#lruCounter;
    return slot;
  }

  /** The slice at `offset` if it is cached, without counting a hit or a miss. */
  peek(offset: number): CacheEntry | undefined {
    return this.#byOffset.get(offset);
  }

  /** Schedules an entry for write-back at the next flush or eviction. */
  markDirty(entry: CacheEntry): void {
    const slot = entry as Slot;
    if (!slot.dirty) {
      slot.dirty = true;
      this.#dirtyCount++;
    }
  }

  /**
   * Makes this cache flush `other` (and sync the store) before writing any of
   * its own dirty slices, as `qcow2_cache_set_dependency` does.
   */
  setDependency(other: MetadataCache): void {
    if (other === this) throw new RangeError("A cache cannot depend on itself");
    // Two caches never wait on each other: if `other` waits on something (this
    // cache, say), settle that first, as qcow2_cache_set_dependency does.
    if (other.#dependsOn !== null) other.#flushDependency();
    if (this.#dependsOn !== null && this.#dependsOn !== other) this.#flushDependency();
    this.#dependsOn = other;
  }

  /**
   * Makes the next write-back of this cache sync the store first, as
   * `qcow2_cache_depends_on_flush`: guest data written directly to the file must be
   * durable before a table entry pointing to it is.
   */
  setDependsOnFlush(): void {
    this.#dependsOnFlush = true;
  }

  /** Writes every dirty slice (dependencies first); the caller syncs the store if it must. */
  flush(): void {
    // A dependency is settled even when this cache is clean, so it never outlives its changes.
    this.#flushDependency();
    if (this.#dirtyCount === 0) return;
    this.#syncIfDependsOnFlush();
    // Write in offset order: neighbouring slices then reach the disk sequentially.
    const dirty = this.#slots.filter((s) => s.dirty).sort((a, b) => a.offset - b.offset);
    for (const slot of dirty) this.#writeSlot(slot);
  }

  /** Drops the slice at `offset` without writing it (its cluster was freed). */
  discard(offset: number): void {
    const slot = this.#byOffset.get(offset);
    if (slot === undefined) return;
    if (slot.dirty) this.#dirtyCount--;
    slot.dirty = false;
    this.#byOffset.delete(offset);
    slot.offset = -1;
    slot.lru = 0;
  }

  /** Drops every clean slice (the `cache-clean-interval` timer's job); dirty ones stay. */
  cleanUnused(): void {
    for (const slot of this.#slots) {
      if (!slot.dirty && slot.offset >= 0) {
        this.#byOffset.delete(slot.offset);
        slot.offset = -1;
        slot.lru = 0;
      }
    }
  }

  /** Drops every slice; dirty slices are lost (call {@linkcode flush} first). */
  clear(): void {
    this.#slots = [];
    this.#byOffset.clear();
    this.#dirtyCount = 0;
  }

  #syncIfDependsOnFlush(): void {
    if (!this.#dependsOnFlush) return;
    this.#dependsOnFlush = false;
    this.#store.syncSync();
  }

  #flushDependency(): void {
    const dep = this.#dependsOn;
    if (dep === null) return;
    this.#dependsOn = null;
    if (dep.dirtyCount > 0) {
      dep.flush();
      this.#store.syncSync();
    }
  }

  #writeSlot(slot: Slot): void {
    this.#store.writeSync(slot.offset, slot.data);
    slot.dirty = false;
    this.#dirtyCount--;
  }

  #replace(offset: number): Slot {
    let slot: Slot | undefined;
    if (this.#slots.length < this.#capacity) {
      const data = new Uint8Array(this.#entryBytes);
      slot = {
        offset,
        data,
        view: new DataView(data.buffer),
        dirty: false,
        lru: 0,
      };
      this.#slots.push(slot);
    } else {
      // Evict the least recently used slice; a dirty victim is written first.
      let victim = this.#slots[0];
      for (const s of this.#slots) {
        if (s.offset < 0) {
          victim = s;
          break;
        }
        if (s.lru < victim.lru) victim = s;
      }
      if (victim.dirty) {
        this.#flushDependency();
        this.#syncIfDependsOnFlush();
        this.#writeSlot(victim);
      }
      if (victim.offset >= 0) this.#byOffset.delete(victim.offset);
      slot = victim;
      slot.offset = offset;
    }
    slot.lru = ++this.#lruCounter;
    this.#byOffset.set(offset, slot);
    return slot;
  }

  /** The cache's name, for messages. */
  get name(): string {
    return this.#name;
  }
}
