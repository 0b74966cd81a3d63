// Tests of the metadata cache: LRU eviction, dirty write-back and flush dependencies

import assert from "node:assert/strict";
import { MetadataCache } from "./metadata_cache.ts";
import { memoryStore } from "./test_util.ts";

Deno.test("MetadataCache.get() reads a slice once and then answers from memory", () => {
  const store = memoryStore();
  store.bytes()[512] = 9;
  const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
  assert.equal(cache.get(512).data[0], 9);
  assert.equal(cache.get(512).data[0], 9);
  assert.equal(cache.misses, 1);
  assert.equal(cache.hits, 1);
});

Deno.test("MetadataCache.get() evicts the least recently used entry", () => {
  const store = memoryStore();
  const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
  cache.get(0);
  cache.get(512);
  cache.get(0);
  cache.get(1024);
  assert.ok(cache.peek(0));
  assert.equal(cache.peek(512), undefined);
});

Deno.test("MetadataCache.markDirty() keeps a dirty entry until flush()", () => {
  const store = memoryStore();
  const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
  const e = cache.get(0);
  e.data[3] = 1;
  cache.markDirty(e);
  assert.equal(cache.dirtyCount, 1);
  assert.equal(store.bytes()[3], 0);
  cache.flush();
  assert.equal(cache.dirtyCount, 0);
  assert.equal(store.bytes()[3], 1);
});

Deno.test("MetadataCache.get() writes a dirty victim back before reusing its slot", () => {
  const store = memoryStore();
  const cache = new MetadataCache(store, { entries: 1, entryBytes: 512 });
  const e = cache.getEmpty(0);
  e.data[0] = 5;
  cache.markDirty(e);
  cache.get(512);
  assert.equal(store.bytes()[0], 5);
  assert.equal(cache.dirtyCount, 0);
});

Deno.test("MetadataCache.setDependency() flushes and syncs the other cache first", () => {
  const store = memoryStore();
  const refcounts = new MetadataCache(store, { entries: 2, entryBytes: 512, name: "refcount" });
  const l2 = new MetadataCache(store, { entries: 2, entryBytes: 512, name: "L2" });
  const r = refcounts.get(0);
  r.data[0] = 1;
  refcounts.markDirty(r);
  const t = l2.get(1024);
  t.data[0] = 2;
  l2.markDirty(t);
  l2.setDependency(refcounts);
  l2.flush();
  assert.deepEqual(store.writes, [[0, 512], [1024, 512]]);
  assert.equal(store.syncs, 1);
  assert.equal(refcounts.dirtyCount, 0);
});

Deno.test("MetadataCache.discard() drops an entry without writing it", () => {
  const store = memoryStore();
  const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
  const e = cache.get(0);
  e.data[0] = 1;
  cache.markDirty(e);
  cache.discard(0);
  cache.flush();
  assert.equal(store.writes.length, 0);
  assert.equal(cache.peek(0), undefined);
});

Deno.test("MetadataCache constructor refuses a size that is not a power of two", () => {
  assert.throws(
    () => new MetadataCache(memoryStore(), { entries: 1, entryBytes: 1000 }),
    RangeError,
  );
});

Deno.test("MetadataCache.setDependency() settles a reverse dependency first, so no cycle forms", () => {
  const store = memoryStore();
  const l2 = new MetadataCache(store, { entries: 2, entryBytes: 512, name: "L2" });
  const refcount = new MetadataCache(store, { entries: 2, entryBytes: 512, name: "refcount" });
  // A new cluster: the L2 entry waits for its refcount.
  const r = refcount.get(0);
  refcount.markDirty(r);
  l2.setDependency(refcount);
  const e = l2.get(4096);
  l2.markDirty(e);
  // A freed cluster: the refcount now waits for the L2 entry, so the pending rise goes out first.
  refcount.setDependency(l2);
  assert.deepEqual(store.writes, [[0, 512]]);
  assert.equal(store.syncs, 1);
  const r2 = refcount.get(512);
  refcount.markDirty(r2);
  refcount.flush();
  assert.deepEqual(store.writes, [[0, 512], [4096, 512], [512, 512]]);
});

Deno.test("MetadataCache.setDependsOnFlush() syncs the store before the next write-back", () => {
  const store = memoryStore();
  const cache = new MetadataCache(store, { entries: 2, entryBytes: 512 });
  const e = cache.get(0);
  cache.markDirty(e);
  cache.setDependsOnFlush();
  cache.flush();
  assert.equal(store.syncs, 1);
  cache.markDirty(cache.get(0));
  cache.flush();
  assert.equal(store.syncs, 1);
});
