// qcow2 internal snapshots: create, revert to and delete, with the refcount and COPIED bookkeeping

import type { SnapshotCreateOptions, SnapshotInfo } from "../../../core/block/driver.ts";
import { ImageFormatError, NotSupportedError, VmkitError } from "../../../core/errors.ts";
import {
  encodeU64,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_SNAPSHOTS,
  QCOW_MAX_SNAPSHOTS_SIZE,
} from "./header.ts";
import { markClean, markDirty, type Qcow2Image, writeSize } from "./image.ts";
import { entryOffset, QCOW_OFLAG_COMPRESSED_HI, QCOW_OFLAG_COPIED_HI } from "./layout.ts";
import { maxRefcount } from "./refcount.ts";
import {
  normalizeExtra,
  serializeSnapshots,
  type SnapshotEntry,
  snapshotInfos,
  tableBytes,
  validateTable,
} from "./snapshot.ts";

/** A snapshot name or id that names no snapshot of the image. */
export class SnapshotNotFoundError extends VmkitError {
  constructor(message: string) {
    super(message, { exitCode: 1 });
    this.name = "SnapshotNotFoundError";
  }
}

/** QEMU keeps snapshot names in a 256-byte buffer (255 bytes and a NUL). */
const SNAPSHOT_NAME_MAX_BYTES = 255;

/** An L1 table to walk: the active one (through the map) or a snapshot's copy in memory. */
interface L1Access {
  readonly size: number;
  get(i: number): [number, number];
  set(i: number, hi: number, lo: number): void;
}

function activeL1(img: Qcow2Image): L1Access {
  return {
    size: img.map.l1Size,
    get: (i) => img.map.l1Raw(i),
    set: (i, hi, lo) => img.map.setL1(i, hi, lo),
  };
}

function tableL1(table: Uint8Array): L1Access {
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  return {
    size: table.length / 8,
    get: (i) => [v.getUint32(i * 8), v.getUint32(i * 8 + 4)],
    set: (i, hi, lo) => {
      v.setUint32(i * 8, hi);
      v.setUint32(i * 8 + 4, lo);
    },
  };
}

function withCopied(hi: number, refcount: number): number {
  return (refcount === 1 ? hi | QCOW_OFLAG_COPIED_HI : hi & ~QCOW_OFLAG_COPIED_HI) >>> 0;
}

/**
 * Adds `addend` (-1, 0 or +1) to the refcount of every cluster an L1 table reaches
 * (its L2 tables and their data clusters), then sets QCOW_OFLAG_COPIED on each L1
 * and L2 entry exactly where the refcount is one, as QEMU's
 * `qcow2_update_snapshot_refcount`. Addend 0 only repairs the flags.
 */
function updateSnapshotRefcount(img: Qcow2Image, l1: L1Access, addend: number): void {
  const L = img.layout;
  const cs = L.clusterSize;
  const cache = img.map.cache;
  const slice = img.map.sliceBytes;
  const perSlice = slice / L.l2EntryBytes;
  for (let i = 0; i < l1.size; i++) {
    const [l1Hi, l1Lo] = l1.get(i);
    const l2 = entryOffset(l1Hi, l1Lo);
    if (l2 === 0) continue;
    for (let s = 0; s < cs; s += slice) {
      const e = cache.get(l2 + s);
      const v = e.view;
      let dirty = false;
      for (let j = 0; j < perSlice; j++) {
        const at = j * L.l2EntryBytes;
        const hi = v.getUint32(at);
        const lo = v.getUint32(at + 4);
        if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) {
          // Compressed clusters are never written in place: no COPIED flag.
          if (addend !== 0) {
            img.refcounts.update(L.compressedOffset(hi, lo), L.compressedBytes(hi, lo), addend);
          }
          continue;
        }
        const host = entryOffset(hi, lo);
        let refcount = 0;
        if (host !== 0) {
          if (addend !== 0) img.refcounts.update(host, cs, addend);
          refcount = img.refcounts.get(host / cs);
        }
        const fixed = withCopied(hi, refcount);
        if (fixed !== hi) {
          v.setUint32(at, fixed);
          dirty = true;
        }
      }
      if (dirty) cache.markDirty(e);
    }
    // The table's own count last: dropping it to zero drops it from the cache.
    if (addend !== 0) img.refcounts.update(l2, cs, addend);
    const fixed = withCopied(l1Hi, img.refcounts.get(l2 / cs));
    if (fixed !== l1Hi) l1.set(i, fixed, l1Lo);
  }
}

