import assert from "node:assert/strict";
import type { PciBus, PciFunction } from "../../../core/device.ts";
import { IrqLine } from "../../../core/irq.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_ROM_ADDRESS } from "../../../core/pci.ts";
import { StdVga } from "./std_vga.ts";
import {
  VBE_DISPI_ENABLED,
  VBE_DISPI_GETCAPS,
  VBE_DISPI_ID5,
  VBE_DISPI_INDEX_BANK,
  VBE_DISPI_INDEX_BPP,
  VBE_DISPI_INDEX_ENABLE,
  VBE_DISPI_INDEX_ID,
  VBE_DISPI_INDEX_VIDEO_MEMORY_64K,
  VBE_DISPI_INDEX_VIRT_HEIGHT,
  VBE_DISPI_INDEX_XRES,
  VBE_DISPI_INDEX_YRES,
  VBE_DISPI_LFB_ENABLED,
  VBE_DISPI_MAX_XRES,
} from "./vbe.ts";

/** A PCI bus that remembers the one function plugged into it. */
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

function board(rom: Uint8Array | null = null) {
  const memory = new AddressSpace();
  memory.addRam("ram", 0, 0xa0000);
  const io = new PortIoSpace();
  const pci = new OneSlotBus();
  const vga = new StdVga("vga0", { memory, io, pci }, { rom });
  return { memory, io, pci, vga };
}

function vbe(io: PortIoSpace, index: number, value?: number): number {
  io.out(0x1ce, 2, index);
  if (value !== undefined) io.out(0x1cf, 2, value);
  return io.in(0x1cf, 2);
}

Deno.test("StdVga presents QEMU's VGA on PCI: 1234:1111, class 0300, prefetchable VRAM BAR 0", () => {
  const { pci } = board();
  const fn = pci.fn!;
  assert.equal(fn.configRead(0, 4), 0x11111234);
  assert.equal(fn.configRead(0x08, 4) >>> 8, 0x030000);
  assert.equal(fn.configRead(0x2c, 4), 0x11001af4);
  fn.configWrite(0x10, 4, 0xffffffff);
  assert.equal(fn.configRead(0x10, 4), 0xff000008, "16 MiB, prefetchable");
  fn.configWrite(0x18, 4, 0xffffffff);
  assert.equal(fn.configRead(0x18, 4), 0xfffff000, "BAR 2 is 4 KiB of MMIO");
});

Deno.test("StdVga maps VRAM at BAR 0 and the VBE and VGA registers at BAR 2", () => {
  const { memory, pci, vga } = board();
  const fn = pci.fn!;
  fn.configWrite(0x10, 4, 0xfd000000);
  fn.configWrite(0x18, 4, 0xfebf0000);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  memory.write32(0xfd000100, 0x11223344);
  assert.equal(vga.core.vram[0x100], 0x44);
  assert.equal(memory.read16(0xfebf0500 + 2 * VBE_DISPI_INDEX_ID), VBE_DISPI_ID5);
  assert.equal(memory.read16(0xfebf0500 + 2 * VBE_DISPI_INDEX_VIDEO_MEMORY_64K), 256);
  memory.write8(0xfebf0400 + 2, 0x67); // misc output through the MMIO view of 0x3c2
  assert.equal(vga.core.misc, 0x67);
  assert.equal(memory.read32(0xfebf0600), 8, "QEMU extended registers: size");
  assert.equal(memory.read32(0xfebf0604), 0x1e1e1e1e, "little endian");
  fn.configWrite(PCI_COMMAND, 2, 0);
  assert.equal(memory.read32(0xfd000100), 0xffffffff, "memory space off: BAR unmapped");
});

Deno.test("StdVga maps its option ROM read-only where firmware programs the ROM BAR", () => {
  const image = new Uint8Array(0x10000);
  image.set([0x55, 0xaa, 0x80]);
  const { memory, pci } = board(image);
  const fn = pci.fn!;
  fn.configWrite(PCI_ROM_ADDRESS, 4, 0xfffff800);
  assert.equal(fn.configRead(PCI_ROM_ADDRESS, 4), 0xffff0000);
  fn.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0001);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.equal(memory.read16(0xfebe0000), 0xaa55);
  memory.write8(0xfebe0002, 0);
  assert.equal(memory.read8(0xfebe0002), 0x80, "ROM ignores writes");
  fn.configWrite(PCI_ROM_ADDRESS, 4, 0xfebe0000);
  assert.equal(memory.read16(0xfebe0000), 0xffff, "enable bit clear: not decoded");
});

