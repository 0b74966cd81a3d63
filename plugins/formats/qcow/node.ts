// An opened qcow (version 1) image: two-level cluster map, compressed clusters, backing file

import { requireSyncIo, type SyncIo } from "../../../core/block/sync_io.ts";
import type { BlockNode, BlockStatus, OpenContext } from "../../../core/block/driver.ts";
import { ImageFormatError, IoError, NotSupportedError } from "../../../core/errors.ts";
import { loadZlib, zlibLoaded, zlibSync } from "../../../core/zlib.ts";
import { l1Entries, parseQcowHeader, QCOW_HEADER_SIZE, type QcowHeader } from "./header.ts";

/** Bit 63 of an L2 entry: the cluster is compressed; its size sits below the flag. */
const QCOW_OFLAG_COMPRESSED_HI = 0x80000000;
/** L2 tables kept in memory (QEMU keeps 16). */
const L2_CACHE_ENTRIES = 16;

/** Where one cluster's bytes come from. */
type ClusterMap =
  | { kind: "unallocated" }
  | { kind: "normal"; offset: number }
  | { kind: "compressed"; offset: number; bytes: number };

/**
 * An opened qcow image. Reads run synchronously on the file (a backing file is
 * awaited); writes are serialised, since allocating a cluster may also allocate
 * its L2 table. Compressed clusters are read; a write turns one into a normal cluster.
 */
export class QcowNode implements BlockNode {
  readonly driver = "qcow";
  readonly clusterSize: number;
  #io: SyncIo;
  #h: QcowHeader;
  #l1: Float64Array;
  #l2Cache = new Map<number, Float64Array>();
  #lastCompressed: { offset: number; data: Uint8Array } | undefined;
  #writeChain: Promise<void> = Promise.resolve();

  constructor(
    readonly file: BlockNode,
    header: QcowHeader,
    l1: Float64Array,
    readonly backing: BlockNode | null,
    readonly backingFilename: string | undefined,
  ) {
    this.#io = requireSyncIo(file, "qcow");
    this.#h = header;
    this.#l1 = l1;
    this.clusterSize = 2 ** header.clusterBits;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }

  size(): number {
    // QEMU counts whole 512-byte sectors of the header's size.
    return Math.floor(this.#h.sizeBytes / 512) * 512;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.#checkRange(offset, buf.length);
    const cs = this.clusterSize;
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const inCluster = at % cs;
      const n = Math.min(buf.length - done, cs - inCluster);
      const part = buf.subarray(done, done + n);
      const m = this.#map(at);
      if (m.kind === "normal") this.#io.readSync(m.offset + inCluster, part);
      else if (m.kind === "compressed") {
        if (!zlibLoaded()) await loadZlib();
        part.set(this.#decompress(m).subarray(inCluster, inCluster + n));
      } else await this.#readBacking(at, part);
      done += n;
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    return this.#serialised(() => this.#writeLocked(offset, data));
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    return this.#serialised(async () => {
      const cs = this.clusterSize;
      for (let done = 0; done < bytes;) {
        const at = offset + done;
        const n = Math.min(bytes - done, cs - (at % cs));
        // Without a backing file an unallocated cluster already reads as zeroes.
        if (this.#map(at).kind !== "unallocated" || this.backing) {
          await this.#writeLocked(at, new Uint8Array(n));
        }
        done += n;
      }
    });
  }

  discard(): Promise<void> {
    // QEMU's qcow driver has no discard: clusters are never given back.
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  /** As QEMU's qcow: a compressed cluster is data without a file offset. */
  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const cs = this.clusterSize;
    const limit = Math.min(bytes, this.size() - offset);
    const first = this.#map(offset);
    let n = Math.min(limit, cs - (offset % cs));
    // Merge following clusters of the same kind (contiguous on disk when mapped).
    for (let at = offset + n; n < limit && first.kind !== "compressed"; at += cs) {
      const m = this.#map(at);
      if (m.kind !== first.kind) break;
      if (m.kind === "normal" && first.kind === "normal") {
        if (m.offset !== first.offset + (at - (offset - (offset % cs)))) break;
      }
      n = Math.min(limit, n + cs);
    }
    if (first.kind === "unallocated") {
      return Promise.resolve({
        bytes: n,
        allocated: false,
        data: false,
        zero: this.backing === null,
      });
    }
    if (first.kind === "compressed") {
      return Promise.resolve({
        bytes: n,
        allocated: true,
        data: true,
        zero: false,
        compressed: true,
      });
    }
    return Promise.resolve({
      bytes: n,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: first.offset + (offset % cs),
      file: this.file,
    });
  }

