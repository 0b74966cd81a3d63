// The GD5446 register file over the VGA core: extended sequencer/graphics/CRTC registers, banks, write modes 4 and 5, BitBLT control, hardware cursor

import {
  CIRRUS_BLT_AUTOSTART,
  CIRRUS_BLT_BUSY,
  CIRRUS_BLT_FIFOUSED,
  CIRRUS_BLT_RESET,
  CIRRUS_BLT_START,
  CirrusBlitter,
} from "./cirrus_blt.ts";
import { VgaCore } from "./vga_core.ts";
import type { SvgaModes } from "./vga_render.ts";

/** The chip ID CR27 reports: GD5446 (0x2e << 2, the low bits are the revision). */
export const CIRRUS_ID_CLGD5446 = 0xb8;
/** SR06: writing 0x12 unlocks the extensions and reads back 0x12; anything else locks (0x0f). */
export const CIRRUS_SR6_UNLOCK = 0x12;
const CIRRUS_SR6_LOCKED = 0x0f;
/** SR07 bit 0: extended (SVGA) modes, where the window uses the Cirrus banks. */
export const CIRRUS_SR7_BPP_SVGA = 0x01;
/** SR07 bits 3-1: the pixel depth of the extended mode. */
const CIRRUS_SR7_BPP_MASK = 0x0e;
const CIRRUS_SR7_BPP_16_DOUBLEVCLK = 0x02;
const CIRRUS_SR7_BPP_24 = 0x04;
const CIRRUS_SR7_BPP_16 = 0x06;
const CIRRUS_SR7_BPP_32 = 0x08;
/** SR12 bits: cursor shown, DAC accesses reach the 16 hidden cursor colours, 64x64 cursor. */
export const CIRRUS_CURSOR_SHOW = 0x01;
const CIRRUS_CURSOR_HIDDENPEL = 0x02;
export const CIRRUS_CURSOR_LARGE = 0x04;
/** SR17 bits 2 and 6: memory-mapped BitBLT registers on, and where (0xb8000 or linear). */
const CIRRUS_MMIO_ENABLE = 0x04;
const CIRRUS_MMIO_USE_PCIADDR = 0x40;
/** GR0B bits: dual banks, extended write modes, 8- and 16-byte address shifts, 16 KiB banks. */
const CIRRUS_BANKING_DUAL = 0x01;
const CIRRUS_BANKING_SHIFT8 = 0x02;
const CIRRUS_BANKING_EXTWRITE = 0x04;
const CIRRUS_BANKING_SHIFT16 = 0x14;
const CIRRUS_BANKING_GRANULARITY_16K = 0x20;

/**
 * The BitBLT registers in memory-mapped order (offset in the block -> graphics
 * register), so MMIO and port accesses land in the same place.
 */
const BLT_MMIO_TO_GR: Record<number, number> = {
  0x00: 0x00,
  0x01: 0x10,
  0x02: 0x12,
  0x03: 0x14,
  0x04: 0x01,
  0x05: 0x11,
  0x06: 0x13,
  0x07: 0x15,
  0x08: 0x20,
  0x09: 0x21,
  0x0a: 0x22,
  0x0b: 0x23,
  0x0c: 0x24,
  0x0d: 0x25,
  0x0e: 0x26,
  0x0f: 0x27,
  0x10: 0x28,
  0x11: 0x29,
  0x12: 0x2a,
  0x14: 0x2c,
  0x15: 0x2d,
  0x16: 0x2e,
  0x17: 0x2f,
  0x18: 0x30,
  0x1a: 0x32,
  0x1b: 0x33,
  0x1c: 0x34,
  0x1d: 0x35,
  0x20: 0x38,
  0x21: 0x39,
  0x40: 0x31,
};

/** A 6-bit DAC component widened to 8 bits the way QEMU does (low bit repeated). */
function c6to8(v: number): number {
  v &= 0x3f;
  const b = v & 1;
  return (v << 2) | (b << 1) | b;
}

/**
 * The VGA core with the GD5446's extensions: the extended sequencer (SR06 unlock,
 * SR07 mode, SR0F/SR17 memory and bus configuration, SR10-SR13 cursor, SR1F clocks),
 * the graphics controller's bank registers (GR09/GR0A/GR0B), extended write modes 4
 * and 5 and the BitBLT register file, CR19-CR1D and the CR27 chip ID, and the hidden
 * DAC register behind four reads of 0x3c6.
 */
