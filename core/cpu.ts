// The CPU backend contract: run a slice of instructions, take interrupts, report why it stopped

import type { ServiceKey } from "./device.ts";
import type { EventLoop } from "./event_loop.ts";
import type { AddressSpace } from "./memory/address_space.ts";
import type { PortIoSpace } from "./memory/port_io.ts";
import type { X86State } from "./x86_state.ts";

export { X86_STATE_BYTES, x86RegisterValues, type X86Segment, X86State } from "./x86_state.ts";

/**
 * Why {@linkcode CpuBackend.run} returned. The event loop reacts to each:
 * `Budget` — run the next slice; `Halt` — the guest waits in HLT with interrupts
 * enabled, so sleep until the next timer or device event and call `run` again;
 * `HaltNoInterrupts` — HLT with IF=0, only NMI, SMI or reset wakes it;
 * `Shutdown` — triple fault (a PC board resets the machine); `Exit` — someone called
 * {@linkcode CpuBackend.requestExit}; `Reset` — a device asked for a system reset with
 * {@linkcode CpuBackend.requestReset} (port CF9h, the keyboard controller's pulse);
 * `Yield` — in a multiprocessor machine, the guest spins (x86 PAUSE) and offers its turn
 * to another CPU, as QEMU's round-robin TCG leaves a CPU on PAUSE.
 */
export const RunExit = {
  Budget: 0,
  Halt: 1,
  HaltNoInterrupts: 2,
  Shutdown: 3,
  Exit: 4,
  Reset: 5,
  Yield: 6,
} as const;

/** One of the {@linkcode RunExit} codes. */
export type RunExit = typeof RunExit[keyof typeof RunExit];

/**
 * The interrupt controller as a CPU sees it (the INTR pin and the INTA cycle).
 * A PIC or local APIC model implements it; the CPU asks only when IF allows.
 */
export interface InterruptSource {
  /** True while a maskable interrupt is requested (the INTR line is high). */
  hasPending(): boolean;
  /** Runs the acknowledge cycle: returns the vector (0..255) to deliver. */
  acknowledge(): number;
}

/**
 * A CPU backend (an interpreter, KVM...). The event loop drives it in slices with
 * `run(n)` between timer deadlines and treats `instructionsRetired` as a clock.
 */
export interface CpuBackend {
  /** The architecture name (`x86`). */
  readonly arch: string;
  /** The CPU model in use (`qemu32`, `486`...). */
  readonly model: string;
  /**
   * Instructions retired since creation; monotonic, usable as a virtual clock. It stands
   * still while the CPU halts: the event loop then moves time to its next deadline.
   */
  readonly instructionsRetired: number;
  /**
   * True while the CPU cannot run until something arrives: HLT waiting for an interrupt,
   * or (x86) an application processor waiting for a STARTUP IPI.
   */
  readonly halted: boolean;
  /** Puts the CPU in its power-on/RESET state (x86: CS:IP = F000:FFF0). */
  reset(): void;
  /**
   * Executes up to `maxInstructions` instructions and returns why it stopped. It never
   * awaits; a halted CPU with nothing to do returns at once.
   */
  run(maxInstructions: number): RunExit;
  /** Connects the interrupt controller; `null` disconnects it. */
  setInterruptSource(source: InterruptSource | null): void;
  /** Asserts the NMI pin (edge triggered: one NMI is latched). */
  raiseNmi(): void;
  /**
   * Asks `run` to return `RunExit.Exit` at the next instruction boundary; a device
   * callback uses it when the event loop must act before the slice ends. It also
   * makes the CPU look at its interrupt source again.
   */
  requestExit(): void;
  /**
   * Whether a spin hint (x86 PAUSE) ends `run` with {@linkcode RunExit.Yield}: the
   * multiprocessor executor turns it off while no other CPU can run. Optional: a backend
   * without it yields as its `cpuCount` says.
   */
  setPauseYield?(yields: boolean): void;
  /**
   * Asks `run` to return `RunExit.Reset` at the next instruction boundary; the machine
   * then resets its devices and calls {@linkcode reset}.
   */
  requestReset(): void;
  /**
   * Follows the board's A20 gate (i8042 output port, port 0x92): with A20 off, address
   * line 20 reads as 0, so addresses wrap at 1 MiB as on an 8086. Optional: a backend
   * without it always has A20 on.
   */
  setA20?(enabled: boolean): void;
  /**
   * The INIT signal (x86: an INIT IPI): the CPU takes its INIT state at the next
   * boundary; an application processor then waits for a STARTUP IPI. Optional.
   */
  init?(): void;
  /**
   * A STARTUP IPI with `vector` (x86: the CPU leaves wait-for-SIPI in real mode at
   * CS = vector << 8, IP = 0). Ignored unless the CPU waits for one. Optional.
   */
  startup?(vector: number): void;
  /** Named register values for the monitor (`info registers`) and debugging. */
  registers(): Record<string, number>;
  /**
   * Copies the CPU's architectural state into `state` (x86 backends): what the monitor,
   * savevm and another backend (KVM) read. Executor scratch (lazy flags, TLBs,
   * translations) is made concrete or left out. Optional for backends of other
   * architectures.
   */
  getState?(state: X86State): void;
  /**
   * Replaces the CPU's architectural state with `state` (loadvm, a backend switch); what
   * the executor derives from it (segment checks, TLBs, translations) is rebuilt.
   */
  setState?(state: X86State): void;
}

