// An opened VMDK image: its extents laid end to end, the descriptor's CIDs, and the backing link

import type {
  BlockNode,
  BlockStatus,
  CheckResult,
  FormatSpecificInfo,
  RepairMode,
} from "../../../core/block/driver.ts";
import type { SyncIo } from "../../../core/block/sync_io.ts";
import { IoError, NotSupportedError } from "../../../core/errors.ts";
import { loadZlib, zlibLoaded } from "../../../core/zlib.ts";
import { descriptorText, withCid } from "./descriptor.ts";
import { type Extent, SparseExtent } from "./extent.ts";
import { DESC_SIZE, SECTOR_SIZE } from "./header.ts";

/** What {@linkcode VmdkNode} needs besides its extents. */
export interface VmdkState {
  /** The file the image was opened from (descriptor file or monolithic sparse file). */
  file: BlockNode;
  /** Positional I/O on `file`, for the descriptor. */
  io: SyncIo;
  extents: Extent[];
  /** Every extent file other than `file`, closed with the node. */
  extraFiles: BlockNode[];
  createType: string;
  /** Where the descriptor sits in `file` (0x200 in a sparse file, 0 in a descriptor file). */
  descOffset: number;
  cid: number;
  parentCid: number;
  parentFileName?: string;
  backing: BlockNode | null;
}

/**
 * An opened VMDK image. Every request runs synchronously on the extent files, so
 * grain allocation needs no lock: two writes cannot take the same grain.
 */
export class VmdkNode implements BlockNode {
  readonly driver = "vmdk";
  readonly file: BlockNode;
  readonly backing: BlockNode | null;
  readonly backingFilename?: string;
  readonly backingFormat?: string;
  #s: VmdkState;
  #size: number;
  #cidUpdated = false;
  #cidChecked = false;
  #closed = false;
  /** A whole grain for partial reads of a compressed one (used and copied out at once). */
  #grainBuf: Uint8Array | undefined;

