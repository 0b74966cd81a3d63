// qcow2 consistency check: recount every reference, compare with the refcounts, repair leaks or rebuild

import type { CheckResult, RepairMode } from "../../../core/block/driver.ts";
import { QCOW2_INCOMPAT_CORRUPT, QCOW_MAX_L1_SIZE } from "./header.ts";
import { markClean, type Qcow2Image, writeHeader, writeReftableLocation } from "./image.ts";
import {
  entryOffset,
  hex64,
  L1E_RESERVED_HI,
  L1E_RESERVED_LO,
  L2E_STD_RESERVED_HI,
  L2E_STD_RESERVED_LO,
  offsetHi,
  offsetLo,
  QCOW_OFLAG_COMPRESSED_HI,
  QCOW_OFLAG_COPIED_HI,
  QCOW_OFLAG_ZERO,
  REFT_RESERVED_MASK,
} from "./layout.ts";
import { maxRefcount, writeRefcount } from "./refcount.ts";
import { QCOW2_SNAPSHOT_HEADER_BYTES } from "./snapshot.ts";
import { countBitmapReferences } from "./bitmaps_store.ts";

/** Reference counts computed from the metadata, one per host cluster (grows as needed). */
class RefTally {
  counts: Float64Array;
  constructor(clusters: number) {
    this.counts = new Float64Array(Math.max(clusters, 1));
  }
  get length(): number {
    return this.counts.length;
  }
  get(i: number): number {
    return i < this.counts.length ? this.counts[i] : 0;
  }
  add(i: number): void {
    if (i >= this.counts.length) {
      const grown = new Float64Array(Math.max(i + 1, this.counts.length * 2));
      grown.set(this.counts);
      this.counts = grown;
    }
    this.counts[i]++;
  }
}

interface CheckState {
  img: Qcow2Image;
  res: CheckResult;
  tally: RefTally;
  fileBytes: number;
  repair: RepairMode;
  rebuild: boolean;
  /** Cluster indexes whose refcount a repair set to zero: discarded on the host at the end. */
  freed: number[];
}

/** Counts a reference to every cluster overlapping `[offset, offset + bytes)`. */
function inc(st: CheckState, offset: number, bytes: number): void {
  if (bytes <= 0) return;
  const cs = st.img.layout.clusterSize;
  if (offset + bytes - st.fileBytes >= cs) {
    st.res.messages.push(
      `ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${
        offset.toString(16)
      } size 0x${bytes.toString(16)}`,
    );
    st.res.corruptions++;
    return;
  }
  const max = maxRefcount(st.img.layout.refcountOrder);
  for (let c = Math.floor(offset / cs); c <= Math.floor((offset + bytes - 1) / cs); c++) {
    if (st.tally.get(c) >= max) {
      st.res.messages.push(`ERROR: overflow cluster offset=0x${(c * cs).toString(16)}`);
      st.res.checkErrors++;
      continue;
    }
    st.tally.add(c);
  }
}

function readTable(img: Qcow2Image, offset: number, bytes: number): DataView {
  const buf = new Uint8Array(bytes);
  img.file.readSync(offset, buf);
  return new DataView(buf.buffer);
}

