import assert from "node:assert/strict";
import type { BlockIo } from "../../../core/block/backend.ts";
import {
  BLK_CFG_BLK_SIZE,
  BLK_CFG_CAPACITY,
  BLK_CFG_HEADS,
  BLK_CFG_SECTORS,
  BLK_CFG_SEG_MAX,
  BLK_CFG_WRITEBACK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlk,
  virtioBlkGeometry,
} from "./blk.ts";
import { TestDriver } from "./test_util.ts";

/** A disk in memory that counts flushes. */
class MemoryDisk implements BlockIo {
  flushes = 0;
  constructor(readonly bytes: Uint8Array) {}
  size(): number {
    return this.bytes.length;
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    buf.set(this.bytes.subarray(offset, offset + buf.length));
    return Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    this.flushes++;
    return Promise.resolve();
  }
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setUint32(8, sector, true);
  return h;
}

function setup(mode: "legacy" | "modern", options: { readOnly?: boolean; serial?: string } = {}) {
  const bytes = new Uint8Array(1 << 20);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  const disk = new MemoryDisk(bytes);
  const blk = new VirtioBlk(disk, { readOnly: options.readOnly ?? false, serial: options.serial });
  const driver = new TestDriver(blk, mode);
  return { disk, blk, driver };
}

for (const mode of ["legacy", "modern"] as const) {
  Deno.test(`VirtioBlk answers IN, OUT, FLUSH and GET_ID through the ${mode} interface`, async () => {
    const { disk, blk, driver } = setup(mode, { serial: "vmkit-serial" });
    assert.ok(driver.init(1) & 4, "DRIVER_OK");
    // IN: two sectors from sector 3, split over two writable buffers.
    const [, d1, d2, st] = driver.submit(0, 0, [
      { data: header(VIRTIO_BLK_T_IN, 3) },
      { writeLength: 512 },
      { writeLength: 512 },
      { writeLength: 1 },
    ]);
    driver.notify(0);
    await driver.settle();
    assert.deepEqual(driver.takeUsed(0), [{ id: 0, len: 1025 }]);
    assert.equal(driver.ram[st], VIRTIO_BLK_S_OK);
    assert.deepEqual(driver.ram.slice(d1, d1 + 512), disk.bytes.slice(1536, 2048));
    assert.deepEqual(driver.ram.slice(d2, d2 + 512), disk.bytes.slice(2048, 2560));
    assert.ok(driver.readIsr() & 1);
    assert.equal(driver.readIsr(), 0, "reading the ISR clears it");
    // OUT through an indirect table.
    const payload = new Uint8Array(512).fill(0xab);
    const [, , st2] = driver.submit(0, 4, [
      { data: header(VIRTIO_BLK_T_OUT, 10) },
      { data: payload },
      { writeLength: 1 },
    ], { indirect: true });
    // FLUSH and GET_ID in the same notify.
    const [, st3] = driver.submit(0, 8, [{ data: header(VIRTIO_BLK_T_FLUSH, 0) }, {
      writeLength: 1,
    }]);
    const [, id, st4] = driver.submit(0, 12, [
      { data: header(VIRTIO_BLK_T_GET_ID, 0) },
      { writeLength: 20 },
      { writeLength: 1 },
    ]);
    driver.notify(0);
    await driver.settle();
    assert.equal(driver.takeUsed(0).length, 3);
    assert.deepEqual([driver.ram[st2], driver.ram[st3], driver.ram[st4]], [0, 0, 0]);
    assert.deepEqual(disk.bytes.slice(5120, 5632), payload);
    assert.equal(disk.flushes, 1);
    assert.equal(new TextDecoder().decode(driver.ram.slice(id, id + 12)), "vmkit-serial");
    assert.deepEqual([blk.stats.reads, blk.stats.writes, blk.stats.flushes], [1, 1, 1]);
  });
}

Deno.test("VirtioBlk config has capacity, seg_max, geometry, blk_size and writeback", () => {
  const { driver } = setup("modern");
  assert.equal(driver.config(BLK_CFG_CAPACITY, 4), 2048);
  assert.equal(driver.config(BLK_CFG_CAPACITY + 4, 4), 0);
  assert.equal(driver.config(BLK_CFG_SEG_MAX, 4), 254);
  assert.equal(driver.config(BLK_CFG_HEADS, 1), 16);
  assert.equal(driver.config(BLK_CFG_SECTORS, 1), 63);
  assert.equal(driver.config(BLK_CFG_BLK_SIZE, 4), 512);
  assert.equal(driver.config(BLK_CFG_WRITEBACK, 1), 1);
  assert.equal(driver.config(0x1000, 4), 0, "past the config structure");
});