  constructor(state: VmdkState) {
    this.#s = state;
    this.file = state.file;
    this.backing = state.backing;
    if (state.parentFileName !== undefined) {
      this.backingFilename = state.parentFileName;
      this.backingFormat = "vmdk";
    }
    let at = 0;
    for (const e of state.extents) {
      e.startBytes = at;
      at += e.sectors * SECTOR_SIZE;
    }
    this.#size = at;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  /** This image's content ID (a parent's is checked against a child's parentCID). */
  get cid(): number {
    return this.#s.cid;
  }

  /** The grain size when every extent is sparse alike (QEMU's vmdk_co_get_info). */
  get clusterSize(): number | undefined {
    const [first, ...rest] = this.#s.extents;
    if (!first || first.flat) return undefined;
    for (const e of rest) {
      if (e.flat || e.layout.compressed !== first.layout.compressed) return undefined;
      if (e.clusterBytes !== first.clusterBytes) return undefined;
    }
    return first.clusterBytes;
  }

  /** True for a streamOptimized image: data can only be written compressed, in order. */
  get needsCompressedWrites(): boolean {
    const first = this.#s.extents[0];
    return first !== undefined && !first.flat && first.layout.compressed;
  }

  size(): number {
    return this.#size;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.#checkRange(offset, buf.length);
    // node:zlib loads with the first read or write of a streamOptimized image.
    if (this.needsCompressedWrites && !zlibLoaded()) await loadZlib();
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const { extent, inExtent } = this.#find(at);
      let part = buf.subarray(done, done + this.#pieceBytes(extent, inExtent, buf.length - done));
      if (extent.flat) {
        // Through the file node: a large read then runs off the event loop.
        await extent.file.read(extent.flatStartBytes + inExtent, part);
      } else {
        const g = extent.lookup(inExtent);
        const inCluster = inExtent % extent.clusterBytes;
        if (g.kind === "data") {
          if (extent.layout.compressed) {
            if (inCluster === 0 && part.length === extent.clusterBytes) {
              // A whole grain (every convert chunk): inflated where it belongs.
              extent.readCompressed(g.hostOffset, part);
            } else {
              const grain = this.#grainScratch(extent.clusterBytes);
              extent.readCompressed(g.hostOffset, grain);
              part.set(grain.subarray(inCluster, inCluster + part.length));
            }
          } else {
            // Grains that follow each other in the file are read in one request.
            let length = part.length;
            while (done + length < buf.length) {
              const next = inExtent + length;
              if (next >= extent.sectors * SECTOR_SIZE) break;
              const n = extent.lookup(next);
              if (n.kind !== "data" || n.hostOffset !== g.hostOffset + inCluster + length) break;
              length += Math.min(extent.clusterBytes, buf.length - done - length);
            }
            part = buf.subarray(done, done + length);
            await extent.file.read(g.hostOffset + inCluster, part);
          }
        } else if (g.kind === "unallocated" && this.backing) {
          await this.#readBacking(at, part);
        } else {
          part.fill(0);
        }
      }
      done += part.length;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    if (this.needsCompressedWrites && !zlibLoaded()) await loadZlib();
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const { extent, inExtent } = this.#find(at);
      const part = data.subarray(
        done,
        done + this.#pieceBytes(extent, inExtent, data.length - done),
      );
      if (extent.flat) extent.io.writeSync(extent.flatStartBytes + inExtent, part);
      else if (extent.layout.compressed) {
        this.#writeCompressedGrain(extent, at, inExtent, part);
      } else await this.#writeSparse(extent, at, inExtent, part);
      done += part.length;
      this.#updateCid();
    }
  }

  /**
   * `convert -c`: a streamOptimized extent compresses every grain; others write plainly.
   * An empty write is the caller's end-of-stream signal: as QEMU's
   * vmdk_co_pwritev_compressed, every extent file then grows to a whole sector (a last
   * grain that did not deflate below its size leaves the file end mid-sector).
   */
  async writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    if (data.length !== 0) return this.write(offset, data);
    this.#checkWritable();
    for (const extent of this.#s.extents) {
      const end = extent.file.size();
      const aligned = Math.ceil(end / SECTOR_SIZE) * SECTOR_SIZE;
      if (aligned !== end) await extent.file.truncate(aligned);
    }
  }

