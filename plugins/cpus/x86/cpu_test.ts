// Tests for the run loop: reset state, HLT exits, interrupts, NMI, shutdown, A20, REP

import assert from "node:assert/strict";
import { type InterruptSource, RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { findModel } from "./models.ts";

function machine(code: number[], at = 0x7c00) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 4 << 20);
  ram.set(code, at);
  const cpu = new X86Cpu({ memory, io: new PortIoSpace() }, findModel("qemu32")!);
  cpu.jumpReal(0, at);
  return { cpu, ram, memory };
}

Deno.test("X86Cpu.reset() starts at F000:FFF0 with the CPUID signature in EDX", () => {
  const { cpu } = machine([]);
  cpu.reset();
  const r = cpu.registers();
  assert.equal(r.cs, 0xf000);
  assert.equal(r.cs_base, 0xffff0000);
  assert.equal(r.eip, 0xfff0);
  assert.equal(r.edx, 0x663);
  assert.equal(r.cr0, 0x60000010);
  assert.equal(r.eflags, 2);
});

Deno.test("X86Cpu.run() returns Budget, counts instructions and stops on HLT", () => {
  // nop; nop; jmp $-2 ... then the CLI/HLT path is never reached
  const { cpu } = machine([0x90, 0x90, 0xeb, 0xfc]);
  assert.equal(cpu.run(10), RunExit.Budget);
  assert.equal(cpu.instructionsRetired, 10);
  const h = machine([0xfa, 0xf4]); // cli; hlt
  assert.equal(h.cpu.run(10), RunExit.HaltNoInterrupts);
  assert.equal(h.cpu.halted, true);
  assert.equal(h.cpu.registers().eip, 0x7c02);
});

Deno.test("X86Cpu.run() wakes from HLT for a pending interrupt and runs its IVT handler", () => {
  // sti; hlt; mov al, 1; cli; hlt     handler at 0:0x8000: mov bl, 0x42; iret
  const { cpu, ram } = machine([0xfb, 0xf4, 0xb0, 0x01, 0xfa, 0xf4]);
  ram.set([0xb3, 0x42, 0xcf], 0x8000);
  ram.set([0x00, 0x80, 0x00, 0x00], 0x20 * 4);
  let pending = false;
  const pic: InterruptSource = {
    hasPending: () => pending,
    acknowledge: () => {
      pending = false;
      return 0x20;
    },
  };
  cpu.setInterruptSource(pic);
  assert.equal(cpu.run(100), RunExit.Halt);
  assert.equal(cpu.run(100), RunExit.Halt); // still nothing pending
  pending = true;
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  const r = cpu.registers();
  assert.equal(r.ebx & 0xff, 0x42);
  assert.equal(r.eax & 0xff, 1);
});

Deno.test("X86Cpu keeps the STI shadow across a slice that ends right after STI", () => {
  // sti; hlt; mov al, 1; cli; hlt     handler at 0:0x8000: mov bl, 0x42; iret
  const { cpu, ram } = machine([0xfb, 0xf4, 0xb0, 0x01, 0xfa, 0xf4]);
  ram.set([0xb3, 0x42, 0xcf], 0x8000);
  ram.set([0x00, 0x80, 0x00, 0x00], 0x20 * 4);
  let pending = true;
  cpu.setInterruptSource({
    hasPending: () => pending,
    acknowledge: () => {
      pending = false;
      return 0x20;
    },
  });
  // The slice ends after STI with the interrupt already pending; HLT must still run
  // first, so the handler returns past it instead of onto it.
  assert.equal(cpu.run(1), RunExit.Budget);
  assert.equal(cpu.registers().eip, 0x7c01);
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  const r = cpu.registers();
  assert.equal(r.ebx & 0xff, 0x42);
  assert.equal(r.eax & 0xff, 1, "the handler returned past the HLT");
  assert.equal(r.eip, 0x7c06);
});

Deno.test("X86Cpu.raiseNmi() delivers vector 2 even with IF clear", () => {
  const { cpu, ram } = machine([0xfa, 0xf4, 0xf4]);
  ram.set([0xb3, 0x99, 0xcf], 0x8000);
  ram.set([0x00, 0x80, 0x00, 0x00], 2 * 4);
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  cpu.raiseNmi();
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  assert.equal(cpu.registers().ebx & 0xff, 0x99);
  assert.equal(cpu.registers().eip, 0x7c03);
});

Deno.test("X86Cpu.requestExit() ends the slice at the next boundary", () => {
  const { cpu } = machine([0xeb, 0xfe]);
  cpu.requestExit();
  assert.equal(cpu.run(1000), RunExit.Exit);
  assert.equal(cpu.run(5), RunExit.Budget);
});

Deno.test("X86Cpu.run() reports a triple fault as Shutdown", () => {
  // lidt [zero]; int 3  (an empty IVT limit makes every delivery fault)
  const { cpu, ram } = machine([0x0f, 0x01, 0x1e, 0x00, 0x90, 0xcc]);
  ram.fill(0, 0x9000, 0x9006);
  assert.equal(cpu.run(100), RunExit.Shutdown);
});

