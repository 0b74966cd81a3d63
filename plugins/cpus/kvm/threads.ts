// KVM vCPUs on their own host threads (Workers): exits come back to the main thread's devices

import { RunExit } from "../../../core/cpu.ts";
import type { CpuExecutor } from "../../../core/cpu_executor.ts";
import type { Machine } from "../../../core/machine.ts";
import {
  BOX_ERRNO,
  BOX_SLOTS,
  BOX_STATE,
  BOX_TID,
  STATE_EXITED,
  STATE_PARKED,
  STATE_QUIT,
  STATE_RUN,
  type VcpuThreadStart,
} from "./_mailbox.ts";
import { KvmCpu } from "./vcpu.ts";

/** How long a new vCPU thread may take to start (module load included). */
const THREAD_START_MS = 30_000;

/** One vCPU's thread as the main thread sees it. */
interface VcpuThread {
  cpu: KvmCpu;
  worker: Worker;
  box: Int32Array;
  tid: number;
}

/**
 * Runs each vCPU of a KVM machine in its own Worker, as QEMU runs a thread per vCPU:
 * the threads sit in KVM_RUN at once, while the main thread waits on a doorbell and
 * serves their exits with the machine's devices (one exit at a time, so devices stay
 * single-threaded), then lets the thread run on. Guest RAM is host memory every thread
 * sees; only KVM touches it from the threads.
 *
 * A slice is host time up to the event loop's next deadline. When it ends (or a stop,
 * a reset or a pause is asked for) every thread is kicked out of KVM_RUN and parked, so
 * between slices the main thread owns every vCPU (registers, reset, the monitor).
 * Interrupts: with KVM's irqchip the kernel delivers them and wakes HLT itself; with
 * vmkit's, a kick makes the thread leave KVM_RUN so its exit injects the vector, and a
 * vCPU parked on HLT is let go when its interrupt source has something.
 */
export class KvmThreadExecutor implements CpuExecutor {
  #machine: Machine;
  #threads: VcpuThread[] = [];
  #bell = new Int32Array(new SharedArrayBuffer(4));
  #current = -1;
  #retired = 0;
  #noProgress = false;
  #stop = false;

  constructor(machine: Machine) {
    this.#machine = machine;
  }

  get current(): number {
    return this.#current < 0 ? 0 : this.#current;
  }

  #start(): void {
    if (this.#threads.length > 0) return;
    for (const backend of this.#machine.cpus) {
      if (!(backend instanceof KvmCpu)) {
        throw new TypeError("KvmThreadExecutor runs KVM vCPUs only");
      }
      const box = new Int32Array(new SharedArrayBuffer(BOX_SLOTS * 4));
      const worker = new Worker(new URL("./vcpu_thread.ts", import.meta.url).href, {
        type: "module",
      });
      const start: VcpuThreadStart = {
        fd: backend.fd,
        box: box.buffer as SharedArrayBuffer,
        bell: this.#bell.buffer as SharedArrayBuffer,
      };
      worker.postMessage(start);
      this.#threads.push({ cpu: backend, worker, box, tid: 0 });
    }
    // The threads start on their own while this one waits (a Worker loads its module on
    // its own thread).
    for (const t of this.#threads) {
      if (Atomics.wait(t.box, BOX_TID, 0, THREAD_START_MS) === "timed-out") {
        throw new Error("a KVM vCPU thread did not start");
      }
      t.tid = Atomics.load(t.box, BOX_TID);
    }
    globalThis.addEventListener("unload", () => this.close());
  }

