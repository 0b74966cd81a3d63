// A text console of the display (QEMU's `vc`): a character grid with scrollback, fed by a VT100 subset, drawn with the VGA 8x16 font, keys back as bytes

import { DisplaySurface, type GraphicConsole } from "./display.ts";

/** Glyph size of the VGA font a text console draws with. */
export const FONT_WIDTH = 8;
export const FONT_HEIGHT = 16;
/** Lines a text console keeps, the screen's included: QEMU's DEFAULT_BACKSCROLL. */
export const TEXT_CONSOLE_BACKSCROLL = 512;
/** The largest grid a `vc` may ask for (QEMU bounds it by the surface; so does vmkit). */
export const MAX_TEXT_COLUMNS = 1024;
export const MAX_TEXT_ROWS = 512;
/** A CSI parameter past this is taken as this (no sequence can ask for more). */
const MAX_CSI_PARAM = 9999;
const MAX_CSI_PARAMS = 16;

/**
 * QEMU's text console colours (console.c's color_table_rgb) by its colour index
 * (black, blue, green, cyan, red, magenta, yellow, white); bold takes the second row.
 */
const COLOURS: readonly (readonly number[])[] = [
  [0x000000, 0x0000aa, 0x00aa00, 0x00aaaa, 0xaa0000, 0xaa00aa, 0xaaaa00, 0xaaaaaa],
  [0x000000, 0x0000ff, 0x00ff00, 0x00ffff, 0xff0000, 0xff00ff, 0xffff00, 0xffffff],
];
/** ANSI SGR colour order (30 + n) to QEMU's colour index. */
const ANSI_TO_COLOUR = [0, 4, 2, 6, 1, 5, 3, 7];
export const COLOUR_BLACK = 0;
export const COLOUR_BLUE = 1;
export const COLOUR_WHITE = 7;

/** The attributes of a cell, packed with its character: char | fg << 8 | bg << 12 | flags. */
const FG_SHIFT = 8;
const BG_SHIFT = 12;
const BOLD = 1 << 16;
const INVERSE = 1 << 17;
const DEFAULT_ATTR = (COLOUR_WHITE << FG_SHIFT) | (COLOUR_BLACK << BG_SHIFT);
const BLANK = DEFAULT_ATTR | 0x20;

/**
 * Finds the VGA 8x16 font (256 glyphs of 16 bytes) in a VGA BIOS image, as the VGA BIOS
 * loads it into plane 2 for text modes: the glyphs of characters 0 (empty) and 1 (the
 * smiley face) mark its start. Null when the image holds no such font.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findVgaFont } from "./text_console.ts";
 *
 * const rom = new Uint8Array(8192);
 * rom.set([0, 0, 0x7e, 0x81, 0xa5, 0x81, 0x81, 0xbd, 0x99, 0x81, 0x81, 0x7e], 1024 + 16);
 * assert.equal(findVgaFont(rom)?.length, 4096);
 * assert.equal(findVgaFont(new Uint8Array(8192)), null);
 * ```
 */
export function findVgaFont(rom: Uint8Array): Uint8Array | null {
  const smiley = [0, 0, 0x7e, 0x81, 0xa5, 0x81, 0x81, 0xbd, 0x99, 0x81, 0x81, 0x7e, 0, 0, 0, 0];
  const glyphs = 256 * FONT_HEIGHT;
  outer: for (let at = 0; at + glyphs <= rom.length; at++) {
    if (rom[at + 16 + 2] !== 0x7e) continue;
    for (let i = 0; i < 16; i++) if (rom[at + i] !== 0) continue outer;
    for (let i = 0; i < 16; i++) if (rom[at + 16 + i] !== smiley[i]) continue outer;
    return rom.slice(at, at + glyphs);
  }
  return null;
}

/** The grid of a text console: columns and rows of 8x16 cells. */
export interface TextConsoleSize {
  columns: number;
  rows: number;
}

/**
 * A text console: what is written to it (text with CR, LF, BS, TAB and the VT100
 * sequences a line editor uses: cursor moves, erase, colours) lands in a grid of cells
 * with {@linkcode TEXT_CONSOLE_BACKSCROLL} lines kept, drawn into its surface on
 * {@linkcode update}; keys typed on it come out of {@linkcode onInput} as the bytes a
 * terminal sends. It is a console of the {@linkcode DisplayRegistry} like a graphics
 * card's, shown when a display client switches to it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TextConsole } from "./text_console.ts";
 *
 * const font = new Uint8Array(4096).fill(0xff); // every glyph a solid block
 * const vc = new TextConsole("vc0", font, { columns: 4, rows: 2 });
 * vc.write("ab\r\ncd");
 * assert.deepEqual(vc.lines(), ["ab", "cd"]);
 * const surface = vc.update();
 * assert.equal(surface.width, 32);
 * assert.equal(surface.pixels[0], 0xaaaaaa); // 'a' in the default white
 * ```
 */
