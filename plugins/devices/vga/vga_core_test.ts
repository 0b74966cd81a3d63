import assert from "node:assert/strict";
import {
  VGA_ATT_R,
  VGA_ATT_W,
  VGA_CRT_DC,
  VGA_CRT_DM,
  VGA_CRT_IC,
  VGA_CRT_IM,
  VGA_GFX_D,
  VGA_GFX_I,
  VGA_IS1_RC,
  VGA_MIS_R,
  VGA_MIS_W,
  VGA_PEL_D,
  VGA_PEL_IR,
  VGA_PEL_IW,
  VGA_SEQ_D,
  VGA_SEQ_I,
  VgaCore,
} from "./vga_core.ts";

function core(): VgaCore {
  const c = new VgaCore(256 << 10);
  c.reset();
  c.ioWrite(VGA_MIS_W, 0x67); // colour ports, as the BIOS sets for mode 3
  return c;
}

function seq(c: VgaCore, index: number, value: number): void {
  c.ioWrite(VGA_SEQ_I, index);
  c.ioWrite(VGA_SEQ_D, value);
}

function gfx(c: VgaCore, index: number, value: number): void {
  c.ioWrite(VGA_GFX_I, index);
  c.ioWrite(VGA_GFX_D, value);
}

/** The registers of text mode 3 that decide how the window reaches VRAM. */
function textMode(c: VgaCore): void {
  seq(c, 2, 0x03); // planes 0 and 1
  seq(c, 4, 0x02); // odd/even writes
  gfx(c, 4, 0x00);
  gfx(c, 5, 0x10); // odd/even reads
  gfx(c, 6, 0x0e); // 0xb8000, 32 KiB
  gfx(c, 8, 0xff);
}

/** The registers the VGA BIOS uses to load a font into plane 2. */
function fontMode(c: VgaCore): void {
  seq(c, 2, 0x04);
  seq(c, 4, 0x07); // sequential, no chain-4
  gfx(c, 4, 0x02);
  gfx(c, 5, 0x00);
  gfx(c, 6, 0x04); // 0xa0000, 64 KiB
  gfx(c, 8, 0xff);
}

Deno.test("VgaCore.ioWrite() keeps sequencer, graphics and CRTC registers behind their index ports", () => {
  const c = core();
  seq(c, 2, 0xff);
  assert.equal(c.ioRead(VGA_SEQ_D), 0x0f, "SR02 implements 4 bits");
  gfx(c, 5, 0x10);
  assert.equal(c.ioRead(VGA_GFX_D), 0x10);
  c.ioWrite(VGA_CRT_IC, 0x0e);
  c.ioWrite(VGA_CRT_DC, 0x12);
  assert.equal(c.ioRead(VGA_CRT_DC), 0x12);
  assert.equal(c.ioRead(VGA_MIS_R), 0x67);
});

Deno.test("VgaCore.ioRead() answers the CRTC at 0x3d4 in colour mode and at 0x3b4 in mono", () => {
  const c = core();
  c.ioWrite(VGA_CRT_IC, 0x0f);
  c.ioWrite(VGA_CRT_DC, 0x34);
  assert.equal(c.ioRead(VGA_CRT_DM), 0xff, "mono ports are dead in colour mode");
  c.ioWrite(VGA_MIS_W, 0x66);
  assert.equal(c.ioRead(VGA_CRT_DC), 0xff);
  c.ioWrite(VGA_CRT_IM, 0x0f);
  assert.equal(c.ioRead(VGA_CRT_DM), 0x34);
});

Deno.test("VgaCore CR11 bit 7 write-protects CR0-CR7 except the line compare bit of CR7", () => {
  const c = core();
  c.ioWrite(VGA_CRT_IC, 0x11);
  c.ioWrite(VGA_CRT_DC, 0x80);
  c.ioWrite(VGA_CRT_IC, 0x01);
  c.ioWrite(VGA_CRT_DC, 0x4f);
  assert.equal(c.ioRead(VGA_CRT_DC), 0);
  c.ioWrite(VGA_CRT_IC, 0x07);
  c.ioWrite(VGA_CRT_DC, 0xff);
  assert.equal(c.ioRead(VGA_CRT_DC), 0x10);
});