  /** True when a parked vCPU may run: not halted (HLT, wait-for-SIPI) or woken. */
  #runnable(t: VcpuThread): boolean {
    return !t.cpu.halted || t.cpu.wakeable;
  }

  #resume(t: VcpuThread): void {
    t.cpu.enter();
    Atomics.store(t.box, BOX_STATE, STATE_RUN);
    Atomics.notify(t.box, BOX_STATE);
  }

  /** Serves a posted exit (the vCPU stays parked); false when the slice must end. */
  #serve(t: VcpuThread, index: number): boolean {
    this.#current = index;
    let exit: RunExit | null;
    try {
      exit = t.cpu.exited(t.box[BOX_ERRNO]);
    } finally {
      this.#current = -1;
    }
    Atomics.store(t.box, BOX_STATE, STATE_PARKED);
    if (exit === null || exit === RunExit.Halt || exit === RunExit.HaltNoInterrupts) return true;
    if (exit === RunExit.Shutdown || exit === RunExit.Reset) this.#machine.requestReset();
    return false;
  }

  runSlice(maxInstructions: number): number {
    this.#start();
    const loop = this.#machine.loop;
    const nsPerTick = loop.nsPerInstruction;
    const startNs = loop.nowNs;
    const endNs = startNs + maxInstructions * nsPerTick;
    const threads = this.#threads;
    this.#stop = false;
    for (const t of threads) t.cpu.clearExitRequest();
    let running = true;
    while (running) {
      const seen = Atomics.load(this.#bell, 0);
      let parked = 0;
      for (let i = 0; i < threads.length; i++) {
        const t = threads[i];
        if (Atomics.load(t.box, BOX_STATE) === STATE_EXITED && !this.#serve(t, i)) {
          running = false;
        }
        if (Atomics.load(t.box, BOX_STATE) !== STATE_PARKED) continue;
        if (running && !this.#stop && this.#runnable(t)) this.#resume(t);
        else parked++;
      }
      if (this.#stop || loop.stopRequested || threads.some((t) => t.cpu.exitRequested)) break;
      if (parked === threads.length) break; // all halted: the loop idles to its next event
      const leftMs = (endNs - loop.nowNs) / 1e6;
      if (leftMs <= 0) break;
      Atomics.wait(this.#bell, 0, seen, leftMs);
    }
    this.#parkAll();
    const ran = Math.max(0, Math.floor((loop.nowNs - startNs) / nsPerTick));
    this.#retired += ran;
    this.#noProgress = threads.every((t) => !this.#runnable(t));
    return ran;
  }

  /** Kicks every running thread out of KVM_RUN and serves its last exit without resuming. */
  #parkAll(): void {
    this.#stop = true;
    const threads = this.#threads;
    for (const t of threads) {
      if (Atomics.load(t.box, BOX_STATE) === STATE_RUN) t.cpu.kickThread(t.tid);
    }
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      for (;;) {
        const state = Atomics.load(t.box, BOX_STATE);
        if (state === STATE_PARKED) break;
        if (state === STATE_EXITED) {
          this.#serve(t, i);
          break;
        }
        Atomics.wait(t.box, BOX_STATE, state, 1);
      }
    }
  }

  isIdle(): boolean {
    if (this.#noProgress) {
      this.#noProgress = false;
      return true;
    }
    return false;
  }

  instructionsRetired(): number {
    return this.#retired;
  }

  interrupt(): void {
    this.#stop = true;
  }

  kick(index: number): void {
    // vmkit's interrupt controllers: the thread leaves KVM_RUN so its exit injects.
    for (let i = 0; i < this.#threads.length; i++) {
      if (index >= 0 && i !== index) continue;
      const t = this.#threads[i];
      if (Atomics.load(t.box, BOX_STATE) === STATE_RUN && !t.cpu.irqchipInKernel) {
        t.cpu.kickThread(t.tid);
      }
    }
  }

  /** Ends the threads (parked first). */
  close(): void {
    for (const t of this.#threads) {
      if (Atomics.load(t.box, BOX_STATE) === STATE_RUN) t.cpu.kickThread(t.tid);
      Atomics.store(t.box, BOX_STATE, STATE_QUIT);
      Atomics.notify(t.box, BOX_STATE);
      t.worker.terminate();
    }
    this.#threads = [];
  }
}
