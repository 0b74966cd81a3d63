import assert from "node:assert/strict";
import { type CpuTopology, RunExit } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86Cpu } from "./cpu.ts";
import { resetPrefixes } from "./decode.ts";
import { findModel } from "./models.ts";
import { setSegCache } from "./segmentation.ts";
import { CR0_PE, CS, EAX, EBX, ECX, EDX } from "./state.ts";

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

/** `n` CPUs on one memory, as a machine of `n` CPUs makes them; the clock is their sum. */
function cpus(n: number, options: { jit?: boolean; topology?: CpuTopology } = {}) {
  const memory = new AddressSpace();
  const ram = memory.addRam("ram", 0, 16 << 20);
  const io = new PortIoSpace();
  const list: X86Cpu[] = [];
  const clock = () => list.reduce((sum, c) => sum + c.instructionsRetired, 0);
  for (let i = 0; i < n; i++) {
    list.push(
      new X86Cpu(
        {
          memory,
          io,
          index: i,
          apicId: i,
          cpuCount: n,
          topology: options.topology ?? { sockets: 1, dies: 1, cores: n, threads: 1 },
          clock,
        },
        findModel("qemu32")!,
        { jit: options.jit ?? false },
      ),
    );
  }
  return { ram, cpus: list };
}

/** Puts `cpu` in flat 32-bit protected mode at `eip` (CPL 0, every segment 0..4 GiB). */
function flat(cpu: X86Cpu, eip: number): void {
  const c = cpu.core;
  c.waitSipi = false;
  c.cr0 |= CR0_PE;
  setSegCache(c, CS, 0x08, 0, 0xffffffff, 0xc09b);
  for (const s of [0, 2, 3, 4, 5]) setSegCache(c, s, 0x10, 0, 0xffffffff, 0xc093);
  resetPrefixes(c);
  c.eip = eip;
  c.halted = false;
}

Deno.test("X86Cpu APs wait for a STARTUP IPI after reset; only CPU 0 has the BSP flag", () => {
  const { cpus: [bsp, ap] } = cpus(2);
  assert.equal(bsp.halted, false);
  assert.equal(ap.halted, true);
  assert.equal(ap.run(1000), RunExit.HaltNoInterrupts);
  assert.equal(ap.instructionsRetired, 0);
  assert.equal(bsp.core.apicBase & 0x100, 0x100);
  assert.equal(ap.core.apicBase & 0x100, 0);
});

Deno.test("X86Cpu.startup() starts an AP in real mode at vector << 12 after init()", () => {
  const { ram, cpus: [, ap] } = cpus(2);
  // At 0x9a000: mov ax, 0x1234; mov [0x500], ax; cli; hlt (DS is 0 after INIT).
  ram.set([0xb8, 0x34, 0x12, 0xa3, 0x00, 0x05, 0xfa, 0xf4], 0x9a000);
  ap.init();
  ap.startup(0x9a);
  assert.equal(ap.halted, false);
  assert.equal(ap.run(100), RunExit.HaltNoInterrupts);
  const r = ap.registers();
  assert.equal(r.cs, 0x9a00);
  assert.equal(r.cs_base, 0x9a000);
  assert.equal(ram[0x500] | (ram[0x501] << 8), 0x1234);
  // A second SIPI finds the AP running (halted, not waiting for SIPI): ignored.
  ap.startup(0x10);
  assert.equal(ap.run(100), RunExit.HaltNoInterrupts);
  assert.equal(ap.registers().cs, 0x9a00);
});

Deno.test("X86Cpu.init() sends a running AP back to wait-for-SIPI, keeping IA32_APIC_BASE", () => {
  const { ram, cpus: [, ap] } = cpus(2);
  ram.set([0xeb, 0xfe], 0x10000); // jmp $
  ap.startup(0x10);
  assert.equal(ap.run(50), RunExit.Budget);
  ap.core.apicBase = 0xfee00000; // the guest disabled its APIC (bit 11 clear)
  ap.init();
  assert.equal(ap.run(50), RunExit.HaltNoInterrupts);
  assert.equal(ap.halted, true);
  assert.equal(ap.core.apicBase, 0xfee00000);
  assert.equal(ap.registers().eip, 0xfff0);
});

