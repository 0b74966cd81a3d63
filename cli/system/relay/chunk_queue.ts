// Bytes that arrive as messages (a WebSocket's, the socket thread's) read back as a byte stream, as Deno.Conn.read() does

/** Chunks queued as they arrive and read in order, waiting while there are none. */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #ended = false;
  #waiting: (() => void) | null = null;

  /** Bytes queued and not read yet. */
  get buffered(): number {
    return this.#chunks.reduce((n, c) => n + c.length, 0);
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#wake();
  }

  /** No more chunks will come: reads return what is queued, then null. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = null;
    w?.();
  }

  /** Up to `buf.length` bytes into `buf`; their count, or null once ended and empty. */
  async read(buf: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((r) => (this.#waiting = r));
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buf.length, chunk.length);
    buf.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }
}
