// Tests of refcount entry widths and cluster allocation

import assert from "node:assert/strict";
import { memoryStore } from "../../../core/block/test_util.ts";
import { Layout } from "./layout.ts";
import { maxRefcount, readRefcount, Refcounts, writeRefcount } from "./refcount.ts";

Deno.test("writeRefcount() and readRefcount() round-trip every width from 1 to 64 bits", () => {
  for (let order = 0; order <= 6; order++) {
    const view = new DataView(new ArrayBuffer(512));
    const max = maxRefcount(order);
    for (let i = 0; i < 32; i++) writeRefcount(view, i, order, i % (Math.min(max, 7) + 1));
    for (let i = 0; i < 32; i++) {
      assert.equal(readRefcount(view, i, order), i % (Math.min(max, 7) + 1));
    }
  }
});

Deno.test("readRefcount() puts 1-bit entry 0 in the least significant bit", () => {
  const view = new DataView(new Uint8Array([0b00000101]).buffer);
  assert.deepEqual([0, 1, 2].map((i) => readRefcount(view, i, 0)), [1, 0, 1]);
});

/**
 * A 512-byte-cluster image's refcounts: the table at cluster 1, one block at cluster 2
 * counting clusters 0..2 (header, table, block).
 */
function smallImage(
  refcountOrder = 4,
  onTableMoved: () => void = () => {},
): Refcounts {
  const store = memoryStore(3 * 512);
  const disk = store.bytes();
  new DataView(disk.buffer).setUint32(512 + 4, 1024);
  const block = new DataView(disk.buffer, 1024, 512);
  for (let c = 0; c < 3; c++) writeRefcount(block, c, refcountOrder, 1);
  const file = { ...store, node: null as never, size: () => store.bytes().length };
  return new Refcounts(new Layout(9, refcountOrder, false), file, {
    cacheEntries: 4,
    location: { offset: 512, clusters: 1 },
    onTableMoved,
  });
}

Deno.test("Refcounts.allocClusters() counts new clusters and grows the table when full", () => {
  let moved = 0;
  const rc = smallImage(4, () => moved++);
  const first = rc.allocClusters(1);
  assert.equal(first, 3 * 512);
  assert.equal(rc.get(3), 1);
  // 64 table entries cover 64 * 256 clusters; ask for far more to force growth.
  const far = rc.allocClusters(64 * 256);
  assert.ok(moved >= 1);
  assert.equal(rc.get(far / 512), 1);
  assert.equal(rc.get(far / 512 + 64 * 256 - 1), 1);
});

Deno.test("Refcounts.allocClusters() puts a new refcount block after the run that reached its range", () => {
  const rc = smallImage();
  assert.equal(rc.allocClusters(247), 3 * 512); // clusters 3..249
  // 250..259 crosses into the second block's range (256..511): as QEMU's
  // alloc_refcount_block, the block takes the first free cluster after the run.
  assert.equal(rc.allocClusters(10), 250 * 512);
  assert.equal(rc.table[1], 260 * 512);
  assert.equal(rc.get(260), 1);
  assert.equal(rc.allocClusters(1), 261 * 512);
});

Deno.test("Refcounts.allocBytes() starts a new cluster when 1-bit refcounts are full", () => {
  const rc = smallImage(0);
  assert.equal(rc.allocBytes(100), 3 * 512);
  assert.equal(rc.allocBytes(100), 4 * 512);
  assert.equal(rc.get(3), 1);
});

/** Refcounts over a table of `clusters` clusters, at cluster 1, whose entries are `entries`. */
function withTable(
  clusterBits: number,
  clusters: number,
  entries: Record<number, number>,
): Refcounts {
  const cs = 1 << clusterBits;
  const store = memoryStore((1 + clusters) * cs);
  const view = new DataView(store.bytes().buffer);
  for (const [i, value] of Object.entries(entries)) {
    view.setUint32(cs + Number(i) * 8, Math.floor(value / 0x100000000));
    view.setUint32(cs + Number(i) * 8 + 4, value >>> 0);
  }
  const file = { ...store, node: null as never, size: () => store.bytes().length };
  return new Refcounts(new Layout(clusterBits, 4, false), file, {
    cacheEntries: 4,
    location: { offset: cs, clusters },
    onTableMoved: () => {},
  });
}

Deno.test("Refcounts reads every non-zero table entry, wherever the zero runs between them end", () => {
  // 64 clusters of table: 4096 entries, so entries fall in several scan chunks and sub-chunks.
  const entries = { 0: 512, 15: 1024, 16: 2 * 512, 511: 0x1_0000_0200, 512: 4096, 4095: 8192 };
  const rc = withTable(9, 64, entries);
  const expected = new Array(4096).fill(0);
  for (const [i, value] of Object.entries(entries)) expected[Number(i)] = value;
  assert.deepEqual(rc.table, expected);
});

Deno.test("Refcounts refuses a table entry that is not cluster aligned, far into a zero table", () => {
  // 64 KiB clusters: one cluster of table holds 8192 entries; entry 7000 points mid-cluster.
  assert.throws(() => withTable(16, 1, { 7000: 3 * 65536 + 4096 }), /unaligned refblock offset/);
  assert.equal(withTable(16, 1, { 7000: 3 * 65536 }).table[7000], 3 * 65536);
});