Deno.test("X86Cpu.setA20() masks address bit 20 while the gate is off", () => {
  // mov ax, 0xffff; mov ds, ax; mov al, [0x10]; hlt
  const { cpu, ram } = machine([0xb8, 0xff, 0xff, 0x8e, 0xd8, 0xa0, 0x10, 0x00, 0xf4]);
  ram[0x100000] = 0x11;
  ram[0] = 0x22;
  cpu.setA20(false);
  cpu.run(10);
  assert.equal(cpu.registers().eax & 0xff, 0x22);
  cpu.jumpReal(0, 0x7c00);
  cpu.setA20(true);
  cpu.run(10);
  assert.equal(cpu.registers().eax & 0xff, 0x11);
});

Deno.test("X86Cpu executes REP STOSD and REP MOVSB across pages like the byte loop", () => {
  const code = [
    0xb8,
    0x00,
    0x10,
    0x8e,
    0xc0,
    0x8e,
    0xd8, // mov ax, 0x1000; mov es, ax; mov ds, ax
    0xbf,
    0xfc,
    0x0f, // mov di, 0x0ffc
    0xb9,
    0x00,
    0x05, // mov cx, 0x500
    0x66,
    0xb8,
    0x04,
    0x03,
    0x02,
    0x01, // mov eax, 0x01020304
    0xf3,
    0x66,
    0xab, // rep stosd
    0xb8,
    0x00,
    0x20,
    0x8e,
    0xc0, // mov ax, 0x2000; mov es, ax
    0xbe,
    0xfe,
    0x0f,
    0xbf,
    0x03,
    0x00, // mov si, 0x0ffe; mov di, 3
    0xb9,
    0x01,
    0x10, // mov cx, 0x1001
    0xf3,
    0xa4, // rep movsb
    0xb8,
    0x00,
    0x30,
    0x8e,
    0xc0,
    0x8e,
    0xd8, // mov ax, 0x3000; mov es, ax; mov ds, ax
    0xbe,
    0x00,
    0x00,
    0xbf,
    0x01,
    0x00, // mov si, 0; mov di, 1
    0xb9,
    0x20,
    0x00, // mov cx, 0x20
    0xf3,
    0xa4, // rep movsb (overlap: repeats byte 0x30000)
    0xf4,
  ];
  const { cpu, ram } = machine(code);
  ram[0x30000] = 0xab;
  assert.equal(cpu.run(10_000), RunExit.HaltNoInterrupts);
  const filled = ram.subarray(0x10ffc, 0x10ffc + 0x1400);
  for (let i = 0; i < filled.length; i++) assert.equal(filled[i], [4, 3, 2, 1][i & 3]);
  assert.equal(ram[0x10ffc + 0x1400], 0);
  for (let i = 0; i < 0x1001; i++) assert.equal(ram[0x20003 + i], ram[0x10ffe + i]);
  for (let i = 0; i <= 0x20; i++) assert.equal(ram[0x30000 + i], 0xab);
  const r = cpu.registers();
  assert.equal(r.ecx, 0);
  assert.equal(r.esi, 0x20);
  assert.equal(r.edi, 0x21);
});

Deno.test("X86Cpu raises the single-step trap after each instruction while TF is set", () => {
  // pushf; pop ax; or ah, 1; push ax; popf (TF on); nop; nop;
  // pushf; pop ax; and ah, 0xfe; push ax; popf (TF off); cli; hlt
  // INT 1 handler at 0:8000: inc cx; iret
  const code = [
    0x9c,
    0x58,
    0x80,
    0xcc,
    0x01,
    0x50,
    0x9d,
    0x90,
    0x90,
    0x9c,
    0x58,
    0x80,
    0xe4,
    0xfe,
    0x50,
    0x9d,
    0xfa,
    0xf4,
  ];
  const { cpu, ram } = machine(code);
  ram.set([0x41, 0xcf], 0x8000);
  ram.set([0x00, 0x80, 0x00, 0x00], 4);
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  // A trap after each of the seven instructions that started with TF set.
  assert.equal(cpu.registers().ecx & 0xffff, 7);
  assert.equal(cpu.registers().eflags & 0x100, 0);
});

Deno.test("X86Cpu raises #UD for LOCK before a register destination or a non-lockable opcode", () => {
  // lock add [bx], al (ok); lock add al, bl -> #UD handler at 0:8000: inc cx; add word [sp],2; iret
  // then lock mov [bx], al -> #UD; hlt
  const code = [0xf0, 0x00, 0x07, 0xf0, 0x00, 0xd8, 0xf0, 0x88, 0x07, 0xfa, 0xf4];
  const { cpu, ram } = machine(code);
  ram.set([0x41, 0x89, 0xe5, 0x83, 0x46, 0x00, 0x03, 0xcf], 0x8000); // inc cx; mov bp,sp; add word [bp], 3; iret
  ram.set([0x00, 0x80, 0x00, 0x00], 6 * 4);
  cpu.core.regs[3] = 0x9000;
  assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
  assert.equal(cpu.registers().ecx & 0xffff, 2);
});

