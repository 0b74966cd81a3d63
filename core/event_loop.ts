// The virtual clock, timers and deferred work; run() gives the CPUs slices between deadlines

import { HOST_ATTENTION } from "./host_attention.ts";

/**
 * What the loop runs: the machine's CPUs seen as one executor. The machine adapts
 * its CPU backends to this shape.
 */
export interface SliceExecutor {
  /**
   * Runs at most `maxInstructions` instructions and returns how many ran. May return
   * early: on HLT (then {@linkcode isIdle} is true), or after {@linkcode interrupt}.
   */
  runSlice(maxInstructions: number): number;
  /** True when no CPU can run until an interrupt arrives (all halted). */
  isIdle(): boolean;
  /** Instructions retired since the machine started (monotonic); reads mid-slice are exact. */
  instructionsRetired(): number;
  /** Asks the running slice to end at the next instruction boundary (optional). */
  interrupt?(): void;
}

/** Options of an {@linkcode EventLoop}. */
export interface EventLoopOptions {
  /**
   * Virtual nanoseconds one guest instruction takes (default 8, a 125 MIPS guest).
   * The virtual clock is driven by instructions retired, so a run is deterministic:
   * the same guest and inputs give the same clock readings on any host.
   */
  nsPerInstruction?: number;
  /**
   * When the CPUs are idle (HLT), wait for host time to reach the next deadline
   * instead of jumping to it, and wait for host input when nothing is scheduled.
   * Interactive runs want this; tests leave it off and time skips ahead.
   */
  realtime?: boolean;
  /** The longest slice in instructions (default 100000), which bounds input latency. */
  maxSliceInstructions?: number;
  /** Host milliseconds between turns of the host event loop while the guest runs (default 5). */
  hostYieldMs?: number;
  /**
   * The longest time in host milliseconds between polls of the host's sockets while the
   * guest runs (default 50). A turn of the host event loop runs timers and messages but
   * seldom polls sockets: Deno's runtime polls them when it waits, and otherwise only every
   * few dozen turns, so with a busy guest a QMP command waited ~0.25-0.45 s for its answer
   * (the monitor, QMP, user networking and chardev sockets all live on this thread). A poll
   * makes the runtime wait once: for a byte sent through a loopback connection to itself
   * (~0.03-0.1 ms), or without network permission for a 0 ms timer (~2 ms: the runtime's
   * timers fire on millisecond ticks). The loop polls as often as keeps the polls near 2%
   * of its time, every 5 ms at best.
   */
  hostPollMs?: number;
  /**
   * The clock is host time (accel=kvm: the guest runs at host speed and its own TSC is
   * the host's): {@linkcode EventLoop.nowNs} follows the host's monotonic clock from the
   * loop's creation, slices end at host deadlines and idle periods wait in host time.
   * Instructions retired then only count against run budgets. Off by default.
   */
  hostClock?: boolean;
}

/** Why {@linkcode EventLoop.run} returned. */
export type RunStopReason =
  /** {@linkcode EventLoop.requestStop} was called (reset, shutdown, guest exit, error). */
  | "stop"
  /** The instruction budget given to run() is used up. */
  | "budget"
  /** The virtual clock reached the `untilNs` given to run(). */
  | "until"
  /** The CPUs are halted and nothing can ever wake them (no timer, no I/O, no input source). */
  | "idle";

/** The result of {@linkcode EventLoop.run}. */
export interface RunResult {
  reason: RunStopReason;
  /** The argument of requestStop() when reason is `stop`. */
  detail?: string;
  /** Instructions this call ran. */
  instructions: number;
}

/** Options of {@linkcode EventLoop.run}. */
export interface RunOptions {
  /** Stop after about this many instructions (checked between slices, never overshot). */
  maxInstructions?: number;
  /** Stop when the virtual clock reaches this time. */
  untilNs?: number;
}

/**
 * A timer on the virtual clock. It fires once per arming, between CPU slices (or
 * at the exact instruction when the CPU honours {@linkcode SliceExecutor.interrupt});
 * a periodic device re-arms it from its callback.
 */
export class Timer {
  #loop: EventLoop;
  #deadlineNs = Infinity;
  readonly #callback: (nowNs: number) => void;

  /** Made by {@linkcode EventLoop.createTimer}. */
  constructor(loop: EventLoop, readonly name: string, callback: (nowNs: number) => void) {
    this.#loop = loop;
    this.#callback = callback;
  }

  /** The virtual time the timer fires at, or Infinity when not armed. */
  get deadlineNs(): number {
    return this.#deadlineNs;
  }

  /** True when armed. */
  get armed(): boolean {
    return this.#deadlineNs !== Infinity;
  }

