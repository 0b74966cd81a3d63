// Test helpers for the block layer: in-memory stores and protocol nodes

import type { BlockNode, BlockStatus, TruncateOptions } from "./driver.ts";
import type { MetadataStore } from "./metadata_cache.ts";

/** An in-memory {@linkcode MetadataStore} that counts its writes and syncs. */
export interface MemoryStore extends MetadataStore {
  /** The backing bytes (grows on write). */
  bytes(): Uint8Array;
  /** Writes so far, as `[offset, length]`. */
  writes: [number, number][];
  /** How many times `syncSync` ran. */
  syncs: number;
}

/** Makes a {@linkcode MemoryStore} of `sizeBytes` zero bytes. */
export function memoryStore(sizeBytes = 1 << 16): MemoryStore {
  let buf = new Uint8Array(sizeBytes);
  const store: MemoryStore = {
    bytes: () => buf,
    writes: [],
    syncs: 0,
    readSync(offset, out) {
      out.fill(0);
      out.set(buf.subarray(offset, Math.min(buf.length, offset + out.length)));
    },
    writeSync(offset, data) {
      if (offset + data.length > buf.length) {
        const grown = new Uint8Array(Math.max(offset + data.length, buf.length * 2));
        grown.set(buf);
        buf = grown;
      }
      buf.set(data, offset);
      store.writes.push([offset, data.length]);
    },
    syncSync() {
      store.syncs++;
    },
  };
  return store;
}

/**
 * An in-memory protocol node with the same synchronous positional I/O
 * (`readSync`/`writeSync`) as the file protocol's node.
 */
export class MemoryFileNode implements BlockNode {
  readonly driver = "file";
  readonly file = null;
  readonly backing = null;
  #buf: Uint8Array;
  #size: number;

  constructor(readonly filename = "memory", sizeBytes = 0, readonly readOnly = false) {
    this.#buf = new Uint8Array(Math.max(sizeBytes, 4096));
    this.#size = sizeBytes;
  }

  /** The file's bytes. */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#size);
  }
  size(): number {
    return this.#size;
  }
  readSync(offset: number, out: Uint8Array): void {
    out.fill(0);
    if (offset < this.#size) {
      out.set(this.#buf.subarray(offset, Math.min(this.#size, offset + out.length)));
    }
  }
  writeSync(offset: number, data: Uint8Array): void {
    if (this.readOnly) throw new Error("read-only");
    this.#grow(offset + data.length);
    this.#buf.set(data, offset);
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    this.readSync(offset, buf);
    return Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
    return Promise.resolve();
  }
  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#grow(offset + bytes);
    this.#buf.fill(0, offset, offset + bytes);
    return Promise.resolve();
  }
  discard(offset: number, bytes: number): Promise<void> {
    const end = Math.min(this.#size, offset + bytes);
    if (end > offset) this.#buf.fill(0, offset, end);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    return Promise.resolve({ bytes, allocated: true, data: true, zero: false, hostOffset: offset });
  }
  truncate(sizeBytes: number, _options?: TruncateOptions): Promise<void> {
    this.#grow(sizeBytes);
    if (sizeBytes < this.#size) this.#buf.fill(0, sizeBytes, this.#size);
    this.#size = sizeBytes;
    return Promise.resolve();
  }
  allocatedBytes(): number {
    return this.#size;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  #grow(end: number): void {
    if (end > this.#buf.length) {
      const grown = new Uint8Array(Math.max(end, this.#buf.length * 2));
      grown.set(this.#buf);
      this.#buf = grown;
    }
    if (end > this.#size) this.#size = end;
  }
}