function checkL2(st: CheckState, l2Offset: number, active: boolean): void {
  const { img, res } = st;
  const L = img.layout;
  const cs = L.clusterSize;
  const v = readTable(img, l2Offset - (l2Offset % cs), cs);
  let nextContiguous = 0;
  for (let i = 0; i < L.l2Entries; i++) {
    const at = i * L.l2EntryBytes;
    let hi = v.getUint32(at);
    const lo = v.getUint32(at + 4);
    const bitmapHi = L.extendedL2 ? v.getUint32(at + 8) : 0;
    const bitmapLo = L.extendedL2 ? v.getUint32(at + 12) : 0;
    const compressed = (hi & QCOW_OFLAG_COMPRESSED_HI) !== 0;
    if (!compressed && ((hi & L2E_STD_RESERVED_HI) !== 0 || (lo & L2E_STD_RESERVED_LO) !== 0)) {
      res.messages.push(`ERROR found l2 entry with reserved bits set: ${hex64(hi, lo)}`);
      res.corruptions++;
    }
    if (compressed) {
      const coffset = L.compressedOffset(hi, lo);
      if ((hi & QCOW_OFLAG_COPIED_HI) !== 0) {
        res.messages.push(
          `ERROR: coffset=0x${
            coffset.toString(16)
          }: copied flag must never be set for compressed clusters`,
        );
        hi &= ~QCOW_OFLAG_COPIED_HI;
        res.corruptions++;
      }
      if (img.hasDataFile) {
        res.messages.push(`ERROR compressed cluster ${i} with data file, entry=0x${hex64(hi, lo)}`);
        res.corruptions++;
        continue;
      }
      if (bitmapHi !== 0 || bitmapLo !== 0) {
        res.messages.push(
          `ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${
            hex64(hi, lo)
          }`,
        );
        res.corruptions++;
        continue;
      }
      inc(st, coffset - (coffset % 512), L.compressedBytes(hi, lo) + (coffset % 512));
      if (active) {
        res.allocatedClusters!++;
        res.compressedClusters!++;
        // Compressed clusters are fragmented by nature (sector-granular, shared sectors).
        res.fragmentedClusters!++;
      }
      continue;
    }
    const offset = entryOffset(hi, lo);
    const hasHost = offset !== 0 || (img.hasDataFile && (hi & QCOW_OFLAG_COPIED_HI) !== 0);
    if (!hasHost) {
      if (L.extendedL2 && bitmapLo !== 0) {
        res.corruptions++;
        res.messages.push("ERROR: Unallocated cluster has non-zero subcluster allocation map");
      }
      continue;
    }
    if (L.extendedL2 && (bitmapHi & bitmapLo) !== 0) {
      res.corruptions++;
      res.messages.push(
        `ERROR offset=${
          offset.toString(16)
        }: Allocated cluster has corrupted subcluster allocation bitmap`,
      );
    }
    if (offset % cs !== 0) {
      res.corruptions++;
      const containsData = L.extendedL2 ? bitmapLo !== 0 : (lo & QCOW_OFLAG_ZERO) === 0;
      res.messages.push(
        containsData
          ? `ERROR offset=${
            offset.toString(16)
          }: Data cluster is not properly aligned; L2 entry corrupted.`
          : `ERROR offset=${
            offset.toString(16)
          }: Preallocated cluster is not properly aligned; L2 entry corrupted.`,
      );
    }
    if (active) {
      res.allocatedClusters!++;
      if (nextContiguous !== 0 && offset !== nextContiguous) res.fragmentedClusters!++;
      nextContiguous = offset + cs;
    }
    if (!img.hasDataFile) inc(st, offset, cs);
  }
}

function checkL1(st: CheckState, l1Offset: number, l1Size: number, active: boolean): void {
  const { img, res } = st;
  const cs = img.layout.clusterSize;
  inc(st, l1Offset, l1Size * 8);
  if (l1Size === 0) return;
  const v = readTable(img, l1Offset, l1Size * 8);
  for (let i = 0; i < l1Size; i++) {
    const hi = v.getUint32(i * 8);
    const lo = v.getUint32(i * 8 + 4);
    if ((hi & L1E_RESERVED_HI) !== 0 || (lo & L1E_RESERVED_LO) !== 0) {
      res.messages.push(`ERROR found L1 entry with reserved bits set: ${hex64(hi, lo)}`);
      res.corruptions++;
    }
    const l2 = entryOffset(hi, lo);
    if (l2 === 0) continue;
    inc(st, l2, cs);
    if (l2 % cs !== 0) {
      res.messages.push(
        `ERROR l2_offset=${l2.toString(16)}: Table is not cluster aligned; L1 entry corrupted`,
      );
      res.corruptions++;
    }
    checkL2(st, l2, active);
  }
}

function snapshotTableBytes(img: Qcow2Image): number {
  let total = 0;
  for (const s of img.snapshots) {
    const raw = QCOW2_SNAPSHOT_HEADER_BYTES + s.extra.length +
      new TextEncoder().encode(s.id).length +
      new TextEncoder().encode(s.name).length;
    total += (raw + 7) & ~7;
  }
  return total;
}

