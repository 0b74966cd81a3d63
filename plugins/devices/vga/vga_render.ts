// Turns VGA memory into pixels: text mode (font from plane 2, attributes, cursor), VGA graphics, Cirrus SVGA modes and the Bochs VBE framebuffer, redrawing only what changed

import type { DisplaySurface, GraphicConsole } from "../../../core/display.ts";
import { DisplaySurface as Surface, MAX_SURFACE_PIXELS } from "../../../core/display.ts";
import type { BochsDispi } from "./vbe.ts";
import {
  VGA_ATC_COLOR_PAGE,
  VGA_ATC_MODE,
  VGA_ATC_PLANE_ENABLE,
  VGA_CRTC_H_DISP,
  VGA_CRTC_LINE_COMPARE,
  VGA_CRTC_MAX_SCAN,
  VGA_CRTC_MODE,
  VGA_CRTC_OFFSET,
  VGA_CRTC_OVERFLOW,
  VGA_CRTC_START_HI,
  VGA_CRTC_START_LO,
  VGA_CRTC_V_DISP_END,
  VGA_GFX_MISC,
  VGA_GFX_MODE,
  VGA_SEQ_CHARACTER_MAP,
  VGA_SEQ_CLOCK_MODE,
  type VgaCore,
} from "./vga_core.ts";

/** CRTC cursor registers (VGA CR0A, CR0B, CR0E, CR0F). */
const CRTC_CURSOR_START = 0x0a;
const CRTC_CURSOR_END = 0x0b;
const CRTC_CURSOR_HI = 0x0e;
const CRTC_CURSOR_LO = 0x0f;
/** SR01 bit 0: 8-dot characters (else 9); bit 3: dot clock halved (16-pixel characters). */
const SR01_8DOTS = 0x01;
const SR01_HALF_CLOCK = 0x08;
/** AR10 bit 2: line graphics, the 9th column repeats the 8th for characters 0xb0-0xdf. */
const AR10_LINE_GRAPHICS = 0x04;
/** AR10 bit 7: palette bits 5-4 come from the colour select register. */
const AR10_P54_SELECT = 0x80;
/** Bytes of one font (256 characters of 32 lines) in plane 2. */
const FONT_BYTES = 256 * 32;

/** A 6-bit DAC component widened to 8 bits the way QEMU does (low bit repeated). */
function c6to8(v: number): number {
  v &= 0x3f;
  const b = v & 1;
  return (v << 2) | (b << 1) | b;
}

/**
 * A 5-6-5 pixel widened to 8 bits a component. QEMU 7.2 draws 16 bpp two ways: into a
 * shadow surface with the low bits zero (`replicate` false), or, when it shares the
 * guest's framebuffer with the display (no wrap past the end of VRAM, no Cirrus cursor),
 * through pixman, which repeats each component's top bits in the low ones. A screendump
 * shows whichever it did, so vmkit follows the same rule.
 */
function rgb565(v: number, replicate: boolean): number {
  if (!replicate) return (((v >> 8) & 0xf8) << 16) | (((v >> 3) & 0xfc) << 8) | ((v << 3) & 0xf8);
  const r = (v >> 11) & 0x1f;
  const g = (v >> 5) & 0x3f;
  const b = v & 0x1f;
  return (((r << 3) | (r >> 2)) << 16) | (((g << 2) | (g >> 4)) << 8) | ((b << 3) | (b >> 2));
}

/**
 * True when QEMU 7.2 would share the guest's framebuffer with the display for this
 * mode (see {@linkcode rgb565}): it does for 16, 24 and 32 bpp whose lines do not run
 * past the end of VRAM.
 */
function sharesSurface(
  bpp: number,
  start: number,
  lineOffset: number,
  width: number,
  height: number,
  vramBytes: number,
): boolean {
  if (bpp !== 16 && bpp !== 24 && bpp !== 32) return false;
  return start + lineOffset * (height - 1) + (width * bpp) / 8 <= vramBytes;
}

/** What the last update showed. */
export type VgaScreenMode = "text" | "vbe" | "vga16" | "vga256" | "svga" | "blank" | "unsupported";

