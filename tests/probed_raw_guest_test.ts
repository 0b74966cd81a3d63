// A guest writing another format's header into block 0 of a probed raw disk, through IDE and virtio-blk

import { skipUnless } from "./skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph, probedRawWarning } from "../core/block/graph.ts";
import type { Machine } from "../core/machine.ts";
import { buildRegistry } from "../cli/registry.ts";
import { buildSystemSetup, type SystemSetup } from "../cli/system/config.ts";
import { parseSystemArgs } from "../cli/system/options.ts";
import { readBytes, runTool, runVmkit, tempDir } from "./test_util.ts";

const registry = await buildRegistry();
const SECTOR = 512;

/** A VMDK descriptor that, once probed, opens a host file read-write as the disk. */
function vmdkDescriptor(target: string): Uint8Array {
  const text = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n" +
    `createType="monolithicFlat"\n\nRW 8 FLAT "${target}" 0\n`;
  const sector = new Uint8Array(SECTOR);
  sector.set(new TextEncoder().encode(text));
  return sector;
}

/** The first sector of a qcow2 v3 image of 1 MiB (magic, version, cluster bits, size). */
function qcow2Header(): Uint8Array {
  const sector = new Uint8Array(SECTOR);
  const v = new DataView(sector.buffer);
  v.setUint32(0, 0x514649fb);
  v.setUint32(4, 3);
  v.setUint32(20, 16);
  v.setBigUint64(24, 1n << 20n);
  v.setUint32(100, 104);
  return sector;
}

