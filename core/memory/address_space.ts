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
  /** True for a window the guest places (a BAR, PAM, an I/O base): it may overlap others. */
  readonly overlap: boolean;
  /** For write-tracked RAM: one flag per page, set when the guest writes the page. */
  readonly dirtyPages?: Uint8Array;
}

/**
 * How a region is placed. `priority` orders overlapping regions (higher covers lower);
 * `overlap: true` marks a window the guest programs (a PCI BAR, a PAM segment), which
 * may land on anything, as QEMU's `memory_region_add_subregion_overlap`. Among regions
 * of equal priority the one mapped last covers the others, as in QEMU's subregion order.
 * Fixed board wiring leaves `overlap` off so a real collision is refused at build time.
 */
export interface RegionOptions {
  priority?: number;
  overlap?: boolean;
}

function regionOptions(options: number | RegionOptions | undefined): Required<RegionOptions> {
  if (typeof options === "number") return { priority: options, overlap: false };
  return { priority: options?.priority ?? 0, overlap: options?.overlap ?? false };
}

interface Slot {
  region: MemoryRegion;
  /** Mapping order: among equal priorities the later mapping wins. */
  order: number;
}

/**
 * A 32-bit (4 GiB) guest physical address space, flattened into one entry per 4 KiB
 * page so an access costs one table lookup. Fixed regions of equal priority must not
 * overlap (a wiring bug, refused); guest-programmed windows (`overlap: true`) may, and
 * the flattened view shows the highest priority, then the latest mapping. A change
 * repaints only the pages of the region that moved.
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
 * // A guest-programmed window over RAM covers it; removing it shows the RAM again.
 * mem.addMmio("bar", 0x1000, 0x1000, { read: () => 0x55, write: () => {} }, { overlap: true });
 * assert.equal(mem.read8(0x1000), 0x55);
 * mem.remove("bar");
 * assert.equal(mem.read8(0x1000), 0xef);
 * ```
 */
export class AddressSpace {
  /** Page kind per 4 KiB page (PAGE_RAM...). */
  readonly pageKind: Uint8Array;
  /** Index into the region slots per page (see {@linkcode regionAt}). */
  readonly pageRegion: Int32Array;
  /** Region slots; a removed region leaves a hole so page indexes stay valid. */
  #slots: (Slot | undefined)[] = [];
  /** The region of each slot, for the hot access paths. */
  #byIndex: MemoryRegion[] = [];
  #freeSlots: number[] = [];
  #nextOrder = 0;
  #liveRegions: MemoryRegion[] | null = [];
  /** Pages repainted since construction (a measure of remapping cost). */
  pagesRepainted = 0;
  /** Live regions in mapping order (read-only view). */
  get regions(): readonly MemoryRegion[] {
    if (this.#liveRegions === null) {
      this.#liveRegions = this.#slots.filter((s): s is Slot => s !== undefined)
        .sort((a, b) => a.order - b.order).map((s) => s.region);
    }
    return this.#liveRegions;
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
    options: RegionOptions = {},
  ): Uint8Array {
    const bytes = new Uint8Array(size);
    this.#add({ name, base, size, kind: "ram", bytes, ...regionOptions(options) });
    return bytes;
  }

