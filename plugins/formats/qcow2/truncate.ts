// qcow2 resize: grow (with preallocation) and shrink of the virtual disk

import type { Preallocation, TruncateOptions } from "../../../core/block/driver.ts";
import { IoError, NotSupportedError } from "../../../core/errors.ts";
import { type Qcow2Image, writeSize } from "./image.ts";
import { deallocateGuest, readGuest, releaseOld } from "./io.ts";
import { entryOffset, offsetHi, offsetLo, QCOW_OFLAG_COPIED_HI } from "./layout.ts";

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
    // qcow2_shrink_reftable drops the refcount blocks left counting nothing and
    // rewrites the whole table, every cluster of it; the dropped blocks are discarded.
    const dropped = img.refcounts.shrinkTable();
    img.refcounts.flush();
    for (const block of dropped) await img.file.node.discard(block, L.clusterSize);
    writeSize(img, sizeBytes);
    await trimFile(img);
    return;
  }
  img.map.growL1(L.l1EntriesFor(sizeBytes), img.refcounts, true);
  writeSize(img, sizeBytes);
  if (sizeBytes > old) {
    if ((prealloc === "falloc" || prealloc === "full") && !img.hasDataFile) {
      await preallocateData(img, old, sizeBytes, prealloc);
    } else if (prealloc !== "off") {
      await preallocate(img, old, sizeBytes, prealloc);
    }
  }
}

/**
 * `falloc` and `full` growth as QEMU's `qcow2_co_truncate`: refcount structures for
 * the new data (and its L2 tables) go after the last cluster in use, the data
 * clusters in one run after them, the file grows over that run with the mode's
 * preallocation, and only then are L2 tables allocated and linked.
 */
async function preallocateData(
  img: Qcow2Image,
  old: number,
  end: number,
  mode: "falloc" | "full",
): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  const last = img.refcounts.lastUsedCluster(img.file.size());
  const fileEnd = last >= 0 ? (last + 1) * cs : Math.ceil(img.file.size() / cs) * cs;
  let clusters = Math.ceil(end / cs) - Math.floor(old / cs);
  const tables = Math.ceil(clusters / L.l2Entries) + 1;
  const start = img.refcounts.refcountArea(fileEnd, clusters + tables, false, 0, 0);
  if (img.refcounts.allocClustersAt(start, clusters) !== clusters) {
    throw new IoError("Failed to allocate data clusters");
  }
  img.refcounts.flush();
  await img.file.node.truncate(start + clusters * cs, { preallocation: mode });
  // The cluster holding the old end moves too: its data is copied on write into the
  // first new cluster and the old one is freed, as qcow2_alloc_cluster_link_l2 does.
  let c = Math.floor(old / cs);
  const head = old - c * cs;
  let moved: { hi: number; lo: number; data: Uint8Array } | null = null;
  if (head > 0) {
    const data = new Uint8Array(head);
    await readGuest(img, c * cs, data);
    const m = img.map.slice(c);
    const at = m === null ? 0 : m.index * L.l2EntryBytes;
    const [hi, lo] = m === null
      ? [0, 0]
      : [m.entry.view.getUint32(at), m.entry.view.getUint32(at + 4)];
    moved = { hi, lo, data };
  }
  if (moved !== null) img.file.writeSync(start, moved.data);
  let host = start;
  while (clusters > 0) {
    const s = img.map.sliceForWrite(c, img.refcounts, img.lazy);
    const n = Math.min(clusters, img.map.sliceEntries - s.index);
    img.map.cache.setDependency(img.refcounts.cache);
    const v = s.entry.view;
    for (let i = 0; i < n; i++) {
      // Extended L2 bitmaps stay as they are: the space is preallocated, not written.
      const at = (s.index + i) * L.l2EntryBytes;
      v.setUint32(at, (offsetHi(host + i * cs) | QCOW_OFLAG_COPIED_HI) >>> 0);
      v.setUint32(at + 4, offsetLo(host + i * cs));
    }
    img.map.cache.markDirty(s.entry);
    c += n;
    host += n * cs;
    clusters -= n;
  }
  if (moved !== null) releaseOld(img, moved.hi, moved.lo);
  img.map.cache.flush();
  img.refcounts.flush();
}

// Truncates the file after the last cluster still in use, as QEMU does on shrink: only
// when that makes it shorter. A file ending inside that cluster (compressed data, or the
// bitmap directory qemu-img wrote at its last close) stays as it is.
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
  let lastNew = false;
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
      lastNew = k === lastCluster - 1;
      v.setUint32(at, (offsetHi(target) | QCOW_OFLAG_COPIED_HI) >>> 0);
      v.setUint32(at + 4, offsetLo(target));
      // Extended L2 bitmaps stay as they are (QEMU links preallocated clusters so).
      img.map.cache.markDirty(s.entry);
      if (!img.hasDataFile) host += cs;
    }
    c = tableEnd;
  }
  img.map.cache.flush();
  img.refcounts.flush();
  // As preallocate_co: the file reaches the host byte of the request's last guest
  // byte; when that cluster is new, the copy-on-write of the rest of its last
  // subcluster (cluster without extended L2) writes zeroes up to that boundary first.
  const lastGuest = Math.ceil(end / cs) - 1;
  const m = lastGuest >= Math.floor(start / cs) ? img.map.slice(lastGuest) : null;
  if (m !== null) {
    const at = m.index * L.l2EntryBytes;
    const hostEnd = entryOffset(m.entry.view.getUint32(at), m.entry.view.getUint32(at + 4));
    const unit = lastNew ? (L.extendedL2 ? L.subclusterSize : cs) : 1;
    const used = Math.ceil((end - lastGuest * cs) / unit) * unit;
    if (hostEnd !== 0 || img.hasDataFile) lastHostEnd = hostEnd + used;
  }
  const data = img.data.node;
  const fileEnd = data.size();
  if (lastHostEnd > fileEnd) {
    await data.truncate(lastHostEnd, { preallocation: mode === "metadata" ? "off" : mode });
  }
}