/**
 * Refuses, before anything changes, an increment that would overflow a refcount
 * (with narrow refcount_bits); QEMU fails half-way with EINVAL and leaks clusters.
 */
function checkIncrement(img: Qcow2Image, l1: L1Access): void {
  const L = img.layout;
  const cs = L.clusterSize;
  const max = maxRefcount(L.refcountOrder);
  const extra = new Map<number, number>();
  const bump = (offset: number, bytes: number) => {
    for (let c = Math.floor(offset / cs); c <= Math.floor((offset + bytes - 1) / cs); c++) {
      const n = (extra.get(c) ?? 0) + 1;
      extra.set(c, n);
      if (img.refcounts.get(c) + n > max) {
        throw new ImageFormatError("-22 (Invalid argument)");
      }
    }
  };
  const slice = img.map.sliceBytes;
  for (let i = 0; i < l1.size; i++) {
    const l2 = entryOffset(...l1.get(i));
    if (l2 === 0) continue;
    bump(l2, cs);
    for (let s = 0; s < cs; s += slice) {
      const v = img.map.cache.get(l2 + s).view;
      for (let at = 0; at < slice; at += L.l2EntryBytes) {
        const hi = v.getUint32(at);
        const lo = v.getUint32(at + 4);
        if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) {
          bump(L.compressedOffset(hi, lo), L.compressedBytes(hi, lo));
        } else if (entryOffset(hi, lo) !== 0) bump(entryOffset(hi, lo), cs);
      }
    }
  }
}

/** Writes every dirty table and makes it durable (before a pointer to new metadata is written). */
function flushAll(img: Qcow2Image): void {
  img.refcounts.flush();
  img.map.cache.flush();
  img.refcounts.flush();
  img.file.syncSync();
}

/**
 * Writes the refcount blocks a pass lowered before the L1 entries the next pass
 * rewrites in place: a COPIED flag must never reach the disk ahead of the refcount
 * of one that makes it true.
 */
function flushRefcounts(img: Qcow2Image): void {
  img.refcounts.flush();
  img.file.syncSync();
}

/**
 * The order of the next refcount pass, as QEMU's cache dependencies give it. Raising
 * refcounts clears COPIED flags, so the tables go first; lowering them sets COPIED
 * flags, so the refcount blocks go first. Either way a crash in between leaves a
 * flag missing (one needless copy-on-write), never a COPIED flag on a shared cluster.
 */
function orderFor(img: Qcow2Image, addend: number): void {
  if (addend > 0) img.refcounts.cache.setDependency(img.map.cache);
  else img.map.cache.setDependency(img.refcounts.cache);
}

/**
 * Sets the dirty bit (v3 images) before a refcount pass. Refcounts and COPIED flags
 * live in different clusters, so no write order keeps both exact at every moment; a
 * crash inside the pass leaves the bit set, and the next read-write open (QEMU's or
 * ours) rebuilds what the pass left half done. v2 images have no such bit.
 */
function beginRefcountPass(img: Qcow2Image): void {
  if (img.header.version >= 3) markDirty(img);
}

/** Clears the dirty bit once the pass is on disk (a lazy-refcount image keeps it until close). */
function endRefcountPass(img: Qcow2Image): void {
  if (img.header.version >= 3 && !img.lazy) markClean(img);
}

/** An L1 table copy with every COPIED flag cleared (a snapshot's tables are shared). */
function withoutCopied(table: Uint8Array): Uint8Array {
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  for (let at = 0; at < table.length; at += 8) {
    v.setUint32(at, (v.getUint32(at) & ~QCOW_OFLAG_COPIED_HI) >>> 0);
  }
  return table;
}

/**
 * Writes `entries` as the new snapshot table in freshly allocated clusters, points
 * the header at it, then frees the old table (QEMU's `qcow2_write_snapshots`).
 */
