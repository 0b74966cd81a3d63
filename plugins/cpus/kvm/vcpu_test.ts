import assert from "node:assert/strict";
import { RunExit, X86State } from "../../../core/cpu.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import { X86_CS } from "../../../core/x86_state.ts";
import { AL, Assembler, AX, byte, DS } from "../../machines/x86_asm.ts";
import { KvmCpu } from "./vcpu.ts";
import { resolveKvmModel } from "./cpuid.ts";
import { enterRealMode } from "./test_util.ts";
import { allocateHostRam, KvmVm } from "./vm.ts";
import { NEEDS_KVM } from "../../../tests/kvm/kvm_util.ts";

const IGNORE = NEEDS_KVM !== "";
const CODE = 0x7c00;
const MMIO_BASE = 0xd0000;
const VECTOR = 0x20;
const HANDLER = 0x7e00;

/** A real-mode program: port and MMIO accesses, HLT for an interrupt, then HLT with IF=0. */
function program(): { code: Uint8Array; handler: Uint8Array } {
  const a = new Assembler({ bits: 16, origin: CODE });
  a.mov(AL, 0x41).out(0x10, AL);
  a.mov(AX, MMIO_BASE >> 4).mov(DS, AX);
  a.mov(byte(null, 4), 0x42); // MMIO write
  a.mov(AL, byte(null, 8)).out(0x10, AL); // MMIO read, echoed to the port
  a.mov(AX, 0).mov(DS, AX);
  a.mov(byte(null, 0xc0010), 0x99 & 0xff); // a write to the read-only overlay is dropped
  a.sti().hlt();
  a.mov(AL, 0x12).out(0x10, AL);
  a.cli().hlt();
  const h = new Assembler({ bits: 16, origin: HANDLER });
  h.mov(AL, 0x11).out(0x10, AL);
  h.db(0xcf); // iret
  return { code: a.assemble(), handler: h.assemble() };
}

function machine() {
  const memory = new AddressSpace();
  const ram = allocateHostRam(1 << 20);
  memory.addRamAlias("ram", 0, ram);
  // A read-only overlay over RAM, as the i440FX PAM makes one (mode 1).
  memory.addRom("pam", 0xc0000, ram.subarray(0xc0000, 0xd0000), 1);
  const mmio: [string, number, number][] = [];
  memory.addMmio("dev", MMIO_BASE, 0x1000, {
    // (priority 1: over the RAM, as a PCI BAR covers a hole)
    read: (offset, size) => (mmio.push(["r", offset, size]), 0x5a),
    write: (offset, _size, value) => void mmio.push(["w", offset, value]),
  }, 1);
  const io = new PortIoSpace();
  const out: number[] = [];
  io.register("probe", 0x10, 1, { read: () => 0xff, write: (_p, _s, v) => void out.push(v) });
  return { memory, ram, io, out, mmio };
}

Deno.test({
  name:
    `KvmCpu.run() sends port and MMIO exits to the devices, injects an interrupt and halts${NEEDS_KVM}`,
  ignore: IGNORE,
  fn() {
    const m = machine();
    const { code, handler } = program();
    m.ram.set(code, CODE);
    m.ram.set(handler, HANDLER);
    m.ram[0xc0010] = 0x77;
    new DataView(m.ram.buffer, m.ram.byteOffset).setUint32(VECTOR * 4, HANDLER, true); // 0000:7E00
    const vm = new KvmVm(m.memory);
    const cpu = new KvmCpu(
      vm,
      { memory: m.memory, io: m.io },
      resolveKvmModel("qemu64", vm.supportedCpuid()),
    );
    cpu.reset();
    const s = new X86State();
    cpu.getState(s);
    assert.equal(s.segment(X86_CS).base, 0xffff0000);
    assert.equal(s.rip, 0xfff0);
    s.setSegment(X86_CS, { selector: 0, attributes: 0x9b, limit: 0xffff, base: 0 });
    s.rip = CODE;
    cpu.setState(s);

    let pending = false;
    cpu.setInterruptSource({
      hasPending: () => pending,
      acknowledge: () => ((pending = false), VECTOR),
    });
    assert.equal(cpu.run(1e9), RunExit.Halt);
    assert.deepEqual(m.out, [0x41, 0x5a]);
    assert.deepEqual(m.mmio, [["w", 4, 0x42], ["r", 8, 1]]);
    assert.equal(m.ram[0xc0010], 0x77, "the read-only slot dropped the write");
    assert.ok(cpu.halted);
    // Halted with nothing pending: run returns at once.
    assert.equal(cpu.run(1e9), RunExit.Halt);
    pending = true;
    assert.equal(cpu.run(1e9), RunExit.HaltNoInterrupts);
    assert.deepEqual(m.out, [0x41, 0x5a, 0x11, 0x12]);
    assert.equal(cpu.stats.injected, 1);
    // The memory slots: RAM split around the MMIO window and the read-only overlay.
    const slots = vm.slots().map((x) => [x.guestAddress, x.size, x.flags]);
    assert.deepEqual(slots, [[0, 0xc0000, 0], [0xc0000, 0x10000, 2], [0xd1000, 0x2f000, 0]]);
  },
});

