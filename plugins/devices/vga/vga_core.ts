// The VGA register file and video memory: ports 0x3b0-0x3df and the 0xa0000-0xbffff window

import {
  VGA_ATC_COLOR_PAGE,
  VGA_ATC_COUNT,
  VGA_ATC_MODE,
  VGA_ATC_PEL,
  VGA_ATC_PLANE_ENABLE,
  VGA_ATT_R,
  VGA_ATT_W,
  VGA_CRT_DC,
  VGA_CRT_DM,
  VGA_CRT_IC,
  VGA_CRT_IM,
  VGA_CRTC_H_DISP,
  VGA_CRTC_LINE_COMPARE,
  VGA_CRTC_MAX_SCAN,
  VGA_CRTC_OFFSET,
  VGA_CRTC_OVERFLOW,
  VGA_CRTC_START_HI,
  VGA_CRTC_START_LO,
  VGA_CRTC_V_DISP_END,
  VGA_CRTC_V_SYNC_END,
  VGA_ENABLE,
  VGA_FTC_R,
  VGA_GFX_BIT_MASK,
  VGA_GFX_COMPARE_MASK,
  VGA_GFX_COMPARE_VALUE,
  VGA_GFX_D,
  VGA_GFX_DATA_ROTATE,
  VGA_GFX_I,
  VGA_GFX_MISC,
  VGA_GFX_MODE,
  VGA_GFX_PLANE_READ,
  VGA_GFX_SR_ENABLE,
  VGA_GFX_SR_VALUE,
  VGA_GR05_HOST_ODD_EVEN,
  VGA_GR05_READ_MODE_1,
  VGA_IS0_R,
  VGA_IS1_DE,
  VGA_IS1_RC,
  VGA_IS1_RM,
  VGA_IS1_VR,
  VGA_MIS_COLOR,
  VGA_MIS_R,
  VGA_MIS_W,
  VGA_PEL_D,
  VGA_PEL_IR,
  VGA_PEL_IW,
  VGA_PEL_MSK,
  VGA_SEQ_D,
  VGA_SEQ_I,
  VGA_SEQ_MEMORY_MODE,
  VGA_SEQ_PLANE_WRITE,
  VGA_SR04_CHN_4M,
  VGA_SR04_SEQ_MODE,
} from "./vga_regs.ts";

export * from "./vga_regs.ts";

/** Bits each standard register implements (the rest read as zero). */
const SR_MASK = [0x03, 0x3d, 0x0f, 0x3f, 0x0e];
const GR_MASK = [0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff];

/** A 4-bit plane mask expanded to one byte lane per plane (plane 0 in the low byte). */
const MASK16 = new Uint32Array(16);
for (let i = 0; i < 16; i++) {
  MASK16[i] = ((i & 1 ? 0xff : 0) | (i & 2 ? 0xff00 : 0) | (i & 4 ? 0xff0000 : 0) |
    (i & 8 ? 0xff000000 : 0)) >>> 0;
}

/**
 * The common VGA: sequencer, graphics controller, CRT controller, attribute
 * controller, DAC and the 128 KiB legacy memory window over VRAM.
 *
 * VRAM keeps the four planes interleaved: plane `p` at plane offset `o` is byte
 * `(o << 2) | p`, so one 32-bit little-endian word holds the four bytes the latches
 * load. Chain-4 mode then addresses VRAM linearly, as the linear framebuffer and the
 * Bochs VBE bank window do. Odd/even mode follows the VGA: A0 picks the even (0, 2)
 * or odd (1, 3) planes and the plane offset is the address with A0 cleared.
 */
