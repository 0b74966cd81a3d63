// A host file or device opened as a protocol node: what the file and host_device protocols share

import type { BlockNode, BlockStatus, TruncateOptions } from "../../core/block/driver.ts";
import { hostIoError, IoError, NotSupportedError } from "../../core/errors.ts";
import type { OptionSpec } from "../../core/options.ts";
import type { ProtocolOpenOptions } from "../../core/plugin.ts";
import { HostFile } from "./_host_file.ts";
import { ImageLock } from "./_lock.ts";
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  fallocate,
  preadAsync,
  pwriteAsync,
  SEEK_DATA,
  SEEK_HOLE,
  seekDataHole,
} from "./_posix.ts";

/**
 * Transfers at least this large go through the thread pool (preadAsync/pwriteAsync);
 * smaller ones, metadata and guest sectors, stay synchronous, where a round trip to
 * another thread would cost more than the copy.
 */
const ASYNC_MIN_BYTES = 256 << 10;

// Zeroes written in chunks of this size when the host cannot allocate zeroed extents.
const ZERO_CHUNK_BYTES = 1 << 20;
let zeroChunk: Uint8Array | undefined;
/** Up to 1 MiB of zeroes (one shared buffer: never written to). */
export function zeroes(bytes: number): Uint8Array {
  zeroChunk ??= new Uint8Array(ZERO_CHUNK_BYTES);
  return bytes >= ZERO_CHUNK_BYTES ? zeroChunk : zeroChunk.subarray(0, bytes);
}

/** The runtime options `file` and `host_device` take (`file.locking=off`, `aio=native`). */
export const HOST_OPEN_OPTIONS: readonly OptionSpec[] = [
  {
    name: "locking",
    type: "enum",
    values: ["on", "off", "auto"],
    help: "file locking mode (on/off/auto, default: auto)",
  },
  {
    name: "aio",
    type: "enum",
    values: ["threads", "native", "io_uring"],
    help: "host AIO implementation (accepted: vmkit uses positional I/O)",
  },
];

/** The `locking=` mode of a host file node. */
export type HostLocking = "on" | "off" | "auto";

/** The protocols that open host files and devices through {@linkcode openHostNode}. */
export type HostProtocol = "file" | "host_device";

/**
 * A host file opened as a protocol node. Reads and writes are synchronous positional
 * calls (`pread`/`pwrite`, see `_host_file.ts`): on a cached file they cost about a microsecond, far less
 * than a round trip through an async file API.
 */
export class FileNode implements BlockNode {
  /** The protocol that opened it: `file`, or `host_device` for a block or character device. */
  readonly driver: HostProtocol;
  readonly file = null;
  readonly backing = null;
  #host: HostFile;
  #size: number;
  #closed = false;
  #inFlight = new Set<Promise<void>>();

  #noFlush: boolean;
  #locking: HostLocking;
  /** The image locks: undefined until first asked for, null where the host cannot lock. */
  #lock: ImageLock | null | undefined;

  constructor(
    readonly filename: string,
    host: HostFile,
    readonly readOnly: boolean,
    options: { noFlush?: boolean; driver?: HostProtocol; locking?: HostLocking } = {},
  ) {
    this.driver = options.driver ?? "file";
    this.#host = host;
    this.#noFlush = options.noFlush ?? false;
    this.#locking = options.locking ?? "auto";
    this.#size = host.size();
  }

  /**
   * Takes QEMU's image locks for holding `perm` and sharing `shared` (see `_lock.ts`).
   * `locking=off` takes none; `auto` takes them where Deno FFI is allowed and goes on
   * without where it is not (as QEMU's auto does on a host without OFD locks); `on`
   * without FFI is refused rather than leave the image unguarded.
   */
  setPerm(perm: number, shared: number): void {
    if (this.#locking === "off" || this.#closed) return;
    if (this.#lock === undefined) {
      this.#lock = ImageLock.open(this.#host.path, this.filename, !this.readOnly);
    }
    if (this.#lock === null) {
      if (this.#locking === "on") {
        throw new NotSupportedError(
          "File lock requested but vmkit cannot take OFD locks without Deno FFI (--allow-ffi)",
        );
      }
      return;
    }
    this.#lock.apply(perm, shared);
  }

  /** The lock bytes held now (QEMU's numbering: 100+perm, 200+denied), for tests. */
  lockedBytes(): number[] {
    return this.#lock?.lockedBytes() ?? [];
  }

  /** A host file descriptor (opened on first use), or null where there is none (no FFI). */
  get fd(): number | null {
    return this.#host.fd();
  }

  /** Calls `fallocate`; false where the host, the filesystem or a missing descriptor refuses. */
  fallocate(mode: number, offset: number, bytes: number): boolean {
    if (bytes <= 0) return false;
    const fd = this.#host.fd();
    return fd !== null && fallocate(fd, mode, offset, bytes);
  }

  size(): number {
    return this.#size;
  }

  /** Takes the file's length again (another node may have grown it). */
  invalidateCache(): Promise<void> {
    if (!this.#closed) this.#size = this.#host.size();
    return Promise.resolve();
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    if (buf.length < ASYNC_MIN_BYTES) {
      this.readSync(offset, buf);
      return Promise.resolve();
    }
    return this.#track(this.#readAsync(offset, buf));
  }

  async #readAsync(offset: number, buf: Uint8Array): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      let n: number | null;
      try {
        // The libc descriptor: worth opening for a transfer this large.
        const fd = this.#host.fd();
        n = fd === null ? null : await preadAsync(fd, buf.subarray(done), offset + done);
      } catch (e) {
        throw hostIoError(e, `Could not read '${this.filename}'`);
      }
      if (n === null) {
        this.readSync(offset + done, buf.subarray(done));
        return;
      }
      if (n === 0) {
        buf.fill(0, done);
        return;
      }
      done += n;
    }
  }

