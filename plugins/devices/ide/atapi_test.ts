import assert from "node:assert/strict";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import { identifyString, identifyWord } from "./identify.ts";
import { PRD_EOT } from "./bus_master.ts";
import type { Piix3Ide } from "./piix3_ide.ts";
import {
  ideRig,
  issueLba28,
  PatternDisk,
  patternSectors,
  PRI,
  readPio,
  writePio,
} from "./test_util.ts";

const CD_SECTORS = 64;

function cdRig(withMedium = true) {
  const node = withMedium ? new PatternDisk(CD_SECTORS * 2048, "cd.iso", true) : null;
  return ideRig([{ index: 0, media: "cdrom", node, readOnly: true }]);
}

/** Sends a PACKET command with `cdb` and a byte count limit; returns the status after. */
function packet(io: PortIoSpace, cdb: number[], options: { limit?: number; dma?: boolean } = {}) {
  const limit = options.limit ?? 0xfffe;
  io.out(PRI + 6, 1, 0xa0);
  io.out(PRI + 1, 1, options.dma ? 1 : 0);
  io.out(PRI + 4, 1, limit & 0xff);
  io.out(PRI + 5, 1, limit >> 8);
  io.out(PRI + 7, 1, 0xa0);
  assert.equal(io.in(PRI + 7, 1) & 0x88, 0x08, "DRQ for the command packet");
  assert.equal(io.in(PRI + 2, 1) & 3, 1, "interrupt reason: command");
  const bytes = new Uint8Array(12);
  bytes.set(cdb);
  writePio(io, bytes);
}

/** Reads one data-in DRQ block: its byte count from the task file, then the data. */
function dataBlock(io: PortIoSpace): Uint8Array {
  assert.equal(io.in(PRI + 7, 1) & 0x89, 0x08, "DRQ without BSY or ERR");
  assert.equal(io.in(PRI + 2, 1) & 3, 2, "interrupt reason: data to host");
  const n = io.in(PRI + 4, 1) | (io.in(PRI + 5, 1) << 8);
  return readPio(io, n);
}

async function command(ide: Piix3Ide, io: PortIoSpace, cdb: number[]): Promise<Uint8Array> {
  packet(io, cdb);
  await ide.settled();
  const out = dataBlock(io);
  assertComplete(io);
  return out;
}

function assertComplete(io: PortIoSpace): void {
  assert.equal(io.in(PRI + 7, 1) & 0x89, 0x00);
  assert.equal(io.in(PRI + 2, 1) & 3, 3, "interrupt reason: command complete");
}

/** Sends REQUEST SENSE; returns [key, asc]. */
async function sense(ide: Piix3Ide, io: PortIoSpace): Promise<[number, number]> {
  const s = await command(ide, io, [0x03, 0, 0, 0, 18, 0]);
  return [s[2] & 0x0f, s[12]];
}

Deno.test("Piix3Ide CD-ROM has the ATAPI signature and aborts IDENTIFY DEVICE", async () => {
  const { io } = await cdRig();
  assert.equal(io.in(PRI + 4, 1), 0x14);
  assert.equal(io.in(PRI + 5, 1), 0xeb);
  issueLba28(io, 0xec, 0, 0);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1), 0x04);
  assert.equal(io.in(PRI + 4, 1), 0x14);
  assert.equal(io.in(PRI + 5, 1), 0xeb);
});

Deno.test("Piix3Ide IDENTIFY PACKET DEVICE describes QEMU's DVD-ROM", async () => {
  const { io } = await cdRig();
  issueLba28(io, 0xa1, 0, 0);
  const page = readPio(io, 512);
  assert.equal(identifyWord(page, 0), 0x85c0);
  assert.equal(identifyString(page, 27, 20), "QEMU DVD-ROM");
});

Deno.test("Piix3Ide ATAPI INQUIRY and READ CAPACITY describe the medium", async () => {
  const { ide, io } = await cdRig();
  const inquiry = await command(ide, io, [0x12, 0, 0, 0, 36, 0]);
  assert.equal(inquiry[0], 0x05);
  assert.equal(inquiry[1], 0x80);
  assert.equal(new TextDecoder().decode(inquiry.subarray(8, 32)), "QEMU    QEMU DVD-ROM    ");
  const capacity = await command(ide, io, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...capacity], [0, 0, 0, CD_SECTORS - 1, 0, 0, 0x08, 0]);
});

