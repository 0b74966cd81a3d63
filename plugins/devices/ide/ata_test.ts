import assert from "node:assert/strict";
import { identifyString, identifyWord } from "./identify.ts";
import {
  ideRig,
  issueLba28,
  PatternDisk,
  patternSectors,
  PRI,
  PRI_CTL,
  readPio,
  writePio,
} from "./test_util.ts";

const MiB = 1 << 20;

function disk(sizeBytes = 8 * MiB) {
  return ideRig([{ index: 0, media: "disk", node: new PatternDisk(sizeBytes), readOnly: false }]);
}

Deno.test("Piix3Ide IDENTIFY DEVICE returns the identify page by PIO with an interrupt", async () => {
  const { ide, io, irq14 } = await disk();
  assert.equal(io.in(PRI + 7, 1), 0x50);
  issueLba28(io, 0xec, 0, 0);
  assert.equal(irq14.level, true);
  assert.equal(io.in(PRI_CTL, 1), 0x58); // alternate status: DRDY DSC DRQ, IRQ kept
  assert.equal(irq14.level, true);
  assert.equal(io.in(PRI + 7, 1), 0x58);
  assert.equal(irq14.level, false); // status read acknowledges
  const page = readPio(io, 512);
  assert.equal(identifyString(page, 27, 20), "QEMU HARDDISK");
  assert.equal(identifyString(page, 10, 10), "QM00001");
  assert.equal(identifyWord(page, 60), 16384);
  assert.equal(io.in(PRI + 7, 1), 0x50);
  await ide.settled();
});

Deno.test("Piix3Ide READ SECTORS is busy during I/O, then offers each sector with DRQ", async () => {
  const { ide, io, irq14Levels } = await disk();
  issueLba28(io, 0x20, 5, 2);
  assert.equal(io.in(PRI + 7, 1) & 0x80, 0x80); // BSY while the read is in flight
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x58);
  assert.deepEqual(readPio(io, 512), patternSectors(5, 1));
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x58);
  assert.deepEqual(readPio(io, 512), patternSectors(6, 1));
  assert.equal(io.in(PRI + 7, 1), 0x50);
  assert.deepEqual(irq14Levels, [true, false, true, false]);
  assert.equal(io.in(PRI + 3, 1), 7); // the task file points past the transfer
});

Deno.test("Piix3Ide READ SECTORS addresses CHS through the disk geometry", async () => {
  const { ide, io } = await disk();
  // Cylinder 1, head 2, sector 3 with 16 heads and 63 sectors: LBA (1*16+2)*63+2.
  io.out(PRI + 6, 1, 0xa2);
  io.out(PRI + 2, 1, 1);
  io.out(PRI + 3, 1, 3);
  io.out(PRI + 4, 1, 1);
  io.out(PRI + 5, 1, 0);
  io.out(PRI + 7, 1, 0x20);
  await ide.settled();
  assert.deepEqual(readPio(io, 512), patternSectors(18 * 63 + 2, 1));
});

Deno.test("Piix3Ide WRITE SECTORS takes data by PIO and writes it to the node", async () => {
  const node = new PatternDisk(MiB);
  const { ide, io, irq14 } = await ideRig([{ index: 0, media: "disk", node, readOnly: false }]);
  issueLba28(io, 0x30, 9, 2);
  assert.equal(io.in(PRI + 7, 1), 0x58); // DRQ for the first block, no interrupt
  assert.equal(irq14.level, false);
  const data = new Uint8Array(1024).map((_, i) => i * 3);
  writePio(io, data.subarray(0, 512));
  await ide.settled();
  assert.equal(irq14.level, true);
  assert.equal(io.in(PRI + 7, 1), 0x58);
  writePio(io, data.subarray(512));
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x50);
  const back = new Uint8Array(1024);
  await node.read(9 * 512, back);
  assert.deepEqual(back, data);
});

Deno.test("Piix3Ide READ SECTORS EXT reaches an LBA beyond 28 bits", async () => {
  const lba = 2 ** 28 + 12345;
  const { ide, io } = await disk((lba + 100) * 512);
  io.out(PRI + 6, 1, 0x40);
  io.out(PRI + 2, 1, 0); // count high
  io.out(PRI + 3, 1, (lba / 2 ** 24) & 0xff);
  io.out(PRI + 4, 1, 0);
  io.out(PRI + 5, 1, 0);
  io.out(PRI + 2, 1, 1); // count low
  io.out(PRI + 3, 1, lba & 0xff);
  io.out(PRI + 4, 1, (lba >> 8) & 0xff);
  io.out(PRI + 5, 1, (lba >> 16) & 0xff);
  io.out(PRI + 7, 1, 0x24);
  await ide.settled();
  assert.deepEqual(readPio(io, 512), patternSectors(lba, 1));
  io.out(PRI_CTL, 1, 0x80); // HOB: read the high bytes of the final address
  assert.equal(io.in(PRI + 3, 1), ((lba + 1) / 2 ** 24) & 0xff);
  io.out(PRI_CTL, 1, 0);
});

