import assert from "node:assert/strict";
import { EventLoop } from "../../core/event_loop.ts";
import { IrqLine } from "../../core/irq.ts";
import {
  Rtc,
  RTC_CENTURY,
  RTC_HOURS,
  RTC_REG_A,
  RTC_REG_B,
  RTC_REG_C,
  RTC_SECONDS,
  RTC_YEAR,
} from "./rtc_mc146818.ts";

function setup() {
  const loop = new EventLoop();
  const irqs: boolean[] = [];
  const irq = new IrqLine("irq8", (l) => irqs.push(l));
  const rtc = new Rtc("rtc", loop, irq, null, {
    base: new Date(Date.UTC(2024, 4, 17, 13, 45, 30)),
  });
  return { loop, rtc, irqs };
}

Deno.test("Rtc.read() returns the time in BCD from the base and the virtual clock", () => {
  const { loop, rtc } = setup();
  assert.equal(rtc.read(RTC_SECONDS), 0x30);
  assert.equal(rtc.read(RTC_HOURS), 0x13);
  assert.equal(rtc.read(RTC_YEAR), 0x24);
  assert.equal(rtc.read(RTC_CENTURY), 0x20);
  loop.advanceTo(2.5e9);
  assert.equal(rtc.read(RTC_SECONDS), 0x32);
});

Deno.test("Rtc registers A-D have their power-on values", () => {
  const { rtc } = setup();
  assert.equal(rtc.read(RTC_REG_A), 0x26);
  assert.equal(rtc.read(RTC_REG_B), 0x02);
  assert.equal(rtc.read(0x0d), 0x80);
});

Deno.test("Rtc register A shows UIP in the last 244 us of a second", () => {
  const { loop, rtc } = setup();
  loop.advanceTo(1e9 - 100_000);
  assert.equal(rtc.read(RTC_REG_A) & 0x80, 0x80);
  loop.advanceTo(1e9 + 10);
  assert.equal(rtc.read(RTC_REG_A) & 0x80, 0);
});

Deno.test("Rtc raises IRQ 8 for the periodic interrupt and read of C clears it", () => {
  const { loop, rtc, irqs } = setup();
  rtc.write(RTC_REG_B, 0x42); // PIE, 24h
  loop.advanceTo(1e6); // rate 6 is 1024 Hz: one period is ~977 us
  assert.deepEqual(irqs, [true]);
  assert.equal(rtc.read(RTC_REG_C) & 0xc0, 0xc0);
  assert.deepEqual(irqs, [true, false]);
});

Deno.test("Rtc takes a time the guest sets with the SET bit", () => {
  const { rtc } = setup();
  rtc.write(RTC_REG_B, 0x82);
  rtc.write(RTC_HOURS, 0x08);
  rtc.write(RTC_REG_B, 0x02);
  assert.equal(rtc.read(RTC_HOURS), 0x08);
  assert.equal(rtc.read(RTC_SECONDS), 0x30);
});

Deno.test("Rtc keeps plain CMOS bytes such as the memory size", () => {
  const { rtc } = setup();
  rtc.cmos[0x15] = 0x80;
  rtc.write(0x34, 0x12);
  assert.equal(rtc.read(0x15), 0x80);
  assert.equal(rtc.read(0x34), 0x12);
});
