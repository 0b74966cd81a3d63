import assert from "node:assert/strict";
import { ISA_BUS } from "../../../core/device.ts";
import { EventLoop } from "../../../core/event_loop.ts";
import { IrqLine } from "../../../core/irq.ts";
import { Machine } from "../../../core/machine.ts";
import { testConfig } from "../../machines/test_util.ts";
import { Piix4Pm, PM_TIMER_FREQUENCY } from "./piix4_pm.ts";

Deno.test("Piix4Pm.pmTimer() counts at 3.579545 MHz of virtual time and wraps at 24 bits", () => {
  const loop = new EventLoop();
  const pm = new Piix4Pm("pm", null, loop, null);
  assert.equal(pm.pmTimer(), 0);
  loop.advanceTo(1e9);
  assert.equal(pm.pmTimer(), PM_TIMER_FREQUENCY);
  assert.equal(pm.readPm(0x08, 4), PM_TIMER_FREQUENCY);
  loop.advanceTo(10e9);
  assert.equal(pm.pmTimer(), (10 * PM_TIMER_FREQUENCY) & 0xffffff);
});

Deno.test("Piix4Pm PM1 control with SLP_EN and sleep type 0 (S5) requests a shutdown", async () => {
  const machine = new Machine(testConfig());
  const pm = new Piix4Pm("pm", null, machine.loop, machine);
  pm.writePm(0x04, 2, 0x0001); // SCI_EN only
  assert.equal(machine.loop.stopRequested, false);
  assert.equal(pm.readPm(0x04, 2), 0x0001);
  pm.writePm(0x04, 2, (1 << 13) | (0 << 10) | 1);
  assert.equal(machine.loop.stopRequested, true);
  assert.equal(pm.readPm(0x04, 2) & (1 << 13), 0); // SLP_EN reads back as zero
  const exit = await machine.run();
  assert.equal(exit.reason, "shutdown");
});

Deno.test("Piix4Pm maps its PM I/O block at PMBA once PMREGMISC enables it", () => {
  const machine = new Machine(testConfig());
  const pm = new Piix4Pm("pm", null, machine.loop, machine);
  pm.config.configWrite(0x40, 4, 0xb001);
  assert.equal(machine.io.in(0xb008, 4), 0xffffffff);
  pm.config.configWrite(0x80, 1, 1);
  machine.loop.advanceTo(1e6);
  assert.equal(machine.io.in(0xb008, 4), Math.floor(1e6 * PM_TIMER_FREQUENCY / 1e9));
});

Deno.test("Piix4Pm.writeApmControl() sets and clears SCI_EN for ACPI_ENABLE and ACPI_DISABLE on port 0xb2", () => {
  const machine = new Machine(testConfig());
  const pm = new Piix4Pm("pm", null, machine.loop, machine);
  assert.equal(pm.readPm(0x04, 2) & 1, 0);
  machine.io.out(0xb2, 1, 0xf1);
  assert.equal(pm.readPm(0x04, 2) & 1, 1, "ACPI mode on");
  assert.equal(machine.io.in(0xb2, 1), 0xf1);
  machine.io.out(0xb3, 1, 0x5a);
  assert.equal(machine.io.in(0xb3, 1), 0x5a);
  machine.io.out(0xb2, 1, 0xf0);
  assert.equal(pm.readPm(0x04, 2) & 1, 0, "ACPI mode off");
});

Deno.test("Piix4Pm.powerDown() sets PWRBTN_STS and raises SCI on ISA IRQ 9 once enabled", () => {
  const machine = new Machine(testConfig());
  const levels: boolean[] = [];
  machine.provide(ISA_BUS, {
    irq: (n: number) => {
      assert.equal(n, 9);
      return new IrqLine("sci", (level) => levels.push(level));
    },
  });
  const pm = new Piix4Pm("pm", null, machine.loop, machine);
  pm.powerDown();
  assert.equal(pm.readPm(0x00, 2) & 0x100, 0x100);
  assert.equal(levels.at(-1) ?? false, false); // PWRBTN_EN is clear: no SCI
  pm.writePm(0x02, 2, 0x100);
  assert.equal(levels.at(-1), true);
  pm.writePm(0x00, 2, 0x100); // the guest's handler clears the status
  assert.equal(pm.readPm(0x00, 2) & 0x100, 0);
  assert.equal(levels.at(-1), false);
});
