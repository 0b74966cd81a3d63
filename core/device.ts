// The device contract: realize, reset, save/load of plain state; the buses devices plug into;
// the typed context a device plugin's create() receives and the typed keys of machine services

import type { BlockIo } from "./block/backend.ts";
import type { Chardev } from "./chardev.ts";
import type { CpuBackend, InterruptSource } from "./cpu.ts";
import type { EventLoop } from "./event_loop.ts";
import type { IrqController, IrqLine } from "./irq.ts";
import type { DriveConfig, MachineConfig } from "./machine.ts";
import type { AddressSpace } from "./memory/address_space.ts";
import type { PortIoSpace } from "./memory/port_io.ts";
import type { NetClient } from "./net.ts";
import type { PciBus } from "./pci.ts";

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
/**
 * A qdev property's value as `info qtree` prints it: a number as `1016 (0x3f8)`, a string
 * quoted, a boolean bare, `{ bytes }` (a size property) as `512 (512 B)`.
 */
export type QdevValue = number | string | boolean | { readonly bytes: number };

/** One device as `info qtree` lists it: QEMU's model name, properties and child buses. */
export interface QtreeNode {
  readonly model: string;
  /**
   * Its GPIO lines as QEMU lists them before the properties: in or out, the list's name
   * ("" for the unnamed one) and how many lines it has.
   */
  readonly gpios?: readonly (readonly [kind: "in" | "out", name: string, count: number])[];
  /** A system-bus device's MMIO windows (base, size), listed after its properties. */
  readonly mmio?: readonly (readonly [base: number, size: number])[];
  /** The properties, in the order QEMU prints them. */
  readonly properties: readonly (readonly [name: string, value: QdevValue])[];
  /** Buses below the device (the floppy controller's `floppy-bus.0`), with their devices. */
  readonly buses?: readonly QtreeBus[];
}

/** A bus below a device in `info qtree`. */
export interface QtreeBus {
  readonly name: string;
  readonly type: string;
  readonly devices: readonly QtreeNode[];
}

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
  /**
   * The version of the state {@linkcode saveState} returns (1 when absent); raise it
   * when the fields change, and accept older ones in {@linkcode loadState}. savevm
   * stores it and loadvm refuses a state newer than the device.
   */
  readonly stateVersion?: number;
  /**
   * Why the device cannot be saved now (QEMU's migration blocker), or null/undefined:
   * a savevm stops with this reason. A device whose state is not (yet) complete says so
   * here rather than saving half of it.
   */
  migrationBlocker?(): string | null | undefined;
  /**
   * An interrupt controller's count of rising edges on each input since vmkit started
   * (QEMU's InterruptStatsProvider, printed by the monitor's `info irq` under `name`).
   */
  irqStatistics?(): { name: string; counts: readonly number[] };
  /**
   * What `info qtree` shows of the device: the QEMU device(s) it stands for (vmkit's one
   * i8259 is QEMU's two isa-i8259) and the bus they hang on, `isa` being the ISA bus
   * behind the PCI-ISA bridge (QEMU's isa.0). Absent: listed on the system bus by model.
   */
  qtree?(): { readonly bus: "isa" | "system"; readonly nodes: readonly QtreeNode[] };
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

/**
 * The typed name of a service one device publishes for others (the PCI bus, the ISA
 * IRQ lines, fw_cfg): `provide(KEY, value)` and `service(KEY)` agree on the type, so
 * no cast is needed and a wrong type is a compile error. Make one with
 * {@linkcode serviceKey}.
 */
export interface ServiceKey<T> {
  /** The name the service is published under (unique in a machine). */
  readonly name: string;
  /** Never set: carries the service's type for the compiler. */
  readonly __type?: T;
}

/**
 * Makes a typed service key. A plugin that publishes a service of its own exports its
 * key; the well-known keys of a PC board are below.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serviceKey } from "./device.ts";
 *
 * const DOORBELL = serviceKey<{ ring(): number }>("my-doorbell");
 * assert.equal(DOORBELL.name, "my-doorbell");
 * ```
 */
export function serviceKey<T>(name: string): ServiceKey<T> {
  return Object.freeze({ name });
}