/**
 * An adapter's own packed-pixel modes (the Cirrus SVGA modes), drawn through the VGA
 * CRTC's timing (width from CR01, double scan, line compare) with the adapter's
 * depth, start address and line offset.
 */
export interface SvgaModes {
  /** Bits per pixel of the extended mode in effect (8, 15, 16, 24, 32), or 0 in a VGA mode. */
  bpp(): number;
  /** The CRTC start address in bytes, with the adapter's extension bits. */
  startAddress(): number;
  /** Bytes from one line to the next. */
  lineOffset(): number;
  /** Displayed lines. */
  height(): number;
  /** Draws a hardware cursor over display line `y` of `row` (`width` pixels). */
  drawCursor?(row: Uint32Array, y: number, width: number): void;
  /** The display lines the cursor may touch, `[first, end)` (every line when absent). */
  cursorBand?(): [number, number];
  /** True while the adapter needs a drawn (shadow) screen: QEMU's Cirrus with its cursor on. */
  forceShadow?(): boolean;
}

/**
 * The screen of a VGA adapter: renders its VRAM into a {@linkcode DisplaySurface} on
 * each {@linkcode update}, touching (and marking dirty) only the cells and lines that
 * changed since the previous one.
 */
export class VgaConsole implements GraphicConsole {
  readonly surface: Surface = new Surface(640, 480);
  /** The mode the last update rendered. */
  mode: VgaScreenMode = "blank";
  /**
   * Whether the text cursor is drawn (the blink phase). QEMU flips its phase every
   * 250 ms of virtual time; a display front end may flip this on its own timer.
   */
  cursorVisible = true;
  readonly #core: VgaCore;
  readonly #vbe: BochsDispi | null;
  /** The cells as last drawn (character | attribute << 8), and the geometry they had. */
  #cells = new Uint16Array(0);
  #geometry = "";
  #cursorCell = -1;
  #cursorShape = -1;
  readonly #palette = new Uint32Array(16);
  readonly #font = new Uint8Array(2 * FONT_BYTES);
  #full = true;
  /** What the last graphics frame was drawn from: a change redraws every line. */
  #layout = "";
  readonly #lastPalette = new Uint32Array(256);
  /** Display lines the hardware cursor covered in the last frame. */
  #cursorBand: [number, number] = [0, 0];

  readonly #svga: SvgaModes | null;

  /**
   * @param vbe the Bochs VBE registers of a std VGA (null for others)
   * @param svga the adapter's extended packed-pixel modes (Cirrus), or null
   */
  constructor(
    readonly id: string,
    core: VgaCore,
    vbe: BochsDispi | null = null,
    svga: SvgaModes | null = null,
  ) {
    this.#core = core;
    this.#vbe = vbe;
    this.#svga = svga;
  }

  /** Asks for the next update to redraw everything. */
  invalidate(): void {
    this.#full = true;
  }

  update(): DisplaySurface {
    const core = this.#core;
    let mode: VgaScreenMode;
    if (this.#vbe?.enabled) mode = "vbe";
    else if (!(core.arIndex & 0x20)) mode = "blank"; // the palette is being loaded: no video
    else if (core.gr[VGA_GFX_MISC] & 1) {
      // GR05 bits 6-5, the shift control: 2 or 3 is 256-colour (mode 13h, mode X), or
      // the adapter's packed-pixel depth in its extended modes. 0 is 16-colour planar
      // (modes 0Dh-12h); 1, CGA's interleave, is not drawn yet.
      const shift = (core.gr[VGA_GFX_MODE] >> 5) & 3;
      if (shift & 2) mode = this.#svga?.bpp() ? "svga" : "vga256";
      else mode = shift === 0 ? "vga16" : "unsupported";
    } else mode = "text";
    if (mode !== this.mode) this.#full = true;
    this.mode = mode;
    if (mode === "text") this.#drawText();
    else if (mode === "vbe") this.#drawVbe();
    else if (mode === "vga256" || mode === "vga16" || mode === "svga") this.#drawGraphics(mode);
    else this.#drawBlank();
    this.#full = false;
    core.takeDirty();
    return this.surface;
  }

  /**
   * Starts a graphics frame: a different layout or palette than the last frame's means
   * every line is redrawn; otherwise only lines on VRAM pages written since.
   */
  #beginFrame(layout: string, palette: Uint32Array | null): void {
    if (layout !== this.#layout) {
      this.#layout = layout;
      this.#full = true;
    }
    if (palette) {
      const last = this.#lastPalette;
      for (let i = 0; i < palette.length; i++) {
        if (last[i] !== palette[i]) {
          last.set(palette);
          this.#full = true;
          break;
        }
      }
    }
  }

