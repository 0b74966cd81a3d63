// qcow2 persistent dirty bitmaps in use: loaded when an image opens (marked in use while
// it is open for writing), fed by every write, stored back when it closes (QEMU's qcow2-bitmap.c)

import {
  autoNodeName,
  DirtyBitmap,
  type DirtyBitmapHost,
} from "../../../core/block/dirty_bitmap.ts";
import { ImageFormatError, IoError, NotSupportedError } from "../../../core/errors.ts";
import {
  type BitmapDirEntry,
  type BitmapsExtension,
  BME_FLAG_AUTO,
  BME_FLAG_IN_USE,
  BME_MAX_GRANULARITY_BITS,
  BME_MAX_NAME_SIZE,
  BME_MAX_PHYS_SIZE,
  BME_MAX_TABLE_SIZE,
  BME_MIN_GRANULARITY_BITS,
  dirEntryBytes,
  encodeBitmapsExtension,
  encodeBitmapTable,
  encodeDirectory,
  nameBytes,
  parseBitmapsExtension,
  QCOW2_MAX_BITMAP_DIRECTORY_SIZE,
  QCOW2_MAX_BITMAPS,
  readBitmapTable,
  readClamped,
  readDirectory,
} from "./bitmaps.ts";
import { QCOW2_AUTOCLEAR_BITMAPS } from "./header.ts";
import { type Qcow2Image, writeHeader } from "./image.ts";

/** What `info` shows of one bitmap (from the directory on disk, as QEMU reads it). */
export interface BitmapInfo {
  name: string;
  granularity: number;
  /** `in-use` and `auto`, in that order. */
  flags: string[];
}

/** A directory entry with the in-memory bitmap that will be stored there. */
interface StoreEntry extends BitmapDirEntry {
  bitmap?: DirtyBitmap;
}

/**
 * The bitmaps extension of an image as an open sees it. QEMU ignores (with a warning)
 * an extension that a program without bitmap support may have left stale: in a v2 image,
 * or in a v3 image whose autoclear bit 0 is clear.
 *
 * @returns the extension, or undefined when there is none or it is ignored
 */
export function bitmapsExtensionOf(
  img: Pick<Qcow2Image, "header" | "layout">,
  report?: (line: string) => void,
): BitmapsExtension | undefined {
  const raw = img.header.bitmapsExtension;
  if (!raw) return undefined;
  if (raw.length !== 24) throw new ImageFormatError("bitmaps_ext: Invalid extension length");
  if (img.header.version < 3 || (img.header.autoclearFeatures & QCOW2_AUTOCLEAR_BITMAPS) === 0n) {
    // One report: the warning line, then QEMU's hint, which ends without a newline.
    report?.(
      `${
        img.header.version < 3
          ? "warning: This qcow2 v2 image contains bitmaps, but they may have been modified by a program without persistent bitmap support; so now they must all be considered inconsistent"
          : "warning: a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent"
      }\nSome clusters may be leaked, run 'qemu-img check -r' on the image file to fix.`,
    );
    return undefined;
  }
  return parseBitmapsExtension(raw, img.layout.clusterSize);
}

/** The persistent bitmaps of one open qcow2 image. */
export class Qcow2Bitmaps implements DirtyBitmapHost {
  readonly nodeName: string;
  #img: Qcow2Image;
  #ext: BitmapsExtension | undefined;
  /** Newest first, as QEMU's bs->dirty_bitmaps. */
  #bitmaps: DirtyBitmap[] = [];
  /** The directory as loaded (until markInUse). */
  #entries: BitmapDirEntry[] = [];
  /** Bitmaps whose data is still on disk (read-only opens load it when asked). */
  #pending = new Map<DirtyBitmap, BitmapDirEntry>();

  private constructor(img: Qcow2Image, ext: BitmapsExtension | undefined, nodeName?: string) {
    this.#img = img;
    this.#ext = ext;
    this.nodeName = nodeName ?? autoNodeName();
  }

