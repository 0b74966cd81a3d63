// qcow2 guest I/O: reads through the mapping, allocating writes with copy-on-write, zeroes and discard

import { IoError } from "../../../core/errors.ts";
import { loadZlib, zlibLoaded } from "../../../core/zlib.ts";
import { type Mapping, newMapping } from "./cluster.ts";
import { markDirty, type Qcow2Image } from "./image.ts";
import {
  entryOffset,
  offsetHi,
  offsetLo,
  QCOW2_SUBCLUSTER_COMPRESSED,
  QCOW2_SUBCLUSTER_NORMAL,
  QCOW2_SUBCLUSTER_ZERO_ALLOC,
  QCOW2_SUBCLUSTER_ZERO_PLAIN,
  QCOW_OFLAG_COMPRESSED_HI,
  QCOW_OFLAG_COPIED_HI,
  QCOW_OFLAG_ZERO,
} from "./layout.ts";

/**
 * The compression code (compress.ts, and the host zlib and zstd bindings it imports):
 * loaded with the first compressed cluster, as `img info` and most guests never need it.
 */
type Codec = typeof import("./compress.ts");
let codec: Codec | undefined;

async function loadCodec(): Promise<Codec> {
  // A string literal, so `deno compile` embeds the module.
  return codec ??= await import("./compress.ts");
}

/** True once a compressed cluster can be read synchronously (the codec and node:zlib loaded). */
function readCodecLoaded(): boolean {
  return codec !== undefined && zlibLoaded();
}

async function loadReadCodec(): Promise<void> {
  await loadCodec();
  await loadZlib();
}

/**
 * Reads guest bytes `[offset, offset + buf.length)`, which must lie inside the
 * virtual disk. An L2 cache hit on allocated data costs one lookup and one read.
 */
export function readGuest(img: Qcow2Image, offset: number, buf: Uint8Array): Promise<void> | void {
  const m = img.scratch;
  const len = buf.length;
  let pos = 0;
  while (pos < len) {
    img.map.lookup(offset + pos, len - pos, m);
    // The codec and node:zlib load with the first compressed cluster read, on the async path.
    if (m.type === QCOW2_SUBCLUSTER_COMPRESSED && !readCodecLoaded()) {
      return loadReadCodec().then(() => readRest(img, offset, buf, pos));
    }
    const n = m.bytes;
    const out = n === len ? buf : buf.subarray(pos, pos + n);
    if (!readMapped(img, m, offset + pos, out)) {
      if (img.backing !== null) return readRest(img, offset, buf, pos);
      out.fill(0);
    }
    pos += n;
  }
}

/**
 * Fills `out` from where mapping `m` says the guest bytes at `guestOffset` live.
 * @returns false when this layer does not have them (read the backing file, or zeroes)
 */
function readMapped(img: Qcow2Image, m: Mapping, guestOffset: number, out: Uint8Array): boolean {
  switch (m.type) {
    case QCOW2_SUBCLUSTER_NORMAL:
      img.data.readSync(m.hostOffset, out);
      return true;
    case QCOW2_SUBCLUSTER_ZERO_PLAIN:
    case QCOW2_SUBCLUSTER_ZERO_ALLOC:
      out.fill(0);
      return true;
    case QCOW2_SUBCLUSTER_COMPRESSED:
      readCompressed(img, guestOffset, m.hostOffset, m.compressedBytes, out);
      return true;
    default:
      return false;
  }
}

// The slow path once a backing read is needed: awaits, so it cannot share the scratch mapping.
async function readRest(
  img: Qcow2Image,
  offset: number,
  buf: Uint8Array,
  pos: number,
): Promise<void> {
  const m = newMapping();
  while (pos < buf.length) {
    img.map.lookup(offset + pos, buf.length - pos, m);
    if (m.type === QCOW2_SUBCLUSTER_COMPRESSED && !readCodecLoaded()) await loadReadCodec();
    const n = m.bytes;
    const out = buf.subarray(pos, pos + n);
    if (!readMapped(img, m, offset + pos, out)) await readBacking(img, offset + pos, out);
    pos += n;
  }
}