  #drawBlank(): void {
    this.#layout = "";
    if (!this.#full) return;
    this.surface.pixels.fill(0);
    this.surface.markDirty(0, 0, this.surface.width, this.surface.height);
  }

  /** The 16 attribute colours through the attribute controller and the DAC. */
  #updatePalette16(): boolean {
    const core = this.#core;
    const ar = core.ar;
    let changed = false;
    for (let i = 0; i < 16; i++) {
      let v = ar[i];
      if (ar[VGA_ATC_MODE] & AR10_P54_SELECT) {
        v = ((ar[VGA_ATC_COLOR_PAGE] & 0x0f) << 4) | (v & 0x0f);
      } else v = ((ar[VGA_ATC_COLOR_PAGE] & 0x0c) << 4) | (v & 0x3f);
      const p = core.palette;
      const color = (c6to8(p[v * 3]) << 16) | (c6to8(p[v * 3 + 1]) << 8) | c6to8(p[v * 3 + 2]);
      if (this.#palette[i] !== color) {
        this.#palette[i] = color;
        changed = true;
      }
    }
    return changed;
  }

  /** Copies the two selected fonts out of plane 2; true when they differ from the last copy. */
  #updateFonts(): boolean {
    const core = this.#core;
    const v = core.sr[VGA_SEQ_CHARACTER_MAP];
    // SR03: font B (bits 4, 1, 0) for attribute bit 3 clear, font A (bits 5, 3, 2) for it
    // set, each at 8 KiB steps of plane 2 with bit 4 (5) the low bit.
    const bases = [((v >> 4) & 1) | ((v << 1) & 6), ((v >> 5) & 1) | ((v >> 1) & 6)];
    const vram = core.vram;
    const font = this.#font;
    let changed = false;
    for (let f = 0; f < 2; f++) {
      const from = bases[f] * 8192;
      for (let i = 0; i < FONT_BYTES; i++) {
        const byte = vram[((from + i) << 2) | 2];
        if (font[f * FONT_BYTES + i] !== byte) {
          font[f * FONT_BYTES + i] = byte;
          changed = true;
        }
      }
    }
    return changed;
  }

  #drawText(): void {
    this.#layout = "";
    const core = this.#core;
    const cr = core.cr;
    const sr1 = core.sr[VGA_SEQ_CLOCK_MODE];
    const cw = sr1 & SR01_HALF_CLOCK ? 16 : sr1 & SR01_8DOTS ? 8 : 9;
    const cheight = (cr[VGA_CRTC_MAX_SCAN] & 0x1f) + 1;
    const cols = cr[VGA_CRTC_H_DISP] + 1;
    const cr7 = cr[VGA_CRTC_OVERFLOW];
    const lines = (cr[VGA_CRTC_V_DISP_END] | ((cr7 & 0x02) << 7) | ((cr7 & 0x40) << 3)) + 1;
    const rows = Math.floor(lines / cheight);
    if (cols * rows <= 1) return; // a mode being programmed: keep the last picture
    const geometry = `${cols}x${rows}x${cw}x${cheight}`;
    if (geometry !== this.#geometry) {
      this.#geometry = geometry;
      this.surface.resize(cols * cw, rows * cheight);
      this.#cells = new Uint16Array(cols * rows);
      this.#full = true;
    }
    if (this.#updatePalette16()) this.#full = true;
    if (this.#updateFonts()) this.#full = true;
    const start = (cr[VGA_CRTC_START_HI] << 8) | cr[VGA_CRTC_START_LO];
    // CR13 counts words of the CRTC's address; in word mode a row is 2 * CR13 characters.
    const pitch = cr[VGA_CRTC_OFFSET] * 2;
    const lineCompare = cr[VGA_CRTC_LINE_COMPARE] | ((cr7 & 0x10) << 4) |
      ((cr[VGA_CRTC_MAX_SCAN] & 0x40) << 3);
    const cursorAddress = (cr[CRTC_CURSOR_HI] << 8) | cr[CRTC_CURSOR_LO];
    const cursorShape = this.cursorVisible && !(cr[CRTC_CURSOR_START] & 0x20)
      ? (cr[CRTC_CURSOR_START] & 0x1f) | ((cr[CRTC_CURSOR_END] & 0x1f) << 8)
      : -1;
    const planeWords = core.vram32.length;
    const vram = core.vram;
    let address = start;
    let line = 0;
    let cursorCell = -1;
    const full = this.#full;
    for (let row = 0; row < rows; row++) {
      let first = -1;
      let last = -1;
      for (let col = 0; col < cols; col++) {
        const cell = row * cols + col;
        // Word mode: character address k is plane offset 2k; character in plane 0, attribute in plane 1.
        const at = ((2 * (address + col)) % planeWords) << 2;
        const value = vram[at] | (vram[at + 1] << 8);
        const isCursor = address + col === cursorAddress && cursorShape >= 0;
        if (isCursor) cursorCell = cell;
        const wasCursor = cell === this.#cursorCell;
        if (
          full || value !== this.#cells[cell] || isCursor !== wasCursor ||
          (isCursor && cursorShape !== this.#cursorShape)
        ) {
          this.#cells[cell] = value;
          this.#drawCell(col * cw, row * cheight, value, cw, cheight, isCursor ? cursorShape : -1);
          if (first < 0) first = col;
          last = col;
        }
      }
      // One rectangle per row of cells, from the first changed cell to the last.
      if (first >= 0) {
        this.surface.markDirty(first * cw, row * cheight, (last - first + 1) * cw, cheight);
      }
      const next = line + cheight;
      address += pitch;
      // The line compare register restarts the scan at address 0 (split screen).
      if (line < lineCompare && next >= lineCompare) address = 0;
      line = next;
    }
    this.#cursorCell = cursorCell;
    this.#cursorShape = cursorShape;
  }

  /** Draws one character cell at pixel (x, y), with the cursor's scan lines when `cursor` >= 0. */
  #drawCell(x: number, y: number, value: number, cw: number, ch: number, cursor: number): void {
    const code = value & 0xff;
    const attr = value >> 8;
    const fg = this.#palette[attr & 0x0f];
    const bg = this.#palette[attr >> 4];
    const fontAt = ((attr >> 3) & 1) * FONT_BYTES + code * 32;
    const dup9 = cw === 9 && code >= 0xb0 && code <= 0xdf &&
      (this.#core.ar[VGA_ATC_MODE] & AR10_LINE_GRAPHICS) !== 0;
    let cursorFirst = ch;
    let cursorLast = -1;
    if (cursor >= 0) {
      cursorFirst = cursor & 0x1f;
      cursorLast = Math.min(cursor >> 8, ch - 1);
    }
    const s = this.surface;
    const pixels = s.pixels;
    const width = s.width;
    for (let l = 0; l < ch; l++) {
      // Font lines past 31 read as blank (a font holds 32 lines per character).
      let bits = l < 32 ? this.#font[fontAt + l] : 0;
      let ninth = dup9 ? bits & 1 : 0;
      if (l >= cursorFirst && l <= cursorLast) {
        bits = 0xff;
        ninth = 1;
      }
      let o = (y + l) * width + x;
      if (cw === 16) {
        for (let b = 7; b >= 0; b--) {
          const c = (bits >> b) & 1 ? fg : bg;
          pixels[o++] = c;
          pixels[o++] = c;
        }
      } else {
        for (let b = 7; b >= 0; b--) pixels[o++] = (bits >> b) & 1 ? fg : bg;
        if (cw === 9) pixels[o] = ninth ? fg : bg;
      }
    }
  }

  /** The Bochs VBE framebuffer: each line compared with what the surface shows, changed spans redrawn. */
  #drawVbe(): void {
    const vbe = this.#vbe!;
    const core = this.#core;
    const width = vbe.regs[1];
    const height = vbe.regs[2];
    const bpp = vbe.regs[3];
    // A mode past MAX_SURFACE_PIXELS (a guest with 256 MiB of VRAM can ask for
    // 16000x12000) is not drawn rather than allocating gigabytes for it.
    if (
      width < 1 || height < 1 || width * height > MAX_SURFACE_PIXELS ||
      ![8, 15, 16, 24, 32].includes(bpp)
    ) {
      this.mode = "unsupported";
      this.#drawBlank();
      return;
    }
    if (this.surface.width !== width || this.surface.height !== height) {
      this.surface.resize(width, height);
      this.#full = true;
    }
    const palette = bpp === 8 ? this.#palette256() : null;
    this.#beginFrame(
      `vbe:${width}x${height}x${bpp}:${vbe.startAddress}:${vbe.lineOffset}`,
      palette,
    );
    const vram = core.vram;
    const pixels = this.surface.pixels;
    if (bpp === 32 && ((vbe.startAddress | vbe.lineOffset) & 3) === 0) {
      this.#drawVbe32(width, height);
      return;
    }
    const bytesPerPixel = (bpp + 7) >> 3;
    const replicate = sharesSurface(
      bpp,
      vbe.startAddress,
      vbe.lineOffset,
      width,
      height,
      vram.length,
    );
    for (let y = 0; y < height; y++) {
      let at = vbe.startAddress + y * vbe.lineOffset;
      // A line on no written page shows what it showed.
      if (!this.#full && !core.isDirty(at, at + width * bytesPerPixel)) continue;
      let first = -1;
      let last = -1;
      let o = y * width;
      for (let x = 0; x < width; x++, o++, at += bytesPerPixel) {
        let color = 0;
        if (at + bytesPerPixel <= vram.length) {
          switch (bpp) {
            case 8:
              color = palette![vram[at]];
              break;
            case 15: {
              const v = vram[at] | (vram[at + 1] << 8);
              color = (((v >> 7) & 0xf8) << 16) | (((v >> 2) & 0xf8) << 8) | ((v << 3) & 0xf8);
              break;
            }
            case 16:
              color = rgb565(vram[at] | (vram[at + 1] << 8), replicate);
              break;
            default:
              color = (vram[at + 2] << 16) | (vram[at + 1] << 8) | vram[at];
          }
        }
        if (pixels[o] !== color || this.#full) {
          pixels[o] = color;
          if (first < 0) first = x;
          last = x;
        }
      }
      if (first >= 0) this.surface.markDirty(first, y, last - first + 1, 1);
    }
  }

  /** The aligned 32 bpp case: whole words compared and copied (the common 1024x768x32). */
  #drawVbe32(width: number, height: number): void {
    const vbe = this.#vbe!;
    const words = this.#core.vram32;
    const pixels = this.surface.pixels;
    const full = this.#full;
    const core = this.#core;
    for (let y = 0; y < height; y++) {
      let at = (vbe.startAddress + y * vbe.lineOffset) >>> 2;
      if (!full && !core.isDirty(at * 4, (at + width) * 4)) continue;
      let o = y * width;
      let first = -1;
      let last = -1;
      for (let x = 0; x < width; x++, o++, at++) {
        const color = at < words.length ? words[at] & 0xffffff : 0;
        if (pixels[o] !== color || full) {
          pixels[o] = color;
          if (first < 0) first = x;
          last = x;
        }
      }
      if (first >= 0) this.surface.markDirty(first, y, last - first + 1, 1);
    }
  }

  /** The 256 DAC colours (6-bit components widened, or 8-bit ones with the VBE 8-bit DAC). */
  #palette256(): Uint32Array {
    const core = this.#core;
    const p = core.palette;
    const out = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      out[i] = core.dac8Bit
        ? (p[i * 3] << 16) | (p[i * 3 + 1] << 8) | p[i * 3 + 2]
        : (c6to8(p[i * 3]) << 16) | (c6to8(p[i * 3 + 1]) << 8) | c6to8(p[i * 3 + 2]);
    }
    return out;
  }

  /**
   * VGA graphics as QEMU's CRTC walks them: 256-colour (mode 13h: one byte per pixel,
   * drawn two dots wide as the 8-bit pixel takes two dot clocks) or 16-colour planar
   * (modes 0Dh-12h: one 32-bit word holds 8 pixels, a bit from each plane, through the
   * plane enable mask and the attribute palette; SR01 bit 3 halves the dot clock), each
   * scan line repeated per CR09's scan count and double scan, rows CR13 doublewords apart.
   */
  #drawGraphics(mode: "vga16" | "vga256" | "svga"): void {
    const core = this.#core;
    const cr = core.cr;
    const cr7 = cr[VGA_CRTC_OVERFLOW];
    const svga = mode === "svga" ? this.#svga : null;
    let width = (cr[VGA_CRTC_H_DISP] + 1) * 8;
    const halfClock = mode === "vga16" && (core.sr[VGA_SEQ_CLOCK_MODE] & SR01_HALF_CLOCK) !== 0;
    if (halfClock) width *= 2;
    const height = svga
      ? svga.height()
      : (cr[VGA_CRTC_V_DISP_END] | ((cr7 & 0x02) << 7) | ((cr7 & 0x40) << 3)) + 1;
    if (width * height <= 1) return;
    if (this.surface.width !== width || this.surface.height !== height) {
      this.surface.resize(width, height);
      this.#full = true;
    }
    let palette: Uint32Array;
    if (mode === "vga256" || mode === "svga") palette = this.#palette256();
    else {
      this.#updatePalette16();
      palette = this.#palette;
    }
    const planeMask = core.ar[VGA_ATC_PLANE_ENABLE] & 0x0f;
    const multiScan = (((cr[VGA_CRTC_MAX_SCAN] & 0x1f) + 1) << (cr[VGA_CRTC_MAX_SCAN] >> 7)) - 1;
    const lineOffset = svga ? svga.lineOffset() : cr[VGA_CRTC_OFFSET] << 3;
    const bpp = svga ? svga.bpp() : 0;
    const lineCompare = cr[VGA_CRTC_LINE_COMPARE] | ((cr7 & 0x10) << 4) |
      ((cr[VGA_CRTC_MAX_SCAN] & 0x40) << 3);
    // CR17 bits 0-1 clear: the CGA-style line interleave advances every 2nd or 4th row.
    const mask = (cr[VGA_CRTC_MODE] & 3) ^ 3;
    const vram = core.vram;
    const words = core.vram32;
    const row = new Uint32Array(width);
    const pixels = this.surface.pixels;
    let rowAddress = svga
      ? svga.startAddress()
      : ((cr[VGA_CRTC_START_HI] << 8) | cr[VGA_CRTC_START_LO]) * 4;
    this.#beginFrame(
      `${mode}:${width}x${height}:${bpp}:${rowAddress}:${lineOffset}:${multiScan}:` +
        `${lineCompare}:${mask}:${planeMask}:${halfClock}:${svga?.forceShadow?.()}`,
      palette,
    );
    const replicate = svga !== null && !svga.forceShadow?.() &&
      sharesSurface(bpp, rowAddress, lineOffset, width, height, vram.length);
    // A shared framebuffer is shown as a plain picture, a line every `lineOffset` bytes:
    // QEMU 7.2 then ignores double scan, the scan-line count, the line interleave and the
    // line compare (compared with its screendump in cirrus_screendump_test.ts).
    const scans = replicate ? 0 : multiScan;
    const interleave = replicate ? 0 : mask;
    const compareAt = replicate ? -1 : lineCompare;
    // The VRAM bytes one display line reads, to skip lines on unwritten pages.
    const lineBytes = svga
      ? width * ((bpp + 7) >> 3)
      : mode === "vga256"
      ? width >> 1
      : (width >> (halfClock ? 4 : 3)) * 4;
    // Lines the hardware cursor covers (now or in the last frame) are always redrawn.
    const cursorFrom = svga?.drawCursor ? this.#cursorBand[0] : 0;
    const cursorTo = svga?.drawCursor ? this.#cursorBand[1] : -1;
    if (svga?.drawCursor) this.#cursorBand = svga.cursorBand?.() ?? [0, height];
    let run = scans;
    let y1 = 0;
    for (let y = 0; y < height; y++) {
      const skip = !this.#full && !core.isDirty(rowAddress, rowAddress + lineBytes) &&
        !(y >= cursorFrom && y < cursorTo) &&
        !(y >= this.#cursorBand[0] && y < this.#cursorBand[1]);
      if (skip) {
        // (the CRTC's address still advances below)
      } else if (svga) {
        packedRow(row, vram, rowAddress, bpp, palette, replicate);
        svga.drawCursor?.(row, y, width);
      } else if (mode === "vga256") {
        for (let x = 0; x < width; x += 2) {
          const at = rowAddress + (x >> 1);
          row[x] = row[x + 1] = at < vram.length ? palette[vram[at]] : 0;
        }
      } else {
        const dot = halfClock ? 2 : 1;
        for (let x = 0, w = rowAddress >>> 2; x < width; x += 8 * dot, w++) {
          const word = w < words.length ? words[w] : 0;
          for (let b = 7, o = x; b >= 0; b--, o += dot) {
            let index = 0;
            for (let p = 0; p < 4; p++) index |= ((word >>> (8 * p + b)) & 1) << p;
            row[o] = palette[index & planeMask];
            if (dot === 2) row[o + 1] = row[o];
          }
        }
      }
      let o = y * width;
      let first = -1;
      let last = -1;
      for (let x = 0; !skip && x < width; x++, o++) {
        if (pixels[o] !== row[x] || this.#full) {
          pixels[o] = row[x];
          if (first < 0) first = x;
          last = x;
        }
      }
      if (first >= 0) this.surface.markDirty(first, y, last - first + 1, 1);
      if (run === 0) {
        if ((y1 & interleave) === interleave) rowAddress += lineOffset;
        y1++;
        run = scans;
      } else {
        run--;
      }
      if (y === compareAt) rowAddress = 0;
    }
  }
}

