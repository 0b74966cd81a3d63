// Tests for saving and loading the interpreter's state through core's X86State

import assert from "node:assert/strict";
import { RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86_CS, X86_FCW, X86_STATE_BYTES, X86State } from "../../../core/x86_state.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";
import { assemble, HAVE_NASM } from "./test_util.ts";

const NO_NASM = "nasm is not installed: the test programs cannot be assembled";

function machine(image: Uint8Array, jit: boolean) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 16 << 20);
  ram.set(image, 0x7c00);
  const reports: string[] = [];
  const io = new PortIoSpace();
  io.register("reports", 0x80, 16, {
    read: () => 0,
    write: (port, _size, value) => void reports.push(`${port.toString(16)}:${value.toString(16)}`),
  });
  // paging.asm turns on EFER.NXE: `qemu32,+nx` as pmode_test.ts runs it (on plain qemu32
  // QEMU ignores the write and the NX page's bit 63 is a reserved bit).
  const cpu = new X86Cpu({ memory, io }, findModel("qemu32,+nx")!, { jit });
  cpu.jumpReal(0, 0x7c00);
  return { cpu, ram, reports };
}

function runToEnd(cpu: X86Cpu): RunExit {
  let exit: RunExit = cpu.run(2_000_000);
  while (exit === RunExit.Exit) exit = cpu.run(2_000_000);
  return exit;
}

for (const name of ["paging", "pmode", "fpu", "tasks"]) {
  Deno.test({
    name: `X86Cpu.setState() continues ${name}.asm where getState() left it, to the same end`,
    ignore: !HAVE_NASM,
    fn() {
      if (!HAVE_NASM) return console.log(NO_NASM);
      const image = assemble(name);
      const whole = machine(image, false);
      const wholeExit = runToEnd(whole.cpu);
      const total = whole.cpu.instructionsRetired;
      assert.ok(total > 20, `${name}.asm ran only ${total} instructions`);
      // Stop at several points, move the state (and RAM) to a new CPU, and finish there.
      for (const at of [7, Math.floor(total / 3), Math.floor((2 * total) / 3), total - 3]) {
        const first = machine(image, false);
        while (first.cpu.instructionsRetired < at) {
          if (first.cpu.run(at - first.cpu.instructionsRetired) !== RunExit.Budget) break;
        }
        const state = new X86State();
        first.cpu.getState(state);
        const second = machine(new Uint8Array(0), true);
        second.ram.set(first.ram);
        second.reports.push(...first.reports);
        second.cpu.setState(state);
        const again = new X86State();
        second.cpu.getState(again);
        assert.deepEqual(again.bytes, state.bytes, `state round trip at ${at}`);
        assert.equal(runToEnd(second.cpu), wholeExit, `exit after a move at ${at}`);
        assert.deepEqual(second.reports, whole.reports, `reports after a move at ${at}`);
        const end = second.cpu.registers(), want = whole.cpu.registers();
        delete end.cpl, delete want.cpl;
        assert.deepEqual(end, want, `registers after a move at ${at}`);
        assert.deepEqual(second.ram, whole.ram, `RAM after a move at ${at}`);
      }
    },
  });
}

Deno.test("X86Cpu.getState() fills the 64-bit layout: upper halves zero, segments, x87 words", () => {
  const { cpu } = machine(new Uint8Array([0xf4]), false);
  cpu.reset();
  const s = new X86State();
  cpu.getState(s);
  assert.equal(s.rip, 0xfff0);
  assert.equal(s.rflags, 2);
  assert.equal(s.gpr(2), 0x663n); // EDX holds the CPUID signature after RESET
  assert.deepEqual(s.segment(X86_CS), {
    selector: 0xf000,
    attributes: 0x93,
    limit: 0xffff,
    base: 0xffff0000,
  });
  assert.equal(s.u16(X86_FCW), 0x37f);
  assert.equal(s.msr(0x1b), 0xfee00900n);
});

Deno.test("X86State lives in a WebAssembly.Memory: two views of one place see each other", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const a = new X86State(memory.buffer, 65536 - X86_STATE_BYTES);
  const b = new X86State(memory.buffer, 65536 - X86_STATE_BYTES);
  a.setGpr(15, -1n);
  a.setU64(0x80, -16); // RIP, a negative int32 sign-extended to 64 bits
  assert.equal(b.gpr(15), 0xffffffffffffffffn);
  assert.equal(b.u32(0x84), 0xffffffff);
  a.setMsr(0x250, 0x0606060606060606n);
  assert.equal(b.msr(0x250), 0x0606060606060606n);
  assert.deepEqual(b.tableMsrs(), [0x250]);
  assert.throws(() => new X86State(memory.buffer, 32), RangeError);
  assert.throws(() => new X86State(memory.buffer, 65536 - 64), RangeError);
});
