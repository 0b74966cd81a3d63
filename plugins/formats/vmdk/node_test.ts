// Tests of the VMDK node: grain allocation, zeroed grains, stream rules, split extents, backing

import assert from "node:assert/strict";
import { MemoryFileNode } from "../../../core/block/test_util.ts";
import { createVmdk } from "./create.ts";
import { memoryContexts, vmwareStream } from "./test_util.ts";

const MiB = 1 << 20;

function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

Deno.test("VmdkNode.write() allocates a grain at the file end and maps it in both grain tables", async () => {
  const { create, files, open } = memoryContexts();
  await createVmdk("a.vmdk", 10 * MiB, {}, create);
  const file = files.get("a.vmdk")!;
  assert.equal(file.size(), 0x10000);
  const node = await open("a.vmdk");
  const cidBefore = node.cid;
  const data = pattern(1000, 1);
  await node.write(65536 * 3 + 100, data);
  assert.equal(file.size(), 0x20000);
  const reopened = await open("a.vmdk");
  const back = new Uint8Array(65536);
  await reopened.read(65536 * 3, back);
  assert.deepEqual(back.subarray(100, 1100), data);
  assert.equal(back[0], 0);
  const st = await reopened.blockStatus(65536 * 3, 65536);
  assert.equal(st.allocated, true);
  assert.equal(st.hostOffset, 0x10000);
  assert.equal((await reopened.blockStatus(0, 10 * MiB)).bytes, 65536 * 3);
  // The first write after opening gives the image a new content ID.
  assert.equal(reopened.cid, node.cid);
  assert.notEqual(node.cid, cidBefore);
});

Deno.test("VmdkNode.writeZeroes() sets zeroed grain entries when zeroed_grain is on", async () => {
  const { create, files, open } = memoryContexts();
  await createVmdk("z.vmdk", 2 * MiB, { zeroed_grain: true }, create);
  const node = await open("z.vmdk");
  await node.write(0, pattern(4 * 65536, 2));
  const before = files.get("z.vmdk")!.size();
  await node.writeZeroes(65536, 2 * 65536);
  assert.equal(files.get("z.vmdk")!.size(), before);
  const st = await node.blockStatus(65536, 4 * 65536);
  assert.deepEqual([st.allocated, st.zero, st.data, st.bytes], [true, true, false, 2 * 65536]);
  const back = new Uint8Array(4 * 65536);
  await node.read(0, back);
  assert.ok(back.subarray(65536, 3 * 65536).every((b) => b === 0));
  assert.deepEqual(back.subarray(3 * 65536), pattern(4 * 65536, 2).subarray(3 * 65536));
});

Deno.test("VmdkNode.write() on streamOptimized takes whole grains once, compressed", async () => {
  const { create, open } = memoryContexts();
  await createVmdk("s.vmdk", MiB + 4096, { subformat: "streamOptimized" }, create);
  const node = await open("s.vmdk");
  assert.equal(node.needsCompressedWrites, true);
  const grain = new Uint8Array(65536).fill(0x41);
  await node.write(0, grain);
  await assert.rejects(node.write(0, grain), /allocated cluster for streamOptimized/);
  await assert.rejects(node.write(65536, grain.subarray(0, 512)), /whole grains only/);
  // The last grain of the disk may be short.
  await node.write(MiB, grain.subarray(0, 4096));
  const reopened = await open("s.vmdk");
  const back = new Uint8Array(MiB + 4096);
  await reopened.read(0, back);
  assert.ok(back.subarray(0, 65536).every((b) => b === 0x41));
  assert.ok(back.subarray(65536, MiB).every((b) => b === 0));
  assert.ok(back.subarray(MiB).every((b) => b === 0x41));
  assert.equal((await reopened.blockStatus(0, 1)).compressed, true);
});

