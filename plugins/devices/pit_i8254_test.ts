import assert from "node:assert/strict";
import { EventLoop } from "../../core/event_loop.ts";
import { IrqLine } from "../../core/irq.ts";
import { Pit, PIT_FREQ } from "./pit_i8254.ts";

const TICK_NS = 1e9 / PIT_FREQ;

function setup() {
  const loop = new EventLoop();
  const edges: number[] = [];
  const irq = new IrqLine("irq0", (level) => level && edges.push(loop.nowNs));
  const pit = new Pit("pit", loop, irq, null);
  return { loop, pit, edges };
}

Deno.test("Pit counts down in mode 2 and reads back through a latch", () => {
  const { loop, pit } = setup();
  pit.writePort(3, 0x34); // counter 0, LSB then MSB, mode 2
  pit.writePort(0, 0x00);
  pit.writePort(0, 0x10); // 0x1000
  loop.advanceTo(Math.ceil(100 * TICK_NS));
  pit.writePort(3, 0x00); // latch counter 0
  const lo = pit.readPort(0);
  const hi = pit.readPort(0);
  assert.equal(lo | (hi << 8), 0x1000 - 100);
});

Deno.test("Pit raises IRQ 0 once per period in mode 2", () => {
  const { loop, pit, edges } = setup();
  pit.writePort(3, 0x34);
  pit.writePort(0, 0xe8);
  pit.writePort(0, 0x03); // 1000 ticks
  edges.length = 0;
  loop.advanceTo(Math.ceil(3500 * TICK_NS));
  assert.equal(edges.length, 3);
  assert.ok(Math.abs(edges[0] - 1000 * TICK_NS) < 2);
});

Deno.test("Pit mode 0 raises OUT once at terminal count", () => {
  const { loop, pit, edges } = setup();
  pit.writePort(3, 0x30); // mode 0
  pit.writePort(0, 10);
  pit.writePort(0, 0);
  assert.equal(pit.output(0), false);
  loop.advanceTo(Math.ceil(50 * TICK_NS));
  assert.equal(pit.output(0), true);
  assert.equal(edges.length, 1);
});

Deno.test("Pit mode 3 makes a square wave on OUT", () => {
  const { loop, pit } = setup();
  pit.writePort(3, 0x36);
  pit.writePort(0, 100);
  pit.writePort(0, 0);
  loop.advanceTo(Math.ceil(10 * TICK_NS));
  assert.equal(pit.output(0), true);
  loop.advanceTo(Math.ceil(60 * TICK_NS));
  assert.equal(pit.output(0), false);
});

Deno.test("Pit counter 2 is gated by port 0x61 bit 0 and shows OUT2 in bit 5", () => {
  const { loop, pit } = setup();
  pit.writePort61(0);
  pit.writePort(3, 0xb0); // counter 2, mode 0
  pit.writePort(2, 100);
  pit.writePort(2, 0);
  loop.advanceTo(Math.ceil(500 * TICK_NS));
  assert.equal(pit.readPort61() & 0x20, 0); // gate low: stopped
  pit.writePort61(1);
  loop.advanceBy(Math.ceil(101 * TICK_NS));
  assert.equal(pit.readPort61() & 0x21, 0x21);
});

Deno.test("Pit port 0x61 bit 4 toggles with the refresh clock", () => {
  const { loop, pit } = setup();
  const a = pit.readPort61() & 0x10;
  loop.advanceBy(15085);
  assert.notEqual(pit.readPort61() & 0x10, a);
});

Deno.test("Pit read-back latches the status byte", () => {
  const { pit } = setup();
  pit.writePort(3, 0x34);
  pit.writePort(0, 0);
  pit.writePort(0, 1);
  pit.writePort(3, 0xe2); // read-back status of counter 0
  assert.equal(pit.readPort(0), 0x80 | 0x34);
});

Deno.test("Pit strobes IRQ 0 once at terminal count in mode 4, as Linux's one-shot clockevent needs", () => {
  const { loop, pit, edges } = setup();
  pit.writePort(3, 0x38); // counter 0, LSB then MSB, mode 4
  pit.writePort(0, 100);
  pit.writePort(0, 0);
  edges.length = 0;
  loop.advanceTo(Math.ceil(90 * TICK_NS));
  assert.equal(edges.length, 0);
  loop.advanceTo(Math.ceil(110 * TICK_NS));
  assert.equal(edges.length, 1);
  assert.ok(Math.abs(edges[0] - 100 * TICK_NS) < 2);
  loop.advanceTo(Math.ceil(5000 * TICK_NS));
  assert.equal(edges.length, 1, "a strobe fires once per load");
  // Reloading the count arms the next strobe.
  pit.writePort(0, 50);
  pit.writePort(0, 0);
  loop.advanceTo(Math.ceil(5100 * TICK_NS));
  assert.equal(edges.length, 2);
});