Deno.test("Piix3Ide ATAPI READ(10) splits the data by the byte count limit", async () => {
  const { ide, io, irq14Levels } = await cdRig();
  packet(io, [0x28, 0, 0, 0, 0, 5, 0, 0, 3, 0], { limit: 4096 });
  await ide.settled();
  const first = dataBlock(io);
  assert.equal(first.length, 4096);
  await ide.settled();
  const second = dataBlock(io);
  assert.equal(second.length, 2048);
  assertComplete(io);
  assert.deepEqual([...first, ...second], [...patternSectors(5, 3, 2048)]);
  assert.equal(irq14Levels.filter((l) => l).length, 3);
});

Deno.test("Piix3Ide ATAPI READ(12) through DMA fills the PRD buffer", async () => {
  const { ide, io, ram } = await cdRig();
  const view = new DataView(ram.buffer);
  view.setUint32(0x1000, 0x50000, true);
  view.setUint32(0x1004, 4096 | PRD_EOT, true);
  ide.writeBusMaster(4, 4, 0x1000);
  ide.writeBusMaster(0, 1, 0x09);
  packet(io, [0xa8, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0], { dma: true });
  await ide.settled();
  assertComplete(io);
  assert.deepEqual(ram.subarray(0x50000, 0x51000), patternSectors(10, 2, 2048));
  assert.equal(ide.readBusMaster(2, 1) & 0x07, 0x04);
});

Deno.test("Piix3Ide ATAPI READ(10) past the medium is ILLEGAL REQUEST", async () => {
  const { ide, io } = await cdRig();
  packet(io, [0x28, 0, 0, 0, 0, CD_SECTORS - 1, 0, 0, 2, 0]);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1) >> 4, 0x05);
  assert.deepEqual(await sense(ide, io), [0x05, 0x21]);
});

Deno.test("Piix3Ide empty CD-ROM fails TEST UNIT READY with NOT READY, MEDIUM NOT PRESENT", async () => {
  const { ide, io } = await cdRig(false);
  packet(io, [0x00]);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.equal(io.in(PRI + 1, 1), 0x20);
  assert.deepEqual(await sense(ide, io), [0x02, 0x3a]);
  const config = await command(ide, io, [0x46, 0, 0, 0, 0, 0, 0, 0, 32, 0]);
  assert.equal((config[6] << 8) | config[7], 0); // no current profile
});