  async writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    if (this.#zeroGrainsCover(offset, bytes)) {
      for (let done = 0; done < bytes;) {
        const { extent, inExtent } = this.#find(offset + done);
        const sparse = extent as SparseExtent;
        if (sparse.lookup(inExtent).kind !== "zeroed") sparse.setEntry(inExtent, 1);
        done += sparse.clusterBytes;
        this.#updateCid();
      }
      return;
    }
    // Otherwise zeroes are written as data, as QEMU falls back to when zeroed grains can't do it.
    const zeroes = new Uint8Array(Math.min(bytes, 1 << 20));
    for (let done = 0; done < bytes;) {
      const at = offset + done;
      const { extent, inExtent } = this.#find(at);
      const n = this.#pieceBytes(extent, inExtent, Math.min(bytes - done, zeroes.length));
      if (extent.flat) {
        extent.io.writeSync(extent.flatStartBytes + inExtent, zeroes.subarray(0, n));
      } else {
        const g = extent.lookup(inExtent);
        // A grain nobody wrote already reads as zeroes when nothing lies below it.
        const alreadyZero = g.kind === "zeroed" || (g.kind === "unallocated" && !this.backing);
        if (!alreadyZero) await this.write(at, zeroes.subarray(0, n));
      }
      done += n;
    }
  }

  discard(): Promise<void> {
    // QEMU's vmdk driver has no discard: grains are never given back.
    return Promise.resolve();
  }

  async flush(): Promise<void> {
    await this.file.flush();
    for (const f of this.#s.extraFiles) await f.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const limit = Math.min(bytes, this.#size - offset);
    const { extent, inExtent } = this.#find(offset);
    const inExtentLimit = Math.min(limit, extent.sectors * SECTOR_SIZE - inExtent);
    if (extent.flat) {
      return Promise.resolve({
        bytes: inExtentLimit,
        allocated: true,
        data: true,
        zero: false,
        hostOffset: extent.flatStartBytes + inExtent,
        file: extent.file,
        recurse: true,
      });
    }
    const first = extent.lookup(inExtent);
    const inCluster = inExtent % extent.clusterBytes;
    let n = Math.min(inExtentLimit, extent.clusterBytes - inCluster);
    // Extend over following grains of the same kind (and, with data, contiguous in the file).
    while (n < inExtentLimit) {
      const g = extent.lookup(inExtent + n);
      if (g.kind !== first.kind) break;
      if (g.kind === "data" && first.kind === "data") {
        if (extent.layout.compressed || g.hostOffset !== first.hostOffset + n + inCluster) break;
      }
      n = Math.min(inExtentLimit, n + extent.clusterBytes);
    }
    switch (first.kind) {
      case "data":
        if (extent.layout.compressed) {
          return Promise.resolve({
            bytes: n,
            allocated: true,
            data: true,
            zero: false,
            compressed: true,
            file: extent.file,
          });
        }
        return Promise.resolve({
          bytes: n,
          allocated: true,
          data: true,
          zero: false,
          hostOffset: first.hostOffset + inCluster,
          file: extent.file,
        });
      case "zeroed":
        return Promise.resolve({ bytes: n, allocated: true, data: false, zero: true });
      case "error":
        return Promise.reject(new IoError("Input/output error"));
      default:
        return Promise.resolve({ bytes: n, allocated: false, data: false, zero: false });
    }
  }

  truncate(): Promise<void> {
    return Promise.reject(new NotSupportedError("Image format driver does not support resize"));
  }

  allocatedBytes(): number {
    let total = this.file.allocatedBytes();
    if (total < 0) return -1;
    for (const f of this.#s.extraFiles) {
      const n = f.allocatedBytes();
      if (n < 0) return -1;
      total += n;
    }
    return total;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      for (const f of this.#s.extraFiles) await f.close();
      await this.backing?.close();
    } finally {
      await this.file.close();
    }
  }

  formatInfo(): FormatSpecificInfo {
    const s = this.#s;
    const human = [
      `    cid: ${s.cid}`,
      `    parent cid: ${s.parentCid}`,
      `    create type: ${s.createType}`,
      "    extents:",
    ];
    const extents = s.extents.map((e, i) => {
      const info: Record<string, unknown> = {};
      human.push(`        [${i}]:`);
      const add = (key: string, label: string, value: unknown) => {
        info[key] = value;
        human.push(`            ${label}: ${value}`);
      };
      if (!e.flat && e.layout.compressed) add("compressed", "compressed", true);
      add("virtual-size", "virtual size", e.sectors * SECTOR_SIZE);
      add("filename", "filename", e.file.filename);
      if (!e.flat) add("cluster-size", "cluster size", e.clusterBytes);
      add("format", "format", e.typeName);
      return info;
    });
    return {
      type: "vmdk",
      data: {
        "cid": s.cid,
        "parent-cid": s.parentCid,
        "create-type": s.createType,
        "extents": extents,
      },
      humanLines: human,
    };
  }

  /**
   * What `qemu-img check` finds in a VMDK: only grains that point past the end of
   * their file, and tables that cannot be read, as QEMU's vmdk_co_check.
   */
  check(repair: RepairMode): Promise<CheckResult> {
    if (repair !== "none") {
      return Promise.reject(
        new NotSupportedError("This image format does not support checks", { exitCode: 63 }),
      );
    }
    const result: CheckResult = {
      corruptions: 0,
      leaks: 0,
      checkErrors: 0,
      corruptionsFixed: 0,
      leaksFixed: 0,
      messages: [],
    };
    for (const extent of this.#s.extents) {
      if (extent.flat) continue;
      const fileBytes = extent.file.size();
      for (let o = 0; o < extent.sectors * SECTOR_SIZE; o += extent.clusterBytes) {
        const sector = (extent.startBytes + o) / SECTOR_SIZE;
        const g = extent.lookup(o);
        let message: string | undefined;
        if (g.kind === "error") {
          message = `ERROR: could not get cluster_offset for sector ${sector}`;
        } else if (g.kind === "data" && g.hostOffset >= fileBytes) {
          message = `ERROR: cluster offset for sector ${sector} points after EOF`;
        }
        if (message) {
          // QEMU stops at the first problem it finds.
          result.messages.push(message);
          result.corruptions = 1;
          result.failed = "Invalid argument";
          return Promise.resolve(result);
        }
      }
    }
    return Promise.resolve(result);
  }

  /** The extent holding guest byte `offset` and the offset inside it. */
  #grainScratch(bytes: number): Uint8Array {
    if (!this.#grainBuf || this.#grainBuf.length < bytes) this.#grainBuf = new Uint8Array(bytes);
    return this.#grainBuf;
  }

  #find(offset: number): { extent: Extent; inExtent: number } {
    const extents = this.#s.extents;
    // Few extents (one per 2 GiB at most): a linear walk from the end is fine.
    for (let i = extents.length - 1; i >= 0; i--) {
      if (offset >= extents[i].startBytes) {
        return { extent: extents[i], inExtent: offset - extents[i].startBytes };
      }
    }
    throw new IoError(`No extent holds offset ${offset}`);
  }

  /** Bytes from `inExtent` to the end of its grain (or extent, for a flat one), at most `max`. */
  #pieceBytes(extent: Extent, inExtent: number, max: number): number {
    const toEnd = extent.sectors * SECTOR_SIZE - inExtent;
    if (extent.flat) return Math.min(max, toEnd);
    return Math.min(max, toEnd, extent.clusterBytes - (inExtent % extent.clusterBytes));
  }

  /** Reads guest bytes at `offset` from the backing image (zeroes past its end). */
  async #readBacking(offset: number, part: Uint8Array): Promise<void> {
    const backing = this.backing!;
    this.#checkParentCid();
    const inBacking = Math.max(0, Math.min(part.length, backing.size() - offset));
    part.fill(0, inBacking);
    if (inBacking > 0) await backing.read(offset, part.subarray(0, inBacking));
  }

  /** A vmdk parent whose CID changed since the child was made is refused, as QEMU does. */
  #checkParentCid(): void {
    if (this.#cidChecked) return;
    const backing = this.backing;
    if (backing instanceof VmdkNode && backing.cid !== this.#s.parentCid) {
      throw new IoError(
        `Parent CID ${backing.cid.toString(16)} of '${backing.filename}' does not match the ` +
          `parentCID ${this.#s.parentCid.toString(16)} of '${this.filename}'`,
      );
    }
    this.#cidChecked = true;
  }

  /** The whole grain around `part` (at guest `offset`) with what lies below it filled in. */
  async #wholeGrain(
    extent: SparseExtent,
    offset: number,
    inCluster: number,
    part: Uint8Array,
    zeroed: boolean,
  ): Promise<Uint8Array> {
    const grain = new Uint8Array(extent.clusterBytes);
    if (this.backing && !zeroed && part.length < grain.length) {
      const grainStart = offset - inCluster;
      // Extents may end mid-grain: only the guest bytes of this grain come from below.
      const inImage = Math.min(grain.length, this.#size - grainStart);
      await this.#readBacking(grainStart, grain.subarray(0, inImage));
    }
    grain.set(part, inCluster);
    return grain;
  }

  async #writeSparse(
    extent: SparseExtent,
    offset: number,
    inExtent: number,
    part: Uint8Array,
  ): Promise<void> {
    const g = extent.lookup(inExtent);
    const inCluster = inExtent % extent.clusterBytes;
    if (g.kind === "data") {
      extent.io.writeSync(g.hostOffset + inCluster, part);
      return;
    }
    if (g.kind === "error" || !extent.hasGrainTable(inExtent)) {
      throw new IoError(`Cannot write at offset ${offset}: its grain table is missing`);
    }
    const grain = await this.#wholeGrain(extent, offset, inCluster, part, g.kind === "zeroed");
    // Another request may have taken the grain while the backing file was read.
    const now = extent.lookup(inExtent);
    if (now.kind === "data") {
      extent.io.writeSync(now.hostOffset + inCluster, part);
      return;
    }
    const host = extent.allocate(grain);
    extent.setEntry(inExtent, host / SECTOR_SIZE);
  }

  /**
   * streamOptimized: a grain is written once, whole and compressed, after the last one.
   * QEMU first fills the new grain's place with zeroes, so the file always reaches a
   * grain boundary past the last grain; vmkit does the same so the files match.
   */
  #writeCompressedGrain(
    extent: SparseExtent,
    offset: number,
    inExtent: number,
    part: Uint8Array,
  ): void {
    const inCluster = inExtent % extent.clusterBytes;
    const extentEnd = extent.sectors * SECTOR_SIZE;
    if (
      inCluster !== 0 ||
      (part.length < extent.clusterBytes && inExtent + part.length !== extentEnd)
    ) {
      throw new IoError(
        `Cannot write at offset ${offset}: a streamOptimized image takes whole grains only`,
      );
    }
    const g = extent.lookup(inExtent);
    if (g.kind === "data") {
      throw new IoError("Could not write to allocated cluster for streamOptimized");
    }
    if (g.kind === "error" || !extent.hasGrainTable(inExtent)) {
      throw new IoError(`Cannot write at offset ${offset}: its grain table is missing`);
    }
    // The zeroed place is never read back: the compressed record overwrites its start.
    const host = extent.allocate(new Uint8Array(extent.clusterBytes));
    const record = SparseExtent.compressedGrain(offset / SECTOR_SIZE, part);
    extent.io.writeSync(host, record);
    extent.setEnd(host + record.length, true);
    extent.setEntry(inExtent, host / SECTOR_SIZE);
  }

  /** True when every grain of the range is whole and can become a zeroed grain entry. */
  #zeroGrainsCover(offset: number, bytes: number): boolean {
    for (let done = 0; done < bytes;) {
      const { extent, inExtent } = this.#find(offset + done);
      if (extent.flat || !extent.layout.hasZeroGrain) return false;
      if (inExtent % extent.clusterBytes !== 0) return false;
      if (bytes - done < extent.clusterBytes) return false;
      if (!extent.hasGrainTable(inExtent)) return false;
      done += extent.clusterBytes;
    }
    return true;
  }

  /** The first write after opening gives the image a new CID, as QEMU's vmdk_write_cid. */
  #updateCid(): void {
    if (this.#cidUpdated) return;
    this.#cidUpdated = true;
    const s = this.#s;
    const raw = new Uint8Array(DESC_SIZE);
    s.io.readSync(s.descOffset, raw);
    const cid = crypto.getRandomValues(new Uint32Array(1))[0];
    let text: string;
    try {
      text = withCid(descriptorText(raw), cid);
    } catch {
      return;
    }
    const bytes = new TextEncoder().encode(text);
    if (bytes.length >= DESC_SIZE) return;
    // A sparse file's descriptor area is rewritten whole; a descriptor file is NUL padded
    // to a sector, as QEMU leaves it.
    const length = s.descOffset !== 0
      ? DESC_SIZE
      : Math.ceil(Math.max(bytes.length, s.file.size()) / SECTOR_SIZE) * SECTOR_SIZE;
    const out = new Uint8Array(length);
    out.set(bytes);
    s.io.writeSync(s.descOffset, out);
    s.cid = cid;
  }

  #checkWritable(): void {
    if (this.readOnly) throw new IoError("Cannot write to a read-only image");
  }

  #checkRange(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > this.size()) {
      throw new IoError(
        `Request out of range: offset ${offset} length ${bytes} in an image of ${this.size()} bytes`,
      );
    }
  }
}
