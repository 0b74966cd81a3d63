// The guest physical address space: RAM, ROM and MMIO regions flattened to a page table

import { invariant } from "../errors.ts";

/** A device's MMIO window handler; the bus passes an offset into the window. */
export interface MmioHandler {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Page granularity of the dispatch table. */
export const PAGE_BITS = 12;
/** Bytes in one dispatch page. */
export const PAGE_SIZE = 1 << PAGE_BITS;

/** Kinds of page in the dispatch table. */
export const PAGE_UNMAPPED = 0;
export const PAGE_RAM = 1;
export const PAGE_ROM = 2;
export const PAGE_MMIO = 3;

/** One region as registered. */
export interface MemoryRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly kind: "ram" | "rom" | "mmio";
  /** Backing bytes for RAM and ROM. */
  readonly bytes?: Uint8Array;
  readonly handler?: MmioHandler;
  /** Higher priority regions cover lower ones (ROM shadowing, PCI BAR over RAM hole). */
  readonly priority: number;
}

/**
 * A 32-bit (4 GiB) guest physical address space, flattened into one entry per 4 KiB
 * page so an access costs one table lookup. Regions must not overlap other regions
 * of the same priority; a higher priority region covers a lower one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressSpace } from "./address_space.ts";
 *
 * const mem = new AddressSpace();
 * mem.addRam("ram", 0, 1 << 20);
 * mem.write32(0x1000, 0xdeadbeef);
 * assert.equal(mem.read32(0x1000), 0xdeadbeef);
 * assert.equal(mem.read8(0x1003), 0xde);
 * assert.equal(mem.read32(0x80000000), 0xffffffff); // unmapped reads float high
 * ```
 */
export class AddressSpace {
  /** Page kind per 4 KiB page (PAGE_RAM...). */
  readonly pageKind: Uint8Array;
  /** Index into {@linkcode regions} per page. */
  readonly pageRegion: Int32Array;
  #regions: MemoryRegion[] = [];
  /** Regions in registration order (read-only view). */
  get regions(): readonly MemoryRegion[] {
    return this.#regions;
  }
  /** Incremented whenever the page table changes (CPU TLBs compare it). */
  generation = 0;

  constructor(readonly addressBits = 32) {
    const pages = 2 ** (addressBits - PAGE_BITS);
    this.pageKind = new Uint8Array(pages);
    this.pageRegion = new Int32Array(pages).fill(-1);
  }

  /** Adds RAM at `base`; returns its bytes (zeroed). */
  addRam(
    name: string,
    base: number,
    size: number,
    options: { priority?: number } = {},
  ): Uint8Array {
    const bytes = new Uint8Array(size);
    this.#add({ name, base, size, kind: "ram", bytes, priority: options.priority ?? 0 });
    return bytes;
  }

  /** Adds existing bytes as RAM (an alias of another region's memory). */
  addRamAlias(name: string, base: number, bytes: Uint8Array, priority = 0): void {
    this.#add({ name, base, size: bytes.length, kind: "ram", bytes, priority });
  }

  /** Adds read-only memory holding `data`; guest writes are ignored. */
  addRom(name: string, base: number, data: Uint8Array, priority = 0): void {
    this.#add({ name, base, size: data.length, kind: "rom", bytes: data, priority });
  }

  /** Adds an MMIO window served by `handler`. */
  addMmio(name: string, base: number, size: number, handler: MmioHandler, priority = 0): void {
    this.#add({ name, base, size, kind: "mmio", handler, priority });
  }

  /** Removes a region by name (a PCI BAR moving, a ROM being unmapped). */
  remove(name: string): void {
    const index = this.#regions.findIndex((r) => r.name === name);
    if (index < 0) return;
    this.#regions.splice(index, 1);
    this.#rebuild();
  }

