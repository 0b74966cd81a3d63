// The vdi format: VirtualBox disk images (header 1.1, static and dynamic) with their block map

import {
  readStored,
  readStoredSync,
  requireSyncIo,
  type StoredPieces,
  type SyncIo,
} from "../../core/block/sync_io.ts";
import type {
  BlockNode,
  BlockStatus,
  CheckResult,
  CreateContext,
  RepairMode,
} from "../../core/block/driver.ts";
import { ImageFormatError, IoError, NotSupportedError, UsageError } from "../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../core/options.ts";
import type { FormatDescriptor } from "../../core/plugin.ts";

/** The signature at offset 0x40 of every VDI image. */
export const VDI_SIGNATURE = 0xbeda107f;
/** Header version 1.1, the only one QEMU writes and reads. */
export const VDI_VERSION_1_1 = 0x00010001;
/** `image_type` of a dynamic (growing) image. */
export const VDI_TYPE_DYNAMIC = 1;
/** `image_type` of a static (preallocated) image. */
export const VDI_TYPE_STATIC = 2;
/** Block map entry of a block never written: reads as zeroes. */
export const VDI_UNALLOCATED = 0xffffffff;
/** Block map entry of a discarded block: reads as zeroes. */
export const VDI_DISCARDED = 0xfffffffe;
/** The one block size QEMU supports. */
export const DEFAULT_CLUSTER_SIZE = 1 << 20;
/** The text QEMU puts at the start of the images it creates. */
export const VDI_TEXT = "<<< QEMU VM Virtual Disk Image >>>\n";

const SECTOR_SIZE = 512;
/** Bytes of the 1.1 header after the 64-byte text, signature and version (`header_size`). */
const HEADER_SIZE_1_1 = 0x180;
/** The block map starts right after the 512-byte header. */
const OFFSET_BMAP = 0x200;
/** The largest image QEMU accepts: the block map is limited to 0x1fffff8 entries. */
const VDI_BLOCKS_IN_IMAGE_MAX = 0x1fffff8;
const UUID_IMAGE = 0x188;
const UUID_LAST_SNAP = 0x198;

/** Create options, in the order `qemu-img create` prints them. */
export const VDI_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  { name: "static", type: "bool", help: "VDI static (pre-allocated) image", default: false },
];

/** The fields of a VDI 1.1 header that matter after the text. */
export interface VdiHeader {
  imageType: number;
  offsetBmap: number;
  offsetData: number;
  diskSizeBytes: number;
  blockSize: number;
  blockExtra: number;
  blocksInImage: number;
  blocksAllocated: number;
}

/** Scores a file header: 100 when the VDI signature sits at 0x40. */
export function probeVdi(header: Uint8Array): number {
  if (header.length < 0x44) return 0;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return view.getUint32(0x40, true) === VDI_SIGNATURE ? 100 : 0;
}

