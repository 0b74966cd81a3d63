// The CPU backend contract: run a slice of instructions, take interrupts, report why it stopped

import type { AddressSpace } from "./memory/address_space.ts";
import type { PortIoSpace } from "./memory/port_io.ts";

/**
 * Why {@linkcode CpuBackend.run} returned. The event loop reacts to each:
 * `Budget` — run the next slice; `Halt` — the guest waits in HLT with interrupts
 * enabled, so sleep until the next timer or device event and call `run` again;
 * `HaltNoInterrupts` — HLT with IF=0, only NMI, SMI or reset wakes it;
 * `Shutdown` — triple fault (a PC board resets the machine); `Exit` — someone called
 * {@linkcode CpuBackend.requestExit}; `Reset` — a device asked for a system reset with
 * {@linkcode CpuBackend.requestReset} (port CF9h, the keyboard controller's pulse).
 */
export const RunExit = {
  Budget: 0,
  Halt: 1,
  HaltNoInterrupts: 2,
  Shutdown: 3,
  Exit: 4,
  Reset: 5,
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
  /** True while the CPU sits in HLT waiting for an interrupt. */
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
  /** Named register values for the monitor (`info registers`) and debugging. */
  registers(): Record<string, number>;
}

/** What a CPU plugin's `create` receives from the machine. */
export interface CpuContext {
  /** The guest physical address space the CPU reads and writes. */
  readonly memory: AddressSpace;
  /** The I/O port space for IN/OUT. */
  readonly io: PortIoSpace;
  /** The model name from `-cpu` (the plugin's default when absent). */
  readonly model?: string;
  /** The CPU index in a multiprocessor machine (APIC ID); 0 when absent. */
  readonly index?: number;
}