  /**
   * Adds existing bytes as RAM (an alias of another region's memory). With
   * `dirtyPages` (one byte per page of `bytes`) the region's writes are tracked for a
   * display: a page whose flag is 0 is mapped read-only, so the first write to it
   * reaches {@linkcode write8} and friends, which set the flag and make the page
   * writable again; {@linkcode protectClean} read-protects the pages whose flags the
   * owner cleared. Reads cost nothing either way.
   */
  addRamAlias(
    name: string,
    base: number,
    bytes: Uint8Array,
    options?: number | (RegionOptions & { dirtyPages?: Uint8Array }),
  ): void {
    const dirtyPages = typeof options === "object" ? options.dirtyPages : undefined;
    if (dirtyPages && dirtyPages.length * PAGE_SIZE < bytes.length) {
      throw new RangeError(`Region '${name}' needs a dirty flag for each of its pages`);
    }
    this.#add({
      name,
      base,
      size: bytes.length,
      kind: "ram",
      bytes,
      ...regionOptions(options),
      dirtyPages,
    });
  }

  /**
   * Maps read-only again the pages of write-tracked region `name` whose dirty flags
   * are 0 (the owner has taken the changes), so the next write to each is seen.
   */
  protectClean(name: string): void {
    const index = this.#slots.findIndex((s) => s?.region.name === name);
    const r = index < 0 ? undefined : this.#slots[index]!.region;
    if (!r?.dirtyPages) return;
    const first = r.base >>> PAGE_BITS;
    const pages = r.size / PAGE_SIZE;
    let changed = false;
    for (let i = 0; i < pages; i++) {
      const page = first + i;
      if (
        r.dirtyPages[i] === 0 && this.pageRegion[page] === index && this.pageKind[page] === PAGE_RAM
      ) {
        this.pageKind[page] = PAGE_ROM;
        changed = true;
      }
    }
    // The CPUs drop their writable translations of the pages (they compare the generation).
    if (changed) this.generation++;
  }

  /**
   * A write reached a read-only page: if it is a clean page of a write-tracked region,
   * marks it dirty and makes it writable (the CPU's next translation maps it for
   * writing; its read-only one stays valid), and returns true so the write proceeds.
   */
  #unprotect(page: number): boolean {
    const r = this.#byIndex[this.pageRegion[page]];
    if (!r?.dirtyPages) return false;
    r.dirtyPages[page - (r.base >>> PAGE_BITS)] = 1;
    this.pageKind[page] = PAGE_RAM;
    return true;
  }

  /** Adds read-only memory holding `data`; guest writes are ignored. */
  addRom(name: string, base: number, data: Uint8Array, options?: number | RegionOptions): void {
    this.#add({
      name,
      base,
      size: data.length,
      kind: "rom",
      bytes: data,
      ...regionOptions(options),
    });
  }

  /** Adds an MMIO window served by `handler`. */
  addMmio(
    name: string,
    base: number,
    size: number,
    handler: MmioHandler,
    options?: number | RegionOptions,
  ): void {
    this.#add({ name, base, size, kind: "mmio", handler, ...regionOptions(options) });
  }

  /** Removes a region by name (a PCI BAR moving, a ROM being unmapped). */
  remove(name: string): void {
    const index = this.#slots.findIndex((s) => s?.region.name === name);
    if (index < 0) return;
    const region = this.#slots[index]!.region;
    this.#slots[index] = undefined;
    this.#freeSlots.push(index);
    this.#liveRegions = null;
    this.#repaint(region.base, region.size);
  }

  #add(region: MemoryRegion): void {
    if (region.size <= 0 || region.base % PAGE_SIZE !== 0 || region.size % PAGE_SIZE !== 0) {
      throw new RangeError(
        `Region '${region.name}' must be page aligned: base 0x${region.base.toString(16)} size 0x${
          region.size.toString(16)
        }`,
      );
    }
    if (region.base < 0 || region.base + region.size > 2 ** this.addressBits) {
      throw new RangeError(`Region '${region.name}' lies outside the address space`);
    }
    if (!region.overlap) {
      for (const s of this.#slots) {
        const r = s?.region;
        if (
          r && !r.overlap && r.priority === region.priority &&
          region.base < r.base + r.size && r.base < region.base + region.size
        ) {
          throw new RangeError(`Region '${region.name}' overlaps region '${r.name}'`);
        }
      }
    }
    const slot = { region, order: this.#nextOrder++ };
    const index = this.#freeSlots.pop() ?? this.#slots.length;
    this.#slots[index] = slot;
    this.#byIndex[index] = region;
    this.#liveRegions = null;
    this.#repaint(region.base, region.size);
  }

  /**
   * Repaints the pages of `[base, base + size)`: the regions touching that span are
   * painted lowest first (priority, then mapping order), each clipped to the span, so
   * the cost follows the size of the change, not the size of the address space.
   */
  #repaint(base: number, size: number): void {
    const first = base >>> PAGE_BITS;
    const end = first + size / PAGE_SIZE;
    this.pageKind.fill(PAGE_UNMAPPED, first, end);
    this.pageRegion.fill(-1, first, end);
    const touching: number[] = [];
    this.#slots.forEach((s, i) => {
      if (s && s.region.base < base + size && base < s.region.base + s.region.size) {
        touching.push(i);
      }
    });
    touching.sort((a, b) => {
      const sa = this.#slots[a]!, sb = this.#slots[b]!;
      return sa.region.priority - sb.region.priority || sa.order - sb.order;
    });
    for (const i of touching) {
      const r = this.#slots[i]!.region;
      const kind = r.kind === "ram" ? PAGE_RAM : r.kind === "rom" ? PAGE_ROM : PAGE_MMIO;
      const from = Math.max(first, r.base >>> PAGE_BITS);
      const to = Math.min(end, (r.base + r.size) / PAGE_SIZE);
      this.pageKind.fill(kind, from, to);
      this.pageRegion.fill(i, from, to);
      this.pagesRepainted += to - from;
      if (r.dirtyPages) {
        const first = r.base >>> PAGE_BITS;
        for (let p = from; p < to; p++) if (!r.dirtyPages[p - first]) this.pageKind[p] = PAGE_ROM;
      }
    }
    this.generation++;
  }

  /** The region covering a physical address, if any. */
  regionAt(address: number): MemoryRegion | undefined {
    const index = this.pageRegion[address >>> PAGE_BITS];
    return index < 0 ? undefined : this.#byIndex[index];
  }

  read8(address: number): number {
    const page = address >>> PAGE_BITS;
    const kind = this.pageKind[page];
    if (kind === PAGE_RAM || kind === PAGE_ROM) {
      const r = this.#byIndex[this.pageRegion[page]];
      return r.bytes![address - r.base];
    }
    if (kind === PAGE_MMIO) {
      const r = this.#byIndex[this.pageRegion[page]];
      return r.handler!.read(address - r.base, 1) & 0xff;
    }
    return 0xff;
  }

  read16(address: number): number {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 2) {
      const page = address >>> PAGE_BITS;
      const kind = this.pageKind[page];
      if (kind === PAGE_RAM || kind === PAGE_ROM) {
        const r = this.#byIndex[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        return b[o] | (b[o + 1] << 8);
      }
      if (kind === PAGE_MMIO) {
        const r = this.#byIndex[this.pageRegion[page]];
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
        const r = this.#byIndex[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#byIndex[this.pageRegion[page]];
        return r.handler!.read(address - r.base, 4) >>> 0;
      }
      if (kind === PAGE_UNMAPPED) return 0xffffffff;
    }
    return (this.read16(address) | (this.read16((address + 2) >>> 0) << 16)) >>> 0;
  }

  write8(address: number, value: number): void {
    const page = address >>> PAGE_BITS;
    let kind = this.pageKind[page];
    if (kind === PAGE_ROM && this.#unprotect(page)) kind = PAGE_RAM;
    if (kind === PAGE_RAM) {
      const r = this.#byIndex[this.pageRegion[page]];
      r.bytes![address - r.base] = value;
    } else if (kind === PAGE_MMIO) {
      const r = this.#byIndex[this.pageRegion[page]];
      r.handler!.write(address - r.base, 1, value & 0xff);
    }
  }

  write16(address: number, value: number): void {
    if ((address & (PAGE_SIZE - 1)) <= PAGE_SIZE - 2) {
      const page = address >>> PAGE_BITS;
      let kind = this.pageKind[page];
      if (kind === PAGE_ROM && this.#unprotect(page)) kind = PAGE_RAM;
      if (kind === PAGE_RAM) {
        const r = this.#byIndex[this.pageRegion[page]];
        const o = address - r.base;
        r.bytes![o] = value;
        r.bytes![o + 1] = value >> 8;
        return;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#byIndex[this.pageRegion[page]];
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
      let kind = this.pageKind[page];
      if (kind === PAGE_ROM && this.#unprotect(page)) kind = PAGE_RAM;
      if (kind === PAGE_RAM) {
        const r = this.#byIndex[this.pageRegion[page]];
        const o = address - r.base;
        const b = r.bytes!;
        b[o] = value;
        b[o + 1] = value >> 8;
        b[o + 2] = value >> 16;
        b[o + 3] = value >> 24;
        return;
      }
      if (kind === PAGE_MMIO) {
        const r = this.#byIndex[this.pageRegion[page]];
        r.handler!.write(address - r.base, 4, value >>> 0);
        return;
      }
      if (kind !== PAGE_RAM) return;
    }
    this.write16(address, value & 0xffff);
    this.write16((address + 2) >>> 0, value >>> 16);
  }

  /**
   * Copies guest memory into `out` for a device's DMA. The copy sees the same flattened
   * view as the CPU: every page must be RAM or ROM at the priority that wins there. A
   * range touching MMIO or nothing is refused, before any byte moves, with a RangeError
   * the device turns into an error status for the guest.
   */
  dmaRead(address: number, out: Uint8Array): void {
    this.#dma(address, out.length, (r, o, done, n) => out.set(r.bytes!.subarray(o, o + n), done));
  }

  /**
   * Copies `data` into guest RAM for a device's DMA, with the same checks as
   * {@linkcode dmaRead}; the parts that land on ROM (a write-protected shadow) are dropped.
   */
  dmaWrite(address: number, data: Uint8Array): void {
    this.#dma(address, data.length, (r, o, done, n) => {
      if (r.kind !== "ram") return;
      r.bytes!.set(data.subarray(done, done + n), o);
      if (r.dirtyPages) {
        r.dirtyPages.fill(1, o >>> PAGE_BITS, ((o + n - 1) >>> PAGE_BITS) + 1);
        for (let p = (r.base + o) >>> PAGE_BITS; p <= (r.base + o + n - 1) >>> PAGE_BITS; p++) {
          if (this.pageKind[p] === PAGE_ROM && this.#byIndex[this.pageRegion[p]] === r) {
            this.pageKind[p] = PAGE_RAM;
          }
        }
      }
    });
  }

  /** True when `[address, address + length)` is all RAM or ROM in the flattened view. */
  isDmaAddressable(address: number, length: number): boolean {
    if (!Number.isInteger(address) || !Number.isInteger(length) || address < 0 || length < 0) {
      return false;
    }
    if (address + length > 2 ** this.addressBits) return false;
    if (length === 0) return true;
    const last = (address + length - 1) / PAGE_SIZE | 0;
    for (let p = address >>> PAGE_BITS; p <= last; p++) {
      const kind = this.pageKind[p];
      if (kind !== PAGE_RAM && kind !== PAGE_ROM) return false;
    }
    return true;
  }

  #dma(
    address: number,
    length: number,
    step: (r: MemoryRegion, offset: number, done: number, n: number) => void,
  ): void {
    if (!Number.isInteger(address) || address < 0 || address + length > 2 ** this.addressBits) {
      throw new RangeError(`DMA outside the address space at 0x${address.toString(16)}`);
    }
    if (!this.isDmaAddressable(address, length)) {
      let a = address;
      while (this.isDmaAddressable(a, 1)) a = (a & ~(PAGE_SIZE - 1)) + PAGE_SIZE;
      throw new RangeError(`DMA to unbacked guest address 0x${a.toString(16)}`);
    }
    // Walk page by page, merging pages that the same region serves contiguously, so a
    // higher-priority region in the middle of a RAM run is honoured.
    let done = 0;
    while (done < length) {
      const a = address + done;
      const index = this.pageRegion[a >>> PAGE_BITS];
      const r = this.#byIndex[index];
      let n = Math.min(length - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)));
      while (
        done + n < length && this.pageRegion[(a + n) >>> PAGE_BITS] === index
      ) {
        n = Math.min(length - done, n + PAGE_SIZE);
      }
      invariant(n > 0, "DMA step makes progress");
      step(r, a - r.base, done, n);
      done += n;
    }
  }
}
