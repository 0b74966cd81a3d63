// The `boxed` image format of docs/plugins.md: a 512-byte header (magic, virtual size),
// then the guest's bytes; small enough to read in one sitting, complete enough to use

import {
  type BlockNode,
  type BlockStatus,
  type CheckResult,
  type CreateContext,
  type FormatDescriptor,
  ImageFormatError,
  IoError,
  type ParsedOptions,
  PLUGIN_API_VERSION,
} from "../../../mod.ts";

/** "BOXED\0\0\1": the format's magic, version 1. */
export const BOXED_MAGIC = new Uint8Array([0x42, 0x4f, 0x58, 0x45, 0x44, 0, 0, 1]);
/** The header's size: guest byte 0 lives at file offset 512. */
export const BOXED_HEADER_BYTES = 512;

function hasMagic(header: Uint8Array): boolean {
  return header.length >= 8 && BOXED_MAGIC.every((b, i) => header[i] === b);
}

/** A boxed image open on its file: every guest byte at file offset 512 + guest offset. */
export class BoxedNode implements BlockNode {
  readonly driver = "boxed";
  readonly backing = null;
  #size: number;

  constructor(readonly file: BlockNode, sizeBytes: number) {
    this.#size = sizeBytes;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  size(): number {
    return this.#size;
  }

  // Every request is checked against the virtual size before it reaches the file: a
  // request past the end is an error, never a write into someone else's bytes.
  #check(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > this.#size) {
      throw new IoError(`Request out of range: offset ${offset} length ${bytes}`);
    }
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    this.#check(offset, buf.length);
    // A file shorter than the virtual size (sparse, never written) reads as zeroes.
    const inFile = Math.max(
      0,
      Math.min(buf.length, this.file.size() - BOXED_HEADER_BYTES - offset),
    );
    buf.fill(0, inFile);
    return inFile > 0
      ? this.file.read(BOXED_HEADER_BYTES + offset, buf.subarray(0, inFile))
      : Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.#check(offset, data.length);
    return this.file.write(BOXED_HEADER_BYTES + offset, data);
  }
  async writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void> {
    this.#check(offset, bytes);
    const end = Math.min(offset + bytes, Math.max(0, this.file.size() - BOXED_HEADER_BYTES));
    // Past the end of the file the bytes already read as zeroes.
    if (end > offset) {
      await this.file.writeZeroes(BOXED_HEADER_BYTES + offset, end - offset, options);
    }
  }
  discard(offset: number, bytes: number): Promise<void> {
    this.#check(offset, bytes);
    return Promise.resolve(); // a hint: keeping the data is always allowed
  }
  flush(): Promise<void> {
    return this.file.flush();
  }
  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    this.#check(offset, Math.min(bytes, this.#size - offset));
    const fileBytes = this.file.size() - BOXED_HEADER_BYTES;
    if (offset >= fileBytes) {
      return { bytes: this.#size - offset, allocated: false, data: false, zero: true };
    }
    const n = Math.min(bytes, this.#size - offset, fileBytes - offset);
    const s = await this.file.blockStatus(BOXED_HEADER_BYTES + offset, n);
    return {
      bytes: Math.min(s.bytes, n),
      allocated: true,
      data: s.data,
      zero: s.zero,
      hostOffset: BOXED_HEADER_BYTES + offset,
      file: this.file,
    };
  }
  async truncate(sizeBytes: number): Promise<void> {
    if (this.readOnly) throw new IoError("Cannot resize a read-only image");
    // Header first: the size field is the one fact the format keeps.
    await this.file.write(8, encodeSize(sizeBytes));
    await this.file.flush();
    this.#size = sizeBytes;
  }
  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }
  close(): Promise<void> {
    return this.file.close();
  }
  check(): Promise<CheckResult> {
    // Nothing can leak or be corrupt but the header, which open() already verified.
    return Promise.resolve({
      corruptions: 0,
      leaks: 0,
      checkErrors: 0,
      corruptionsFixed: 0,
      leaksFixed: 0,
      messages: [],
    });
  }
}

function encodeSize(sizeBytes: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(sizeBytes), true);
  return out;
}

/** `qemu-img create -f boxed disk.boxed 1G`, `-drive file=disk.boxed,format=boxed`. */
export default {
  kind: "format",
  name: "boxed",
  summary: "a 512-byte header, then raw data (the docs/plugins.md tutorial)",
  apiVersion: PLUGIN_API_VERSION,
  options: [{ name: "size", type: "size", help: "Virtual disk size" }],
  probe: (header: Uint8Array) => (hasMagic(header) ? 100 : 0),
  async create(filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) {
    // The file covers header and data from the start (sparse: holes cost nothing), so
    // any reader sees the whole virtual disk, also one that knows nothing of this format.
    await ctx.createFile(filename, BOXED_HEADER_BYTES + sizeBytes, opts);
    const file = await ctx.openFile(filename, { readOnly: false });
    try {
      const header = new Uint8Array(BOXED_HEADER_BYTES);
      header.set(BOXED_MAGIC);
      header.set(encodeSize(sizeBytes), 8);
      await file.write(0, header);
      await file.flush();
    } finally {
      await file.close();
    }
  },
  async open(file: BlockNode): Promise<BlockNode> {
    const header = new Uint8Array(16);
    if (file.size() < BOXED_HEADER_BYTES) {
      throw new ImageFormatError("Image is not in boxed format");
    }
    await file.read(0, header);
    if (!hasMagic(header)) throw new ImageFormatError("Image is not in boxed format");
    const size = new DataView(header.buffer).getBigUint64(8, true);
    // A hostile header may claim any size: refuse what a number cannot hold exactly.
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ImageFormatError(`Invalid virtual size in boxed header: ${size}`);
    }
    return new BoxedNode(file, Number(size));
  },
} satisfies FormatDescriptor;
