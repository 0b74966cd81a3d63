import assert from "node:assert/strict";
import { type CpuBackend, RunExit } from "../../core/cpu.ts";
import { Machine } from "../../core/machine.ts";
import { LocalApics } from "./apic.ts";
import { apicMatches, type BusApic, msiMessage } from "./apic_bus.ts";
import { IoApic } from "./ioapic.ts";

/** A CPU that only records the APIC's signals to it. */
class RecordingCpu implements CpuBackend {
  readonly arch = "x86";
  readonly model = "test";
  readonly instructionsRetired = 0;
  readonly halted = true;
  readonly signals: string[] = [];
  reset(): void {}
  run(): RunExit {
    return RunExit.HaltNoInterrupts;
  }
  setInterruptSource(): void {}
  raiseNmi(): void {
    this.signals.push("nmi");
  }
  requestExit(): void {}
  requestReset(): void {}
  init(): void {
    this.signals.push("init");
  }
  startup(vector: number): void {
    this.signals.push(`sipi:${vector.toString(16)}`);
  }
  registers(): Record<string, number> {
    return {};
  }
}

/** A machine with `n` recording CPUs and their local APICs (no board). */
function setup(n: number) {
  const machine = new Machine({
    ramBytes: 1 << 20,
    smp: n,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: () => new RecordingCpu(),
  });
  machine.memory.addRam("ram", 0, 1 << 20);
  const lapics = new LocalApics("apic", machine.loop, machine, {
    count: n,
    apicId: (i) => machine.apicId(i),
  });
  machine.addDevice(lapics);
  machine.createCpus();
  machine.cpus.forEach((c, i) => c.setInterruptSource(lapics.apics[i]));
  lapics.reset();
  const apics = lapics.apics;
  // Software-enable every APIC (SVR bit 8), as an OS does first.
  for (const a of apics) a.writeRegister(0xf0, 0x1ff);
  const cpus = machine.cpus as RecordingCpu[];
  /** Writes the ICR of APIC `from`: the high half first, as guests do. */
  const ipi = (from: number, low: number, dest = 0) => {
    apics[from].writeRegister(0x310, dest << 24);
    apics[from].writeRegister(0x300, low);
  };
  /** Vectors waiting in APIC `i`'s IRR, taken in priority order. */
  const take = (i: number) => {
    const got: number[] = [];
    while (apics[i].hasPending()) {
      const v = apics[i].acknowledge();
      got.push(v);
      apics[i].writeRegister(0xb0, 0); // EOI
    }
    return got;
  };
  return { machine, lapics, apics, cpus, ipi, take };
}

Deno.test("LocalApic ICR sends a fixed IPI to the APIC its physical destination names", () => {
  const { ipi, take } = setup(3);
  ipi(0, 0x4041, 2); // fixed, physical, assert, vector 0x41
  assert.deepEqual(take(0), []);
  assert.deepEqual(take(1), []);
  assert.deepEqual(take(2), [0x41]);
});

Deno.test("LocalApic ICR reads back with the delivery-status bit clear once sent", () => {
  const { apics, ipi } = setup(2);
  ipi(0, 0x4041, 1);
  assert.equal(apics[0].readRegister(0x300) & (1 << 12), 0);
  assert.equal(apics[0].readRegister(0x300) & 0xff, 0x41);
  assert.equal(apics[0].readRegister(0x310) >>> 24, 1);
});

Deno.test("LocalApic ICR shorthands reach self, all, and all but self", () => {
  const { ipi, take } = setup(3);
  ipi(1, 0x40000 | 0x4050); // self
  assert.deepEqual([take(0), take(1), take(2)], [[], [0x50], []]);
  ipi(1, 0x80000 | 0x4051); // all including self
  assert.deepEqual([take(0), take(1), take(2)], [[0x51], [0x51], [0x51]]);
  ipi(1, 0xc0000 | 0x4052); // all excluding self
  assert.deepEqual([take(0), take(1), take(2)], [[0x52], [], [0x52]]);
});

Deno.test("LocalApic ICR logical destinations match flat and cluster models", () => {
  const { apics, ipi, take } = setup(4);
  // Flat model (DFR 0xffffffff): one LDR bit per CPU, as Linux on i386 sets it up.
  apics.forEach((a, i) => a.writeRegister(0xd0, (1 << i) << 24));
  ipi(0, 0x4860, 0b1010); // logical, to CPUs 1 and 3
  assert.deepEqual(apics.map((_, i) => take(i)), [[], [0x60], [], [0x60]]);
  // Cluster model: LDR high nibble is the cluster, low nibble the member bit.
  apics.forEach((a, i) => {
    a.writeRegister(0xe0, 0x0fffffff);
    a.writeRegister(0xd0, (((i >> 1) << 4) | (1 << (i & 1))) << 24);
  });
  ipi(0, 0x4861, 0x12); // cluster 1, member bit 1: CPU 3
  assert.deepEqual(apics.map((_, i) => take(i)), [[], [], [], [0x61]]);
  ipi(0, 0x4862, 0xf1); // every cluster, member bit 0: CPUs 0 and 2
  assert.deepEqual(apics.map((_, i) => take(i)), [[0x62], [], [0x62], []]);
});