export class VgaCore {
  /** Video memory (a power of two, at least 256 KiB). */
  readonly vram: Uint8Array;
  /** The same memory as 32-bit words: one word is one plane offset across the 4 planes. */
  readonly vram32: Uint32Array;
  /** Sequencer, graphics and CRTC register files (256 each so extended indexes fit). */
  readonly sr = new Uint8Array(256);
  readonly gr = new Uint8Array(256);
  readonly cr = new Uint8Array(256);
  readonly ar = new Uint8Array(32);
  /** The DAC: 256 entries of red, green, blue (6 bits each, 8 with the VBE 8-bit DAC). */
  readonly palette = new Uint8Array(768);
  srIndex = 0;
  grIndex = 0;
  crIndex = 0;
  arIndex = 0;
  /** The attribute controller's index/data flip-flop: 0 means the next 0x3c0 write is an index. */
  arFlipFlop = 0;
  misc = 0;
  featureControl = 0;
  vgaEnable = 1;
  st01 = 0;
  dacState = 0;
  dacReadIndex = 0;
  dacWriteIndex = 0;
  dacSubIndex = 0;
  readonly dacCache = new Uint8Array(3);
  dacMask = 0xff;
  /** The four 8-bit latches as one word (plane 0 in the low byte). */
  latch = 0;
  /** VRAM offset added to the 64 KiB window at 0xa0000 (the VBE bank). */
  bankOffset = 0;
  /** The VBE interface is on: its mode wins over the sequencer's memory mode. */
  vbeChain4 = false;
  /** DAC entries take 8 bits (VBE_DISPI_8BIT_DAC). */
  dac8Bit = false;
  /** True while the write path is the plain one: mode 0, no rotate, no set/reset, all bits. */
  #plainWrite = true;
  /**
   * One flag per 4 KiB page of VRAM, set by every write the adapter sees (and, through
   * the address space's write tracking, by the CPU's writes to the linear framebuffer);
   * the renderer redraws only lines on flagged pages and then clears them.
   */
  readonly dirtyPages: Uint8Array;
  /** Called after the renderer cleared {@linkcode dirtyPages} (the adapter re-arms its tracking). */
  onDirtyTaken: () => void = () => {};
  /** Per-read mask of which sequencer index bits exist (Cirrus extends the index). */
  protected srIndexMask = 0x07;
  protected grIndexMask = 0x0f;

  constructor(vramBytes: number) {
    if (vramBytes < 0x40000 || vramBytes & (vramBytes - 1)) {
      throw new RangeError("VGA memory must be a power of two of at least 256 KiB");
    }
    this.vram = new Uint8Array(vramBytes);
    this.vram32 = new Uint32Array(this.vram.buffer);
    this.dirtyPages = new Uint8Array(vramBytes >>> 12).fill(1);
  }

  /** Flags the pages of VRAM bytes `[start, end)`; a range past the end wraps to the start. */
  markDirty(start: number, end: number): void {
    const size = this.vram.length;
    if (end - start >= size) {
      this.dirtyPages.fill(1);
      return;
    }
    start &= size - 1;
    end = start + (end - start);
    if (end <= size) this.dirtyPages.fill(1, start >>> 12, ((end - 1) >>> 12) + 1);
    else {
      this.dirtyPages.fill(1, start >>> 12);
      this.dirtyPages.fill(1, 0, ((end - size - 1) >>> 12) + 1);
    }
  }

  /** True when any page of VRAM bytes `[start, end)` is flagged (a range past the end counts as dirty). */
  isDirty(start: number, end: number): boolean {
    if (start < 0 || end > this.vram.length) return true;
    const pages = this.dirtyPages;
    for (let p = start >>> 12, last = (end - 1) >>> 12; p <= last; p++) if (pages[p]) return true;
    return false;
  }

  /** The renderer has drawn every flagged page: clears the flags. */
  takeDirty(): void {
    this.dirtyPages.fill(0);
    this.onDirtyTaken();
  }

  /** Power-on state: registers cleared (the VGA BIOS programs a mode), VRAM kept. */
  reset(): void {
    this.sr.fill(0);
    this.gr.fill(0);
    this.cr.fill(0);
    this.ar.fill(0);
    this.palette.fill(0);
    this.dacCache.fill(0);
    this.srIndex =
      this.grIndex =
      this.crIndex =
      this.arIndex =
      this.arFlipFlop =
        0;
    this.misc = this.featureControl = this.st01 = 0;
    this.vgaEnable = 1;
    this.dacState =
      this.dacReadIndex =
      this.dacWriteIndex =
      this.dacSubIndex =
        0;
    this.dacMask = 0xff;
    this.latch = 0;
    this.bankOffset = 0;
    this.vbeChain4 = false;
    this.dac8Bit = false;
    this.updateWritePath();
  }

