// qcow2 amend: change the compat level, lazy refcounts, refcount width, data file and size in place

import type { AmendOptions } from "../../../core/block/driver.ts";
import { NotSupportedError, OptionError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import {
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_COMPRESSION_TYPE_ZLIB,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DIRTY,
} from "./header.ts";
import { markClean, type Qcow2Image, writeHeader, writeReftableLocation } from "./image.ts";
import {
  entryOffset,
  Layout,
  offsetHi,
  offsetLo,
  QCOW_OFLAG_COMPRESSED_HI,
  QCOW_OFLAG_COPIED_HI,
  QCOW_OFLAG_ZERO,
} from "./layout.ts";
import { maxRefcount, Refcounts, writeRefcount } from "./refcount.ts";
import { QCOW_MAX_REFTABLE_SIZE } from "./header.ts";
import { truncateImage } from "./truncate.ts";

export { QCOW2_AMEND_OPTIONS } from "./options.ts";

const V3_ONLY_HINT = "(use compat=1.1 or greater)";

/** The settings an amend asks for, checked against the image before anything changes. */
interface AmendPlan {
  version: number;
  lazy?: boolean;
  refcountOrder?: number;
  dataFile?: string;
  clearDataFileRaw: boolean;
  size?: number;
}

/** Reads `compat=` as QEMU does: `0.10`/`v2` or `1.1`/`v3`. */
export function parseCompat(text: string): number {
  if (text === "0.10" || text === "v2") return 2;
  if (text === "1.1" || text === "v3") return 3;
  throw new OptionError(`Unknown compatibility level ${text}`);
}

function plan(img: Qcow2Image, opts: ParsedOptions): AmendPlan {
  const h = img.header;
  const p: AmendPlan = { version: h.version, clearDataFileRaw: false };
  if (typeof opts.compat === "string") p.version = parseCompat(opts.compat);
  if (typeof opts.lazy_refcounts === "boolean") p.lazy = opts.lazy_refcounts;
  if (typeof opts.refcount_bits === "number") {
    const bits = opts.refcount_bits;
    if (bits < 1 || bits > 64 || (bits & (bits - 1)) !== 0) {
      throw new OptionError("Refcount width must be a power of two and may not exceed 64 bits");
    }
    p.refcountOrder = Math.log2(bits);
  }
  if (typeof opts.data_file === "string") {
    if (!img.hasDataFile) {
      throw new OptionError("data-file can only be set for images that use an external data file");
    }
    p.dataFile = opts.data_file;
  }
  if (typeof opts.data_file_raw === "boolean") {
    if (opts.data_file_raw && !img.dataFileRaw) {
      throw new OptionError("data-file-raw cannot be set on existing images");
    }
    p.clearDataFileRaw = !opts.data_file_raw && img.dataFileRaw;
  }
  if (Object.keys(opts).some((k) => k.startsWith("encrypt."))) {
    throw new NotSupportedError("Can't amend encryption options - encryption not present");
  }
  if ("backing_file" in opts || "backing_fmt" in opts) {
    if (opts.backing_file !== h.backingFile || opts.backing_fmt !== h.backingFormat) {
      throw new NotSupportedError(
        "Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.",
      );
    }
  }
  if (typeof opts.size === "number") p.size = opts.size;
  if (p.lazy === true && p.version < 3) {
    throw new OptionError(
      `Lazy refcounts only supported with compatibility level 1.1 and above ${V3_ONLY_HINT}`,
    );
  }
  if (p.refcountOrder !== undefined && p.refcountOrder !== 4 && p.version < 3) {
    throw new OptionError(
      `Refcount widths other than 16 bits require compatibility level 1.1 or above ${V3_ONLY_HINT}`,
    );
  }
  return p;
}

/** Writes every cached table and makes the refcounts on disk exact (dirty bit cleared). */
function settle(img: Qcow2Image): void {
  img.map.cache.flush();
  img.refcounts.flush();
  img.file.syncSync();
  markClean(img);
}

/**
 * Amends an open, writable image as QEMU's `qcow2_amend_options`: checks every
 * option first, then upgrades, changes the refcount width, the data file name,
 * lazy refcounts and the size, and downgrades last. Errors use QEMU's words.
 *
 * A new refcount width or data file setting replaces the image state: `onReplaced`
 * gets the state to use from then on, also when a later step fails.
 */
export async function amendImage(
  img: Qcow2Image,
  opts: ParsedOptions,
  options: AmendOptions & { onReplaced?: (img: Qcow2Image) => void } = {},
): Promise<void> {
  const p = plan(img, opts);
  const replace = (next: Qcow2Image) => {
    img = next;
    options.onReplaced?.(next);
  };
  const h = img.header;
  const progress = options.progress ?? (() => {});
  progress(0, 100);
  if (p.version > h.version) {
    settle(img);
    h.version = 3;
    h.incompatibleFeatures = 0n;
    h.compatibleFeatures = 0n;
    h.autoclearFeatures = 0n;
    h.compressionType = QCOW2_COMPRESSION_TYPE_ZLIB;
    writeHeader(img);
  }
  if (p.refcountOrder !== undefined && p.refcountOrder !== h.refcountOrder) {
    replace(changeRefcountOrder(img, p.refcountOrder));
  }
  if (p.dataFile !== undefined || p.clearDataFileRaw) {
    if (p.dataFile !== undefined) h.dataFile = p.dataFile;
    if (p.clearDataFileRaw) {
      h.autoclearFeatures &= ~QCOW2_AUTOCLEAR_DATA_FILE_RAW;
      replace({ ...img, dataFileRaw: false });
    }
    writeHeader(img);
  }
  if (p.lazy !== undefined) {
    const on = (h.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) !== 0n;
    if (p.lazy && !on) {
      h.compatibleFeatures |= QCOW2_COMPAT_LAZY_REFCOUNTS;
      writeHeader(img);
      img.lazy = true;
    } else if (!p.lazy && (on || img.lazy)) {
      // Refcounts must be exact on disk before the image stops promising a repair.
      settle(img);
      h.compatibleFeatures &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
      writeHeader(img);
      img.lazy = false;
    }
  }
  if (p.size !== undefined && p.size !== h.size) {
    await truncateImage(img, p.size, { shrink: true });
    // qcow2_amend_options rewrites the header after the resize.
    writeHeader(img);
  }
  if (p.version < h.version) await downgrade(img);
  progress(100, 100);
}

/** Rewrites a v3 image as v2 (QEMU's `qcow2_downgrade`), refusing what v2 cannot express. */
async function downgrade(img: Qcow2Image): Promise<void> {
  const h = img.header;
  if (h.refcountOrder !== 4) throw new NotSupportedError("compat=0.10 requires refcount_bits=16");
  if (img.hasDataFile) throw new NotSupportedError("Cannot downgrade an image with a data file");
  // The dirty bit is settled below; QEMU 7.2 lets the compression type bit through.
  const blocking = h.incompatibleFeatures &
    ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_COMPRESSION);
  if (blocking !== 0n) {
    throw new NotSupportedError(
      `Cannot downgrade an image with incompatible features 0x${blocking.toString(16)} set`,
    );
  }
  // A v2 snapshot entry has no room for its own disk size or a 64-bit VM state size.
  for (const s of img.snapshots) {
    if ((s.diskSize !== undefined && s.diskSize !== h.size) || s.vmStateSize > 0xffffffff) {
      throw new NotSupportedError("Internal snapshots prevent downgrade of image");
    }
  }
  settle(img);
  img.lazy = false;
  await expandZeroClusters(img);
  h.version = 2;
  h.incompatibleFeatures = 0n;
  h.compatibleFeatures = 0n;
  h.autoclearFeatures = 0n;
  h.compressionType = QCOW2_COMPRESSION_TYPE_ZLIB;
  h.unknownHeaderFields = new Uint8Array(0);
  writeHeader(img);
}

