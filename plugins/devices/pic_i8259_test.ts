import assert from "node:assert/strict";
import { PicPair } from "./pic_i8259.ts";

/** Programs the pair as PC firmware does: vectors 0x08 and 0x70, cascade on IRQ 2. */
function initPic(pic: PicPair, options: { autoEoi?: boolean } = {}): void {
  const icw4 = options.autoEoi ? 0x03 : 0x01;
  pic.writePort(0, 0, 0x11);
  pic.writePort(0, 1, 0x08);
  pic.writePort(0, 1, 0x04);
  pic.writePort(0, 1, icw4);
  pic.writePort(1, 0, 0x11);
  pic.writePort(1, 1, 0x70);
  pic.writePort(1, 1, 0x02);
  pic.writePort(1, 1, icw4);
  pic.writePort(0, 1, 0x00);
  pic.writePort(1, 1, 0x00);
}

Deno.test("PicPair.acknowledge() returns the vector of a raised master IRQ", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  pic.setIrq(4, true);
  assert.equal(pic.hasPending(), true);
  assert.equal(pic.acknowledge(), 0x0c);
  assert.equal(pic.hasPending(), false);
});

Deno.test("PicPair masks an IRQ through the IMR", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  pic.writePort(0, 1, 0x01);
  pic.setIrq(0, true);
  assert.equal(pic.hasPending(), false);
  assert.equal(pic.readPort(0, 1), 0x01);
  pic.writePort(0, 1, 0x00);
  assert.equal(pic.hasPending(), true);
});

Deno.test("PicPair delivers slave IRQs through the cascade and needs EOI on both chips", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  pic.setIrq(14, true);
  assert.equal(pic.acknowledge(), 0x76);
  // In service: a lower priority IRQ waits, a higher one (IRQ 0) preempts.
  pic.setIrq(4, true);
  assert.equal(pic.hasPending(), false);
  pic.setIrq(0, true);
  assert.equal(pic.acknowledge(), 0x08);
  pic.writePort(0, 0, 0x20); // EOI for IRQ 0
  assert.equal(pic.hasPending(), false); // IRQ 2 (the cascade) is still in service
  pic.writePort(1, 0, 0x20);
  pic.writePort(0, 0, 0x20);
  assert.equal(pic.acknowledge(), 0x0c);
});

Deno.test("PicPair reads IRR or ISR through OCW3", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  pic.setIrq(3, true);
  pic.setIrq(5, true);
  assert.equal(pic.readPort(0, 0), 0x28);
  pic.acknowledge();
  pic.writePort(0, 0, 0x0b); // read ISR
  assert.equal(pic.readPort(0, 0), 0x08);
});

Deno.test("PicPair latches edges but follows levels when ELCR says so", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  pic.setElcr(1, 0x08); // IRQ 11 level triggered
  pic.setIrq(11, true);
  pic.setIrq(11, false);
  assert.equal(pic.hasPending(), false);
  pic.setIrq(5, true);
  pic.setIrq(5, false);
  assert.equal(pic.acknowledge(), 0x0d);
});

Deno.test("PicPair in automatic EOI mode leaves nothing in service", () => {
  const pic = new PicPair("pic", null);
  initPic(pic, { autoEoi: true });
  pic.setIrq(1, true);
  assert.equal(pic.acknowledge(), 0x09);
  pic.writePort(0, 0, 0x0b);
  assert.equal(pic.readPort(0, 0), 0);
});

Deno.test("PicPair.acknowledge() answers IRQ 7 when the request vanished", () => {
  const pic = new PicPair("pic", null);
  initPic(pic);
  assert.equal(pic.acknowledge(), 0x0f);
  assert.equal(pic.spurious, 1);
});

Deno.test("PicPair.saveState() round-trips through loadState()", () => {
  const a = new PicPair("pic", null);
  initPic(a);
  a.setIrq(6, true);
  const b = new PicPair("pic", null);
  b.loadState(a.saveState());
  assert.equal(b.acknowledge(), 0x0e);
});

Deno.test("PicPair.irqStatistics() counts rising edges per input, as QEMU's info irq", () => {
  const pic = new PicPair("pic", null);
  pic.setIrq(0, true);
  pic.setIrq(0, true); // still high: no new edge
  pic.setIrq(0, false);
  pic.setIrq(0, true);
  pic.setIrq(12, true);
  const s = pic.irqStatistics();
  assert.equal(s.name, "isa-i8259");
  assert.equal(s.counts[0], 2);
  assert.equal(s.counts[12], 1);
  assert.equal(s.counts.length, 16);
});
