import assert from "node:assert/strict";
import type { OpenContext } from "../../core/block/driver.ts";
import { MemoryFileNode } from "../../core/block/test_util.ts";
import { IoError } from "../../core/errors.ts";
import raw, { RawNode } from "./raw.ts";

const MAGIC = new TextEncoder().encode("EVIL");

/** A probe that calls a file "evil" when it starts with EVIL, raw otherwise. */
function probeFormat(header: Uint8Array): string {
  return MAGIC.every((b, i) => header[i] === b) ? "evil" : "raw";
}

function probedNode(sizeBytes = 8192, offset?: number): { file: MemoryFileNode; node: RawNode } {
  const file = new MemoryFileNode("disk.img", sizeBytes);
  return { file, node: new RawNode(file, { offset, probeFormat }) };
}

Deno.test("RawNode.write() refuses a write that makes a probed image probe as another format", async () => {
  const { file, node } = probedNode();
  await assert.rejects(
    node.write(0, MAGIC),
    (e: unknown) => e instanceof IoError && e.code === "EPERM",
  );
  assert.deepEqual(file.bytes().subarray(0, 4), new Uint8Array(4), "block 0 unchanged");
});

Deno.test("RawNode.write() lets benign writes to block 0 and every write past the window through", async () => {
  const { file, node } = probedNode();
  const mbr = new Uint8Array(512);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  await node.write(0, mbr);
  assert.equal(file.bytes()[511], 0xaa);
  await node.write(4096, MAGIC);
  assert.deepEqual(file.bytes().subarray(4096, 4100), MAGIC);
});

Deno.test("RawNode.write() judges a partial write by the whole window it leaves behind", async () => {
  const { file, node } = probedNode();
  // "EV" alone is harmless; "IL" after it would complete the magic.
  await node.write(0, MAGIC.subarray(0, 2));
  await assert.rejects(node.write(2, MAGIC.subarray(2)), /Operation not permitted/);
  assert.deepEqual(file.bytes().subarray(0, 4), new Uint8Array([0x45, 0x56, 0, 0]));
});

Deno.test("RawNode.write() serialises concurrent window writes so two halves cannot combine", async () => {
  const { file, node } = probedNode();
  const results = await Promise.allSettled([
    node.write(0, MAGIC.subarray(0, 2)),
    node.write(2, MAGIC.subarray(2)),
  ]);
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected"]);
  assert.notEqual(probeFormat(file.bytes()), "evil");
});

Deno.test("RawNode.writeZeroes() and discard() are checked like writes and pass when harmless", async () => {
  const { file, node } = probedNode();
  await file.write(0, new Uint8Array([1, 2, 3, 4]));
  await node.writeZeroes(0, 512);
  await node.discard(0, 512);
  assert.deepEqual(file.bytes().subarray(0, 4), new Uint8Array(4));
});

Deno.test("RawNode with offset= guards the file's window, not the guest's block 0", async () => {
  const { file, node } = probedNode(8192, 2);
  // Guest offset 0 is file byte 2: the guest can still finish a magic begun in the
  // file's first two bytes, and that is refused.
  await file.write(0, MAGIC.subarray(0, 2));
  await assert.rejects(node.write(0, MAGIC.subarray(2)), /Operation not permitted/);
  await node.write(4096, MAGIC);
});

Deno.test("RawNode without probeFormat (format=raw) writes anything to block 0", async () => {
  const file = new MemoryFileNode("disk.img", 8192);
  const node = new RawNode(file);
  assert.equal(node.restrictsBlockZero, false);
  await node.write(0, MAGIC);
  assert.deepEqual(file.bytes().subarray(0, 4), MAGIC);
});

Deno.test("raw.open() restricts only a probed image opened read-write, and prints nothing itself", async () => {
  const lines: string[] = [];
  const ctx = (probed: boolean): OpenContext => ({
    options: {},
    openBacking: () => Promise.reject(new Error("no backing")),
    openFile: () => Promise.reject(new Error("no files")),
    report: (line) => lines.push(line),
    probed,
    probeFormat,
  });
  const rw = await raw.open(new MemoryFileNode("d.img", 4096), {}, ctx(true));
  assert.equal((rw as RawNode).restrictsBlockZero, true);
  const ro = await raw.open(new MemoryFileNode("d.img", 4096, true), {}, ctx(true));
  const given = await raw.open(new MemoryFileNode("d.img", 4096), {}, ctx(false));
  assert.equal((ro as RawNode).restrictsBlockZero, false);
  assert.equal((given as RawNode).restrictsBlockZero, false);
  assert.deepEqual(lines, []);
});

Deno.test("RawNode.writeSync() refuses what write() refuses and writes the rest synchronously", () => {
  const { file, node } = probedNode();
  assert.throws(
    () => node.writeSync!(0, MAGIC),
    (e: unknown) => e instanceof IoError && e.code === "EPERM",
  );
  assert.deepEqual(file.bytes().subarray(0, 4), new Uint8Array(4), "block 0 unchanged");
  // Two writes, each harmless alone but combining into the magic, are judged together.
  node.writeSync!(2, MAGIC.subarray(2));
  assert.throws(() => node.writeSync!(0, MAGIC.subarray(0, 2)), /probe as evil/);
  node.writeSync!(4096, MAGIC);
  const back = new Uint8Array(4);
  node.readSync!(4096, back);
  assert.deepEqual(back, MAGIC);
  assert.throws(() => node.readSync!(8190, new Uint8Array(4)), /out of range/);
});

Deno.test("RawNode offers readSync/writeSync only over a file that has them", () => {
  const file = new MemoryFileNode("disk.img", 8192);
  const plain = { ...file, read: file.read.bind(file), size: () => 8192 } as never;
  const without = new RawNode(plain);
  assert.equal(without.readSync, undefined);
  assert.equal(without.writeSync, undefined);
  assert.equal(typeof new RawNode(file).readSync, "function");
});