Deno.test("Piix3Ide READ MULTIPLE transfers blocks of the SET MULTIPLE MODE size", async () => {
  const { ide, io, irq14Levels } = await disk();
  issueLba28(io, 0xc4, 0, 4);
  assert.equal(io.in(PRI + 7, 1), 0x41); // multiple mode is off: ABRT
  assert.equal(io.in(PRI + 1, 1), 0x04);
  issueLba28(io, 0xc6, 0, 4);
  assert.equal(io.in(PRI + 7, 1), 0x50);
  irq14Levels.length = 0;
  issueLba28(io, 0xc4, 10, 6);
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x58);
  assert.deepEqual(readPio(io, 4 * 512), patternSectors(10, 4));
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x58);
  assert.deepEqual(readPio(io, 2 * 512), patternSectors(14, 2));
  assert.equal(io.in(PRI + 7, 1), 0x50);
  assert.equal(irq14Levels.filter((l) => l).length, 2); // one interrupt per block
});

Deno.test("Piix3Ide answers an LBA past the end with IDNF and keeps working", async () => {
  const { ide, io } = await disk(MiB);
  issueLba28(io, 0x20, 2047, 2);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1), 0x10);
  issueLba28(io, 0x20, 2047, 1);
  await ide.settled();
  assert.deepEqual(readPio(io, 512), patternSectors(2047, 1));
});

Deno.test("Piix3Ide aborts unknown commands and DEVICE RESET on a disk", async () => {
  const { io } = await disk();
  issueLba28(io, 0xff, 0, 0);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1), 0x04);
  issueLba28(io, 0x08, 0, 0);
  assert.equal(io.in(PRI + 1, 1), 0x04);
});

Deno.test("Piix3Ide no-data commands complete: FLUSH CACHE, SET FEATURES, power, diagnostics", async () => {
  const node = new PatternDisk(MiB);
  const { ide, io } = await ideRig([{ index: 0, media: "disk", node, readOnly: false }]);
  issueLba28(io, 0xe7, 0, 0);
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x40);
  assert.deepEqual(node.log.slice(-1), ["flush"]);
  issueLba28(io, 0xef, 0, 0x45, { feature: 0x03 }); // UDMA mode 5
  assert.equal(io.in(PRI + 7, 1), 0x50);
  issueLba28(io, 0xef, 0, 0, { feature: 0x77 });
  assert.equal(io.in(PRI + 1, 1), 0x04);
  issueLba28(io, 0xe5, 0, 0);
  assert.equal(io.in(PRI + 2, 1), 0xff); // active
  for (const cmd of [0xe0, 0xe1, 0x91, 0x40]) {
    issueLba28(io, cmd, 0, 1);
    assert.equal(io.in(PRI + 7, 1) & 0x01, 0, `command 0x${cmd.toString(16)}`);
  }
  io.out(PRI + 7, 1, 0x90);
  assert.equal(io.in(PRI + 1, 1), 0x01); // diagnostic code: device 0 passed
  assert.equal(io.in(PRI + 4, 1), 0x00);
});

Deno.test("Piix3Ide nIEN masks the interrupt line while INTRQ stays pending", async () => {
  const { ide, io, irq14 } = await disk();
  io.out(PRI_CTL, 1, 0x02);
  issueLba28(io, 0xec, 0, 0);
  assert.equal(irq14.level, false);
  assert.equal(ide.channels[0].irqPending, true);
  io.out(PRI_CTL, 1, 0x00);
  assert.equal(irq14.level, true);
  io.in(PRI + 7, 1);
  assert.equal(irq14.level, false);
});

Deno.test("Piix3Ide SRST resets the devices to their signatures", async () => {
  const { ide, io } = await ideRig([
    { index: 0, media: "disk", node: new PatternDisk(MiB), readOnly: false },
    { index: 1, media: "cdrom", node: null, readOnly: true },
  ]);
  issueLba28(io, 0xec, 0, 0);
  io.out(PRI_CTL, 1, 0x04);
  assert.equal(io.in(PRI + 7, 1) & 0x80, 0x80);
  io.out(PRI_CTL, 1, 0x00);
  assert.equal(io.in(PRI + 7, 1), 0x50);
  assert.equal(io.in(PRI + 1, 1), 0x01);
  io.out(PRI + 6, 1, 0xb0);
  assert.equal(io.in(PRI + 6, 1), 0xb0);
  assert.equal(io.in(PRI + 4, 1), 0x14);
  assert.equal(io.in(PRI + 5, 1), 0xeb);
  assert.equal(io.in(PRI + 7, 1), 0x00); // a PACKET device comes up without DRDY
  await ide.settled();
});

Deno.test("Piix3Ide reads zeroes from an empty channel and an absent slave", async () => {
  const { io } = await disk();
  assert.equal(io.in(0x177, 1), 0);
  io.out(0x172, 1, 0x55);
  assert.equal(io.in(0x172, 1), 0);
  io.out(PRI + 6, 1, 0xb0);
  assert.equal(io.in(PRI + 7, 1), 0);
  io.out(PRI + 7, 1, 0xec); // ignored
  io.out(PRI + 6, 1, 0xa0);
  assert.equal(io.in(PRI + 7, 1), 0x50);
});

Deno.test("Piix3Ide refuses writes to a read-only disk with ABRT", async () => {
  const { io } = await ideRig([
    { index: 0, media: "disk", node: new PatternDisk(MiB, "ro", true), readOnly: true },
  ]);
  issueLba28(io, 0x30, 0, 1);
  assert.equal(io.in(PRI + 7, 1), 0x41);
});