/** Reads from the backing node; bytes past its end read as zeroes. */
export async function readBacking(img: Qcow2Image, offset: number, out: Uint8Array): Promise<void> {
  const backing = img.backing;
  const have = backing === null ? 0 : Math.max(0, Math.min(out.length, backing.size() - offset));
  if (have > 0) await backing!.read(offset, have === out.length ? out : out.subarray(0, have));
  if (have < out.length) out.fill(0, have);
}

function readCompressed(
  img: Qcow2Image,
  guest: number,
  host: number,
  bytes: number,
  out: Uint8Array,
): void {
  const cs = img.layout.clusterSize;
  let cached = img.decompressed;
  if (cached === null || cached.offset !== host) {
    const input = new Uint8Array(bytes);
    img.file.readSync(host, input);
    cached = {
      offset: host,
      data: codec!.decompressCluster(img.header.compressionType, input, cs),
    };
    img.decompressed = cached;
  }
  const inCluster = guest % cs;
  out.set(cached.data.subarray(inCluster, inCluster + out.length));
}

/** Reads guest bytes, with the part past the virtual size reading as zeroes (for copy-on-write). */
async function readClamped(img: Qcow2Image, offset: number, out: Uint8Array): Promise<void> {
  const have = Math.max(0, Math.min(out.length, img.header.size - offset));
  if (have > 0) await readGuest(img, offset, have === out.length ? out : out.subarray(0, have));
  if (have < out.length) out.fill(0, have);
}

/** Notes the first allocating change of a lazy-refcount image. */
function beforeMetadataChange(img: Qcow2Image): void {
  if (img.lazy) markDirty(img);
}

/** Allocates a host cluster for guest cluster `c` (the guest offset itself with a data file). */
function allocData(img: Qcow2Image, c: number): number {
  if (img.hasDataFile) return c * img.layout.clusterSize;
  return img.refcounts.allocClusters(1);
}

/** Drops the reference an old L2 entry held (a shared or compressed cluster being replaced). */
export function releaseOld(img: Qcow2Image, hi: number, lo: number): void {
  if (img.hasDataFile) return;
  // The L2 entry that dropped the reference reaches the disk before the lower
  // refcount does: a crash in between leaks the cluster instead of freeing one in use.
  if (!img.lazy) img.refcounts.cache.setDependency(img.map.cache);
  if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) {
    img.refcounts.free(img.layout.compressedOffset(hi, lo), img.layout.compressedBytes(hi, lo));
    return;
  }
  const host = entryOffset(hi, lo);
  if (host !== 0) img.refcounts.free(host, img.layout.clusterSize);
}

function bitRange(first: number, last: number): number {
  // Bits first..last inclusive of a 32-bit subcluster bitmap.
  const count = last - first + 1;
  return count >= 32 ? 0xffffffff : (((1 << count) - 1) << first) >>> 0;
}

/**
 * Writes guest bytes `[offset, offset + data.length)`, cluster by cluster. Clusters
 * that need a new host cluster get one run of them at once, as QEMU's `handle_alloc`
 * allocates: where the run lands decides where a new refcount block goes.
 */
export async function writeGuest(img: Qcow2Image, offset: number, data: Uint8Array): Promise<void> {
  const cs = img.layout.clusterSize;
  const lastCluster = Math.floor((offset + data.length - 1) / cs);
  let run = { next: 0, end: 0 };
  let pos = 0;
  while (pos < data.length) {
    const guest = offset + pos;
    const c = Math.floor(guest / cs);
    const a = guest - c * cs;
    const n = Math.min(cs - a, data.length - pos);
    const chunk = n === data.length ? data : data.subarray(pos, pos + n);
    if (!writeInPlace(img, c, a, chunk)) {
      if (run.next === run.end) run = allocateRun(img, c, lastCluster);
      const target = run.next < run.end ? run.next : undefined;
      if (target !== undefined) run.next += cs;
      await writeAllocating(img, c, a, chunk, target);
    }
    pos += n;
  }
}

