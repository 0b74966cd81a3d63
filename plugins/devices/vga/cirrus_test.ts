import assert from "node:assert/strict";
import type { PciBus, PciFunction } from "../../../core/device.ts";
import { IrqLine } from "../../../core/irq.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../../../core/pci.ts";
import { CIRRUS_ID_CLGD5446, CirrusVga } from "./cirrus.ts";

class OneSlotBus implements PciBus {
  fn: PciFunction | null = null;
  plug(fn: PciFunction): number {
    this.fn = fn;
    return 0x10;
  }
  intx(): IrqLine {
    return new IrqLine("intx", () => {});
  }
}

function board() {
  const memory = new AddressSpace();
  memory.addRam("ram", 0, 0xa0000);
  const io = new PortIoSpace();
  const pci = new OneSlotBus();
  const vga = new CirrusVga("vga0", { memory, io, pci });
  io.out(0x3c2, 1, 0x67);
  return { memory, io, pci, vga };
}

function sr(io: PortIoSpace, index: number, value?: number): number {
  io.out(0x3c4, 1, index);
  if (value !== undefined) io.out(0x3c5, 1, value);
  return io.in(0x3c5, 1);
}

function gr(io: PortIoSpace, index: number, value?: number): number {
  io.out(0x3ce, 1, index);
  if (value !== undefined) io.out(0x3cf, 1, value);
  return io.in(0x3cf, 1);
}

function cr(io: PortIoSpace, index: number): number {
  io.out(0x3d4, 1, index);
  return io.in(0x3d5, 1);
}

Deno.test("CirrusVga presents a GD5446 on PCI: 1013:00b8 with a 32 MiB aperture and 4 KiB MMIO", () => {
  const { pci } = board();
  const fn = pci.fn!;
  assert.equal(fn.configRead(0, 4), 0x00b81013);
  assert.equal(fn.configRead(0x08, 4) >>> 8, 0x030000);
  fn.configWrite(0x10, 4, 0xffffffff);
  assert.equal(fn.configRead(0x10, 4), 0xfe000008);
  fn.configWrite(0x14, 4, 0xffffffff);
  assert.equal(fn.configRead(0x14, 4), 0xfffff000);
});

Deno.test("CirrusVga SR06 unlocks the extensions with 0x12 and locks with anything else", () => {
  const { io } = board();
  assert.equal(sr(io, 0x06), 0x0f);
  assert.equal(sr(io, 0x06, 0x12), 0x12);
  assert.equal(sr(io, 0x06, 0x00), 0x0f);
  assert.equal(sr(io, 0x06, 0x12 | 0xe8), 0x12, "bits outside 0x17 are ignored");
});

Deno.test("CirrusVga reports the chip ID in CR27 and QEMU's memory configuration", () => {
  const { io } = board();
  assert.equal(cr(io, 0x27), CIRRUS_ID_CLGD5446);
  assert.equal(sr(io, 0x0f), 0x98);
  assert.equal(sr(io, 0x1f), 0x2d);
  assert.equal(sr(io, 0x17), 0x20);
  assert.equal(sr(io, 0x17, 0xff), 0xe7, "SR17 bits 3-5 (bus type) are read-only");
  assert.equal(sr(io, 0x07, 0x01), 0x01);
});

Deno.test("CirrusVga shows the hidden DAC register on the fifth read of 0x3c6", () => {
  const { io } = board();
  io.in(0x3c8, 1); // resets the read counter
  for (let i = 0; i < 4; i++) assert.equal(io.in(0x3c6, 1), 0xff, "PEL mask");
  io.out(0x3c6, 1, 0xe1); // after four reads: the hidden DAC
  for (let i = 0; i < 4; i++) io.in(0x3c6, 1);
  assert.equal(io.in(0x3c6, 1), 0xe1);
  io.out(0x3c6, 1, 0x7f); // an ordinary write: PEL mask
  assert.equal(io.in(0x3c6, 1), 0x7f);
});

