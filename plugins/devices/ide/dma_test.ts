import assert from "node:assert/strict";
import { BM_STATUS_ACTIVE, BM_STATUS_ERROR, BM_STATUS_INT, PRD_EOT } from "./bus_master.ts";
import { ideRig, issueLba28, PatternDisk, patternSectors, PRI } from "./test_util.ts";

const PRD_TABLE = 0x1000;

/** Lays out a PRD table: `[address, bytes]` per entry, EOT on the last. */
function prdTable(ram: Uint8Array, entries: [number, number][]): void {
  const view = new DataView(ram.buffer);
  entries.forEach(([address, bytes], i) => {
    view.setUint32(PRD_TABLE + 8 * i, address, true);
    const last = i === entries.length - 1;
    view.setUint32(PRD_TABLE + 8 * i + 4, (bytes & 0xffff) | (last ? PRD_EOT : 0), true);
  });
}

async function dmaRig() {
  const node = new PatternDisk(1 << 20);
  const rig = await ideRig([{ index: 0, media: "disk", node, readOnly: false }]);
  return { ...rig, node };
}

Deno.test("Piix3Ide READ DMA scatters sectors through the PRD table and interrupts", async () => {
  const { ide, io, ram, irq14 } = await dmaRig();
  prdTable(ram, [[0x20000, 512], [0x30000, 1024]]);
  ide.writeBusMaster(4, 4, PRD_TABLE);
  ide.writeBusMaster(0, 1, 0x08); // device to memory
  issueLba28(io, 0xc8, 3, 3);
  assert.equal(io.in(PRI + 7, 1) & 0x80, 0x80);
  ide.writeBusMaster(0, 1, 0x09); // start
  await ide.settled();
  assert.equal(irq14.level, true);
  assert.equal(ide.readBusMaster(2, 1) & 0x07, BM_STATUS_INT);
  assert.equal(io.in(PRI + 7, 1), 0x50);
  assert.deepEqual(ram.subarray(0x20000, 0x20200), patternSectors(3, 1));
  assert.deepEqual(ram.subarray(0x30000, 0x30400), patternSectors(4, 2));
  ide.writeBusMaster(0, 1, 0x08); // stop
  ide.writeBusMaster(2, 1, BM_STATUS_INT); // write one to clear
  assert.equal(ide.readBusMaster(2, 1) & BM_STATUS_INT, 0);
});

Deno.test("Piix3Ide WRITE DMA gathers from guest memory when the bus master starts first", async () => {
  const { ide, io, ram, node } = await dmaRig();
  for (let i = 0; i < 1024; i++) ram[0x40000 + i] = (i * 5) & 0xff;
  prdTable(ram, [[0x40000, 1024]]);
  ide.writeBusMaster(4, 4, PRD_TABLE);
  ide.writeBusMaster(0, 1, 0x01);
  issueLba28(io, 0xca, 100, 2);
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x50);
  const back = new Uint8Array(1024);
  await node.read(100 * 512, back);
  assert.deepEqual(back, ram.subarray(0x40000, 0x40400));
});

Deno.test("Piix3Ide READ DMA EXT with a larger PRD table leaves Active set", async () => {
  const { ide, io, ram } = await dmaRig();
  prdTable(ram, [[0x20000, 4096]]);
  ide.writeBusMaster(4, 4, PRD_TABLE);
  ide.writeBusMaster(0, 1, 0x09);
  io.out(PRI + 6, 1, 0x40);
  io.out(PRI + 2, 1, 0);
  io.out(PRI + 2, 1, 1);
  io.out(PRI + 3, 1, 0);
  io.out(PRI + 3, 1, 7);
  io.out(PRI + 7, 1, 0x25);
  await ide.settled();
  assert.equal(ide.readBusMaster(2, 1) & 0x07, BM_STATUS_INT | BM_STATUS_ACTIVE);
  assert.deepEqual(ram.subarray(0x20000, 0x20200), patternSectors(7, 1));
});

Deno.test("Piix3Ide answers a PRD outside RAM with an error status and keeps running", async () => {
  const { ide, io, ram, irq14 } = await dmaRig();
  prdTable(ram, [[0xfee00000, 512]]);
  ide.writeBusMaster(4, 4, PRD_TABLE);
  ide.writeBusMaster(0, 1, 0x09);
  issueLba28(io, 0xc8, 0, 1);
  await ide.settled();
  assert.equal(irq14.level, true);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1), 0x04);
  assert.equal(ide.readBusMaster(2, 1) & 0x07, BM_STATUS_INT | BM_STATUS_ERROR);
  ide.writeBusMaster(0, 1, 0x00);
  ide.writeBusMaster(2, 1, 0x06);
  // The next command works.
  prdTable(ram, [[0x20000, 512]]);
  ide.writeBusMaster(0, 1, 0x09);
  issueLba28(io, 0xc8, 1, 1);
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1), 0x50);
  assert.deepEqual(ram.subarray(0x20000, 0x20200), patternSectors(1, 1));
});

Deno.test("BusMaster registers keep the PRD pointer dword aligned and the drive DMA bits", async () => {
  const { ide } = await dmaRig();
  ide.writeBusMaster(4, 4, 0x12345677);
  assert.equal(ide.readBusMaster(4, 4), 0x12345674);
  ide.writeBusMaster(2, 1, 0x60);
  assert.equal(ide.readBusMaster(2, 1), 0x60);
  ide.writeBusMaster(8 + 4, 2, 0xabcd);
  assert.equal(ide.readBusMaster(8 + 4, 4), 0xabcc);
});
