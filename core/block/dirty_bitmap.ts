// Dirty bitmaps: which granules of a disk were written, kept in memory by the block layer (QEMU's block/dirty-bitmap.c)

/** The largest name a persistent bitmap may have, in bytes (QEMU's BDRV_BITMAP_MAX_NAME_SIZE). */
export const BDRV_BITMAP_MAX_NAME_SIZE = 1023;

/** A name for a node opened without one, as QEMU makes it: `#block`, a counter and two random digits. */
export function autoNodeName(): string {
  return `#block${100 + Math.floor(Math.random() * 100)}`;
}

/**
 * The granularity a bitmap gets when none is asked for: the cluster size clamped to
 * 4 KiB .. 64 KiB, or 64 KiB for a node without clusters (bdrv_get_default_bitmap_granularity).
 */
export function defaultBitmapGranularity(clusterSize: number | undefined): number {
  if (!clusterSize || clusterSize <= 0) return 65536;
  return Math.min(65536, Math.max(4096, clusterSize));
}

/**
 * A dirty bitmap. Its bits are kept in chunks of `chunkBytes` serialized bytes (one bit
 * per granule, least significant bit first, as qcow2 stores them), so a bitmap that is
 * mostly clean costs no memory, and a chunk read from an image may be shared until it
 * is written (copy on write).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DirtyBitmap } from "./dirty_bitmap.ts";
 *
 * const b = new DirtyBitmap("b0", { granularity: 65536, sizeBytes: 1 << 20, chunkBytes: 512 });
 * b.setDirty(70000, 1);
 * assert.deepEqual([...b.dirtyRanges()], [[65536, 65536]]);
 * ```
 */
export class DirtyBitmap {
  readonly name: string;
  readonly granularity: number;
  /** Serialized bytes per chunk (the image's cluster size for a qcow2 bitmap). */
  readonly chunkBytes: number;
  /** The size of the disk the bitmap covers, in bytes. */
  sizeBytes: number;
  /** Enabled bitmaps record writes (qcow2's `auto` flag). */
  enabled = true;
  /** Marked in use in the image when it was opened: its bits cannot be trusted (QEMU's "inconsistent"). */
  inconsistent = false;
  /** Loaded from an image opened read-only: it cannot change. */
  readonly = false;
  #chunks = new Map<number, Uint8Array>();
  #shared = new WeakSet<Uint8Array>();

  constructor(
    name: string,
    options: { granularity: number; sizeBytes: number; chunkBytes: number },
  ) {
    this.name = name;
    this.granularity = options.granularity;
    this.sizeBytes = options.sizeBytes;
    this.chunkBytes = options.chunkBytes;
  }

  /** Number of granules the bitmap has. */
  get granules(): number {
    return Math.ceil(this.sizeBytes / this.granularity);
  }

  /** Serialized size in bytes (whole 64-bit words, as QEMU's hbitmap serializes). */
  get serializedBytes(): number {
    return Math.ceil(this.granules / 64) * 8;
  }

  /** Number of chunks the serialized bitmap spans. */
  get chunkCount(): number {
    return Math.ceil(this.serializedBytes / this.chunkBytes);
  }

  /** The chunk `index` (undefined when clean); do not change it. */
  chunk(index: number): Uint8Array | undefined {
    return this.#chunks.get(index);
  }

  /** Indexes of the chunks with bits set, ascending. */
  chunkIndexes(): number[] {
    return [...this.#chunks.keys()].sort((a, b) => a - b);
  }

  /**
   * Sets chunk `index` from serialized bytes (bits past the bitmap's end are dropped).
   * With `shared`, the array is kept as is and copied before any change.
   */
  loadChunk(index: number, bytes: Uint8Array, shared = false): void {
    let data = bytes;
    const firstGranule = index * this.chunkBytes * 8;
    const validBits = Math.min(this.chunkBytes * 8, this.granules - firstGranule);
    if (validBits <= 0) return;
    const needsMask = validBits < this.chunkBytes * 8 && hasBitsFrom(data, validBits);
    if (needsMask) {
      data = data.slice();
      clearBitsFrom(data, validBits);
      shared = false;
    }
    if (isZero(data)) {
      this.#chunks.delete(index);
      return;
    }
    if (shared) this.#shared.add(data);
    this.#chunks.set(index, data);
  }

  /** Marks every granule overlapping `[offset, offset + bytes)` dirty. */
  setDirty(offset: number, bytes: number): void {
    if (bytes <= 0 || offset >= this.sizeBytes) return;
    const first = Math.floor(offset / this.granularity);
    const last = Math.min(
      Math.floor((Math.min(offset + bytes, this.sizeBytes) - 1) / this.granularity),
      this.granules - 1,
    );
    this.#setGranules(first, last);
  }

  #setGranules(first: number, last: number): void {
    const perChunk = this.chunkBytes * 8;
    for (let g = first; g <= last;) {
      const index = Math.floor(g / perChunk);
      const chunkEnd = Math.min(last, (index + 1) * perChunk - 1);
      const data = this.#writableChunk(index);
      const base = index * perChunk;
      for (let b = g - base; b <= chunkEnd - base; b++) {
        if ((b & 7) === 0 && b + 7 <= chunkEnd - base) {
          data[b >> 3] = 0xff;
          b += 7;
          continue;
        }
        data[b >> 3] |= 1 << (b & 7);
      }
      g = chunkEnd + 1;
    }
  }

