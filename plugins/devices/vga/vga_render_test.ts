// The VGA renderer: text cells from the plane 2 font, the cursor, dirty cells, and the VBE framebuffer at each depth

import assert from "node:assert/strict";
import { BochsDispi } from "./vbe.ts";
import { VgaCore } from "./vga_core.ts";
import { VgaConsole } from "./vga_render.ts";

/** A VGA in 80x25 text mode with 9x16 cells, as the VGA BIOS leaves mode 3. */
function textMode(): VgaCore {
  const core = new VgaCore(0x40000);
  core.reset();
  core.misc = 0x67;
  core.cr[0x01] = 79; // 80 columns
  core.cr[0x12] = 399 & 0xff; // 400 lines
  core.cr[0x07] = 0x02 | 0x10; // bit 8 of the vertical display end, bit 8 of line compare
  core.cr[0x09] = 0x4f; // 16-line cells, bit 9 of line compare
  core.cr[0x13] = 40; // 80 characters per row in word mode
  core.cr[0x18] = 0xff;
  core.sr[0x01] = 0x00; // 9-dot characters
  core.arIndex = 0x20; // video on
  for (let i = 0; i < 16; i++) core.ar[i] = i;
  core.ar[0x10] = 0x0c; // line graphics on
  core.cr[0x0a] = 0x20; // cursor off (tests that want it turn it on)
  // DAC 1 = blue (0, 0, 0x2a), 14 = yellow (0x3f, 0x3f, 0x15), 15 = (0x3f, 0x3f, 0x3f).
  core.palette.set([0, 0, 0x2a], 1 * 3);
  core.palette.set([0x3f, 0x3f, 0x15], 14 * 3);
  core.palette.set([0x3f, 0x3f, 0x3f], 15 * 3);
  return core;
}

/** Writes character `code` with attribute `attr` at cell `index` (word mode: plane offset 2 * index). */
function putChar(core: VgaCore, index: number, code: number, attr: number): void {
  core.vram[(2 * index) << 2] = code;
  core.vram[((2 * index) << 2) | 1] = attr;
}

/** Sets line `line` of character `code`'s glyph in font 0 (plane 2). */
function putGlyphLine(core: VgaCore, code: number, line: number, bits: number): void {
  core.vram[((code * 32 + line) << 2) | 2] = bits;
}

// 6-bit DAC values widened as QEMU does: 0x2a -> 0xa8, 0x15 -> 0x57, 0x3f -> 0xff.
const BLUE = 0x0000a8;
const YELLOW = 0xffff57;

Deno.test("VgaConsole: a text cell is its plane 2 glyph in the attribute's colours, 9 pixels wide", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  putGlyphLine(core, 0x41, 0, 0x81); // leftmost and rightmost of 8 dots
  putChar(core, 1, 0x41, 0x1e); // yellow on blue
  const surface = screen.update();
  assert.equal(screen.mode, "text");
  assert.deepEqual([surface.width, surface.height], [720, 400]);
  const row0 = [...surface.pixels.subarray(9, 18)];
  assert.deepEqual(row0, [YELLOW, BLUE, BLUE, BLUE, BLUE, BLUE, BLUE, YELLOW, BLUE]);
  // Line 1 of the glyph is empty: background only.
  assert.deepEqual([...surface.pixels.subarray(720 + 9, 720 + 18)], Array(9).fill(BLUE));
});

Deno.test("VgaConsole: line graphics characters repeat their 8th dot in the 9th column", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  putGlyphLine(core, 0xc4, 0, 0xff);
  putGlyphLine(core, 0x41, 0, 0xff);
  putChar(core, 0, 0xc4, 0x1e);
  putChar(core, 1, 0x41, 0x1e);
  let pixels = screen.update().pixels;
  assert.equal(pixels[8], YELLOW, "0xc4 extends into the 9th column");
  assert.equal(pixels[17], BLUE, "a letter does not");
  core.ar[0x10] = 0x08; // line graphics off
  screen.invalidate();
  pixels = screen.update().pixels;
  assert.equal(pixels[8], BLUE);
});

Deno.test("VgaConsole: 8-dot characters make a 640-pixel-wide screen", () => {
  const core = textMode();
  core.sr[0x01] = 0x01;
  const surface = new VgaConsole("vga0", core).update();
  assert.deepEqual([surface.width, surface.height], [640, 400]);
});