Deno.test("X86Cpu.startup() is ignored by the BSP, which never waits for SIPI", () => {
  const { cpus: [bsp] } = cpus(2);
  bsp.startup(0x10);
  assert.equal(bsp.registers().cs, 0xf000);
  assert.equal(bsp.core.sipiVector, -1);
});

Deno.test("X86Cpu CPUID leaf 1 reports the APIC ID, the logical count and HTT", () => {
  const { ram, cpus: [, ap] } = cpus(2);
  ram.set([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xfa, 0xf4], 0x10000); // mov eax,1; cpuid; hlt
  ap.startup(0x10);
  ap.run(100);
  const c = ap.core;
  assert.equal(c.regs[EBX] >>> 24, 1);
  assert.equal((c.regs[EBX] >> 16) & 0xff, 2);
  assert.equal(c.regs[EDX] & (1 << 28), 1 << 28);
  // One logical processor per package: no count and no HTT, as QEMU.
  const one = cpus(2, { topology: { sockets: 2, dies: 1, cores: 1, threads: 1 } });
  one.ram.set([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xfa, 0xf4], 0x10000);
  one.cpus[1].startup(0x10);
  one.cpus[1].run(100);
  assert.equal((one.cpus[1].core.regs[EBX] >> 16) & 0xff, 0);
  assert.equal(one.cpus[1].core.regs[EDX] & (1 << 28), 0);
});

Deno.test("X86Cpu CPUID leaf 1 drops the APIC flag while IA32_APIC_BASE disables the APIC, as QEMU", () => {
  const { ram, cpus: [, ap] } = cpus(2);
  // mov ecx, 0x1b; rdmsr; and ah, 0xf7 (clear bit 11); wrmsr; mov eax, 1; cpuid; hlt
  ram.set([0x66, 0xb9, 0x1b, 0, 0, 0, 0x0f, 0x32, 0x80, 0xe4, 0xf7, 0x0f, 0x30], 0x10000);
  ram.set([0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xfa, 0xf4], 0x1000d);
  ap.startup(0x10);
  ap.run(100);
  assert.equal(ap.core.apicBase & 0x800, 0);
  assert.equal(ap.core.regs[EDX] & (1 << 9), 0);
  assert.equal(ap.core.regs[EDX] & 1, 1); // the other flags stay (fpu)
});

Deno.test("X86Cpu CPUID leaf 4 reports QEMU's legacy caches and the cores per package", () => {
  const { ram, cpus: [bsp] } = cpus(2);
  // mov eax, 4; mov ecx, [0x700]; cpuid; hlt
  ram.set([0x66, 0xb8, 4, 0, 0, 0, 0x66, 0x8b, 0x0e, 0x00, 0x07, 0x0f, 0xa2, 0xfa, 0xf4], 0x7c00);
  const leaf4 = (sub: number) => {
    ram[0x700] = sub;
    bsp.jumpReal(0, 0x7c00);
    bsp.run(100);
    const r = bsp.core.regs;
    return [r[EAX] >>> 0, r[EBX] >>> 0, r[ECX] >>> 0, r[EDX] >>> 0];
  };
  const [a0, b0, c0, d0] = leaf4(0);
  assert.equal(a0 & 0x1f, 1); // data cache
  assert.equal((a0 >> 5) & 7, 1); // level 1
  assert.equal(a0 >>> 26, 1); // two cores per package
  assert.equal(((b0 >>> 22) + 1) * ((b0 & 0xfff) + 1) * (c0 + 1), 32 * 1024);
  assert.equal(d0, 1);
  const [a3] = leaf4(3);
  assert.equal((a3 >> 5) & 7, 3);
  assert.equal(((a3 >> 14) & 0xfff) + 1, 2); // the L3 is shared by the die's two cores
  assert.deepEqual(leaf4(4), [0, 0, 0, 0]);
});