Deno.test("openVmdk() reads a VMware stream with its grain directory in the footer", async () => {
  const { files, open } = memoryContexts();
  const data = new Uint8Array(3 * MiB);
  data.set(pattern(70000, 3), 5000);
  data.set(pattern(4096, 4), 2 * MiB + 512);
  const stream = new MemoryFileNode("stream.vmdk", 0);
  stream.writeSync(0, vmwareStream(data));
  files.set("stream.vmdk", stream);
  const node = await open("stream.vmdk");
  assert.equal(node.size(), 3 * MiB);
  const back = new Uint8Array(3 * MiB);
  await node.read(0, back);
  assert.deepEqual(back, data);
  assert.equal(node.formatInfo().data["create-type"], "streamOptimized");
});

Deno.test("createVmdk() splits twoGbMaxExtentFlat into 2 GiB files named like QEMU's", async () => {
  const { create, files, open } = memoryContexts();
  await createVmdk("dir/d.vmdk", 5 * 1024 * MiB, { subformat: "twoGbMaxExtentFlat" }, create);
  assert.deepEqual([...files.keys()].sort(), [
    "dir/d-f001.vmdk",
    "dir/d-f002.vmdk",
    "dir/d-f003.vmdk",
    "dir/d.vmdk",
  ]);
  // The memory context resolves names as given: point the descriptor's names at the files.
  const text = new TextDecoder().decode(files.get("dir/d.vmdk")!.bytes());
  assert.match(text, /RW 4194304 FLAT "d-f001.vmdk" 0\nRW 4194304 FLAT "d-f002.vmdk" 0\n/);
  for (const n of [1, 2, 3]) files.set(`d-f00${n}.vmdk`, files.get(`dir/d-f00${n}.vmdk`)!);
  const node = await open("dir/d.vmdk");
  const data = pattern(8192, 5);
  await node.write(2 * 1024 * MiB - 4096, data);
  const back = new Uint8Array(8192);
  await node.read(2 * 1024 * MiB - 4096, back);
  assert.deepEqual(back, data);
  const f2 = new Uint8Array(4096);
  files.get("dir/d-f002.vmdk")!.readSync(0, f2);
  assert.deepEqual(f2, data.subarray(4096));
});

Deno.test("VmdkNode.read() takes unwritten grains from the backing vmdk", async () => {
  const { create, open } = memoryContexts();
  await createVmdk("base.vmdk", MiB, {}, create);
  const base = await open("base.vmdk");
  await base.write(0, pattern(MiB, 6));
  await base.close();
  await createVmdk("top.vmdk", MiB, { backing_file: "base.vmdk", backing_fmt: "vmdk" }, create);
  const top = await open("top.vmdk");
  assert.equal(top.backingFilename, "base.vmdk");
  await top.write(65536 + 10, new Uint8Array([1, 2, 3]));
  const back = new Uint8Array(MiB);
  await top.read(0, back);
  const expected = pattern(MiB, 6);
  expected.set([1, 2, 3], 65536 + 10);
  assert.deepEqual(back, expected);
});

Deno.test("VmdkNode.writeCompressed() of nothing ends a stream at a whole sector, as QEMU", async () => {
  const { create, files, open } = memoryContexts();
  await createVmdk("s.vmdk", 2 * 65536, { subformat: "streamOptimized" }, create);
  const node = await open("s.vmdk");
  // Incompressible bytes: the record (marker and deflated grain) outgrows its grain and ends
  // mid-sector.
  const noise = crypto.getRandomValues(new Uint8Array(65536));
  await node.writeCompressed(0, noise);
  const file = files.get("s.vmdk")!;
  const end = file.size();
  assert.notEqual(end % 512, 0);
  await node.writeCompressed(0, new Uint8Array(0));
  assert.equal(file.size(), Math.ceil(end / 512) * 512);
  // A second end-of-stream changes nothing; the grain reads back.
  await node.writeCompressed(0, new Uint8Array(0));
  assert.equal(file.size(), Math.ceil(end / 512) * 512);
  const back = new Uint8Array(65536);
  await (await open("s.vmdk")).read(0, back);
  assert.deepEqual(back, noise);
});