Deno.test("VgaConsole: the cursor fills its scan lines across the whole cell in the foreground colour", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  putChar(core, 3, 0x20, 0x1e);
  core.cr[0x0a] = 14;
  core.cr[0x0b] = 15;
  core.cr[0x0f] = 3;
  let pixels = screen.update().pixels;
  const at = (line: number) => [...pixels.subarray(line * 720 + 27, line * 720 + 36)];
  assert.deepEqual(at(13), Array(9).fill(BLUE));
  assert.deepEqual(at(14), Array(9).fill(YELLOW));
  assert.deepEqual(at(15), Array(9).fill(YELLOW));
  // Off in the blink phase, and when CR0A bit 5 disables it.
  screen.cursorVisible = false;
  pixels = screen.update().pixels;
  assert.deepEqual(at(14), Array(9).fill(BLUE));
  screen.cursorVisible = true;
  core.cr[0x0a] = 0x20 | 14;
  pixels = screen.update().pixels;
  assert.deepEqual(at(14), Array(9).fill(BLUE));
});

Deno.test("VgaConsole: only changed cells are redrawn and reported dirty", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  screen.update();
  assert.deepEqual(screen.surface.takeDirty(), [{ x: 0, y: 0, width: 720, height: 400 }]);
  screen.update();
  assert.deepEqual(screen.surface.takeDirty(), []);
  putChar(core, 2 * 80 + 5, 0x41, 0x07);
  screen.update();
  assert.deepEqual(screen.surface.takeDirty(), [{ x: 45, y: 32, width: 9, height: 16 }]);
  // A new glyph in plane 2 may change any cell: everything is redrawn.
  putGlyphLine(core, 0x41, 3, 0x18);
  screen.update();
  const dirty = screen.surface.takeDirty();
  assert.equal(dirty.reduce((n, r) => n + r.width * r.height, 0), 720 * 400);
});

Deno.test("VgaConsole: the start address scrolls the text", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  putGlyphLine(core, 0x41, 0, 0x80);
  putChar(core, 80, 0x41, 0x1e); // row 1, column 0
  assert.equal(screen.update().pixels[16 * 720], YELLOW);
  core.cr[0x0d] = 80; // start one row further down
  assert.equal(screen.update().pixels[0], YELLOW);
});

Deno.test("VgaConsole: the screen is black while the attribute controller's video is off", () => {
  const core = textMode();
  const screen = new VgaConsole("vga0", core);
  putGlyphLine(core, 0x41, 0, 0xff);
  putChar(core, 0, 0x41, 0x1e);
  assert.equal(screen.update().pixels[0], YELLOW);
  core.arIndex = 0;
  assert.equal(screen.update().pixels[0], 0);
  assert.equal(screen.mode, "blank");
});

Deno.test("VgaConsole: a Bochs VBE mode shows the framebuffer at each depth; only changed spans are dirty", () => {
  const core = new VgaCore(0x100000);
  core.reset();
  const vbe = new BochsDispi(core);
  const screen = new VgaConsole("vga0", core, vbe);
  const setMode = (bpp: number) => {
    vbe.write(4, 0);
    vbe.write(1, 16);
    vbe.write(2, 8);
    vbe.write(3, bpp);
    vbe.write(4, 0x41);
  };
  setMode(32);
  let surface = screen.update();
  assert.equal(screen.mode, "vbe");
  assert.deepEqual([surface.width, surface.height], [16, 8]);
  surface.takeDirty();
  // Pixel (3, 2) at 32 bpp: bytes blue, green, red, unused.
  core.vram.set([0x33, 0x22, 0x11, 0x99], (2 * 16 + 3) * 4);
  core.vram.set([0x66, 0x55, 0x44, 0x00], (2 * 16 + 5) * 4);
  core.markDirty(0, 4096); // as the framebuffer mapping flags a CPU's writes
  surface = screen.update();
  assert.equal(surface.pixels[2 * 16 + 3], 0x112233);
  assert.deepEqual(surface.takeDirty(), [{ x: 3, y: 2, width: 3, height: 1 }]);

  setMode(16);
  core.vram[0] = 0x1f; // 5:6:5, full blue
  core.vram[1] = 0xf8; // full red
  // (components widened by repeating their top bits, as QEMU's shared surface shows them)
  assert.equal(screen.update().pixels[0], 0xff00ff);
  setMode(15);
  core.vram[0] = 0xe0; // 5:5:5, full green
  core.vram[1] = 0x03;
  assert.equal(screen.update().pixels[0], 0x00f800);
  setMode(24);
  core.vram.set([0x03, 0x02, 0x01], 3);
  assert.equal(screen.update().pixels[1], 0x010203);
  setMode(8);
  core.palette.set([0x3f, 0x00, 0x15], 7 * 3);
  core.vram[2] = 7;
  assert.equal(screen.update().pixels[2], 0xff0057);
});