/**
 * One line of packed pixels at `address` (wrapping at the end of VRAM, as the CRTC's
 * counter does): 8 bpp through the palette, 15 and 16 bpp 5-5-5 and 5-6-5, 24 and 32
 * bpp blue first (16 bpp as {@linkcode rgb565} says).
 */
function packedRow(
  row: Uint32Array,
  vram: Uint8Array,
  address: number,
  bpp: number,
  palette: Uint32Array,
  replicate: boolean,
): void {
  const mask = vram.length - 1;
  const width = row.length;
  let at = address;
  switch (bpp) {
    case 8:
      for (let x = 0; x < width; x++) row[x] = palette[vram[at++ & mask]];
      break;
    case 15:
      for (let x = 0; x < width; x++, at += 2) {
        const v = vram[at & mask] | (vram[(at + 1) & mask] << 8);
        row[x] = (((v >> 7) & 0xf8) << 16) | (((v >> 2) & 0xf8) << 8) | ((v << 3) & 0xf8);
      }
      break;
    case 16:
      for (let x = 0; x < width; x++, at += 2) {
        row[x] = rgb565(vram[at & mask] | (vram[(at + 1) & mask] << 8), replicate);
      }
      break;
    default: {
      const step = bpp === 24 ? 3 : 4;
      for (let x = 0; x < width; x++, at += step) {
        row[x] = (vram[(at + 2) & mask] << 16) | (vram[(at + 1) & mask] << 8) | vram[at & mask];
      }
    }
  }
}
