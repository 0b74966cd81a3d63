// BlockBackend: what devices and `img` commands hold; cache modes live here

import { UsageError } from "../errors.ts";
import type { BlockNode, BlockStatus } from "./driver.ts";
import { type CacheFlags, type CacheMode, parseCacheMode } from "./cache_mode.ts";
import { BlockScheduler } from "./scheduler.ts";

export { type CacheFlags, type CacheMode, parseCacheMode } from "./cache_mode.ts";

/**
 * The I/O a guest device needs from its disk: a size and byte-addressed reads,
 * writes and flushes, as TinyEMU's `BlockDevice`. A {@linkcode BlockBackend} gives it
 * with the cache mode applied; a bare {@linkcode BlockNode} also fits (tests).
 */
export interface BlockIo {
  size(): number;
  read(offset: number, buf: Uint8Array): Promise<void>;
  write(offset: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

/** Options of a {@linkcode BlockBackend}. */
export interface BlockBackendOptions {
  cache?: CacheMode;
  maxQueueDepth?: number;
}

/**
 * The front of a block graph: requests from a device or an `img` command go through
 * the scheduler to the root node, with the cache mode's flush rules applied.
 */
export class BlockBackend {
  readonly scheduler: BlockScheduler;
  readonly cache: CacheFlags;
  readonly cacheMode: CacheMode;

  constructor(readonly root: BlockNode, options: BlockBackendOptions = {}) {
    this.cacheMode = options.cache ?? "writeback";
    this.cache = parseCacheMode(this.cacheMode);
    this.scheduler = new BlockScheduler(root, { maxQueueDepth: options.maxQueueDepth });
  }

  /** Virtual size in bytes. */
  size(): number {
    return this.root.size();
  }

  get readOnly(): boolean {
    return this.root.readOnly;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.scheduler.submit("read", offset, buf.length, () => this.root.read(offset, buf));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.scheduler.submit("write", offset, data.length, async () => {
      await this.root.write(offset, data);
      if (this.cache.writethrough) await this.root.flush();
    });
  }

  /**
   * A synchronous {@linkcode write} to the root, where the root offers `writeSync` and
   * `flushSync` as writethrough needs; else undefined. It bypasses the scheduler (no
   * queue, no counters): only for a caller with no other request in flight, as `img
   * convert` copying on its main thread.
   */
  syncWriter(): ((offset: number, data: Uint8Array) => void) | undefined {
    const root = this.root;
    const writeSync = root.writeSync;
    if (!writeSync) return undefined;
    if (!this.cache.writethrough) return (offset, data) => writeSync.call(root, offset, data);
    const flushSync = root.flushSync;
    if (!flushSync) return undefined;
    return (offset, data) => {
      writeSync.call(root, offset, data);
      flushSync.call(root);
    };
  }

  /** Writes one compressed cluster (the format must support it). */
  writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    const root = this.root;
    if (!root.writeCompressed) {
      return Promise.reject(
        new UsageError(`Compression is not supported by format '${root.driver}'`),
      );
    }
    return this.scheduler.submit("write", offset, data.length, async () => {
      await root.writeCompressed!(offset, data);
      if (this.cache.writethrough) await root.flush();
    });
  }

  writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void> {
    return this.scheduler.submit("zero", offset, bytes, async () => {
      await this.root.writeZeroes(offset, bytes, options);
      if (this.cache.writethrough) await this.root.flush();
    });
  }

  discard(offset: number, bytes: number): Promise<void> {
    return this.scheduler.submit("discard", offset, bytes, () => this.root.discard(offset, bytes));
  }

  flush(): Promise<void> {
    if (this.cache.noFlush) return Promise.resolve();
    return this.scheduler.submit("flush", 0, 0, () => this.root.flush());
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return this.root.blockStatus(offset, bytes);
  }

  /** Drains, flushes (unless `unsafe`) and closes the graph. */
  async close(): Promise<void> {
    await this.scheduler.drain();
    if (!this.root.readOnly && !this.cache.noFlush) await this.root.flush();
    await this.root.close();
  }
}
