// An opened VHD image: fixed (data then footer) or dynamic (BAT, per-block sector bitmaps)

import {
  readStored,
  readStoredSync,
  requireSyncIo,
  type StoredPieces,
  type SyncIo,
} from "../../../core/block/sync_io.ts";
import type { BlockNode, BlockStatus } from "../../../core/block/driver.ts";
import { ImageFormatError, IoError, NotSupportedError } from "../../../core/errors.ts";
import {
  DYNAMIC_HEADER_SIZE,
  FOOTER_SIZE,
  footerSizeBytes,
  parseDynamicHeader,
  parseFooter,
  VHD_BAT_UNUSED,
  VHD_DIFFERENCING,
  VHD_DYNAMIC,
  VHD_FIXED,
} from "./footer.ts";

const SECTOR_SIZE = 512;

/** What a dynamic disk adds to the footer. */
interface DynamicState {
  tableOffset: number;
  blockSize: number;
  /** Bytes of each block's sector bitmap (one bit per sector, padded to a sector). */
  bitmapBytes: number;
  /** Block Allocation Table: the sector of each block's bitmap, or VHD_BAT_UNUSED. */
  bat: Uint32Array;
  /** Where the next block goes: the footer copy moves past it. */
  freeDataOffset: number;
}

/**
 * An opened VHD image. Every request runs synchronously on the file, so block
 * allocation needs no lock.
 */
export class VpcNode implements BlockNode {
  readonly driver = "vpc";
  readonly backing = null;
  #io: SyncIo;
  #footer: Uint8Array;
  #size: number;
  #dyn: DynamicState | undefined;