/** A plausible MBR: a boot signature and one partition entry. */
function mbr(): Uint8Array {
  const sector = new Uint8Array(SECTOR);
  sector.set([0xfa, 0x31, 0xc0, 0x8e, 0xd8], 0);
  sector.set([0x80, 0x20, 0x21, 0x00, 0x83, 0x14, 0x50, 0x00, 0x00, 0x08], 446);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** A `-M pc` machine built as the CLI builds it, and the lines the block layer printed. */
async function pcMachine(args: string[]): Promise<
  { machine: Machine; setup: SystemSetup; lines: string[] }
> {
  const lines: string[] = [];
  const setup = await buildSystemSetup(parseSystemArgs(args).opts, undefined, {
    registry,
    graph: new BlockGraph(registry, (line) => lines.push(line)),
    stdio: {},
  });
  const config = { ...setup.config, firmware: new Uint8Array(256 * 1024) };
  const machine = registry.require("machine", "pc").create(config) as Machine;
  for (const d of setup.devices) machine.createDevice(d.model, d.opts);
  await machine.realize();
  return { machine, setup, lines };
}

async function settle(machine: Machine): Promise<void> {
  while (machine.loop.pendingIo > 0) await new Promise((r) => setTimeout(r, 1));
}

async function shutdown(setup: SystemSetup): Promise<void> {
  for (const b of setup.backends) await b.close();
}

/** Writes `data` to LBA 0 of the primary master by PIO, as a guest driver does; returns status and error. */
async function idePioWriteSector0(
  machine: Machine,
  data: Uint8Array,
): Promise<{ status: number; error: number }> {
  const io = machine.io;
  io.out(0x1f6, 1, 0xe0); // master, LBA
  io.out(0x1f2, 1, 1);
  io.out(0x1f3, 1, 0);
  io.out(0x1f4, 1, 0);
  io.out(0x1f5, 1, 0);
  io.out(0x1f7, 1, 0x30); // WRITE SECTORS
  assert.ok(io.in(0x1f7, 1) & 0x08, "DRQ for the data");
  for (let i = 0; i < SECTOR; i += 2) io.out(0x1f0, 2, data[i] | (data[i + 1] << 8));
  await settle(machine);
  return { status: io.in(0x1f7, 1), error: io.in(0x1f1, 1) };
}

/** Writes `data` to LBA 0 by bus-master DMA through a PRD table in guest RAM. */
async function ideDmaWriteSector0(
  machine: Machine,
  data: Uint8Array,
): Promise<{ status: number; error: number }> {
  const io = machine.io;
  const mem = machine.memory;
  // PIIX3 IDE is 00:01.1; give BAR4 an I/O base and enable I/O and bus mastering.
  const cfg = (reg: number, size: 1 | 2 | 4, value: number) => {
    io.out(0xcf8, 4, (0x80000000 | (0x09 << 8) | (reg & ~3)) >>> 0);
    io.out(0xcfc + (reg & 3), size, value);
  };
  const BM = 0xc100;
  cfg(0x20, 4, BM | 1);
  cfg(0x04, 2, 0x05);
  const PRD = 0x8000;
  const BUF = 0x9000;
  mem.dmaWrite(BUF, data);
  mem.write32(PRD, BUF);
  mem.write32(PRD + 4, 0x80000000 | SECTOR); // last entry, 512 bytes
  io.out(BM + 4, 4, PRD);
  io.out(0x1f6, 1, 0xe0);
  io.out(0x1f2, 1, 1);
  io.out(0x1f3, 1, 0);
  io.out(0x1f4, 1, 0);
  io.out(0x1f5, 1, 0);
  io.out(0x1f7, 1, 0xca); // WRITE DMA
  io.out(BM, 1, 0x01); // start, direction: memory to drive
  await settle(machine);
  io.out(BM, 1, 0x00);
  return { status: io.in(0x1f7, 1), error: io.in(0x1f1, 1) };
}

/** Sets up virtio-blk's queue 0 through the legacy interface and writes `data` to sector 0. */
async function virtioWriteSector0(machine: Machine, data: Uint8Array): Promise<number> {
  const io = machine.io;
  const mem = machine.memory;
  const dev = machine.devices.find((d) => d.model === "virtio-blk-pci") as unknown as {
    devfn: number;
  };
  assert.ok(dev, "the CLI made a virtio-blk-pci for if=virtio");
  const cfg = (reg: number, size: 1 | 2 | 4, value: number) => {
    io.out(0xcf8, 4, (0x80000000 | (dev.devfn << 8) | (reg & ~3)) >>> 0);
    io.out(0xcfc + (reg & 3), size, value);
  };
  const BAR = 0xc200;
  cfg(0x10, 4, BAR | 1);
  cfg(0x04, 2, 0x05);
  io.out(BAR + 18, 1, 0); // reset
  io.out(BAR + 18, 1, 0x01 | 0x02); // ACKNOWLEDGE | DRIVER
  io.out(BAR + 4, 4, 0); // no features
  io.out(BAR + 14, 2, 0); // queue 0
  const size = io.in(BAR + 12, 2);
  assert.ok(size > 0, "queue 0 exists");
  const RING = 0x20000;
  io.out(BAR + 8, 4, RING >> 12);
  io.out(BAR + 18, 1, 0x01 | 0x02 | 0x04); // DRIVER_OK
  const avail = RING + 16 * size;
  const used = Math.ceil((avail + 6 + 2 * size) / 4096) * 4096;
  const HDR = 0x30000;
  const DATA = 0x31000;
  const STATUS = 0x32000;
  mem.write32(HDR, 1); // VIRTIO_BLK_T_OUT
  mem.write32(HDR + 4, 0);
  mem.write32(HDR + 8, 0); // sector 0
  mem.write32(HDR + 12, 0);
  mem.dmaWrite(DATA, data);
  mem.write8(STATUS, 0xff);
  const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
    mem.write32(RING + 16 * i, addr);
    mem.write32(RING + 16 * i + 4, 0);
    mem.write32(RING + 16 * i + 8, len);
    mem.write16(RING + 16 * i + 12, flags);
    mem.write16(RING + 16 * i + 14, next);
  };
  desc(0, HDR, 16, 1, 1); // NEXT
  desc(1, DATA, data.length, 1, 2);
  desc(2, STATUS, 1, 2, 0); // WRITE
  const index = mem.read16(avail + 2);
  mem.write16(avail + 4 + 2 * (index % size), 0);
  mem.write16(avail + 2, index + 1);
  io.out(BAR + 16, 2, 0); // notify queue 0
  await settle(machine);
  assert.equal(mem.read16(used + 2), index + 1, "the request completed");
  return mem.read8(STATUS);
}