export class TextConsole implements GraphicConsole {
  readonly id: string;
  readonly columns: number;
  readonly rows: number;
  /** Bytes a key typed on the console sends (to a monitor or a serial port). */
  onInput: (bytes: Uint8Array) => void = () => {};
  readonly #font: Uint8Array;
  readonly #surface: DisplaySurface;
  readonly #totalRows: number;
  /** The lines, a ring of totalRows rows of `columns` cells. */
  readonly #cells: Uint32Array;
  /** Ring row of the screen's first line. */
  #top = 0;
  /** Lines above the screen that scrollback can show. */
  #backlog = 0;
  /** Lines the view is scrolled back (0: the live screen). */
  #scrolled = 0;
  #x = 0;
  #y = 0;
  #savedX = 0;
  #savedY = 0;
  #attr = DEFAULT_ATTR;
  /** Screen rows to draw again. */
  readonly #dirtyRows: Uint8Array;
  /** Where the cursor was drawn (-1: nowhere). */
  #cursorDrawnRow = -1;
  #state: "text" | "esc" | "csi" = "text";
  #params: number[] = [];

  /**
   * @param font 256 glyphs of 16 bytes ({@linkcode findVgaFont})
   * @throws RangeError for a grid outside 1x1 .. MAX_TEXT_COLUMNS x MAX_TEXT_ROWS
   */
  constructor(id: string, font: Uint8Array, size: TextConsoleSize = { columns: 80, rows: 30 }) {
    const { columns, rows } = size;
    if (
      !Number.isInteger(columns) || !Number.isInteger(rows) || columns < 1 || rows < 1 ||
      columns > MAX_TEXT_COLUMNS || rows > MAX_TEXT_ROWS
    ) {
      throw new RangeError(`Invalid text console size ${columns}x${rows}`);
    }
    if (font.length < 256 * FONT_HEIGHT) {
      throw new RangeError("The font needs 256 glyphs of 16 bytes");
    }
    this.id = id;
    this.columns = columns;
    this.rows = rows;
    this.#font = font;
    this.#totalRows = Math.max(rows, TEXT_CONSOLE_BACKSCROLL);
    this.#cells = new Uint32Array(this.#totalRows * columns).fill(BLANK);
    this.#surface = new DisplaySurface(columns * FONT_WIDTH, rows * FONT_HEIGHT);
    this.#dirtyRows = new Uint8Array(rows).fill(1);
  }

  /** Sets the colours of what is written next (QEMU's colour indices, 0..7). */
  setColours(foreground: number, background: number): void {
    this.#attr = ((foreground & 7) << FG_SHIFT) | ((background & 7) << BG_SHIFT);
  }

  /** Back to the default colours (white on black). */
  resetColours(): void {
    this.#attr = DEFAULT_ATTR;
  }

