// An open host file: a Deno.FsFile, joined by a libc descriptor (FFI) once one pays off

import {
  closeFd,
  fdatasyncFd,
  ftruncateFd,
  O_RDONLY,
  O_RDWR,
  openFd,
  pread,
  pwrite,
} from "./_posix.ts";

/**
 * Reads and writes through Deno.FsFile before the libc descriptor takes over. Loading
 * libc through FFI costs about 1 ms per symbol (10 ms for ours), more than a short
 * command such as `img info` spends on I/O; a positional `pread` through FFI then
 * saves about 1.5 us per call over Deno's seek + read, which a long run earns back.
 */
const CALLS_BEFORE_FFI = 1024;

/**
 * How {@linkcode HostFile.open} opens: read-only, read-write, or created where missing
 * (not truncated: the creator locks the file first, then empties it).
 */
export type HostOpenMode = "read" | "write" | "create";

/**
 * The host calls the file protocol makes. Nothing here loads node:fs, whose
 * compatibility layer costs more at start-up than all of `vmkit img info` else does.
 * Errors carry node:fs-style `code`s (ENOENT, EACCES...) for `hostIoError`.
 */
export class HostFile {
  #file: Deno.FsFile;
  #writable: boolean;
  /** The libc descriptor: undefined until wanted, null where there is none (no FFI). */
  #fd: number | null | undefined;
  #calls = 0;

  private constructor(readonly path: string, file: Deno.FsFile, writable: boolean) {
    this.#file = file;
    this.#writable = writable;
  }

  /** Opens (or with "create", creates or truncates) a host file. */
  static open(path: string, mode: HostOpenMode): HostFile {
    const file = Deno.openSync(path, {
      read: true,
      write: mode !== "read",
      create: mode === "create",
      mode: 0o644,
    });
    return new HostFile(path, file, mode !== "read");
  }

  /**
   * A libc descriptor of the same file for fallocate, SEEK_DATA and ioctl (and for
   * positional I/O once it pays off), opened on first use; null without FFI.
   */
  fd(): number | null {
    if (this.#fd === undefined) {
      try {
        this.#fd = openFd(this.path, this.#writable ? O_RDWR : O_RDONLY);
      } catch {
        // Renamed or removed since it was opened: keep to the Deno file.
        this.#fd = null;
      }
    }
    return this.#fd;
  }

  #libcFd(): number | null {
    if (this.#fd !== undefined) return this.#fd;
    return ++this.#calls > CALLS_BEFORE_FFI ? this.fd() : null;
  }

  /** Reads at `offset` into `buf`; returns the bytes read (0 at the end of the file). */
  pread(buf: Uint8Array, offset: number): number {
    const fd = this.#libcFd();
    if (fd !== null) return pread(fd, buf, offset)!;
    this.#file.seekSync(offset, Deno.SeekMode.Start);
    return this.#file.readSync(buf) ?? 0;
  }

  /** Writes `data` at `offset`; returns the bytes written. */
  pwrite(data: Uint8Array, offset: number): number {
    const fd = this.#libcFd();
    if (fd !== null) return pwrite(fd, data, offset)!;
    this.#file.seekSync(offset, Deno.SeekMode.Start);
    return this.#file.writeSync(data);
  }

  /** The size in bytes (of a regular file or a block device). */
  size(): number {
    return this.#file.seekSync(0, Deno.SeekMode.End);
  }

  /** The open file's kind, size and times (`fstat`). */
  stat(): Deno.FileInfo {
    return this.#file.statSync();
  }

  /** Bytes the host allocated for the file (`st_blocks` * 512). */
  allocatedBytes(): number {
    return (this.#file.statSync().blocks ?? 0) * 512;
  }

  truncate(sizeBytes: number): void {
    if (typeof this.#fd === "number") ftruncateFd(this.#fd, sizeBytes);
    else this.#file.truncateSync(sizeBytes);
  }

  /** Makes written data durable (`fdatasync`; either descriptor flushes the same file). */
  datasync(): void {
    if (typeof this.#fd === "number") fdatasyncFd(this.#fd);
    else this.#file.syncDataSync();
  }

  close(): void {
    if (typeof this.#fd === "number") closeFd(this.#fd);
    this.#file.close();
  }
}