/** Decodes and validates a 512-byte VDI header. */
export function parseVdiHeader(buf: Uint8Array): VdiHeader {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0x40, true) !== VDI_SIGNATURE) {
    throw new ImageFormatError("Image not in VDI format (bad signature)");
  }
  const version = v.getUint32(0x44, true);
  if (version !== VDI_VERSION_1_1) {
    throw new ImageFormatError(
      `unsupported VDI image (version ${version >>> 16}.${version & 0xffff})`,
    );
  }
  const h: VdiHeader = {
    imageType: v.getUint32(0x4c, true),
    offsetBmap: v.getUint32(0x154, true),
    offsetData: v.getUint32(0x158, true),
    diskSizeBytes: Number(v.getBigUint64(0x170, true)),
    blockSize: v.getUint32(0x178, true),
    blockExtra: v.getUint32(0x17c, true),
    blocksInImage: v.getUint32(0x180, true),
    blocksAllocated: v.getUint32(0x184, true),
  };
  const sectorSize = v.getUint32(0x168, true);
  if (h.offsetBmap % SECTOR_SIZE || h.offsetData % SECTOR_SIZE) {
    throw new ImageFormatError("unsupported VDI image (unaligned block map or data offset)");
  }
  if (sectorSize !== SECTOR_SIZE) {
    throw new ImageFormatError(`unsupported VDI image (sector size ${sectorSize} is not 512)`);
  }
  if (h.blockSize !== DEFAULT_CLUSTER_SIZE) {
    throw new ImageFormatError(`unsupported VDI image (block size ${h.blockSize} is not 1 MiB)`);
  }
  if (h.blockExtra !== 0) throw new ImageFormatError("unsupported VDI image (block_extra != 0)");
  if (h.blocksInImage > VDI_BLOCKS_IN_IMAGE_MAX) {
    throw new ImageFormatError("unsupported VDI image (too many blocks)");
  }
  if (h.blocksInImage * h.blockSize < h.diskSizeBytes) {
    throw new ImageFormatError("unsupported VDI image (disk size larger than the block map)");
  }
  if (h.offsetBmap + h.blocksInImage * 4 > h.offsetData) {
    throw new ImageFormatError("unsupported VDI image (block map overlaps the data)");
  }
  return h;
}

/** Encodes a new 512-byte header as QEMU writes it (fresh random UUIDs). */
export function encodeVdiHeader(h: VdiHeader): Uint8Array {
  const buf = new Uint8Array(SECTOR_SIZE);
  const v = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode(VDI_TEXT), 0);
  v.setUint32(0x40, VDI_SIGNATURE, true);
  v.setUint32(0x44, VDI_VERSION_1_1, true);
  v.setUint32(0x48, HEADER_SIZE_1_1, true);
  v.setUint32(0x4c, h.imageType, true);
  v.setUint32(0x154, h.offsetBmap, true);
  v.setUint32(0x158, h.offsetData, true);
  // Legacy geometry stays 0 (the guest computes its own); only the sector size is set.
  v.setUint32(0x168, SECTOR_SIZE, true);
  v.setBigUint64(0x170, BigInt(h.diskSizeBytes), true);
  v.setUint32(0x178, h.blockSize, true);
  v.setUint32(0x17c, h.blockExtra, true);
  v.setUint32(0x180, h.blocksInImage, true);
  v.setUint32(0x184, h.blocksAllocated, true);
  buf.set(randomUuid(), UUID_IMAGE);
  buf.set(randomUuid(), UUID_LAST_SNAP);
  return buf;
}