/** True when an L2 entry cannot take a write in place: QEMU's `cluster_needs_new_alloc`. */
function needsNewCluster(hi: number, lo: number): boolean {
  if ((hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) return true;
  return entryOffset(hi, lo) === 0 || (hi & QCOW_OFLAG_COPIED_HI) === 0;
}

/**
 * Host clusters for guest clusters `first..` that need new ones, counted up to
 * `last`, the end of the L2 slice, or the first that does not: one contiguous run
 * (`next` to `end`), allocated after the slice's L2 table. Empty with a data file or
 * when `first` itself needs none.
 */
function allocateRun(img: Qcow2Image, first: number, last: number): { next: number; end: number } {
  if (img.hasDataFile) return { next: 0, end: 0 };
  beforeMetadataChange(img);
  const L = img.layout;
  const s = img.map.sliceForWrite(first, img.refcounts, img.lazy);
  const v = s.entry.view;
  const room = Math.min(last - first + 1, img.map.sliceEntries - s.index);
  let count = 0;
  while (count < room) {
    const at = (s.index + count) * L.l2EntryBytes;
    if (!needsNewCluster(v.getUint32(at), v.getUint32(at + 4))) break;
    count++;
  }
  if (count === 0) return { next: 0, end: 0 };
  const host = img.refcounts.allocClusters(count);
  return { next: host, end: host + count * L.clusterSize };
}

// Writes into an allocated cluster this image owns alone (COPIED); false when not possible.
function writeInPlace(img: Qcow2Image, c: number, a: number, chunk: Uint8Array): boolean {
  const L = img.layout;
  const s = img.map.slice(c);
  if (s === null) return false;
  const v = s.entry.view;
  const at = s.index * L.l2EntryBytes;
  const hi = v.getUint32(at);
  const lo = v.getUint32(at + 4);
  if ((hi & QCOW_OFLAG_COPIED_HI) === 0 || (hi & QCOW_OFLAG_COMPRESSED_HI) !== 0) return false;
  if (!L.extendedL2) {
    if ((lo & QCOW_OFLAG_ZERO) !== 0) return false;
  } else {
    const alloc = v.getUint32(at + 12);
    const mask = bitRange(
      Math.floor(a / L.subclusterSize),
      Math.floor((a + chunk.length - 1) / L.subclusterSize),
    );
    if ((alloc & mask) >>> 0 !== mask) return false;
  }
  const host = entryOffset(hi, lo);
  if (host === 0 && !img.hasDataFile) return false;
  img.data.writeSync(host + a, chunk);
  return true;
}

async function writeAllocating(
  img: Qcow2Image,
  c: number,
  a: number,
  chunk: Uint8Array,
  fresh?: number,
): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  const b = a + chunk.length;
  beforeMetadataChange(img);
  let s = img.map.sliceForWrite(c, img.refcounts, img.lazy);
  let at = s.index * L.l2EntryBytes;
  const hi = s.entry.view.getUint32(at);
  const lo = s.entry.view.getUint32(at + 4);
  const compressed = (hi & QCOW_OFLAG_COMPRESSED_HI) !== 0;
  const host = compressed ? 0 : entryOffset(hi, lo);
  const hasHost = !compressed &&
    (host !== 0 || (img.hasDataFile && (hi & QCOW_OFLAG_COPIED_HI) !== 0));
  const owned = hasHost && (hi & QCOW_OFLAG_COPIED_HI) !== 0;
  // The byte range of the cluster that must hold valid data after this write.
  let r0 = 0;
  let r1 = cs;
  if (L.extendedL2 && !compressed && !(hasHost && !owned)) {
    r0 = Math.floor(a / L.subclusterSize) * L.subclusterSize;
    r1 = Math.ceil(b / L.subclusterSize) * L.subclusterSize;
  }
  let buf = chunk;
  if (r0 !== a || r1 !== b) {
    buf = new Uint8Array(r1 - r0);
    const base = c * cs;
    if (a > r0) await readClamped(img, base + r0, buf.subarray(0, a - r0));
    buf.set(chunk, a - r0);
    if (r1 > b) await readClamped(img, base + b, buf.subarray(b - r0));
  }
  const target = owned ? host : fresh ?? allocData(img, c);
  img.data.writeSync(target + r0, buf);
  // Power loss must not leave an L2 entry pointing at data that never reached the disk.
  img.map.cache.setDependsOnFlush();
  // Awaiting the backing may have let other requests evict the slice: look it up again.
  s = img.map.sliceForWrite(c, img.refcounts, img.lazy);
  // Set before the entry changes: settling the order may write this slice out, and
  // it must not carry the new entry ahead of the new cluster's refcount.
  if (!img.lazy) img.map.cache.setDependency(img.refcounts.cache);
  at = s.index * L.l2EntryBytes;
  const v = s.entry.view;
  v.setUint32(at, (offsetHi(target) | QCOW_OFLAG_COPIED_HI) >>> 0);
  v.setUint32(at + 4, offsetLo(target));
  if (L.extendedL2) {
    const mask = compressed
      ? 0xffffffff
      : bitRange(Math.floor(r0 / L.subclusterSize), r1 / L.subclusterSize - 1);
    v.setUint32(at + 8, (v.getUint32(at + 8) & ~mask) >>> 0);
    v.setUint32(at + 12, compressed ? 0xffffffff : (v.getUint32(at + 12) | mask) >>> 0);
  }
  img.map.cache.markDirty(s.entry);
  if (!owned && (compressed || hasHost)) releaseOld(img, hi, lo);
}