function calculate(st: CheckState): void {
  const { img, res } = st;
  const h = img.header;
  const cs = img.layout.clusterSize;
  inc(st, 0, cs);
  checkL1(st, img.map.l1Offset, img.map.l1Size, true);
  for (const s of img.snapshots) {
    if (s.l1TableOffset % cs !== 0) {
      res.messages.push(
        `ERROR snapshot ${s.id} (${s.name}) l1_offset=0x${
          s.l1TableOffset.toString(16)
        }: L1 table is not cluster aligned; snapshot table entry corrupted`,
      );
      res.corruptions++;
      continue;
    }
    if (s.l1Size > QCOW_MAX_L1_SIZE / 8) {
      res.messages.push(
        `ERROR snapshot ${s.id} (${s.name}) l1_size=0x${
          s.l1Size.toString(16)
        }: L1 table is too large; snapshot table entry corrupted`,
      );
      res.corruptions++;
      continue;
    }
    checkL1(st, s.l1TableOffset, s.l1Size, false);
  }
  inc(st, h.snapshotsOffset, snapshotTableBytes(img));
  const loc = img.refcounts.location;
  inc(st, loc.offset, loc.clusters * cs);
  // The bitmap directory, tables and data (QEMU's qcow2_check_bitmaps_refcounts).
  // (inc counts its own corruptions: add the directory's after it ran.)
  const bitmaps = countBitmapReferences(img, (offset, bytes) => inc(st, offset, bytes));
  res.corruptions += bitmaps.corruptions;
  if (bitmaps.failed) {
    // QEMU's calculate_refcounts stops there and the check fails.
    res.failed = "Invalid argument";
    return;
  }
  // The refcount blocks themselves, each of which must be referenced exactly once.
  const v = readTable(img, loc.offset, loc.clusters * cs);
  for (let i = 0; i < (loc.clusters * cs) / 8; i++) {
    const hi = v.getUint32(i * 8);
    const lo = v.getUint32(i * 8 + 4);
    if ((lo & REFT_RESERVED_MASK) !== 0) {
      res.messages.push(`ERROR refcount table entry ${i} has reserved bits set`);
      res.corruptions++;
      st.rebuild = true;
      continue;
    }
    const offset = hi * 0x100000000 + lo;
    if (offset === 0) continue;
    if (offset % cs !== 0) {
      res.messages.push(
        `ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`,
      );
      res.corruptions++;
      st.rebuild = true;
      continue;
    }
    if (offset >= Math.ceil(st.fileBytes / cs) * cs) {
      res.messages.push(`ERROR refcount block ${i} is outside image`);
      res.corruptions++;
      st.rebuild = true;
      continue;
    }
    inc(st, offset, cs);
    const c = offset / cs;
    if (st.tally.get(c) !== 1) {
      res.messages.push(`ERROR refcount block ${i} refcount=${st.tally.get(c)}`);
      res.corruptions++;
      st.rebuild = true;
    }
  }
}

/** Compares on-disk refcounts with the tally; fixes what `fix` allows. Returns the highest used cluster. */
function compare(st: CheckState, fixLeaks: boolean, fixErrors: boolean): number {
  const { img, res, tally } = st;
  const refcounts = img.refcounts;
  const tableClusters = refcounts.table.length * img.layout.refcountBlockEntries;
  const n = Math.max(tally.length, Math.ceil(st.fileBytes / img.layout.clusterSize));
  let highest = -1;
  for (let i = 0; i < n; i++) {
    const onDisk = i < tableClusters ? refcounts.get(i) : 0;
    const counted = tally.get(i);
    if (onDisk > 0 || counted > 0) highest = i;
    if (onDisk === counted) continue;
    let fixed: "leaks" | "corruptions" | null = null;
    if (onDisk === 0) st.rebuild = true;
    else if (onDisk > counted && fixLeaks) fixed = "leaks";
    else if (onDisk < counted && fixErrors) fixed = "corruptions";
    const word = fixed ? "Repairing" : onDisk < counted ? "ERROR" : "Leaked";
    res.messages.push(`${word} cluster ${i} refcount=${onDisk} reference=${counted}`);
    if (fixed) {
      refcounts.set(i, counted);
      if (counted === 0) st.freed.push(i);
      if (fixed === "leaks") res.leaksFixed++;
      else res.corruptionsFixed++;
      continue;
    }
    if (onDisk < counted) res.corruptions++;
    else res.leaks++;
  }
  return highest;
}

