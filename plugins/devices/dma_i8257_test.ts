import assert from "node:assert/strict";
import type { DeviceContext } from "../../core/device.ts";
import { AddressSpace } from "../../core/memory/address_space.ts";
import { PortIoSpace } from "../../core/memory/port_io.ts";
import { DmaI8257 } from "./dma_i8257.ts";

function rig() {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  const io = new PortIoSpace();
  const dma = new DmaI8257("dma", { memory, io } as unknown as DeviceContext);
  const out = (port: number, value: number) => io.out(port, 1, value);
  const word = (port: number) => io.in(port, 1) | io.in(port, 1) << 8;
  return { ram, io, dma, out, word };
}

/** Channel 2 at `address` (page too) for `bytes`, with `mode`, left masked. */
function program(r: ReturnType<typeof rig>, address: number, bytes: number, mode: number): void {
  r.out(0x0a, 0x06);
  r.out(0x0c, 0);
  r.out(0x04, address & 0xff);
  r.out(0x04, address >> 8 & 0xff);
  r.out(0x05, (bytes - 1) & 0xff);
  r.out(0x05, (bytes - 1) >> 8 & 0xff);
  r.out(0x0b, mode);
  r.out(0x81, address >> 16);
}

Deno.test("DmaI8257 reads back the address and count a transfer advanced, through the byte flip-flop", () => {
  const r = rig();
  program(r, 0x12340, 0x100, 0x46);
  r.out(0x0a, 0x02);
  assert.equal(r.dma.remaining(2), 0x100);
  assert.equal(r.dma.writeMemory(2, new Uint8Array(0x40).fill(7)), 0x40);
  r.out(0x0c, 0);
  assert.equal(r.word(0x04), 0x2380, "address + 0x40");
  assert.equal(r.word(0x05), 0xbf, "count - 0x40");
  assert.ok(r.ram.subarray(0x12340, 0x12380).every((b) => b === 7));
  assert.equal(r.io.in(0x81, 1), 1, "the page register");
});

Deno.test("DmaI8257 stops at the terminal count, reports it once in the status register", () => {
  const r = rig();
  program(r, 0x20000, 16, 0x46);
  r.out(0x0a, 0x02);
  assert.equal(r.dma.writeMemory(2, new Uint8Array(64).fill(9)), 16, "no byte past the count");
  assert.equal(r.ram[0x20010], 0);
  assert.equal(r.dma.remaining(2), 0);
  assert.equal(r.io.in(0x08, 1) & 0x04, 0x04);
  assert.equal(r.io.in(0x08, 1) & 0x04, 0, "cleared by the read");
});

Deno.test("DmaI8257 runs a held transfer only while the channel is unmasked", () => {
  const r = rig();
  program(r, 0x20000, 16, 0x46);
  let runs = 0;
  r.dma.hold(2, () => runs++);
  assert.equal(runs, 0, "masked");
  r.out(0x0a, 0x02);
  assert.equal(runs, 1);
  r.dma.release(2);
  r.out(0x0a, 0x06);
  r.out(0x0a, 0x02);
  assert.equal(runs, 1, "released");
});

Deno.test("DmaI8257 drops bytes bound past RAM and moves backwards in decrement mode", () => {
  const r = rig();
  // Page 0xfe: 0xfe0000, far past the 1 MiB of RAM; the count still runs down.
  program(r, 0xfe0000, 32, 0x46);
  r.out(0x0a, 0x02);
  assert.equal(r.dma.writeMemory(2, new Uint8Array(32).fill(1)), 32);
  assert.equal(r.dma.remaining(2), 0);
  program(r, 0x30010, 4, 0x66); // decrement, to memory
  r.out(0x0a, 0x02);
  r.dma.writeMemory(2, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual([...r.ram.subarray(0x3000d, 0x30011)], [4, 3, 2, 1]);
  const back = new Uint8Array(4);
  program(r, 0x3000d, 4, 0x4a); // from memory
  r.out(0x0a, 0x02);
  assert.equal(r.dma.readMemory(2, back), 4);
  assert.deepEqual([...back], [4, 3, 2, 1]);
});
