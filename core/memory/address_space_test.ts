import assert from "node:assert/strict";
import { AddressSpace, PAGE_MMIO, PAGE_RAM, PAGE_ROM, PAGE_SIZE } from "./address_space.ts";

const ones = {
  read: (_o: number, size: 1 | 2 | 4) => (size === 4 ? 0xffffffff : 0x5a),
  write() {},
};

Deno.test("AddressSpace.addMmio() refuses a fixed window over another fixed one of equal priority", () => {
  const mem = new AddressSpace();
  mem.addMmio("a", 0x1000, 0x2000, ones);
  assert.throws(() => mem.addMmio("b", 0x2000, 0x1000, ones), /overlaps region 'a'/);
});

Deno.test("AddressSpace with overlap: the later window of equal priority decodes, and moving it restores the one below", () => {
  const mem = new AddressSpace();
  const a = { read: () => 0xaa, write() {} };
  const b = { read: () => 0xbb, write() {} };
  mem.addMmio("a", 0x10000, 0x4000, a, { overlap: true });
  mem.addMmio("b", 0x11000, 0x1000, b, { overlap: true });
  assert.equal(mem.read8(0x10000), 0xaa);
  assert.equal(mem.read8(0x11000), 0xbb);
  assert.equal(mem.read8(0x12000), 0xaa);
  mem.remove("b");
  assert.equal(mem.read8(0x11000), 0xaa);
  // Re-adding "a" now makes it the later mapping: it covers "b".
  mem.addMmio("b", 0x11000, 0x1000, b, { overlap: true });
  mem.remove("a");
  mem.addMmio("a", 0x10000, 0x4000, a, { overlap: true });
  assert.equal(mem.read8(0x11000), 0xaa);
});

Deno.test("AddressSpace priority beats mapping order: a lower-priority window mapped later stays hidden", () => {
  const mem = new AddressSpace();
  const ram = mem.addRam("ram", 0, 1 << 20);
  ram[0x5000] = 0x11;
  mem.addRom("rom", 0x5000, new Uint8Array(0x1000).fill(0x22), { priority: 2, overlap: true });
  mem.addMmio("bar", 0x4000, 0x2000, ones, { priority: 1, overlap: true });
  assert.equal(mem.pageKind[4], PAGE_MMIO);
  assert.equal(mem.pageKind[5], PAGE_ROM);
  assert.equal(mem.read8(0x5000), 0x22);
  mem.remove("rom");
  assert.equal(mem.pageKind[5], PAGE_MMIO);
  mem.remove("bar");
  assert.equal(mem.pageKind[5], PAGE_RAM);
  assert.equal(mem.read8(0x5000), 0x11);
});

Deno.test("AddressSpace repaints only the pages of the region that moved", () => {
  const mem = new AddressSpace();
  mem.addRam("ram", 0, 512 << 20);
  const before = mem.pagesRepainted;
  mem.addMmio("bar", 0x1000_0000, 0x1000, ones, { priority: 1, overlap: true });
  mem.remove("bar");
  // Two changes of one page each: the RAM under it and the BAR, not 128K pages of RAM.
  assert.ok(mem.pagesRepainted - before <= 4, `${mem.pagesRepainted - before} pages`);
});

Deno.test("AddressSpace.dmaWrite() honours the flattened view: ROM and RAM above RAM win, MMIO in the way is refused", () => {
  const mem = new AddressSpace();
  const ram = mem.addRam("ram", 0, 1 << 20);
  // A write-protected shadow (ROM over the same bytes) in the middle of a RAM run.
  mem.addRom("shadow", 0x3000, ram.subarray(0x3000, 0x4000), { priority: 1, overlap: true });
  mem.dmaWrite(0x2000, new Uint8Array(0x3000).fill(0x77));
  assert.equal(ram[0x2fff], 0x77);
  assert.equal(ram[0x3000], 0, "the write-protected page keeps its bytes");
  assert.equal(ram[0x4000], 0x77);
  // A window of higher priority (the VGA window, a BAR over RAM) in the middle: refused,
  // and nothing before it is written either.
  const writes: number[] = [];
  mem.addMmio("vga", 0x8000, 0x1000, { read: () => 0, write: (o) => void writes.push(o) }, 1);
  assert.throws(
    () => mem.dmaWrite(0x7000, new Uint8Array(0x2000).fill(0x99)),
    /unbacked guest address 0x8000/,
  );
  assert.equal(ram[0x7000], 0);
  assert.equal(ram[0x8000], 0, "the RAM under the window is untouched");
  assert.deepEqual(writes, []);
  assert.equal(mem.isDmaAddressable(0x7000, 0x1000), true);
  assert.equal(mem.isDmaAddressable(0x7000, 0x1001), false);
  const out = new Uint8Array(0x1000);
  assert.throws(() => mem.dmaRead(0xfffff000, new Uint8Array(0x2000)), RangeError);
  mem.dmaRead(0x2800, out);
  assert.equal(out[0], 0x77);
});

Deno.test("AddressSpace.addRamAlias() with dirtyPages maps clean pages read-only and flags the first write", () => {
  const mem = new AddressSpace();
  const vram = new Uint8Array(4 * PAGE_SIZE);
  const dirty = new Uint8Array(4);
  mem.addRamAlias("vram", 0x10000, vram, { dirtyPages: dirty });
  // Clean pages read as RAM but are mapped read-only, so a CPU's write comes to the bus.
  assert.equal(mem.pageKind[0x10], PAGE_ROM);
  mem.write32(0x11004, 0xdeadbeef);
  assert.deepEqual([...dirty], [0, 1, 0, 0]);
  assert.equal(mem.pageKind[0x11], PAGE_RAM, "writable until the owner takes the change");
  assert.equal(mem.read32(0x11004), 0xdeadbeef);
  mem.write8(0x13fff, 7);
  mem.write16(0x10000, 0x1234);
  assert.deepEqual([...dirty], [1, 1, 0, 1]);
  mem.dmaWrite(0x12ffe, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual([...dirty], [1, 1, 1, 1], "DMA marks the pages it writes");
  assert.equal(vram[0x3000], 3);
  // The owner took the changes: the pages are protected again, and the CPUs are told.
  dirty.fill(0);
  const generation = mem.generation;
  mem.protectClean("vram");
  assert.ok(mem.generation > generation);
  assert.deepEqual([0x10, 0x11, 0x12, 0x13].map((p) => mem.pageKind[p]), [
    PAGE_ROM,
    PAGE_ROM,
    PAGE_ROM,
    PAGE_ROM,
  ]);
  mem.write8(0x12000, 9);
  assert.deepEqual([...dirty], [0, 0, 1, 0]);
  assert.equal(vram[0x2000], 9);
});