/**
 * The cluster a compressed write at `offset` packs: `data` itself, or a short cluster
 * at the end of the image zero-padded to a whole one, as qcow2_co_pwritev_compressed_task
 * does; null for a short one elsewhere (written normally).
 */
function fullCluster(img: Qcow2Image, offset: number, data: Uint8Array): Uint8Array | null {
  const cs = img.layout.clusterSize;
  if (data.length === cs) return data;
  const atEnd = Math.ceil((offset + data.length) / 512) === Math.ceil(img.header.size / 512);
  return atEnd && data.length < cs ? padded(data, cs) : null;
}

/**
 * Starts compressing the cluster of a compressed write at `offset` on the host
 * library's thread pool: the write itself ({@linkcode writeCompressedGuest} with the
 * result) may then wait its turn while other clusters compress. `data` must stay
 * unchanged until the promise settles.
 */
export function compressAhead(
  img: Qcow2Image,
  offset: number,
  data: Uint8Array,
): Promise<Uint8Array | null> {
  const full = fullCluster(img, offset, data);
  if (full === null || img.hasDataFile) return Promise.resolve(null);
  const { compressionType } = img.header;
  const cs = img.layout.clusterSize;
  if (codec !== undefined) return codec.compressClusterAsync(compressionType, full, cs);
  return loadCodec().then((c) => c.compressClusterAsync(compressionType, full, cs));
}

/** Compressed writes of one image waiting in its queue, and the failure that stops them. */
const compressedQueues = new WeakMap<Qcow2Image, { pending: number; failure?: unknown }>();

/**
 * Queues a compressed write through `serialize` (the node's request order), its
 * compression started at once ({@linkcode compressAhead}). Once one fails, the writes
 * queued behind it fail too without writing, as qemu-img stops at its first failed
 * write, until the queue has drained.
 */
