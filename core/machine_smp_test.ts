import assert from "node:assert/strict";
import { type CpuBackend, RunExit } from "./cpu.ts";
import { Machine, SMP_QUANTUM } from "./machine.ts";

/** A CPU that retires whatever it is given, or halts; `onRun` may act mid-turn. */
class FakeCpu implements CpuBackend {
  readonly arch = "fake";
  readonly model = "fake";
  instructionsRetired = 0;
  halted = false;
  /** Turn lengths, in order. */
  readonly turns: number[] = [];
  onRun: ((cpu: FakeCpu) => void) | null = null;
  #exit = false;
  constructor(readonly index: number, readonly log: string[]) {}
  reset(): void {}
  run(max: number): RunExit {
    if (this.#exit) {
      this.#exit = false;
      return RunExit.Exit;
    }
    if (this.halted) return RunExit.Halt;
    this.onRun?.(this);
    if (this.#exit) {
      // Stops after one instruction, as a CPU does at its next boundary.
      this.#exit = false;
      this.retire(1);
      return RunExit.Exit;
    }
    this.retire(max);
    return RunExit.Budget;
  }
  retire(n: number): void {
    this.instructionsRetired += n;
    this.turns.push(n);
    this.log.push(`${this.index}:${n}`);
  }
  setInterruptSource(): void {}
  raiseNmi(): void {}
  requestExit(): void {
    this.#exit = true;
  }
  requestReset(): void {}
  registers(): Record<string, number> {
    return {};
  }
}

function machine(n: number) {
  const log: string[] = [];
  const m = new Machine({
    ramBytes: 1 << 20,
    smp: n,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: (_m, i) => new FakeCpu(i, log),
  });
  m.createCpus();
  return { m, log, cpus: m.cpus as FakeCpu[] };
}

Deno.test("Machine with several CPUs gives busy CPUs turns of SMP_QUANTUM in index order", async () => {
  const { m, log } = machine(3);
  const exit = await m.run({ maxInstructions: 6 * SMP_QUANTUM });
  assert.equal(exit.reason, "budget");
  const q = SMP_QUANTUM;
  assert.deepEqual(log, [`0:${q}`, `1:${q}`, `2:${q}`, `0:${q}`, `1:${q}`, `2:${q}`]);
});

Deno.test("Machine with several CPUs advances the clock by the instructions of the CPU that ran", async () => {
  const { m, cpus } = machine(2);
  await m.run({ maxInstructions: 4 * SMP_QUANTUM });
  assert.equal(m.instructionsRetired, 4 * SMP_QUANTUM);
  assert.equal(cpus[0].instructionsRetired, 2 * SMP_QUANTUM);
  assert.equal(m.loop.nowNs, 4 * SMP_QUANTUM * m.loop.nsPerInstruction);
});

Deno.test("Machine with several CPUs lets a lone runnable CPU run whole slices past halted ones", async () => {
  const { m, cpus, log } = machine(2);
  cpus[1].halted = true;
  await m.run({ maxInstructions: 250_000 });
  assert.deepEqual(log, ["0:100000", "0:100000", "0:50000"]);
});

Deno.test("Machine with several CPUs jumps to the next deadline when all CPUs halt", async () => {
  const { m, cpus } = machine(2);
  for (const c of cpus) c.halted = true;
  const fired: number[] = [];
  m.loop.createTimer("t", (now) => {
    fired.push(now);
    cpus[1].halted = false;
    m.kickCpu(1);
  }).arm(1_000_000);
  await m.run({ maxInstructions: 1000 });
  assert.deepEqual(fired, [1_000_000]);
  assert.equal(cpus[0].instructionsRetired, 0);
  assert.equal(cpus[1].instructionsRetired, 1000);
});

Deno.test("Machine.kickCpu() ends the running CPU's turn so the woken CPU runs next", async () => {
  const { m, cpus, log } = machine(2);
  cpus[1].halted = true;
  let kicked = false;
  cpus[0].onRun = () => {
    if (kicked) return;
    kicked = true;
    cpus[1].halted = false; // an IPI woke CPU 1
    m.kickCpu(1);
  };
  await m.run({ maxInstructions: 1 + SMP_QUANTUM });
  assert.deepEqual(log, ["0:1", `1:${SMP_QUANTUM}`]);
});

Deno.test("Machine.kickCpu() of the running CPU ends its turn without passing it on", async () => {
  const { m, cpus, log } = machine(2);
  let kicked = false;
  cpus[0].onRun = () => {
    if (kicked) return;
    kicked = true;
    m.kickCpu(0); // its own APIC took an interrupt
  };
  await m.run({ maxInstructions: 1 + SMP_QUANTUM });
  assert.deepEqual(log, ["0:1", `0:${SMP_QUANTUM}`]);
});

Deno.test("Machine with several CPUs runs the same turns on every run (deterministic)", async () => {
  const runOnce = async () => {
    const { m, cpus, log } = machine(3);
    let n = 0;
    for (const c of cpus) {
      c.onRun = (cpu) => {
        // Every seventh turn halts the CPU and wakes the next one through a kick.
        if (++n % 7 === 0) {
          cpu.halted = true;
          const next = cpus[(cpu.index + 1) % 3];
          next.halted = false;
          m.kickCpu(next.index);
        }
      };
    }
    m.loop.createTimer("tick", () => {}).arm(123_456);
    await m.run({ maxInstructions: 20 * SMP_QUANTUM });
    return { log, now: m.loop.nowNs };
  };
  assert.deepEqual(await runOnce(), await runOnce());
});

Deno.test("Machine with one CPU keeps the one-CPU executor: no quantum, CPU 0 current", async () => {
  const { m, log } = machine(1);
  await m.run({ maxInstructions: 150_000 });
  assert.deepEqual(log, ["0:100000", "0:50000"]);
  assert.equal(m.currentCpu, 0);
});

Deno.test("Machine.cpuContext() gives the CPUs one TSC clock that runs on through idle time", async () => {
  const { m, cpus } = machine(2);
  const a = m.cpuContext(0), b = m.cpuContext(1);
  assert.equal(a.apicId, 0);
  assert.equal(b.apicId, 1);
  assert.deepEqual(b.topology, { sockets: 1, dies: 1, cores: 2, threads: 1 });
  await m.run({ maxInstructions: 1000 });
  assert.equal(a.clock!(), 1000);
  for (const c of cpus) c.halted = true;
  m.loop.createTimer("t", () => {}).arm(m.loop.nowNs + 80_000);
  await m.run({ maxInstructions: 1000 });
  // 80 µs of idle time at 8 ns per instruction tick.
  assert.equal(b.clock!(), 1000 + 10_000);
  // One CPU counts the same clock: a TSC that stopped while idle would drift from the PM timer.
  const one = machine(1);
  await one.m.run({ maxInstructions: 500 });
  assert.equal(one.m.cpuContext(0).clock!(), 500);
});
