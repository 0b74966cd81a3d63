// Programmable Attribute Map: what answers reads and writes in 0xc0000-0xfffff (shadow RAM or ROM)

import type { AddressSpace } from "../../../core/memory/address_space.ts";

/**
 * PAM overlays sit above plain RAM (priority 0) and are guest-programmed: a PCI BAR the
 * guest placed in the same window may share it, and the later mapping decodes.
 */
const PAM_PRIORITY = { priority: 1, overlap: true };

/** One PAM segment: 16 KiB from 0xc0000 to 0xeffff, and 64 KiB at 0xf0000. */
interface Segment {
  base: number;
  size: number;
  /** Configuration register (0x59..0x5f) and nibble (0 low, 1 high). */
  register: number;
  nibble: number;
}

function segments(): Segment[] {
  const out: Segment[] = [{ base: 0xf0000, size: 0x10000, register: 0x59, nibble: 1 }];
  for (let i = 0; i < 12; i++) {
    out.push({
      base: 0xc0000 + i * 0x4000,
      size: 0x4000,
      register: 0x5a + (i >> 1),
      nibble: i & 1,
    });
  }
  return out;
}

/**
 * The i440FX PAM registers (PAM0-PAM6 at config 0x59-0x5f). Each segment's two bits
 * are RE (reads from DRAM) and WE (writes to DRAM): 0 sends both to the PCI/ISA side
 * (the BIOS ROM alias for 0xe0000-0xfffff, nothing elsewhere), 1 is read-only RAM,
 * 2 is write-only RAM (reads from ROM), 3 is plain RAM. Firmware uses it to copy
 * itself into RAM and then write-protect that copy.
 */
export class Pam {
  #memory: AddressSpace;
  #ram: Uint8Array;
  #isaBios: Uint8Array | null;
  #segments = segments();
  #modes: number[];

  /**
   * @param ram guest RAM from address 0 (at least 1 MiB)
   * @param isaBios the ROM bytes seen at 0x100000 - its length (the last 128 KiB of the BIOS), or null
   */
  constructor(memory: AddressSpace, ram: Uint8Array, isaBios: Uint8Array | null) {
    this.#memory = memory;
    this.#ram = ram;
    this.#isaBios = isaBios;
    this.#modes = this.#segments.map(() => -1);
  }

  /** Applies the PAM registers (`config[0x59..0x5f]`), changing only segments that changed. */
  update(config: Uint8Array): void {
    this.#segments.forEach((seg, i) => {
      const mode = (config[seg.register] >> (seg.nibble * 4)) & 3;
      if (mode === this.#modes[i]) return;
      this.#modes[i] = mode;
      this.#apply(seg, mode);
    });
  }

  /** The mode (0..3) of the segment holding `address`. */
  modeAt(address: number): number {
    const i = this.#segments.findIndex((s) => address >= s.base && address < s.base + s.size);
    return i < 0 ? 3 : this.#modes[i];
  }

  /** The bytes the PCI/ISA side shows in a segment (the BIOS alias), or null. */
  #romFor(seg: Segment): Uint8Array | null {
    const bios = this.#isaBios;
    if (!bios) return null;
    const romBase = 0x100000 - bios.length;
    if (seg.base < romBase) return null;
    return bios.subarray(seg.base - romBase, seg.base - romBase + seg.size);
  }

  #apply(seg: Segment, mode: number): void {
    const name = `pam-${seg.base.toString(16)}`;
    this.#memory.remove(name);
    const ram = this.#ram.subarray(seg.base, seg.base + seg.size);
    const rom = this.#romFor(seg);
    switch (mode) {
      case 0:
        if (rom) {
          this.#memory.addRom(name, seg.base, rom, PAM_PRIORITY);
        } else {
          this.#memory.addMmio(name, seg.base, seg.size, {
            read: (_o, size) => (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1),
            write: () => {},
          }, PAM_PRIORITY);
        }
        break;
      case 1:
        // Read-only RAM: a ROM region over the RAM bytes ignores writes.
        this.#memory.addRom(name, seg.base, ram, PAM_PRIORITY);
        break;
      case 2:
        this.#memory.addMmio(name, seg.base, seg.size, {
          read: (o, size) => {
            let v = 0;
            for (let i = 0; i < size; i++) v |= (rom ? rom[o + i] : 0xff) << (8 * i);
            return v >>> 0;
          },
          write: (o, size, value) => {
            for (let i = 0; i < size; i++) ram[o + i] = value >>> (8 * i);
          },
        }, PAM_PRIORITY);
        break;
      default:
        break; // plain RAM shows through
    }
  }
}