  /** Recomputes the write fast path after a graphics controller write. */
  protected updateWritePath(): void {
    const gr = this.gr;
    this.#plainWrite = (gr[VGA_GFX_MODE] & 3) === 0 && gr[VGA_GFX_DATA_ROTATE] === 0 &&
      (gr[VGA_GFX_SR_ENABLE] & 0x0f) === 0 && gr[VGA_GFX_BIT_MASK] === 0xff;
  }

  /** True when CRTC and input status 1 answer at 0x3dx. */
  get colorPorts(): boolean {
    return (this.misc & VGA_MIS_COLOR) !== 0;
  }

  // ---- I/O ports -------------------------------------------------------------------

  /** Reads one VGA port (0x3b0-0x3df). */
  ioRead(port: number): number {
    if (this.#wrongEmulation(port)) return 0xff;
    switch (port) {
      case VGA_ATT_W:
        return this.arIndex;
      case VGA_ATT_R: {
        const index = this.arIndex & 0x1f;
        return index < VGA_ATC_COUNT ? this.ar[index] : 0;
      }
      case VGA_IS0_R:
        return 0;
      case VGA_ENABLE:
        return this.vgaEnable;
      case VGA_SEQ_I:
        return this.srIndex;
      case VGA_SEQ_D:
        return this.readSeq(this.srIndex);
      case VGA_PEL_MSK:
        return this.readPelMask();
      case VGA_PEL_IR:
        return this.dacState;
      case VGA_PEL_IW:
        return this.readPelWriteIndex();
      case VGA_PEL_D:
        return this.readPalette();
      case VGA_FTC_R:
        return this.featureControl;
      case VGA_MIS_R:
        return this.misc;
      case VGA_GFX_I:
        return this.grIndex;
      case VGA_GFX_D:
        return this.readGfx(this.grIndex);
      case VGA_CRT_IM:
      case VGA_CRT_IC:
        return this.crIndex;
      case VGA_CRT_DM:
      case VGA_CRT_DC:
        return this.readCrtc(this.crIndex);
      case VGA_IS1_RM:
      case VGA_IS1_RC:
        // Firmware polls for retrace edges; each read flips retrace and blanking so a
        // wait for "in retrace" and then "out of retrace" ends after two reads.
        this.st01 ^= VGA_IS1_DE | VGA_IS1_VR;
        this.arFlipFlop = 0;
        return this.st01;
      default:
        return 0xff;
    }
  }

  /** Writes one VGA port (0x3b0-0x3df). */
  ioWrite(port: number, value: number): void {
    if (this.#wrongEmulation(port)) return;
    value &= 0xff;
    switch (port) {
      case VGA_ATT_W:
        if (this.arFlipFlop === 0) this.arIndex = value & 0x3f;
        else this.#writeAttribute(this.arIndex & 0x1f, value);
        this.arFlipFlop ^= 1;
        break;
      case VGA_MIS_W:
        this.misc = value & ~0x10;
        break;
      case VGA_ENABLE:
        this.vgaEnable = value & 1;
        break;
      case VGA_SEQ_I:
        this.srIndex = value & this.srIndexMask;
        break;
      case VGA_SEQ_D:
        this.writeSeq(this.srIndex, value);
        break;
      case VGA_PEL_MSK:
        this.writePelMask(value);
        break;
      case VGA_PEL_IR:
        this.dacReadIndex = value;
        this.dacSubIndex = 0;
        this.dacState = 3;
        break;
      case VGA_PEL_IW:
        this.dacWriteIndex = value;
        this.dacSubIndex = 0;
        this.dacState = 0;
        break;
      case VGA_PEL_D:
        this.writePalette(value);
        break;
      case VGA_GFX_I:
        this.grIndex = value & this.grIndexMask;
        break;
      case VGA_GFX_D:
        this.writeGfx(this.grIndex, value);
        break;
      case VGA_CRT_IM:
      case VGA_CRT_IC:
        this.crIndex = value;
        break;
      case VGA_CRT_DM:
      case VGA_CRT_DC:
        this.writeCrtc(this.crIndex, value);
        break;
      case VGA_IS1_RM:
      case VGA_IS1_RC:
        this.featureControl = value & 0x0b;
        break;
    }
  }

  /** The mono ports (0x3bx) are dead in colour emulation and the colour ports in mono. */
  #wrongEmulation(port: number): boolean {
    if (this.misc & VGA_MIS_COLOR) return port >= 0x3b0 && port <= 0x3bf;
    return port >= 0x3d0 && port <= 0x3df;
  }

  #writeAttribute(index: number, value: number): void {
    if (index < 0x10) this.ar[index] = value & 0x3f;
    else if (index === VGA_ATC_MODE) this.ar[index] = value & ~0x10;
    else if (index === 0x11) this.ar[index] = value;
    else if (index === VGA_ATC_PLANE_ENABLE) this.ar[index] = value & 0x3f;
    else if (index === VGA_ATC_PEL || index === VGA_ATC_COLOR_PAGE) {
      this.ar[index] = value & 0x0f;
    }
  }

