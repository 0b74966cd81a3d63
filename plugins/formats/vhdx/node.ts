// An opened VHDX image: headers, log replay, the BAT, and payload block reads and writes

import {
  readStored,
  readStoredSync,
  requireSyncIo,
  type StoredPieces,
  type SyncIo,
} from "../../../core/block/sync_io.ts";
import type {
  BlockNode,
  BlockStatus,
  CheckResult,
  RepairMode,
} from "../../../core/block/driver.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { ImageFormatError, IoError, NotSupportedError } from "../../../core/errors.ts";
import {
  type BatGeometry,
  batGeometry,
  batIndex,
  MiB,
  parseMetadata,
  parseRegionTable,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
  randomGuid,
  VHDX_BAT_STATE_BIT_MASK,
  VHDX_FILE_SIGNATURE,
  VHDX_HEADER_SECTION_END,
  VHDX_METADATA_TABLE_MAX_SIZE,
  VHDX_REGION_TABLE_OFFSET,
  type VhdxMetadata,
  type VhdxRegion,
} from "./header.ts";
import { VhdxHeaders } from "./_headers.ts";
import {
  encodeLogEntry,
  findActiveSequence,
  type LogSector,
  replaySequence,
  VHDX_LOG_SECTOR_SIZE,
} from "./log.ts";

/** States whose payload reads as zeroes in an image without a parent. */
const ZERO_STATES = new Set([
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_ZERO,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_UNMAPPED,
]);

/** What {@linkcode openVhdx} hands the node. */
interface VhdxState {
  headers: VhdxHeaders;
  metadata: VhdxMetadata;
  geometry: BatGeometry;
  batRegion: VhdxRegion;
  /** Regions a payload block must not overlap: header section, log, BAT, metadata. */
  regions: VhdxRegion[];
  /** The BAT region's bytes. */
  bat: Uint8Array;
  /** True when opening replayed a log (`check` reports it as a fixed corruption). */
  logReplayed: boolean;
}

/**
 * An opened VHDX image (dynamic or fixed; differencing images are refused at open).
 * Payload reads and writes go through the file node (a large one off the event loop);
 * writes are serialised, since allocating a payload block takes several ordered steps
 * through the log.
 */
export class VhdxNode implements BlockNode {
  readonly driver = "vhdx";
  readonly backing = null;
  #io: SyncIo;
  #s: VhdxState;
  #batView: DataView;
  #writeChain: Promise<void> = Promise.resolve();
  #logSequence: number;