Deno.test("VirtioBlk answers bad requests with IOERR or UNSUPP and keeps running", async () => {
  const { blk, driver } = setup("modern", { readOnly: false });
  driver.init(1);
  const cases: [number[], Uint8Array, number][] = [];
  const st = (addrs: number[]) => addrs[addrs.length - 1];
  // Past the end of the disk.
  cases.push([
    driver.submit(0, 0, [{ data: header(VIRTIO_BLK_T_IN, 2047) }, { writeLength: 1024 }, {
      writeLength: 1,
    }]),
    new Uint8Array(),
    VIRTIO_BLK_S_IOERR,
  ]);
  // Not a whole number of sectors.
  cases.push([
    driver.submit(0, 3, [{ data: header(VIRTIO_BLK_T_IN, 0) }, { writeLength: 100 }, {
      writeLength: 1,
    }]),
    new Uint8Array(),
    VIRTIO_BLK_S_IOERR,
  ]);
  // Unknown type.
  cases.push([
    driver.submit(0, 6, [{ data: header(99, 0) }, { writeLength: 1 }]),
    new Uint8Array(),
    VIRTIO_BLK_S_UNSUPP,
  ]);
  // A short header.
  cases.push([
    driver.submit(0, 8, [{ data: new Uint8Array(8) }, { writeLength: 1 }]),
    new Uint8Array(),
    VIRTIO_BLK_S_IOERR,
  ]);
  driver.notify(0);
  // A data buffer pointing outside RAM.
  const h = driver.alloc(16, header(VIRTIO_BLK_T_IN, 0));
  const s = driver.alloc(1);
  const r = driver.rings(0);
  driver.writeDesc(r.desc, 20, h, 16, 1, 21);
  driver.writeDesc(r.desc, 21, 0xfff00000, 512, 3, 22);
  driver.writeDesc(r.desc, 22, s, 1, 2);
  driver.publish(0, 20);
  driver.notify(0);
  await driver.settle();
  for (const [addrs, , status] of cases) assert.equal(driver.ram[st(addrs)], status);
  assert.equal(driver.ram[s], VIRTIO_BLK_S_IOERR);
  assert.equal(driver.takeUsed(0).length, 5);
  assert.equal(blk.stats.ioErrors, 4);
  assert.equal(blk.stats.unsupported, 1);
  assert.equal(driver.status() & 0x40, 0, "not broken");
});

Deno.test("VirtioBlk refuses writes to a read-only disk and offers VIRTIO_BLK_F_RO", async () => {
  const { disk, driver } = setup("legacy", { readOnly: true });
  assert.ok(driver.deviceFeatures()[0] & (1 << 5));
  driver.init(1);
  const before = disk.bytes.slice(0, 512);
  const [, , st] = driver.submit(0, 0, [
    { data: header(VIRTIO_BLK_T_OUT, 0) },
    { data: new Uint8Array(512) },
    { writeLength: 1 },
  ]);
  driver.notify(0);
  await driver.settle();
  assert.equal(driver.ram[st], VIRTIO_BLK_S_IOERR);
  assert.deepEqual(disk.bytes.slice(0, 512), before);
});

Deno.test("VirtioBlk write zeroes clears sectors; discard succeeds and, as discard=ignore, keeps data", async () => {
  const { disk, driver } = setup("modern");
  driver.init(1);
  const seg = (sector: number, count: number, flags = 0) => {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint32(0, sector, true);
    v.setUint32(8, count, true);
    v.setUint32(12, flags, true);
    return b;
  };
  const before = disk.bytes.slice(4096, 4608);
  const [, , st1] = driver.submit(0, 0, [
    { data: header(VIRTIO_BLK_T_WRITE_ZEROES, 0) },
    { data: seg(2, 3) },
    { writeLength: 1 },
  ]);
  const [, , st2] = driver.submit(0, 3, [
    { data: header(VIRTIO_BLK_T_DISCARD, 0) },
    { data: seg(8, 1) },
    { writeLength: 1 },
  ]);
  const [, , st3] = driver.submit(0, 6, [
    { data: header(VIRTIO_BLK_T_DISCARD, 0) },
    { data: seg(8, 1, 1) },
    { writeLength: 1 },
  ]);
  driver.notify(0);
  await driver.settle();
  assert.deepEqual([driver.ram[st1], driver.ram[st2], driver.ram[st3]], [
    0,
    0,
    VIRTIO_BLK_S_UNSUPP,
  ]);
  assert.ok(disk.bytes.slice(1024, 2560).every((b) => b === 0));
  assert.notEqual(disk.bytes[2561], 0);
  assert.deepEqual(disk.bytes.slice(4096, 4608), before);
});

Deno.test("VirtioBlk flushes every write once the driver turns the write cache off", async () => {
  const { disk, blk, driver } = setup("modern");
  driver.init(1);
  driver.writeConfig(BLK_CFG_WRITEBACK, 1, 0);
  assert.equal(blk.writeback, false);
  driver.submit(0, 0, [
    { data: header(VIRTIO_BLK_T_OUT, 1) },
    { data: new Uint8Array(512) },
    { writeLength: 1 },
  ]);
  driver.notify(0);
  await driver.settle();
  assert.equal(disk.flushes, 1);
});

Deno.test("VirtioBlk drops the completion of a request the driver reset away", async () => {
  const { driver } = setup("modern");
  driver.init(1);
  driver.submit(0, 0, [{ data: header(VIRTIO_BLK_T_IN, 0) }, { writeLength: 512 }, {
    writeLength: 1,
  }]);
  driver.notify(0);
  driver.setStatus(0);
  await driver.settle();
  assert.equal(driver.ram[driver.rings(0).used + 2], 0);
});

Deno.test("virtioBlkGeometry() follows the MBR's partition end, else 16 heads of 63 sectors", () => {
  assert.deepEqual(virtioBlkGeometry(2048, null), { cylinders: 2, heads: 16, sectors: 63 });
  assert.deepEqual(virtioBlkGeometry(16 * 63 * 100, null), {
    cylinders: 100,
    heads: 16,
    sectors: 63,
  });
  const mbr = new Uint8Array(512);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  mbr[0x1be + 5] = 3; // end head: 4 heads
  mbr[0x1be + 6] = 32; // end sector 32
  mbr[0x1be + 12] = 100; // nr_sects
  assert.deepEqual(virtioBlkGeometry(4 * 32 * 50, mbr), { cylinders: 50, heads: 4, sectors: 32 });
  mbr[0x1be + 5] = 254; // 255 heads: a translated geometry
  assert.deepEqual(virtioBlkGeometry(16 * 63 * 10, mbr), { cylinders: 10, heads: 16, sectors: 63 });
});