  /** A sequencer data read (Cirrus adds its extended registers). */
  protected readSeq(index: number): number {
    return index < SR_MASK.length ? this.sr[index] : 0xff;
  }

  /** A sequencer data write. */
  protected writeSeq(index: number, value: number): void {
    if (index < SR_MASK.length) this.sr[index] = value & SR_MASK[index];
  }

  /** A graphics controller data read. */
  protected readGfx(index: number): number {
    return index < GR_MASK.length ? this.gr[index] : 0xff;
  }

  /** A graphics controller data write. */
  protected writeGfx(index: number, value: number): void {
    if (index >= GR_MASK.length) return;
    this.gr[index] = value & GR_MASK[index];
    this.updateWritePath();
  }

  /** A CRTC data read. */
  protected readCrtc(index: number): number {
    return index <= VGA_CRTC_LINE_COMPARE ? this.cr[index] : 0xff;
  }

  /** A CRTC data write; CR11 bit 7 protects CR0-CR7 except CR7's line compare bit. */
  protected writeCrtc(index: number, value: number): void {
    if (index > VGA_CRTC_LINE_COMPARE) return;
    if ((this.cr[VGA_CRTC_V_SYNC_END] & 0x80) && index <= VGA_CRTC_OVERFLOW) {
      if (index === VGA_CRTC_OVERFLOW) {
        this.cr[index] = (this.cr[index] & ~0x10) | (value & 0x10);
      }
      return;
    }
    this.cr[index] = value;
  }

  /** The PEL mask read at 0x3c6 (Cirrus puts its hidden DAC behind it). */
  protected readPelMask(): number {
    return this.dacMask;
  }

  protected writePelMask(value: number): void {
    this.dacMask = value;
  }

  /** The DAC write index read at 0x3c8. */
  protected readPelWriteIndex(): number {
    return this.dacWriteIndex;
  }

  /** One colour component from the DAC at the read index. */
  protected readPalette(): number {
    const value = this.palette[this.dacReadIndex * 3 + this.dacSubIndex];
    if (++this.dacSubIndex === 3) {
      this.dacSubIndex = 0;
      this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
    }
    return value;
  }

  /** One colour component to the DAC; the entry changes when all three have arrived. */
  protected writePalette(value: number): void {
    this.dacCache[this.dacSubIndex] = this.dac8Bit ? value : value & 0x3f;
    if (++this.dacSubIndex === 3) {
      this.palette.set(this.dacCache, this.dacWriteIndex * 3);
      this.dacSubIndex = 0;
      this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
    }
  }

  // ---- the legacy memory window ---------------------------------------------------

  /**
   * The VRAM address a window offset (0..0x1ffff) selects under GR06's memory map,
   * or -1 outside the mapped part.
   */
  windowAddress(offset: number): number {
    switch ((this.gr[VGA_GFX_MISC] >> 2) & 3) {
      case 0:
        return offset;
      case 1:
        return offset < 0x10000 ? offset + this.bankOffset : -1;
      case 2:
        return offset >= 0x10000 && offset < 0x18000 ? offset - 0x10000 : -1;
      default:
        return offset >= 0x18000 ? offset - 0x18000 : -1;
    }
  }

  /** A byte read of the window at `offset` (0..0x1ffff from 0xa0000). */
  readWindow(offset: number): number {
    const address = this.windowAddress(offset);
    if (address < 0) return 0xff;
    return this.readPlanar(address);
  }