export class CirrusCore extends VgaCore implements SvgaModes {
  /** GR00/GR01 as written (the standard registers keep 4 bits; BitBLT colours use 8). */
  shadowGr0 = 0;
  shadowGr1 = 0;
  /** Reads of 0x3c6 since the last other DAC access; the fifth read shows the hidden DAC. */
  hiddenDacLock = 0;
  hiddenDac = 0;
  readonly hiddenPalette = new Uint8Array(48);
  /** Base and size of the two 32 KiB bank windows at 0xa0000 and 0xa8000. */
  readonly bankBase = new Int32Array(2);
  readonly bankLimit = new Int32Array(2);
  /** The hardware cursor's position in pixels (SR10/SR11 and the index's top bits). */
  cursorX = 0;
  cursorY = 0;
  readonly blitter: CirrusBlitter;
  /**
   * Called when the way the linear aperture must be served changes: plain memory, or
   * through {@linkcode readLinear}/{@linkcode writeLinear} (see {@linkcode linearDirect}).
   */
  onMemoryAccessChange: () => void = () => {};
  readonly #addrMask: number;

  constructor(vramBytes: number) {
    super(vramBytes);
    this.srIndexMask = 0xff;
    this.grIndexMask = 0xff;
    this.#addrMask = vramBytes - 1;
    this.blitter = new CirrusBlitter(this.vram);
    this.blitter.onWrite = (start, end) => this.markDirty(start, end);
  }

  override reset(): void {
    super.reset();
    this.sr[0x06] = CIRRUS_SR6_LOCKED;
    // QEMU's GD5446 power-on values: 4 MiB of 64-bit DRAM on PCI.
    this.sr[0x1f] = 0x2d;
    this.gr[0x18] = 0x0f;
    this.sr[0x0f] = 0x98;
    this.sr[0x17] = 0x20;
    this.sr[0x15] = 0x04;
    this.cr[0x27] = CIRRUS_ID_CLGD5446;
    this.shadowGr0 = this.shadowGr1 = 0;
    this.hiddenDacLock = 0;
    this.hiddenDac = 0;
    this.hiddenPalette.fill(0);
    this.cursorX = this.cursorY = 0;
    this.blitter?.reset();
    this.updateBanks();
    this.onMemoryAccessChange?.();
  }

  protected override readSeq(index: number): number {
    if (index <= 0x04) return super.readSeq(index);
    // The cursor position registers answer at every index whose low 5 bits are 0x10/0x11.
    if ((index & 0x1f) === 0x10) return this.sr[0x10];
    if ((index & 0x1f) === 0x11) return this.sr[0x11];
    return index <= 0x1f ? this.sr[index] : 0xff;
  }

  protected override writeSeq(index: number, value: number): void {
    if (index <= 0x04) {
      super.writeSeq(index, value);
    } else if (index === 0x06) {
      this.sr[0x06] = (value & 0x17) === CIRRUS_SR6_UNLOCK ? CIRRUS_SR6_UNLOCK : CIRRUS_SR6_LOCKED;
    } else if ((index & 0x1f) === 0x10) {
      // Bits 7-5 of the index are the low bits of the cursor coordinate.
      this.sr[0x10] = value;
      this.cursorX = (value << 3) | (index >> 5);
    } else if ((index & 0x1f) === 0x11) {
      this.sr[0x11] = value;
      this.cursorY = (value << 3) | (index >> 5);
    } else if (index === 0x17) {
      // Bits 3-5 report the bus type and memory size: read-only.
      this.sr[0x17] = (this.sr[0x17] & 0x38) | (value & 0xc7);
      this.onMemoryAccessChange();
    } else if (index <= 0x1f) {
      this.sr[index] = value;
      if (index === 0x07) this.onMemoryAccessChange();
    }
  }

  protected override readGfx(index: number): number {
    if (index === 0x00) return this.shadowGr0;
    if (index === 0x01) return this.shadowGr1;
    return index < 0x3a ? this.gr[index] : 0xff;
  }

