// The Bochs VBE "dispi" interface (ports 0x1ce/0x1cf): resolution, depth, bank and framebuffer offsets

import {
  VGA_CRTC_H_DISP,
  VGA_CRTC_LINE_COMPARE,
  VGA_CRTC_MAX_SCAN,
  VGA_CRTC_MODE,
  VGA_CRTC_OFFSET,
  VGA_CRTC_OVERFLOW,
  VGA_CRTC_V_DISP_END,
  VGA_GFX_MISC,
  VGA_GFX_MODE,
  type VgaCore,
} from "./vga_core.ts";

/** The index and data ports (Bochs vbe.h). */
export const VBE_DISPI_IOPORT_INDEX = 0x1ce;
export const VBE_DISPI_IOPORT_DATA = 0x1cf;

/** Register indexes. */
export const VBE_DISPI_INDEX_ID = 0x0;
export const VBE_DISPI_INDEX_XRES = 0x1;
export const VBE_DISPI_INDEX_YRES = 0x2;
export const VBE_DISPI_INDEX_BPP = 0x3;
export const VBE_DISPI_INDEX_ENABLE = 0x4;
export const VBE_DISPI_INDEX_BANK = 0x5;
export const VBE_DISPI_INDEX_VIRT_WIDTH = 0x6;
export const VBE_DISPI_INDEX_VIRT_HEIGHT = 0x7;
export const VBE_DISPI_INDEX_X_OFFSET = 0x8;
export const VBE_DISPI_INDEX_Y_OFFSET = 0x9;
export const VBE_DISPI_INDEX_VIDEO_MEMORY_64K = 0xa;
/** Number of plain registers (ID..Y_OFFSET). */
export const VBE_DISPI_INDEX_NB = 0xa;

/** Interface versions a guest may ask for; the device answers the newest by default. */
export const VBE_DISPI_ID0 = 0xb0c0;
export const VBE_DISPI_ID5 = 0xb0c5;

/** ENABLE register bits. */
export const VBE_DISPI_ENABLED = 0x01;
export const VBE_DISPI_GETCAPS = 0x02;
export const VBE_DISPI_8BIT_DAC = 0x20;
export const VBE_DISPI_LFB_ENABLED = 0x40;
export const VBE_DISPI_NOCLEARMEM = 0x80;

/** Limits reported with GETCAPS (QEMU's values). */
export const VBE_DISPI_MAX_XRES = 16000;
export const VBE_DISPI_MAX_YRES = 12000;
export const VBE_DISPI_MAX_BPP = 32;

/**
 * The Bochs display interface on top of a {@linkcode VgaCore}: a guest writes the mode
 * and sets ENABLED, and the VGA switches to a linear (chain-4) view of VRAM with a
 * 64 KiB bank at 0xa0000 and the whole VRAM at the linear framebuffer BAR.
 */
export class BochsDispi {
  readonly regs = new Uint16Array(16);
  index = 0;
  /** Bytes per scan line of the current mode. */
  lineOffset = 0;
  /** Byte offset of the first visible pixel. */
  startAddress = 0;
  #core: VgaCore;

  constructor(core: VgaCore) {
    this.#core = core;
    this.reset();
  }

  reset(): void {
    this.regs.fill(0);
    this.regs[VBE_DISPI_INDEX_ID] = VBE_DISPI_ID5;
    this.index = 0;
    this.lineOffset = 0;
    this.startAddress = 0;
  }