Deno.test("VgaConsole: 256-colour mode 13h draws each byte two dots wide and each line twice", () => {
  const core = new VgaCore(0x40000);
  core.reset();
  core.arIndex = 0x20;
  core.gr[0x06] = 0x05; // graphics, 0xa0000 64 KiB
  core.gr[0x05] = 0x40; // 256-colour shift mode
  core.sr[0x02] = 0x0f; // all planes writable
  core.sr[0x04] = 0x0e; // chain 4
  core.cr[0x01] = 0x4f; // 80 character clocks: 640 dots
  core.cr[0x12] = 0x8f; // 400 lines
  core.cr[0x07] = 0x1f;
  core.cr[0x09] = 0x41; // each line twice
  core.cr[0x13] = 0x28; // 320 bytes a row
  core.cr[0x17] = 0xa3;
  core.cr[0x18] = 0xff;
  core.palette.set([0x3f, 0, 0], 4 * 3);
  const screen = new VgaConsole("vga0", core);
  core.writeWindow(1, 4); // pixel (1, 0) through the chain-4 window
  core.writeWindow(320, 4); // pixel (0, 1)
  const s = screen.update();
  assert.equal(screen.mode, "vga256");
  assert.deepEqual([s.width, s.height], [640, 400]);
  assert.deepEqual([...s.pixels.subarray(0, 4)], [0, 0, 0xff0000, 0xff0000]);
  assert.deepEqual([...s.pixels.subarray(640, 644)], [0, 0, 0xff0000, 0xff0000]);
  assert.deepEqual([...s.pixels.subarray(2 * 640, 2 * 640 + 2)], [0xff0000, 0xff0000]);
  s.takeDirty();
  core.writeWindow(321, 4);
  screen.update();
  assert.deepEqual(s.takeDirty(), [{ x: 2, y: 2, width: 2, height: 2 }]);
});

Deno.test("VgaConsole: 16-colour planar pixels take a bit from each enabled plane, MSB leftmost", () => {
  const core = new VgaCore(0x40000);
  core.reset();
  core.arIndex = 0x20;
  core.gr[0x06] = 0x05; // graphics
  core.cr[0x01] = 0x4f; // 640 dots
  core.cr[0x12] = 0xdf; // 480 lines
  core.cr[0x07] = 0x3e;
  core.cr[0x13] = 0x28;
  core.cr[0x17] = 0xe3;
  core.cr[0x18] = 0xff;
  core.ar[0x12] = 0x0f; // all planes enabled
  for (let i = 0; i < 16; i++) core.ar[i] = i;
  core.palette.set([0x3f, 0x3f, 0x3f], 5 * 3); // colour 5: planes 0 and 2
  core.palette.set([0x3f, 0, 0], 1 * 3); // colour 1: plane 0 only
  core.vram[0] = 0x80; // plane 0, leftmost pixel
  core.vram[2] = 0x80; // plane 2, leftmost pixel
  const screen = new VgaConsole("vga0", core);
  let s = screen.update();
  assert.equal(screen.mode, "vga16");
  assert.deepEqual([s.width, s.height], [640, 480]);
  assert.deepEqual([...s.pixels.subarray(0, 2)], [0xffffff, 0]);
  core.ar[0x12] = 0x01; // plane 2 masked off
  assert.equal(screen.update().pixels[0], 0xff0000);
  // SR01 bit 3 halves the dot clock: 320 dots drawn two wide.
  core.sr[0x01] = 0x08;
  core.cr[0x01] = 0x27;
  s = screen.update();
  assert.equal(s.width, 640);
  assert.deepEqual([...s.pixels.subarray(0, 3)], [0xff0000, 0xff0000, 0]);
});

Deno.test("VgaConsole: a VBE mode too large to draw (16000x8388 on 128 MiB) is refused, not allocated", () => {
  const core = new VgaCore(128 << 20);
  core.reset();
  const vbe = new BochsDispi(core);
  const screen = new VgaConsole("vga0", core, vbe);
  vbe.write(1, 16000);
  vbe.write(2, 12000);
  vbe.write(3, 8);
  vbe.write(4, 0x41 | 0x80); // enabled, LFB, keep memory (no 128 MiB clear)
  assert.deepEqual([vbe.read(1), vbe.read(2)], [16000, 8388]);
  const s = screen.update();
  assert.equal(screen.mode, "unsupported");
  assert.ok(s.width * s.height <= 8192 * 8192);
});
