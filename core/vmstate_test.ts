import assert from "node:assert/strict";
import type { CpuBackend, RunExit } from "./cpu.ts";
import { type Device, type DeviceState, GUEST_RAM } from "./device.ts";
import { Machine, type MachineConfig } from "./machine.ts";
import {
  decodeState,
  encodeState,
  loadMachineState,
  migrationBlockers,
  saveMachineState,
  streamBytes,
  VmStateError,
} from "./vmstate.ts";
import { X86State } from "./x86_state.ts";

Deno.test("encodeState() round-trips plain values, typed arrays and a sparse large array", () => {
  const big = new Uint8Array(256 * 1024);
  big[5] = 7;
  big[200_000] = 9;
  const state = {
    n: -1.5,
    inf: Infinity,
    s: "héllo",
    b: [true, false, null],
    u16: new Uint16Array([1, 65535]),
    u32: new Uint32Array([0xdeadbeef]),
    i32: new Int32Array([-2]),
    f64: new Float64Array([0.25]),
    nested: { big, empty: new Uint8Array(0) },
  };
  const bytes = encodeState(state);
  // Two pages hold data; the other 62 take a bit each.
  assert.ok(
    bytes.length < 2 * 4096 + 512,
    `a mostly zero 256 KiB array took ${bytes.length} bytes`,
  );
  assert.deepEqual(decodeState(bytes), state);
});

Deno.test("encodeState() refuses what it cannot save, naming the field", () => {
  assert.throws(
    () => encodeState({ a: { f: (() => 1) as unknown as number } }),
    /state\.a\.f: a function cannot be saved/,
  );
  assert.throws(
    () => encodeState({ m: new Map() as unknown as number }),
    /state\.m: a object cannot be saved/,
  );
});

Deno.test("decodeState() rejects truncated, oversized and unknown input with VmStateError", () => {
  const good = encodeState({ a: new Uint8Array([1, 2, 3]), s: "x" });
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => decodeState(good.subarray(0, n)), VmStateError, `cut at ${n}`);
  }
  assert.throws(() => decodeState(new Uint8Array([99])), /unknown value tag 99/);
  // An array claiming 4 billion items in a few bytes.
  assert.throws(() => decodeState(new Uint8Array([5, 0xff, 0xff, 0xff, 0xff])), VmStateError);
  // A sparse array claiming 2^50 bytes.
  const huge = new Uint8Array(9);
  huge[0] = 32;
  new DataView(huge.buffer).setFloat64(1, 2 ** 50, true);
  assert.throws(() => decodeState(huge), VmStateError);
  // Uint32Array with a byte length that is not a multiple of 4.
  assert.throws(() => decodeState(new Uint8Array([18, 3, 0, 0, 0, 1, 2, 3])), VmStateError);
  assert.throws(() => decodeState(new Uint8Array([...good, 0])), /trailing bytes/);
});

/** A CPU whose architectural state is one X86State, as the x86 backends keep it. */
class StateCpu implements CpuBackend {
  readonly arch = "x86";
  readonly model = "test";
  instructionsRetired = 0;
  halted = true;
  st = new X86State();
  reset(): void {}
  run(_max: number): RunExit {
    return 2 as RunExit;
  }
  setInterruptSource(): void {}
  raiseNmi(): void {}
  requestExit(): void {}
  requestReset(): void {}
  registers(): Record<string, number> {
    return { eip: this.st.rip };
  }
  getState(state: X86State): void {
    state.bytes.set(this.st.bytes);
  }
  setState(state: X86State): void {
    this.st.bytes.set(state.bytes);
  }
}

class Counter implements Device {
  readonly model = "test-counter";
  value = 0;
  blocker: string | null = null;
  constructor(readonly id: string) {}
  reset(): void {
    this.value = 0;
  }
  saveState(): DeviceState {
    return { value: this.value };
  }
  loadState(state: DeviceState): void {
    this.value = state.value as number;
  }
  migrationBlocker(): string | null {
    return this.blocker;
  }
}

function machine(): { m: Machine; dev: Counter; cpu: StateCpu; ram: Uint8Array } {
  const cpu = new StateCpu();
  const config: MachineConfig = {
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: () => cpu,
  };
  const m = new Machine(config);
  const ram = new Uint8Array(1 << 20);
  m.provide(GUEST_RAM, ram);
  m.createCpus();
  const dev = m.addDevice(new Counter("counter0"));
  return { m, dev, cpu, ram };
}

Deno.test("saveMachineState() and loadMachineState() carry RAM, CPU, devices, clock and timers", () => {
  const a = machine();
  a.ram.set([1, 2, 3], 4096 * 3);
  a.ram[a.ram.length - 1] = 0x55;
  a.cpu.st.rip = 0x1234;
  a.dev.value = 42;
  const fired: number[] = [];
  const timerA = a.m.loop.createTimer("tick", (now) => fired.push(now));
  a.m.loop.advanceTo(5000);
  timerA.arm(9000);
  const stream = saveMachineState(a.m);
  // Only three pages of RAM hold data: the rest is a bitmap bit each.
  assert.ok(stream.bytes < 3 * 4096 + 4096, `${stream.bytes} bytes`);

  const b = machine();
  b.ram.fill(0xee); // loadvm over a running machine: every page is replaced
  const firedB: number[] = [];
  b.m.loop.createTimer("tick", (now) => firedB.push(now));
  loadMachineState(b.m, streamBytes(stream));
  assert.deepEqual(b.ram, a.ram);
  assert.equal(b.cpu.st.rip, 0x1234);
  assert.equal(b.dev.value, 42);
  assert.equal(b.m.loop.nowNs, 5000);
  b.m.loop.advanceTo(10_000);
  assert.deepEqual(firedB, [9000]);
});

Deno.test("migrationBlockers() names the devices and CPUs that stop a savevm", () => {
  const a = machine();
  assert.deepEqual(migrationBlockers(a.m), []);
  a.dev.blocker = "a request is in flight";
  assert.deepEqual(migrationBlockers(a.m), [
    "device 'counter0' (test-counter): a request is in flight",
  ]);
  assert.throws(() => saveMachineState(a.m), /Cannot save the VM: device 'counter0'/);
  (a.cpu as { getState?: unknown }).getState = undefined;
  assert.match(migrationBlockers(a.m)[0], /CPU 0 \(x86 test\) cannot save its state/);
});

Deno.test("loadMachineState() refuses another machine's state and damaged streams", () => {
  const a = machine();
  const bytes = streamBytes(saveMachineState(a.m));
  const b = machine();
  b.m.addDevice(new Counter("counter1"));
  assert.throws(() => loadMachineState(b.m, bytes), /lacks device 'counter1'/);
  const c = machine();
  assert.throws(() => loadMachineState(c.m, bytes.subarray(0, bytes.length - 30)), VmStateError);
  assert.throws(() => loadMachineState(c.m, new Uint8Array(16)), /not in vmkit's format/);
  const wrongVersion = bytes.slice();
  wrongVersion[8] = 9;
  assert.throws(() => loadMachineState(c.m, wrongVersion), /format version 9/);
});
