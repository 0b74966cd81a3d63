import assert from "node:assert/strict";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./constants.ts";
import { MAX_INDIRECT_DESCRIPTORS, needEvent, VirtQueue, VirtQueueError } from "./queue.ts";

const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;

function setup(size = 8): { mem: AddressSpace; q: VirtQueue } {
  const mem = new AddressSpace();
  mem.addRam("ram", 0, 1 << 20);
  const q = new VirtQueue(mem, 0, size);
  Object.assign(q.s, { desc: DESC, avail: AVAIL, used: USED });
  q.enable();
  return { mem, q };
}

function desc(
  mem: AddressSpace,
  table: number,
  i: number,
  addr: number,
  len: number,
  flags: number,
  next = 0,
) {
  mem.write32(table + 16 * i, addr);
  mem.write32(table + 16 * i + 4, 0);
  mem.write32(table + 16 * i + 8, len);
  mem.write16(table + 16 * i + 12, flags);
  mem.write16(table + 16 * i + 14, next);
}

function offer(mem: AddressSpace, q: VirtQueue, heads: number[]): void {
  let idx = mem.read16(AVAIL + 2);
  for (const h of heads) {
    mem.write16(AVAIL + 4 + 2 * (idx % q.s.size), h);
    idx = (idx + 1) & 0xffff;
  }
  mem.write16(AVAIL + 2, idx);
}

