// The GD5446 BitBLT engine: screen-to-screen copies (forward, backward), ROPs, solid and pattern fills, colour expansion, system-to-screen sources

/** GR30 (BLT mode) bits. */
export const CIRRUS_BLTMODE_BACKWARDS = 0x01;
export const CIRRUS_BLTMODE_MEMSYSDEST = 0x02;
export const CIRRUS_BLTMODE_MEMSYSSRC = 0x04;
export const CIRRUS_BLTMODE_TRANSPARENTCOMP = 0x08;
export const CIRRUS_BLTMODE_PIXELWIDTHMASK = 0x30;
export const CIRRUS_BLTMODE_PATTERNCOPY = 0x40;
export const CIRRUS_BLTMODE_COLOREXPAND = 0x80;
/** GR33 (BLT mode extensions) bits. */
export const CIRRUS_BLTMODEEXT_DWORDGRANULARITY = 0x01;
export const CIRRUS_BLTMODEEXT_COLOREXPINV = 0x02;
export const CIRRUS_BLTMODEEXT_SOLIDFILL = 0x04;
/** GR31 (BLT start/status) bits. */
export const CIRRUS_BLT_BUSY = 0x01;
export const CIRRUS_BLT_START = 0x02;
export const CIRRUS_BLT_RESET = 0x04;
export const CIRRUS_BLT_FIFOUSED = 0x10;
export const CIRRUS_BLT_AUTOSTART = 0x80;

/**
 * The widest line the engine takes, in bytes: the size of the chip's source buffer
 * for system-to-screen data (QEMU's CIRRUS_BLTBUFSIZE). A wider blit is ignored.
 */
export const CIRRUS_BLTBUFSIZE = 2048 * 4;

/**
 * The raster operations the GD5446 documents (GR32), as byte functions of destination
 * and source. Every one is bitwise, so applying it to each byte of a pixel is the same
 * as applying it to the pixel. A code not listed leaves the destination alone.
 */
const ROPS = new Map<number, (d: number, s: number) => number>([
  [0x00, () => 0],
  [0x05, (d, s) => s & d],
  [0x06, (d) => d],
  [0x09, (d, s) => s & ~d],
  [0x0b, (d) => ~d],
  [0x0d, (_d, s) => s],
  [0x0e, () => 0xff],
  [0x50, (d, s) => ~s & d],
  [0x59, (d, s) => s ^ d],
  [0x6d, (d, s) => s | d],
  [0x90, (d, s) => ~s | ~d],
  [0x95, (d, s) => ~(s ^ d)],
  [0xad, (d, s) => s | ~d],
  [0xd0, (_d, s) => ~s],
  [0xd6, (d, s) => ~s | d],
  [0xda, (d, s) => ~s & ~d],
]);
const ROP_NOP = (d: number) => d;

/** The registers a blit starts from (a snapshot of GR00-GR39 and the shadow GR00/GR01). */
export interface BltRegisters {
  readonly gr: Uint8Array;
  readonly shadowGr0: number;
  readonly shadowGr1: number;
  /** Bits per pixel of the screen mode (the pattern's size follows it). */
  readonly displayBpp: number;
}

/** The kind of operation a started blit runs. */
type BltOp =
  | "copy"
  | "transp-copy"
  | "expand"
  | "expand-transp"
  | "pattern"
  | "pattern-expand"
  | "pattern-expand-transp";

