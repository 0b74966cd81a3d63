import assert from "node:assert/strict";
import { createPcMachine } from "../../machines/pc.ts";
import { testConfig } from "../../machines/test_util.ts";
import type { I440fx } from "../pci/i440fx.ts";
import { PIIX3_IDE_DEVFN, type Piix3Ide } from "./piix3_ide.ts";
import { PatternDisk } from "./test_util.ts";

function pcWithDisk() {
  const node = new PatternDisk(4 << 20);
  const machine = createPcMachine(testConfig({
    firmware: new Uint8Array(65536),
    drives: [
      { id: "drive0", node, interface: "ide", media: "disk", readOnly: false },
      { id: "cd", node: null, interface: "ide", index: 2, media: "cdrom", readOnly: true },
    ],
  }));
  const host = machine.device("i440fx") as unknown as I440fx;
  const cfg = (offset: number, size: 1 | 2 | 4 = 4) => {
    host.setAddress(0x80000000 | (PIIX3_IDE_DEVFN << 8) | (offset & 0xfc));
    return host.readData(offset & 3, size);
  };
  const cfgWrite = (offset: number, size: 1 | 2 | 4, value: number) => {
    host.setAddress(0x80000000 | (PIIX3_IDE_DEVFN << 8) | (offset & 0xfc));
    host.writeData(offset & 3, size, value);
  };
  return { machine, node, cfg, cfgWrite, ide: machine.device("ide") as unknown as Piix3Ide };
}

Deno.test("createPiix3Ide() puts the controller at 00:01.1 with QEMU's identity", async () => {
  const { machine, cfg } = pcWithDisk();
  await machine.realize();
  assert.equal(cfg(0x00), 0x70108086);
  assert.equal(cfg(0x08) >>> 8, 0x010180);
  assert.equal(cfg(0x06, 2), 0x0280);
  assert.equal(cfg(0x20), 0x00000001); // BAR4: I/O, unprogrammed
  assert.equal(cfg(0x3d, 1), 0);
});

Deno.test("Piix3Ide BAR4 sizes to 16 bytes and maps the bus master block when I/O is enabled", async () => {
  const { machine, cfg, cfgWrite } = pcWithDisk();
  await machine.realize();
  cfgWrite(0x20, 4, 0xffffffff);
  assert.equal(cfg(0x20), 0xfffffff1);
  cfgWrite(0x20, 4, 0xc000);
  cfgWrite(0x04, 2, 0x0005);
  machine.io.out(0xc004, 4, 0x2000);
  assert.equal(machine.io.in(0xc004, 4), 0x2000);
  cfgWrite(0x40, 2, 0x8000); // IDETIM: decode enable, as SeaBIOS writes it
  assert.equal(cfg(0x40, 2), 0x8000);
});

Deno.test("createPiix3Ide() attaches -hda as primary master and index 2 as secondary master", async () => {
  const { machine, ide } = pcWithDisk();
  await machine.realize();
  assert.equal(ide.drive(0)?.kind, "disk");
  assert.equal(ide.drive(2)?.kind, "cdrom");
  assert.equal(machine.io.in(0x1f7, 1), 0x50);
  assert.equal(machine.io.in(0x174, 1), 0x14);
  assert.equal(machine.io.in(0x175, 1), 0xeb);
});

Deno.test("Piix3Ide completes through the event loop's tracked I/O and raises ISA IRQ 14", async () => {
  const { machine } = pcWithDisk();
  await machine.realize();
  const io = machine.io;
  io.out(0x1f6, 1, 0xe0);
  io.out(0x1f2, 1, 1);
  io.out(0x1f3, 1, 0);
  io.out(0x1f4, 1, 0);
  io.out(0x1f5, 1, 0);
  io.out(0x1f7, 1, 0x20);
  assert.equal(machine.loop.pendingIo, 1);
  await (machine.device("ide") as unknown as Piix3Ide).settled();
  assert.equal(machine.loop.pendingIo, 0);
  assert.equal(io.in(0x3f6, 1), 0x58);
});