function randomUuid(): Uint8Array {
  const u = crypto.getRandomValues(new Uint8Array(16));
  u[6] = (u[6] & 0x0f) | 0x40; // RFC 4122 version 4
  u[8] = (u[8] & 0x3f) | 0x80;
  return u;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * An opened VDI image. Every request runs synchronously on the file, so block
 * allocation needs no lock: two writes cannot allocate the same block twice.
 */
export class VdiNode implements BlockNode {
  readonly driver = "vdi";
  readonly backing = null;
  readonly clusterSize: number;
  #io: SyncIo;
  #header: VdiHeader;
  #headerBytes: Uint8Array;
  #bmap: Uint32Array;

  constructor(readonly file: BlockNode, headerBytes: Uint8Array, bmap: Uint32Array) {
    this.#io = requireSyncIo(file, "vdi");
    this.#headerBytes = headerBytes;
    this.#header = parseVdiHeader(headerBytes);
    this.#bmap = bmap;
    this.clusterSize = this.#header.blockSize;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }

  size(): number {
    return this.#header.diskSizeBytes;
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
   * `[file offset, from, to]` within `buf`; the rest of `buf` (unallocated blocks) is
   * zero-filled here.
   */
  #stored(offset: number, buf: Uint8Array): StoredPieces {
    this.#checkRange(offset, buf.length);
    const bs = this.#header.blockSize;
    const pieces: StoredPieces = [];
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inBlock = at % bs;
      let n = Math.min(buf.length - done, bs - inBlock);
      const entry = this.#bmap[block];
      if (entry >= VDI_DISCARDED) {
        buf.fill(0, done, done + n);
      } else {
        // Blocks that follow each other in the file are read in one request, as an
        // image written in order (every convert) keeps them: one 2 MiB read, not two.
        for (let next = block + 1; done + n < buf.length; next++) {
          const e = this.#bmap[next];
          if (e !== entry + (next - block) || e >= VDI_DISCARDED) break;
          n = Math.min(buf.length - done, n + bs);
        }
        pieces.push([this.#dataOffset(entry) + inBlock, done, done + n]);
      }
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
    const bs = this.#header.blockSize;
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inBlock = at % bs;
      const n = Math.min(data.length - done, bs - inBlock);
      const part = data.subarray(done, done + n);
      const entry = this.#bmap[block];
      if (entry < VDI_DISCARDED) this.#io.writeSync(this.#dataOffset(entry) + inBlock, part);
      else this.#allocate(block, inBlock, part);
      done += n;
    }
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    const bs = this.#header.blockSize;
    for (let done = 0; done < bytes;) {
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inBlock = at % bs;
      const n = Math.min(bytes - done, bs - inBlock);
      const entry = this.#bmap[block];
      // An unallocated block already reads as zeroes; an allocated one is overwritten.
      if (entry < VDI_DISCARDED) {
        this.#io.writeSync(this.#dataOffset(entry) + inBlock, new Uint8Array(n));
      }
      done += n;
    }
    return Promise.resolve();
  }

  discard(): Promise<void> {
    // QEMU's vdi driver ignores discard: blocks are never given back.
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const bs = this.#header.blockSize;
    const block = Math.floor(offset / bs);
    const limit = Math.min(bytes, this.size() - offset);
    const allocated = this.#bmap[block] < VDI_DISCARDED;
    let n = Math.min(limit, bs - (offset % bs));
    // Extend over following blocks of the same kind (and, when allocated, contiguous on disk).
    for (let b = block + 1; n < limit; b++) {
      const e = this.#bmap[b];
      if ((e < VDI_DISCARDED) !== allocated) break;
      if (allocated && e !== this.#bmap[block] + (b - block)) break;
      n = Math.min(limit, n + bs);
    }
    // An unallocated block reads as zeroes defined by this image (the format has no
    // backing file), so QEMU reports it zero and allocated.
    if (!allocated) return Promise.resolve({ bytes: n, allocated: true, data: false, zero: true });
    return Promise.resolve({
      bytes: n,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: this.#dataOffset(this.#bmap[block]) + (offset % bs),
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

  /** Block map consistency, as `qemu-img check` reports it for vdi (no repair). */
  check(repair: RepairMode): Promise<CheckResult> {
    if (repair !== "none") {
      return Promise.reject(
        new NotSupportedError("This image format does not support checks", { exitCode: 63 }),
      );
    }
    const h = this.#header;
    const messages: string[] = [];
    let corruptions = 0;
    let allocated = 0;
    const owner = new Uint8Array(h.blocksInImage);
    for (let i = 0; i < h.blocksInImage; i++) {
      const e = this.#bmap[i];
      if (e >= VDI_DISCARDED) continue;
      if (e >= h.blocksInImage) {
        messages.push(`ERROR: block index ${i} too large, is ${e}`);
        corruptions++;
        continue;
      }
      allocated++;
      if (owner[e]) {
        messages.push(`ERROR: block index ${e} also used by ${e}`);
        corruptions++;
      }
      owner[e] = 1;
    }
    if (allocated !== h.blocksAllocated) {
      messages.push(
        `ERROR: allocated blocks mismatch, is ${allocated}, should be ${h.blocksAllocated}`,
      );
      corruptions++;
    }
    return Promise.resolve({
      corruptions,
      leaks: 0,
      checkErrors: 0,
      corruptionsFixed: 0,
      leaksFixed: 0,
      messages,
    });
  }

  #dataOffset(entry: number): number {
    return this.#header.offsetData + entry * this.#header.blockSize;
  }

  /** Appends a new block holding `part` at `inBlock` (zeroes elsewhere) and maps it. */
  #allocate(block: number, inBlock: number, part: Uint8Array): void {
    const h = this.#header;
    const entry = h.blocksAllocated;
    let whole = part;
    if (part.length !== h.blockSize) {
      whole = new Uint8Array(h.blockSize);
      whole.set(part, inBlock);
    }
    // Data first, then the map entry, then the count: a crash leaves an unmapped block.
    this.#io.writeSync(this.#dataOffset(entry), whole);
    this.#bmap[block] = entry;
    const e = new Uint8Array(4);
    new DataView(e.buffer).setUint32(0, entry, true);
    this.#io.writeSync(h.offsetBmap + block * 4, e);
    h.blocksAllocated = entry + 1;
    new DataView(this.#headerBytes.buffer).setUint32(0x184, h.blocksAllocated, true);
    this.#io.writeSync(0x184, this.#headerBytes.subarray(0x184, 0x188));
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

/** Opens a VDI image on `file`. */
export async function openVdi(file: BlockNode): Promise<VdiNode> {
  const header = new Uint8Array(SECTOR_SIZE);
  if (file.size() < SECTOR_SIZE) throw new ImageFormatError("Image not in VDI format (too small)");
  await file.read(0, header);
  const h = parseVdiHeader(header);
  const raw = new Uint8Array(h.blocksInImage * 4);
  if (raw.length) await file.read(h.offsetBmap, raw);
  const dv = new DataView(raw.buffer);
  const bmap = new Uint32Array(h.blocksInImage);
  for (let i = 0; i < bmap.length; i++) bmap[i] = dv.getUint32(i * 4, true);
  return new VdiNode(file, header, bmap);
}

/** Creates a VDI image as `qemu-img create -f vdi` does. */
export async function createVdi(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const diskSizeBytes = roundUp(sizeBytes, SECTOR_SIZE);
  const blocks = Math.ceil(diskSizeBytes / DEFAULT_CLUSTER_SIZE);
  if (blocks > VDI_BLOCKS_IN_IMAGE_MAX) {
    throw new UsageError(
      `Unsupported VDI image size (size is 0x${sizeBytes.toString(16)}, max supported is 0x${
        (VDI_BLOCKS_IN_IMAGE_MAX * DEFAULT_CLUSTER_SIZE).toString(16)
      })`,
    );
  }
  const isStatic = opts.static === true;
  const offsetData = OFFSET_BMAP + roundUp(blocks * 4, SECTOR_SIZE);
  const header = encodeVdiHeader({
    imageType: isStatic ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC,
    offsetBmap: OFFSET_BMAP,
    offsetData,
    diskSizeBytes,
    blockSize: DEFAULT_CLUSTER_SIZE,
    blockExtra: 0,
    blocksInImage: blocks,
    blocksAllocated: isStatic ? blocks : 0,
  });
  // The map's padding up to the data area stays zero; every entry is unallocated
  // in a dynamic image and the identity in a static one.
  const bmap = new Uint8Array(offsetData - OFFSET_BMAP);
  const dv = new DataView(bmap.buffer);
  for (let i = 0; i < blocks; i++) dv.setUint32(i * 4, isStatic ? i : VDI_UNALLOCATED, true);
  const fileOpts = { ...opts };
  delete fileOpts.size;
  delete fileOpts.static;
  await ctx.createFile(filename, 0, fileOpts);
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    await file.write(0, header);
    await file.write(OFFSET_BMAP, bmap);
    if (isStatic) await file.truncate(offsetData + blocks * DEFAULT_CLUSTER_SIZE);
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The vdi image format (VirtualBox). */
export default {
  kind: "format",
  name: "vdi",
  summary: "Virtual Box image format",
  options: VDI_CREATE_OPTIONS,
  probe: probeVdi,
  create: createVdi,
  open: openVdi,
} satisfies FormatDescriptor;
