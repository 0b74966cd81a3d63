// Hostile-guest tests of virtio-blk: rings in guest RAM that ask for more than the host should give
import assert from "node:assert/strict";
import type { BlockIo } from "../../../core/block/backend.ts";
import {
  MAX_BYTES_IN_FLIGHT,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VirtioBlk,
} from "./blk.ts";
import { VIRTIO_CONFIG_S_NEEDS_RESET } from "./constants.ts";
import { TestDriver } from "./test_util.ts";

/** A 1 GiB disk whose reads wait until the test releases them; it counts bytes asked for. */
class StalledDisk implements BlockIo {
  waiting: (() => void)[] = [];
  bytesRead = 0;
  size(): number {
    return 1 << 30;
  }
  read(_offset: number, buf: Uint8Array): Promise<void> {
    this.bytesRead += buf.length;
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  write(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const resolve of w) resolve();
  }
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  new DataView(h.buffer).setUint32(0, type, true);
  new DataView(h.buffer).setUint32(8, sector, true);
  return h;
}

const F_NEXT = 1, F_WRITE = 2;

Deno.test("VirtioBlk answers a read into buffers outside RAM with IOERR before allocating (one notify asking 16 GiB)", async () => {
  const disk = new StalledDisk();
  const blk = new VirtioBlk(disk, { readOnly: false });
  const driver = new TestDriver(blk, "modern");
  driver.init(1);
  const r = driver.rings(0);
  const h = driver.alloc(16, header(VIRTIO_BLK_T_IN, 0));
  const status = driver.alloc(r.size);
  const rssBefore = Deno.memoryUsage().rss;
  // Every chain: header, 64 MiB "buffer" at 3 GiB (no RAM there), status byte.
  for (let n = 0; n < r.size / 4; n++) {
    const d = 4 * n;
    driver.writeDesc(r.desc, d, h, 16, F_NEXT, d + 1);
    driver.writeDesc(r.desc, d + 1, 0xc000_0000, 64 << 20, F_WRITE | F_NEXT, d + 2);
    driver.writeDesc(r.desc, d + 2, status + n, 1, F_WRITE);
    driver.publish(0, d);
  }
  driver.notify(0);
  await driver.settle();
  assert.equal(disk.bytesRead, 0, "nothing was read for a buffer outside RAM");
  const used = driver.takeUsed(0);
  assert.equal(used.length, r.size / 4);
  for (let n = 0; n < r.size / 4; n++) assert.equal(driver.ram[status + n], VIRTIO_BLK_S_IOERR);
  assert.equal(blk.bytesInFlight, 0);
  assert.ok(Deno.memoryUsage().rss - rssBefore < 256 << 20, "host memory stays bounded");
  assert.equal(driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0, "the device keeps running");
});

Deno.test("VirtioBlk holds at most MAX_BYTES_IN_FLIGHT for valid requests and resumes as they complete", async () => {
  const disk = new StalledDisk();
  const blk = new VirtioBlk(disk, { readOnly: false });
  const driver = new TestDriver(blk, "modern");
  driver.init(1);
  const r = driver.rings(0);
  // 32 descriptors of 2 MiB, all over the same RAM: a legal 64 MiB read, 4 times.
  const buf = driver.alloc(2 << 20);
  const h = driver.alloc(16, header(VIRTIO_BLK_T_IN, 0));
  const status = driver.alloc(8);
  const perChain = 34;
  for (let n = 0; n < 4; n++) {
    const d = n * perChain;
    driver.writeDesc(r.desc, d, h, 16, F_NEXT, d + 1);
    for (let i = 1; i <= 32; i++) {
      driver.writeDesc(r.desc, d + i, buf, 2 << 20, F_WRITE | F_NEXT, d + i + 1);
    }
    driver.writeDesc(r.desc, d + 33, status + n, 1, F_WRITE);
    driver.publish(0, d);
  }
  driver.notify(0);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(blk.bytesInFlight, MAX_BYTES_IN_FLIGHT);
  assert.equal(disk.bytesRead, 64 << 20, "one request at a time");
  for (let round = 1; round <= 4; round++) {
    disk.release();
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
    assert.ok(blk.bytesInFlight <= MAX_BYTES_IN_FLIGHT);
  }
  await driver.settle();
  assert.equal(disk.bytesRead, 4 * (64 << 20));
  assert.equal(driver.takeUsed(0).length, 4);
  for (let n = 0; n < 4; n++) assert.equal(driver.ram[status + n], VIRTIO_BLK_S_OK);
});

Deno.test("VirtioBlk marks the device NEEDS_RESET when the driver exceeds the queue size with chains in use", async () => {
  const disk = new StalledDisk();
  const blk = new VirtioBlk(disk, { readOnly: false });
  const driver = new TestDriver(blk, "modern");
  driver.init(1, undefined, 8);
  const r = driver.rings(0);
  assert.equal(r.size, 8);
  const h = driver.alloc(16, header(VIRTIO_BLK_T_IN, 0));
  const data = driver.alloc(512);
  const status = driver.alloc(8);
  // One chain (descriptors 0-2) made available again and again: legal while the
  // device has handed each back, past the queue size while it holds them all.
  driver.writeDesc(r.desc, 0, h, 16, F_NEXT, 1);
  driver.writeDesc(r.desc, 1, data, 512, F_WRITE | F_NEXT, 2);
  driver.writeDesc(r.desc, 2, status, 1, F_WRITE);
  for (let n = 0; n < 8; n++) driver.publish(0, 0);
  driver.notify(0);
  assert.equal(
    driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET,
    0,
    "8 in use is the limit, not past it",
  );
  // Eight more while none has completed: the ninth pop is past the queue size.
  for (let n = 0; n < 8; n++) driver.publish(0, 0);
  driver.notify(0);
  assert.ok(driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET, "Virtqueue size exceeded");
  assert.equal(disk.bytesRead, 8 * 512, "nothing more was started");
  disk.release();
  await driver.settle();
  // The driver resets the device and it works again.
  driver.init(1, undefined, 8);
  assert.equal(driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
});
