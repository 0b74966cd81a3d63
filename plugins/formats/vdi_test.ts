// Tests of the vdi format: create layout, block allocation, reads of holes, probe and check

import assert from "node:assert/strict";
import type { CreateContext } from "../../core/block/driver.ts";
import { MemoryFileNode } from "../../core/block/test_util.ts";
import { createVdi, openVdi, probeVdi, VDI_UNALLOCATED } from "./vdi.ts";

async function newImage(sizeBytes: number, isStatic = false) {
  let file = new MemoryFileNode("a.vdi");
  const ctx = {
    createFile(filename: string, bytes: number) {
      file = new MemoryFileNode(filename, bytes);
      return Promise.resolve();
    },
    openFile: () => Promise.resolve(file),
  } as unknown as CreateContext;
  await createVdi("a.vdi", sizeBytes, { static: isStatic }, ctx);
  return { file, node: await openVdi(file) };
}

Deno.test("createVdi() lays out a dynamic image as header, unallocated map and no data", async () => {
  const { file, node } = await newImage(3 << 20);
  const bytes = file.bytes();
  assert.equal(bytes.length, 1024);
  assert.equal(probeVdi(bytes), 100);
  assert.equal(new DataView(bytes.buffer).getUint32(0x200, true), VDI_UNALLOCATED);
  assert.equal(node.size(), 3 << 20);
  assert.equal(node.clusterSize, 1 << 20);
});

Deno.test("createVdi() with static maps every block in order", async () => {
  const { file, node } = await newImage(1536 << 10, true);
  assert.equal(file.size(), 1024 + (2 << 20));
  const status = await node.blockStatus(0, 1536 << 10);
  assert.equal(status.allocated, true);
  assert.equal(status.bytes, 1536 << 10);
  assert.equal(status.hostOffset, 1024);
});

Deno.test("VdiNode.write() allocates a block at the end and reads back what was written", async () => {
  const { file, node } = await newImage(4 << 20);
  const data = new Uint8Array(1000).fill(0xab);
  await node.write((2 << 20) + 500, data);
  assert.equal(file.size(), 1024 + (1 << 20));
  const back = new Uint8Array(3000);
  await node.read((2 << 20) - 1000, back);
  assert.deepEqual(back.subarray(0, 1500), new Uint8Array(1500));
  assert.deepEqual(back.subarray(1500, 2500), data);
  assert.deepEqual(back.subarray(2500), new Uint8Array(500));
  // An unallocated block is zero, defined by the image itself (QEMU: zero and allocated).
  const hole = await node.blockStatus(0, 4 << 20);
  assert.deepEqual([hole.allocated, hole.zero, hole.data], [true, true, false]);
  const reopened = await openVdi(file);
  const again = new Uint8Array(1000);
  await reopened.read((2 << 20) + 500, again);
  assert.deepEqual(again, data);
  assert.equal((await reopened.check("none")).corruptions, 0);
});

Deno.test("VdiNode.check() reports a block used twice and a wrong allocated count", async () => {
  const { file } = await newImage(4 << 20);
  const node = await openVdi(file);
  await node.write(0, new Uint8Array(512).fill(1));
  // Map block 1 onto the data of block 0.
  file.writeSync(0x204, new Uint8Array([0, 0, 0, 0]));
  const result = await (await openVdi(file)).check("none");
  assert.equal(result.corruptions, 2);
  assert.deepEqual(result.messages, [
    "ERROR: block index 0 also used by 0",
    "ERROR: allocated blocks mismatch, is 2, should be 1",
  ]);
});

Deno.test("openVdi() refuses a file without the VDI signature", async () => {
  const { file } = await newImage(1 << 20);
  file.writeSync(0x40, new Uint8Array(4));
  await assert.rejects(openVdi(file), /not in VDI format/);
});

Deno.test("VdiNode.read() reads blocks contiguous in the file in one request and others apart", async () => {
  const { file, node } = await newImage(4 << 20);
  const mb = 1 << 20;
  // Blocks 2, 0, 1 allocated in that order: 0 and 1 sit next to each other in the file,
  // block 2 before them; block 3 stays unallocated.
  for (const [block, byte] of [[2, 0xc2], [0, 0xa0], [1, 0xb1]]) {
    await node.write(block * mb, new Uint8Array(mb).fill(byte));
  }
  const reads: [number, number][] = [];
  const read = file.read.bind(file);
  file.read = (offset: number, buf: Uint8Array) => {
    reads.push([offset, buf.length]);
    return read(offset, buf);
  };
  const buf = new Uint8Array(4 * mb).fill(0xee);
  await node.read(0, buf);
  assert.deepEqual(reads.map(([, n]) => n), [2 * mb, mb]);
  for (const [block, byte] of [[0, 0xa0], [1, 0xb1], [2, 0xc2], [3, 0]]) {
    assert.ok(
      buf.subarray(block * mb, (block + 1) * mb).every((b) => b === byte),
      `block ${block}`,
    );
  }
  // A read that starts inside a block and ends inside the next one.
  const part = new Uint8Array(mb);
  await node.read(mb / 2, part);
  assert.equal(part[0], 0xa0);
  assert.equal(part[mb - 1], 0xb1);
});

Deno.test("VdiNode.readSync() and writeSync() give what read() and write() give", async () => {
  const { node } = await newImage(4 << 20);
  const mb = 1 << 20;
  node.writeSync(2 * mb + 100, new Uint8Array(mb).fill(0x5a)); // blocks 2 and 3
  node.writeSync(0, new Uint8Array(10).fill(0x11));
  const sync = new Uint8Array(4 * mb).fill(0xee);
  node.readSync(0, sync);
  const viaAsync = new Uint8Array(4 * mb).fill(0xee);
  await node.read(0, viaAsync);
  assert.deepEqual(sync, viaAsync);
  assert.equal(sync[9], 0x11);
  assert.equal(sync[mb], 0, "block 1 unallocated reads as zeroes");
  assert.equal(sync[2 * mb + 99], 0);
  assert.equal(sync[2 * mb + 100], 0x5a);
  assert.equal(sync[3 * mb + 99], 0x5a);
  assert.throws(() => node.readSync(4 * mb - 1, new Uint8Array(2)), /out of range|Request/);
});