/**
 * The BitBLT engine over the adapter's VRAM. A blit either completes when started
 * (screen-to-screen) or waits for its source from the CPU (system-to-screen): each
 * byte the CPU writes to the window or the aperture while {@linkcode waiting} is
 * {@linkcode feed}ed, and each full line is drawn as it arrives.
 *
 * Every address is taken modulo the VRAM size and every region is checked before a
 * byte moves, so a guest's pitches, sizes and addresses can only pick what to draw,
 * never reach outside VRAM or make the engine loop longer than width x height bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CirrusBlitter } from "./cirrus_blt.ts";
 *
 * const vram = new Uint8Array(1 << 20);
 * const blt = new CirrusBlitter(vram);
 * const gr = new Uint8Array(256);
 * gr[0x20] = 3; // 4 bytes wide
 * gr[0x22] = 1; // 2 lines
 * gr[0x24] = 16; // destination pitch
 * gr[0x30] = 0xc0; // pattern copy + colour expansion...
 * gr[0x33] = 0x04; // ...with the solid-fill extension: fill with the foreground
 * gr[0x32] = 0x0d; // ROP: source
 * assert.equal(blt.start({ gr, shadowGr0: 0, shadowGr1: 0x5a, displayBpp: 8 }), true);
 * assert.deepEqual([...vram.subarray(0, 5)], [0x5a, 0x5a, 0x5a, 0x5a, 0]);
 * assert.deepEqual([...vram.subarray(16, 21)], [0x5a, 0x5a, 0x5a, 0x5a, 0]);
 * ```
 */
export class CirrusBlitter {
  readonly #vram: Uint8Array;
  readonly #mask: number;
  /** The source buffer of a system-to-screen blit and how much of it is filled. */
  readonly #buf = new Uint8Array(CIRRUS_BLTBUFSIZE);
  #bufFill = 0;
  #bufEnd = 0;
  /** Bytes of source still expected (0: no system-to-screen blit is waiting). */
  #remaining = 0;
  // The started blit.
  #op: BltOp = "copy";
  #rop: (d: number, s: number) => number = ROP_NOP;
  #pixelBytes = 1;
  #width = 0;
  #height = 0;
  #dstPitch = 0;
  #srcPitch = 0;
  #dstAddr = 0;
  #srcAddr = 0;
  #mode = 0;
  #modeExt = 0;
  #fg = 0;
  #bg = 0;
  #gr: Uint8Array = new Uint8Array(256);
  #fromCpu = false;
  /** Called with each VRAM byte range a blit wrote (start, end exclusive; may wrap). */
  onWrite: (start: number, end: number) => void = () => {};

  constructor(vram: Uint8Array) {
    this.#vram = vram;
    this.#mask = vram.length - 1;
  }

  /** True while a system-to-screen blit waits for source bytes from the CPU. */
  get waiting(): boolean {
    return this.#remaining > 0;
  }

  /** Abandons a waiting system-to-screen blit (GR31 reset). */
  reset(): void {
    this.#remaining = 0;
    this.#bufFill = this.#bufEnd = 0;
    this.#fromCpu = false;
  }

