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

function machine(image: Uint8Array, jit: boolean, model = "qemu32,+nx") {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 16 << 20);
  ram.set(image, 0x7c00);
  const reports: string[] = [];
  const io = new PortIoSpace();
  io.register("reports", 0x80, 16, {
    read: () => 0,
    write: (port, _size, value) => void reports.push(`${port.toString(16)}:${value.toString(16)}`),
  });
  const cpu = new X86Cpu({ memory, io }, findModel(model)!, { jit });
  cpu.jumpReal(0, 0x7c00);
  return { cpu, ram, reports };
}

function runToEnd(cpu: X86Cpu): RunExit {
  let exit: RunExit = cpu.run(2_000_000);
  while (exit === RunExit.Exit) exit = cpu.run(2_000_000);
  return exit;
}

/**
 * Runs `name`.asm straight through, then again stopping after `at` instructions for each
 * of `points`, moving the state (and RAM) to a new CPU and finishing there: the exit,
 * reports, registers and RAM must be the straight run's.
 */
function moveAt(name: string, model: string, points: (total: number) => number[], jit = true) {
  const image = assemble(name);
  const whole = machine(image, false, model);
  const wholeExit = runToEnd(whole.cpu);
  const total = whole.cpu.instructionsRetired;
  assert.ok(total > 20, `${name}.asm ran only ${total} instructions`);
  assert.ok(whole.reports.length > 0, `${name}.asm reported nothing`);
  for (const at of points(total)) {
    const first = machine(image, false, model);
    while (first.cpu.instructionsRetired < at) {
      if (first.cpu.run(at - first.cpu.instructionsRetired) !== RunExit.Budget) break;
    }
    const state = new X86State();
    first.cpu.getState(state);
    const second = machine(new Uint8Array(0), jit, model);
    second.ram.set(first.ram);
    second.reports.push(...first.reports);
    second.cpu.setState(state);
    const again = new X86State();
    second.cpu.getState(again);
    assert.deepEqual(again.bytes, state.bytes, `${name}: state round trip at ${at}`);
    assert.equal(runToEnd(second.cpu), wholeExit, `${name}: exit after a move at ${at}`);
    assert.deepEqual(second.reports, whole.reports, `${name}: reports after a move at ${at}`);
    const end = second.cpu.registers(), want = whole.cpu.registers();
    delete end.cpl, delete want.cpl;
    assert.deepEqual(end, want, `${name}: registers after a move at ${at}`);
    assert.deepEqual(second.ram, whole.ram, `${name}: RAM after a move at ${at}`);
  }
}

// paging.asm turns on EFER.NXE: `qemu32,+nx` as pmode_test.ts runs it. On plain qemu32 QEMU
// ignores the write, the NX page's bit 63 is a reserved bit and each access to it is a #PF
// with RSVD: the program runs another way, and must still end the same after a move.
const PROGRAMS: [string, string][] = [
  ["paging", "qemu32,+nx"],
  ["paging", "qemu32"],
  ["pmode", "qemu32,+nx"],
  ["fpu", "qemu32,+nx"],
  ["tasks", "qemu32,+nx"],
  ["sse", "qemu32"],
];

for (const [name, model] of PROGRAMS) {
  Deno.test({
    name:
      `X86Cpu.setState() continues ${name}.asm (${model}) where getState() left it, to the same end`,
    ignore: !HAVE_NASM,
    fn() {
      if (!HAVE_NASM) return console.log(NO_NASM);
      moveAt(
        name,
        model,
        (total) => [7, Math.floor(total / 3), Math.floor((2 * total) / 3), total - 3],
      );
    },
  });
  Deno.test({
    name:
      `${name}.asm (${model}) ends the same when its state moves to a new CPU every 97 instructions`,
    ignore: !HAVE_NASM,
    fn() {
      if (!HAVE_NASM) return console.log(NO_NASM);
      moveAt(
        name,
        model,
        (total) => Array.from({ length: Math.ceil(total / 97) }, (_, i) => 1 + 97 * i),
      );
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