export function queueCompressedWrite(
  img: Qcow2Image,
  offset: number,
  data: Uint8Array,
  serialize: (work: () => Promise<void>) => Promise<void>,
): Promise<void> {
  const packed = compressAhead(img, offset, data);
  packed.catch(() => {});
  let queue = compressedQueues.get(img);
  if (queue === undefined) compressedQueues.set(img, queue = { pending: 0 });
  const q = queue;
  q.pending++;
  return serialize(async () => {
    if (q.failure !== undefined) throw q.failure;
    try {
      await writeCompressedGuest(img, offset, data, await packed);
    } catch (e) {
      q.failure = e;
      throw e;
    }
  }).finally(() => {
    if (--q.pending === 0) q.failure = undefined;
  });
}

/**
 * Writes one compressed cluster at the cluster-aligned guest `offset` (`prepared`: what
 * {@linkcode compressAhead} made of it); data that does not compress (or a short
 * cluster before the image's end) is written normally, as QEMU does.
 */
export async function writeCompressedGuest(
  img: Qcow2Image,
  offset: number,
  data: Uint8Array,
  prepared?: Uint8Array | null,
): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  if (offset % cs !== 0) throw new IoError("Compressed writes must be cluster aligned");
  if (img.hasDataFile) throw new IoError("Compression is not supported with an external data file");
  let packed = prepared;
  if (packed === undefined) {
    const full = fullCluster(img, offset, data);
    const type = img.header.compressionType;
    const c = codec ?? await loadCodec();
    if (full && !zlibLoaded() && c.compressNeedsZlib(type)) await loadZlib();
    packed = full ? c.compressCluster(type, full, cs) : null;
  }
  if (packed === null) {
    await writeGuest(img, offset, data);
    return;
  }
  beforeMetadataChange(img);
  const c = offset / cs;
  const s0 = img.map.sliceForWrite(c, img.refcounts, img.lazy);
  const at0 = s0.index * L.l2EntryBytes;
  const oldHi = s0.entry.view.getUint32(at0);
  const oldLo = s0.entry.view.getUint32(at0 + 4);
  // As qcow2_alloc_compressed_cluster_offset: compression never overwrites a cluster
  // with host bits (allocated, or compressed).
  if ((oldHi & 0x00ffffff) !== 0 || (oldLo & ~0x1ff) !== 0) {
    throw new IoError("Compressed write over an allocated cluster", { cause: { code: "EIO" } });
  }
  const host = img.refcounts.allocBytes(packed.length);
  img.file.writeSync(host, packed);
  img.map.cache.setDependsOnFlush();
  const s = img.map.sliceForWrite(c, img.refcounts, img.lazy);
  if (!img.lazy) img.map.cache.setDependency(img.refcounts.cache);
  const at = s.index * L.l2EntryBytes;
  const [hi, lo] = L.encodeCompressed(host, packed.length);
  s.entry.view.setUint32(at, hi);
  s.entry.view.setUint32(at + 4, lo);
  if (L.extendedL2) {
    s.entry.view.setUint32(at + 8, 0);
    s.entry.view.setUint32(at + 12, 0);
  }
  img.map.cache.markDirty(s.entry);
  if ((oldHi & QCOW_OFLAG_COMPRESSED_HI) !== 0 || entryOffset(oldHi, oldLo) !== 0) {
    releaseOld(img, oldHi, oldLo);
  }
  img.decompressed = null;
}

function padded(data: Uint8Array, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out.set(data);
  return out;
}

/** How {@linkcode clearRange} rewrites the entries of whole (sub)clusters. */
type ClearMode = "zero" | "zero-unmap" | "deallocate" | "discard";

/**
 * Makes `[offset, offset + bytes)` read as zeroes: whole clusters (subclusters with
 * extended L2) through the zero flag, `unmap` also freeing their host clusters,
 * the partial ones at the edges with zero bytes. v2 images have no zero flag.
 */
