// The device contract: realize, reset, and save/load of plain state; the buses devices plug into

import type { IrqLine } from "./irq.ts";

/** A value a device may keep in its saved state: plain data and typed arrays only. */
export type StateValue =
  | number
  | boolean
  | string
  | null
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | Int32Array
  | Float64Array
  | StateValue[]
  | { [key: string]: StateValue };

/** The saved state of one device: a plain object (structured-clone safe). */
export type DeviceState = { [key: string]: StateValue };

/**
 * A device model inside a machine. Devices register their own ports, MMIO windows
 * and timers when they are created, and keep their state in plain fields and typed
 * arrays so that saving is a copy (as v86's `get_state`/`set_state` do).
 */
export interface Device {
  /** The device id, unique in the machine (`serial0`, `ide0`, `pic-master`). */
  readonly id: string;
  /** The model name as `-device` spells it (`isa-serial`, `piix3-ide`). */
  readonly model: string;
  /**
   * Finishes setup once the whole board exists (connect to a bus, open a backend).
   * Called once, in creation order, before the first reset.
   */
  realize?(): void | Promise<void>;
  /** Puts the device in its power-on state (system reset). */
  reset(): void;
  /** Returns a copy of the device state. */
  saveState(): DeviceState;
  /** Restores a state returned by {@linkcode saveState} of the same model. */
  loadState(state: DeviceState): void;
}

/**
 * Deep-copies plain device state (typed arrays are copied, not shared).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cloneState } from "./device.ts";
 *
 * const state = { imr: 0xff, regs: new Uint8Array([1, 2]) };
 * const copy = cloneState(state);
 * copy.regs[0] = 9;
 * assert.equal(state.regs[0], 1);
 * ```
 */
export function cloneState<T>(state: T): T {
  return structuredClone(state);
}

/**
 * Copies the fields of a saved state into a live state object in place, so typed
 * arrays other code holds stay the same objects. Unknown keys are refused.
 */
export function assignState<T extends object>(target: T, saved: DeviceState, model: string): void {
  const t = target as Record<string, unknown>;
  for (const [key, value] of Object.entries(saved)) {
    if (!(key in t)) throw new TypeError(`State of '${model}' has an unknown field '${key}'`);
    const current = t[key];
    if (ArrayBuffer.isView(current) && ArrayBuffer.isView(value)) {
      (current as Uint8Array).set(value as Uint8Array);
    } else {
      t[key] = structuredClone(value);
    }
  }
}

/** The ISA bus of a PC board as devices see it: the 16 legacy interrupt lines. */
export interface IsaBus {
  /** The line of ISA IRQ `n` (0..15); it reaches the PIC and the IOAPIC. */
  irq(n: number): IrqLine;
}

export type { PciBus, PciFunction } from "./pci.ts";

/** QEMU's firmware configuration device as a board fills it (see plugins/devices/fw_cfg.ts). */
export interface FirmwareConfig {
  /** Sets a legacy numbered item (`FW_CFG_RAM_SIZE`...). */
  setItem(key: number, data: Uint8Array): void;
  /** Adds (or replaces) a named file in the file directory (`etc/e820`, `bootorder`). */
  addFile(name: string, data: Uint8Array): void;
}