Deno.test("VgaCore input status 1 toggles retrace and resets the attribute flip-flop", () => {
  const c = core();
  const first = c.ioRead(VGA_IS1_RC);
  const second = c.ioRead(VGA_IS1_RC);
  assert.equal((first ^ second) & 0x09, 0x09);
  c.ioWrite(VGA_ATT_W, 0x10); // index
  c.ioRead(VGA_IS1_RC); // back to index state
  c.ioWrite(VGA_ATT_W, 0x12);
  c.ioWrite(VGA_ATT_W, 0x0f);
  assert.equal(c.ioRead(VGA_ATT_W), 0x12);
  assert.equal(c.ioRead(VGA_ATT_R), 0x0f);
});

Deno.test("VgaCore DAC writes take three components and advance the index", () => {
  const c = core();
  c.ioWrite(VGA_PEL_IW, 5);
  for (const v of [0x3f, 0x20, 0x01, 0x02, 0x03, 0x04]) c.ioWrite(VGA_PEL_D, v);
  assert.deepEqual([...c.palette.subarray(15, 21)], [0x3f, 0x20, 0x01, 0x02, 0x03, 0x04]);
  assert.equal(c.ioRead(VGA_PEL_IW), 7);
  c.ioWrite(VGA_PEL_IR, 6);
  assert.deepEqual([0, 1, 2].map(() => c.ioRead(VGA_PEL_D)), [0x02, 0x03, 0x04]);
});

Deno.test("VgaCore.writeWindow() in text mode puts characters in plane 0 and attributes in plane 1", () => {
  const c = core();
  textMode(c);
  const text = "SeaBIOS";
  for (let i = 0; i < text.length; i++) {
    c.writeWindow(0x18000 + 2 * i, text.charCodeAt(i));
    c.writeWindow(0x18000 + 2 * i + 1, 0x07);
  }
  assert.equal(c.planeByte(0, 0), "S".charCodeAt(0));
  assert.equal(c.planeByte(1, 0), 0x07);
  assert.equal(c.planeByte(0, 2), "e".charCodeAt(0));
  assert.equal(c.planeByte(2, 0), 0, "plane 2 (the font) is untouched");
  assert.equal(c.readWindow(0x18002), "e".charCodeAt(0));
  assert.equal(c.readWindow(0x18003), 0x07);
  assert.equal(c.readWindow(0x00000), 0xff, "0xa0000 is outside the 0xb8000 map");
  // The CRTC's view of the text page.
  c.ioWrite(VGA_CRT_IC, 0x01);
  c.ioWrite(VGA_CRT_DC, 79);
  c.ioWrite(VGA_CRT_IC, 0x12);
  c.ioWrite(VGA_CRT_DC, 0x8f);
  c.ioWrite(VGA_CRT_IC, 0x07);
  c.ioWrite(VGA_CRT_DC, 0x1f);
  c.ioWrite(VGA_CRT_IC, 0x09);
  c.ioWrite(VGA_CRT_DC, 0x4f);
  c.ioWrite(VGA_CRT_IC, 0x13);
  c.ioWrite(VGA_CRT_DC, 0x28);
  const lines = c.textLines();
  assert.equal(lines.length, 25);
  assert.equal(lines[0], "SeaBIOS");
});

Deno.test("VgaCore font upload through plane 2 does not disturb the text planes", () => {
  const c = core();
  textMode(c);
  c.writeWindow(0x18000, 0x41);
  fontMode(c);
  for (let row = 0; row < 16; row++) c.writeWindow(0x41 * 32 + row, 0x80 | row);
  assert.equal(c.planeByte(2, 0x41 * 32 + 3), 0x83);
  assert.equal(c.readWindow(0x41 * 32 + 5), 0x85, "read map select 2 reads plane 2");
  textMode(c);
  assert.equal(c.readWindow(0x18000), 0x41);
});