Deno.test("VirtQueue.pop() walks a chain of readable then writable descriptors", () => {
  const { mem, q } = setup();
  desc(mem, DESC, 3, 0x10000, 16, VIRTQ_DESC_F_NEXT, 5);
  desc(mem, DESC, 5, 0x11000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
  desc(mem, DESC, 6, 0x12000, 1, VIRTQ_DESC_F_WRITE);
  offer(mem, q, [3]);
  assert.equal(q.pending(), 1);
  const chain = q.pop()!;
  assert.equal(chain.head, 3);
  assert.deepEqual(chain.readable, [{ addr: 0x10000, len: 16 }]);
  assert.deepEqual(chain.writable, [{ addr: 0x11000, len: 512 }, { addr: 0x12000, len: 1 }]);
  assert.equal(chain.writableBytes, 513);
  assert.equal(q.pop(), null);
});

Deno.test("VirtQueue.pop() follows an indirect table", () => {
  const { mem, q } = setup();
  const table = 0x8000;
  desc(mem, table, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
  desc(mem, table, 1, 0x10010, 8, VIRTQ_DESC_F_WRITE);
  desc(mem, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT);
  offer(mem, q, [0]);
  const chain = q.pop()!;
  assert.equal(chain.readableBytes, 4);
  assert.equal(chain.writableBytes, 8);
});

Deno.test("VirtQueue.pop() refuses loops, bad indexes, nested indirect and bad order", () => {
  const cases: [string, (mem: AddressSpace) => void, number, RegExp][] = [
    [
      "loop",
      (m) => {
        desc(m, DESC, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
        desc(m, DESC, 1, 0x10000, 4, VIRTQ_DESC_F_NEXT, 0);
      },
      0,
      /loops/,
    ],
    ["next out of range", (m) => desc(m, DESC, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 99), 0, />= 8/],
    ["head out of range", () => {}, 42, /head descriptor 42/],
    [
      "nested indirect",
      (m) => {
        desc(m, 0x8000, 0, 0x9000, 16, VIRTQ_DESC_F_INDIRECT);
        desc(m, DESC, 0, 0x8000, 16, VIRTQ_DESC_F_INDIRECT);
      },
      0,
      /nested indirect/,
    ],
    [
      "indirect length",
      (m) => desc(m, DESC, 0, 0x8000, 24, VIRTQ_DESC_F_INDIRECT),
      0,
      /indirect table length/,
    ],
    [
      "huge indirect",
      (m) => {
        desc(m, DESC, 0, 0x8000, 16 * (MAX_INDIRECT_DESCRIPTORS + 1), VIRTQ_DESC_F_INDIRECT);
      },
      0,
      /indirect table length/,
    ],
    [
      "readable after writable",
      (m) => {
        desc(m, DESC, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
        desc(m, DESC, 1, 0x10000, 4, 0);
      },
      0,
      /readable descriptor after a writable/,
    ],
    [
      "indirect table outside RAM",
      (m) => desc(m, DESC, 0, 0xfff00000, 16, VIRTQ_DESC_F_INDIRECT),
      0,
      /not RAM/,
    ],
  ];
  for (const [name, layout, head, error] of cases) {
    const { mem, q } = setup();
    layout(mem);
    offer(mem, q, [head]);
    assert.throws(
      () => q.pop(),
      (e: unknown) => e instanceof VirtQueueError && error.test(e.message),
      name,
    );
  }
});

Deno.test("VirtQueue.pending() refuses an avail index that ran more than a queue ahead", () => {
  const { mem, q } = setup(8);
  mem.write16(AVAIL + 2, 9);
  assert.throws(() => q.pending(), VirtQueueError);
});

Deno.test("VirtQueue.push() writes the used element before publishing the index", () => {
  const { mem, q } = setup();
  q.push(4, 513);
  q.push(2, 0);
  assert.equal(mem.read16(USED + 2), 2);
  assert.deepEqual([mem.read32(USED + 4), mem.read32(USED + 8)], [4, 513]);
  assert.deepEqual([mem.read32(USED + 12), mem.read32(USED + 16)], [2, 0]);
});

Deno.test("VirtQueue.needsInterrupt() honours NO_INTERRUPT, and used_event with EVENT_IDX", () => {
  const { mem, q } = setup(8);
  q.push(0, 0);
  assert.equal(q.needsInterrupt(), true);
  mem.write16(AVAIL, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT
  assert.equal(q.needsInterrupt(), false);
  q.eventIdx = true;
  mem.write16(AVAIL + 4 + 2 * 8, 2); // used_event: interrupt once used idx passes 2
  assert.equal(q.needsInterrupt(), true); // first check after enabling: always
  q.push(1, 0); // used idx 2
  assert.equal(q.needsInterrupt(), false);
  q.push(2, 0); // used idx 3 steps over 2
  assert.equal(q.needsInterrupt(), true);
});

Deno.test("VirtQueue.pop() publishes avail_event with EVENT_IDX once the queue is empty", () => {
  const { mem, q } = setup(8);
  q.eventIdx = true;
  desc(mem, DESC, 0, 0x10000, 4, 0);
  offer(mem, q, [0, 0]);
  q.pop();
  q.pop();
  assert.equal(q.pop(), null);
  assert.equal(mem.read16(USED + 4 + 8 * 8), 2);
});

Deno.test("needEvent() is vring_need_event with 16-bit wrap-around", () => {
  assert.equal(needEvent(0, 1, 0), true);
  assert.equal(needEvent(5, 5, 4), false);
  assert.equal(needEvent(0xffff, 0, 0xfffe), true);
  assert.equal(needEvent(3, 10, 5), false);
});

Deno.test("VirtQueue.setLegacyPfn() lays the rings out on 4 KiB pages", () => {
  const mem = new AddressSpace();
  mem.addRam("ram", 0, 1 << 20);
  const q = new VirtQueue(mem, 0, 256);
  q.setLegacyPfn(0x10);
  assert.equal(q.s.desc, 0x10000);
  assert.equal(q.s.avail, 0x11000);
  assert.equal(q.s.used, 0x12000);
  assert.equal(q.pfn, 0x10);
});

Deno.test("VirtQueue.readFrom() and writeTo() cross segment boundaries and refuse MMIO", () => {
  const { mem, q } = setup();
  mem.addMmio("mmio", 0x200000, 0x1000, { read: () => 0, write: () => {} });
  const chain = {
    head: 0,
    readable: [{ addr: 0x10000, len: 3 }, { addr: 0x20000, len: 5 }],
    writable: [{ addr: 0x200000, len: 4 }],
    readableBytes: 8,
    writableBytes: 4,
  };
  for (let i = 0; i < 3; i++) mem.write8(0x10000 + i, i + 1);
  for (let i = 0; i < 5; i++) mem.write8(0x20000 + i, i + 4);
  const out = new Uint8Array(6);
  assert.equal(q.readFrom(chain, 1, out), 6);
  assert.deepEqual([...out], [2, 3, 4, 5, 6, 7]);
  assert.throws(() => q.writeTo(chain, 0, new Uint8Array(4)), RangeError);
});