export async function zeroGuest(
  img: Qcow2Image,
  offset: number,
  bytes: number,
  unmap: boolean,
): Promise<void> {
  const L = img.layout;
  const [a0, a1] = innerRange(img, offset, bytes, L.extendedL2 ? L.subclusterSize : L.clusterSize);
  const zeroFlag = img.header.version >= 3 && !img.dataFileRaw;
  let mode: ClearMode | null = null;
  if (zeroFlag) mode = unmap ? "zero-unmap" : "zero";
  else if (img.backing === null && unmap && !img.dataFileRaw) mode = "deallocate";
  if (mode === null || a0 >= a1) {
    await writeZeroBytes(img, offset, bytes);
    return;
  }
  const end = offset + bytes;
  if (offset < a0) await writeZeroBytes(img, offset, a0 - offset);
  if (end > a1) await writeZeroBytes(img, a1, end - a1);
  await clearRange(img, a0, Math.min(a1, end), mode);
}

/**
 * Drops whole clusters of `[offset, offset + bytes)` as a guest discard does in
 * QEMU: v3 entries become zero clusters (so a backing file does not show
 * through), v2 entries become unallocated; partial clusters are left alone.
 */
export async function discardGuest(img: Qcow2Image, offset: number, bytes: number): Promise<void> {
  const [a0, a1] = innerRange(img, offset, bytes, img.layout.clusterSize);
  if (a0 < a1) await clearRange(img, a0, Math.min(a1, offset + bytes), "discard");
}

/** Makes every cluster of `[start, end)` (cluster aligned) unallocated and frees it (shrinking). */
export async function deallocateGuest(img: Qcow2Image, start: number, end: number): Promise<void> {
  await clearRange(img, start, end, "deallocate");
}

// The unit-aligned part of a range; the image end counts as aligned.
function innerRange(
  img: Qcow2Image,
  offset: number,
  bytes: number,
  unit: number,
): [number, number] {
  const end = offset + bytes;
  const a0 = Math.ceil(offset / unit) * unit;
  let a1 = Math.floor(end / unit) * unit;
  if (end >= img.header.size) a1 = Math.ceil(end / unit) * unit;
  return [a0, a1];
}

async function writeZeroBytes(img: Qcow2Image, offset: number, bytes: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(bytes, 1 << 20));
  for (let done = 0; done < bytes;) {
    const n = Math.min(chunk.length, bytes - done);
    await writeGuest(img, offset + done, n === chunk.length ? chunk : chunk.subarray(0, n));
    done += n;
  }
}

async function clearRange(
  img: Qcow2Image,
  start: number,
  end: number,
  mode: ClearMode,
): Promise<void> {
  const L = img.layout;
  const cs = L.clusterSize;
  const scs = L.subclusterSize;
  const zeroFlag = mode === "zero" || mode === "zero-unmap" ||
    (mode === "discard" && img.header.version >= 3);
  let metadataChanged = false;
  // Host clusters freed here, discarded on the host only once no table on disk points to them.
  const freed: number[] = [];
  for (let pos = start; pos < end;) {
    const c = Math.floor(pos / cs);
    const inCluster = pos - c * cs;
    const n = Math.min(cs - inCluster, end - pos);
    const guest = pos;
    pos += n;
    const peek = img.map.slice(c);
    let hi = 0;
    let lo = 0;
    if (peek !== null) {
      hi = peek.entry.view.getUint32(peek.index * L.l2EntryBytes);
      lo = peek.entry.view.getUint32(peek.index * L.l2EntryBytes + 4);
    }
    const compressed = (hi & QCOW_OFLAG_COMPRESSED_HI) !== 0;
    const host = compressed ? 0 : entryOffset(hi, lo);
    const owned = (hi & QCOW_OFLAG_COPIED_HI) !== 0 && !compressed;
    const allocated = compressed || host !== 0 || (img.hasDataFile && owned);
    const wholeCluster = inCluster === 0 && n >= Math.min(cs, img.header.size - guest);
    if (L.extendedL2 && !wholeCluster && compressed) {
      await writeZeroBytes(img, guest, n);
      continue;
    }
    if (!metadataChanged) {
      beforeMetadataChange(img);
      metadataChanged = true;
    }
    // As QEMU's get_cluster_table: the L2 table is allocated (or copied from a
    // snapshot's) even where no entry changes.
    const s = img.map.sliceForWrite(c, img.refcounts, img.lazy);
    const v = s.entry.view;
    const at = s.index * L.l2EntryBytes;
    if ((wholeCluster || !L.extendedL2) && entryKept(img, mode, v, at, allocated)) continue;
    const free = allocated && (mode !== "zero" || compressed || !owned);
    if (L.extendedL2 && !wholeCluster) {
      // Some subclusters only: keep the host cluster, flip their bitmap bits.
      const mask = bitRange(inCluster / scs, Math.ceil((inCluster + n) / scs) - 1);
      v.setUint32(at + 8, (v.getUint32(at + 8) | mask) >>> 0);
      v.setUint32(at + 12, (v.getUint32(at + 12) & ~mask) >>> 0);
    } else if (free || !zeroFlag) {
      v.setUint32(at, 0);
      v.setUint32(at + 4, zeroFlag && !L.extendedL2 ? QCOW_OFLAG_ZERO : 0);
      if (L.extendedL2) {
        v.setUint32(at + 8, zeroFlag ? 0xffffffff : 0);
        v.setUint32(at + 12, 0);
      }
    } else if (L.extendedL2) {
      v.setUint32(at + 8, 0xffffffff);
      v.setUint32(at + 12, 0);
    } else {
      v.setUint32(at + 4, (lo | QCOW_OFLAG_ZERO) >>> 0);
    }
    // No refcount rises here: the entry only waits for the refcounts that drop (releaseOld).
    img.map.cache.markDirty(s.entry);
    if (free && !(L.extendedL2 && !wholeCluster) && !img.hasDataFile) {
      releaseOld(img, hi, lo);
      if (!compressed && img.refcounts.get(host / cs) === 0) freed.push(host);
    }
  }
  img.decompressed = null;
  if (freed.length > 0) await discardFreed(img, freed);
}