/**
 * Replaces zero clusters, which v2 cannot express, in the active and every
 * snapshot L2 table: a preallocated one is zero-filled and becomes normal data;
 * a plain one is dropped without a backing file and gets a zeroed cluster with one.
 */
async function expandZeroClusters(img: Qcow2Image): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  const backed = img.header.backingFile !== undefined;
  const l2Tables = new Set<number>();
  for (let i = 0; i < img.map.l1Size; i++) l2Tables.add(img.map.l2Offset(i));
  for (const s of img.snapshots) {
    const raw = new Uint8Array(s.l1Size * 8);
    if (s.l1Size > 0) img.file.readSync(s.l1TableOffset, raw);
    const v = new DataView(raw.buffer);
    for (let i = 0; i < s.l1Size; i++) {
      l2Tables.add(entryOffset(v.getUint32(i * 8), v.getUint32(i * 8 + 4)));
    }
  }
  l2Tables.delete(0);
  // Tables are edited on disk: drop the (already flushed) cached slices first.
  img.map.cache.clear();
  for (const l2 of l2Tables) {
    const table = new Uint8Array(cs);
    img.file.readSync(l2, table);
    const v = new DataView(table.buffer);
    const l2Refs = img.refcounts.get(l2 / cs);
    let changed = false;
    for (let j = 0; j < L.l2Entries; j++) {
      const hi = v.getUint32(j * 8);
      const lo = v.getUint32(j * 8 + 4);
      if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0 || (lo & QCOW_OFLAG_ZERO) === 0) continue;
      let host = entryOffset(hi, lo);
      if (host === 0) {
        if (!backed) {
          v.setUint32(j * 8, 0);
          v.setUint32(j * 8 + 4, 0);
          changed = true;
          continue;
        }
        host = img.refcounts.allocClusters(1);
        // A shared L2 table gives the new cluster one reference per referrer.
        if (l2Refs > 1) img.refcounts.update(host, cs, l2Refs - 1);
      }
      // As qcow2_expand_zero_clusters: write zeroes through the file, which may
      // allocate them as zeroed extents rather than data.
      await img.data.node.writeZeroes(host, cs);
      const copied = img.refcounts.get(host / cs) === 1 ? QCOW_OFLAG_COPIED_HI : 0;
      v.setUint32(j * 8, (offsetHi(host) | copied) >>> 0);
      v.setUint32(j * 8 + 4, offsetLo(host));
      changed = true;
    }
    if (changed) {
      img.refcounts.flush();
      img.data.syncSync();
      img.file.writeSync(l2, table);
    }
  }
  img.refcounts.flush();
  img.file.syncSync();
}

