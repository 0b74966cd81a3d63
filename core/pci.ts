// The PCI contract every PCI device shares: the bus, a function's 256-byte configuration
// space (IDs, write masks, command register, BARs, expansion ROM) and the IDs QEMU uses

import { UsageError } from "./errors.ts";
import type { IrqLine } from "./irq.ts";
import type { AddressSpace, MmioHandler } from "./memory/address_space.ts";

/** A PCI function's configuration space as the host bridge reaches it. */
export interface PciFunction {
  /** Reads `size` bytes at `offset` (0..255) of configuration space. */
  configRead(offset: number, size: 1 | 2 | 4): number;
  /** Writes `size` bytes at `offset` of configuration space. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** A PCI bus: functions plug in at a device/function number and get INTx lines. */
export interface PciBus {
  /**
   * Plugs a function in at `devfn` (slot << 3 | function), or in function 0 of the
   * first free slot when `devfn` is undefined.
   *
   * @returns the devfn used
   */
  plug(fn: PciFunction, devfn?: number): number;
  /** The interrupt line that INTx `pin` (1 = INTA .. 4 = INTD) of `devfn` drives. */
  intx(devfn: number, pin: number): IrqLine;
}

/** Red Hat / Qumranet's vendor ID, which QEMU puts in the subsystem vendor of its devices. */
export const PCI_SUBVENDOR_ID_REDHAT_QUMRANET = 0x1af4;
/** The subsystem ID QEMU gives its devices. */
export const PCI_SUBDEVICE_ID_QEMU = 0x1100;
/** The vendor ID of QEMU's own devices (`edu`, std VGA): 1234h. */
export const PCI_VENDOR_ID_QEMU = 0x1234;

/** Standard header offsets (PCI Local Bus 3.0 §6.1). */

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Expansion ROM base address register (PCI Local Bus 3.0 §6.2.5.2). */
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_ROM_ADDRESS_ENABLE = 0x1;
/** The ROM base decodes bits 31..11: 2 KiB is the smallest expansion ROM. */
const PCI_ROM_ADDRESS_MASK = 0xfffff800;
/** Status bit: the function has a capability list at {@linkcode PCI_CAPABILITY_LIST}. */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Offset of the first capability's offset (PCI Local Bus 3.0 §6.7). */
export const PCI_CAPABILITY_LIST = 0x34;
/** Capability ID of MSI (PCI Local Bus 3.0 §6.8.1). */
export const PCI_CAP_ID_MSI = 0x05;
/** Command bit 10: the function must not assert INTx. */
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;

/** Identity of a function. */
export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  revision?: number;
  /** Class code as 0xCCSSPP (class, subclass, programming interface). */
  classCode: number;
  headerType?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** INTx pin 1..4, or 0 for none. */
  interruptPin?: number;
}

/** A base address register. */
export interface PciBar {
  /** Size in bytes (a power of two). */
  size: number;
  /** True for an I/O BAR. */
  io: boolean;
  /** A memory BAR the host may prefetch from (type bit 3), such as a framebuffer. */
  prefetchable?: boolean;
  /** Called with the new base when the BAR is enabled or moved, and null when disabled. */
  map(base: number | null): void;
}

/** The expansion ROM BAR (offset 0x30): decoded only while its enable bit is set. */
export interface PciRomBar {
  /** Size in bytes (a power of two, at least 2 KiB). */
  size: number;
  /** Called with the base when the ROM is decoded, and null when it is not. */
  map(base: number | null): void;
}

/** The read-only low bits of a BAR: the I/O flag, or memory type and prefetchable flag. */
function barTypeBits(bar: PciBar): number {
  if (bar.io) return 0x01;
  return bar.prefetchable ? 0x08 : 0x00;
}

/**
 * The configuration space of one function. Bytes the guest may change are marked
 * in a write mask; BARs size themselves (write all ones, read back the size mask) and
 * are mapped while the command register enables their space.
 */
export class PciConfig implements PciFunction {
  /** The raw configuration bytes. */
  readonly bytes = new Uint8Array(256);
  /** Writable bits per byte. */
  readonly wmask = new Uint8Array(256);
  #bars: (PciBar | null)[] = [null, null, null, null, null, null];
  #mapped: (number | null)[] = [null, null, null, null, null, null];
  #rom: PciRomBar | null = null;
  /** Capabilities in list order: offset, contents and write mask, rebuilt on reset. */
  #caps: { offset: number; bytes: number[]; wmask: number[] }[] = [];
  #romMapped: number | null = null;
  #onWrite: ((offset: number, size: number) => void) | null;
  #view: DataView;

  constructor(id: PciIdentity, options: { onWrite?: (offset: number, size: number) => void } = {}) {
    this.#view = new DataView(this.bytes.buffer);
    this.#onWrite = options.onWrite ?? null;
    this.#identity = id;
    this.reset();
  }