/** The ISA bus: the 16 legacy IRQ lines (published by the board). */
export const ISA_BUS: ServiceKey<IsaBus> = serviceKey("isa");
/** PCI bus 0 (published by the host bridge). */
export const PCI_BUS: ServiceKey<PciBus> = serviceKey("pci");
/** QEMU's firmware configuration device (published by fw_cfg). */
export const FW_CFG: ServiceKey<FirmwareConfig> = serviceKey("fw_cfg");
/** The i8259 pair: its inputs, and the interrupt source a CPU or local APIC polls. */
export const PIC: ServiceKey<IrqController & InterruptSource> = serviceKey("pic");
/** The IOAPIC's inputs. */
export const IOAPIC: ServiceKey<IrqController> = serviceKey("ioapic");
/** The interrupt source CPU 0 polls (its local APIC, or the PIC without one). */
export const CPU_IRQ: ServiceKey<InterruptSource> = serviceKey("cpu-irq");
/** The interrupt source CPU `index` polls. */
export function cpuIrqKey(index: number): ServiceKey<InterruptSource> {
  return serviceKey(`cpu-irq${index}`);
}
/** The RTC's CMOS bytes, which a board fills for the firmware (published by the RTC). */
export interface CmosMemory {
  readonly cmos: Uint8Array;
}
/** The RTC's CMOS memory. */
export const RTC_CMOS: ServiceKey<CmosMemory> = serviceKey("rtc");
/** The ACPI power button a board's PM device offers (`system_powerdown`). */
export interface PowerButton {
  /** Presses the button: the guest sees a power-button event (SCI on ACPI boards). */
  powerDown(): void;
}
/** The ACPI power button (published by the PM device, PIIX4 PM on `-M pc`). */
export const POWER_BUTTON: ServiceKey<PowerButton> = serviceKey("power-button");
/**
 * A drive with removable media (a CD-ROM), as the monitor's eject and change drive it:
 * QEMU's tray model, where a medium goes in or out only while the tray is open.
 */
export interface RemovableMedium {
  /** False for a drive without a tray (a floppy drive): no tray events, no `tray_open`. */
  readonly hasTray?: boolean;
  readonly trayOpen: boolean;
  /** The guest locked the tray (PREVENT ALLOW MEDIUM REMOVAL). */
  readonly locked: boolean;
  /** A medium is in the drive. */
  readonly inserted: boolean;
  /**
   * Opens the tray, as a user pressing eject: refused (false) while the guest holds the
   * lock, unless `force`; the guest is then asked to eject (a media event).
   */
  openTray(force: boolean): boolean;
  /** Puts `node` in the open tray, or takes the medium out (null). */
  setMedium(node: BlockIo | null): void;
  /** Closes the tray; the guest sees the new medium (UNIT ATTENTION, a media event). */
  closeTray(): void;
}
/** Removable-media drives by drive id (`ide1-cd0`); a device adds its own at creation. */
export const REMOVABLE_MEDIA: ServiceKey<Map<string, RemovableMedium>> = serviceKey(
  "removable-media",
);
/** A memory balloon as the monitor drives it (`balloon`, `query-balloon`, BALLOON_CHANGE). */
export interface MemoryBalloon {
  /** The 4 KiB pages the guest holds in the balloon (what its driver reported). */
  readonly actualPages: number;
  /** Asks the guest to hold `pages` 4 KiB pages in the balloon. */
  setTargetPages(pages: number): void;
  /** Calls `listener` whenever the guest reports a new balloon size. */
  onActualChange(listener: () => void): void;
}
/** The machine's memory balloon (published by virtio-balloon; QEMU allows one). */
export const BALLOON: ServiceKey<MemoryBalloon> = serviceKey("balloon");
/** A keyboard the monitor's sendkey types on. */
export interface Keyboard {
  /** Queues scancode bytes as the guest reads them (set 1 through an i8042 that translates). */
  sendScancodes(codes: number[]): void;
  /**
   * A key pressed or released, named by its set 1 code (`0xe0xx` for extended keys), sent
   * in the scancode set the guest asked for.
   */
  keyEvent(scancode: number, down: boolean): void;
}
/** The machine's keyboard (published by the i8042 on `-M pc`). */
export const KEYBOARD: ServiceKey<Keyboard> = serviceKey("keyboard");
/**
 * The ISA DMA controllers (the two 8237s of a PC) as a device on a DMA channel drives
 * them, QEMU's IsaDma: the device holds DREQ with a transfer callback; the controller
 * calls it (at once, or when the guest unmasks the channel) and the callback moves bytes
 * with {@linkcode IsaDma.writeMemory}/{@linkcode IsaDma.readMemory}, each bounded by what
 * the channel has left. Bytes bound for memory the bus refuses are dropped.
 */