/**
 * Changes the refcount width as QEMU's `qcow2_change_refcount_order`: walks the
 * refcounts in new-block-sized ranges, allocating (through the current structures)
 * a block for every range with a cluster in use and then a table for them, and walks
 * again until a walk allocates nothing; then fills and writes the new blocks and the
 * table, points the header at them and frees the old blocks and table.
 */
export function changeRefcountOrder(img: Qcow2Image, order: number): Qcow2Image {
  settle(img);
  const h = img.header;
  const L = img.layout;
  const cs = L.clusterSize;
  const rc = img.refcounts;
  const perBlock = (cs * 8) / 2 ** order;
  const max = maxRefcount(order);
  for (let c = 0; c < Math.ceil(img.file.size() / cs); c++) {
    const r = rc.get(c);
    if (r > max) {
      throw new NotSupportedError(
        `Cannot decrease refcount entry width to ${2 ** order} bits: Cluster at offset 0x${
          (c * cs).toString(16)
        } has a refcount of ${r}`,
      );
    }
  }
  // The walk reads the live refcounts, so what it allocates counts in later ranges.
  const used = (range: number): boolean => {
    for (let c = range * perBlock; c < (range + 1) * perBlock; c++) if (rc.get(c) > 0) return true;
    return false;
  };
  const table: number[] = [];
  let tableOffset = 0;
  let tableClusters = 0;
  for (;;) {
    let allocated = false;
    for (const range of usedRanges(rc, L.refcountBlockEntries, perBlock)) {
      if (!used(range)) continue;
      if (range >= table.length) {
        const size = Math.ceil((range + 1) / (cs / 8)) * (cs / 8);
        if (size > QCOW_MAX_REFTABLE_SIZE / 8) {
          throw new NotSupportedError(
            "This operation would make the refcount table grow beyond the maximum size supported by QEMU, aborting",
          );
        }
        while (table.length < size) table.push(0);
      }
      if (table[range] === 0) {
        table[range] = rc.allocClusters(1);
        allocated = true;
      }
    }
    if (!allocated) break;
    if (tableOffset !== 0) rc.free(tableOffset, tableClusters * cs);
    tableClusters = (table.length * 8) / cs;
    tableOffset = rc.allocClusters(tableClusters);
  }
  // Fill and write the new blocks from the final refcounts, then the table.
  const tableBuf = new Uint8Array(tableClusters * cs);
  const tv = new DataView(tableBuf.buffer);
  table.forEach((at, range) => {
    if (at === 0) return;
    const block = new Uint8Array(cs);
    const bv = new DataView(block.buffer);
    for (let i = 0; i < perBlock; i++) {
      const r = rc.get(range * perBlock + i);
      if (r > 0) writeRefcount(bv, i, order, r);
    }
    img.file.writeSync(at, block);
    tv.setUint32(range * 8, offsetHi(at));
    tv.setUint32(range * 8 + 4, offsetLo(at));
  });
  img.file.writeSync(tableOffset, tableBuf);
  rc.flush();
  // The old structures as they are now: the walk may have added blocks (or moved the table).
  const old = rc.location;
  const oldTable = rc.table.slice();
  img.file.syncSync();
  h.refcountOrder = order;
  h.refcountTableOffset = tableOffset;
  h.refcountTableClusters = tableClusters;
  writeHeader(img);

  const layout = new Layout(h.clusterBits, order, L.extendedL2);
  const refcounts = new Refcounts(layout, img.file, {
    cacheEntries: rc.cache.capacity,
    location: { offset: tableOffset, clusters: tableClusters },
    onTableMoved: (loc) => writeReftableLocation(img, loc.offset, loc.clusters),
  });
  refcounts.onFreed = (offset) => {
    // A freed cluster may have held a cached table: never write it back there.
    for (let s = 0; s < cs; s += img.map.cache.entryBytes) img.map.cache.discard(offset + s);
    refcounts.cache.discard(offset);
  };
  // The old blocks, then the old table, are freed through the new structures.
  for (const block of oldTable) if (block !== 0) refcounts.free(block, cs);
  refcounts.free(old.offset, old.clusters * cs);
  refcounts.flush();
  img.file.syncSync();
  return { ...img, layout, refcounts };
}

/**
 * The new-block ranges (of `perBlock` clusters) that hold a cluster counted by an
 * existing refcount block, in order: the others are all zero and the walk skips
 * them. Read afresh on every call, so blocks allocated meanwhile are seen.
 */
function* usedRanges(rc: Refcounts, oldPerBlock: number, perBlock: number): Generator<number> {
  let last = -1;
  for (let t = 0; t < rc.table.length; t++) {
    if (rc.table[t] === 0) continue;
    const first = Math.floor((t * oldPerBlock) / perBlock);
    const end = Math.floor(((t + 1) * oldPerBlock - 1) / perBlock);
    for (let r = Math.max(first, last + 1); r <= end; r++) {
      last = r;
      yield r;
    }
  }
}