  #identity: PciIdentity;

  /** Restores the power-on contents (IDs, zero command, unmapped BARs). */
  reset(): void {
    const id = this.#identity;
    const keep = this.wmask.slice();
    this.bytes.fill(0);
    this.wmask.set(keep);
    this.set16(PCI_VENDOR_ID, id.vendorId);
    this.set16(PCI_DEVICE_ID, id.deviceId);
    this.bytes[PCI_REVISION_ID] = id.revision ?? 0;
    this.bytes[PCI_CLASS_PROG] = id.classCode & 0xff;
    this.set16(PCI_CLASS_DEVICE, id.classCode >> 8);
    this.bytes[PCI_HEADER_TYPE] = id.headerType ?? 0;
    this.set16(PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendorId ?? 0);
    this.set16(PCI_SUBSYSTEM_ID, id.subsystemId ?? 0);
    this.bytes[PCI_INTERRUPT_PIN] = id.interruptPin ?? 0;
    this.wmask[PCI_COMMAND] = 0x07;
    this.wmask[PCI_COMMAND + 1] = 0x05; // SERR, fast back-to-back... and INTx disable
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
    this.wmask[0x0c] = 0xff; // cache line size
    this.wmask[0x0d] = 0xff; // latency timer
    this.#writeCapabilities();
    for (let i = 0; i < 6; i++) {
      const bar = this.#bars[i];
      if (bar) this.set32(PCI_BASE_ADDRESS_0 + 4 * i, barTypeBits(bar));
      this.#remap(i);
    }
    this.#remapRom();
  }

  /** Declares BAR `index`; its base is writable in the bits above its size. */
  addBar(index: number, bar: PciBar): void {
    if (bar.size & (bar.size - 1)) throw new RangeError("PCI BAR size must be a power of two");
    this.#bars[index] = bar;
    this.set32(PCI_BASE_ADDRESS_0 + 4 * index, barTypeBits(bar));
  }

  /** Declares the expansion ROM BAR; firmware sizes it, places it and sets its enable bit. */
  addRomBar(rom: PciRomBar): void {
    if (rom.size < 0x800 || rom.size & (rom.size - 1)) {
      throw new RangeError("PCI expansion ROM size must be a power of two of at least 2 KiB");
    }
    this.#rom = rom;
    this.set32(PCI_ROM_ADDRESS, 0);
  }

  /**
   * Adds a capability to the list (after the standard header, 4-byte aligned, in order)
   * and returns its offset. `bytes` starts with the ID and a placeholder next pointer;
   * `wmask` says which of its bits the guest may write. Reset restores both.
   */
  addCapability(bytes: readonly number[], wmask: readonly number[] = []): number {
    const last = this.#caps[this.#caps.length - 1];
    const offset = last ? (last.offset + last.bytes.length + 3) & ~3 : 0x40;
    if (offset + bytes.length > 256) throw new RangeError("PCI capability does not fit");
    this.#caps.push({ offset, bytes: [...bytes], wmask: [...wmask] });
    this.#writeCapabilities();
    return offset;
  }