export interface IsaDma {
  /** The channel's mode register: bits 2-3 are the transfer type (1 to memory, 2 from memory). */
  mode(channel: number): number;
  /** Bytes the channel has left to move before its terminal count. */
  remaining(channel: number): number;
  /** Raises DREQ: `transfer` runs while the channel is unmasked, until released. */
  hold(channel: number, transfer: () => void): void;
  /** Drops DREQ. */
  release(channel: number): void;
  /** Copies device bytes to guest memory at the channel's position; returns the bytes moved. */
  writeMemory(channel: number, data: Uint8Array): number;
  /** Fills `out` from guest memory at the channel's position; returns the bytes moved. */
  readMemory(channel: number, out: Uint8Array): number;
  /** Fills `out` as readMemory would, leaving the channel where it is (a floppy SCAN's compare). */
  peekMemory(channel: number, out: Uint8Array): number;
}
/** The ISA DMA controllers (published by the i8257 device on `-M pc`). */
export const ISA_DMA: ServiceKey<IsaDma> = serviceKey("isa-dma");
/** What a floppy controller tells the board's CMOS: its drives' types (CMOS 0x10 codes, 0 none). */
export interface FloppyDrives {
  /** Drive A's and drive B's type: 1 360K, 2 1.2M, 3 720K, 4 1.44M, 5 2.88M, 0 no drive. */
  cmosTypes(): readonly [number, number];
}
/** The floppy drives (published by the isa-fdc on `-M pc`). */
export const FLOPPY_DRIVES: ServiceKey<FloppyDrives> = serviceKey("floppy-drives");
/** Guest RAM as one byte array (published by the board). */
export const GUEST_RAM: ServiceKey<Uint8Array> = serviceKey("ram");
/** The last 128 KiB of the firmware image, which the board maps below 1 MiB. */
export const ISA_BIOS: ServiceKey<Uint8Array> = serviceKey("isa-bios");

/**
 * What a device plugin's `create(ctx, opts)` receives: the machine as a device sees it.
 * The memory bus and port space to register windows on, the event loop for timers and
 * host I/O tracking, IRQ lines through the buses' services, and the backends the command
 * line named (drives, chardevs, netdevs). The Machine implements it.
 */
export interface DeviceContext {
  /** The configuration the machine was built from (RAM size, CPUs, boot order...). */
  readonly config: MachineConfig;
  /** Guest physical memory: add RAM, ROM and MMIO windows; DMA through it. */
  readonly memory: AddressSpace;
  /** The x86 I/O port space: register port windows. */
  readonly io: PortIoSpace;
  /**
   * The virtual clock: `createTimer(name, cb)` for timers, `track(promise)` for host I/O
   * the loop must wait for, `addHostSource()` for a host event source, `defer(fn)`.
   */
  readonly loop: EventLoop;
  /** The CPUs, index 0 first. */
  readonly cpus: readonly CpuBackend[];
  /** The index of the CPU whose access is being served (0 between slices). */
  readonly currentCpu: number;
  /** Every device, in creation order. */
  readonly devices: readonly Device[];
  /** True while address line 20 is enabled. */
  readonly a20: boolean;
  /** Publishes a service under a typed key (a second provide replaces the first). */
  provide<T>(key: ServiceKey<T>, service: T): void;
  /** A published service, or undefined when no device published it. */
  findService<T>(key: ServiceKey<T>): T | undefined;
  /** A published service that must exist (the board wires it before devices need it). */
  service<T>(key: ServiceKey<T>): T;
  /** A chardev by id (`chardev=` options); a missing one is a usage error. */
  chardev(id: string): Chardev;
  /** A drive by id (`drive=` options); a missing one is a usage error. */
  drive(id: string): DriveConfig;
  /** A network backend or hub port by id (`netdev=` options), or undefined. */
  netClient(id: string): NetClient | undefined;
  /** A device by id. */
  device(id: string): Device | undefined;
  /** A free device id `${prefix}${n}`. */
  freeId(prefix: string): string;
  /** Adds a device made outside `create` (a board's helper); ids must be unique. */
  addDevice<T extends Device>(device: T): T;
  /** The x86 APIC ID of CPU `index`. */
  apicId(index: number): number;
  /** Wakes the loop and makes the CPUs look at their interrupt source. */
  kick(): void;
  /** Makes CPU `index` look at its interrupt source. */
  kickCpu(index: number): void;
  /** Sets the A20 gate. */
  setA20(enabled: boolean): void;
  /** Listens to A20 gate changes. */
  onA20Change(listener: (enabled: boolean) => void): void;
  /** A system reset request. */
  requestReset(): void;
  /** A power-off request. */
  requestShutdown(): void;
  /** Asks vmkit to exit with `exitCode`. */
  requestExit(exitCode: number): void;
}