  /** The synchronous read behind {@linkcode read}; bytes past the end of the file read as zero. */
  readSync(offset: number, buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = this.#host.pread(buf.subarray(done), offset + done);
      } catch (e) {
        throw hostIoError(e, `Could not read '${this.filename}'`);
      }
      if (n === 0) {
        buf.fill(0, done);
        return;
      }
      done += n;
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    if (data.length < ASYNC_MIN_BYTES) {
      this.writeSync(offset, data);
      return Promise.resolve();
    }
    this.#checkWritable();
    // The size grows now, as a synchronous write would make it, so later requests see it.
    if (offset + data.length > this.#size) this.#size = offset + data.length;
    return this.#track(this.#writeAsync(offset, data));
  }

  async #writeAsync(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      let n: number | null;
      try {
        const fd = this.#host.fd();
        n = fd === null ? null : await pwriteAsync(fd, data.subarray(done), offset + done);
      } catch (e) {
        throw hostIoError(e, `Could not write to '${this.filename}'`);
      }
      if (n === null) {
        this.writeSync(offset + done, data.subarray(done));
        return;
      }
      done += n;
    }
  }

  /** Counts a transfer in flight, so flush and close wait for it. */
  #track(op: Promise<void>): Promise<void> {
    this.#inFlight.add(op);
    const settle = () => {
      this.#inFlight.delete(op);
    };
    op.then(settle, settle);
    return op;
  }

  async #drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** The synchronous write behind {@linkcode write}. */
  writeSync(offset: number, data: Uint8Array): void {
    this.#checkWritable();
    let done = 0;
    while (done < data.length) {
      try {
        done += this.#host.pwrite(data.subarray(done), offset + done);
      } catch (e) {
        throw hostIoError(e, `Could not write to '${this.filename}'`);
      }
    }
    if (offset + data.length > this.#size) this.#size = offset + data.length;
  }

  writeZeroes(offset: number, bytes: number, options: { unmap?: boolean } = {}): Promise<void> {
    this.#checkWritable();
    if (bytes <= 0) return Promise.resolve();
    const end = offset + bytes;
    // Within the file: punch a hole (reads back zero) or ask for a zeroed range.
    const inside = Math.min(end, this.#size) - offset;
    if (inside > 0) {
      const mode = options.unmap
        ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
        : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
      if (!this.fallocate(mode, offset, inside)) {
        for (let done = 0; done < inside;) {
          const n = Math.min(inside - done, ZERO_CHUNK_BYTES);
          this.writeSync(offset + done, zeroes(n));
          done += n;
        }
      }
    }
    // Past the end: growing the file leaves a hole that reads as zero.
    if (end > this.#size) this.#truncateSync(end);
    return Promise.resolve();
  }

  discard(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    const inside = Math.min(offset + bytes, this.#size) - offset;
    if (inside > 0) this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, inside);
    return Promise.resolve();
  }

  async flush(): Promise<void> {
    await this.#drain();
    this.flushSync();
  }

  /**
   * Makes written data durable (`fdatasync`), the ordering point a format relies on
   * before it references new metadata; a no-op with `cache=unsafe`.
   */
  flushSync(): void {
    if (this.readOnly || this.#closed || this.#noFlush) return;
    try {
      this.#host.datasync();
    } catch (e) {
      // A character device (/dev/null) has nothing to make durable and answers EINVAL.
      if (this.driver === "host_device" && (e as { code?: string }).code === "EINVAL") return;
      throw hostIoError(e, `Could not flush '${this.filename}'`);
    }
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return Promise.resolve(this.blockStatusSync(offset, bytes));
  }

  /** Data/hole status from the host's SEEK_DATA/SEEK_HOLE; all data where the host cannot say. */
  blockStatusSync(offset: number, bytes: number): BlockStatus {
    if (offset >= this.#size) {
      // Past the end (the tail of a sector-rounded length): a hole to the end of the request.
      return { bytes: Math.max(1, bytes), allocated: true, data: false, zero: true };
    }
    const end = Math.min(offset + bytes, this.#size);
    const fd = this.#host.fd();
    const data = fd === null ? null : seekDataHole(fd, offset, SEEK_DATA);
    if (data === null) {
      return {
        bytes: end - offset,
        allocated: true,
        data: true,
        zero: false,
        hostOffset: offset,
        file: this,
      };
    }
    if (data === -1 || data > offset) {
      // A hole up to the next data (or to the end of the file).
      const holeEnd = data === -1 ? this.#size : data;
      return {
        bytes: Math.min(end, holeEnd) - offset,
        allocated: true,
        data: false,
        zero: true,
      };
    }
    const hole = seekDataHole(fd!, offset, SEEK_HOLE);
    const dataEnd = hole === null || hole < 0 ? this.#size : hole;
    return {
      bytes: Math.min(end, Math.max(dataEnd, offset + 1)) - offset,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: offset,
      file: this,
    };
  }

  truncate(sizeBytes: number, options: TruncateOptions = {}): Promise<void> {
    this.#checkWritable();
    const old = this.#size;
    if (sizeBytes < old && options.shrink === false) {
      throw new NotSupportedError("Use the --shrink option to perform a shrink operation");
    }
    this.#truncateSync(sizeBytes);
    if (sizeBytes > old) preallocate(this, old, sizeBytes - old, options.preallocation ?? "off");
    return Promise.resolve();
  }

  #truncateSync(sizeBytes: number): void {
    try {
      this.#host.truncate(sizeBytes);
    } catch (e) {
      throw hostIoError(e, `Could not resize '${this.filename}'`);
    }
    this.#size = sizeBytes;
  }

  allocatedBytes(): number {
    try {
      return this.#host.allocatedBytes();
    } catch {
      return -1;
    }
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const closeFd = () => {
      // The locks go with their descriptor; the data is all written by now.
      this.#lock?.close();
      try {
        this.#host.close();
      } catch {
        // Already closed by the host; nothing left to release.
      }
    };
    if (this.#inFlight.size === 0) {
      closeFd();
      return Promise.resolve();
    }
    // A transfer on the thread pool still uses the descriptor.
    return this.#drain().then(closeFd);
  }

  #checkWritable(): void {
    if (this.readOnly) throw new IoError(`Cannot write to read-only '${this.filename}'`);
  }
}

/** Allocates `[offset, offset+bytes)` of a file node as `falloc` or `full` asks. */
export function preallocate(
  node: FileNode,
  offset: number,
  bytes: number,
  mode: string,
): void {
  if (bytes <= 0 || mode === "off" || mode === "metadata") return;
  if (mode === "falloc") {
    if (node.fallocate(0, offset, bytes)) return;
    // No fallocate here: fall back to writing zeroes, which allocates the same way.
  }
  for (let done = 0; done < bytes;) {
    const n = Math.min(bytes - done, ZERO_CHUNK_BYTES);
    node.writeSync(offset + done, zeroes(n));
    done += n;
  }
}

/**
 * Opens `filename` for the `file` protocol (a regular file) or `host_device` (a block or
 * character device), checking its kind after the open, as QEMU's file-posix does: a
 * directory opened read-write fails in the open ("Is a directory"), one opened read-only
 * fails the kind check. With `autoReadOnly`, a refused read-write open is tried read-only.
 */
export function openHostNode(
  filename: string,
  options: ProtocolOpenOptions,
  driver: HostProtocol,
): FileNode {
  let readOnly = options.readOnly;
  let host: HostFile;
  try {
    host = HostFile.open(filename, readOnly ? "read" : "write");
  } catch (e) {
    if (readOnly || !options.autoReadOnly) throw hostIoError(e, `Could not open '${filename}'`);
    try {
      host = HostFile.open(filename, "read");
      readOnly = true;
    } catch (again) {
      throw hostIoError(again, `Could not open '${filename}'`);
    }
  }
  let kindOk: boolean;
  try {
    const st = host.stat();
    kindOk = driver === "file" ? st.isFile : st.isBlockDevice === true || st.isCharDevice === true;
  } catch (e) {
    host.close();
    throw hostIoError(e, `Could not stat '${filename}'`);
  }
  if (!kindOk) {
    host.close();
    throw new IoError(
      driver === "file"
        ? `'file' driver requires '${filename}' to be a regular file`
        : `'host_device' driver requires '${filename}' to be either a character or block device`,
    );
  }
  const locking = (options.options?.locking as HostLocking | undefined) ?? "auto";
  return new FileNode(filename, host, readOnly, { noFlush: options.noFlush, driver, locking });
}

/**
 * Whether `filename` is a block or character device: QEMU's rule for giving a filename
 * without a driver to `host_device` rather than `file`.
 */
export function isHostDevice(filename: string): boolean {
  try {
    const st = Deno.statSync(filename);
    return st.isBlockDevice === true || st.isCharDevice === true;
  } catch {
    return false;
  }
}