  #writableChunk(index: number): Uint8Array {
    let data = this.#chunks.get(index);
    if (!data || this.#shared.has(data)) {
      data = data ? data.slice() : new Uint8Array(this.chunkBytes);
      this.#chunks.set(index, data);
    }
    return data;
  }

  /** Clears every bit. */
  clear(): void {
    this.#chunks.clear();
  }

  /** True when no granule is dirty. */
  isEmpty(): boolean {
    return this.#chunks.size === 0;
  }

  /** The dirty byte ranges `[offset, bytes]`, ascending, merged where adjacent. */
  *dirtyRanges(): Generator<[number, number]> {
    const perChunk = this.chunkBytes * 8;
    let runStart = -1;
    let runEnd = -1;
    for (const index of this.chunkIndexes()) {
      const data = this.#chunks.get(index)!;
      for (let byte = 0; byte < data.length; byte++) {
        if (data[byte] === 0) continue;
        const first = index * perChunk + byte * 8;
        // A full byte that continues the run extends it whole (all-ones bitmaps are common).
        if (data[byte] === 0xff && first === runEnd) {
          runEnd += 8;
          continue;
        }
        for (let bit = 0; bit < 8; bit++) {
          if ((data[byte] & (1 << bit)) === 0) continue;
          const g = index * perChunk + byte * 8 + bit;
          if (g === runEnd) {
            runEnd++;
            continue;
          }
          if (runStart >= 0) yield this.#range(runStart, runEnd);
          runStart = g;
          runEnd = g + 1;
        }
      }
    }
    if (runStart >= 0) yield this.#range(runStart, runEnd);
  }

  #range(firstGranule: number, endGranule: number): [number, number] {
    const start = firstGranule * this.granularity;
    return [start, Math.min(endGranule * this.granularity, this.sizeBytes) - start];
  }

  /** Sets every granule that overlaps a dirty granule of `source` (QEMU's hbitmap_merge). */
  mergeFrom(source: DirtyBitmap): void {
    if (source.granularity === this.granularity && source.chunkBytes === this.chunkBytes) {
      for (const index of source.chunkIndexes()) {
        const from = source.chunk(index)!;
        // A clean chunk takes a shared one as it is (copied on its first change), so an
        // all-ones source costs no memory.
        if (!this.#chunks.has(index) && source.#shared.has(from)) {
          this.#shared.add(from);
          this.#chunks.set(index, from);
          continue;
        }
        const to = this.#writableChunk(index);
        for (let i = 0; i < to.length; i++) to[i] |= from[i];
      }
      return;
    }
    for (const [offset, bytes] of source.dirtyRanges()) this.setDirty(offset, bytes);
  }

  /** Changes the covered size; bits past a smaller end are dropped (bdrv_dirty_bitmap_truncate). */
  truncate(sizeBytes: number): void {
    this.sizeBytes = sizeBytes;
    const count = this.chunkCount;
    for (const index of this.chunkIndexes()) {
      if (index >= count) {
        this.#chunks.delete(index);
        continue;
      }
      this.loadChunk(index, this.#chunks.get(index)!, this.#shared.has(this.#chunks.get(index)!));
    }
  }
}

function isZero(data: Uint8Array): boolean {
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

function hasBitsFrom(data: Uint8Array, bit: number): boolean {
  if ((bit & 7) !== 0 && (data[bit >> 3] >> (bit & 7)) !== 0) return true;
  for (let i = (bit + 7) >> 3; i < data.length; i++) if (data[i] !== 0) return true;
  return false;
}

function clearBitsFrom(data: Uint8Array, bit: number): void {
  if ((bit & 7) !== 0) data[bit >> 3] &= (1 << (bit & 7)) - 1;
  data.fill(0, (bit + 7) >> 3);
}

/**
 * The bytes persistent bitmaps take in a new qcow2 image of `clusterSize`, each bitmap
 * counted as wholly dirty, with its table and directory entry (QEMU's
 * qcow2_get_persistent_dirty_bitmap_size, the "bitmaps size" of `qemu-img measure`).
 */
export function persistentBitmapsSize(
  bitmaps: readonly DirtyBitmap[],
  clusterSize: number,
): number {
  let total = 0;
  let directory = 0;
  for (const b of bitmaps) {
    const clusters = Math.ceil(Math.ceil(b.granules / 8) / clusterSize);
    total += clusters * clusterSize + Math.ceil((clusters * 8) / clusterSize) * clusterSize;
    directory += (24 + new TextEncoder().encode(b.name).length + 7) & ~7;
  }
  return total + Math.ceil(directory / clusterSize) * clusterSize;
}

/**
 * What a node with persistent dirty bitmaps offers the block layer (QEMU's
 * `bdrv_co_can_store_new_dirty_bitmap` and `bdrv_co_remove_persistent_dirty_bitmap`).
 * The bitmaps themselves are plain {@linkcode DirtyBitmap}s the node keeps, records
 * writes into, and stores when it closes.
 */
export interface DirtyBitmapHost {
  /** True when the image can keep bitmaps at all (a qcow2 v2 image cannot). */
  readonly supported: boolean;
  /** The node's name in QEMU's messages (an automatic `#block…` name). */
  readonly nodeName: string;
  /** The node's bitmaps, newest first (QEMU's `bs->dirty_bitmaps`). */
  bitmaps(): DirtyBitmap[];
  /**
   * Adds a persistent bitmap, after the checks the format makes before it can store it.
   * @throws a VmkitError in QEMU's words when the format cannot store it
   */
  addBitmap(name: string, granularity: number, options?: { disabled?: boolean }): Promise<void>;
  /** Removes a bitmap from memory and from the image. */
  removeBitmap(name: string): Promise<void>;
}