function writeSnapshotTable(img: Qcow2Image, entries: SnapshotEntry[]): void {
  const cs = img.layout.clusterSize;
  const oldOffset = img.header.snapshotsOffset;
  const oldBytes = tableBytes(img.snapshots);
  for (const s of entries) normalizeExtra(s, img.header.size);
  const table = serializeSnapshots(entries);
  if (table.length > QCOW_MAX_SNAPSHOTS_SIZE) {
    throw new ImageFormatError("Snapshot table too large");
  }
  let offset = 0;
  if (entries.length > 0) {
    offset = img.refcounts.allocClusters(Math.ceil(table.length / cs));
    img.file.writeSync(offset, table);
  }
  flushAll(img);
  const b = new Uint8Array(12);
  new DataView(b.buffer).setUint32(0, entries.length);
  b.set(encodeU64(offset), 4);
  img.file.writeSync(60, b);
  img.file.syncSync();
  img.header.nbSnapshots = entries.length;
  img.header.snapshotsOffset = offset;
  img.snapshots = entries;
  if (oldOffset !== 0 && oldBytes > 0) img.refcounts.free(oldOffset, oldBytes);
  flushAll(img);
}

/** Finds a snapshot by id first, then by name (QEMU's `find_snapshot_by_id_or_name`). */
export function findSnapshot(img: Qcow2Image, idOrName: string): SnapshotEntry | undefined {
  return img.snapshots.find((s) => s.id === idOrName) ??
    img.snapshots.find((s) => s.name === idOrName);
}

function refuseDataFile(img: Qcow2Image): void {
  if (img.hasDataFile) {
    throw new NotSupportedError("Internal snapshots are not supported with an external data file");
  }
}

function readSnapshotL1(img: Qcow2Image, sn: SnapshotEntry): Uint8Array {
  const table = new Uint8Array(sn.l1Size * 8);
  if (table.length > 0) img.file.readSync(sn.l1TableOffset, table);
  return table;
}

/**
 * Reads the image through snapshot `id` and/or `name` from now on, without writing
 * anything (QEMU's `qcow2_snapshot_load_tmp`, behind `convert -l` and `measure -l`).
 * With both given, one snapshot must match both. Returns false when none matches.
 */
export function loadSnapshotTmp(
  img: Qcow2Image,
  id: string | undefined,
  name: string | undefined,
): boolean {
  const sn = img.snapshots.find((s) =>
    (id === undefined || s.id === id) && (name === undefined || s.name === name)
  );
  if (!sn) return false;
  validateTable(
    sn.l1TableOffset,
    sn.l1Size,
    8,
    QCOW_MAX_L1_SIZE,
    img.layout.clusterSize,
    "Snapshot L1 table",
  );
  img.map.useL1InMemory(readSnapshotL1(img, sn), sn.l1TableOffset);
  return true;
}

/** Creates an internal snapshot of the current disk state (QEMU's `qcow2_snapshot_create`). */
export function createSnapshot(
  img: Qcow2Image,
  name: string,
  options: SnapshotCreateOptions = {},
): SnapshotInfo {
  refuseDataFile(img);
  if (img.snapshots.length >= QCOW_MAX_SNAPSHOTS) {
    throw new ImageFormatError("Too many snapshots");
  }
  const bytes = new TextEncoder().encode(name);
  if (bytes.length > SNAPSHOT_NAME_MAX_BYTES) {
    name = new TextDecoder().decode(bytes.subarray(0, SNAPSHOT_NAME_MAX_BYTES));
  }
  // The id is one more than the largest numeric id (QEMU's find_new_snapshot_id).
  let maxId = 0;
  for (const s of img.snapshots) maxId = Math.max(maxId, Number.parseInt(s.id, 10) || 0);
  const id = options.id ?? String(maxId + 1);
  if (img.snapshots.some((s) => s.id === id)) {
    throw new ImageFormatError(`Snapshot with id '${id}' already exists`);
  }
  const now = Date.now();
  const cs = img.layout.clusterSize;
  flushAll(img);
  checkIncrement(img, activeL1(img));
  // As qcow2_snapshot_create: copy the active L1 table as it is (COPIED flags and all)
  // to new clusters, then count the active tables once more (clearing their COPIED
  // flags). A crash before the snapshot table names the copy only leaks clusters.
  const l1 = img.map.copyL1();
  let l1Offset = 0;
  if (l1.length > 0) {
    l1Offset = img.refcounts.allocClusters(Math.ceil(l1.length / cs));
    img.file.writeSync(l1Offset, l1);
  }
  flushAll(img);
  beginRefcountPass(img);
  orderFor(img, 1);
  updateSnapshotRefcount(img, activeL1(img), 1);
  flushAll(img);
  const vmStateSize = options.vmStateSize ?? 0;
  // qemu-img records an icount of 0, not QEMU's "none" (-1).
  const extra = new Uint8Array(24);
  extra.set(encodeU64(vmStateSize), 0);
  extra.set(encodeU64(img.header.size), 8);
  // -1 is QEMU's "none" (savevm without record/replay): all ones on disk.
  const noIcount = options.icount === -1;
  extra.set(noIcount ? new Uint8Array(8).fill(0xff) : encodeU64(options.icount ?? 0), 16);
  const entry: SnapshotEntry = {
    l1TableOffset: l1Offset,
    l1Size: l1.length / 8,
    id,
    name,
    dateSec: options.dateSec ?? Math.floor(now / 1000),
    dateNsec: options.dateNsec ?? (now % 1000) * 1e6,
    vmClockNs: options.vmClockNs ?? 0,
    vmStateSize,
    diskSize: img.header.size,
    icount: noIcount ? 0xffffffffffffffff : options.icount ?? 0,
    extra,
  };
  writeSnapshotTable(img, [...img.snapshots, entry]);
  endRefcountPass(img);
  return snapshotInfos([entry])[0];
}

