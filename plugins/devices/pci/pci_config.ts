// A PCI function's 256-byte configuration space: IDs, write masks, command register and BARs

import type { PciFunction } from "../../../core/device.ts";

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
  /** Called with the new base when the BAR is enabled or moved, and null when disabled. */
  map(base: number | null): void;
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
    for (let i = 0; i < 6; i++) {
      const bar = this.#bars[i];
      if (bar) this.set32(PCI_BASE_ADDRESS_0 + 4 * i, bar.io ? 1 : 0);
      this.#remap(i);
    }
  }

  /** Declares BAR `index`; its base is writable in the bits above its size. */
  addBar(index: number, bar: PciBar): void {
    if (bar.size & (bar.size - 1)) throw new RangeError("PCI BAR size must be a power of two");
    this.#bars[index] = bar;
    this.set32(PCI_BASE_ADDRESS_0 + 4 * index, bar.io ? 1 : 0);
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
      const m = this.wmask[at];
      this.bytes[at] = (this.bytes[at] & ~m) | (byte & m);
    }
    if (offset < PCI_COMMAND + 2 && offset + size > PCI_COMMAND) {
      for (let b = 0; b < 6; b++) this.#remap(b);
    }
    if (offset < PCI_BASE_ADDRESS_0 + 24 && offset + size > PCI_BASE_ADDRESS_0) {
      for (let b = 0; b < 6; b++) this.#remap(b);
    }
    this.#onWrite?.(offset, size);
  }

  #writeBarByte(index: number, lane: number, byte: number): void {
    const bar = this.#bars[index]!;
    const at = PCI_BASE_ADDRESS_0 + 4 * index;
    const sizeMask = (~(bar.size - 1)) >>> 0;
    const laneMask = (sizeMask >>> (8 * lane)) & 0xff;
    const fixed = lane === 0 ? (bar.io ? 1 : 0) : 0;
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
  }
}
