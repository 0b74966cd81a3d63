import assert from "node:assert/strict";
import { defaultBitmapGranularity, DirtyBitmap, persistentBitmapsSize } from "./dirty_bitmap.ts";

const MiB = 1 << 20;

function bitmap(granularity: number, sizeBytes = 4 * MiB, chunkBytes = 512): DirtyBitmap {
  return new DirtyBitmap("b", { granularity, sizeBytes, chunkBytes });
}

Deno.test("DirtyBitmap.setDirty() marks every granule the range touches", () => {
  const b = bitmap(65536);
  b.setDirty(65535, 2);
  b.setDirty(4 * MiB - 1, 100);
  assert.deepEqual([...b.dirtyRanges()], [[0, 131072], [4 * MiB - 65536, 65536]]);
});

Deno.test("DirtyBitmap.setDirty() across chunk boundaries sets whole bytes and partial ones", () => {
  const b = bitmap(512, 8 * MiB, 512); // 4096 granules per chunk
  b.setDirty(4095 * 512, 3 * 512);
  assert.deepEqual(b.chunkIndexes(), [0, 1]);
  assert.deepEqual([...b.dirtyRanges()], [[4095 * 512, 3 * 512]]);
  b.setDirty(0, 8 * MiB);
  assert.deepEqual([...b.dirtyRanges()], [[0, 8 * MiB]]);
});

Deno.test("DirtyBitmap.mergeFrom() of a finer bitmap sets each coarse granule it touches", () => {
  const fine = bitmap(4096);
  fine.setDirty(8192, 4096);
  fine.setDirty(3 * MiB, 1);
  const coarse = bitmap(MiB);
  coarse.mergeFrom(fine);
  assert.deepEqual([...coarse.dirtyRanges()], [[0, MiB], [3 * MiB, MiB]]);
});

Deno.test("DirtyBitmap.loadChunk() drops bits past the end and keeps a shared chunk unchanged", () => {
  const b = bitmap(65536, 100 * 65536 + 1);
  const shared = new Uint8Array(512).fill(0xff);
  b.loadChunk(0, shared, true);
  assert.deepEqual([...b.dirtyRanges()], [[0, 100 * 65536 + 1]]);
  assert.equal(shared[20], 0xff, "the shared array is not masked in place");
  const other = bitmap(65536);
  other.loadChunk(0, shared, true);
  other.setDirty(0, 1);
  assert.equal(shared[0], 0xff);
  other.clear();
  assert.ok(other.isEmpty());
});

Deno.test("DirtyBitmap.truncate() drops the bits past a smaller size", () => {
  const b = bitmap(65536);
  b.setDirty(0, 4 * MiB);
  b.truncate(MiB + 1);
  assert.deepEqual([...b.dirtyRanges()], [[0, MiB + 1]]);
  b.truncate(8 * MiB);
  b.setDirty(7 * MiB, 1);
  assert.deepEqual([...b.dirtyRanges()], [[0, MiB + 65536], [7 * MiB, 65536]]);
});

Deno.test("defaultBitmapGranularity() clamps the cluster size to 4 KiB .. 64 KiB", () => {
  assert.equal(defaultBitmapGranularity(512), 4096);
  assert.equal(defaultBitmapGranularity(2 * MiB), 65536);
  assert.equal(defaultBitmapGranularity(8192), 8192);
  assert.equal(defaultBitmapGranularity(undefined), 65536);
});

Deno.test("persistentBitmapsSize() counts data, table and directory clusters as QEMU's measure", () => {
  // qemu-img measure -O qcow2 of a 1 MiB image with bitmaps 'x' (4 KiB) and 'y' (512 B)
  // in 4 KiB clusters: 327680 for 64 KiB target clusters, 2560 for 512 B ones.
  const x = new DirtyBitmap("x", { granularity: 4096, sizeBytes: MiB, chunkBytes: 4096 });
  const y = new DirtyBitmap("y", { granularity: 512, sizeBytes: MiB, chunkBytes: 4096 });
  assert.equal(persistentBitmapsSize([x, y], 65536), 327680);
  assert.equal(persistentBitmapsSize([x, y], 512), 2560);
});

Deno.test("DirtyBitmap.mergeFrom() shares a shared chunk, and dirtyRanges() reads full bytes whole", () => {
  // 512-byte granules, 512-byte chunks: each chunk covers 2 MiB of a 4 MiB disk.
  const ones = new Uint8Array(512).fill(0xff);
  const source = bitmap(512, 4 * MiB);
  source.loadChunk(0, ones, true);
  const target = bitmap(512, 4 * MiB);
  target.mergeFrom(source);
  assert.equal(target.chunk(0), ones, "shared, not copied");
  assert.deepEqual([...target.dirtyRanges()], [[0, 2 * MiB]]);
  target.setDirty(2 * MiB + 512, 1);
  target.setDirty(100, 1);
  assert.equal(ones[0], 0xff);
  assert.deepEqual([...target.dirtyRanges()], [[0, 2 * MiB], [2 * MiB + 512, 512]]);
});
