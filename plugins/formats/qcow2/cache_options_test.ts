// Tests of the qcow2 cache size rules

import assert from "node:assert/strict";
import { cacheSizes } from "./cache_options.ts";
import { Layout } from "./layout.ts";

const layout = new Layout(16, 4, false);
const GIB = 1024 ** 3;

Deno.test("cacheSizes() covers the whole disk by default, up to 32 MiB", () => {
  const small = cacheSizes(layout, 8 * GIB, {});
  assert.equal(small.l2Entries * small.l2EntryBytes, 1024 * 1024);
  assert.equal(small.refcountEntries, 4);
  const huge = cacheSizes(layout, 8192 * GIB, {});
  assert.equal(huge.l2Entries * huge.l2EntryBytes, 32 * 1024 * 1024);
  assert.equal(huge.l2EntryBytes, 4096);
});

Deno.test("cacheSizes() splits cache-size between L2 and refcount caches as QEMU does", () => {
  const s = cacheSizes(layout, 8 * GIB, { "cache-size": 2 * 1024 * 1024 });
  assert.equal(s.l2Entries * s.l2EntryBytes, 1024 * 1024);
  assert.equal(s.refcountEntries, 16);
});

Deno.test("cacheSizes() refuses contradictory sizes with QEMU's messages", () => {
  assert.throws(
    () =>
      cacheSizes(layout, GIB, { "cache-size": 1, "l2-cache-size": 1, "refcount-cache-size": 1 }),
    /may not be set at the same time/,
  );
  assert.throws(
    () => cacheSizes(layout, GIB, { "cache-size": 1024, "l2-cache-size": 4096 }),
    /l2-cache-size may not exceed cache-size/,
  );
  assert.throws(
    () => cacheSizes(layout, GIB, { "l2-cache-entry-size": 1000 }),
    /L2 cache entry size must be a power of two between 512 and the cluster size \(65536\)/,
  );
});
