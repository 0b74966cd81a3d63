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

Deno.test("Refcounts.allocClusters() counts new clusters and grows the table when full", () => {
  const layout = new Layout(9, 4, false); // 512 B clusters: 256 refcounts per block
  const store = memoryStore(3 * 512);
  const disk = store.bytes();
  new DataView(disk.buffer).setUint32(512 + 4, 1024); // table -> block at cluster 2
  for (let c = 0; c < 3; c++) new DataView(disk.buffer).setUint16(1024 + c * 2, 1);
  const file = { ...store, node: null as never, size: () => store.bytes().length };
  let moved = 0;
  const rc = new Refcounts(layout, file, {
    cacheEntries: 4,
    location: { offset: 512, clusters: 1 },
    onTableMoved: () => moved++,
  });
  const first = rc.allocClusters(1);
  assert.equal(first, 3 * 512);
  assert.equal(rc.get(3), 1);
  // 64 table entries cover 64 * 256 clusters; ask for far more to force growth.
  const far = rc.allocClusters(64 * 256);
  assert.ok(moved >= 1);
  assert.equal(rc.get(far / 512), 1);
  assert.equal(rc.get(far / 512 + 64 * 256 - 1), 1);
});