  /** Writes text: characters past U+00FF show as '?'. */
  write(text: string): void {
    this.#toLive();
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      this.#put(c < 0x100 ? c : 0x3f);
    }
  }

  /** The screen's lines as text, trailing blanks left out (what a test reads). */
  lines(): string[] {
    const out: string[] = [];
    for (let r = 0; r < this.rows; r++) {
      const base = this.#ringRow(r - this.#scrolled) * this.columns;
      let line = "";
      for (let c = 0; c < this.columns; c++) {
        line += String.fromCharCode(this.#cells[base + c] & 0xff);
      }
      out.push(line.replace(/ +$/, ""));
    }
    return out;
  }

  /** The cursor's column and row on the screen. */
  get cursor(): { x: number; y: number } {
    return { x: this.#x, y: this.#y };
  }

  /**
   * A key typed while the console is shown, as an X11 keysym (what VNC sends): a
   * character, Return, BackSpace, Tab, Escape, the arrows and editing keys become the
   * bytes a VT100 sends; with `ctrl`, a character becomes its control code. Ctrl with
   * PageUp/PageDown/Up/Down scrolls back through the kept lines. Other keys do nothing.
   */
  putKeysym(keysym: number, ctrl = false): void {
    if (ctrl) {
      const scroll = SCROLL_KEYS.get(keysym);
      if (scroll !== undefined) {
        this.#scroll(scroll);
        return;
      }
    }
    let bytes: number[] | undefined;
    if (keysym >= 0x20 && keysym <= 0xff) {
      bytes = [ctrl ? keysym & 0x1f : keysym];
    } else {
      const seq = KEY_SEQUENCES.get(keysym);
      if (seq !== undefined) bytes = [...seq].map((ch) => ch.charCodeAt(0));
    }
    if (!bytes) return;
    this.#toLive();
    this.onInput(new Uint8Array(bytes));
  }

  /** Draws what changed into the surface and returns it. */
  update(): DisplaySurface {
    const cursorRow = this.#scrolled === 0 ? this.#y : -1;
    if (this.#cursorDrawnRow >= 0) this.#dirtyRows[this.#cursorDrawnRow] = 1;
    if (cursorRow >= 0) this.#dirtyRows[cursorRow] = 1;
    for (let r = 0; r < this.rows; r++) {
      if (!this.#dirtyRows[r]) continue;
      this.#dirtyRows[r] = 0;
      this.#drawRow(r, r === cursorRow ? this.#x : -1);
    }
    this.#cursorDrawnRow = cursorRow;
    return this.#surface;
  }

  #drawRow(row: number, cursorColumn: number): void {
    const pixels = this.#surface.pixels;
    const stride = this.#surface.width;
    const base = this.#ringRow(row - this.#scrolled) * this.columns;
    for (let col = 0; col < this.columns; col++) {
      const cell = this.#cells[base + col];
      const bold = (cell & BOLD) !== 0 ? 1 : 0;
      let fg = COLOURS[bold][(cell >> FG_SHIFT) & 7];
      let bg = COLOURS[0][(cell >> BG_SHIFT) & 7];
      if (((cell & INVERSE) !== 0) !== (col === cursorColumn)) [fg, bg] = [bg, fg];
      const glyph = (cell & 0xff) * FONT_HEIGHT;
      let at = row * FONT_HEIGHT * stride + col * FONT_WIDTH;
      for (let y = 0; y < FONT_HEIGHT; y++, at += stride) {
        const bits = this.#font[glyph + y];
        for (let x = 0; x < FONT_WIDTH; x++) pixels[at + x] = (bits << x) & 0x80 ? fg : bg;
      }
    }
    this.#surface.markDirty(0, row * FONT_HEIGHT, stride, FONT_HEIGHT);
  }

  /** The ring row of screen row `row` (negative: lines above the screen). */
  #ringRow(row: number): number {
    return ((this.#top + row) % this.#totalRows + this.#totalRows) % this.#totalRows;
  }

  #cell(x: number, y: number): number {
    return this.#ringRow(y) * this.columns + x;
  }

  #put(c: number): void {
    if (this.#state === "esc") {
      if (c === 0x5b /* [ */) {
        this.#state = "csi";
        this.#params = [0];
      } else this.#state = "text";
      return;
    }
    if (this.#state === "csi") {
      this.#csi(c);
      return;
    }
    switch (c) {
      case 0x0d:
        this.#x = 0;
        return;
      case 0x0a:
        this.#lineFeed();
        return;
      case 0x08:
        if (this.#x > 0) this.#x--;
        return;
      case 0x09:
        this.#x = Math.min(this.columns - 1, (this.#x + 8) & ~7);
        return;
      case 0x1b:
        this.#state = "esc";
        return;
    }
    if (c < 0x20) return; // bell and other controls: nothing to show
    if (this.#x >= this.columns) {
      this.#x = 0;
      this.#lineFeed();
    }
    this.#cells[this.#cell(this.#x, this.#y)] = this.#attr | c;
    this.#dirtyRows[this.#y] = 1;
    this.#x++;
  }

  #lineFeed(): void {
    if (this.#y < this.rows - 1) {
      this.#y++;
      return;
    }
    // The screen moves up one line; the top one joins the kept lines.
    this.#top = (this.#top + 1) % this.#totalRows;
    this.#backlog = Math.min(this.#backlog + 1, this.#totalRows - this.rows);
    this.#cells.fill(
      BLANK,
      this.#cell(0, this.rows - 1),
      this.#cell(0, this.rows - 1) + this.columns,
    );
    this.#dirtyRows.fill(1);
  }

  #csi(c: number): void {
    const params = this.#params;
    if (c >= 0x30 && c <= 0x39) {
      const i = params.length - 1;
      params[i] = Math.min(MAX_CSI_PARAM, params[i] * 10 + (c - 0x30));
      return;
    }
    if (c === 0x3b /* ; */) {
      if (params.length < MAX_CSI_PARAMS) params.push(0);
      return;
    }
    if (c === 0x3f /* ? */ || c === 0x20) return;
    this.#state = "text";
    const n = Math.max(1, params[0]);
    switch (String.fromCharCode(c)) {
      case "A":
        this.#y = Math.max(0, this.#y - n);
        break;
      case "B":
        this.#y = Math.min(this.rows - 1, this.#y + n);
        break;
      case "C":
        this.#x = Math.min(this.columns - 1, this.#x + n);
        break;
      case "D":
        this.#x = Math.max(0, Math.min(this.#x, this.columns) - n);
        break;
      case "G":
        this.#x = Math.min(this.columns - 1, n - 1);
        break;
      case "H":
      case "f":
        this.#y = Math.min(this.rows - 1, Math.max(1, params[0]) - 1);
        this.#x = Math.min(this.columns - 1, Math.max(1, params[1] ?? 1) - 1);
        break;
      case "J":
        this.#eraseDisplay(params[0]);
        break;
      case "K":
        this.#eraseLine(params[0]);
        break;
      case "m":
        for (const p of params) this.#sgr(p);
        break;
      case "s":
        [this.#savedX, this.#savedY] = [this.#x, this.#y];
        break;
      case "u":
        [this.#x, this.#y] = [this.#savedX, this.#savedY];
        break;
    }
  }

  #eraseLine(mode: number): void {
    const x = Math.min(this.#x, this.columns);
    const [from, to] = mode === 0 ? [x, this.columns] : mode === 1 ? [0, x + 1] : [0, this.columns];
    const base = this.#cell(0, this.#y);
    this.#cells.fill(BLANK, base + from, base + Math.min(to, this.columns));
    this.#dirtyRows[this.#y] = 1;
  }

  #eraseDisplay(mode: number): void {
    const [from, to] = mode === 0
      ? [this.#y + 1, this.rows]
      : mode === 1
      ? [0, this.#y]
      : [0, this.rows];
    for (let r = from; r < to; r++) {
      const base = this.#cell(0, r);
      this.#cells.fill(BLANK, base, base + this.columns);
      this.#dirtyRows[r] = 1;
    }
    if (mode !== 2) this.#eraseLine(mode);
  }

  #sgr(p: number): void {
    const fg = (this.#attr >> FG_SHIFT) & 7;
    const bg = (this.#attr >> BG_SHIFT) & 7;
    const flags = this.#attr & (BOLD | INVERSE);
    if (p === 0) this.#attr = DEFAULT_ATTR;
    else if (p === 1) this.#attr |= BOLD;
    else if (p === 7) this.#attr |= INVERSE;
    else if (p === 22) this.#attr &= ~BOLD;
    else if (p === 27) this.#attr &= ~INVERSE;
    else if (p >= 30 && p <= 37) {
      this.#attr = flags | (ANSI_TO_COLOUR[p - 30] << FG_SHIFT) | (bg << BG_SHIFT);
    } else if (p >= 40 && p <= 47) {
      this.#attr = flags | (fg << FG_SHIFT) | (ANSI_TO_COLOUR[p - 40] << BG_SHIFT);
    }
  }

  /** Scrolls the view `lines` back (negative: forward), within the kept lines. */
  #scroll(lines: number): void {
    const to = Math.max(0, Math.min(this.#backlog, this.#scrolled + lines));
    if (to === this.#scrolled) return;
    this.#scrolled = to;
    this.#dirtyRows.fill(1);
  }

  #toLive(): void {
    if (this.#scrolled !== 0) this.#scroll(-this.#scrolled);
  }
}

/** Keys that send VT100 sequences (X11 keysym to bytes), as QEMU's text console sends them. */
const KEY_SEQUENCES = new Map<number, string>([
  [0xff08, "\x08"], // BackSpace
  [0xff09, "\t"], // Tab
  [0xff0d, "\r"], // Return
  [0xff8d, "\r"], // KP_Enter
  [0xff1b, "\x1b"], // Escape
  [0xff52, "\x1b[A"], // Up
  [0xff54, "\x1b[B"], // Down
  [0xff53, "\x1b[C"], // Right
  [0xff51, "\x1b[D"], // Left
  [0xff50, "\x1b[1~"], // Home
  [0xffff, "\x1b[3~"], // Delete
  [0xff57, "\x1b[4~"], // End
  [0xff55, "\x1b[5~"], // Page_Up
  [0xff56, "\x1b[6~"], // Page_Down
]);

/** Ctrl+key scrolling the kept lines, as QEMU's QEMU_KEY_CTRL_*: lines back. */
const SCROLL_KEYS = new Map<number, number>([
  [0xff52, 1], // Up
  [0xff54, -1], // Down
  [0xff55, 10], // Page_Up
  [0xff56, -10], // Page_Down
]);
