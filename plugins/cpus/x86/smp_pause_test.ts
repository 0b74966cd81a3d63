// PAUSE under the round-robin executor: it offers the turn only when another CPU can take it

import assert from "node:assert/strict";
import { RoundRobinExecutor } from "../../../core/cpu_executor.ts";
import type { Machine } from "../../../core/machine.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";

/** Two real-mode CPUs on one RAM; `run()` calls are counted per CPU. */
function twoCpus(jit: boolean) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 1 << 20);
  const io = new PortIoSpace();
  const list: X86Cpu[] = [];
  const calls = [0, 0];
  const clock = () => list.reduce((sum, c) => sum + c.instructionsRetired, 0);
  for (let i = 0; i < 2; i++) {
    const cpu = new X86Cpu(
      { memory, io, index: i, apicId: i, cpuCount: 2, clock },
      findModel("qemu32")!,
      { jit },
    );
    const run = cpu.run.bind(cpu);
    cpu.run = (n) => {
      calls[i]++;
      return run(n);
    };
    list.push(cpu);
  }
  const machine = {
    cpus: list,
    config: { smp: 2 },
    get instructionsRetired() {
      return clock();
    },
    requestReset() {},
  } as unknown as Machine;
  return { ram, cpus: list, calls, executor: new RoundRobinExecutor(machine) };
}

// 0x7c00: mov cx, 3000; L: pause; dec cx; jnz L; hlt
const COUNTED_SPIN = [0xb9, 0xb8, 0x0b, 0xf3, 0x90, 0x49, 0x75, 0xfb, 0xf4];

for (const jit of [false, true]) {
  Deno.test(`PAUSE keeps the turn while the other CPU waits (jit ${jit})`, () => {
    const { ram, cpus: [bsp, ap], calls, executor } = twoCpus(jit);
    ram.set(COUNTED_SPIN, 0x7c00);
    bsp.jumpReal(0, 0x7c00);
    assert.ok(ap.halted, "the AP waits for a STARTUP IPI");
    const ran = executor.runSlice(100_000);
    // mov, 3000 x (pause, dec, jnz), hlt: all in one run() call.
    assert.equal(ran, 1 + 3 * 3000 + 1);
    assert.ok(bsp.halted);
    assert.equal(calls[0], 1, `${calls[0]} run() calls`);
  });

  Deno.test(`PAUSE still passes the turn to a CPU that can run (jit ${jit})`, () => {
    const { ram, cpus: [bsp, ap], calls, executor } = twoCpus(jit);
    ram.set(COUNTED_SPIN, 0x7c00);
    ram.set([0xf3, 0x90, 0xeb, 0xfc], 0x10000); // pause; jmp back
    bsp.jumpReal(0, 0x7c00);
    ap.startup(0x10);
    let total = 0;
    while (!bsp.halted && total < 1_000_000) total += executor.runSlice(100_000);
    assert.ok(bsp.halted);
    // Each spinner gives the turn away at each PAUSE.
    assert.ok(calls[0] >= 3000, `${calls[0]} run() calls on the BSP`);
    assert.ok(calls[1] >= 2999, `${calls[1]} run() calls on the AP`);
  });
}