  /** True while a VBE mode is on. */
  get enabled(): boolean {
    return (this.regs[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED) !== 0;
  }

  /** Reads register `index`. */
  read(index: number): number {
    if (index < VBE_DISPI_INDEX_NB) {
      if (this.regs[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_GETCAPS) {
        if (index === VBE_DISPI_INDEX_XRES) return VBE_DISPI_MAX_XRES;
        if (index === VBE_DISPI_INDEX_YRES) return VBE_DISPI_MAX_YRES;
        if (index === VBE_DISPI_INDEX_BPP) return VBE_DISPI_MAX_BPP;
      }
      return this.regs[index];
    }
    if (index === VBE_DISPI_INDEX_VIDEO_MEMORY_64K) return this.#core.vram.length >>> 16;
    return 0;
  }

  /** Writes register `index`. */
  write(index: number, value: number): void {
    const r = this.regs;
    value &= 0xffff;
    switch (index) {
      case VBE_DISPI_INDEX_ID:
        if (value >= VBE_DISPI_ID0 && value <= VBE_DISPI_ID5) r[index] = value;
        break;
      case VBE_DISPI_INDEX_XRES:
      case VBE_DISPI_INDEX_YRES:
      case VBE_DISPI_INDEX_BPP:
      case VBE_DISPI_INDEX_VIRT_WIDTH:
      case VBE_DISPI_INDEX_X_OFFSET:
      case VBE_DISPI_INDEX_Y_OFFSET:
        r[index] = value;
        this.#fixup();
        this.#programVga();
        break;
      case VBE_DISPI_INDEX_BANK: {
        // Banks are 64 KiB; a bank past the end of VRAM wraps like QEMU's bank mask.
        const bank = value & ((this.#core.vram.length >>> 16) - 1);
        r[index] = bank;
        this.#core.bankOffset = bank << 16;
        break;
      }
      case VBE_DISPI_INDEX_ENABLE:
        if ((value & VBE_DISPI_ENABLED) && !this.enabled) {
          r[VBE_DISPI_INDEX_VIRT_WIDTH] = 0;
          r[VBE_DISPI_INDEX_X_OFFSET] = 0;
          r[VBE_DISPI_INDEX_Y_OFFSET] = 0;
          r[VBE_DISPI_INDEX_ENABLE] |= VBE_DISPI_ENABLED;
          this.#fixup();
          this.#programVga();
          if (!(value & VBE_DISPI_NOCLEARMEM)) {
            this.#core.vram.fill(0, 0, r[VBE_DISPI_INDEX_YRES] * this.lineOffset);
          }
        } else {
          this.#core.bankOffset = 0;
        }
        this.#core.dac8Bit = (value & VBE_DISPI_8BIT_DAC) !== 0;
        r[index] = value;
        this.#core.vbeChain4 = this.enabled && r[VBE_DISPI_INDEX_BPP] !== 4;
        break;
    }
  }

  /** Pulls the registers to the nearest mode that fits in VRAM (the interface has no errors). */
  #fixup(): void {
    if (!this.enabled) return;
    const r = this.regs;
    let bits: number;
    switch (r[VBE_DISPI_INDEX_BPP]) {
      case 4:
      case 8:
      case 16:
      case 24:
      case 32:
        bits = r[VBE_DISPI_INDEX_BPP];
        break;
      case 15:
        bits = 16;
        break;
      default:
        bits = r[VBE_DISPI_INDEX_BPP] = 8;
    }
    r[VBE_DISPI_INDEX_XRES] = Math.min(r[VBE_DISPI_INDEX_XRES] & ~7 || 8, VBE_DISPI_MAX_XRES);
    r[VBE_DISPI_INDEX_VIRT_WIDTH] = Math.max(
      Math.min(r[VBE_DISPI_INDEX_VIRT_WIDTH] & ~7, VBE_DISPI_MAX_XRES),
      r[VBE_DISPI_INDEX_XRES],
    );
    const vramBytes = this.#core.vram.length;
    const lineBytes = (r[VBE_DISPI_INDEX_VIRT_WIDTH] * bits) >>> 3;
    const maxY = Math.floor(vramBytes / lineBytes);
    r[VBE_DISPI_INDEX_YRES] = Math.min(r[VBE_DISPI_INDEX_YRES] || 1, VBE_DISPI_MAX_YRES, maxY);
    r[VBE_DISPI_INDEX_X_OFFSET] = Math.min(r[VBE_DISPI_INDEX_X_OFFSET], VBE_DISPI_MAX_XRES);
    r[VBE_DISPI_INDEX_Y_OFFSET] = Math.min(r[VBE_DISPI_INDEX_Y_OFFSET], VBE_DISPI_MAX_YRES);
    let offset = ((r[VBE_DISPI_INDEX_X_OFFSET] * bits) >>> 3) +
      r[VBE_DISPI_INDEX_Y_OFFSET] * lineBytes;
    if (offset + r[VBE_DISPI_INDEX_YRES] * lineBytes > vramBytes) {
      r[VBE_DISPI_INDEX_Y_OFFSET] = 0;
      offset = (r[VBE_DISPI_INDEX_X_OFFSET] * bits) >>> 3;
      if (offset + r[VBE_DISPI_INDEX_YRES] * lineBytes > vramBytes) {
        r[VBE_DISPI_INDEX_X_OFFSET] = 0;
        offset = 0;
      }
    }
    r[VBE_DISPI_INDEX_VIRT_HEIGHT] = maxY;
    this.lineOffset = lineBytes;
    this.startAddress = offset;
  }

  /** Puts the VGA registers in a graphics mode matching the VBE mode (for code that reads them). */
  #programVga(): void {
    if (!this.enabled) return;
    const core = this.#core;
    const gr = core.gr;
    const cr = core.cr;
    // Graphics mode, memory map 1 (the 64 KiB bank window at 0xa0000).
    gr[VGA_GFX_MISC] = (gr[VGA_GFX_MISC] & ~0x0c) | 0x05;
    cr[VGA_CRTC_MODE] |= 3;
    cr[VGA_CRTC_OFFSET] = this.lineOffset >>> 3;
    cr[VGA_CRTC_H_DISP] = (this.regs[VBE_DISPI_INDEX_XRES] >>> 3) - 1;
    const h = this.regs[VBE_DISPI_INDEX_YRES] - 1;
    cr[VGA_CRTC_V_DISP_END] = h;
    cr[VGA_CRTC_OVERFLOW] = (cr[VGA_CRTC_OVERFLOW] & ~0x42) | ((h >> 7) & 0x02) |
      ((h >> 3) & 0x40) | 0x10;
    cr[VGA_CRTC_LINE_COMPARE] = 0xff;
    cr[VGA_CRTC_MAX_SCAN] = (cr[VGA_CRTC_MAX_SCAN] | 0x40) & ~0x9f;
    const shift = this.regs[VBE_DISPI_INDEX_BPP] === 4 ? 0 : 2;
    gr[VGA_GFX_MODE] = (gr[VGA_GFX_MODE] & ~0x60) | (shift << 5);
    core.vbeChain4 = this.regs[VBE_DISPI_INDEX_BPP] !== 4;
  }

  /** A copy of the state. */
  save(): Record<string, number | Uint16Array> {
    return {
      regs: this.regs.slice(),
      index: this.index,
      lineOffset: this.lineOffset,
      startAddress: this.startAddress,
    };
  }

  load(state: Record<string, unknown>): void {
    this.regs.set(state.regs as Uint16Array);
    this.index = state.index as number;
    this.lineOffset = state.lineOffset as number;
    this.startAddress = state.startAddress as number;
  }
}