  truncate(): Promise<void> {
    return Promise.reject(new NotSupportedError("Image format driver does not support resize"));
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  async close(): Promise<void> {
    if (this.backing) await this.backing.close();
    await this.file.close();
  }

  #serialised(work: () => void | Promise<void>): Promise<void> {
    const run = this.#writeChain.then(work);
    this.#writeChain = run.catch(() => {});
    return run;
  }

  /**
   * Writes cluster by cluster. A cluster not yet in this image (or compressed) gets
   * a new cluster at the end of the file holding its old contents (from the backing
   * file, the compressed data, or zeroes) merged with the new bytes; then its L2
   * entry points there. Data goes first, so a crash leaves the old mapping.
   */
  async #writeLocked(offset: number, data: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const inCluster = at % cs;
      const n = Math.min(data.length - done, cs - inCluster);
      const part = data.subarray(done, done + n);
      const m = this.#map(at);
      if (m.kind === "normal") {
        this.#io.writeSync(m.offset + inCluster, part);
      } else {
        const whole = new Uint8Array(cs);
        if (n < cs) {
          if (m.kind === "compressed") {
            if (!zlibLoaded()) await loadZlib();
            whole.set(this.#decompress(m));
          } else {await this.#readBacking(
              at - inCluster,
              whole.subarray(0, this.size() - (at - inCluster)),
            );}
        }
        whole.set(part, inCluster);
        const l2Offset = this.#ensureL2(at);
        const clusterOffset = this.#allocate(cs);
        this.#io.writeSync(clusterOffset, whole);
        this.#io.flushSync();
        const h = this.#h;
        const l2Index = Math.floor(at / cs) % 2 ** h.l2Bits;
        const entry = new Uint8Array(8);
        const ev = new DataView(entry.buffer);
        ev.setUint32(0, Math.floor(clusterOffset / 2 ** 32));
        ev.setUint32(4, clusterOffset % 2 ** 32);
        this.#io.writeSync(l2Offset + l2Index * 8, entry);
        const table = this.#l2Table(l2Offset);
        table[l2Index * 2] = Math.floor(clusterOffset / 2 ** 32);
        table[l2Index * 2 + 1] = clusterOffset % 2 ** 32;
        if (this.#lastCompressed && m.kind === "compressed") this.#lastCompressed = undefined;
      }
      done += n;
    }
  }

  /** The L2 table covering guest byte `offset`, allocated (zeroed, then linked in L1) if missing. */
  #ensureL2(offset: number): number {
    const h = this.#h;
    const l1Index = Math.floor(offset / 2 ** (h.clusterBits + h.l2Bits));
    if (this.#l1[l1Index]) return this.#l1[l1Index];
    const bytes = 8 * 2 ** h.l2Bits;
    const l2Offset = this.#allocate(bytes);
    this.#io.writeSync(l2Offset, new Uint8Array(bytes));
    this.#io.flushSync();
    const entry = new Uint8Array(8);
    const ev = new DataView(entry.buffer);
    ev.setUint32(0, Math.floor(l2Offset / 2 ** 32));
    ev.setUint32(4, l2Offset % 2 ** 32);
    this.#io.writeSync(h.l1TableOffset + l1Index * 8, entry);
    this.#l1[l1Index] = l2Offset;
    return l2Offset;
  }

  /** Reserves `bytes` at the end of the file, aligned to a cluster, as QEMU places new data. */
  #allocate(bytes: number): number {
    const at = Math.ceil(this.file.size() / this.clusterSize) * this.clusterSize;
    // Growing the file first keeps the next allocation past this one.
    this.#io.writeSync(at + bytes - 1, new Uint8Array(1));
    return at;
  }

  #checkWritable(): void {
    if (this.readOnly) throw new IoError("Cannot write to a read-only image");
  }

  /** The mapping of the cluster holding guest byte `offset`. */
  #map(offset: number): ClusterMap {
    const h = this.#h;
    const l1Index = Math.floor(offset / 2 ** (h.clusterBits + h.l2Bits));
    const l2Offset = this.#l1[l1Index];
    if (!l2Offset) return { kind: "unallocated" };
    const l2 = this.#l2Table(l2Offset);
    const l2Index = Math.floor(offset / this.clusterSize) % 2 ** h.l2Bits;
    const hi = l2[l2Index * 2];
    const lo = l2[l2Index * 2 + 1];
    if (hi === 0 && lo === 0) return { kind: "unallocated" };
    if (hi >= QCOW_OFLAG_COMPRESSED_HI) {
      // Bits 62..(63 - cluster_bits) hold the compressed size, the bits below the offset.
      const offsetBits = 63 - h.clusterBits;
      const entry = (BigInt(hi) << 32n) | BigInt(lo);
      const offsetMask = (1n << BigInt(offsetBits)) - 1n;
      const bytes = Number((entry >> BigInt(offsetBits)) & ((1n << BigInt(h.clusterBits)) - 1n));
      return { kind: "compressed", offset: Number(entry & offsetMask), bytes };
    }
    return { kind: "normal", offset: hi * 2 ** 32 + lo };
  }

  /** An L2 table as (high, low) 32-bit pairs, from a small cache. */
  #l2Table(l2Offset: number): Float64Array {
    const hit = this.#l2Cache.get(l2Offset);
    if (hit) {
      this.#l2Cache.delete(l2Offset);
      this.#l2Cache.set(l2Offset, hit);
      return hit;
    }
    const entries = 2 ** this.#h.l2Bits;
    const raw = new Uint8Array(entries * 8);
    if (l2Offset + raw.length > this.file.size()) {
      throw new IoError(`qcow L2 table at ${l2Offset} lies past the end of the file`);
    }
    this.#io.readSync(l2Offset, raw);
    const v = new DataView(raw.buffer);
    const table = new Float64Array(entries * 2);
    for (let i = 0; i < entries * 2; i++) table[i] = v.getUint32(i * 4);
    if (this.#l2Cache.size >= L2_CACHE_ENTRIES) {
      this.#l2Cache.delete(this.#l2Cache.keys().next().value!);
    }
    this.#l2Cache.set(l2Offset, table);
    return table;
  }

  #decompress(m: { offset: number; bytes: number }): Uint8Array {
    if (this.#lastCompressed?.offset === m.offset) return this.#lastCompressed.data;
    const input = new Uint8Array(m.bytes);
    this.#io.readSync(m.offset, input);
    let out: Uint8Array;
    try {
      // QEMU deflates raw (no zlib header); a partial last block still inflates in sync-flush mode.
      const zlib = zlibSync();
      out = zlib.inflateRawSync(input, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch (e) {
      throw new IoError("Could not decompress cluster: Input/output error", { cause: e });
    }
    if (out.length < this.clusterSize) {
      throw new IoError("Could not decompress cluster: Input/output error");
    }
    const data = out.subarray(0, this.clusterSize);
    this.#lastCompressed = { offset: m.offset, data };
    return data;
  }

  async #readBacking(offset: number, part: Uint8Array): Promise<void> {
    const b = this.backing;
    if (!b || offset >= b.size()) {
      part.fill(0);
      return;
    }
    const inside = Math.min(part.length, b.size() - offset);
    await b.read(offset, part.subarray(0, inside));
    part.fill(0, inside);
  }

  #checkRange(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > this.size()) {
      throw new IoError(
        `Request out of range: offset ${offset} length ${bytes} in an image of ${this.size()} bytes`,
      );
    }
  }
}

