import assert from "node:assert/strict";
import {
  BochsDispi,
  VBE_DISPI_8BIT_DAC,
  VBE_DISPI_ENABLED,
  VBE_DISPI_ID0,
  VBE_DISPI_ID5,
  VBE_DISPI_INDEX_BANK,
  VBE_DISPI_INDEX_BPP,
  VBE_DISPI_INDEX_ENABLE,
  VBE_DISPI_INDEX_ID,
  VBE_DISPI_INDEX_VIRT_HEIGHT,
  VBE_DISPI_INDEX_VIRT_WIDTH,
  VBE_DISPI_INDEX_XRES,
  VBE_DISPI_INDEX_Y_OFFSET,
  VBE_DISPI_INDEX_YRES,
  VBE_DISPI_NOCLEARMEM,
} from "./vbe.ts";
import { VgaCore } from "./vga_core.ts";

function dispi(vramBytes = 1 << 20): { core: VgaCore; vbe: BochsDispi } {
  const core = new VgaCore(vramBytes);
  core.reset();
  return { core, vbe: new BochsDispi(core) };
}

function setMode(vbe: BochsDispi, x: number, y: number, bpp: number, flags = 0): void {
  vbe.write(VBE_DISPI_INDEX_ENABLE, 0);
  vbe.write(VBE_DISPI_INDEX_XRES, x);
  vbe.write(VBE_DISPI_INDEX_YRES, y);
  vbe.write(VBE_DISPI_INDEX_BPP, bpp);
  vbe.write(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | flags);
}

Deno.test("BochsDispi.write() accepts only the interface versions B0C0-B0C5 as ID", () => {
  const { vbe } = dispi();
  assert.equal(vbe.read(VBE_DISPI_INDEX_ID), VBE_DISPI_ID5);
  vbe.write(VBE_DISPI_INDEX_ID, VBE_DISPI_ID0);
  assert.equal(vbe.read(VBE_DISPI_INDEX_ID), VBE_DISPI_ID0);
  vbe.write(VBE_DISPI_INDEX_ID, 0x1234);
  assert.equal(vbe.read(VBE_DISPI_INDEX_ID), VBE_DISPI_ID0);
});

Deno.test("BochsDispi enabling a mode fixes up depth, width and height to what fits in VRAM", () => {
  const { vbe } = dispi(1 << 20);
  setMode(vbe, 1027, 2000, 7);
  assert.equal(vbe.read(VBE_DISPI_INDEX_BPP), 8, "an unknown depth becomes 8");
  assert.equal(vbe.read(VBE_DISPI_INDEX_XRES), 1024, "width is a multiple of 8");
  assert.equal(vbe.read(VBE_DISPI_INDEX_VIRT_WIDTH), 1024);
  assert.equal(vbe.read(VBE_DISPI_INDEX_YRES), 1024, "1 MiB holds 1024 lines of 1024 bytes");
  assert.equal(vbe.read(VBE_DISPI_INDEX_VIRT_HEIGHT), 1024);
  vbe.write(VBE_DISPI_INDEX_Y_OFFSET, 100);
  assert.equal(vbe.read(VBE_DISPI_INDEX_Y_OFFSET), 0, "a panned frame must stay inside VRAM");
});

Deno.test("BochsDispi clears the framebuffer on enable unless NOCLEARMEM is set", () => {
  const { core, vbe } = dispi();
  core.vram.fill(0x77);
  setMode(vbe, 640, 480, 8, VBE_DISPI_NOCLEARMEM);
  assert.equal(core.vram[1000], 0x77);
  setMode(vbe, 640, 480, 8);
  assert.equal(core.vram[1000], 0);
  assert.equal(core.vram[640 * 480], 0x77, "only the visible frame is cleared");
});

Deno.test("BochsDispi puts the VGA in a chain-4 graphics mode with the bank at 0xa0000", () => {
  const { core, vbe } = dispi();
  setMode(vbe, 640, 480, 32, VBE_DISPI_8BIT_DAC);
  assert.equal(core.gr[6] & 0x0d, 0x05, "graphics, memory map 1");
  assert.equal(core.cr[1], 640 / 8 - 1);
  assert.ok(core.vbeChain4);
  assert.ok(core.dac8Bit);
  vbe.write(VBE_DISPI_INDEX_BANK, 2);
  core.writeWindow(5, 0xab);
  assert.equal(core.vram[0x20005], 0xab);
  assert.equal(core.readWindow(5), 0xab);
  assert.equal(core.readWindow(0x10000), 0xff, "map 1 is 64 KiB");
  vbe.write(VBE_DISPI_INDEX_BANK, 0x55);
  assert.equal(vbe.read(VBE_DISPI_INDEX_BANK), 0x05, "the bank wraps at the VRAM size");
  setMode(vbe, 640, 480, 4);
  assert.equal(core.vbeChain4, false, "4 bpp modes are planar");
});