  /** Arms (or re-arms) the timer for an absolute virtual time. */
  arm(deadlineNs: number): void {
    this.#deadlineNs = deadlineNs;
    this.#loop._timerChanged(this);
  }

  /** Arms the timer `delayNs` after now. */
  armIn(delayNs: number): void {
    this.arm(this.#loop.nowNs + delayNs);
  }

  /** Disarms the timer. */
  cancel(): void {
    this.#deadlineNs = Infinity;
  }

  /** @internal Called by the loop when the deadline has passed. */
  _fire(nowNs: number): void {
    this.#deadlineNs = Infinity;
    this.#callback(nowNs);
  }
}

/**
 * The virtual clock and the main loop of a machine.
 *
 * The clock counts virtual nanoseconds from machine start; it advances by
 * `nsPerInstruction` for each instruction the CPUs retire, and jumps to the next
 * timer deadline when every CPU is halted. {@linkcode run} alternates CPU slices
 * (each one up to the next deadline) with firing timers, running deferred work and,
 * every few host milliseconds or whenever host I/O is in flight, a turn of the host
 * event loop so that async disk and console I/O complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventLoop } from "./event_loop.ts";
 *
 * const loop = new EventLoop();
 * const fired: number[] = [];
 * const timer = loop.createTimer("tick", (now) => fired.push(now));
 * timer.armIn(1000);
 * loop.advanceTo(5000);
 * assert.deepEqual(fired, [1000]);
 * assert.equal(loop.nowNs, 5000);
 * ```
 */
export class EventLoop {
  /** Virtual nanoseconds per guest instruction. */
  readonly nsPerInstruction: number;
  /** True when idle time is spent in host time (see {@linkcode EventLoopOptions.realtime}). */
  readonly realtime: boolean;
  /** True when the clock is host time (see {@linkcode EventLoopOptions.hostClock}). */
  readonly hostClock: boolean;
  #hostOriginMs = performance.now();
  #heldAtMs: number | null = null;
  readonly #maxSlice: number;
  readonly #hostYieldMs: number;
  readonly #hostPollMs: number;
  #baseNs = 0;
  #executor: SliceExecutor | null = null;
  #sliceStartRetired = 0;
  #sliceEndNs = Infinity;
  #timers: Timer[] = [];
  #deferred: (() => void)[] = [];
  #pendingIo = 0;
  #hostSources = 0;
  #stopDetail: string | null = null;
  #wake: (() => void) | null = null;
  #woken = false;
  #running = false;
  readonly #attention = new Int32Array(HOST_ATTENTION);

  constructor(options: EventLoopOptions = {}) {
    this.nsPerInstruction = options.nsPerInstruction ?? 8;
    this.hostClock = options.hostClock ?? false;
    this.realtime = (options.realtime ?? false) || this.hostClock;
    this.#maxSlice = options.maxSliceInstructions ?? 100_000;
    this.#hostYieldMs = options.hostYieldMs ?? 5;
    this.#hostPollMs = options.hostPollMs ?? 50;
    if (!(this.nsPerInstruction > 0)) {
      throw new RangeError(`nsPerInstruction must be positive: got ${this.nsPerInstruction}`);
    }
  }

