// Smoke test: SeaBIOS POST on the bare interpreter with a fake i440FX config space

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";

function biosPresent(): boolean {
  try {
    return Deno.statSync(BIOS).isFile;
  } catch {
    return false;
  }
}

/** PCI configuration mechanism #1 with a host bridge and a PIIX3 ISA bridge, nothing else. */
function fakePci(io: PortIoSpace): void {
  let address = 0;
  const space = new Map<number, Uint8Array>();
  const device = (bdf: number, vendor: number, id: number, cls: number) => {
    const b = new Uint8Array(256);
    b.set([vendor & 0xff, vendor >> 8, id & 0xff, id >> 8], 0);
    b[0x0a] = cls & 0xff;
    b[0x0b] = cls >> 8;
    space.set(bdf, b);
  };
  device(0, 0x8086, 0x1237, 0x0600);
  device(1 << 3, 0x8086, 0x7000, 0x0601);
  const target = (port: number) => {
    const b = (address & 0x80000000) !== 0 ? space.get((address >> 8) & 0xffff) : undefined;
    return { b, o: (address & 0xfc) + (port - 0xcfc) };
  };
  io.register("pci-address", 0xcf8, 4, {
    read: () => address >>> 0,
    write: (_p, _s, v) => void (address = v),
  });
  io.register("pci-data", 0xcfc, 4, {
    read: (port, size) => {
      const { b, o } = target(port);
      if (!b) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
      let v = 0;
      for (let i = 0; i < size; i++) v |= b[o + i] << (8 * i);
      return v >>> 0;
    },
    write: (port, size, v) => {
      const { b, o } = target(port);
      // BARs read back as 0 so SeaBIOS sizes nothing.
      if (b && o >= 0x40) { for (let i = 0; i < size; i++) b[o + i] = v >> (8 * i); }
    },
  });
}

Deno.test({
  name: biosPresent()
    ? "X86Cpu runs SeaBIOS POST up to the boot menu prompt"
    : "X86Cpu runs SeaBIOS POST up to the boot menu prompt (ignored: no " + BIOS + ")",
  ignore: !biosPresent(),
  fn() {
    const bios = Deno.readFileSync(BIOS);
    const memory = new AddressSpace();
    memory.addRam("ram", 0, 64 << 20);
    memory.addRom("bios", 2 ** 32 - bios.length, bios);
    // The ISA alias of the BIOS top 128 KiB, writable as after PAM unlocking.
    memory.addRam("isa-bios", 0xe0000, 0x20000, { priority: 1 })
      .set(bios.subarray(bios.length - 0x20000));
    const io = new PortIoSpace();
    let console = "";
    io.register("debugcon", 0x402, 1, {
      read: () => 0xe9,
      write: (_p, _s, v) => void (console += String.fromCharCode(v)),
    });
    fakePci(io);
    // An RTC CMOS with only the memory size (extended memory in 64 KiB units above 16 MiB).
    const cmos = new Uint8Array(128);
    cmos[0x35] = ((64 - 16) * 16) >> 8;
    let index = 0;
    io.register("cmos", 0x70, 2, {
      read: (port) => (port === 0x71 ? cmos[index] : 0xff),
      write: (port, _s, v) => {
        if (port === 0x70) index = v & 0x7f;
        else cmos[index] = v;
      },
    });
    const cpu = new X86Cpu({ memory, io }, findModel("qemu32")!);
    let exit: number = RunExit.Budget;
    for (let i = 0; i < 50 && exit === RunExit.Budget; i++) exit = cpu.run(1_000_000);
    assert.match(console, /SeaBIOS \(version/);
    assert.match(console, /Press ESC for boot menu/);
    // With no timer it waits in HLT with interrupts enabled.
    assert.equal(exit, RunExit.Halt);
  },
});