  /** A byte write of the window at `offset`. */
  writeWindow(offset: number, value: number): void {
    const address = this.windowAddress(offset);
    if (address >= 0) this.writePlanar(address, value & 0xff);
  }

  /** A read at a VGA memory address through the read mode and plane selection. */
  readPlanar(address: number): number {
    if (this.vbeChain4 || (this.sr[VGA_SEQ_MEMORY_MODE] & VGA_SR04_CHN_4M)) {
      if (address >= this.vram.length) return 0xff;
      this.latch = this.vram32[address >>> 2];
      return this.vram[address];
    }
    const gr = this.gr;
    let planeOffset = address;
    let plane = gr[VGA_GFX_PLANE_READ] & 3;
    if (gr[VGA_GFX_MODE] & VGA_GR05_HOST_ODD_EVEN) {
      planeOffset = address & ~1;
      plane = (plane & 2) | (address & 1);
    }
    if (planeOffset >= this.vram32.length) return 0xff;
    const latch = this.vram32[planeOffset];
    this.latch = latch;
    if (!(gr[VGA_GFX_MODE] & VGA_GR05_READ_MODE_1)) return (latch >>> (plane << 3)) & 0xff;
    // Read mode 1: a 1 for each pixel whose colour matches the compare value in the
    // planes the don't-care register selects.
    let diff = (latch ^ MASK16[gr[VGA_GFX_COMPARE_VALUE] & 0x0f]) &
      MASK16[gr[VGA_GFX_COMPARE_MASK] & 0x0f];
    diff |= diff >>> 16;
    diff |= diff >>> 8;
    return ~diff & 0xff;
  }

  /** A write at a VGA memory address through the write mode, ALU, bit mask and map mask. */
  writePlanar(address: number, value: number): void {
    const sr = this.sr;
    if (this.vbeChain4 || (sr[VGA_SEQ_MEMORY_MODE] & VGA_SR04_CHN_4M)) {
      if (address >= this.vram.length) return;
      if (this.vbeChain4 || (sr[VGA_SEQ_PLANE_WRITE] & (1 << (address & 3)))) {
        this.vram[address] = value;
        this.dirtyPages[address >>> 12] = 1;
      }
      return;
    }
    let planeOffset = address;
    let planes = sr[VGA_SEQ_PLANE_WRITE] & 0x0f;
    if (!(sr[VGA_SEQ_MEMORY_MODE] & VGA_SR04_SEQ_MODE)) {
      // Odd/even: even addresses reach planes 0 and 2, odd ones planes 1 and 3.
      planeOffset = address & ~1;
      planes &= address & 1 ? 0x0a : 0x05;
    }
    if (planeOffset >= this.vram32.length || planes === 0) return;
    // Plane offset o is VRAM bytes 4o..4o+3: page o >> 10.
    this.dirtyPages[planeOffset >>> 10] = 1;
    if (this.#plainWrite) {
      const at = planeOffset << 2;
      const vram = this.vram;
      if (planes & 1) vram[at] = value;
      if (planes & 2) vram[at + 1] = value;
      if (planes & 4) vram[at + 2] = value;
      if (planes & 8) vram[at + 3] = value;
      return;
    }
    const data = this.#writeData(value);
    const mask = MASK16[planes];
    this.vram32[planeOffset] = ((this.vram32[planeOffset] & ~mask) | (data & mask)) >>> 0;
  }