  /**
   * Loads the bitmaps of `img` (QEMU's qcow2_load_dirty_bitmaps): the directory and
   * every bitmap table are checked, nothing is written. A bitmap's data is read when
   * it is first needed.
   */
  static load(
    img: Qcow2Image,
    ext: BitmapsExtension | undefined,
    nodeName?: string,
  ): Qcow2Bitmaps {
    const set = new Qcow2Bitmaps(img, ext, nodeName);
    if (!ext) return set;
    const cs = img.layout.clusterSize;
    const entries = readDirectory(img.file, ext, cs, img.header.size);
    checkTablesApart(entries, img.file.size());
    const names = new Set<string>();
    const loaded: DirtyBitmap[] = [];
    for (const e of entries) {
      if (names.has(e.name)) throw new ImageFormatError(`Bitmap already exists: ${e.name}`);
      names.add(e.name);
      const bitmap = new DirtyBitmap(e.name, {
        granularity: 2 ** e.granularityBits,
        sizeBytes: img.header.size,
        chunkBytes: cs,
      });
      bitmap.enabled = (e.flags & BME_FLAG_AUTO) !== 0;
      bitmap.readonly = img.readOnly;
      if ((e.flags & BME_FLAG_IN_USE) !== 0) {
        bitmap.inconsistent = true;
      } else {
        if (!readBitmapTable(img.file, e, cs)) {
          throw new ImageFormatError(
            `Could not read bitmap_table table from image for bitmap '${e.name}': Invalid argument`,
          );
        }
        if (e.tableSize !== bitmap.chunkCount || e.tableSize > BME_MAX_TABLE_SIZE) {
          throw new ImageFormatError(
            `Could not read bitmap '${e.name}' from image: Invalid argument`,
          );
        }
        set.#pending.set(bitmap, e);
      }
      loaded.push(bitmap);
    }
    set.#bitmaps = loaded.reverse();
    set.#entries = entries;
    return set;
  }

  /**
   * For an image opened for writing: reads every consistent bitmap, then marks each in
   * use in the directory (in place) until {@linkcode store} writes it back.
   */
  markInUse(): void {
    const entries = this.#entries;
    this.#entries = [];
    this.#loadAll();
    let needsUpdate = false;
    for (const e of entries) {
      if ((e.flags & BME_FLAG_IN_USE) !== 0) continue;
      e.flags |= BME_FLAG_IN_USE;
      needsUpdate = true;
    }
    if (needsUpdate) this.#updateInPlace(entries);
  }

  get supported(): boolean {
    return this.#img.header.version >= 3;
  }

  /** Follows the image state after it was read again (invalidateCache, amend). */
  rebind(img: Qcow2Image): void {
    this.#img = img;
  }

  /** The number of bitmaps in memory. */
  get size(): number {
    return this.#bitmaps.length;
  }

