import assert from "node:assert/strict";
import { MemoryChardev } from "../../core/chardev.ts";
import { IrqLine } from "../../core/irq.ts";
import { Uart } from "./serial_8250.ts";

function setup() {
  const chardev = new MemoryChardev("serial0");
  const irq = new IrqLine("irq4");
  const uart = new Uart("serial0", chardev, irq, null);
  return { chardev, irq, uart };
}

Deno.test("Uart THR writes go to the chardev and LSR shows THR empty", () => {
  const { chardev, uart } = setup();
  for (const c of "Hi") uart.write(0, c.charCodeAt(0));
  assert.equal(chardev.text(), "Hi");
  assert.equal(uart.read(5) & 0x60, 0x60);
});

Deno.test("Uart receives chardev input into RBR with LSR data ready", () => {
  const { chardev, uart } = setup();
  uart.write(2, 0x07); // FIFO on, cleared
  chardev.input("ok");
  assert.equal(uart.read(5) & 1, 1);
  assert.equal(uart.read(0), 0x6f);
  assert.equal(uart.read(0), 0x6b);
  assert.equal(uart.read(5) & 1, 0);
});

Deno.test("Uart IIR reports received data before THR empty and raises the IRQ", () => {
  const { chardev, irq, uart } = setup();
  uart.write(1, 0x03); // RDI and THRI
  assert.equal(irq.level, true);
  assert.equal(uart.read(2), 0x02); // THR empty; reading IIR clears it
  assert.equal(irq.level, false);
  chardev.input("x");
  assert.equal(irq.level, true);
  assert.equal(uart.read(2) & 0x0f, 0x04);
  uart.read(0);
  assert.equal(uart.read(2), 0x01);
  assert.equal(irq.level, false);
});

Deno.test("Uart divisor latch is reached with DLAB and leaves data alone", () => {
  const { chardev, uart } = setup();
  uart.write(3, 0x80);
  uart.write(0, 0x01);
  uart.write(1, 0x00);
  assert.equal(uart.read(0), 0x01);
  uart.write(3, 0x03);
  assert.equal(chardev.text(), "");
});

Deno.test("Uart loopback mode returns transmitted bytes and modem lines", () => {
  const { chardev, uart } = setup();
  uart.write(4, 0x1f);
  uart.write(0, 0x55);
  assert.equal(uart.read(0), 0x55);
  assert.equal(uart.read(6) & 0xf0, 0xf0);
  assert.equal(chardev.text(), "");
});

Deno.test("Uart.saveState() round-trips the FIFO", () => {
  const a = setup();
  a.uart.write(2, 0x01);
  a.chardev.input("q");
  const b = setup();
  b.uart.loadState(a.uart.saveState());
  assert.equal(b.uart.read(0), 0x71);
});