  /** The virtual time in nanoseconds, exact to the instruction even inside a slice. */
  get nowNs(): number {
    if (this.hostClock) {
      // Monotonic: advanceTo() may have moved the clock past host time (device tests).
      const hostNs = ((this.#heldAtMs ?? performance.now()) - this.#hostOriginMs) * 1e6;
      if (hostNs > this.#baseNs) this.#baseNs = hostNs;
      return this.#baseNs;
    }
    const ex = this.#executor;
    if (ex === null) return this.#baseNs;
    return this.#baseNs +
      (ex.instructionsRetired() - this.#sliceStartRetired) * this.nsPerInstruction;
  }

  /**
   * Stops a host clock while the machine is paused (the monitor's `stop`), until
   * {@linkcode releaseClock}. A virtual clock needs neither: it only moves in run().
   */
  holdClock(): void {
    if (this.hostClock && this.#heldAtMs === null) this.#heldAtMs = performance.now();
  }

  /** Lets a held host clock run again from where it stood. */
  releaseClock(): void {
    if (this.#heldAtMs === null) return;
    this.#hostOriginMs += performance.now() - this.#heldAtMs;
    this.#heldAtMs = null;
  }

  /** Makes a timer; it is not armed. */
  createTimer(name: string, callback: (nowNs: number) => void): Timer {
    const timer = new Timer(this, name, callback);
    this.#timers.push(timer);
    return timer;
  }

  /** Forgets a timer for good (a device being removed). */
  deleteTimer(timer: Timer): void {
    timer.cancel();
    this.#timers = this.#timers.filter((t) => t !== timer);
  }

  /** @internal A timer was armed: end the slice early if it is due before the slice ends. */
  _timerChanged(timer: Timer): void {
    if (this.#executor && timer.deadlineNs < this.#sliceEndNs) this.#executor.interrupt?.();
    this.wake();
  }

  /** The earliest armed deadline, or Infinity. */
  nextDeadlineNs(): number {
    let next = Infinity;
    for (const t of this.#timers) if (t.deadlineNs < next) next = t.deadlineNs;
    return next;
  }

  /** Runs `fn` between slices, before timers (QEMU's bottom half). */
  defer(fn: () => void): void {
    this.#deferred.push(fn);
    this.#executor?.interrupt?.();
    this.wake();
  }

  /**
   * Tracks host I/O a device started (a disk read): while any is in flight the loop
   * turns the host event loop after every slice, and does not report `idle`.
   *
   * @returns the same promise
   */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#pendingIo++;
    const done = () => {
      this.#pendingIo--;
      this.wake();
    };
    promise.then(done, done);
    return promise;
  }

  /** Host I/O operations in flight. */
  get pendingIo(): number {
    return this.#pendingIo;
  }

  /**
   * Registers a host input source (a console reading stdin) that may wake a halted
   * guest at any time; while one is registered the loop waits instead of reporting
   * `idle`.
   *
   * @returns a function that unregisters it
   */
  addHostSource(): () => void {
    this.#hostSources++;
    let done = false;
    return () => {
      if (!done) this.#hostSources--;
      done = true;
    };
  }

  /** Wakes a loop waiting in an idle period (host input arrived, an IRQ was raised). */
  wake(): void {
    this.#woken = true;
    const w = this.#wake;
    if (w) {
      this.#wake = null;
      w();
    }
  }

  /**
   * Asks {@linkcode run} to return at the end of the current slice with reason `stop`.
   * The first request wins, except that any other request replaces a pending `pause`
   * (a quit or reset sent to a paused machine must not be lost behind it), and any but
   * `pause` replaces a pending `reset` (a quit right after a reset still quits, as QEMU,
   * whose main loop looks at shutdown requests before reset requests).
   */
  requestStop(detail = "stop"): void {
    const pending = this.#stopDetail;
    if (pending === null || pending === "pause" || (pending === "reset" && detail !== "pause")) {
      this.#stopDetail = detail;
    }
    this.#executor?.interrupt?.();
    this.wake();
  }

  /** True while a stop request is pending. */
  get stopRequested(): boolean {
    return this.#stopDetail !== null;
  }

  /**
   * Moves the clock forward to `ns` without running a CPU, firing timers in deadline
   * order (for device tests and for idle periods).
   */
  advanceTo(ns: number): void {
    if (this.#running && this.#executor) throw new Error("advanceTo() during a slice");
    for (;;) {
      this.#runDeferred();
      const next = this.nextDeadlineNs();
      if (next > ns) break;
      if (next > this.#baseNs) this.#baseNs = next;
      this.#fireDue();
    }
    if (ns > this.#baseNs) this.#baseNs = ns;
    this.#runDeferred();
  }

  /** {@linkcode advanceTo} by a delta. */
  advanceBy(ns: number): void {
    this.advanceTo(this.nowNs + ns);
  }

  /**
   * Runs the guest: CPU slices up to the next deadline, timers, deferred work and host
   * I/O, until a stop request, the budget, `untilNs`, or an idle machine.
   */
  async run(executor: SliceExecutor, options: RunOptions = {}): Promise<RunResult> {
    if (this.#running) throw new Error("EventLoop.run() is already running");
    this.#running = true;
    const budget = options.maxInstructions ?? Infinity;
    const untilNs = options.untilNs ?? Infinity;
    let ran = 0;
    let lastYield = performance.now();
    let lastPoll = lastYield;
    // What a poll costs (a running average) sets how often to poll.
    let pollCostMs = 0;
    // Made at the first poll (runs shorter than a poll period never need it).
    let poller: SocketPoller | null | undefined;
    // Realtime idling maps virtual time to host time from this anchor.
    let anchorHostMs = lastYield;
    let anchorNs = this.#baseNs;
    try {
      for (;;) {
        if (this.hostClock) void this.nowNs; // brings the clock up to host time
        this.#runDeferred();
        this.#fireDue();
        if (this.#stopDetail !== null) {
          const detail = this.#stopDetail;
          this.#stopDetail = null;
          return { reason: "stop", detail, instructions: ran };
        }
        if (ran >= budget) return { reason: "budget", instructions: ran };
        if (this.#baseNs >= untilNs) return { reason: "until", instructions: ran };

        if (!executor.isIdle()) {
          const next = Math.min(this.nextDeadlineNs(), untilNs);
          let slice = Math.ceil((next - this.#baseNs) / this.nsPerInstruction);
          if (!(slice < this.#maxSlice)) slice = this.#maxSlice;
          if (slice < 1) slice = 1;
          if (slice > budget - ran) slice = budget - ran;
          this.#sliceEndNs = this.#baseNs + slice * this.nsPerInstruction;
          this.#executor = executor;
          this.#sliceStartRetired = executor.instructionsRetired();
          let done = 0;
          try {
            done = executor.runSlice(slice);
          } finally {
            const retired = executor.instructionsRetired() - this.#sliceStartRetired;
            if (!this.hostClock) this.#baseNs += retired * this.nsPerInstruction;
            this.#executor = null;
            this.#sliceEndNs = Infinity;
            ran += retired > 0 ? retired : done;
          }
          const nowMs = performance.now();
          const pollEveryMs = Math.min(this.#hostPollMs, Math.max(5, 50 * pollCostMs));
          // A socket thread posted bytes for this thread (core/host_attention.ts).
          const attention = this.#attention[0] !== 0;
          if (attention) Atomics.store(this.#attention, 0, 0);
          if (nowMs - lastPoll >= pollEveryMs) {
            if (poller === undefined) poller = await SocketPoller.open();
            await (poller ? poller.poll() : timerPoll());
            lastYield = lastPoll = performance.now();
            pollCostMs += (lastPoll - nowMs - pollCostMs) / 4;
          } else if (attention) {
            // A worker's message is delivered by any macrotask turn (no socket poll is
            // needed); the second turn lets the promises its handler started settle before
            // this loop runs slices again (they may share the first turn's microtasks).
            await hostTurn();
            await hostTurn();
            lastYield = performance.now();
          } else if (this.#pendingIo > 0 || nowMs - lastYield >= this.#hostYieldMs) {
            await hostTurn();
            lastYield = performance.now();
          }
          continue;
        }

        // Every CPU is halted: move time to the next event.
        const next = Math.min(this.nextDeadlineNs(), untilNs);
        if (this.#deferred.length > 0) continue;
        if (next === Infinity && this.#pendingIo === 0 && this.#hostSources === 0) {
          return { reason: "idle", instructions: ran };
        }
        if (this.hostClock) {
          // The clock moves by itself: sleep until the deadline, I/O or input.
          const waitMs = (next - this.nowNs) / 1e6;
          if (waitMs > 0.05) {
            await this.#sleep(waitMs);
            lastYield = performance.now();
          }
          continue;
        }
        if (this.realtime || next === Infinity) {
          // Wait in host time for the deadline, for I/O, or for input.
          const nowMs = performance.now();
          const hostNs = anchorNs + (nowMs - anchorHostMs) * 1e6;
          if (hostNs > this.#baseNs + 50e6 || hostNs < this.#baseNs - 1e9) {
            // The guest fell behind host time (a slow interpreter) or ran far ahead of
            // it: re-anchor rather than rush or stall the clock.
            anchorHostMs = nowMs;
            anchorNs = this.#baseNs;
          }
          const targetMs = next === Infinity ? Infinity : anchorHostMs + (next - anchorNs) / 1e6;
          const waitMs = targetMs - nowMs;
          if (waitMs > 0.05) {
            const woken = await this.#sleep(waitMs);
            lastYield = performance.now();
            if (woken) {
              // Time passed in the host: let the clock follow it, up to the deadline.
              const hostNs = anchorNs + (lastYield - anchorHostMs) * 1e6;
              const to = Math.min(next, hostNs);
              if (to > this.#baseNs) this.#baseNs = to;
              continue;
            }
          }
        } else if (this.#pendingIo > 0) {
          await hostTurn();
          lastYield = performance.now();
          if (executor.isIdle() && this.#pendingIo > 0 && this.#deferred.length === 0) {
            // I/O in flight and a halted guest: give the host real time rather than
            // skipping virtual time past a completion the guest is waiting for.
            await this.#sleep(1);
            continue;
          }
          continue;
        }
        if (next !== Infinity && next > this.#baseNs) this.#baseNs = next;
      }
    } finally {
      poller?.close();
      this.#running = false;
    }
  }

  // --- savevm/loadvm (core/vmstate.ts) ---

  /** True while {@linkcode run} is running (false once a paused machine parked). */
  get running(): boolean {
    return this.#running;
  }

  /** Runs the deferred work queued while the loop was not running (before a savevm). */
  flushDeferred(): void {
    this.#runDeferred();
  }

  /** Every timer's name and deadline (Infinity when disarmed), in creation order. */
  saveTimers(): { name: string; deadlineNs: number }[] {
    return this.#timers.map((t) => ({ name: t.name, deadlineNs: t.deadlineNs }));
  }

  /**
   * Re-arms timers from {@linkcode saveTimers}: the k-th timer of a name takes the k-th
   * saved deadline of that name (the same command line makes the same timers in the
   * same order); a timer with no saved counterpart is left alone.
   */
  restoreTimers(saved: readonly { name: string; deadlineNs: number }[]): void {
    const byName = new Map<string, number[]>();
    for (const s of saved) {
      const list = byName.get(s.name) ?? [];
      list.push(s.deadlineNs);
      byName.set(s.name, list);
    }
    const seen = new Map<string, number>();
    for (const t of this.#timers) {
      const k = seen.get(t.name) ?? 0;
      seen.set(t.name, k + 1);
      const deadline = byName.get(t.name)?.[k];
      if (deadline === undefined) continue;
      if (deadline === Infinity) t.cancel();
      else t.arm(deadline);
    }
  }

  /** Sets the clock to `ns` (loadvm); only between runs. */
  restoreClock(ns: number): void {
    if (this.#running && this.#executor) throw new Error("restoreClock() during a slice");
    if (!Number.isFinite(ns) || ns < 0) throw new RangeError(`bad clock value ${ns}`);
    if (this.hostClock) {
      const nowMs = this.#heldAtMs ?? performance.now();
      this.#hostOriginMs = nowMs - ns / 1e6;
    }
    this.#baseNs = ns;
  }

  #fireDue(): void {
    // Timers may re-arm themselves or others; loop until nothing is due.
    for (let guard = 0; guard < 10000; guard++) {
      let due: Timer | null = null;
      for (const t of this.#timers) {
        if (t.deadlineNs <= this.#baseNs && (due === null || t.deadlineNs < due.deadlineNs)) {
          due = t;
        }
      }
      if (due === null) return;
      due._fire(this.#baseNs);
    }
  }

  #runDeferred(): void {
    while (this.#deferred.length > 0) {
      const work = this.#deferred;
      this.#deferred = [];
      for (const fn of work) fn();
    }
  }

  /** Sleeps up to `ms` host milliseconds; resolves true when woken early. */
  #sleep(ms: number): Promise<boolean> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const id = ms === Infinity ? undefined : setTimeout(() => {
        this.#wake = null;
        resolve(false);
      }, ms);
      this.#wake = () => {
        if (id !== undefined) clearTimeout(id);
        this.#woken = false;
        resolve(true);
      };
    });
  }
}

/**
 * One turn of the host event loop, so completed async I/O runs its callbacks. A
 * MessageChannel round trip costs tens of microseconds where setTimeout(0) is clamped
 * to milliseconds once nested.
 */
function hostTurn(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(0);
  });
}

/**
 * A wait of the host event loop for a 0 ms timer: waiting, the runtime polls its sockets
 * (see {@linkcode EventLoopOptions.hostPollMs}).
 */
function timerPoll(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * A loopback TCP connection to itself. Awaiting a byte sent through it leaves the runtime
 * nothing to do but wait on its sockets, so it polls them all, and the byte is there at
 * once (see {@linkcode EventLoopOptions.hostPollMs}).
 */
class SocketPoller {
  readonly #out: Deno.TcpConn;
  readonly #in: Deno.TcpConn;
  readonly #byte = new Uint8Array([1]);
  readonly #buffer = new Uint8Array(64);

  private constructor(out: Deno.TcpConn, into: Deno.TcpConn) {
    this.#out = out;
    this.#in = into;
  }

  /** The connection, or null where it cannot be made (no permission to use the network). */
  static async open(): Promise<SocketPoller | null> {
    const permission = Deno.permissions.querySync({ name: "net", host: "127.0.0.1" });
    if (permission.state !== "granted") return null;
    let listener: Deno.TcpListener | null = null;
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const [out, into] = await Promise.all([
        Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
        listener.accept(),
      ]);
      out.setNoDelay(true);
      return new SocketPoller(out, into);
    } catch {
      return null;
    } finally {
      listener?.close();
    }
  }

  async poll(): Promise<void> {
    await this.#out.write(this.#byte);
    await this.#in.read(this.#buffer);
  }

  close(): void {
    this.#out.close();
    this.#in.close();
  }
}