Deno.test("CirrusVga banks GR09/GR0A/GR0B window VRAM at 0xa0000 in extended modes", () => {
  const { memory, io, vga } = board();
  sr(io, 0x06, 0x12);
  sr(io, 0x07, 0x01); // SVGA, 8 bpp
  gr(io, 0x0b, 0x00); // single bank, 4 KiB granularity
  gr(io, 0x09, 0x10); // bank at 64 KiB
  memory.write8(0xa0000, 0x5a);
  memory.write8(0xa8001, 0x5b); // the second half continues the single bank
  assert.equal(vga.core.vram[0x10000], 0x5a);
  assert.equal(vga.core.vram[0x18001], 0x5b);
  gr(io, 0x0b, 0x21); // dual banks, 16 KiB granularity
  gr(io, 0x09, 0x04); // 64 KiB
  gr(io, 0x0a, 0x08); // 128 KiB
  memory.write8(0xa8002, 0x5c);
  assert.equal(vga.core.vram[0x20002], 0x5c);
  assert.equal(memory.read8(0xa0000), 0x5a);
  sr(io, 0x07, 0x00); // back to VGA: the standard window rules
  assert.equal(memory.read8(0xa0000), 0, "VGA mode reads plane 0, not the bank");
});

Deno.test("CirrusVga maps VRAM linearly at BAR 0 and the VGA ports at BAR 1", () => {
  const { memory, pci, vga } = board();
  const fn = pci.fn!;
  fn.configWrite(0x10, 4, 0xfc000000);
  fn.configWrite(0x14, 4, 0xfebf0000);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  memory.write32(0xfc000400, 0x01020304);
  assert.equal(vga.core.vram[0x400], 0x04);
  assert.equal(memory.read8(0xfd000000), 0xff, "the BitBLT source window reads all ones");
  memory.write8(0xfebf0004, 0x06); // 0x3c4
  memory.write8(0xfebf0005, 0x12); // 0x3c5
  assert.equal(vga.core.sr[0x06], 0x12);
  assert.equal(memory.read8(0xfebf0100 + 0x40), 0, "BitBLT status: idle");
});

Deno.test("CirrusVga draws an SVGA mode: 16 bpp 5-6-5 pixels from CR13/CR1B's line offset", () => {
  const vga = new CirrusVga("vga0", { memory: null, io: null, pci: null });
  const core = vga.core;
  core.arIndex = 0x20;
  core.gr[0x06] = 0x05;
  core.gr[0x05] = 0x40;
  core.cr[0x01] = 0x4f;
  core.cr[0x12] = 0xdf;
  core.cr[0x07] = 0x12;
  core.cr[0x13] = 0x40;
  core.cr[0x1b] = 0x10; // line offset 0x140 * 8 = 2560 bytes
  core.cr[0x17] = 0xc3; // no CGA line interleave
  core.cr[0x18] = 0xff; // line compare past the screen (with CR07 bit 4, CR09 bit 6)
  core.cr[0x09] = 0x40;
  core.vram.set([0x00, 0xf8], 2560); // (0, 1): red in 5-6-5
  core.sr[0x07] = 0x17; // SVGA, 16 bpp
  core.hiddenDac = 0xe1;
  const surface = vga.console.update();
  assert.equal(vga.console.mode, "svga");
  assert.deepEqual([surface.width, surface.height], [640, 480]);
  // As QEMU shows it: the framebuffer shared with the display, components widened by
  // repeating their top bits; with the hardware cursor on, drawn with the low bits zero.
  assert.equal(surface.pixels[640], 0xff0000);
  assert.equal(surface.pixels[0], 0);
  core.sr[0x12] = 0x01;
  assert.equal(vga.console.update().pixels[640], 0xf80000);
});

