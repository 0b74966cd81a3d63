import assert from "node:assert/strict";
import { IoApic } from "./ioapic.ts";

function setup() {
  const delivered: number[] = [];
  const ioapic = new IoApic("ioapic", { deliver: (m) => delivered.push(m.vector) }, null);
  const program = (pin: number, low: number) => {
    ioapic.write(0x00, 0x10 + 2 * pin);
    ioapic.write(0x10, low);
  };
  return { ioapic, delivered, program };
}

Deno.test("IoApic delivers an edge-triggered pin's vector on each rising edge", () => {
  const { ioapic, delivered, program } = setup();
  program(4, 0x34); // vector 0x34, edge, unmasked
  ioapic.setIrq(4, true);
  ioapic.setIrq(4, true); // no new edge while high
  ioapic.setIrq(4, false);
  ioapic.setIrq(4, true);
  assert.deepEqual(delivered, [0x34, 0x34]);
});

Deno.test("IoApic keeps an edge that arrives while the pin is masked and delivers it on unmask", () => {
  const { ioapic, delivered, program } = setup();
  program(4, 0x10034); // masked
  ioapic.setIrq(4, true);
  assert.deepEqual(delivered, []);
  program(4, 0x34); // unmask: the edge seen while masked is delivered now, once
  assert.deepEqual(delivered, [0x34]);
  program(4, 0x34);
  assert.deepEqual(delivered, [0x34]);
});

Deno.test("IoApic maps ISA IRQ 0 to pin 2", () => {
  const { ioapic, delivered, program } = setup();
  program(2, 0x30);
  ioapic.setIrq(0, true);
  assert.deepEqual(delivered, [0x30]);
});

Deno.test("IoApic keeps every vector bit when the destination field is set", () => {
  const { ioapic, delivered, program } = setup();
  ioapic.write(0x00, 0x10 + 2 * 4 + 1);
  ioapic.write(0x10, 0x01000000); // logical destination 1, as Linux programs it
  program(4, 0x821); // vector 0x21, logical destination mode
  ioapic.write(0x00, 0x10 + 2 * 4);
  assert.equal(ioapic.read(0x10), 0x821);
  ioapic.write(0x00, 0x10 + 2 * 4 + 1);
  assert.equal(ioapic.read(0x10), 0x01000000);
  ioapic.setIrq(4, true);
  assert.deepEqual(delivered, [0x21]);
});

Deno.test("IoApic.irqStatistics() counts rising edges per input, ISA IRQ 0 as input 0", () => {
  const { ioapic } = setup();
  ioapic.setIrq(0, true);
  ioapic.setIrq(0, false);
  ioapic.setIrq(0, true);
  ioapic.setIrq(11, true);
  ioapic.setIrq(11, true);
  const s = ioapic.irqStatistics();
  assert.equal(s.name, "ioapic");
  assert.deepEqual([s.counts[0], s.counts[2], s.counts[11]], [2, 0, 1]);
});