/** Opens a qcow image on `file`, and its backing file unless the context says not to. */
export async function openQcow(file: BlockNode, ctx: OpenContext): Promise<QcowNode> {
  if (file.size() < QCOW_HEADER_SIZE) throw new ImageFormatError("Image not in qcow format");
  const io = requireSyncIo(file, "qcow");
  const hb = new Uint8Array(QCOW_HEADER_SIZE);
  io.readSync(0, hb);
  const h = parseQcowHeader(hb);
  const entries = l1Entries(h);
  if (entries * 8 > 2 ** 31 - 1) throw new ImageFormatError("Image too large");
  if (h.l1TableOffset + entries * 8 > file.size()) {
    throw new ImageFormatError("qcow L1 table lies past the end of the file");
  }
  const raw = new Uint8Array(entries * 8);
  io.readSync(h.l1TableOffset, raw);
  const v = new DataView(raw.buffer);
  const l1 = new Float64Array(entries);
  for (let i = 0; i < entries; i++) {
    const hi = v.getUint32(i * 8);
    if (hi >= 0x200000) throw new ImageFormatError(`qcow L1 entry ${i} is out of range`);
    l1[i] = hi * 2 ** 32 + v.getUint32(i * 8 + 4);
  }
  let backingName: string | undefined;
  if (h.backingFileOffset !== 0) {
    if (h.backingFileOffset + h.backingFileSize > file.size()) {
      throw new ImageFormatError("qcow backing file name lies past the end of the file");
    }
    const nb = new Uint8Array(h.backingFileSize);
    io.readSync(h.backingFileOffset, nb);
    backingName = new TextDecoder().decode(nb);
  }
  let backing: BlockNode | null = null;
  if (backingName && !ctx.options.noBacking) {
    // qcow stores no backing format: the backing file is probed.
    backing = await ctx.openBacking(backingName, undefined);
  }
  return new QcowNode(file, h, l1, backing, backingName || undefined);
}