/** The `-smp` topology: CPUs per level, QEMU's sockets, dies, cores and threads. */
export interface CpuTopology {
  sockets: number;
  dies: number;
  cores: number;
  threads: number;
}

/** Bits a topology level takes in an x86 APIC ID: enough for `count` items. */
function fieldBits(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

/**
 * The x86 APIC ID of CPU `index` under `topology`, packed as QEMU packs it (each level
 * gets the bits its count needs: thread, core, die, then socket). With one level in use,
 * the IDs are 0..N-1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { apicIdOf } from "./cpu.ts";
 *
 * assert.equal(apicIdOf(3, { sockets: 2, dies: 1, cores: 2, threads: 1 }), 3);
 * assert.equal(apicIdOf(3, { sockets: 2, dies: 1, cores: 3, threads: 1 }), 4);
 * ```
 */
export function apicIdOf(index: number, topology: CpuTopology): number {
  const threadBits = fieldBits(topology.threads);
  const coreBits = fieldBits(topology.cores);
  const dieBits = fieldBits(topology.dies);
  const thread = index % topology.threads;
  const core = Math.floor(index / topology.threads) % topology.cores;
  const die = Math.floor(index / (topology.threads * topology.cores)) % topology.dies;
  const socket = Math.floor(index / (topology.threads * topology.cores * topology.dies));
  return (((socket << dieBits | die) << coreBits | core) << threadBits | thread) >>> 0;
}

/** What a CPU plugin's `create` receives from the machine. */
export interface CpuContext {
  /** The guest physical address space the CPU reads and writes. */
  readonly memory: AddressSpace;
  /** The I/O port space for IN/OUT. */
  readonly io: PortIoSpace;
  /** The model name from `-cpu` (the plugin's default when absent). */
  readonly model?: string;
  /**
   * The whole `-cpu` text, flags included (`Haswell,-hle,+pcid`), for an x86 backend to
   * resolve with core/x86_cpu_models.ts; absent without `-cpu`.
   */
  readonly cpu?: string;
  /** Prints a start-up warning (`<program>: warning: ...`), e.g. a flag the accelerator lacks. */
  readonly warn?: (message: string) => void;
  /** The CPU index in a multiprocessor machine (0 is the boot processor); 0 when absent. */
  readonly index?: number;
  /** The x86 APIC ID (from the topology); `index` when absent. */
  readonly apicId?: number;
  /**
   * CPUs the machine runs; above 1 the CPU behaves as one of several: x86 PAUSE yields
   * ({@linkcode RunExit.Yield}) and the time-stamp counter follows `clock`.
   */
  readonly cpuCount?: number;
  /** The machine's CPU topology (x86 CPUID leaves 1 and 4 report it); one CPU when absent. */
  readonly topology?: CpuTopology;
  /**
   * A machine-wide clock in instruction ticks (virtual ns / ns per instruction), which
   * the CPUs of a multiprocessor share as their time-stamp counter so it agrees between
   * them and runs on while they idle.
   */
  readonly clock?: () => number;
  /**
   * The machine's event loop: a backend that runs on host time (KVM) reads its clock
   * (`nowNs`, `nsPerInstruction`) to turn a slice into a host deadline.
   */
  readonly loop?: EventLoop;
  /**
   * The machine's published services (core/device.ts keys): a backend that brings its
   * own interrupt controllers (KVM's in-kernel irqchip) finds the board's PIC and IOAPIC
   * here to take their input lines over.
   */
  readonly findService?: <T>(key: ServiceKey<T>) => T | undefined;
}