/** Reverts the active disk to a snapshot (QEMU's `qcow2_snapshot_goto`). */
export function applySnapshot(img: Qcow2Image, idOrName: string): void {
  const sn = findSnapshot(img, idOrName);
  if (sn === undefined) {
    throw new SnapshotNotFoundError("Failed to load snapshot: No such file or directory");
  }
  refuseDataFile(img);
  flushAll(img);
  const stored = readSnapshotL1(img, sn);
  const snL1 = withoutCopied(stored.slice());
  checkIncrement(img, tableL1(snL1));
  if (sn.l1Size > img.map.l1Size) img.map.growL1(sn.l1Size, img.refcounts, true);
  // QEMU's qcow2_snapshot_goto order: count the snapshot's clusters once more, point
  // the active L1 at its tables (synced), and only then drop the old tables' counts.
  // A crash at any point leaves refcounts too high (leaks), never too low.
  beginRefcountPass(img);
  orderFor(img, 1);
  updateSnapshotRefcount(img, tableL1(snL1), 1);
  // qcow2_update_snapshot_refcount writes the snapshot's own table back when the
  // COPIED flags it recomputed differ from what is stored.
  if (snL1.some((b, i) => b !== stored[i])) img.file.writeSync(sn.l1TableOffset, snL1);
  flushAll(img);
  const oldL1 = img.map.copyL1();
  img.map.replaceL1(snL1);
  orderFor(img, -1);
  updateSnapshotRefcount(img, tableL1(oldL1), -1);
  flushRefcounts(img);
  updateSnapshotRefcount(img, activeL1(img), 0);
  flushAll(img);
  if (sn.diskSize !== undefined && sn.diskSize !== img.header.size) writeSize(img, sn.diskSize);
  endRefcountPass(img);
  img.decompressed = null;
}

/** Deletes a snapshot and frees what only it used (QEMU's `qcow2_snapshot_delete`). */
export function deleteSnapshot(img: Qcow2Image, idOrName: string): void {
  const sn = findSnapshot(img, idOrName);
  if (sn === undefined) throw new SnapshotNotFoundError("Can't find the snapshot");
  flushAll(img);
  // The table stops naming the snapshot first: a crash then only leaks clusters.
  writeSnapshotTable(img, img.snapshots.filter((s) => s !== sn));
  beginRefcountPass(img);
  orderFor(img, -1);
  updateSnapshotRefcount(img, tableL1(readSnapshotL1(img, sn)), -1);
  if (sn.l1Size > 0) img.refcounts.free(sn.l1TableOffset, sn.l1Size * 8);
  flushRefcounts(img);
  updateSnapshotRefcount(img, activeL1(img), 0);
  flushAll(img);
  endRefcountPass(img);
}