/** Builds a fresh refcount table and blocks from the tally, as QEMU's `rebuild_refcount_structure`. */
function rebuild(st: CheckState): void {
  const { img, tally } = st;
  const L = img.layout;
  const cs = L.clusterSize;
  const E = L.refcountBlockEntries;
  const perCluster = cs / 8;
  let firstFree = 0;
  const allocRun = (count: number): number => {
    for (let start = firstFree;; start++) {
      let ok = true;
      for (let k = 0; k < count; k++) {
        if (tally.get(start + k) !== 0) {
          ok = false;
          start += k;
          break;
        }
      }
      if (ok) {
        for (let k = 0; k < count; k++) tally.add(start + k);
        if (count === 1 || start === firstFree) firstFree = start + count;
        return start;
      }
    }
  };
  const blocks: number[] = [];
  let tableStart = -1;
  let tableClusters = 0;
  for (;;) {
    let changed = false;
    for (let t = 0; t * E < tally.length; t++) {
      if (blocks[t] !== undefined) continue;
      let used = false;
      for (let c = t * E; c < Math.min((t + 1) * E, tally.length) && !used; c++) {
        used = tally.get(c) > 0;
      }
      if (!used) continue;
      blocks[t] = allocRun(1);
      changed = true;
    }
    const need = Math.ceil(blocks.length / perCluster);
    if (need > tableClusters) {
      if (tableStart >= 0) {
        for (let k = 0; k < tableClusters; k++) tally.counts[tableStart + k] = 0;
      }
      tableClusters = need;
      tableStart = allocRun(tableClusters);
      changed = true;
    }
    if (!changed) break;
  }
  const order = L.refcountOrder;
  for (let t = 0; t < blocks.length; t++) {
    if (blocks[t] === undefined) continue;
    const block = new Uint8Array(cs);
    const v = new DataView(block.buffer);
    for (let c = t * E; c < Math.min((t + 1) * E, tally.length); c++) {
      const r = tally.get(c);
      if (r > 0) writeRefcount(v, c - t * E, order, r);
    }
    img.file.writeSync(blocks[t] * cs, block);
  }
  const table = new Uint8Array(tableClusters * cs);
  const tv = new DataView(table.buffer);
  blocks.forEach((b, t) => {
    if (b === undefined) return;
    tv.setUint32(t * 8, offsetHi(b * cs));
    tv.setUint32(t * 8 + 4, offsetLo(b * cs));
  });
  img.file.writeSync(tableStart * cs, table);
  img.file.syncSync();
  writeReftableLocation(img, tableStart * cs, tableClusters);
  img.refcounts.reload({ offset: tableStart * cs, clusters: tableClusters });
}

/** Fixes QCOW_OFLAG_COPIED in the active L1 and L2 tables to match the refcounts. */
function checkCopied(st: CheckState, fix: boolean): void {
  const { img, res } = st;
  const L = img.layout;
  const cs = L.clusterSize;
  const word = fix ? "Repairing" : "ERROR";
  for (let i = 0; i < img.map.l1Size; i++) {
    const [hi, lo] = img.map.l1Raw(i);
    const l2 = entryOffset(hi, lo);
    if (l2 === 0 || l2 % cs !== 0) continue;
    const refcount = img.refcounts.get(l2 / cs);
    if ((refcount === 1) !== ((hi & QCOW_OFLAG_COPIED_HI) !== 0)) {
      res.messages.push(
        `${word} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${
          hex64(hi, lo)
        } refcount=${refcount}`,
      );
      if (fix) {
        img.map.setL1(
          i,
          refcount === 1 ? (hi | QCOW_OFLAG_COPIED_HI) >>> 0 : (hi & ~QCOW_OFLAG_COPIED_HI) >>> 0,
          lo,
        );
        res.corruptionsFixed++;
      } else {
        res.corruptions++;
      }
    }
    const buf = new Uint8Array(cs);
    img.file.readSync(l2, buf);
    const v = new DataView(buf.buffer);
    let dirty = false;
    for (let j = 0; j < L.l2Entries; j++) {
      const at = j * L.l2EntryBytes;
      const eh = v.getUint32(at);
      const el = v.getUint32(at + 4);
      if ((eh & QCOW_OFLAG_COMPRESSED_HI) !== 0) continue;
      const host = entryOffset(eh, el);
      if (host === 0 && !(img.hasDataFile && (eh & QCOW_OFLAG_COPIED_HI) !== 0)) continue;
      if (host % cs !== 0) continue;
      const rc = img.hasDataFile ? 1 : img.refcounts.get(host / cs);
      if ((rc === 1) !== ((eh & QCOW_OFLAG_COPIED_HI) !== 0)) {
        res.messages.push(
          `${word} OFLAG_COPIED data cluster: l2_entry=${hex64(eh, el)} refcount=${rc}`,
        );
        if (fix) {
          v.setUint32(
            at,
            rc === 1 ? (eh | QCOW_OFLAG_COPIED_HI) >>> 0 : (eh & ~QCOW_OFLAG_COPIED_HI) >>> 0,
          );
          dirty = true;
          res.corruptionsFixed++;
        } else {
          res.corruptions++;
        }
      }
    }
    if (dirty) {
      img.file.writeSync(l2, buf);
      img.map.cache.clear();
    }
  }
}

