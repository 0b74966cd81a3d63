// How a Machine's CPUs share the emulation thread: one CPU straight through, or several in
// round-robin turns (QEMU's single-threaded TCG)

import { RunExit } from "./cpu.ts";
import type { SliceExecutor } from "./event_loop.ts";
import type { Machine } from "./machine.ts";

/** The machine's side of the event loop's executor: which CPU runs, and kicks. */
export interface CpuExecutor extends SliceExecutor {
  /** The CPU index running now; 0 between slices. */
  readonly current: number;
  /** Makes CPU `index` (-1: every CPU) look at its interrupts. */
  kick(index: number): void;
}

/** Adapts a one-CPU machine's CPU to the event loop (the fast path, unchanged by SMP). */
export class MachineExecutor implements CpuExecutor {
  readonly current = 0;
  #machine: Machine;
  #noProgress = false;

  constructor(machine: Machine) {
    this.#machine = machine;
  }

  runSlice(maxInstructions: number): number {
    const cpu = this.#machine.cpus[0];
    if (!cpu) {
      this.#noProgress = true;
      return 0;
    }
    const before = cpu.instructionsRetired;
    const exit = cpu.run(maxInstructions);
    const ran = cpu.instructionsRetired - before;
    if (exit === RunExit.Shutdown || exit === RunExit.Reset) this.#machine.requestReset();
    // A halt that made no progress leaves the CPU idle until an event. An Exit (a device
    // kicked the CPU, often to deliver the interrupt that ends the halt) is not idleness:
    // the next slice must run so the CPU looks at its interrupt source.
    this.#noProgress = ran === 0 && (exit === RunExit.Halt || exit === RunExit.HaltNoInterrupts);
    return ran;
  }

  isIdle(): boolean {
    const cpu = this.#machine.cpus[0];
    if (!cpu) return true;
    if (this.#noProgress) {
      // Try again once something happened: the loop calls isIdle() again after timers.
      this.#noProgress = false;
      return true;
    }
    return false;
  }

  instructionsRetired(): number {
    return this.#machine.cpus[0]?.instructionsRetired ?? 0;
  }

  interrupt(): void {
    this.#machine.cpus[0]?.requestExit();
  }

  kick(_index: number): void {
    for (const c of this.#machine.cpus) c.requestExit();
  }
}

/**
 * The longest turn of one CPU, in instructions, while another CPU could run: bounds how
 * long a spinning CPU (without PAUSE) keeps the others waiting. 10000 instructions are
 * 80 µs of virtual time at the default clock.
 */
export const SMP_QUANTUM = 10_000;

/**
 * Several CPUs on the one emulation thread, as QEMU's single-threaded round-robin TCG:
 * each {@linkcode runSlice} is one CPU's turn, of at most the loop's slice (so up to the
 * next timer deadline) and at most {@linkcode SMP_QUANTUM} while another CPU can run.
 * The turn passes to the next CPU in index order when the CPU used its budget, halted,
 * spun on PAUSE while another CPU can run, or an interrupt arrived for another CPU.
 * Halted CPUs (HLT, wait-for-SIPI) are passed over in the same call and cost nothing.
 *
 * The virtual clock advances by the instructions of the CPU that ran (the sum over all
 * CPUs), and jumps to the next deadline when all halt; the order of turns depends only
 * on guest state and virtual time, so a run is as deterministic as with one CPU.
 */
export class RoundRobinExecutor implements CpuExecutor {
  #machine: Machine;
  #next = 0;
  #current = -1;
  #rotate = false;
  #noProgress = false;
  /** CPUs an interrupt reached since they last ran (they may have left HLT). */
  #woken: Uint8Array;

  constructor(machine: Machine) {
    this.#machine = machine;
    this.#woken = new Uint8Array(Math.max(1, machine.config.smp));
  }

  get current(): number {
    return this.#current < 0 ? 0 : this.#current;
  }

  /** True when a CPU other than `index` can run. */
  #othersRunnable(index: number): boolean {
    const cpus = this.#machine.cpus;
    for (let i = 0; i < cpus.length; i++) {
      if (i !== index && (!cpus[i].halted || this.#woken[i])) return true;
    }
    return false;
  }

  runSlice(maxInstructions: number): number {
    const cpus = this.#machine.cpus;
    const n = cpus.length;
    if (n === 0) {
      this.#noProgress = true;
      return 0;
    }
    let total = 0;
    // Each CPU gets one look per call; a halted one returns at once with nothing done.
    for (let tries = 0; tries < n; tries++) {
      const i = this.#next;
      const cpu = cpus[i];
      this.#woken[i] = 0;
      this.#rotate = false;
      this.#current = i;
      let exit: RunExit;
      let ran = 0;
      try {
        for (;;) {
          const budget = maxInstructions - total - ran;
          const others = this.#othersRunnable(i);
          const slice = others && budget > SMP_QUANTUM ? SMP_QUANTUM : budget;
          // PAUSE offers the turn only when another CPU can take it; alone, the spinner
          // goes on inside `run` (no other CPU becomes runnable without a kick, and a kick
          // ends the run). Returning on every PAUSE cost a run() call per ~14
          // instructions while a CPU waited for a halted one (docs/cpu-performance.md).
          cpu.setPauseYield?.(others);
          const before = cpu.instructionsRetired;
          exit = cpu.run(slice);
          ran += cpu.instructionsRetired - before;
          // PAUSE with nobody else to run (an older backend yields anyway): keep going.
          if (exit !== RunExit.Yield || this.#rotate || this.#othersRunnable(i)) break;
          if (ran + total >= maxInstructions) break;
        }
      } finally {
        this.#current = -1;
      }
      total += ran;
      if (exit === RunExit.Shutdown || exit === RunExit.Reset) {
        this.#machine.requestReset();
        return total;
      }
      const halted = exit === RunExit.Halt || exit === RunExit.HaltNoInterrupts;
      if (halted || exit === RunExit.Budget || exit === RunExit.Yield || this.#rotate) {
        this.#next = i + 1 === n ? 0 : i + 1;
      }
      if (ran > 0 || !halted) {
        this.#noProgress = false;
        return total;
      }
    }
    this.#noProgress = true;
    return total;
  }

  isIdle(): boolean {
    if (this.#machine.cpus.length === 0) return true;
    if (this.#noProgress) {
      this.#noProgress = false;
      return true;
    }
    return false;
  }

  instructionsRetired(): number {
    return this.#machine.instructionsRetired;
  }

  interrupt(): void {
    if (this.#current >= 0) this.#machine.cpus[this.#current].requestExit();
  }

  kick(index: number): void {
    if (index < 0) this.#woken.fill(1);
    else if (index < this.#woken.length) this.#woken[index] = 1;
    const cur = this.#current;
    if (cur < 0) return;
    // The running CPU stops at its next boundary: to take its own interrupt, or to let
    // the woken CPU have a turn.
    if (index !== cur) this.#rotate = true;
    this.#machine.cpus[cur].requestExit();
  }
}