  protected override writeGfx(index: number, value: number): void {
    switch (index) {
      case 0x00:
        this.shadowGr0 = value;
        super.writeGfx(index, value);
        break;
      case 0x01:
        this.shadowGr1 = value;
        super.writeGfx(index, value);
        break;
      case 0x05:
        // Bits 2 and 6 select the Cirrus extended write modes 4 and 5.
        this.gr[index] = value & 0x7f;
        this.updateWritePath();
        this.onMemoryAccessChange();
        break;
      case 0x09:
      case 0x0a:
      case 0x0b:
        this.gr[index] = value;
        this.updateBanks();
        if (index === 0x0b) this.onMemoryAccessChange();
        break;
      case 0x21:
      case 0x23:
      case 0x25:
      case 0x27:
        this.gr[index] = value & 0x1f;
        break;
      case 0x2a:
        this.gr[index] = value & 0x3f;
        // In autostart mode, writing the top byte of the destination starts the blit.
        if (this.gr[0x31] & CIRRUS_BLT_AUTOSTART) this.#startBlt();
        break;
      case 0x2e:
        this.gr[index] = value & 0x3f;
        break;
      case 0x31: {
        const old = this.gr[0x31];
        this.gr[0x31] = value;
        if ((old & CIRRUS_BLT_RESET) && !(value & CIRRUS_BLT_RESET)) this.#endBlt();
        else if (!(old & CIRRUS_BLT_START) && (value & CIRRUS_BLT_START)) this.#startBlt();
        break;
      }
      default:
        if (index <= 0x08) super.writeGfx(index, value);
        else if (index >= 0x10 && index < 0x3a) this.gr[index] = value;
    }
  }