const VIRTIO_BLK_S_OK = 0;
const VIRTIO_BLK_S_IOERR = 1;
const ATA_SR_ERR = 0x01;
const ATA_ER_ABRT = 0x04;

async function attackDir(): Promise<
  { dir: string; disk: string; secret: string; cleanup: () => Promise<void> }
> {
  const { dir, cleanup } = await tempDir();
  const disk = path.join(dir, "disk.img");
  const secret = path.join(dir, "authorized_keys");
  await Deno.writeFile(disk, new Uint8Array(1 << 20));
  await Deno.writeTextFile(secret, "ssh-ed25519 AAAA host-owner\n");
  return { dir, disk, secret, cleanup };
}

Deno.test("a probed raw IDE disk refuses a VMDK descriptor or qcow2 header in sector 0 (PIO and DMA)", async () => {
  const { disk, secret, cleanup } = await attackDir();
  try {
    const { machine, setup, lines } = await pcMachine(["-drive", `file=${disk}`]);
    assert.deepEqual(lines, [probedRawWarning(disk)]);
    for (const payload of [vmdkDescriptor(secret), qcow2Header()]) {
      const pio = await idePioWriteSector0(machine, payload);
      assert.ok(pio.status & ATA_SR_ERR, `PIO: error status, got ${pio.status.toString(16)}`);
      assert.ok(pio.error & ATA_ER_ABRT, "PIO: aborted");
      const dma = await ideDmaWriteSector0(machine, payload);
      assert.ok(dma.status & ATA_SR_ERR, `DMA: error status, got ${dma.status.toString(16)}`);
      assert.ok(dma.error & ATA_ER_ABRT, "DMA: aborted");
    }
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), new Uint8Array(SECTOR), "sector 0 kept");
    // A benign boot sector still goes in, by either path; the machine lives on.
    const boot = mbr();
    assert.equal((await idePioWriteSector0(machine, boot)).status & ATA_SR_ERR, 0);
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), boot);
    boot[0] = 0xeb;
    assert.equal((await ideDmaWriteSector0(machine, boot)).status & ATA_SR_ERR, 0);
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), boot);
    await shutdown(setup);
    // The next start still probes raw.
    const again = await pcMachine(["-drive", `file=${disk}`]);
    assert.equal(again.setup.backends[0].root.driver, "raw");
    await shutdown(again.setup);
  } finally {
    await cleanup();
  }
});

Deno.test("a probed raw virtio-blk disk answers VIRTIO_BLK_S_IOERR to a header in sector 0", async () => {
  const { disk, secret, cleanup } = await attackDir();
  try {
    const { machine, setup, lines } = await pcMachine(["-drive", `file=${disk},if=virtio`]);
    assert.deepEqual(lines, [probedRawWarning(disk)]);
    assert.equal(await virtioWriteSector0(machine, vmdkDescriptor(secret)), VIRTIO_BLK_S_IOERR);
    assert.equal(await virtioWriteSector0(machine, qcow2Header()), VIRTIO_BLK_S_IOERR);
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), new Uint8Array(SECTOR));
    // A write of several sectors starting at 0 is judged by what it leaves in block 0.
    const long = new Uint8Array(4 * SECTOR);
    long.set(qcow2Header());
    long.fill(0x5a, SECTOR);
    assert.equal(await virtioWriteSector0(machine, long), VIRTIO_BLK_S_IOERR);
    assert.deepEqual(readBytes(disk).subarray(0, 4 * SECTOR), new Uint8Array(4 * SECTOR));
    const boot = mbr();
    assert.equal(await virtioWriteSector0(machine, boot), VIRTIO_BLK_S_OK);
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), boot);
    await shutdown(setup);
    const again = await pcMachine(["-drive", `file=${disk},if=virtio`]);
    assert.equal(again.setup.backends[0].root.driver, "raw");
    await shutdown(again.setup);
  } finally {
    await cleanup();
  }
});

