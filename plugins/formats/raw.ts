// The raw format: guest bytes are the file's bytes, optionally a window of it

import type {
  BlockNode,
  BlockStatus,
  CreateContext,
  OpenContext,
  TruncateOptions,
} from "../../core/block/driver.ts";
import { PROBE_BYTES } from "../../core/block/graph.ts";
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

/** How a {@linkcode RawNode} is opened. */
export interface RawNodeOptions {
  /** Bytes of the file before guest offset 0 (`offset=`). */
  offset?: number;
  /** The virtual size (`size=`); the file's size minus `offset` when absent. */
  size?: number;
  /**
   * Set when the format was probed: the format a file starting with a given probe
   * buffer probes as. Writes that would make it probe as anything but raw are refused.
   */
  probeFormat?: (header: Uint8Array) => string | undefined;
}

/** A raw image: every guest byte at `offset + guest offset` in the file. */
export class RawNode implements BlockNode {
  readonly driver = "raw";
  readonly backing = null;
  #offset: number;
  #size: number | undefined;
  #probeFormat: ((header: Uint8Array) => string | undefined) | undefined;
  // Changes to the probe window run one at a time, so that two writes each harmless
  // alone cannot pass their checks together and combine into another format's header.
  #windowTail: Promise<void> = Promise.resolve();

  /** {@linkcode read} on the calling thread, where the file has positional I/O. */
  readonly readSync?: (offset: number, buf: Uint8Array) => void;
  /**
   * {@linkcode write} on the calling thread, where the file has positional I/O. For a
   * caller with no other request in flight (`img convert`): a change to the probe
   * window is checked as `write` checks it, but does not wait for asynchronous ones.
   */
  readonly writeSync?: (offset: number, data: Uint8Array) => void;

  constructor(readonly file: BlockNode, options: RawNodeOptions = {}) {
    this.#offset = options.offset ?? 0;
    this.#size = options.size;
    this.#probeFormat = options.probeFormat;
    const { readSync, writeSync } = file;
    if (readSync && writeSync) {
      this.readSync = (offset, buf) => {
        this.#checkRange(offset, buf.length);
        readSync.call(file, this.#offset + offset, buf);
      };
      this.writeSync = (offset, data) => {
        this.#checkRange(offset, data.length);
        const at = this.#offset + offset;
        if (this.#probeFormat && data.length > 0 && at < PROBE_BYTES) {
          const header = new Uint8Array(PROBE_BYTES);
          readSync.call(file, 0, header.subarray(0, Math.min(PROBE_BYTES, file.size())));
          header.set(data.subarray(0, PROBE_BYTES - at), at);
          this.#refuseOtherFormat(header);
        }
        writeSync.call(file, at, data);
      };
    }
  }

  /** True when writes to the probe window are checked (the format was probed). */
  get restrictsBlockZero(): boolean {
    return this.#probeFormat !== undefined;
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
    const at = this.#offset + offset;
    return this.#guarded(
      at,
      data.length,
      (header) => header.set(data.subarray(0, PROBE_BYTES - at), at),
      () => this.file.write(at, data),
    );
  }

  writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void> {
    this.#checkRange(offset, bytes);
    const at = this.#offset + offset;
    return this.#guarded(
      at,
      bytes,
      (header) => header.fill(0, at, Math.min(PROBE_BYTES, at + bytes)),
      () => this.file.writeZeroes(at, bytes, options),
    );
  }

  discard(offset: number, bytes: number): Promise<void> {
    this.#checkRange(offset, bytes);
    const at = this.#offset + offset;
    // A discarded range may read back as zeroes: check it as a zero write.
    return this.#guarded(
      at,
      bytes,
      (header) => header.fill(0, at, Math.min(PROBE_BYTES, at + bytes)),
      () => this.file.discard(at, bytes),
    );
  }

  /**
   * Runs `change` of the file bytes `[at, at + bytes)`. On a probed node, a change
   * touching the probe window is first applied to a copy of the window (`overlay`) and
   * probed: if the file would then probe as another format, the change is refused with
   * EPERM, as QEMU's raw driver refuses it, and the file is left as it was.
   */
  #guarded(
    at: number,
    bytes: number,
    overlay: (header: Uint8Array) => void,
    change: () => Promise<void>,
  ): Promise<void> {
    const probeFormat = this.#probeFormat;
    if (!probeFormat || bytes === 0 || at >= PROBE_BYTES) return change();
    const run = this.#windowTail.then(async () => {
      const header = new Uint8Array(PROBE_BYTES);
      await this.file.read(0, header.subarray(0, Math.min(PROBE_BYTES, this.file.size())));
      overlay(header);
      this.#refuseOtherFormat(header);
      await change();
    });
    this.#windowTail = run.catch(() => {});
    return run;
  }

  /** Throws QEMU's EPERM when the probe window `header` would probe as another format. */
  #refuseOtherFormat(header: Uint8Array): void {
    const format = this.#probeFormat!(header);
    if (format !== "raw") {
      throw new IoError(
        `Write to block 0 of '${this.filename}' refused: the image would probe as ` +
          `${format ?? "no known format"}: Operation not permitted`,
        { code: "EPERM" },
      );
    }
  }

  /** The file's cache (its length); the raw node keeps nothing of its own. */
  async invalidateCache(): Promise<void> {
    await this.file.invalidateCache?.();
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
  // Guest data straight through: the file is locked for what raw's user does (QEMU's
  // filtered child; an offset= or size= window is locked the same way here).
  fileRole: "filtered",
  // raw claims every file, with the lowest score: it wins only when nothing else does.
  probe: () => 1,
  // Every guest byte is a file byte, allocated or not.
  measure: (sizeBytes: number) => ({ required: sizeBytes, fullyAllocated: sizeBytes }),
  create(filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) {
    return ctx.createFile(filename, sizeBytes, opts);
  },
  open(file: BlockNode, opts: ParsedOptions, ctx?: OpenContext) {
    const offset = typeof opts.offset === "number" ? opts.offset : undefined;
    const size = typeof opts.size === "number" ? opts.size : undefined;
    if (offset !== undefined && offset > file.size()) {
      return Promise.reject(new ImageOpenError("The sum of offset and size exceeds the file size"));
    }
    // QEMU's rule for a probed raw image opened read-write: guard block 0, whichever
    // front end (IDE, virtio-blk, an `img` command) writes to it. The CLI prints QEMU's
    // warning when it sees `restrictsBlockZero`.
    const probeFormat = ctx?.probed && !file.readOnly ? ctx.probeFormat : undefined;
    return Promise.resolve(new RawNode(file, { offset, size, probeFormat }));
  },
} satisfies FormatDescriptor;
