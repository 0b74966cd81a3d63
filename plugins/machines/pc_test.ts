import assert from "node:assert/strict";
import { MemoryChardev } from "../../core/chardev.ts";
import { createPcMachine, e820Table, pcRamSplit } from "./pc.ts";
import { IdleCpu, testConfig } from "./test_util.ts";

/** A fake 256 KiB BIOS whose last bytes are recognisable. */
function fakeBios(): Uint8Array {
  const bios = new Uint8Array(256 * 1024);
  bios[bios.length - 16] = 0xea; // the reset vector's far jump
  bios[bios.length - 0x10000] = 0x5a; // first byte of 0xf0000
  return bios;
}

function pciRead(machine: ReturnType<typeof createPcMachine>, devfn: number, reg: number): number {
  machine.io.out(0xcf8, 4, (0x80000000 | (devfn << 8) | reg) >>> 0);
  return machine.io.in(0xcfc, 4);
}

Deno.test("createPcMachine() maps the BIOS at the top of 4 GiB and in the ISA window", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios() }));
  assert.equal(m.memory.read8(0xfffffff0), 0xea);
  assert.equal(m.memory.read8(0xffff0), 0xea);
  assert.equal(m.memory.read8(0xf0000), 0x5a);
});

Deno.test("createPcMachine() answers PCI IDs of the i440FX, PIIX3, PIIX4 PM and the VGA", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios() }));
  assert.equal(pciRead(m, 0x00, 0), 0x12378086);
  assert.equal(pciRead(m, 0x00, 0x2c), 0x11001af4);
  assert.equal(pciRead(m, 0x08, 0), 0x70008086);
  assert.equal(pciRead(m, 0x0b, 0), 0x71138086);
  // QEMU's default display adapter, the std VGA, sits in slot 2; -vga none leaves it empty.
  assert.equal(pciRead(m, 0x10, 0), 0x11111234);
  assert.equal(pciRead(m, 0x18, 0), 0xffffffff);
  const bare = createPcMachine(testConfig({ firmware: fakeBios(), vga: "none" }));
  assert.equal(pciRead(bare, 0x10, 0), 0xffffffff);
});

Deno.test("createPcMachine() shadows the BIOS in RAM through the PAM registers", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios() }));
  // PAM0 = 0x30: 0xf0000 becomes RAM (empty), writable.
  m.io.out(0xcf8, 4, 0x80000058);
  m.io.out(0xcfd, 1, 0x30);
  assert.equal(m.memory.read8(0xf0000), 0);
  m.memory.write8(0xf0000, 0x77);
  // PAM0 = 0x10: read-only RAM; writes are dropped.
  m.io.out(0xcfd, 1, 0x10);
  m.memory.write8(0xf0000, 0x11);
  assert.equal(m.memory.read8(0xf0000), 0x77);
  // PAM0 = 0x00: the ROM shows again.
  m.io.out(0xcfd, 1, 0x00);
  assert.equal(m.memory.read8(0xf0000), 0x5a);
});

Deno.test("createPcMachine() writes the memory size and boot order into CMOS", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios(), bootOrder: "dc" }));
  const cmos = (i: number) => {
    m.io.out(0x70, 1, i);
    return m.io.in(0x71, 1);
  };
  assert.equal(cmos(0x15) | (cmos(0x16) << 8), 640);
  assert.equal(cmos(0x17) | (cmos(0x18) << 8), 31 * 1024);
  assert.equal(cmos(0x34) | (cmos(0x35) << 8), (16 << 20) / 65536);
  assert.equal(cmos(0x3d), 0x23);
  assert.equal(cmos(0x5f), 0);
});

Deno.test("createPcMachine() publishes fw_cfg with the e820 map and no-graphics flag", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios() }));
  m.io.out(0x510, 2, 0x04);
  assert.equal(m.io.in(0x511, 1), 1);
  m.io.out(0x510, 2, 0x00);
  const sig = [0, 1, 2, 3].map(() => String.fromCharCode(m.io.in(0x511, 1))).join("");
  assert.equal(sig, "QEMU");
});

Deno.test("createPcMachine() wires serial 0 to COM1 and the PIT to the CPU's interrupt source", () => {
  const serial = new MemoryChardev("serial0");
  const m = createPcMachine(testConfig({ firmware: fakeBios(), serial: [serial] }));
  m.io.out(0x3f8, 1, 0x41);
  assert.equal(serial.text(), "A");
  const cpu = m.cpus[0] as IdleCpu;
  assert.ok(cpu.source);
  // The local APIC as the firmware sets it (it resets with LINT0 masked, as QEMU's):
  // software enabled, LINT0 ExtINT. Then program the PIC, unmask IRQ 0, start the PIT:
  // after 55 ms an interrupt waits.
  m.memory.write32(0xfee000f0, 0x1ff);
  m.memory.write32(0xfee00350, 0x8700);
  for (const [port, v] of [[0x20, 0x11], [0x21, 0x08], [0x21, 0x04], [0x21, 0x01], [0x21, 0xfe]]) {
    m.io.out(port, 1, v);
  }
  m.io.out(0x43, 1, 0x34);
  m.io.out(0x40, 1, 0);
  m.io.out(0x40, 1, 0);
  m.loop.advanceBy(60e6);
  assert.equal(cpu.source!.hasPending(), true);
  assert.equal(cpu.source!.acknowledge(), 0x08);
});

Deno.test("createPcMachine() resets through port 0xcf9", async () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios() }));
  const cpu = m.cpus[0] as IdleCpu;
  m.io.out(0xcf9, 1, 0x06);
  const result = await m.run({ maxInstructions: 10 });
  assert.equal(result.reason, "idle");
  assert.equal(cpu.resets, 2); // realize's reset, then the requested one
});

Deno.test("pcRamSplit() and e820Table() follow QEMU's layout", () => {
  assert.deepEqual(pcRamSplit(128 << 20), { below4g: 128 << 20, above4g: 0 });
  assert.deepEqual(pcRamSplit(4 * 2 ** 30), { below4g: 0xc0000000, above4g: 2 ** 30 });
  const t = e820Table([{ address: 0, length: 0x8000000, type: 1 }]);
  assert.equal(t.length, 20);
  assert.equal(new DataView(t.buffer).getUint32(8, true), 0x8000000);
});

Deno.test("createPcMachine() gives each CPU its own local APIC as interrupt source", () => {
  const m = createPcMachine(testConfig({ firmware: fakeBios(), smp: 3 }));
  assert.equal(m.cpus.length, 3);
  const sources = m.cpus.map((c) => (c as IdleCpu).source);
  assert.equal(new Set(sources).size, 3);
  sources.forEach((s, i) => assert.equal(s, m.findService(`cpu-irq${i}`)));
});

Deno.test("createPcMachine() refuses too many CPUs and reports a missing BIOS clearly", () => {
  assert.throws(
    () => createPcMachine(testConfig({ smp: 256 })),
    /Invalid SMP CPUs 256. The max CPUs supported by machine 'pc-i440fx-7.2' is 255/,
  );
  assert.throws(
    () => createPcMachine(testConfig({ biosPath: "no-such-bios.bin", dataDirs: ["/nonexistent"] })),
    /Could not find firmware 'no-such-bios.bin' \(searched: no-such-bios.bin, \/nonexistent\/no-such-bios.bin/,
  );
});