Deno.test("X86Cpu.requestReset() makes run() return Reset", () => {
  const { cpu } = machine([0xeb, 0xfe]);
  cpu.requestReset();
  assert.equal(cpu.run(100), RunExit.Reset);
});

Deno.test("X86Cpu executes backward REP MOVSD and REP STOSB (DF=1) like the element loop", () => {
  const code = [
    0xfd, // std
    0xb8,
    0x00,
    0x10,
    0x8e,
    0xc0,
    0x8e,
    0xd8, // mov ax, 0x1000; mov es, ax; mov ds, ax
    0xbe,
    0x00,
    0x20,
    0xbf,
    0x04,
    0x20, // mov si, 0x2000; mov di, 0x2004 (overlap, dst above)
    0xb9,
    0x00,
    0x06, // mov cx, 0x600
    0xf3,
    0x66,
    0xa5, // rep movsd
    0xbf,
    0xff,
    0x8f,
    0xb0,
    0x5a,
    0xb9,
    0x00,
    0x03, // mov di, 0x8fff; mov al, 0x5a; mov cx, 0x300
    0xf3,
    0xaa, // rep stosb
    0xfa,
    0xf4,
  ];
  const { cpu, ram } = machine(code);
  const expect = new Uint8Array(0x10000);
  for (let i = 0; i < 0x3000; i++) ram[0x10000 + i] = expect[i] = (i * 7) & 0xff;
  // Reference semantics, element by element from the top.
  for (let k = 0; k < 0x600; k++) {
    const s = 0x2000 - k * 4, d = 0x2004 - k * 4;
    for (let b = 0; b < 4; b++) expect[d + b] = expect[s + b];
  }
  for (let k = 0; k < 0x300; k++) expect[0x8fff - k] = 0x5a;
  assert.equal(cpu.run(10_000), RunExit.HaltNoInterrupts);
  assert.deepEqual(ram.subarray(0x10000, 0x20000), expect);
  const r = cpu.registers();
  assert.equal(r.esi & 0xffff, (0x2000 - 0x600 * 4) & 0xffff);
  assert.equal(r.edi & 0xffff, 0x8fff - 0x300);
});

Deno.test("X86Cpu.run() counts each REP iteration as an instruction and stops a long fill at the budget", () => {
  // mov ax, 0x1000; mov es, ax; xor di, di; mov cx, 0x7000; rep stosw (fast path, RAM);
  // mov cx, 40; rep lodsb (element loop); cli; hlt
  const code = [0xb8, 0x00, 0x10, 0x8e, 0xc0, 0x31, 0xff, 0xb9, 0x00, 0x70, 0xf3, 0xab];
  code.push(0xb9, 40, 0, 0xf3, 0xac, 0xfa, 0xf4);
  const { cpu, ram } = machine(code);
  ram.fill(0x55, 0x10000, 0x20000);
  // Four instructions, then 96 iterations of the fill: the slice ends inside the REP.
  assert.equal(cpu.run(100), RunExit.Budget);
  assert.equal(cpu.instructionsRetired, 100);
  let r = cpu.registers();
  assert.equal(r.ecx & 0xffff, 0x7000 - 96);
  assert.equal(r.edi & 0xffff, 2 * 96);
  assert.equal(r.eip, 0x7c0a, "the REP resumes in the next slice");
  assert.equal(ram[0x10000 + 2 * 96], 0x55, "no store past the budget");
  // The element loop (LODSB) stops at the budget too.
  assert.equal(cpu.run(0x7000 - 96 + 1 + 10), RunExit.Budget);
  r = cpu.registers();
  assert.equal(r.ecx & 0xffff, 30);
  assert.equal(cpu.run(1000), RunExit.HaltNoInterrupts);
  assert.equal(cpu.instructionsRetired, 4 + 0x7000 + 1 + 40 + 2);
  assert.deepEqual([...ram.subarray(0x10000 + 2 * 0x7000 - 2, 0x10000 + 2 * 0x7000 + 1)], [
    0x00,
    0x10,
    0x55,
  ]);
});

Deno.test("MOV from DR4 reads DR6, and is #UD once CR4.DE is set (qemu32 offers de)", () => {
  // mov eax, dr4; mov ebx, cr4 (0f 20 e3); or bl, 8; mov cr4, ebx; mov eax, dr4; hlt,
  // with the #UD vector (6) pointing at 0x8000: cli; hlt there.
  const code = [0x0f, 0x21, 0xe0, 0x0f, 0x20, 0xe3, 0x80, 0xcb, 0x08, 0x0f, 0x22, 0xe3];
  const { cpu, ram } = machine([...code, 0x0f, 0x21, 0xe0, 0xf4]);
  ram.set([0xfa, 0xf4], 0x8000);
  ram.set([0x00, 0x80, 0x00, 0x00], 6 * 4);
  assert.equal(cpu.run(10), RunExit.HaltNoInterrupts);
  const r = cpu.registers();
  assert.equal(r.eax >>> 0, 0xffff0ff0, "DR4 aliases DR6 with CR4.DE clear");
  assert.equal(r.eip, 0x8002, "the second MOV raised #UD");
});