  bitmaps(): DirtyBitmap[] {
    this.#loadAll();
    return [...this.#bitmaps];
  }

  /**
   * Adds the bitmaps to `info`'s format-specific part, as qemu-img prints them: `data` for
   * JSON, `human` for the indented lines. Nothing when the image has none.
   */
  describe(data: Record<string, unknown>, human: string[]): void {
    const bitmaps = this.info();
    if (bitmaps.length === 0) return;
    data["bitmaps"] = bitmaps.map((b) => ({
      flags: b.flags,
      name: b.name,
      granularity: b.granularity,
    }));
    human.push("    bitmaps:");
    bitmaps.forEach((b, i) => {
      human.push(`        [${i}]:`, "            flags:");
      b.flags.forEach((f, j) => human.push(`                [${j}]: ${f}`));
      human.push(`            name: ${b.name}`, `            granularity: ${b.granularity}`);
    });
  }

  /** The bitmaps as `info` lists them: the directory on disk, in its order. */
  info(): BitmapInfo[] {
    if (!this.#ext) return [];
    const entries = readDirectory(
      this.#img.file,
      this.#ext,
      this.#img.layout.clusterSize,
      this.#img.header.size,
    );
    return entries.map((e) => ({
      name: e.name,
      granularity: 2 ** e.granularityBits,
      flags: [
        ...((e.flags & BME_FLAG_IN_USE) !== 0 ? ["in-use"] : []),
        ...((e.flags & BME_FLAG_AUTO) !== 0 ? ["auto"] : []),
      ],
    }));
  }

  /** Records a write of `[offset, offset + bytes)` in every enabled bitmap. */
  markDirty(offset: number, bytes: number): void {
    for (const b of this.#bitmaps) if (b.enabled) b.setDirty(offset, bytes);
  }

  /** QEMU's qcow2_co_can_store_new_dirty_bitmap, then the bitmap joins the others. */
  addBitmap(name: string, granularity: number, options?: { disabled?: boolean }): Promise<void> {
    const img = this.#img;
    if (this.#bitmaps.some((b) => b.name === name)) {
      return Promise.reject(new IoError(`Bitmap already exists: ${name}`));
    }
    const refuse = (why: string) =>
      Promise.reject(
        new NotSupportedError(
          `Can't make bitmap '${name}' persistent in '${this.nodeName}': ${why}`,
        ),
      );
    if (img.header.version < 3) return refuse("Cannot store dirty bitmaps in qcow2 v2 files");
    const constraint = constraintError(name, granularity, img.header.size, img.layout.clusterSize);
    if (constraint) return refuse(constraint);
    const count = this.#bitmaps.length + 1;
    const dirBytes = this.#bitmaps.reduce((n, b) => n + dirEntryBytes(nameBytes(b.name)), 0) +
      dirEntryBytes(nameBytes(name));
    if (count > QCOW2_MAX_BITMAPS) {
      return refuse("Maximum number of persistent bitmaps is already reached");
    }
    if (dirBytes > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
      return refuse("Not enough space in the bitmap directory");
    }
    if (img.readOnly) return Promise.reject(new IoError("No write access"));
    const bitmap = new DirtyBitmap(name, {
      granularity,
      sizeBytes: img.header.size,
      chunkBytes: img.layout.clusterSize,
    });
    bitmap.enabled = !options?.disabled;
    this.#bitmaps.unshift(bitmap);
    return Promise.resolve();
  }

  /**
   * Removes a bitmap: a new directory without it, then its clusters are freed at once
   * (QEMU's qcow2_co_remove_persistent_dirty_bitmap).
   */
  async removeBitmap(name: string): Promise<void> {
    const at = this.#bitmaps.findIndex((b) => b.name === name);
    if (at >= 0) {
      this.#pending.delete(this.#bitmaps[at]);
      this.#bitmaps.splice(at, 1);
    }
    if (!this.#ext) return;
    const img = this.#img;
    const cs = img.layout.clusterSize;
    const list = readDirectory(img.file, this.#ext, cs, img.header.size);
    const i = list.findIndex((e) => e.name === name);
    if (i < 0) return;
    const [gone] = list.splice(i, 1);
    this.#writeDirectory(list);
    await this.#freeBitmapClusters(gone);
  }

  /**
   * Stores every bitmap that changed hands in memory (QEMU's
   * qcow2_store_persistent_dirty_bitmaps): data clusters and a new table per bitmap,
   * then a new directory, then the old tables are freed.
   */
  async store(): Promise<void> {
    const writable = this.#bitmaps.filter((b) => !b.inconsistent && !b.readonly);
    if (writable.length === 0) return;
    const img = this.#img;
    const cs = img.layout.clusterSize;
    this.#loadAll();
    const list: StoreEntry[] = this.#ext
      ? readDirectory(img.file, this.#ext, cs, img.header.size)
      : [];
    const drop: BitmapDirEntry[] = [];
    const byName = new Map(list.map((e) => [e.name, e]));
    for (const b of writable) {
      const constraint = constraintError(b.name, b.granularity, img.header.size, cs);
      if (constraint) {
        throw new ImageFormatError(
          `Bitmap '${b.name}' doesn't satisfy the constraints: ${constraint}`,
        );
      }
      let e = byName.get(b.name);
      if (!e) {
        e = { name: b.name, tableOffset: 0, tableSize: 0, flags: 0, granularityBits: 0 };
        list.push(e);
        byName.set(b.name, e);
      } else {
        if ((e.flags & BME_FLAG_IN_USE) === 0) {
          throw new ImageFormatError(`Bitmap '${b.name}' already exists in the image`);
        }
        drop.push({ ...e });
        e.tableOffset = 0;
        e.tableSize = 0;
      }
      e.flags = b.enabled ? BME_FLAG_AUTO : 0;
      e.granularityBits = Math.log2(b.granularity);
      e.bitmap = b;
    }
    for (const e of list) {
      if (!e.bitmap) continue;
      const b = e.bitmap;
      const offsets: number[] = new Array(b.chunkCount).fill(0);
      for (const index of b.chunkIndexes()) {
        const at = img.refcounts.allocClusters(1);
        offsets[index] = at;
        img.file.writeSync(at, b.chunk(index)!);
      }
      const table = encodeBitmapTable(offsets);
      const tableAt = img.refcounts.allocClusters(Math.ceil(table.length / cs));
      img.file.writeSync(tableAt, table);
      e.tableOffset = tableAt;
      e.tableSize = offsets.length;
    }
    this.#writeDirectory(list.map(({ bitmap: _, ...e }) => e));
    for (const d of drop) await this.#freeBitmapClusters(d);
  }

  /**
   * Refuses to resize while a bitmap cannot follow (QEMU's qcow2_truncate_bitmaps_check),
   * else resizes every bitmap with the disk.
   */
  checkResizable(): void {
    for (const b of this.#bitmaps) {
      if (b.inconsistent) throw inconsistentError(b.name);
    }
  }

  /** Follows a new disk size. */
  resize(sizeBytes: number): void {
    this.#loadAll();
    for (const b of this.#bitmaps) b.truncate(sizeBytes);
  }

  #loadAll(): void {
    const img = this.#img;
    const cs = img.layout.clusterSize;
    const fileBytes = img.file.size();
    // A data cluster named twice is read once and shared (copy on write): memory stays
    // within the file's size whatever the tables say.
    const seen = new Map<number, Uint8Array>();
    for (const [bitmap, e] of this.#pending) {
      for (const [index, t] of readBitmapTable(img.file, e, cs) ?? []) {
        if (t.offset === 0) {
          if (t.allOnes) bitmap.loadChunk(index, onesCluster(cs), true);
          continue;
        }
        if (t.offset >= fileBytes) continue;
        let data = seen.get(t.offset);
        if (!data) {
          data = readClamped(img.file, t.offset, cs);
          seen.set(t.offset, data);
        }
        bitmap.loadChunk(index, data, true);
      }
    }
    this.#pending.clear();
  }

  /** QEMU's update_ext_header_and_dir_in_place: in-use flags written over the old directory. */
  #updateInPlace(entries: BitmapDirEntry[]): void {
    const img = this.#img;
    const ext = this.#ext!;
    // With the autoclear bit clear, a crash while the directory is rewritten only loses
    // the bitmaps (as if a program without bitmap support had touched the image).
    img.header.autoclearFeatures &= ~QCOW2_AUTOCLEAR_BITMAPS;
    writeHeader(img);
    img.file.writeSync(ext.directoryOffset, encodeDirectory(entries));
    writeHeader(img);
    img.header.autoclearFeatures |= QCOW2_AUTOCLEAR_BITMAPS;
    writeHeader(img);
  }

  /** QEMU's update_ext_header_and_dir: a new directory, the header, then the old directory freed. */
  #writeDirectory(list: BitmapDirEntry[]): void {
    const img = this.#img;
    const cs = img.layout.clusterSize;
    const old = this.#ext;
    let ext: BitmapsExtension | undefined;
    if (list.length > 0) {
      const dir = encodeDirectory(list);
      const at = img.refcounts.allocClusters(Math.ceil(dir.length / cs));
      img.file.writeSync(at, dir);
      img.map.cache.flush();
      img.refcounts.flush();
      ext = { nbBitmaps: list.length, directorySize: dir.length, directoryOffset: at };
      img.header.autoclearFeatures |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
      img.header.autoclearFeatures &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    img.header.bitmapsExtension = ext ? encodeBitmapsExtension(ext) : undefined;
    writeHeader(img);
    this.#ext = ext;
    if (old && old.directorySize > 0) img.refcounts.free(old.directoryOffset, old.directorySize);
  }

  /** Frees a bitmap's data clusters (punching holes, as QCOW2_DISCARD_ALWAYS) and its table. */
  async #freeBitmapClusters(e: Pick<BitmapDirEntry, "tableOffset" | "tableSize">): Promise<void> {
    const img = this.#img;
    const cs = img.layout.clusterSize;
    const table = readBitmapTable(img.file, e, cs);
    if (!table) return;
    const discard: number[] = [];
    for (const [, t] of table) {
      if (t.offset === 0) continue;
      img.refcounts.free(t.offset, cs);
      if (img.refcounts.get(t.offset / cs) === 0) discard.push(t.offset);
    }
    img.refcounts.free(e.tableOffset, e.tableSize * 8);
    img.refcounts.flush();
    for (const offset of discard) await img.file.node.discard(offset, cs);
  }
}

/** QEMU's message for a bitmap marked in use: its bits cannot be trusted. */
export function inconsistentError(name: string): IoError {
  return new IoError(
    `Bitmap '${name}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk`,
  );
}

/** QEMU's check_constraints_on_bitmap; undefined when the bitmap fits. */
function constraintError(
  name: string,
  granularity: number,
  diskBytes: number,
  clusterSize: number,
): string | undefined {
  const bits = Math.log2(granularity);
  if (bits > BME_MAX_GRANULARITY_BITS) {
    return `Granularity exceeds maximum (${2 ** BME_MAX_GRANULARITY_BITS} bytes)`;
  }
  if (bits < BME_MIN_GRANULARITY_BITS) {
    return `Granularity is under minimum (${2 ** BME_MIN_GRANULARITY_BITS} bytes)`;
  }
  const bytes = Math.ceil(Math.ceil(diskBytes / granularity) / 8);
  if (bytes > BME_MAX_PHYS_SIZE || bytes > BME_MAX_TABLE_SIZE * clusterSize) {
    return "Too much space will be occupied by the bitmap. Use larger granularity";
  }
  if (nameBytes(name) > BME_MAX_NAME_SIZE) {
    return `Name length exceeds maximum (${BME_MAX_NAME_SIZE} characters)`;
  }
  return undefined;
}

/**
 * Refuses bitmap tables that overlap each other inside the file: QEMU reads each again
 * and again, so a hostile directory of many bitmaps sharing one big table would cost
 * time and memory out of all proportion to the file.
 */
function checkTablesApart(entries: readonly BitmapDirEntry[], fileBytes: number): void {
  const ranges = entries
    .filter((e) => (e.flags & BME_FLAG_IN_USE) === 0 && e.tableOffset < fileBytes)
    .map((e) => ({ name: e.name, start: e.tableOffset, end: e.tableOffset + e.tableSize * 8 }))
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].start < ranges[i - 1].end) {
      throw new ImageFormatError(
        `Bitmap '${ranges[i].name}' has a bitmap table that overlaps the table of bitmap '${
          ranges[i - 1].name
        }'`,
      );
    }
  }
}

let ones: { size: number; data: Uint8Array } | undefined;

/** A cluster of set bits, shared (bitmaps copy it before changing it). */
function onesCluster(clusterSize: number): Uint8Array {
  if (ones?.size !== clusterSize) {
    ones = { size: clusterSize, data: new Uint8Array(clusterSize).fill(0xff) };
  }
  return ones.data;
}

/**
 * Counts the clusters of the bitmap directory, tables and data for `qemu-img check`
 * (QEMU's qcow2_check_bitmaps_refcounts): `inc` counts a region. A directory or table
 * QEMU cannot load is a corruption, and the check fails there.
 */
export function countBitmapReferences(
  img: Qcow2Image,
  inc: (offset: number, bytes: number) => void,
): { corruptions: number; failed: boolean } {
  let ext: BitmapsExtension | undefined;
  try {
    ext = bitmapsExtensionOf(img);
  } catch {
    return { corruptions: 1, failed: true };
  }
  if (!ext) return { corruptions: 0, failed: false };
  const cs = img.layout.clusterSize;
  inc(ext.directoryOffset, ext.directorySize);
  let entries: BitmapDirEntry[];
  try {
    entries = readDirectory(img.file, ext, cs, img.header.size);
  } catch {
    return { corruptions: 1, failed: true };
  }
  for (const e of entries) {
    inc(e.tableOffset, e.tableSize * 8);
    const table = readBitmapTable(img.file, e, cs);
    if (!table) return { corruptions: 1, failed: true };
    for (const [, t] of table) if (t.offset !== 0) inc(t.offset, cs);
  }
  return { corruptions: 0, failed: false };
}