Deno.test("CirrusVga feeds a system-to-screen blit from BAR 0 (VRAM part and the 16 MiB window)", () => {
  const { memory, io, pci, vga } = board();
  const fn = pci.fn!;
  fn.configWrite(0x10, 4, 0xfc000000);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  sr(io, 0x07, 0x01);
  // 8 bytes a line, 2 lines, destination 0x1000, pitch 64: plain pixels from the CPU.
  const blt: [number, number][] = [
    [0x20, 7],
    [0x21, 0],
    [0x22, 1],
    [0x23, 0],
    [0x24, 64],
    [0x25, 0],
    [0x28, 0x00],
    [0x29, 0x10],
    [0x2a, 0],
    [0x30, 0x04],
    [0x32, 0x0d],
    [0x33, 0],
  ];
  for (const [i, v] of blt) gr(io, i, v);
  gr(io, 0x31, 0x02);
  assert.equal(vga.core.blitter.waiting, true);
  memory.write32(0xfc000000, 0x04030201); // the VRAM part feeds the blit while it waits
  memory.write32(0xfd000000, 0x08070605); // and so does the BitBLT window
  memory.write32(0xfd000010, 0x0c0b0a09);
  memory.write32(0xfd000020, 0x100f0e0d);
  assert.equal(vga.core.blitter.waiting, false);
  assert.deepEqual([...vga.core.vram.subarray(0x1000, 0x1008)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...vga.core.vram.subarray(0x1040, 0x1048)], [9, 10, 11, 12, 13, 14, 15, 16]);
  assert.equal(vga.core.vram[0], 0, "fed bytes did not land in VRAM");
  memory.write8(0xfc000000, 0x99);
  assert.equal(vga.core.vram[0], 0x99, "the aperture is VRAM again");
});

Deno.test("CirrusVga's aperture takes write mode 5 and the BitBLT registers at the end of VRAM", () => {
  const { memory, io, pci, vga } = board();
  const fn = pci.fn!;
  fn.configWrite(0x10, 4, 0xfc000000);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  sr(io, 0x07, 0x01);
  gr(io, 0x00, 0x11);
  gr(io, 0x01, 0xee);
  gr(io, 0x0b, 0x06); // extended writes, 8x address shift
  gr(io, 0x05, 0x05); // write mode 5
  memory.write8(0xfc000010, 0xa5); // pixels 0x80..0x87: 1 -> GR01, 0 -> GR00
  assert.deepEqual(
    [...vga.core.vram.subarray(0x80, 0x88)],
    [0xee, 0x11, 0xee, 0x11, 0x11, 0xee, 0x11, 0xee],
  );
  gr(io, 0x05, 0x00);
  gr(io, 0x0b, 0x00);
  sr(io, 0x17, 0x44); // MMIO registers in the last 256 bytes of the aperture's VRAM
  memory.write8(0xfc000000 + (4 << 20) - 256 + 0x1a, 0x59); // BLTROP -> GR32
  assert.equal(gr(io, 0x32), 0x59);
  assert.equal(memory.read8(0xfc000000 + (4 << 20) - 256 + 0x1a), 0x59);
});

Deno.test("CirrusVga: a BitBLT flags the VRAM pages it wrote, and only those lines are redrawn", () => {
  const { io, vga } = board();
  const core = vga.core;
  core.arIndex = 0x20;
  core.gr[0x06] = 0x05;
  core.gr[0x05] = 0x40;
  core.cr.set([0x4f], 0x01);
  core.cr[0x12] = 0xdf;
  core.cr[0x07] = 0x12;
  core.cr[0x09] = 0x40;
  core.cr[0x13] = 0x50; // 640 bytes a line
  core.cr[0x17] = 0xc3;
  core.cr[0x18] = 0xff;
  core.palette.set([0x3f, 0, 0], 7 * 3);
  sr(io, 0x07, 0x11); // SVGA, 8 bpp
  let surface = vga.console.update();
  surface.takeDirty();
  // A solid fill of colour 7: 10x4 pixels at (20, 100).
  gr(io, 0x01, 7);
  const fill: [number, number][] = [
    [0x20, 9],
    [0x21, 0],
    [0x22, 3],
    [0x23, 0],
    [0x24, 0x80],
    [0x25, 0x02],
    [0x28, (100 * 640 + 20) & 0xff],
    [0x29, ((100 * 640 + 20) >> 8) & 0xff],
    [0x2a, (100 * 640 + 20) >> 16],
    [0x30, 0xc0],
    [0x32, 0x0d],
    [0x33, 0x04],
  ];
  for (const [i, v] of fill) gr(io, i, v);
  gr(io, 0x31, 0x02);
  assert.equal(core.dirtyPages[(100 * 640) >>> 12], 1);
  surface = vga.console.update();
  assert.equal(surface.pixels[100 * 640 + 20], 0xff0000);
  assert.deepEqual(surface.takeDirty(), [{ x: 20, y: 100, width: 10, height: 4 }]);
  assert.deepEqual(vga.console.update().takeDirty(), [], "nothing written, nothing redrawn");
});