Deno.test("format=raw lifts the restriction and the warning, as in QEMU", async () => {
  const { disk, secret, cleanup } = await attackDir();
  try {
    await Deno.writeFile(`${disk}.v`, new Uint8Array(1 << 20));
    const { machine, setup, lines } = await pcMachine([
      "-drive",
      `file=${disk},format=raw`,
      "-drive",
      `file=${disk}.v,format=raw,if=virtio`,
    ]);
    assert.deepEqual(lines, []);
    const descriptor = vmdkDescriptor(secret);
    const pio = await idePioWriteSector0(machine, descriptor);
    assert.equal(pio.status & ATA_SR_ERR, 0);
    assert.deepEqual(readBytes(disk).subarray(0, SECTOR), descriptor);
    assert.equal(await virtioWriteSector0(machine, qcow2Header()), VIRTIO_BLK_S_OK);
    assert.deepEqual(readBytes(`${disk}.v`).subarray(0, SECTOR), qcow2Header());
    await shutdown(setup);
  } finally {
    await cleanup();
  }
});

Deno.test("a read-only probed raw drive prints no warning (nothing can be written)", async () => {
  const { disk, cleanup } = await attackDir();
  try {
    const { setup, lines } = await pcMachine(["-drive", `file=${disk},if=virtio,readonly=on`]);
    assert.deepEqual(lines, []);
    await shutdown(setup);
  } finally {
    await cleanup();
  }
});

Deno.test({
  name: "vmkit system-x86_64 prints QEMU 7.2's probed-raw warning byte for byte",
  ignore: skipUnless(import.meta, "qemu-img"),
  async fn() {
    const { dir, cleanup } = await attackDir();
    try {
      const qemu = await new Deno.Command("qemu-system-x86_64", {
        args: ["-display", "none", "-S", "-monitor", "none", "-drive", "file=disk.img", "-M", "pc"],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
        signal: AbortSignal.timeout(5000),
      }).output().catch(() => null);
      const ours = await runVmkit(["system-x86_64", "-drive", "file=disk.img", "-bios", "none"], {
        cwd: dir,
      });
      const expected = probedRawWarning("disk.img") + "\n";
      assert.ok(ours.stderr.startsWith(expected), ours.stderr);
      if (qemu) {
        const text = new TextDecoder().decode(qemu.stderr);
        assert.ok(text.startsWith(expected), text);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "img info and convert of a probed raw file are unaffected: no warning, data copied",
  ignore: skipUnless(import.meta, "qemu-img"),
  async fn() {
    const { dir, disk, cleanup } = await attackDir();
    try {
      // A raw image whose data has a qcow2 header at sector 1: still raw, and img copies it.
      const bytes = new Uint8Array(1 << 20);
      bytes.set(qcow2Header(), SECTOR);
      await Deno.writeFile(disk, bytes);
      for (const tool of ["vmkit", "qemu-img"]) {
        const info = await runTool(tool, ["info", "--output=json", "disk.img"], dir);
        assert.equal(info.stderr, "", `${tool} info`);
        assert.equal(JSON.parse(info.stdout).format, "raw");
        const out = `out-${tool}.img`;
        const conv = await runTool(tool, ["convert", "-O", "raw", "disk.img", out], dir);
        assert.equal(conv.code, 0, conv.stderr);
        assert.equal(conv.stderr, "", `${tool} convert`);
        assert.deepEqual(readBytes(path.join(dir, out)), bytes);
      }
    } finally {
      await cleanup();
    }
  },
});
