// Hostile guests on `-M pc`: address decoding programmed on top of claimed ports and memory
import assert from "node:assert/strict";
import { fuzzMachine, pciRead, pciWrite } from "./device_machine.ts";

const IDE_DEVFN = 0x09, PM_DEVFN = 0x0b, VGA_DEVFN = 0x10, BLK_DEVFN = 0x18;

Deno.test("PIIX3 IDE bus-master BAR4 programmed over the IDE command ports decodes and moves away cleanly", async () => {
  const m = await fuzzMachine();
  const statusBefore = m.io.in(0x1f7, 1);
  pciWrite(m, IDE_DEVFN, 0x20, 4, 0x1f1);
  pciWrite(m, IDE_DEVFN, 0x04, 2, 0x0005); // I/O and bus master on
  // The BAR covers 0x1f0-0x1ff: these are bus master registers now, as in QEMU.
  m.io.out(0x1f4, 4, 0x12345678);
  assert.equal(m.io.in(0x1f4, 4), 0x12345678 & ~3, "the PRD pointer register answers");
  m.io.out(0x1f7, 1, 0xec); // would be IDENTIFY on the IDE port
  pciWrite(m, IDE_DEVFN, 0x20, 4, 0xc041);
  assert.equal(m.io.in(0x1f7, 1), statusBefore, "the IDE status port answers again");
  // 0xec went to 0x1f7, the PRD pointer's top byte.
  assert.equal(m.io.in(0xc044, 4), 0xec345678, "the BAR at its new base");
});

Deno.test("PIIX4 PM I/O enabled with PMBA 0 covers the PIC, and the PIC comes back when it moves", async () => {
  const m = await fuzzMachine();
  m.io.out(0x20, 1, 0x0b); // OCW3: read ISR
  const isr = m.io.in(0x20, 1);
  pciWrite(m, PM_DEVFN, 0x40, 4, 0x0001);
  pciWrite(m, PM_DEVFN, 0x80, 1, 0x01);
  m.loop.advanceTo(1e6);
  assert.equal(m.io.in(0x08, 4), Math.floor(1e6 * 3579545 / 1e9), "PM timer at port 8");
  m.io.out(0x20, 1, 0xff); // lands in the PM block: no effect on the PIC
  pciWrite(m, PM_DEVFN, 0x40, 4, 0xb001);
  m.io.out(0x20, 1, 0x0b);
  assert.equal(m.io.in(0x20, 1), isr, "the PIC answers at 0x20 again");
});

Deno.test("i440FX PAM modes switched under a BAR in the 0xc0000 window never abort, in either order", async () => {
  const m = await fuzzMachine();
  const probe = 0xc4000;
  for (const barFirst of [true, false]) {
    for (let mode = 0; mode < 4; mode++) {
      if (barFirst) {
        pciWrite(m, VGA_DEVFN, 0x18, 4, probe); // std VGA MMIO BAR2 (4 KiB)
        pciWrite(m, VGA_DEVFN, 0x04, 2, 0x0003);
        pciWrite(m, 0, 0x5a, 1, mode << 4); // PAM1 high nibble: 0xc4000-0xc7fff
      } else {
        pciWrite(m, 0, 0x5a, 1, mode << 4);
        pciWrite(m, VGA_DEVFN, 0x18, 4, probe);
        pciWrite(m, VGA_DEVFN, 0x04, 2, 0x0003);
      }
      m.memory.read32(probe);
      m.memory.write32(probe + 0x500, 0);
      pciWrite(m, VGA_DEVFN, 0x04, 2, 0x0000); // BAR off: PAM alone decides
      const value = 0x40 + 4 * Number(barFirst) + mode;
      m.memory.write8(probe + 0x10, value);
      const ramReads = mode === 1 || mode === 3;
      const ramWrites = mode === 2 || mode === 3;
      if (ramReads && ramWrites) assert.equal(m.memory.read8(probe + 0x10), value);
      if (!ramWrites && ramReads) assert.notEqual(m.memory.read8(probe + 0x10), value);
      pciWrite(m, VGA_DEVFN, 0x18, 4, 0);
    }
  }
});

Deno.test("A virtio BAR programmed over guest RAM covers it while mapped; the RAM is intact after", async () => {
  const m = await fuzzMachine();
  m.memory.write32(0x200000, 0xcafef00d);
  const bar4 = 0x20;
  pciWrite(m, BLK_DEVFN, bar4, 4, 0x200000);
  pciWrite(m, BLK_DEVFN, bar4 + 4, 4, 0);
  pciWrite(m, BLK_DEVFN, 0x04, 2, 0x0007);
  assert.notEqual(m.memory.read32(0x200000), 0xcafef00d, "the BAR decodes");
  m.memory.write32(0x200000 + 0x14, 0x0); // common config: device status 0 (reset)
  // DMA that starts in RAM below and runs into the BAR is refused, not written under it.
  const dma = new Uint8Array(0x2000).fill(0x77);
  assert.throws(() => m.memory.dmaWrite(0x1ff000, dma), RangeError);
  pciWrite(m, BLK_DEVFN, bar4, 4, 0xfebf0000);
  assert.equal(m.memory.read32(0x200000), 0xcafef00d, "RAM shows again, unchanged");
  assert.equal((pciRead(m, BLK_DEVFN, bar4, 4) & ~0xf) >>> 0, 0xfebf0000);
});
