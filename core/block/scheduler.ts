// The block scheduler: bounded queue depth, serialised overlapping writes, ordered flushes, counters

import type { BlockNode } from "./driver.ts";

/** Request kinds the scheduler counts. */
export type RequestKind = "read" | "write" | "zero" | "discard" | "flush";

/** Counters of a {@linkcode BlockScheduler}. */
export interface SchedulerStats {
  reads: number;
  writes: number;
  zeroes: number;
  discards: number;
  flushes: number;
  bytesRead: number;
  bytesWritten: number;
  failed: number;
  /** Requests that had to wait for a queue slot. */
  queued: number;
  /** Writes that waited for an overlapping write to finish. */
  serialised: number;
  /** The most requests in flight at once. */
  maxInFlight: number;
  /** Bytes discarded. */
  bytesDiscarded: number;
  /** Failed requests by kind (write-zeroes count as writes). */
  failedReads: number;
  failedWrites: number;
  failedFlushes: number;
  failedDiscards: number;
  /**
   * Wall-clock nanoseconds requests took from submission to completion, by kind
   * (write-zeroes count as writes), as QEMU's block accounting on its realtime clock.
   */
  readNs: number;
  writeNs: number;
  flushNs: number;
  discardNs: number;
  /** The end of the highest range written or zeroed (QEMU's wr_highest_offset). */
  writeHighestOffset: number;
  /** `performance.now()` in ms when the last request finished, or 0 (QEMU's last access). */
  lastAccessMs: number;
}

interface InFlight {
  readonly kind: RequestKind;
  readonly start: number;
  readonly end: number;
  /** Who waits for this request; created only when someone does (rare at queue depth 1). */
  waiters: (() => void)[] | null;
}

function whenDone(entry: InFlight): Promise<void> {
  return new Promise<void>((resolve) => (entry.waiters ??= []).push(resolve));
}

/**
 * Queues requests to one node: at most `maxQueueDepth` run at once (others wait in
 * FIFO order); a write, write-zeroes or discard waits for every in-flight write whose
 * cluster-aligned range overlaps it (so two allocating writes to one cluster never
 * race); a flush waits for every request submitted before it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlockScheduler } from "./scheduler.ts";
 *
 * const order: string[] = [];
 * const s = new BlockScheduler({ clusterSize: 4096 }, { maxQueueDepth: 4 });
 * await Promise.all([
 *   s.submit("write", 0, 512, async () => { await new Promise((r) => setTimeout(r, 5)); order.push("w1"); }),
 *   s.submit("write", 1024, 512, () => { order.push("w2"); return Promise.resolve(); }),
 * ]);
 * assert.deepEqual(order, ["w1", "w2"]); // same cluster: the second write waited
 * ```
 */
export class BlockScheduler {
  readonly stats: SchedulerStats = {
    reads: 0,
    writes: 0,
    zeroes: 0,
    discards: 0,
    flushes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    failed: 0,
    queued: 0,
    serialised: 0,
    maxInFlight: 0,
    bytesDiscarded: 0,
    failedReads: 0,
    failedWrites: 0,
    failedFlushes: 0,
    failedDiscards: 0,
    readNs: 0,
    writeNs: 0,
    flushNs: 0,
    discardNs: 0,
    writeHighestOffset: 0,
    lastAccessMs: 0,
  };
  #inFlight = new Set<InFlight>();
  #waiters: (() => void)[] = [];
  #granularity: number;
  readonly maxQueueDepth: number;

  constructor(
    node: Pick<BlockNode, "clusterSize">,
    options: { maxQueueDepth?: number } = {},
  ) {
    this.#granularity = Math.max(512, node.clusterSize ?? 512);
    this.maxQueueDepth = Math.max(1, options.maxQueueDepth ?? 64);
  }

  /** Requests currently running. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Runs `fn` as a request of `kind` over `[offset, offset+bytes)` under the scheduling rules. */
  async submit(
    kind: RequestKind,
    offset: number,
    bytes: number,
    fn: () => Promise<void>,
  ): Promise<void> {
    const g = this.#granularity;
    const started = performance.now();
    const entry: InFlight = {
      kind,
      start: kind === "flush" ? 0 : Math.floor(offset / g) * g,
      end: kind === "flush" ? Infinity : Math.ceil((offset + bytes) / g) * g,
      waiters: null,
    };
    // Fast path (the queue depth 1 case): nothing in flight, nothing to wait for.
    if (this.#inFlight.size === 0) this.#inFlight.add(entry);
    else await this.#admit(entry);
    if (this.#inFlight.size > this.stats.maxInFlight) this.stats.maxInFlight = this.#inFlight.size;
    try {
      await fn();
      this.#count(kind, offset, bytes);
    } catch (e) {
      this.#countFailed(kind);
      throw e;
    } finally {
      this.#time(kind, started);
      this.#inFlight.delete(entry);
      if (entry.waiters) { for (const w of entry.waiters) w(); }
      if (this.#waiters.length) this.#wake();
    }
  }

  /** Waits until `entry` may start, then adds it to the in-flight set in the same step. */
  async #admit(entry: InFlight): Promise<void> {
    // A flush covers exactly the requests submitted before it.
    const before = entry.kind === "flush" ? [...this.#inFlight] : [];
    let waitedForOverlap = false;
    let waitedForSlot = false;
    for (;;) {
      const blocker = entry.kind === "flush"
        ? before.find((r) => this.#inFlight.has(r))
        : entry.kind === "read"
        ? undefined
        : [...this.#inFlight].find((r) =>
          r.kind !== "read" && r.kind !== "flush" && r.start < entry.end && entry.start < r.end
        );
      if (blocker) {
        waitedForOverlap ||= entry.kind !== "flush";
        await whenDone(blocker);
        continue;
      }
      if (this.#inFlight.size >= this.maxQueueDepth) {
        waitedForSlot = true;
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
        continue;
      }
      // Checked and admitted with no await in between, so no other request slips in.
      this.#inFlight.add(entry);
      if (waitedForOverlap) this.stats.serialised++;
      if (waitedForSlot) this.stats.queued++;
      return;
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #time(kind: RequestKind, started: number): void {
    const s = this.stats;
    const now = performance.now();
    const ns = Math.round((now - started) * 1e6);
    if (kind === "read") s.readNs += ns;
    else if (kind === "flush") s.flushNs += ns;
    else if (kind === "discard") s.discardNs += ns;
    else s.writeNs += ns;
    s.lastAccessMs = now;
  }

  #countFailed(kind: RequestKind): void {
    const s = this.stats;
    s.failed++;
    if (kind === "read") s.failedReads++;
    else if (kind === "flush") s.failedFlushes++;
    else if (kind === "discard") s.failedDiscards++;
    else s.failedWrites++;
  }

  #count(kind: RequestKind, offset: number, bytes: number): void {
    const s = this.stats;
    if (kind === "write" || kind === "zero") {
      s.writeHighestOffset = Math.max(s.writeHighestOffset, offset + bytes);
    }
    switch (kind) {
      case "read":
        s.reads++;
        s.bytesRead += bytes;
        break;
      case "write":
        s.writes++;
        s.bytesWritten += bytes;
        break;
      case "zero":
        s.zeroes++;
        break;
      case "discard":
        s.discards++;
        s.bytesDiscarded += bytes;
        break;
      case "flush":
        s.flushes++;
        break;
    }
  }

  /** Waits until every request in flight has finished. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight].map(whenDone));
  }
}