Deno.test("VgaCore write mode 0 applies set/reset, the ALU and the bit mask against the latches", () => {
  const c = core();
  seq(c, 2, 0x0f);
  seq(c, 4, 0x06);
  gfx(c, 5, 0x00);
  gfx(c, 6, 0x05);
  gfx(c, 8, 0xff);
  c.writeWindow(0, 0xf0); // plain write: all four planes
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 0)), [0xf0, 0xf0, 0xf0, 0xf0]);
  gfx(c, 1, 0x05); // set/reset on planes 0 and 2
  gfx(c, 0, 0x01); // plane 0 set, plane 2 reset
  gfx(c, 8, 0x0f); // only the low nibble changes
  c.readWindow(0); // load latches
  c.writeWindow(0, 0xaa);
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 0)), [0xff, 0xfa, 0xf0, 0xfa]);
  gfx(c, 1, 0);
  gfx(c, 8, 0xff);
  gfx(c, 3, 0x18); // XOR with the latches
  c.readWindow(0);
  c.writeWindow(0, 0xff);
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 0)), [0x00, 0x05, 0x0f, 0x05]);
});

Deno.test("VgaCore write mode 1 copies the latches and write mode 2 expands a colour", () => {
  const c = core();
  seq(c, 2, 0x0f);
  seq(c, 4, 0x06);
  gfx(c, 6, 0x05);
  gfx(c, 8, 0xff);
  gfx(c, 5, 0x02); // write mode 2
  c.writeWindow(0, 0x09); // colour 9: planes 0 and 3
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 0)), [0xff, 0x00, 0x00, 0xff]);
  gfx(c, 5, 0x01); // write mode 1
  c.readWindow(0);
  c.writeWindow(1, 0x00);
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 1)), [0xff, 0x00, 0x00, 0xff]);
});

Deno.test("VgaCore write mode 3 masks the set/reset colour with the rotated data", () => {
  const c = core();
  seq(c, 2, 0x0f);
  seq(c, 4, 0x06);
  gfx(c, 6, 0x05);
  gfx(c, 8, 0xff);
  gfx(c, 0, 0x03); // colour 3
  gfx(c, 5, 0x03);
  c.readWindow(0);
  c.writeWindow(0, 0x3c);
  assert.deepEqual([0, 1, 2, 3].map((p) => c.planeByte(p, 0)), [0x3c, 0x3c, 0x00, 0x00]);
});

Deno.test("VgaCore read mode 1 compares the four planes with the colour compare register", () => {
  const c = core();
  seq(c, 2, 0x0f);
  seq(c, 4, 0x06);
  gfx(c, 6, 0x05);
  gfx(c, 8, 0xff);
  gfx(c, 5, 0x02);
  c.writeWindow(0, 0x05);
  gfx(c, 8, 0x0f);
  c.readWindow(0);
  c.writeWindow(0, 0x0a); // low four pixels colour 10, high four colour 5
  gfx(c, 5, 0x08); // read mode 1
  gfx(c, 2, 0x05);
  gfx(c, 7, 0x0f);
  assert.equal(c.readWindow(0), 0xf0);
  gfx(c, 7, 0x00); // nothing compared: every pixel matches
  assert.equal(c.readWindow(0), 0xff);
});

Deno.test("VgaCore chain-4 maps the window linearly onto VRAM", () => {
  const c = core();
  seq(c, 2, 0x0f);
  seq(c, 4, 0x0e);
  gfx(c, 5, 0x40);
  gfx(c, 6, 0x05);
  for (let i = 0; i < 8; i++) c.writeWindow(i, i + 1);
  assert.deepEqual([...c.vram.subarray(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(c.planeByte(1, 1), 6);
  assert.equal(c.readWindow(6), 7);
  seq(c, 2, 0x01); // map mask: only plane 0 takes writes
  c.writeWindow(1, 0x99);
  c.writeWindow(4, 0x99);
  assert.equal(c.vram[1], 2);
  assert.equal(c.vram[4], 0x99);
});

Deno.test("VgaCore.save() and load() restore registers and VRAM", () => {
  const c = core();
  textMode(c);
  c.writeWindow(0x18000, 0x42);
  const state = c.save();
  const d = new VgaCore(256 << 10);
  d.reset();
  d.load(state);
  assert.equal(d.readWindow(0x18000), 0x42);
  assert.equal(d.ioRead(VGA_MIS_R), 0x67);
});