  constructor(readonly file: BlockNode, state: VhdxState, logSequence = 1) {
    this.#io = requireSyncIo(file, "vhdx");
    this.#s = state;
    this.#logSequence = logSequence;
    this.#batView = new DataView(state.bat.buffer, state.bat.byteOffset, state.bat.byteLength);
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  /** The payload block size (`cluster_size` in `info`). */
  get clusterSize(): number {
    return this.#s.metadata.blockSize;
  }

  size(): number {
    return this.#s.metadata.virtualDiskSize;
  }

  /** The state and file offset of BAT entry `index`. */
  batEntry(index: number): { state: number; offset: number } {
    const lo = this.#batView.getUint32(index * 8, true);
    const hi = this.#batView.getUint32(index * 8 + 4, true);
    // Bits 20-63 are the offset in MiB units: the low word's top 12 bits and the high word.
    return {
      state: lo & VHDX_BAT_STATE_BIT_MASK,
      offset: hi * 2 ** 32 + ((lo & 0xfff00000) >>> 0),
    };
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    await readStored(this.file, this.#stored(offset, buf), buf);
  }

  /** {@linkcode read} on the calling thread (the file's positional I/O). */
  readSync(offset: number, buf: Uint8Array): void {
    readStoredSync(this.#io, this.#stored(offset, buf), buf);
  }

  /**
   * The pieces of `[offset, offset + buf.length)` stored in the file, as
   * `[file offset, from, to]` within `buf`; the rest of `buf` (blocks in a zero state)
   * is zero-filled here. A block in any other state is refused.
   */
  #stored(offset: number, buf: Uint8Array): StoredPieces {
    this.#checkRange(offset, buf.length);
    const bs = this.#s.metadata.blockSize;
    const pieces: StoredPieces = [];
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inBlock = at % bs;
      const n = Math.min(buf.length - done, bs - inBlock);
      const e = this.batEntry(batIndex(this.#s.geometry, block));
      if (e.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        pieces.push([e.offset + inBlock, done, done + n]);
      } else if (ZERO_STATES.has(e.state)) buf.fill(0, done, done + n);
      else throw badState(block, e.state);
      done += n;
    }
    return pieces;
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    return this.#serialised(async () => {
      for (const [at, from, to, place] of this.#placed(offset, data.length)) {
        await this.file.write(at, data.subarray(from, to));
        place?.();
      }
    });
  }

  /**
   * {@linkcode write} on the calling thread, for a caller with no other request in
   * flight (`img convert`): it does not wait for asynchronous writes.
   */
  writeSync(offset: number, data: Uint8Array): void {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    for (const [at, from, to, place] of this.#placed(offset, data.length)) {
      this.#io.writeSync(at, data.subarray(from, to));
      place?.();
    }
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    return this.#serialised(() => {
      const bs = this.#s.metadata.blockSize;
      for (let done = 0; done < bytes;) {
        const at = offset + done;
        const n = Math.min(bytes - done, bs - (at % bs));
        const e = this.batEntry(batIndex(this.#s.geometry, Math.floor(at / bs)));
        // A block in a zero state already reads as zeroes; a present one is overwritten.
        if (e.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
          this.#s.headers.beforeFirstWrite();
          const chunk = new Uint8Array(Math.min(n, MiB));
          for (let d = 0; d < n; d += chunk.length) {
            const m = Math.min(chunk.length, n - d);
            this.#io.writeSync(e.offset + (at % bs) + d, chunk.subarray(0, m));
          }
        } else if (!ZERO_STATES.has(e.state)) {
          throw badState(Math.floor(at / bs), e.state);
        }
        done += n;
      }
    });
  }

  discard(): Promise<void> {
    // QEMU's vhdx driver has no discard: payload blocks are never given back.
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.#serialised(() => {}).then(() => this.file.flush());
  }

  /**
   * Every byte reported as allocated data, as QEMU's vhdx driver (which has no
   * block-status callback) makes `qemu-img map` print. What reads as zeroes is marked
   * `readsAsZero` for `convert`: blocks in a zero state, and the file's holes under
   * present blocks (qemu-img's own zero scan finds the same after reading them; a vhdx
   * that qemu-img wrote keeps a block's zeroes as such holes).
   */
  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const limit = Math.min(bytes, this.size() - offset);
    const bs = this.#s.metadata.blockSize;
    const first = Math.floor(offset / bs);
    const e = this.batEntry(batIndex(this.#s.geometry, first));
    let n = Math.min(limit, bs - (offset % bs));
    let readsAsZero = false;
    if (e.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
      // The file answers in one run, hole or data, no further than this block.
      const fs = await this.file.blockStatus(e.offset + (offset % bs), n);
      n = Math.min(n, fs.bytes);
      readsAsZero = fs.zero && !fs.data;
    } else if (ZERO_STATES.has(e.state)) {
      readsAsZero = true;
      // Extend over the following blocks in a zero state.
      for (let b = first + 1; n < limit; b++) {
        if (!ZERO_STATES.has(this.batEntry(batIndex(this.#s.geometry, b)).state)) break;
        n = Math.min(limit, n + bs);
      }
    }
    // Any other state is left to read(), which refuses it.
    return { bytes: n, allocated: true, data: true, zero: false, readsAsZero };
  }

  truncate(): Promise<void> {
    return Promise.reject(new NotSupportedError("Image format driver does not support resize"));
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  async close(): Promise<void> {
    await this.#writeChain.catch(() => {});
    await this.file.close();
  }

  /**
   * BAT consistency as `qemu-img check` reports it for vhdx: payload blocks past the
   * end of the file or over the image's own structures, plus a log replayed at open
   * (counted as a fixed corruption). Nothing else can be repaired.
   */
  check(_repair: RepairMode): Promise<CheckResult> {
    const messages = batProblems(this.#s, this.file.size(), true);
    return Promise.resolve({
      corruptions: messages.length,
      leaks: 0,
      checkErrors: 0,
      corruptionsFixed: this.#s.logReplayed ? 1 : 0,
      leaksFixed: 0,
      messages,
    });
  }

  #serialised(work: () => void | Promise<void>): Promise<void> {
    const run = this.#writeChain.then(work);
    this.#writeChain = run.catch(() => {});
    return run;
  }

  /**
   * Where the payload of `[offset, offset + bytes)` goes, block by block, as `[file
   * offset, from, to, place]`: a new block's space is taken at once, and `place` (the
   * BAT entry that makes it visible) is called after its data is written, so a crash
   * still leaves either the old entry or a block whose data is in place. The async
   * write sends the payload through the file node's write, off the event loop (reads of
   * the next convert chunk go on meanwhile).
   */
  *#placed(
    offset: number,
    bytes: number,
  ): Generator<[number, number, number, (() => void) | undefined]> {
    this.#s.headers.beforeFirstWrite();
    const bs = this.#s.metadata.blockSize;
    for (let done = 0; done < bytes;) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inBlock = at % bs;
      const n = Math.min(bytes - done, bs - inBlock);
      const index = batIndex(this.#s.geometry, block);
      const e = this.batEntry(index);
      if (ZERO_STATES.has(e.state)) {
        // A new block at the next 1 MiB boundary of the file; growing the file
        // zero-fills it, so the bytes around this write read as zeroes.
        const blockOffset = Math.ceil(this.file.size() / MiB) * MiB;
        this.#io.writeSync(blockOffset + bs - 1, new Uint8Array(1));
        yield [blockOffset + inBlock, done, done + n, () => {
          this.#setBatEntry(index, blockOffset, PAYLOAD_BLOCK_FULLY_PRESENT);
        }];
      } else if (e.state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        if (e.offset < VHDX_HEADER_SECTION_END) {
          throw new IoError(`VHDX payload block ${block} lies in the header section`);
        }
        yield [e.offset + inBlock, done, done + n, undefined];
      } else {
        throw badState(block, e.state);
      }
      done += n;
    }
  }

  /**
   * Changes one BAT entry through the log, as the spec asks of every metadata
   * update: data first, then a log entry with the new BAT sector, then the BAT
   * itself, then an empty log again. A crash at any point leaves either the old
   * entry or a log that replays the new one.
   */
  #setBatEntry(index: number, offset: number, state: number): void {
    const sectorAt = Math.floor((index * 8) / VHDX_LOG_SECTOR_SIZE) * VHDX_LOG_SECTOR_SIZE;
    const sector = this.#s.bat.slice(sectorAt, sectorAt + VHDX_LOG_SECTOR_SIZE);
    const sv = new DataView(sector.buffer);
    const at = index * 8 - sectorAt;
    sv.setUint32(at, ((offset % 2 ** 32) | state) >>> 0, true);
    sv.setUint32(at + 4, Math.floor(offset / 2 ** 32), true);
    this.#io.flushSync();
    this.#logWrite([{ fileOffset: this.#s.batRegion.offset + sectorAt, data: sector }]);
    this.#s.bat.set(sector, sectorAt);
  }

  /** Writes `sectors` through the log and applies them at once (the log ends empty). */
  #logWrite(sectors: LogSector[]): void {
    const logGuid = randomGuid();
    this.#s.headers.update({ logGuid });
    const header = this.#s.headers.current;
    const entry = encodeLogEntry({
      logGuid,
      sequenceNumber: this.#logSequence++,
      tail: 0,
      flushedFileOffset: this.file.size(),
      lastFileOffset: this.file.size(),
    }, sectors);
    if (entry.length > header.logLength) {
      throw new IoError("VHDX log is too small for a metadata update");
    }
    // Each update starts a fresh log (new GUID), so its one entry sits at the log start.
    this.#io.writeSync(header.logOffset, entry);
    this.#io.flushSync();
    for (const s of sectors) this.#io.writeSync(s.fileOffset, s.data);
    this.#io.flushSync();
    this.#s.headers.update({ logGuid: new Uint8Array(16) });
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

function badState(block: number, state: number): IoError {
  return new IoError(`VHDX payload block ${block} has state ${state}, which vmkit cannot read`);
}

/**
 * The BAT problems QEMU reports, in its words: a present payload block that starts
 * or ends past the end of the file, or overlaps the header section, log, BAT or
 * metadata. With `all`, every problem; otherwise the first only.
 */
function batProblems(s: VhdxState, fileBytes: number, all: boolean): string[] {
  const out: string[] = [];
  const g = s.geometry;
  const view = new DataView(s.bat.buffer, s.bat.byteOffset, s.bat.byteLength);
  for (let block = 0; block < g.dataBlocks; block++) {
    const i = batIndex(g, block);
    const lo = view.getUint32(i * 8, true);
    if ((lo & VHDX_BAT_STATE_BIT_MASK) !== PAYLOAD_BLOCK_FULLY_PRESENT) continue;
    const offset = view.getUint32(i * 8 + 4, true) * 2 ** 32 + ((lo & 0xfff00000) >>> 0);
    const used = Math.min(g.blockSize, s.metadata.virtualDiskSize - block * g.blockSize);
    if (offset >= fileBytes) {
      out.push(
        `VHDX BAT entry ${i} start offset ${offset} points after end of file (${fileBytes}). ` +
          "Image has probably been truncated.",
      );
    } else if (offset + used > fileBytes) {
      out.push(
        `VHDX BAT entry ${i} end offset ${offset + used - 1} points after end of file ` +
          `(${fileBytes}). Image has probably been truncated.`,
      );
    } else {
      const r = s.regions.find((r) =>
        offset < r.offset + r.length && offset + g.blockSize > r.offset
      );
      if (r) {
        out.push(
          `VHDX region ${offset}-${offset + g.blockSize} overlaps with region ${r.offset}-${
            r.offset + r.length
          }`,
        );
      }
    }
    if (out.length && !all) break;
  }
  return out;
}

/** Opens a VHDX image on `file`, replaying its log when opened read-write. */
export function openVhdx(file: BlockNode, opts: ParsedOptions = {}): Promise<VhdxNode> {
  try {
    return Promise.resolve(openVhdxSync(file, opts));
  } catch (e) {
    return Promise.reject(e);
  }
}

function openVhdxSync(file: BlockNode, opts: ParsedOptions): VhdxNode {
  const io = requireSyncIo(file, "vhdx");
  const sig = new Uint8Array(8);
  if (file.size() >= 8) io.readSync(0, sig);
  if (String.fromCharCode(...sig) !== VHDX_FILE_SIGNATURE) {
    throw new ImageFormatError("Image is not in VHDX format");
  }
  if (file.size() < VHDX_HEADER_SECTION_END) {
    throw new ImageFormatError("VHDX image is truncated: the header section is incomplete");
  }
  const headers = new VhdxHeaders(io);
  // The log is replayed before anything else is read: it may rewrite the region table.
  const pending = findActiveSequence(io, headers.current);
  let logSequence = 1;
  if (pending.length > 0) {
    if (file.readOnly) {
      throw new ImageFormatError(
        `VHDX image file '${file.filename}' opened read-only, but contains a log that needs ` +
          `to be replayed (to replay the log, run: qemu-img check -r all '${file.filename}')`,
      );
    }
    headers.beforeFirstWrite();
    replaySequence(io, pending, () => file.size());
    headers.update({ logGuid: new Uint8Array(16) });
    logSequence = pending[pending.length - 1].sequenceNumber + 1;
  }
  const state = readStructures(io, file.size(), headers, pending.length > 0);
  if (opts["x-check"] !== true) {
    const problems = batProblems(state, file.size(), false);
    if (problems.length) throw new ImageFormatError(problems[0]);
  }
  return new VhdxNode(file, state, logSequence);
}

/** Reads the region table, metadata and BAT after the log is settled. */
function readStructures(
  io: SyncIo,
  fileBytes: number,
  headers: VhdxHeaders,
  logReplayed: boolean,
): VhdxState {
  const rt = new Uint8Array(64 * 1024);
  io.readSync(VHDX_REGION_TABLE_OFFSET, rt);
  const regions = parseRegionTable(rt);
  const header = headers.current;
  const all: VhdxRegion[] = [{ offset: 0, length: VHDX_HEADER_SECTION_END }];
  if (header.logLength) all.push({ offset: header.logOffset, length: header.logLength });
  for (const r of regions.all) {
    const clash = all.find((o) => r.offset < o.offset + o.length && r.offset + r.length > o.offset);
    if (clash) {
      throw new ImageFormatError(
        `VHDX region ${r.offset}-${r.offset + r.length} overlaps with region ${clash.offset}-${
          clash.offset + clash.length
        }`,
      );
    }
    all.push(r);
  }
  const md = regions.metadata;
  if (md.offset + Math.min(md.length, VHDX_METADATA_TABLE_MAX_SIZE) > fileBytes) {
    throw new ImageFormatError("VHDX metadata region lies past the end of the file");
  }
  const table = new Uint8Array(Math.min(md.length, VHDX_METADATA_TABLE_MAX_SIZE));
  io.readSync(md.offset, table);
  const metadata = parseMetadata(table, md, (offset, length) => {
    const b = new Uint8Array(length);
    io.readSync(md.offset + offset, b);
    return b;
  });
  const geometry = batGeometry(
    metadata.virtualDiskSize,
    metadata.blockSize,
    metadata.logicalSectorSize,
  );
  if (geometry.batEntries * 8 > regions.bat.length) {
    throw new ImageFormatError(
      `VHDX BAT region of ${regions.bat.length} bytes is too small for ${geometry.batEntries} entries`,
    );
  }
  if (regions.bat.offset + regions.bat.length > fileBytes) {
    throw new ImageFormatError("VHDX BAT region lies past the end of the file");
  }
  const bat = new Uint8Array(regions.bat.length);
  io.readSync(regions.bat.offset, bat);
  return { headers, metadata, geometry, batRegion: regions.bat, regions: all, bat, logReplayed };
}