  constructor(
    readonly file: BlockNode,
    footer: Uint8Array,
    sizeBytes: number,
    dyn: DynamicState | undefined,
  ) {
    this.#io = requireSyncIo(file, "vpc");
    this.#footer = footer;
    this.#size = sizeBytes;
    this.#dyn = dyn;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  /** The block size of a dynamic disk (`cluster_size` in `info`). */
  get clusterSize(): number | undefined {
    return this.#dyn?.blockSize;
  }

  size(): number {
    return this.#size;
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
   * `[file offset, from, to]` within `buf`; the rest of `buf` (unallocated blocks of a
   * dynamic disk) is zero-filled here.
   */
  #stored(offset: number, buf: Uint8Array): StoredPieces {
    this.#checkRange(offset, buf.length);
    const dyn = this.#dyn;
    if (!dyn) return [[offset, 0, buf.length]];
    const pieces: StoredPieces = [];
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const block = Math.floor(at / dyn.blockSize);
      const inBlock = at % dyn.blockSize;
      const n = Math.min(buf.length - done, dyn.blockSize - inBlock);
      // A dynamic disk has no parent: a sector of an unallocated block reads as zeroes.
      if (dyn.bat[block] === VHD_BAT_UNUSED) buf.fill(0, done, done + n);
      else pieces.push([this.#dataOffset(block) + inBlock, done, done + n]);
      done += n;
    }
    return pieces;
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
    return Promise.resolve();
  }

  /** {@linkcode write} on the calling thread (its data and metadata go through positional I/O). */
  writeSync(offset: number, data: Uint8Array): void {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    const dyn = this.#dyn;
    if (!dyn) {
      this.#io.writeSync(offset, data);
      return;
    }
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const block = Math.floor(at / dyn.blockSize);
      const inBlock = at % dyn.blockSize;
      const n = Math.min(data.length - done, dyn.blockSize - inBlock);
      if (dyn.bat[block] === VHD_BAT_UNUSED) this.#allocate(dyn, block);
      this.#io.writeSync(this.#dataOffset(block) + inBlock, data.subarray(done, done + n));
      done += n;
    }
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    const dyn = this.#dyn;
    const chunk = new Uint8Array(Math.min(bytes, 1 << 20));
    for (let done = 0; done < bytes;) {
      const at = offset + done;
      let n = Math.min(bytes - done, chunk.length);
      if (dyn) {
        n = Math.min(n, dyn.blockSize - (at % dyn.blockSize));
        // An unallocated block already reads as zeroes.
        if (dyn.bat[Math.floor(at / dyn.blockSize)] === VHD_BAT_UNUSED) {
          done += n;
          continue;
        }
      }
      this.write(at, chunk.subarray(0, n));
      done += n;
    }
    return Promise.resolve();
  }

  discard(): Promise<void> {
    // QEMU's vpc driver has no discard: blocks are never given back.
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const limit = Math.min(bytes, this.size() - offset);
    const dyn = this.#dyn;
    if (!dyn) {
      return Promise.resolve({
        bytes: limit,
        allocated: true,
        data: true,
        zero: false,
        hostOffset: offset,
        file: this.file,
      });
    }
    const block = Math.floor(offset / dyn.blockSize);
    const allocated = dyn.bat[block] !== VHD_BAT_UNUSED;
    let n = Math.min(limit, dyn.blockSize - (offset % dyn.blockSize));
    for (let b = block + 1; n < limit; b++) {
      if ((dyn.bat[b] !== VHD_BAT_UNUSED) !== allocated) break;
      if (
        allocated && this.#dataOffset(b) !== this.#dataOffset(block) + (b - block) * dyn.blockSize
      ) {
        break;
      }
      n = Math.min(limit, n + dyn.blockSize);
    }
    // An unallocated block reads as zeroes defined by this image (the format has no
    // backing file), so QEMU reports it zero and allocated.
    if (!allocated) return Promise.resolve({ bytes: n, allocated: true, data: false, zero: true });
    return Promise.resolve({
      bytes: n,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: this.#dataOffset(block) + (offset % dyn.blockSize),
      file: this.file,
    });
  }

  truncate(): Promise<void> {
    return Promise.reject(new NotSupportedError("Image format driver does not support resize"));
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  close(): Promise<void> {
    return this.file.close();
  }

  #dataOffset(block: number): number {
    const dyn = this.#dyn!;
    return dyn.bat[block] * SECTOR_SIZE + dyn.bitmapBytes;
  }

  /**
   * Appends block `block` where the footer copy was: its bitmap (every sector present,
   * the data area reading as zeroes until written), the footer after it, then the BAT entry.
   */
  #allocate(dyn: DynamicState, block: number): void {
    const at = dyn.freeDataOffset;
    this.#io.writeSync(at, new Uint8Array(dyn.bitmapBytes).fill(0xff));
    const end = at + dyn.bitmapBytes + dyn.blockSize;
    // The footer moves to the new end first, so the file never lacks one.
    this.#io.writeSync(end, this.#footer);
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, at / SECTOR_SIZE);
    this.#io.writeSync(dyn.tableOffset + block * 4, entry);
    dyn.bat[block] = at / SECTOR_SIZE;
    dyn.freeDataOffset = end;
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

/** Opens a VHD image on `file`: the footer copy at the start, or the footer at the end. */
export async function openVpc(file: BlockNode): Promise<VpcNode> {
  const fileBytes = file.size();
  if (fileBytes < FOOTER_SIZE) throw new ImageFormatError("Image not in VHD format (too small)");
  const footer = new Uint8Array(FOOTER_SIZE);
  await file.read(0, footer);
  if (new TextDecoder().decode(footer.subarray(0, 8)) !== "conectix") {
    // A fixed disk has its only footer at the end.
    await file.read(fileBytes - FOOTER_SIZE, footer);
  }
  const f = parseFooter(footer);
  // A bad footer checksum is tolerated, as QEMU only warns about it.
  const sizeBytes = footerSizeBytes(f);
  if (f.diskType === VHD_FIXED) {
    if (sizeBytes > fileBytes - FOOTER_SIZE) {
      throw new ImageFormatError("Image size is larger than the file holding it");
    }
    return new VpcNode(file, footer, sizeBytes, undefined);
  }
  if (f.diskType === VHD_DIFFERENCING) {
    throw new NotSupportedError("vpc differencing images are not supported");
  }
  if (f.diskType !== VHD_DYNAMIC) throw new ImageFormatError(`Unknown VHD disk type ${f.diskType}`);
  const dh = new Uint8Array(DYNAMIC_HEADER_SIZE);
  await file.read(Number(f.dataOffset), dh);
  const d = parseDynamicHeader(dh);
  if (d.maxTableEntries * d.blockSize < sizeBytes) {
    throw new ImageFormatError("Disk size is too large for the block allocation table");
  }
  const raw = new Uint8Array(d.maxTableEntries * 4);
  await file.read(d.tableOffset, raw);
  const dv = new DataView(raw.buffer);
  const bat = new Uint32Array(d.maxTableEntries);
  const bitmapBytes = Math.ceil(d.blockSize / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE;
  let freeDataOffset = d.tableOffset + Math.ceil(raw.length / SECTOR_SIZE) * SECTOR_SIZE;
  for (let i = 0; i < bat.length; i++) {
    bat[i] = dv.getUint32(i * 4);
    if (bat[i] === VHD_BAT_UNUSED) continue;
    freeDataOffset = Math.max(freeDataOffset, bat[i] * SECTOR_SIZE + bitmapBytes + d.blockSize);
  }
  return new VpcNode(file, footer, sizeBytes, {
    tableOffset: d.tableOffset,
    blockSize: d.blockSize,
    bitmapBytes,
    bat,
    freeDataOffset,
  });
}
