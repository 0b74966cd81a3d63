// Tests of the VHD node: dynamic block allocation with the moving footer, and fixed disks

import assert from "node:assert/strict";
import { memoryCreateContext } from "./test_util.ts";
import { createVpc } from "./mod.ts";
import { openVpc } from "./node.ts";

Deno.test("VpcNode.write() appends a block with its bitmap and moves the footer after it", async () => {
  const { ctx, files } = memoryCreateContext();
  await createVpc("a.vhd", 8 << 20, {}, ctx);
  const file = files.get("a.vhd")!;
  const node = await openVpc(file);
  assert.equal(file.size(), 2560);
  const data = new Uint8Array(4096).fill(7);
  await node.write((4 << 20) + 512, data);
  // Bitmap (one sector) at the old footer place, then a 2 MiB block, then the footer.
  assert.equal(file.size(), 2048 + 512 + (2 << 20) + 512);
  const tail = file.bytes().subarray(file.size() - 512);
  assert.equal(new TextDecoder().decode(tail.subarray(0, 8)), "conectix");
  const reopened = await openVpc(file);
  const back = new Uint8Array(5120);
  await reopened.read(4 << 20, back);
  assert.deepEqual(back.subarray(0, 512), new Uint8Array(512));
  assert.deepEqual(back.subarray(512, 4608), data);
  // An unallocated block is zero, defined by the image itself (QEMU: zero and allocated).
  const hole = await reopened.blockStatus(0, node.size());
  assert.deepEqual([hole.allocated, hole.zero, hole.data], [true, true, false]);
  assert.equal((await reopened.blockStatus(4 << 20, 1)).allocated, true);
});

Deno.test("openVpc() finds a fixed disk's footer at the end of the file", async () => {
  const { ctx, files } = memoryCreateContext();
  await createVpc("f.vhd", 10 << 20, { subformat: "fixed" }, ctx);
  const node = await openVpc(files.get("f.vhd")!);
  assert.equal(node.size(), 10514432);
  assert.equal(node.clusterSize, undefined);
  await node.write(1000, new Uint8Array([1, 2, 3]));
  const back = new Uint8Array(3);
  await node.read(1000, back);
  assert.deepEqual(back, new Uint8Array([1, 2, 3]));
});