Deno.test("LocalApic ICR lowest-priority delivery picks the APIC with the lowest TPR", () => {
  const { apics, ipi, take } = setup(3);
  apics[0].writeRegister(0x80, 0x40);
  apics[1].writeRegister(0x80, 0x10);
  apics[2].writeRegister(0x80, 0x20);
  ipi(0, 0x80000 | 0x4170); // lowest priority, to all including self
  assert.deepEqual([take(0), take(1), take(2)], [[], [0x70], []]);
});

Deno.test("LocalApic ICR sends INIT, ignores INIT level de-assert, then STARTUP to the AP", () => {
  const { apics, cpus, ipi } = setup(2);
  apics[1].writeRegister(0x80, 0x30);
  ipi(0, 0x0000c500, 1); // INIT, level, assert
  ipi(0, 0x00008500, 1); // INIT level de-assert: no signal
  ipi(0, 0x00004610, 1); // STARTUP, vector 0x10
  ipi(0, 0x00004610, 1); // the second SIPI of the universal algorithm
  assert.deepEqual(cpus[1].signals, ["init", "sipi:10", "sipi:10"]);
  assert.deepEqual(cpus[0].signals, []);
  // INIT put the APIC in its INIT state too: TPR cleared, software-disabled.
  assert.equal(apics[1].readRegister(0x80), 0);
  assert.equal(apics[1].readRegister(0xf0), 0xff);
  assert.equal(apics[1].readRegister(0x20) >>> 24, 1); // the ID survives
});

Deno.test("LocalApic ICR INIT/SIPI broadcast to all but self reaches every AP (SeaBIOS smp_scan)", () => {
  const { cpus, ipi } = setup(4);
  ipi(0, 0x000c4500); // INIT, all excluding self
  ipi(0, 0x000c4609); // STARTUP vector 9, all excluding self
  assert.deepEqual(cpus.map((c) => c.signals), [
    [],
    ["init", "sipi:9"],
    ["init", "sipi:9"],
    ["init", "sipi:9"],
  ]);
});

Deno.test("LocalApic ICR NMI delivery raises the target CPU's NMI", () => {
  const { cpus, ipi } = setup(2);
  ipi(0, 0x4400, 1);
  assert.deepEqual(cpus.map((c) => c.signals), [[], ["nmi"]]);
});

Deno.test("LocalApics serve each CPU its own registers at 0xfee00000", () => {
  const { machine } = setup(2);
  // Between slices the current CPU is CPU 0.
  assert.equal(machine.memory.read32(0xfee00020) >>> 24, 0);
});

Deno.test("LocalApics turn a write to an MSI address into a message for the APIC named", () => {
  const { machine, take } = setup(2);
  machine.memory.write32(0xfee01000, 0x0045); // destination 1, fixed, vector 0x45
  assert.deepEqual([take(0), take(1)], [[], [0x45]]);
  machine.memory.write32(0xfee00000, 0x0046); // destination 0 at register 0: an MSI too
  assert.deepEqual([take(0), take(1)], [[0x46], []]);
});

Deno.test("msiMessage() decodes destination, mode, vector and trigger", () => {
  assert.deepEqual(msiMessage(0x03004, 0x8131), {
    vector: 0x31,
    deliveryMode: 1,
    destination: 3,
    logical: true,
    level: true,
  });
});

Deno.test("apicMatches() treats destination 0xff as broadcast in both modes", () => {
  const a: BusApic = {
    apicId: 5,
    logicalId: 0x20,
    destinationModel: 0xf,
    arbitrationPriority: 0,
    receive: () => {},
  };
  assert.equal(apicMatches(a, 0xff, false), true);
  assert.equal(apicMatches(a, 0xff, true), true);
  assert.equal(apicMatches(a, 5, false), true);
  assert.equal(apicMatches(a, 0x20, true), true);
  assert.equal(apicMatches(a, 0x10, true), false);
});

Deno.test("IoApic delivers to the local APIC its redirection entry names, and takes its EOI", () => {
  const { lapics, apics, take } = setup(2);
  const ioapic = new IoApic("ioapic", lapics, null);
  lapics.setEoiListener((v) => ioapic.eoi(v));
  apics.forEach((a, i) => a.writeRegister(0xd0, (1 << i) << 24));
  const program = (pin: number, low: number, high: number) => {
    ioapic.write(0x00, 0x10 + 2 * pin + 1);
    ioapic.write(0x10, high);
    ioapic.write(0x00, 0x10 + 2 * pin);
    ioapic.write(0x10, low);
  };
  program(4, 0x0834, 0x02 << 24); // logical, to CPU 1, edge
  ioapic.setIrq(4, true);
  assert.deepEqual([take(0), take(1)], [[], [0x34]]);
  program(5, 0xa035, 0x01 << 24); // level-triggered, physical destination APIC 1
  ioapic.setIrq(5, true);
  assert.equal(apics[1].hasPending(), true);
  assert.equal(apics[1].acknowledge(), 0x35);
  ioapic.setIrq(5, false);
  apics[1].writeRegister(0xb0, 0); // EOI clears the Remote IRR
  ioapic.write(0x00, 0x10 + 10);
  assert.equal(ioapic.read(0x10) & (1 << 14), 0);
});