  #writeCapabilities(): void {
    if (this.#caps.length === 0) return;
    this.bytes[PCI_CAPABILITY_LIST] = this.#caps[0].offset;
    this.set16(PCI_STATUS, this.get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    this.#caps.forEach((cap, i) => {
      this.bytes.set(cap.bytes, cap.offset);
      this.bytes[cap.offset + 1] = this.#caps[i + 1]?.offset ?? 0;
      this.wmask.fill(0, cap.offset, cap.offset + cap.bytes.length);
      this.wmask.set(cap.wmask, cap.offset);
    });
  }

  /** Marks bytes writable with `mask` (one mask byte per byte). */
  setWritable(offset: number, mask: number[]): void {
    mask.forEach((m, i) => (this.wmask[offset + i] = m));
  }

  get8(offset: number): number {
    return this.bytes[offset];
  }
  get16(offset: number): number {
    return this.#view.getUint16(offset, true);
  }
  get32(offset: number): number {
    return this.#view.getUint32(offset, true);
  }
  set8(offset: number, v: number): void {
    this.bytes[offset] = v;
  }
  set16(offset: number, v: number): void {
    this.#view.setUint16(offset, v, true);
  }
  set32(offset: number, v: number): void {
    this.#view.setUint32(offset, v >>> 0, true);
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (offset + size > 256) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    if (size === 1) return this.bytes[offset];
    if (size === 2) return this.get16(offset);
    return this.get32(offset);
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset + size > 256) return;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      const barIndex = (at - PCI_BASE_ADDRESS_0) >> 2;
      if (at >= PCI_BASE_ADDRESS_0 && at < PCI_BASE_ADDRESS_0 + 24 && this.#bars[barIndex]) {
        this.#writeBarByte(barIndex, (at - PCI_BASE_ADDRESS_0) & 3, byte);
        continue;
      }
      if (at >= PCI_ROM_ADDRESS && at < PCI_ROM_ADDRESS + 4 && this.#rom) {
        const lane = at - PCI_ROM_ADDRESS;
        const sizeMask = (PCI_ROM_ADDRESS_MASK & ~(this.#rom.size - 1)) >>> 0;
        const writable = ((sizeMask >>> (8 * lane)) & 0xff) | (lane === 0 ? 1 : 0);
        this.bytes[at] = byte & writable;
        continue;
      }
      const m = this.wmask[at];
      this.bytes[at] = (this.bytes[at] & ~m) | (byte & m);
    }
    if (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND) {
      for (let b = 0; b < 6; b++) this.#remap(b);
      this.#remapRom();
    }
    if (offset < PCI_BASE_ADDRESS_0 + 24 && offset + size > PCI_BASE_ADDRESS_0) {
      for (let b = 0; b < 6; b++) this.#remap(b);
    }
    if (offset < PCI_ROM_ADDRESS + 4 && offset + size > PCI_ROM_ADDRESS) this.#remapRom();
    this.#onWrite?.(offset, size);
  }

  #writeBarByte(index: number, lane: number, byte: number): void {
    const bar = this.#bars[index]!;
    const at = PCI_BASE_ADDRESS_0 + 4 * index;
    const sizeMask = (~(bar.size - 1)) >>> 0;
    const laneMask = (sizeMask >>> (8 * lane)) & 0xff;
    const fixed = lane === 0 ? barTypeBits(bar) : 0;
    const keepMask = lane === 0 ? (bar.io ? 0x03 : 0x0f) : 0;
    const writable = laneMask & ~keepMask;
    this.bytes[at + lane] = (byte & writable) | fixed;
  }

  /** The base of BAR `index` as programmed, or null when its space is disabled. */
  barBase(index: number): number | null {
    const bar = this.#bars[index];
    if (!bar) return null;
    const cmd = this.get16(PCI_COMMAND);
    if (!(cmd & (bar.io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY))) return null;
    const raw = this.get32(PCI_BASE_ADDRESS_0 + 4 * index);
    const base = bar.io ? raw & 0xfffc : (raw & 0xfffffff0) >>> 0;
    // An unprogrammed (0) or sizing (all ones) BAR is not decoded.
    if (base === 0 || base === ((~(bar.size - 1)) & (bar.io ? 0xfffc : 0xfffffff0)) >>> 0) {
      return null;
    }
    return base;
  }

  /**
   * The base of the expansion ROM as programmed, or null while it is not decoded: the
   * enable bit and memory space must both be on (PCI Local Bus 3.0 §6.2.5.2).
   */
  romBase(): number | null {
    const rom = this.#rom;
    if (!rom) return null;
    if (!(this.get16(PCI_COMMAND) & PCI_COMMAND_MEMORY)) return null;
    const raw = this.get32(PCI_ROM_ADDRESS);
    if (!(raw & PCI_ROM_ADDRESS_ENABLE)) return null;
    const base = (raw & PCI_ROM_ADDRESS_MASK) >>> 0;
    if (base === 0 || base === ((PCI_ROM_ADDRESS_MASK & ~(rom.size - 1)) >>> 0)) return null;
    return base;
  }

  #remapRom(): void {
    if (!this.#rom) return;
    const base = this.romBase();
    if (base === this.#romMapped) return;
    this.#romMapped = base;
    this.#rom.map(base);
  }

  #remap(index: number): void {
    const bar = this.#bars[index];
    if (!bar) return;
    const base = this.barBase(index);
    if (base === this.#mapped[index]) return;
    this.#mapped[index] = base;
    bar.map(base);
  }

  /** A copy of the configuration bytes for save state. */
  save(): Uint8Array {
    return this.bytes.slice();
  }

  /** Restores saved bytes and re-maps the BARs. */
  load(bytes: Uint8Array): void {
    this.bytes.set(bytes);
    for (let b = 0; b < 6; b++) this.#remap(b);
    this.#remapRom();
  }
}

/** MSI message control bits (PCI Local Bus 3.0 §6.8.1.3). */
const PCI_MSI_FLAGS_ENABLE = 0x0001;
const PCI_MSI_FLAGS_64BIT = 0x0080;