Deno.test("X86Cpu PAUSE yields the turn only when the machine has several CPUs", () => {
  const spin = [0xf3, 0x90, 0xeb, 0xfc]; // pause; jmp back
  const two = cpus(2);
  two.ram.set(spin, 0x10000);
  two.cpus[1].startup(0x10);
  assert.equal(two.cpus[1].run(1000), RunExit.Yield);
  assert.equal(two.cpus[1].instructionsRetired, 1);
  const memory = new AddressSpace();
  memory.addRam("ram", 0, 1 << 20).set(spin, 0x7c00);
  const single = new X86Cpu({ memory, io: new PortIoSpace() }, findModel("qemu32")!);
  single.jumpReal(0, 0x7c00);
  assert.equal(single.run(1000), RunExit.Budget);
});

Deno.test("X86Cpu RDTSC reads one machine-wide counter on every CPU", () => {
  const { ram, cpus: [bsp, ap] } = cpus(2);
  // rdtsc; mov [0x600 + 8 * cpu], eax/edx; hlt  (cpu from the APIC ID in CPUID)
  const code = (slot: number) => [0x0f, 0x31, 0x66, 0xa3, ...le32(slot).slice(0, 2), 0xfa, 0xf4];
  ram.set(code(0x600), 0x10000);
  ram.set(code(0x610), 0x11000);
  ap.startup(0x10);
  ap.run(5); // the AP retires 3 instructions first
  bsp.jumpReal(0x1100, 0);
  bsp.run(5);
  const view = new DataView(ram.buffer);
  const apTsc = view.getUint32(0x600, true), bspTsc = view.getUint32(0x610, true);
  assert.equal(apTsc, 0);
  // The BSP read after the AP's 4 instructions: the counter is shared, not per CPU.
  assert.equal(bspTsc, 4);
});

Deno.test("X86Cpu with the block translator runs code another CPU rewrote since it was translated", () => {
  const { ram, cpus: [a, b] } = cpus(2, { jit: true });
  // CPU A: loop: add eax, imm32; dec ecx; jnz loop; hlt  (translated once hot)
  const loop = 0x100000;
  ram.set([0x05, ...le32(2), 0x49, 0x75, 0xf8, 0xf4], loop);
  flat(a, loop);
  // Enough turns for a block with the wasm tier's threshold (a loop's visit counts 16).
  a.core.regs[ECX] = 4000;
  assert.equal(a.run(1_000_000), RunExit.HaltNoInterrupts);
  assert.equal(a.core.regs[EAX], 8000);
  assert.ok(a.blocks!.translated > 0, "the loop was not translated");
  // CPU B, through its own TLB: mov dword [loop + 1], 5; hlt
  ram.set([0xc7, 0x05, ...le32(loop + 1), ...le32(5), 0xf4], 0x200000);
  flat(b, 0x200000);
  b.run(100);
  // CPU A runs its loop again: the translation must notice B's store.
  flat(a, loop);
  a.core.regs[EAX] = 0;
  a.core.regs[ECX] = 4000;
  a.run(1_000_000);
  assert.equal(a.core.regs[EAX], 20000);
});

Deno.test("X86Cpu with the block translator leaves a loop mid-way and resumes with another CPU's rewrite", () => {
  const { ram, cpus: [a, b] } = cpus(2, { jit: true });
  const loop = 0x100000;
  ram.set([0x05, ...le32(1), 0x49, 0x75, 0xf8, 0xf4], loop); // add eax, 1; dec ecx; jnz
  flat(a, loop);
  a.core.regs[ECX] = 100_000;
  // A's turn ends inside its hot loop, as a round-robin quantum ends it.
  assert.equal(a.run(30_000), RunExit.Budget);
  const done = a.core.regs[EAX];
  const left = a.core.regs[ECX];
  assert.equal(done + left, 100_000);
  ram.set([0xc7, 0x05, ...le32(loop + 1), ...le32(3), 0xf4], 0x200000);
  flat(b, 0x200000);
  b.run(100);
  a.run(1_000_000);
  // The first instruction back may be the tail of an iteration: allow that one.
  const eax = a.core.regs[EAX] >>> 0;
  assert.ok(
    eax === done + 3 * left || eax === done + 3 * (left - 1) + 1,
    `eax ${eax}, expected ${done + 3 * left}`,
  );
});