  /**
   * Starts the blit the registers describe. Returns false when it is ignored (a
   * reserved pixel width, both source and destination in system memory, a region
   * outside VRAM, a screen-to-system blit, which the GD5446 model does not do), true
   * when it ran or now waits for its source ({@linkcode waiting}).
   */
  start(regs: BltRegisters): boolean {
    this.reset();
    const gr = regs.gr;
    this.#gr = gr;
    this.#width = (gr[0x20] | (gr[0x21] << 8)) + 1;
    this.#height = (gr[0x22] | (gr[0x23] << 8)) + 1;
    this.#dstPitch = gr[0x24] | (gr[0x25] << 8);
    this.#srcPitch = gr[0x26] | (gr[0x27] << 8);
    this.#dstAddr = (gr[0x28] | (gr[0x29] << 8) | (gr[0x2a] << 16)) & this.#mask;
    this.#srcAddr = (gr[0x2c] | (gr[0x2d] << 8) | (gr[0x2e] << 16)) & this.#mask;
    let mode = gr[0x30];
    this.#modeExt = gr[0x33];
    this.#rop = ROPS.get(gr[0x32]) ?? ROP_NOP;
    this.#pixelBytes = ((mode & CIRRUS_BLTMODE_PIXELWIDTHMASK) >> 4) + 1;
    mode &= ~CIRRUS_BLTMODE_PIXELWIDTHMASK;
    this.#mode = mode;
    const pw = this.#pixelBytes;
    // The colours: GR01 (foreground) and GR00 (background), widened by GR11/13/15 and GR10/12/14.
    this.#fg = regs.shadowGr1;
    this.#bg = regs.shadowGr0;
    if (pw >= 2) {
      this.#fg |= gr[0x11] << 8;
      this.#bg |= gr[0x10] << 8;
    }
    if (pw >= 3) {
      this.#fg |= gr[0x13] << 16;
      this.#bg |= gr[0x12] << 16;
    }
    if (pw === 4) {
      this.#fg = (this.#fg | (gr[0x15] << 24)) >>> 0;
      this.#bg = (this.#bg | (gr[0x14] << 24)) >>> 0;
    }
    this.#op = "pattern";
    this.#fromCpu = false;

    const sys = mode & (CIRRUS_BLTMODE_MEMSYSSRC | CIRRUS_BLTMODE_MEMSYSDEST);
    if (sys === (CIRRUS_BLTMODE_MEMSYSSRC | CIRRUS_BLTMODE_MEMSYSDEST)) return false;
    const expand = (mode & CIRRUS_BLTMODE_COLOREXPAND) !== 0;
    const pattern = (mode & CIRRUS_BLTMODE_PATTERNCOPY) !== 0;
    const transparent = (mode & CIRRUS_BLTMODE_TRANSPARENTCOMP) !== 0;
    if (
      (this.#modeExt & CIRRUS_BLTMODEEXT_SOLIDFILL) &&
      (mode & (CIRRUS_BLTMODE_MEMSYSDEST | CIRRUS_BLTMODE_TRANSPARENTCOMP |
          CIRRUS_BLTMODE_PATTERNCOPY | CIRRUS_BLTMODE_COLOREXPAND)) ===
        (CIRRUS_BLTMODE_PATTERNCOPY | CIRRUS_BLTMODE_COLOREXPAND)
    ) {
      if (this.#unsafe(true)) return false;
      this.#solidFill();
      return true;
    }
    if (expand && !pattern) this.#op = transparent ? "expand-transp" : "expand";
    else if (pattern) {
      this.#op = expand ? (transparent ? "pattern-expand-transp" : "pattern-expand") : "pattern";
    } else if (transparent) {
      // A transparent plain copy compares the result with GR34/GR35: 8 and 16 bpp only.
      if (pw > 2) return false;
      this.#op = "transp-copy";
    } else this.#op = "copy";
    if (mode & CIRRUS_BLTMODE_MEMSYSSRC) return this.#startFromCpu(regs);
    if (mode & CIRRUS_BLTMODE_MEMSYSDEST) return false;
    if (pattern) return this.#patternFromVram(regs);
    // A screen-to-screen copy needs an SVGA mode to know its depth; in VGA modes it is dropped.
    if (regs.displayBpp < 8 || this.#unsafe(false)) return false;
    this.#run(this.#dstAddr, this.#srcAddr, this.#height);
    return true;
  }

  /**
   * True when the destination (and the source, unless `dstOnly`) region would leave
   * VRAM, or the pitch is zero or the width past the line buffer: the blit is dropped.
   */
  #unsafe(dstOnly: boolean): boolean {
    if (this.#width > CIRRUS_BLTBUFSIZE) return true;
    if (this.#regionUnsafe(this.#signedPitch(this.#dstPitch), this.#dstAddr)) return true;
    if (dstOnly) return false;
    return this.#regionUnsafe(this.#signedPitch(this.#srcPitch), this.#srcAddr);
  }

  /** A backward copy walks its lines down in memory: its regions lie below the addresses. */
  #signedPitch(pitch: number): number {
    const copy = this.#op === "copy" || this.#op === "transp-copy";
    return copy && (this.#mode & CIRRUS_BLTMODE_BACKWARDS) ? -pitch : pitch;
  }

  #regionUnsafe(pitch: number, address: number): boolean {
    if (pitch === 0) return true;
    const size = this.#vram.length;
    if (pitch < 0) {
      const lowest = address + (this.#height - 1) * pitch - this.#width;
      return lowest < -1 || address >= size;
    }
    return address + (this.#height - 1) * pitch + this.#width > size;
  }

  /** Runs `lines` lines of the started operation from VRAM or the line buffer. */
  #run(dst: number, src: number, lines: number): void {
    switch (this.#op) {
      case "copy":
      case "transp-copy":
        this.#copy(dst, src, lines, this.#mode & CIRRUS_BLTMODE_BACKWARDS ? -1 : 1);
        break;
      case "expand":
      case "expand-transp":
        this.#expand(dst, src, lines);
        break;
      default:
        this.#patternOp(dst, src, lines);
    }
  }

  /** A source byte: from the line buffer while the CPU feeds the blit, else from VRAM. */
  #src(address: number): number {
    return this.#fromCpu
      ? this.#buf[address & (CIRRUS_BLTBUFSIZE - 1)]
      : this.#vram[address & this.#mask];
  }

  /** A source pixel of `bytes` bytes, aligned as the chip reads 16- and 32-bit pixels. */
  #srcPixel(address: number, bytes: number): number {
    if (bytes === 1) return this.#src(address);
    if (bytes === 3) {
      return this.#src(address) | (this.#src(address + 1) << 8) | (this.#src(address + 2) << 16);
    }
    const a = address & ~(bytes - 1);
    let v = 0;
    for (let i = 0; i < bytes; i++) v |= this.#src(a + i) << (8 * i);
    return v >>> 0;
  }

  /** Applies the ROP to one destination pixel (16- and 32-bit ones aligned down). */
  #putPixel(address: number, color: number): void {
    const vram = this.#vram;
    const mask = this.#mask;
    const rop = this.#rop;
    const pw = this.#pixelBytes;
    const a = pw === 2 || pw === 4 ? address & ~(pw - 1) : address;
    for (let i = 0; i < pw; i++) {
      const at = (a + i) & mask;
      vram[at] = rop(vram[at], (color >>> (8 * i)) & 0xff);
    }
  }

  #solidFill(): void {
    const pw = this.#pixelBytes;
    let dst = this.#dstAddr;
    for (let y = 0; y < this.#height; y++) {
      for (let x = 0; x < this.#width; x += pw) this.#putPixel(dst + x, this.#fg);
      this.onWrite(dst & this.#mask, (dst & this.#mask) + this.#width);
      dst += this.#dstPitch;
    }
  }

  /**
   * A copy through the ROP, forward (`dir` 1: each line left to right, lines going up in
   * memory) or backward (`dir` -1: from the last byte of a line down, lines going down).
   * A transparent copy leaves a pixel whose result equals GR34 (GR35 for the second
   * byte at 16 bpp) as it was.
   */
  #copy(dst: number, src: number, lines: number, dir: 1 | -1): void {
    const width = this.#width;
    const vram = this.#vram;
    const mask = this.#mask;
    const rop = this.#rop;
    // A forward pitch shorter than the line would overlap itself: the chip draws nothing.
    if (
      dir === 1 && lines > 1 &&
      (this.#dstPitch < width || (!this.#fromCpu && this.#srcPitch < width))
    ) {
      return;
    }
    const transparent = this.#op === "transp-copy";
    const key0 = this.#gr[0x34];
    const key1 = this.#gr[0x35];
    const pw = this.#pixelBytes;
    for (let y = 0; y < lines; y++) {
      if (!transparent) {
        for (let x = 0; x < width; x++) {
          const at = (dst + dir * x) & mask;
          vram[at] = rop(vram[at], this.#src(src + dir * x));
        }
      } else {
        for (let x = 0; x + pw <= width; x += pw) {
          const a0 = (dst + dir * x) & mask;
          const p0 = rop(vram[a0], this.#src(src + dir * x)) & 0xff;
          if (pw === 1) {
            if (p0 !== key0) vram[a0] = p0;
            continue;
          }
          const a1 = (dst + dir * (x + 1)) & mask;
          const p1 = rop(vram[a1], this.#src(src + dir * (x + 1))) & 0xff;
          if (p0 !== key0 || p1 !== key1) {
            vram[a0] = p0;
            vram[a1] = p1;
          }
        }
      }
      const low = (dir === 1 ? dst : dst - width + 1) & mask;
      this.onWrite(low, low + width);
      dst += dir * this.#dstPitch;
      if (!this.#fromCpu) src += dir * this.#srcPitch;
    }
  }

  /**
   * The pixels the left clip (GR2F) skips: bytes of destination, bits of source. At
   * 24 bpp the transparent expansions take GR2F in bytes (5 bits); every other case
   * counts pixels (3 bits), as QEMU 7.2 does.
   */
  #skipLeft(transparent: boolean): { dst: number; srcBits: number } {
    const pw = this.#pixelBytes;
    if (pw === 3 && transparent) {
      const dst = this.#gr[0x2f] & 0x1f;
      return { dst, srcBits: Math.floor(dst / 3) };
    }
    const bits = this.#gr[0x2f] & 0x07;
    return { dst: bits * pw, srcBits: bits };
  }

  /** Colour expansion: each source bit picks foreground (1) or background (0) or nothing. */
  #expand(dst: number, src: number, lines: number): void {
    const pw = this.#pixelBytes;
    const width = this.#width;
    const transparent = this.#op === "expand-transp";
    const { dst: skip, srcBits } = this.#skipLeft(transparent);
    const invert = transparent && (this.#modeExt & CIRRUS_BLTMODEEXT_COLOREXPINV) ? 0xff : 0;
    const one = invert ? this.#bg : this.#fg;
    for (let y = 0; y < lines; y++) {
      let bitmask = 0x80 >> srcBits;
      let bits = this.#src(src++) ^ invert;
      for (let x = skip; x < width; x += pw) {
        if ((bitmask & 0xff) === 0) {
          bitmask = 0x80;
          bits = this.#src(src++) ^ invert;
        }
        if (bits & bitmask) this.#putPixel(dst + x, one);
        else if (!transparent) this.#putPixel(dst + x, this.#bg);
        bitmask >>= 1;
      }
      this.onWrite(dst & this.#mask, (dst & this.#mask) + width);
      dst += this.#dstPitch;
    }
  }

  /** Pattern fills: an 8x8 pattern of pixels, or of bits expanded to the two colours. */
  #patternOp(dst: number, src: number, lines: number): void {
    const pw = this.#pixelBytes;
    const width = this.#width;
    let patternY = this.#srcAddr & 7;
    if (this.#op === "pattern") {
      // At 24 bpp the clip is in bytes (5 bits) but the pattern starts at that many
      // pixels in, and a pattern line of 8 pixels sits in 32 bytes: QEMU 7.2's layout.
      const skip = pw === 3 ? this.#gr[0x2f] & 0x1f : (this.#gr[0x2f] & 0x07) * pw;
      const pitch = pw === 3 ? 32 : 8 * pw;
      const lineBytes = pw === 3 ? 24 : 8 * pw;
      const firstPx = pw === 3 ? (skip * 3) % 24 : skip;
      for (let y = 0; y < lines; y++) {
        let px = firstPx;
        for (let x = skip; x < width; x += pw) {
          this.#putPixel(dst + x, this.#srcPixel(src + px + patternY * pitch, pw));
          px = (px + pw) % lineBytes;
        }
        this.onWrite(dst & this.#mask, (dst & this.#mask) + width);
        patternY = (patternY + 1) & 7;
        dst += this.#dstPitch;
      }
      return;
    }
    const transparent = this.#op === "pattern-expand-transp";
    const { dst: skip, srcBits } = this.#skipLeft(transparent);
    const invert = transparent && (this.#modeExt & CIRRUS_BLTMODEEXT_COLOREXPINV) ? 0xff : 0;
    const one = invert ? this.#bg : this.#fg;
    for (let y = 0; y < lines; y++) {
      const bits = this.#src(src + patternY) ^ invert;
      let bit = 7 - srcBits;
      for (let x = skip; x < width; x += pw) {
        if ((bits >> bit) & 1) this.#putPixel(dst + x, one);
        else if (!transparent) this.#putPixel(dst + x, this.#bg);
        bit = (bit - 1) & 7;
      }
      this.onWrite(dst & this.#mask, (dst & this.#mask) + width);
      patternY = (patternY + 1) & 7;
      dst += this.#dstPitch;
    }
  }

  /** A pattern read from VRAM, aligned to its size (which follows the screen's depth). */
  #patternFromVram(regs: BltRegisters): boolean {
    const size = regs.displayBpp <= 8 ? 64 : regs.displayBpp <= 16 ? 128 : 256;
    this.#srcAddr &= ~(size - 1);
    if (this.#srcAddr + size > this.#vram.length) return false;
    if (this.#unsafe(true)) return false;
    this.#patternOp(this.#dstAddr, this.#srcAddr, this.#height);
    return true;
  }

  /**
   * A system-to-screen blit: the source arrives through {@linkcode feed}. Each line
   * of source is a whole number of bytes (colour expansion: one bit a pixel, rounded
   * to bytes or dwords; plain: 4-byte aligned); a pattern is one 8x8 block.
   */
  #startFromCpu(_regs: BltRegisters): boolean {
    if (this.#unsafe(true)) return false;
    const pw = this.#pixelBytes;
    if (this.#mode & CIRRUS_BLTMODE_PATTERNCOPY) {
      this.#srcPitch = this.#mode & CIRRUS_BLTMODE_COLOREXPAND ? 8 : 8 * 8 * pw;
      this.#remaining = this.#srcPitch;
    } else {
      if (this.#mode & CIRRUS_BLTMODE_COLOREXPAND) {
        const pixels = Math.floor(this.#width / pw);
        this.#srcPitch = this.#modeExt & CIRRUS_BLTMODEEXT_DWORDGRANULARITY
          ? ((pixels + 31) >> 5) * 4
          : (pixels + 7) >> 3;
      } else {
        this.#srcPitch = (this.#width + 3) & ~3;
      }
      this.#remaining = this.#srcPitch * this.#height;
    }
    if (this.#srcPitch > CIRRUS_BLTBUFSIZE || this.#srcPitch === 0) {
      this.#remaining = 0;
      return false;
    }
    this.#fromCpu = true;
    this.#bufFill = 0;
    this.#bufEnd = this.#srcPitch;
    return true;
  }

  /**
   * One byte of source from the CPU. Returns true when that byte completed the blit
   * (the caller clears GR31's busy bit and gives the window back to memory).
   */
  feed(value: number): boolean {
    if (this.#remaining <= 0) return false;
    this.#buf[this.#bufFill++] = value;
    if (this.#bufFill < this.#bufEnd) return false;
    // A full line (or the whole pattern) has arrived: draw it.
    if (this.#mode & CIRRUS_BLTMODE_PATTERNCOPY) {
      this.#patternOp(this.#dstAddr, 0, this.#height);
      this.reset();
      return true;
    }
    this.#run(this.#dstAddr, 0, 1);
    this.#dstAddr += this.#dstPitch;
    this.#remaining -= this.#srcPitch;
    this.#bufFill = 0;
    if (this.#remaining <= 0) {
      this.reset();
      return true;
    }
    return false;
  }
}