  /** The 32-bit word write modes 0-3 produce from a CPU byte (VGA write data path). */
  #writeData(value: number): number {
    const gr = this.gr;
    const rotate = gr[VGA_GFX_DATA_ROTATE] & 7;
    let data: number;
    let bitMask = gr[VGA_GFX_BIT_MASK];
    switch (gr[VGA_GFX_MODE] & 3) {
      case 0: {
        const byte = ((value >>> rotate) | (value << (8 - rotate))) & 0xff;
        const enable = MASK16[gr[VGA_GFX_SR_ENABLE] & 0x0f];
        data = ((byte * 0x01010101) & ~enable) | (MASK16[gr[VGA_GFX_SR_VALUE] & 0x0f] & enable);
        break;
      }
      case 1:
        return this.latch;
      case 2:
        data = MASK16[value & 0x0f];
        break;
      default: {
        const byte = ((value >>> rotate) | (value << (8 - rotate))) & 0xff;
        bitMask &= byte;
        data = MASK16[gr[VGA_GFX_SR_VALUE] & 0x0f];
      }
    }
    switch ((gr[VGA_GFX_DATA_ROTATE] >> 3) & 3) {
      case 1:
        data &= this.latch;
        break;
      case 2:
        data |= this.latch;
        break;
      case 3:
        data ^= this.latch;
        break;
    }
    const bits = bitMask * 0x01010101;
    return ((data & bits) | (this.latch & ~bits)) >>> 0;
  }

  // ---- views for tests and a later renderer ----------------------------------------

  /** Byte `offset` of plane `plane`. */
  planeByte(plane: number, offset: number): number {
    return this.vram[(offset << 2) | plane];
  }

  /**
   * The text screen as lines: characters from plane 0 where the CRTC reads them in
   * text mode (word mode: character `i` at plane offset `2 * (start + i)`).
   */
  textLines(): string[] {
    const cols = this.cr[VGA_CRTC_H_DISP] + 1;
    const cr7 = this.cr[VGA_CRTC_OVERFLOW];
    const lines = (this.cr[VGA_CRTC_V_DISP_END] | ((cr7 & 0x02) << 7) | ((cr7 & 0x40) << 3)) + 1;
    const rows = Math.max(1, Math.floor(lines / ((this.cr[VGA_CRTC_MAX_SCAN] & 0x1f) + 1)));
    const pitch = Math.max(cols, this.cr[VGA_CRTC_OFFSET] * 2);
    const start = (this.cr[VGA_CRTC_START_HI] << 8) | this.cr[VGA_CRTC_START_LO];
    const out: string[] = [];
    for (let row = 0; row < rows; row++) {
      let line = "";
      for (let col = 0; col < cols; col++) {
        const code = this.planeByte(0, 2 * (start + row * pitch + col) & 0xffff);
        line += code >= 0x20 && code < 0x7f ? String.fromCharCode(code) : " ";
      }
      out.push(line.trimEnd());
    }
    return out;
  }

  /** A copy of the state for save state. */
  save(): Record<string, number | Uint8Array> {
    return {
      vram: this.vram.slice(),
      sr: this.sr.slice(),
      gr: this.gr.slice(),
      cr: this.cr.slice(),
      ar: this.ar.slice(),
      palette: this.palette.slice(),
      dacCache: this.dacCache.slice(),
      scalars: Uint8Array.from([
        this.srIndex,
        this.grIndex,
        this.crIndex,
        this.arIndex,
        this.arFlipFlop,
        this.misc,
        this.featureControl,
        this.vgaEnable,
        this.st01,
        this.dacState,
        this.dacReadIndex,
        this.dacWriteIndex,
        this.dacSubIndex,
        this.dacMask,
        this.vbeChain4 ? 1 : 0,
        this.dac8Bit ? 1 : 0,
      ]),
      latch: this.latch,
      bankOffset: this.bankOffset,
    };
  }

  /** Restores {@linkcode save}'s output. */
  load(state: Record<string, unknown>): void {
    this.vram.set(state.vram as Uint8Array);
    this.sr.set(state.sr as Uint8Array);
    this.gr.set(state.gr as Uint8Array);
    this.cr.set(state.cr as Uint8Array);
    this.ar.set(state.ar as Uint8Array);
    this.palette.set(state.palette as Uint8Array);
    this.dacCache.set(state.dacCache as Uint8Array);
    const s = state.scalars as Uint8Array;
    [
      this.srIndex,
      this.grIndex,
      this.crIndex,
      this.arIndex,
      this.arFlipFlop,
      this.misc,
      this.featureControl,
      this.vgaEnable,
      this.st01,
      this.dacState,
      this.dacReadIndex,
      this.dacWriteIndex,
      this.dacSubIndex,
      this.dacMask,
    ] = s;
    this.vbeChain4 = s[14] === 1;
    this.dac8Bit = s[15] === 1;
    this.latch = state.latch as number;
    this.bankOffset = state.bankOffset as number;
    this.updateWritePath();
    this.dirtyPages.fill(1);
  }
}