  /**
   * Runs the blit GR20-GR33 describe. A screen-to-screen blit completes here; a
   * system-to-screen one leaves GR31 busy until the CPU has written its source.
   */
  #startBlt(): void {
    this.gr[0x31] |= CIRRUS_BLT_BUSY;
    const started = this.blitter.start({
      gr: this.gr,
      shadowGr0: this.shadowGr0,
      shadowGr1: this.shadowGr1,
      displayBpp: this.bpp(),
    });
    if (started && this.blitter.waiting) this.onMemoryAccessChange();
    else this.#endBlt();
  }

  /** A blit finished or was reset: GR31 idle, the window and aperture back to memory. */
  #endBlt(): void {
    this.gr[0x31] &= ~(CIRRUS_BLT_START | CIRRUS_BLT_BUSY | CIRRUS_BLT_FIFOUSED);
    const wasWaiting = this.blitter.waiting;
    this.blitter.reset();
    if (wasWaiting) this.onMemoryAccessChange();
  }

  /** One byte of a system-to-screen blit's source. */
  #feedBlt(value: number): void {
    if (this.blitter.feed(value)) this.#endBlt();
  }

  protected override readCrtc(index: number): number {
    if (index <= 0x18) return super.readCrtc(index);
    switch (index) {
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x25:
      case 0x27:
        return this.cr[index];
      case 0x22: // graphics data latch selected by GR04
        return (this.latch >>> ((this.gr[0x04] & 3) << 3)) & 0xff;
      case 0x24: // attribute controller toggle readback
        return this.arFlipFlop << 7;
      case 0x26: // attribute controller index readback
        return this.arIndex & 0x3f;
      default:
        return 0xff;
    }
  }

  protected override writeCrtc(index: number, value: number): void {
    if (index <= 0x18) super.writeCrtc(index, value);
    else if (index >= 0x19 && index <= 0x1d) this.cr[index] = value;
  }

  /** 0x3c6: the PEL mask, except that the fifth read in a row returns the hidden DAC. */
  protected override readPelMask(): number {
    if (++this.hiddenDacLock === 5) {
      this.hiddenDacLock = 0;
      return this.hiddenDac;
    }
    return this.dacMask;
  }

  /** A write after four reads of 0x3c6 goes to the hidden DAC (its colour mode). */
  protected override writePelMask(value: number): void {
    if (this.hiddenDacLock === 4) this.hiddenDac = value;
    else this.dacMask = value;
    this.hiddenDacLock = 0;
  }

  protected override readPelWriteIndex(): number {
    this.hiddenDacLock = 0;
    return this.dacWriteIndex;
  }

  protected override readPalette(): number {
    if (!(this.sr[0x12] & CIRRUS_CURSOR_HIDDENPEL)) return super.readPalette();
    const value = this.hiddenPalette[(this.dacReadIndex & 0x0f) * 3 + this.dacSubIndex];
    if (++this.dacSubIndex === 3) {
      this.dacSubIndex = 0;
      this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
    }
    return value;
  }

  protected override writePalette(value: number): void {
    if (!(this.sr[0x12] & CIRRUS_CURSOR_HIDDENPEL)) {
      super.writePalette(value);
      return;
    }
    this.dacCache[this.dacSubIndex] = value & 0x3f;
    if (++this.dacSubIndex === 3) {
      this.hiddenPalette.set(this.dacCache, (this.dacWriteIndex & 0x0f) * 3);
      this.dacSubIndex = 0;
      this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
    }
  }

  /**
   * Recomputes the bank windows from GR09/GR0A/GR0B: one 64 KiB bank (GR09) or two
   * 32 KiB banks (GR09 at 0xa0000, GR0A at 0xa8000), in 4 KiB or 16 KiB steps.
   */
  updateBanks(): void {
    const gr = this.gr;
    const size = this.vram.length;
    for (let bank = 0; bank < 2; bank++) {
      let offset = gr[0x0b] & CIRRUS_BANKING_DUAL ? gr[0x09 + bank] : gr[0x09];
      offset *= gr[0x0b] & CIRRUS_BANKING_GRANULARITY_16K ? 0x4000 : 0x1000;
      let limit = size > offset ? size - offset : 0;
      if (!(gr[0x0b] & CIRRUS_BANKING_DUAL) && bank === 1) {
        // A single bank spans both halves: the second continues where the first ends.
        if (limit > 0x8000) {
          offset += 0x8000;
          limit -= 0x8000;
        } else {
          limit = 0;
        }
      }
      this.bankBase[bank] = limit > 0 ? offset : 0;
      this.bankLimit[bank] = limit;
    }
  }

  /** True in the extended (SVGA) modes, where the window is banked linear VRAM. */
  get extendedMode(): boolean {
    return (this.sr[0x07] & CIRRUS_SR7_BPP_SVGA) !== 0;
  }

  /**
   * True when the linear aperture is plain VRAM: no memory-mapped registers at its
   * end, no blit waiting for data, no address shift and no extended write mode. Else
   * every access goes through {@linkcode readLinear} and {@linkcode writeLinear}.
   */
  get linearDirect(): boolean {
    const gr = this.gr;
    if ((this.sr[0x17] & 0x44) === 0x44 || this.blitter.waiting) return false;
    if (gr[0x0b] & (CIRRUS_BANKING_SHIFT16 | CIRRUS_BANKING_SHIFT8)) return false;
    const mode = gr[0x05] & 7;
    return mode < 4 || mode > 5 || !(gr[0x0b] & CIRRUS_BANKING_EXTWRITE);
  }

  // ---- what the renderer reads (SvgaModes) ------------------------------------------

  /** Bits per pixel of the extended mode (8, 15, 16, 24, 32), or 0 in a VGA mode. */
  bpp(): number {
    if (!this.extendedMode) return 0;
    switch (this.sr[0x07] & CIRRUS_SR7_BPP_MASK) {
      case CIRRUS_SR7_BPP_16_DOUBLEVCLK:
      case CIRRUS_SR7_BPP_16:
        // The hidden DAC picks 5-6-5 (XGA) over 5-5-5 (Sierra).
        return (this.hiddenDac & 0x0f) === 1 ? 16 : 15;
      case CIRRUS_SR7_BPP_24:
        return 24;
      case CIRRUS_SR7_BPP_32:
        return 32;
      default:
        return 8;
    }
  }

  /** CR0C/CR0D with CR1B bits 0, 2-3 and CR1D bit 7 as the top bits, in bytes. */
  startAddress(): number {
    const cr = this.cr;
    const words = (cr[0x0c] << 8) | cr[0x0d] | ((cr[0x1b] & 0x01) << 16) |
      ((cr[0x1b] & 0x0c) << 15) | ((cr[0x1d] & 0x80) << 12);
    return words * 4;
  }

  /** CR13 with CR1B bit 4 as bit 8, in units of 8 bytes. */
  lineOffset(): number {
    return (this.cr[0x13] | ((this.cr[0x1b] & 0x10) << 4)) << 3;
  }

  /** CR1A bit 0 (interlace) doubles the displayed lines. */
  height(): number {
    const cr = this.cr;
    const lines = (cr[0x12] | ((cr[0x07] & 0x02) << 7) | ((cr[0x07] & 0x40) << 3)) + 1;
    return cr[0x1a] & 1 ? lines * 2 : lines;
  }

  /** QEMU draws its Cirrus screen itself (never sharing VRAM) while the cursor is on. */
  forceShadow(): boolean {
    return (this.sr[0x12] & CIRRUS_CURSOR_SHOW) !== 0;
  }

  /** The display lines the hardware cursor covers while it is shown. */
  cursorBand(): [number, number] {
    if (!(this.sr[0x12] & CIRRUS_CURSOR_SHOW)) return [0, 0];
    return [this.cursorY, this.cursorY + (this.sr[0x12] & CIRRUS_CURSOR_LARGE ? 64 : 32)];
  }

  /**
   * Draws the hardware cursor over display line `y`: 32x32 or 64x64 pixels of two
   * bit planes from the last 16 KiB of VRAM (SR13 picks the image), where 01 inverts,
   * 10 is hidden colour 0 and 11 hidden colour 15.
   */
  drawCursor(row: Uint32Array, y: number, width: number): void {
    const sr = this.sr;
    if (!(sr[0x12] & CIRRUS_CURSOR_SHOW)) return;
    const large = (sr[0x12] & CIRRUS_CURSOR_LARGE) !== 0;
    const size = large ? 64 : 32;
    if (y < this.cursorY || y >= this.cursorY + size) return;
    const x1 = this.cursorX;
    if (x1 >= width) return;
    const vram = this.vram;
    let at = vram.length - 16 * 1024;
    let planeOffset: number;
    if (large) {
      at += (sr[0x13] & 0x3c) * 256 + (y - this.cursorY) * 16;
      planeOffset = 8;
    } else {
      at += (sr[0x13] & 0x3f) * 256 + (y - this.cursorY) * 4;
      planeOffset = 128;
    }
    const p = this.hiddenPalette;
    const color0 = (c6to8(p[0]) << 16) | (c6to8(p[1]) << 8) | c6to8(p[2]);
    const color1 = (c6to8(p[45]) << 16) | (c6to8(p[46]) << 8) | c6to8(p[47]);
    const w = Math.min(size, width - x1);
    for (let x = 0; x < w; x++) {
      const shift = 7 - (x & 7);
      const b0 = (vram[(at + (x >> 3)) & this.#addrMask] >> shift) & 1;
      const b1 = (vram[(at + planeOffset + (x >> 3)) & this.#addrMask] >> shift) & 1;
      const o = x1 + x;
      if (b0 && b1) row[o] = color1;
      else if (b1) row[o] = color0;
      else if (b0) row[o] ^= 0xffffff;
    }
  }

  // ---- memory --------------------------------------------------------------------

  /** The VRAM address of a linear or bank offset after GR0B's address shift. */
  #shifted(address: number): number {
    const gr0b = this.gr[0x0b];
    if ((gr0b & CIRRUS_BANKING_SHIFT16) === CIRRUS_BANKING_SHIFT16) address *= 16;
    else if (gr0b & CIRRUS_BANKING_SHIFT8) address *= 8;
    return address & this.#addrMask;
  }

  /** A CPU byte through write modes 0-3 (a plain store), or 4 and 5 (colour expansion). */
  #writeVram(address: number, value: number): void {
    const gr = this.gr;
    const mode = gr[0x05] & 7;
    if (mode < 4 || mode > 5 || !(gr[0x0b] & CIRRUS_BANKING_EXTWRITE)) {
      this.vram[address] = value;
      this.dirtyPages[address >>> 12] = 1;
      return;
    }
    this.markDirty(address, address + 16);
    // Each bit of the byte is a pixel: 1 gets the foreground (GR01), 0 the background
    // (GR00) in mode 5 and is left alone in mode 4; 16-bit pixels with the 16x shift.
    const wide = (gr[0x0b] & CIRRUS_BANKING_SHIFT16) === CIRRUS_BANKING_SHIFT16;
    const vram = this.vram;
    const mask = this.#addrMask;
    for (let x = 0; x < 8; x++, value <<= 1) {
      const set = (value & 0x80) !== 0;
      if (!set && mode !== 5) continue;
      if (wide) {
        const at = (address + 2 * x) & mask & ~1;
        vram[at] = set ? this.shadowGr1 : this.shadowGr0;
        vram[at + 1] = set ? gr[0x11] : gr[0x10];
      } else {
        vram[(address + x) & mask] = set ? this.shadowGr1 : this.shadowGr0;
      }
    }
  }

  override readWindow(offset: number): number {
    if (!this.extendedMode) return super.readWindow(offset);
    if (offset < 0x10000) {
      const address = this.#bankAddress(offset);
      return address < 0 ? 0xff : this.vram[address];
    }
    if (offset >= 0x18000 && offset < 0x18100 && this.#mmioAtB8000()) {
      return this.readBlt(offset & 0xff);
    }
    return 0xff;
  }

  override writeWindow(offset: number, value: number): void {
    if (!this.extendedMode) {
      super.writeWindow(offset, value);
      return;
    }
    if (offset < 0x10000) {
      if (this.blitter.waiting) {
        this.#feedBlt(value);
        return;
      }
      const address = this.#bankAddress(offset);
      if (address >= 0) this.#writeVram(address, value);
    } else if (offset >= 0x18000 && offset < 0x18100 && this.#mmioAtB8000()) {
      this.writeBlt(offset & 0xff, value);
    }
  }

  #bankAddress(offset: number): number {
    const bank = offset >> 15;
    const within = offset & 0x7fff;
    if (within >= this.bankLimit[bank]) return -1;
    return this.#shifted(this.bankBase[bank] + within);
  }

  #mmioAtB8000(): boolean {
    return (this.sr[0x17] & (CIRRUS_MMIO_ENABLE | CIRRUS_MMIO_USE_PCIADDR)) === CIRRUS_MMIO_ENABLE;
  }

  /** True when an aperture offset is the BitBLT register block at the end of VRAM (SR17 0x44). */
  #linearMmio(address: number): boolean {
    const mmioMask = this.vram.length - 256;
    return (this.sr[0x17] & 0x44) === 0x44 && (address & mmioMask) === mmioMask;
  }

  /** A byte read of the linear aperture's VRAM part (offset within the VRAM size). */
  readLinear(offset: number): number {
    const address = offset & this.#addrMask;
    if (this.#linearMmio(address)) return this.readBlt(address & 0xff);
    return this.vram[this.#shifted(address)];
  }

  /** A byte write of the linear aperture's VRAM part. */
  writeLinear(offset: number, value: number): void {
    const address = offset & this.#addrMask;
    if (this.#linearMmio(address)) this.writeBlt(address & 0xff, value);
    else if (this.blitter.waiting) this.#feedBlt(value);
    else this.#writeVram(this.#shifted(address), value);
  }

  /** A byte write of the aperture's BitBLT source window (16 MiB up). */
  writeBltSource(value: number): void {
    if (this.blitter.waiting) this.#feedBlt(value);
  }

  /** A read of the memory-mapped BitBLT registers. */
  readBlt(offset: number): number {
    const index = BLT_MMIO_TO_GR[offset];
    return index === undefined ? 0xff : this.readGfx(index);
  }

  /** A write of the memory-mapped BitBLT registers. */
  writeBlt(offset: number, value: number): void {
    const index = BLT_MMIO_TO_GR[offset];
    if (index !== undefined) this.writeGfx(index, value);
  }

  override save(): Record<string, number | Uint8Array> {
    return {
      ...super.save(),
      cirrus: Uint8Array.from([this.shadowGr0, this.shadowGr1, this.hiddenDacLock, this.hiddenDac]),
      hiddenPalette: this.hiddenPalette.slice(),
      cursor: this.cursorX | (this.cursorY << 16),
    };
  }

  /** Restores {@linkcode save}'s output; a system-to-screen blit in progress is dropped. */
  override load(state: Record<string, unknown>): void {
    super.load(state);
    const c = state.cirrus as Uint8Array;
    [this.shadowGr0, this.shadowGr1, this.hiddenDacLock, this.hiddenDac] = c;
    this.hiddenPalette.set(state.hiddenPalette as Uint8Array);
    const cursor = (state.cursor as number | undefined) ?? 0;
    this.cursorX = cursor & 0xffff;
    this.cursorY = cursor >>> 16;
    this.blitter.reset();
    this.gr[0x31] &= ~(CIRRUS_BLT_START | CIRRUS_BLT_BUSY | CIRRUS_BLT_FIFOUSED);
    this.updateBanks();
    this.onMemoryAccessChange();
  }
}