/**
 * Checks an image's metadata as `qemu-img check` does and repairs what `repair`
 * allows: `leaks` sets too-high refcounts right, `all` also fixes too-low ones,
 * rebuilding the whole refcount structure when a referenced cluster has none.
 */
export async function checkImage(img: Qcow2Image, repair: RepairMode): Promise<CheckResult> {
  const cs = img.layout.clusterSize;
  if (!img.readOnly) {
    img.map.cache.flush();
    img.refcounts.flush();
  }
  const fileBytes = img.file.size();
  const res: CheckResult = {
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    allocatedClusters: 0,
    totalClusters: Math.ceil(img.header.size / cs),
    fragmentedClusters: 0,
    compressedClusters: 0,
    messages: [],
  };
  const fixLeaks = repair !== "none" && !img.readOnly;
  const fixErrors = repair === "all" && !img.readOnly;
  const st: CheckState = {
    img,
    res,
    tally: new RefTally(Math.ceil(fileBytes / cs)),
    fileBytes,
    repair,
    rebuild: false,
    freed: [],
  };
  calculate(st);
  if (res.failed) return res;
  const before = { ...res, messages: [] as string[] };
  let highest = compare(st, false, false);
  if (st.rebuild && fixErrors) {
    const old = { corruptions: res.corruptions, leaks: res.leaks };
    res.messages.push("Rebuilding refcount structure");
    rebuild(st);
    res.corruptions = 0;
    res.leaks = 0;
    // The old structures are now unreferenced: count again and free them.
    const recount: CheckState = {
      ...st,
      tally: new RefTally(Math.ceil(img.file.size() / cs)),
      rebuild: false,
    };
    recount.fileBytes = img.file.size();
    const scratch: CheckResult = { ...res, messages: res.messages };
    recount.res = scratch;
    calculate(recount);
    const leaksBefore = scratch.leaks;
    scratch.leaksFixed = 0;
    highest = compare(recount, true, false);
    if (recount.rebuild) res.messages.push("ERROR rebuilt refcount structure is still broken");
    const freshLeaks = scratch.leaks - leaksBefore;
    res.corruptions = 0;
    res.leaks = freshLeaks;
    if (res.corruptions < old.corruptions) {
      res.corruptionsFixed += old.corruptions - res.corruptions;
    }
    if (res.leaks < old.leaks) res.leaksFixed += old.leaks - res.leaks;
    img.refcounts.flush();
  } else if (fixLeaks || fixErrors) {
    if (st.rebuild) {
      res.messages.push("ERROR need to rebuild refcount structures");
      res.checkErrors++;
      res.failed = "Input/output error";
      return res;
    }
    if (res.leaks > 0 || res.corruptions > 0) {
      Object.assign(res, before, { messages: res.messages });
      highest = compare(st, fixLeaks, fixErrors);
      img.refcounts.flush();
    }
  }
  checkCopied(st, fixErrors);
  res.imageEndOffset = (highest + 1) * cs;
  if (!img.readOnly && repair !== "none") {
    img.refcounts.flush();
    img.file.syncSync();
    if (res.corruptions === 0 && res.checkErrors === 0) {
      if ((img.header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n) {
        img.header.incompatibleFeatures &= ~QCOW2_INCOMPAT_CORRUPT;
        writeHeader(img);
      }
      markClean(img);
    }
  }
  await discardFreed(st);
  return res;
}

/**
 * Lets the host reclaim the clusters a repair freed, as QEMU's update_refcount does
 * with QCOW2_DISCARD_ALWAYS (qemu-img check -r punches holes there), runs of adjacent
 * clusters in one request. Called once the new refcounts are on disk, so a crash never
 * leaves a counted cluster reading as zeroes.
 */
async function discardFreed(st: CheckState): Promise<void> {
  const { img } = st;
  const cs = img.layout.clusterSize;
  // A rebuilt refcount structure may have reused a cluster freed before it.
  const free = [...new Set(st.freed)].filter((c) => img.refcounts.get(c) === 0)
    .sort((a, b) => a - b);
  for (let i = 0; i < free.length;) {
    let j = i + 1;
    while (j < free.length && free[j] === free[j - 1] + 1) j++;
    await img.file.node.discard(free[i] * cs, (j - i) * cs);
    i = j;
  }
}