/**
 * A single-vector MSI capability with a 64-bit address, as QEMU gives its simple devices:
 * the guest programs the address and data and sets the enable bit; the device then
 * signals by a memory write of the data to the address (on a PC, into the local APICs'
 * window at 0xfee00000) instead of asserting INTx.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressSpace } from "./memory/address_space.ts";
 * import { PciConfig, PciMsi } from "./pci.ts";
 *
 * const config = new PciConfig({ vendorId: 0x1234, deviceId: 0x11e8, classCode: 0xff0000 });
 * const memory = new AddressSpace();
 * const writes: number[][] = [];
 * memory.addMmio("apic", 0xfee00000, 0x1000, { read: () => 0, write: (o, _s, v) => writes.push([o, v]) });
 * const msi = new PciMsi(config, memory);
 * assert.equal(msi.notify(), false, "disabled: the device uses INTx");
 * config.configWrite(msi.offset + 4, 4, 0xfee00000);
 * config.configWrite(msi.offset + 12, 2, 0x41);
 * config.configWrite(msi.offset + 2, 2, 1);
 * config.configWrite(4, 2, 0x4); // bus master: the function may write memory
 * assert.equal(msi.notify(), true);
 * assert.deepEqual(writes, [[0, 0x41]]);
 * ```
 */
export class PciMsi {
  /** Where the capability sits in configuration space. */
  readonly offset: number;
  /** Messages that could not be delivered (an address outside the guest's 32-bit space). */
  dropped = 0;
  #config: PciConfig;
  #memory: AddressSpace;

  constructor(config: PciConfig, memory: AddressSpace) {
    this.#config = config;
    this.#memory = memory;
    // ID, next, control (64-bit capable, one vector), address low/high, data.
    this.offset = config.addCapability(
      [PCI_CAP_ID_MSI, 0, PCI_MSI_FLAGS_64BIT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [
        0,
        0,
        PCI_MSI_FLAGS_ENABLE | 0x70,
        0,
        0xfc,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
      ],
    );
  }

  /** True while the guest has MSI enabled. */
  get enabled(): boolean {
    return (this.#config.get16(this.offset + 2) & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  /**
   * Sends the message if MSI is enabled and bus mastering is on.
   *
   * @returns true when MSI is enabled (the message went, or was dropped as undeliverable);
   *   false when the device should use INTx instead
   */
  notify(): boolean {
    if (!this.enabled) return false;
    if (!(this.#config.get16(PCI_COMMAND) & PCI_COMMAND_MASTER)) {
      // Without bus mastering the function cannot write memory, so no message.
      this.dropped++;
      return true;
    }
    const low = this.#config.get32(this.offset + 4);
    const high = this.#config.get32(this.offset + 8);
    const data = this.#config.get16(this.offset + 12);
    if (high !== 0) {
      this.dropped++;
      return true;
    }
    this.#memory.write32(low, data);
    return true;
  }
}

/**
 * Reads `addr=` (`5`, `0x5`, `05.0`) as a devfn, as QEMU spells PCI addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePciAddr } from "./pci.ts";
 *
 * assert.equal(parsePciAddr("edu", "05.1"), (5 << 3) | 1);
 * assert.throws(() => parsePciAddr("edu", "40"), /Property 'edu.addr' doesn't take value '40'/);
 * ```
 */
export function parsePciAddr(model: string, text: string): number {
  const m = /^(?:0x)?([0-9a-fA-F]{1,2})(?:\.([0-7]))?$/.exec(text);
  const slot = m ? Number.parseInt(m[1], 16) : NaN;
  if (!m || slot > 31) {
    throw new UsageError(`Property '${model}.addr' doesn't take value '${text}'`);
  }
  return (slot << 3) | Number(m[2] ?? 0);
}

/**
 * A memory BAR's `map` callback that decodes `handler` at the BAR's base under `name`
 * and stops decoding when the guest moves or disables it. A base that overlaps RAM or
 * another window is not decoded (the guest's mistake), as on real hardware.
 *
 * @returns the {@linkcode PciBar.map} function
 */
export function mmioBarMapper(
  memory: AddressSpace,
  name: string,
  sizeBytes: number,
  handler: MmioHandler,
): (base: number | null) => void {
  return (base) => {
    memory.remove(name);
    if (base === null) return;
    try {
      memory.addMmio(name, base, sizeBytes, handler);
    } catch {
      // Left unmapped: reads of the window find nothing, as an undecoded address.
    }
  };
}

/**
 * Gives a function its option ROM (`efi-e1000.rom`, padded to a power of two) as the
 * expansion ROM BAR: read-only memory under `name` wherever the firmware places it while
 * the BAR is enabled. The window is guest-placed, so it may cover other regions (it sits
 * above RAM, as QEMU's BARs do); a base the address space cannot hold leaves it unmapped.
 */
export function addOptionRomBar(
  config: PciConfig,
  memory: AddressSpace | null | undefined,
  name: string,
  rom: Uint8Array,
): void {
  config.addRomBar({
    size: rom.length,
    map: (base) => {
      if (!memory) return;
      memory.remove(name);
      if (base === null) return;
      try {
        memory.addRom(name, base, rom, { priority: 1, overlap: true });
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
      }
    },
  });
}