Deno.test("StdVga Bochs VBE: GETCAPS, a mode switch and the 64 KiB bank at 0xa0000", () => {
  const { memory, io, vga } = board();
  assert.equal(vbe(io, VBE_DISPI_INDEX_ID), VBE_DISPI_ID5);
  vbe(io, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_GETCAPS);
  assert.equal(vbe(io, VBE_DISPI_INDEX_XRES), VBE_DISPI_MAX_XRES);
  vbe(io, VBE_DISPI_INDEX_ENABLE, 0);
  vbe(io, VBE_DISPI_INDEX_XRES, 1024);
  vbe(io, VBE_DISPI_INDEX_YRES, 768);
  vbe(io, VBE_DISPI_INDEX_BPP, 32);
  vbe(io, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
  assert.equal(vbe(io, VBE_DISPI_INDEX_XRES), 1024);
  assert.equal(vbe(io, VBE_DISPI_INDEX_VIRT_HEIGHT), (16 << 20) / 4096);
  assert.equal(vga.vbe.lineOffset, 4096);
  vbe(io, VBE_DISPI_INDEX_BANK, 3);
  memory.write32(0xa0010, 0xcafef00d);
  assert.equal(memory.read32(0xa0010), 0xcafef00d);
  assert.equal(vga.core.vram[3 * 0x10000 + 0x10], 0x0d, "bank 3 is VRAM offset 192 KiB");
  vbe(io, VBE_DISPI_INDEX_ENABLE, 0);
  assert.equal(vga.core.bankOffset, 0);
});

Deno.test("StdVga answers VGA ports byte- and word-wide at the legacy addresses", () => {
  const { io, vga } = board();
  io.out(0x3c2, 1, 0x67);
  io.out(0x3c4, 2, 0x0f02); // SR02 = 0x0f in one word write
  assert.equal(vga.core.sr[2], 0x0f);
  io.out(0x3d4, 2, 0x550e);
  io.out(0x3d4, 1, 0x0e);
  assert.equal(io.in(0x3d5, 1), 0x55);
  assert.equal(io.in(0x3b5, 1), 0xff, "mono CRTC port is dead in colour mode");
  assert.equal(io.in(0x3c3, 1), 0x01, "the VGA subsystem enable bit");
  assert.equal(io.in(0x3b0, 1), 0xff, "QEMU's std VGA leaves 0x3b0 unassigned");
});

Deno.test("StdVga redraws only what the CPU wrote through the linear framebuffer (write-tracked pages)", () => {
  const { memory, io, pci, vga } = board();
  const fn = pci.fn!;
  fn.configWrite(0x10, 4, 0xfd000000);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  const dispi = (index: number, value: number) => {
    io.out(0x1ce, 2, index);
    io.out(0x1cf, 2, value);
  };
  dispi(VBE_DISPI_INDEX_XRES, 1024);
  dispi(VBE_DISPI_INDEX_YRES, 768);
  dispi(VBE_DISPI_INDEX_BPP, 32);
  dispi(VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
  let surface = vga.console.update();
  surface.takeDirty();
  assert.equal(vga.core.dirtyPages.some((d) => d !== 0), false, "the frame took every page");
  // Clean framebuffer pages are read-only to the CPU: its first write to one is seen.
  memory.write32(0xfd000000 + (100 * 1024 + 7) * 4, 0x00abcdef);
  assert.equal(vga.core.dirtyPages[100], 1);
  surface = vga.console.update();
  assert.equal(surface.pixels[100 * 1024 + 7], 0xabcdef);
  assert.deepEqual(surface.takeDirty(), [{ x: 7, y: 100, width: 1, height: 1 }]);
  // A still screen: nothing flagged, nothing drawn, nothing dirty.
  surface = vga.console.update();
  assert.deepEqual(surface.takeDirty(), []);
  // The page is protected again: the next write is seen too.
  memory.write8(0xfd000000 + (100 * 1024 + 9) * 4, 0x42);
  assert.equal(surface.pixels[100 * 1024 + 9], 0);
  assert.equal(vga.console.update().pixels[100 * 1024 + 9], 0x42);
});