Deno.test("Piix3Ide ATAPI reports UNIT ATTENTION once after a medium change", async () => {
  const { ide, io } = await cdRig(false);
  ide.drive(0)!.changeMedium(new PatternDisk(16 * 2048));
  const events = await command(ide, io, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  assert.equal(events[4], 2); // new media
  assert.equal(events[5], 2); // present
  packet(io, [0x00]);
  assert.equal(io.in(PRI + 1, 1) >> 4, 0x06);
  packet(io, [0x00]);
  assert.equal(io.in(PRI + 7, 1), 0x50);
});

Deno.test("Piix3Ide ATAPI unknown packet is CHECK CONDITION with ILLEGAL REQUEST", async () => {
  const { ide, io } = await cdRig();
  packet(io, [0xd9]);
  assert.equal(io.in(PRI + 7, 1), 0x41);
  assert.deepEqual(await sense(ide, io), [0x05, 0x20]);
  assert.deepEqual(await sense(ide, io), [0x00, 0x00]);
});

Deno.test("Piix3Ide ATAPI READ TOC, MODE SENSE and disc commands answer", async () => {
  const { ide, io } = await cdRig();
  const toc = await command(ide, io, [0x43, 0, 0, 0, 0, 0, 0, 0, 20, 0]);
  assert.deepEqual([...toc.subarray(0, 4)], [0, 18, 1, 1]);
  assert.equal(toc[14], 0xaa);
  assert.deepEqual([...toc.subarray(16, 20)], [0, 0, 0, CD_SECTORS]);
  const msf = await command(ide, io, [0x43, 2, 0, 0, 0, 0, 0, 0, 20, 0]);
  assert.deepEqual([...msf.subarray(8, 12)], [0, 0, 2, 0]); // track 1 at 00:02:00
  const caps = await command(ide, io, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64, 0]);
  assert.equal(caps[8], 0x2a);
  const disc = await command(ide, io, [0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0]);
  assert.equal(disc[2], 0x0e);
  const mech = await command(ide, io, [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
  assert.equal(mech.length, 8);
  for (const cdb of [[0x1e, 0, 0, 0, 1], [0xbb], [0x1b, 0, 0, 0, 1]]) {
    packet(io, cdb);
    assert.equal(io.in(PRI + 7, 1), 0x50);
  }
  packet(io, [0x1b, 0, 0, 0, 2]); // eject while locked
  assert.equal(io.in(PRI + 1, 1) >> 4, 0x02);
});

/** A 2 GiB disc that hands out zeros and records the largest read it was asked for. */
class HugeDisc extends PatternDisk {
  largestRead = 0;
  bytesRead = 0;
  constructor() {
    super(2 ** 31, "huge.iso", true);
  }
  override read(_offset: number, buf: Uint8Array): Promise<void> {
    this.largestRead = Math.max(this.largestRead, buf.length);
    this.bytesRead += buf.length;
    buf.fill(0x5a);
    return Promise.resolve();
  }
}

Deno.test("Piix3Ide ATAPI READ(12) of a whole 2 GiB disc by DMA moves it in bounded pieces, not one buffer", async () => {
  const disc = new HugeDisc();
  const { ide, io, ram } = await ideRig([{ index: 0, media: "cdrom", node: disc, readOnly: true }]);
  const view = new DataView(ram.buffer);
  // The guest's PRD table: all 8192 entries of 64 KiB point at one 64 KiB buffer, the
  // last with EOT. That is 512 MiB of PRD space for a 2 GiB request.
  for (let i = 0; i < 8192; i++) {
    view.setUint32(0x10000 + 8 * i, 0x40000, true);
    view.setUint32(0x10000 + 8 * i + 4, i === 8191 ? PRD_EOT : 0, true);
  }
  ide.writeBusMaster(4, 4, 0x10000);
  ide.writeBusMaster(0, 1, 0x09);
  const rssBefore = Deno.memoryUsage().rss;
  const sectors = 2 ** 31 / 2048;
  packet(io, [
    0xa8,
    0,
    0,
    0,
    0,
    0,
    (sectors >>> 24) & 0xff,
    (sectors >>> 16) & 0xff,
    (sectors >>> 8) & 0xff,
    sectors & 0xff,
    0,
    0,
  ], { dma: true });
  await ide.settled();
  assert.ok(disc.largestRead <= 128 << 10, `largest host buffer ${disc.largestRead}`);
  // The table runs out after 512 MiB (+ one piece read ahead): the drive stops there
  // without an interrupt and the bus master stays active, as QEMU does on a short table.
  assert.ok(disc.bytesRead <= (512 << 20) + (128 << 10), `${disc.bytesRead} bytes read`);
  assert.equal(ram[0x40000], 0x5a);
  assert.ok(Deno.memoryUsage().rss - rssBefore < 256 << 20, "host memory stays bounded");
  // The guest can reset the channel and use the drive again.
  io.out(0x3f6, 1, 0x04);
  io.out(0x3f6, 1, 0x00);
  await ide.settled();
  packet(io, [0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // TEST UNIT READY
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1) & 0x89, 0x00);
});

Deno.test("Piix3Ide ATAPI DMA into a PRD pointing at nothing ends with ERR and the bus master Error bit", async () => {
  const { ide, io, ram } = await cdRig();
  const view = new DataView(ram.buffer);
  view.setUint32(0x1000, 0xe0000000, true); // no RAM there
  view.setUint32(0x1004, 4096 | PRD_EOT, true);
  ide.writeBusMaster(4, 4, 0x1000);
  ide.writeBusMaster(0, 1, 0x09);
  packet(io, [0xa8, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0], { dma: true });
  await ide.settled();
  assert.equal(io.in(PRI + 7, 1) & 0x01, 0x01, "ERR");
  assert.equal(ide.readBusMaster(2, 1) & 0x02, 0x02, "bus master Error");
});