Deno.test({
  name: `KvmVm.sync() follows the address space when an overlay goes away${NEEDS_KVM}`,
  ignore: IGNORE,
  fn() {
    const m = machine();
    const vm = new KvmVm(m.memory);
    vm.sync();
    const before = vm.slotUpdates;
    m.memory.remove("pam");
    m.memory.remove("dev");
    vm.sync();
    assert.deepEqual(vm.slots().map((x) => [x.guestAddress, x.size, x.flags]), [[0, 0x100000, 0]]);
    assert.ok(vm.slotUpdates > before);
    const after = vm.slotUpdates;
    vm.sync(); // nothing changed: no ioctl
    assert.equal(vm.slotUpdates, after);
  },
});

/**
 * Runs a real-mode guest on KVM's own interrupt controllers: it programs the master
 * 8259 (vectors 20h..27h, IRQ0 unmasked) and, with `pit`, the 8254's channel 0 (1 ms,
 * rate generator), says 41h on port 10h, waits in HLT with IF=1, and its IRQ0 handler
 * says 11h, sends EOI and returns; then it says 12h. Returns what port 10h saw.
 */
function runOnKernelIrqchip(pit: boolean, onMarker: (vm: KvmVm) => void): number[] {
  const m = machine();
  const a = new Assembler({ bits: 16, origin: CODE });
  const init = [[0x20, 0x11], [0x21, VECTOR], [0x21, 4], [0x21, 1], [0x21, 0xfe]];
  if (pit) init.push([0x43, 0x34], [0x40, 1193 & 0xff], [0x40, 1193 >> 8]);
  for (const [port, value] of init) a.mov(AL, value).out(port, AL);
  a.mov(AL, 0x41).out(0x10, AL);
  a.sti().hlt();
  a.mov(AL, 0x12).out(0x10, AL);
  a.cli().hlt();
  const h = new Assembler({ bits: 16, origin: HANDLER });
  h.mov(AL, 0x11).out(0x10, AL).mov(AL, 0x20).out(0x20, AL);
  h.db(0xcf); // iret
  m.ram.set(a.assemble(), CODE);
  m.ram.set(h.assemble(), HANDLER);
  new DataView(m.ram.buffer, m.ram.byteOffset).setUint32(VECTOR * 4, HANDLER, true);

  const vm = new KvmVm(m.memory);
  vm.createIrqchip({ pit });
  const cpu = realModeCpu(vm, m);
  // The guest's OUTs to the PIC and PIT never reach vmkit's port space; port 10h does.
  const out: number[] = [];
  m.io.unregister("probe");
  m.io.register("probe", 0x10, 1, {
    read: () => 0xff,
    write: (_p, _s, v) => {
      out.push(v);
      if (v === 0x41) onMarker(vm);
      if (v === 0x12) cpu.requestExit();
    },
  });
  assert.equal(cpu.run(1e9), RunExit.Exit);
  assert.equal(cpu.stats.injected, 0, "KVM's PIC delivered it, not vmkit");
  return out;
}

/** A qemu64 vCPU of `vm` after reset, moved to real-mode CS:IP 0000:CODE. */
function realModeCpu(vm: KvmVm, m: ReturnType<typeof machine>): KvmCpu {
  const model = resolveKvmModel("qemu64", vm.supportedCpuid());
  return enterRealMode(new KvmCpu(vm, { memory: m.memory, io: m.io }, model), CODE);
}

Deno.test({
  name:
    `KvmVm.createIrqchip() gives the guest KVM's own PIC: a line raised with irqLine() wakes HLT${NEEDS_KVM}`,
  ignore: IGNORE,
  fn() {
    // An edge on IRQ0 while the guest is busy.
    assert.deepEqual(runOnKernelIrqchip(false, (vm) => vm.irqLine(0, true)), [0x41, 0x11, 0x12]);
  },
});

Deno.test({
  name:
    `KvmVm.createIrqchip({ pit: true }) gives the guest KVM's 8254, whose tick wakes HLT${NEEDS_KVM}`,
  ignore: IGNORE,
  fn() {
    assert.deepEqual(runOnKernelIrqchip(true, () => {}), [0x41, 0x11, 0x12]);
  },
});

Deno.test({
  name: `KvmVm.dirtyLog.collect() names exactly the logged pages the guest wrote, once${NEEDS_KVM}`,
  ignore: IGNORE,
  fn() {
    const m = machine();
    const a = new Assembler({ bits: 16, origin: CODE });
    a.mov(AX, 0).mov(DS, AX);
    a.mov(byte(null, 0x3000), 0x11); // page 1 of the logged range
    a.mov(byte(null, 0x5004), 0x22); // page 3
    a.mov(byte(null, 0x9000), 0x33); // outside it
    a.cli().hlt();
    m.ram.set(a.assemble(), CODE);
    const vm = new KvmVm(m.memory);
    const cpu = realModeCpu(vm, m);
    const log = vm.dirtyLog;
    log.start(0x2000, 0x6000);
    assert.deepEqual([...log.collect(0x2000, 0x6000)], [0b111111], "every page starts dirty");
    assert.deepEqual([...log.collect(0x2000, 0x6000)], [0]);
    assert.equal(cpu.run(1e9), RunExit.HaltNoInterrupts);
    assert.equal(m.ram[0x5004], 0x22);
    assert.deepEqual([...log.collect(0x2000, 0x6000)], [0b1010]);
    assert.deepEqual([...log.collect(0x2000, 0x6000)], [0], "collect() forgets what it told");
    assert.ok(vm.slots().some((slot) => slot.guestAddress === 0x2000 && slot.size === 0x6000));
    log.stop(0x2000, 0x6000);
    assert.ok(!vm.slots().some((slot) => slot.guestAddress === 0x2000));
  },
});
