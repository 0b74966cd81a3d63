import assert from "node:assert/strict";
import { EventLoop } from "../../core/event_loop.ts";
import type { NetClient } from "../../core/net.ts";
import { createPcMachine } from "./pc.ts";
import { testConfig } from "./test_util.ts";
import { NETDEV_PLUGINS } from "../netdevs/mod.ts";

function cmos(m: ReturnType<typeof createPcMachine>, i: number): number {
  m.io.out(0x70, 1, i);
  return m.io.in(0x71, 1);
}

Deno.test("createPcMachine() boots once= first and restores order= at the next reset", async () => {
  const m = createPcMachine(
    testConfig({ firmware: new Uint8Array(256 * 1024), bootOrder: "c", bootOnce: "d" }),
  );
  await m.realize();
  assert.equal(cmos(m, 0x3d) & 0x0f, 3, "CD-ROM first");
  m.reset();
  assert.equal(cmos(m, 0x3d) & 0x0f, 2, "hard disk again");
});

Deno.test("createPcMachine() takes `b` as a floppy boot letter", () => {
  const m = createPcMachine(testConfig({ firmware: new Uint8Array(256 * 1024), bootOrder: "bc" }));
  assert.equal(cmos(m, 0x3d), 0x21);
});

Deno.test("createPcMachine() creates the NICs of config.nics as virtio-net-pci", () => {
  const user = NETDEV_PLUGINS.find((p) => p.name === "user")!;
  const n0: NetClient = user.create({ id: "n0" }, {
    loop: new EventLoop(),
    hub: () => {
      throw new Error("no hubs in this test");
    },
  });
  const m = createPcMachine(testConfig({
    firmware: new Uint8Array(256 * 1024),
    nics: [{ model: "virtio", netdev: "n0" }],
    netdevs: [n0],
  }));
  assert.equal(m.devices.filter((d) => d.model === "virtio-net-pci").length, 1);
  assert.notEqual(n0.peer, null);
});

Deno.test("createPcMachine() routes a virtio INTx through PIRQ to the PIC and the IOAPIC", () => {
  const seen: string[] = [];
  const m = createPcMachine(testConfig({ firmware: new Uint8Array(256 * 1024) }));
  const dev = m.createDevice("virtio-balloon-pci");
  const pic = m.findService<{ setIrq(pin: number, level: boolean): void }>("pic")!;
  const ioapic = m.findService<{ setIrq(pin: number, level: boolean): void }>("ioapic")!;
  const picSet = pic.setIrq.bind(pic);
  const ioapicSet = ioapic.setIrq.bind(ioapic);
  pic.setIrq = (pin, level) => {
    seen.push(`pic${pin}=${level}`);
    picSet(pin, level);
  };
  ioapic.setIrq = (pin, level) => {
    seen.push(`ioapic${pin}=${level}`);
    ioapicSet(pin, level);
  };
  // Route every PIRQ to IRQ 11, whichever the slot's INTA swizzles to.
  const cfg = (devfn: number, reg: number, size: 1 | 4, value: number) => {
    m.io.out(0xcf8, 4, (0x80000000 | (devfn << 8) | (reg & ~3)) >>> 0);
    m.io.out(0xcfc + (reg & 3), size, value);
  };
  cfg(0x08, 0x60, 4, 0x0b0b0b0b);
  const balloon = dev as unknown as {
    devfn: number;
    device: { setTargetPages(n: number): void };
  };
  // A config change interrupt needs DRIVER_OK: set it through the legacy BAR.
  cfg(balloon.devfn, 0x10, 4, 0xc001);
  cfg(balloon.devfn, 0x04, 1, 0x05);
  m.io.out(0xc000 + 18, 1, 0x0f);
  balloon.device.setTargetPages(1);
  assert.ok(seen.includes("pic11=true"), seen.join(" "));
  assert.ok(seen.includes("ioapic11=true"), seen.join(" "));
  m.io.in(0xc000 + 19, 1); // reading the ISR lowers the line
  assert.ok(seen.includes("ioapic11=false"), seen.join(" "));
});

Deno.test("createPcMachine() backs QEMU's GPE0 and PCI hotplug ports, so no slot looks ejected", () => {
  const m = createPcMachine(testConfig({ firmware: new Uint8Array(256 * 1024) }));
  m.reset();
  assert.equal(m.io.in(0xafe0, 2), 0, "GPE0 status");
  assert.equal(m.io.in(0xae00, 4), 0, "PCIU");
  assert.equal(m.io.in(0xae04, 4), 0, "PCID");
  m.io.out(0xafe2, 1, 0x02); // enable GPE1
  assert.equal(m.io.in(0xafe2, 1), 0x02);
});
