import assert from "node:assert/strict";
import { BALLOON_CFG_ACTUAL, BALLOON_CFG_NUM_PAGES, VirtioBalloon } from "./balloon.ts";
import { TestDriver } from "./test_util.ts";

function pfns(...list: number[]): Uint8Array {
  const b = new Uint8Array(4 * list.length);
  list.forEach((p, i) => new DataView(b.buffer).setUint32(4 * i, p, true));
  return b;
}

Deno.test("VirtioBalloon takes pages on inflate (zeroing them), gives them back on deflate", () => {
  const balloon = new VirtioBalloon();
  const d = new TestDriver(balloon, "modern");
  d.init(3);
  d.ram.fill(0x77, 0x200000, 0x202000);
  d.submit(0, 0, [{ data: pfns(0x200, 0x201, 0xfffff) }]);
  d.notify(0);
  assert.equal(d.takeUsed(0).length, 1);
  assert.deepEqual([...balloon.inflated].sort(), [0x200, 0x201]);
  assert.ok(d.ram.subarray(0x200000, 0x202000).every((b) => b === 0));
  d.submit(1, 0, [{ data: pfns(0x201) }]);
  d.notify(1);
  assert.deepEqual([...balloon.inflated], [0x200]);
  d.writeConfig(BALLOON_CFG_ACTUAL, 4, 1);
  assert.equal(balloon.actualPages, 1);
});

Deno.test("VirtioBalloon.setTargetPages() updates num_pages and raises a config interrupt", () => {
  const balloon = new VirtioBalloon();
  const d = new TestDriver(balloon, "legacy");
  d.init(3);
  balloon.setTargetPages(256);
  assert.equal(d.config(BALLOON_CFG_NUM_PAGES, 4), 256);
  assert.equal(d.readIsr(), 2);
  d.writeConfig(BALLOON_CFG_NUM_PAGES, 4, 5);
  assert.equal(balloon.targetPages, 256, "num_pages is the device's");
});

Deno.test("VirtioBalloon keeps the stats buffer until requestStats() and reads the tags", () => {
  const balloon = new VirtioBalloon();
  const d = new TestDriver(balloon, "modern");
  d.init(3);
  const stats = new Uint8Array(20);
  const v = new DataView(stats.buffer);
  v.setUint16(0, 4, true); // free memory
  v.setUint32(2, 123456, true);
  v.setUint16(10, 5, true); // total memory
  v.setUint32(12, 0, true);
  v.setUint32(16, 1, true); // 2^32
  d.submit(2, 0, [{ data: stats }]);
  d.notify(2);
  assert.deepEqual(d.takeUsed(2), []);
  assert.equal(balloon.stats[4], 123456);
  assert.equal(balloon.stats[5], 2 ** 32);
  balloon.requestStats();
  assert.deepEqual(d.takeUsed(2), [{ id: 0, len: 0 }]);
});

Deno.test("VirtioBalloon inflate with one PFN repeated across a full queue zeroes that page once", () => {
  const balloon = new VirtioBalloon();
  const d = new TestDriver(balloon, "modern");
  d.init(3);
  const r = d.rings(0);
  // One 256 KiB buffer of 65536 copies of PFN 0x200, referenced by every chain: the
  // driver asks for 65536 x size page zeroings (32 GiB at size 128) in one notify.
  const list = d.alloc(1 << 18, pfns(...new Array(1 << 16).fill(0x200)));
  for (let i = 0; i < r.size; i++) {
    d.writeDesc(r.desc, i, list, 1 << 18, 0);
    d.publish(0, i);
  }
  d.ram.fill(0x77, 0x200000, 0x201000);
  d.notify(0);
  assert.equal(d.takeUsed(0).length, r.size);
  assert.equal(balloon.pagesZeroed, 1);
  assert.ok(d.ram.subarray(0x200000, 0x201000).every((b) => b === 0));
  assert.deepEqual([...balloon.inflated], [0x200]);
  assert.equal(d.status() & 0x40, 0, "the device keeps running");
});

Deno.test("VirtioBalloon.onActualChange() hears each new actual the driver writes, once", () => {
  const balloon = new VirtioBalloon();
  const d = new TestDriver(balloon, "legacy");
  d.init(3);
  const seen: number[] = [];
  balloon.onActualChange(() => seen.push(balloon.actualPages));
  d.writeConfig(BALLOON_CFG_ACTUAL, 4, 256);
  d.writeConfig(BALLOON_CFG_ACTUAL, 4, 256); // the same value again: no change
  d.writeConfig(BALLOON_CFG_ACTUAL, 4, 0);
  // num_pages belongs to the device; writing it is no change of actual.
  d.writeConfig(BALLOON_CFG_NUM_PAGES, 4, 9);
  assert.deepEqual(seen, [256, 0]);
});
