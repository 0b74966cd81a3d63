// qcow2 resize: grow (with preallocation) and shrink of the virtual disk

import type { Preallocation, TruncateOptions } from "../../../core/block/driver.ts";
import { IoError, NotSupportedError } from "../../../core/errors.ts";
import { type Qcow2Image, writeSize } from "./image.ts";
import { deallocateGuest } from "./io.ts";
import { offsetHi, offsetLo, QCOW_OFLAG_COPIED_HI } from "./layout.ts";

/** Changes the virtual size as QEMU's `qcow2_co_truncate`. */
export async function truncateImage(
  img: Qcow2Image,
  sizeBytes: number,
  options: TruncateOptions,
): Promise<void> {
  const old = img.header.size;
  const prealloc = options.preallocation ?? "off";
  if (sizeBytes % 512 !== 0) throw new IoError("The new size must be a multiple of 512");
  if (img.snapshots.length > 0 && img.header.version < 3) {
    throw new NotSupportedError("Can't resize a v2 image which has snapshots");
  }
  const L = img.layout;
  if (sizeBytes < old) {
    if (options.shrink === false) {
      throw new NotSupportedError("Use the --shrink option to perform a shrink operation");
    }
    if (prealloc !== "off") {
      throw new NotSupportedError("Preallocation can't be used for shrinking an image");
    }
    if (img.snapshots.length > 0) {
      throw new NotSupportedError("Can't shrink an image with internal snapshots");
    }
    const cutFrom = Math.ceil(sizeBytes / L.clusterSize) * L.clusterSize;
    if (cutFrom < old) await deallocateGuest(img, cutFrom, old);
    // L2 tables past the new end are no longer needed.
    const keep = L.l1EntriesFor(sizeBytes);
    for (let i = keep; i < img.map.l1Size; i++) {
      const l2 = img.map.l2Offset(i);
      if (l2 === 0) continue;
      img.map.setL1(i, 0, 0);
      img.refcounts.free(l2, L.clusterSize);
    }
    img.map.cache.flush();
    img.refcounts.flush();
    // qcow2_shrink_reftable rewrites the whole table, every cluster of it.
    img.refcounts.rewriteTable();
    writeSize(img, sizeBytes);
    await trimFile(img);
    return;
  }
  img.map.growL1(L.l1EntriesFor(sizeBytes), img.refcounts, true);
  writeSize(img, sizeBytes);
  if (prealloc !== "off" && sizeBytes > old) await preallocate(img, old, sizeBytes, prealloc);
}

// Truncates the file after the last cluster still in use (QEMU does the same on shrink).
async function trimFile(img: Qcow2Image): Promise<void> {
  if (img.hasDataFile) return;
  const cs = img.layout.clusterSize;
  let last = Math.ceil(img.file.size() / cs) - 1;
  while (last > 0 && img.refcounts.get(last) === 0) last--;
  const end = (last + 1) * cs;
  if (end < img.file.size()) await img.file.node.truncate(end);
}

/**
 * Allocates host clusters for every unallocated guest cluster in `[start, end)`
 * (L2 tables first, then data clusters contiguously per table), as
 * `preallocation=metadata`; `falloc` and `full` also allocate the file space.
 */
export async function preallocate(
  img: Qcow2Image,
  start: number,
  end: number,
  mode: Preallocation,
): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  let lastHostEnd = 0;
  let c = Math.floor(start / cs);
  const lastCluster = Math.ceil(end / cs);
  while (c < lastCluster) {
    const tableEnd = Math.min(lastCluster, (Math.floor(c / L.l2Entries) + 1) * L.l2Entries);
    const s0 = img.map.sliceForWrite(c, img.refcounts, img.lazy);
    void s0;
    let need = 0;
    for (let k = c; k < tableEnd; k++) {
      const s = img.map.slice(k)!;
      const at = s.index * L.l2EntryBytes;
      if (s.entry.view.getUint32(at) === 0 && (s.entry.view.getUint32(at + 4) & ~1) === 0) need++;
    }
    let host = need > 0 && !img.hasDataFile ? img.refcounts.allocClusters(need) : 0;
    // Before any entry changes: settling the order may write the slices out.
    img.map.cache.setDependency(img.refcounts.cache);
    for (let k = c; k < tableEnd; k++) {
      const s = img.map.slice(k)!;
      const v = s.entry.view;
      const at = s.index * L.l2EntryBytes;
      if (v.getUint32(at) !== 0 || (v.getUint32(at + 4) & ~1) !== 0) continue;
      const target = img.hasDataFile ? k * cs : host;
      v.setUint32(at, (offsetHi(target) | QCOW_OFLAG_COPIED_HI) >>> 0);
      v.setUint32(at + 4, offsetLo(target));
      if (L.extendedL2) {
        v.setUint32(at + 8, 0);
        v.setUint32(at + 12, 0xffffffff);
      }
      img.map.cache.markDirty(s.entry);
      if (!img.hasDataFile) host += cs;
      lastHostEnd = Math.max(lastHostEnd, target + cs);
    }
    c = tableEnd;
  }
  img.map.cache.flush();
  img.refcounts.flush();
  const data = img.data.node;
  const fileEnd = data.size();
  if (lastHostEnd > fileEnd) {
    await data.truncate(lastHostEnd, { preallocation: mode === "metadata" ? "off" : mode });
  }
}
