// The raw format: guest bytes are the file's bytes, optionally a window of it

import type {
  BlockNode,
  BlockStatus,
  CreateContext,
  TruncateOptions,
} from "../../core/block/driver.ts";
import { ImageOpenError, IoError } from "../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../core/options.ts";
import type { FormatDescriptor } from "../../core/plugin.ts";

/** Create options of raw (the file protocol adds its own). */
export const RAW_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
];

/** Open options of raw: a window of the file, as QEMU's `offset=` and `size=`. */
export const RAW_OPEN_OPTIONS: readonly OptionSpec[] = [
  { name: "offset", type: "size", help: "offset in the disk where the image starts" },
  { name: "size", type: "size", help: "virtual disk size" },
];

/** A raw image: every guest byte at `offset + guest offset` in the file. */
export class RawNode implements BlockNode {
  readonly driver = "raw";
  readonly backing = null;
  #offset: number;
  #size: number | undefined;

  constructor(readonly file: BlockNode, window: { offset?: number; size?: number } = {}) {
    this.#offset = window.offset ?? 0;
    this.#size = window.size;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }

  size(): number {
    // QEMU counts every node's length in whole sectors (bdrv_getlength): a file of
    // 1000 bytes is a 1024-byte disk whose tail reads as zeroes.
    return roundUpToSector(
      this.#size ?? Math.max(0, roundUpToSector(this.file.size()) - this.#offset),
    );
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    this.#checkRange(offset, buf.length);
    return this.file.read(this.#offset + offset, buf);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkRange(offset, data.length);
    return this.file.write(this.#offset + offset, data);
  }

  writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void> {
    this.#checkRange(offset, bytes);
    return this.file.writeZeroes(this.#offset + offset, bytes, options);
  }

  discard(offset: number, bytes: number): Promise<void> {
    this.#checkRange(offset, bytes);
    return this.file.discard(this.#offset + offset, bytes);
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const n = Math.min(bytes, this.size() - offset);
    const s = await this.file.blockStatus(this.#offset + offset, n);
    // raw passes everything through: the bytes are always defined here, at a known place.
    return {
      bytes: Math.min(s.bytes, n),
      allocated: true,
      data: s.data,
      zero: s.zero,
      hostOffset: this.#offset + offset,
      file: this.file,
    };
  }

  truncate(sizeBytes: number, options?: TruncateOptions): Promise<void> {
    if (this.#size !== undefined) {
      throw new IoError("Cannot resize a raw image opened with an explicit size");
    }
    return this.file.truncate(this.#offset + sizeBytes, options);
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  close(): Promise<void> {
    return this.file.close();
  }

  #checkRange(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > this.size()) {
      throw new IoError(
        `Request out of range: offset ${offset} length ${bytes} in an image of ${this.size()} bytes`,
      );
    }
  }
}

function roundUpToSector(bytes: number): number {
  return Math.ceil(bytes / 512) * 512;
}

/** The raw format plugin. */
export default {
  kind: "format",
  name: "raw",
  summary: "Raw disk image",
  options: RAW_CREATE_OPTIONS,
  openOptions: RAW_OPEN_OPTIONS,
  // raw claims every file, with the lowest score: it wins only when nothing else does.
  probe: () => 1,
  // Every guest byte is a file byte, allocated or not.
  measure: (sizeBytes: number) => ({ required: sizeBytes, fullyAllocated: sizeBytes }),
  create(filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) {
    return ctx.createFile(filename, sizeBytes, opts);
  },
  open(file: BlockNode, opts: ParsedOptions) {
    const offset = typeof opts.offset === "number" ? opts.offset : undefined;
    const size = typeof opts.size === "number" ? opts.size : undefined;
    if (offset !== undefined && offset > file.size()) {
      return Promise.reject(new ImageOpenError("The sum of offset and size exceeds the file size"));
    }
    return Promise.resolve(new RawNode(file, { offset, size }));
  },
} satisfies FormatDescriptor;