  #add(region: MemoryRegion): void {
    if (region.size <= 0 || region.base % PAGE_SIZE !== 0 || region.size % PAGE_SIZE !== 0) {
      throw new RangeError(
        `Region '${region.name}' must be page aligned: base 0x${region.base.toString(16)} size 0x${
          region.size.toString(16)
        }`,
      );
    }
    if (region.base + region.size > 2 ** this.addressBits) {
      throw new RangeError(`Region '${region.name}' lies outside the address space`);
    }
    for (const r of this.#regions) {
      if (
        r.priority === region.priority && region.base < r.base + r.size &&
        r.base < region.base + region.size
      ) {
        throw new RangeError(`Region '${region.name}' overlaps region '${r.name}'`);
      }
    }
    this.#regions.push(region);
    this.#rebuild();
  }

  #rebuild(): void {
    this.pageKind.fill(PAGE_UNMAPPED);
    this.pageRegion.fill(-1);
    const order = this.#regions.map((_r, i) => i).sort((a, b) =>
      this.#regions[a].priority - this.#regions[b].priority
    );
    for (const i of order) {
      const r = this.#regions[i];
      const kind = r.kind === "ram" ? PAGE_RAM : r.kind === "rom" ? PAGE_ROM : PAGE_MMIO;
      const first = r.base >>> PAGE_BITS;
      const last = (r.base + r.size - 1) / PAGE_SIZE | 0;
      for (let p = first; p <= last; p++) {
        this.pageKind[p] = kind;
        this.pageRegion[p] = i;
      }
    }
    this.generation++;
  }

  /** The region covering a physical address, if any. */
  regionAt(address: number): MemoryRegion | undefined {
    const index = this.pageRegion[address >>> PAGE_BITS];
    return index < 0 ? undefined : this.#regions[index];
  }

  read8(address: number): number {
    const page = address >>> PAGE_BITS;
    const kind = this.pageKind[page];
    if (kind === PAGE_RAM || kind === PAGE_ROM) {
      const r = this.#regions[this.pageRegion[page]];
      return r.bytes![address - r.base];
    }
    if (kind === PAGE_MMIO) {
      const r = this.#regions[this.pageRegion[page]];
      return r.handler!.read(address - r.base, 1) & 0xff;
    }
    return 0xff;
  }

  read16(address: number): number {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 2) {
      const page = address >>> PAGE_BITS;
      const kind = this.pageKind[page];
      if (kind === PAGE_RAM || kind === PAGE_ROM) {
        const r = this.#regions[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        return b[o] | (b[o + 1] << 8);
      }
      if (kind === PAGE_MMIO) {
        const r = this.#regions[this.pageRegion[page]];
        return r.handler!.read(address - r.base, 2) & 0xffff;
      }
      if (kind === PAGE_UNMAPPED) return 0xffff;
    }
    return this.read8(address) | (this.read8((address + 1) >>> 0) << 8);
  }

  read32(address: number): number {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4) {
      const page = address >>> PAGE_BITS;
      const kind = this.pageKind[page];
      if (kind === PAGE_RAM || kind === PAGE_ROM) {
        const r = this.#regions[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#regions[this.pageRegion[page]];
        return r.handler!.read(address - r.base, 4) >>> 0;
      }
      if (kind === PAGE_UNMAPPED) return 0xffffffff;
    }
    return (this.read16(address) | (this.read16((address + 2) >>> 0) << 16)) >>> 0;
  }

  write8(address: number, value: number): void {
    const page = address >>> PAGE_BITS;
    const kind = this.pageKind[page];
    if (kind === PAGE_RAM) {
      const r = this.#regions[this.pageRegion[page]];
      r.bytes![address - r.base] = value;
    } else if (kind === PAGE_MMIO) {
      const r = this.#regions[this.pageRegion[page]];
      r.handler!.write(address - r.base, 1, value & 0xff);
    }
  }

  write16(address: number, value: number): void {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 2) {
      const page = address >>> PAGE_BITS;
      const kind = this.pageKind[page];
      if (kind === PAGE_RAM) {
        const r = this.#regions[this.pageRegion[page]];
        const o = address - r.base;
        r.bytes![o] = value;
        r.bytes![o + 1] = value >> 8;
        return;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#regions[this.pageRegion[page]];
        r.handler!.write(address - r.base, 2, value & 0xffff);
        return;
      }
      if (kind !== PAGE_RAM) return;
    }
    this.write8(address, value);
    this.write8((address + 1) >>> 0, value >> 8);
  }

  write32(address: number, value: number): void {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4) {
      const page = address >>> PAGE_BITS;
      const kind = this.pageKind[page];
      if (kind === PAGE_RAM) {
        const r = this.#regions[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        b[o] = value;
        b[o + 1] = value >> 8;
        b[o + 2] = value >> 16;
        b[o + 3] = value >> 24;
        return;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#regions[this.pageRegion[page]];
        r.handler!.write(address - r.base, 4, value >>> 0);
        return;
      }
      if (kind !== PAGE_RAM) return;
    }
    this.write16(address, value & 0xffff);
    this.write16((address + 2) >>> 0, value >>> 16);
  }

  /**
   * Copies guest memory into `out` for a device's DMA. Every page must be RAM or ROM:
   * a guest address outside memory is refused with a RangeError the device turns into
   * an error status for the guest.
   */
  dmaRead(address: number, out: Uint8Array): void {
    this.#dma(address, out.length, (r, o, done, n) => out.set(r.bytes!.subarray(o, o + n), done));
  }

  /** Copies `data` into guest RAM for a device's DMA, with the same checks as {@linkcode dmaRead}. */
  dmaWrite(address: number, data: Uint8Array): void {
    this.#dma(address, data.length, (r, o, done, n) => {
      if (r.kind === "ram") r.bytes!.set(data.subarray(done, done + n), o);
    });
  }

  #dma(
    address: number,
    length: number,
    step: (r: MemoryRegion, offset: number, done: number, n: number) => void,
  ): void {
    if (!Number.isInteger(address) || address < 0 || address + length > 2 ** this.addressBits) {
      throw new RangeError(`DMA outside the address space at 0x${address.toString(16)}`);
    }
    let done = 0;
    while (done < length) {
      const a = address + done;
      const r = this.regionAt(a);
      if (!r || r.kind === "mmio") {
        throw new RangeError(`DMA to unbacked guest address 0x${a.toString(16)}`);
      }
      const offset = a - r.base;
      const n = Math.min(length - done, r.size - offset);
      invariant(n > 0, "DMA step makes progress");
      step(r, offset, done, n);
      done += n;
    }
  }
}