/**
 * True when a whole cluster's entry already is what {@linkcode clearRange} would make
 * it, by the rules of QEMU's zero_in_l2_slice and discard_in_l2_slice: a zero write
 * sets the zero flag (all zero bits) on any cluster, unallocated ones included; a
 * discard leaves an unallocated cluster alone without a backing file; a deallocation
 * leaves an entry of nothing alone.
 */
function entryKept(
  img: Qcow2Image,
  mode: ClearMode,
  v: DataView,
  at: number,
  allocated: boolean,
): boolean {
  const ext = img.layout.extendedL2;
  const hi = v.getUint32(at);
  const lo = v.getUint32(at + 4);
  const zeroBits = ext ? v.getUint32(at + 8) : 0;
  const allocBits = ext ? v.getUint32(at + 12) : 0;
  const readsZero = ext ? zeroBits === 0xffffffff && allocBits === 0 : (lo & QCOW_OFLAG_ZERO) !== 0;
  switch (mode) {
    case "zero":
      return readsZero && (hi & QCOW_OFLAG_COMPRESSED_HI) === 0;
    case "zero-unmap":
      return readsZero && !allocated;
    case "discard":
      if (!allocated && img.backing === null) return true;
      return !allocated && hi === 0 && (ext ? readsZero && lo === 0 : lo === QCOW_OFLAG_ZERO) &&
        img.header.version >= 3;
    case "deallocate":
      return hi === 0 && lo === 0 && zeroBits === 0 && allocBits === 0;
  }
}

/**
 * Lets the host reclaim freed clusters (QEMU passes guest discards down), after the
 * L2 entries and refcounts that let go of them are on disk: punching a hole first
 * would leave a table on disk pointing at zeroes if the process died in between.
 */
async function discardFreed(img: Qcow2Image, hosts: number[]): Promise<void> {
  const cs = img.layout.clusterSize;
  img.map.cache.flush();
  img.refcounts.flush();
  img.file.syncSync();
  for (const host of hosts) {
    // A later allocation in the same request may have reused the cluster.
    if (img.refcounts.get(host / cs) === 0) await img.file.node.discard(host, cs);
  }
}
