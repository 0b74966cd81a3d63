import assert from "node:assert/strict";
import { EventLoop, type SliceExecutor } from "./event_loop.ts";

/** A CPU stand-in: counts instructions, halts when told, runs a hook per instruction. */
class FakeCpu implements SliceExecutor {
  retired = 0;
  halted = false;
  slices: number[] = [];
  onInstruction: (() => void) | null = null;
  #exit = false;
  runSlice(max: number): number {
    this.slices.push(max);
    this.#exit = false;
    let n = 0;
    while (n < max && !this.halted && !this.#exit) {
      this.retired++;
      n++;
      this.onInstruction?.();
    }
    return n;
  }
  isIdle(): boolean {
    return this.halted;
  }
  instructionsRetired(): number {
    return this.retired;
  }
  interrupt(): void {
    this.#exit = true;
  }
}

Deno.test("EventLoop.run() ends slices at the next timer deadline", async () => {
  const loop = new EventLoop({ nsPerInstruction: 10 });
  const cpu = new FakeCpu();
  const fired: number[] = [];
  loop.createTimer("t", (now) => fired.push(now)).arm(1000);
  const result = await loop.run(cpu, { maxInstructions: 300 });
  assert.equal(result.reason, "budget");
  assert.equal(result.instructions, 300);
  assert.deepEqual(fired, [1000]);
  assert.equal(cpu.slices[0], 100);
  assert.equal(loop.nowNs, 3000);
});

Deno.test("EventLoop.nowNs is exact inside a slice", async () => {
  const loop = new EventLoop({ nsPerInstruction: 4 });
  const cpu = new FakeCpu();
  const seen: number[] = [];
  cpu.onInstruction = () => {
    if (cpu.retired === 10) seen.push(loop.nowNs);
  };
  await loop.run(cpu, { maxInstructions: 20 });
  assert.deepEqual(seen, [40]);
});

Deno.test("EventLoop.run() skips halted time to the next timer when not realtime", async () => {
  const loop = new EventLoop({ nsPerInstruction: 1 });
  const cpu = new FakeCpu();
  cpu.halted = true;
  const timer = loop.createTimer("wake", () => {
    cpu.halted = false;
  });
  timer.arm(1_000_000_000);
  const result = await loop.run(cpu, { maxInstructions: 5 });
  assert.equal(result.reason, "budget");
  assert.equal(loop.nowNs, 1_000_000_005);
});

Deno.test("EventLoop.run() reports idle when halted with nothing scheduled", async () => {
  const loop = new EventLoop();
  const cpu = new FakeCpu();
  cpu.halted = true;
  assert.equal((await loop.run(cpu)).reason, "idle");
});

Deno.test("EventLoop.requestStop() from a device ends the run with its detail", async () => {
  const loop = new EventLoop();
  const cpu = new FakeCpu();
  cpu.onInstruction = () => {
    if (cpu.retired === 7) loop.requestStop("reset");
  };
  const result = await loop.run(cpu, { maxInstructions: 1000 });
  assert.deepEqual(result, { reason: "stop", detail: "reset", instructions: 7 });
});

Deno.test("EventLoop.requestStop(): a quit sent while a pause is pending is not lost behind it", async () => {
  const loop = new EventLoop();
  const cpu = new FakeCpu();
  cpu.onInstruction = () => {
    if (cpu.retired === 3) {
      loop.requestStop("pause"); // the monitor's stop (or -S)...
      loop.requestStop("exit"); // ...then quit before the loop looked
      loop.requestStop("reset"); // a later request does not replace the quit
    }
  };
  const result = await loop.run(cpu, { maxInstructions: 1000 });
  assert.deepEqual(result, { reason: "stop", detail: "exit", instructions: 3 });
});

Deno.test("EventLoop.track() lets async I/O complete while the guest waits", async () => {
  const loop = new EventLoop();
  const cpu = new FakeCpu();
  cpu.halted = true;
  loop.track(new Promise<void>((resolve) => setTimeout(resolve, 5))).then(() => {
    cpu.halted = false;
  });
  const result = await loop.run(cpu, { maxInstructions: 3 });
  assert.equal(result.reason, "budget");
  assert.equal(loop.pendingIo, 0);
});

Deno.test("EventLoop.run() in realtime mode waits host time for a halted guest's timer", async () => {
  const loop = new EventLoop({ realtime: true });
  const cpu = new FakeCpu();
  cpu.halted = true;
  loop.createTimer("wake", () => {
    cpu.halted = false;
  }).arm(20_000_000);
  const start = performance.now();
  await loop.run(cpu, { maxInstructions: 1 });
  assert.ok(performance.now() - start >= 15);
});

Deno.test("EventLoop.defer() runs work between slices", async () => {
  const loop = new EventLoop();
  const cpu = new FakeCpu();
  const order: string[] = [];
  cpu.onInstruction = () => {
    if (cpu.retired === 1) loop.defer(() => order.push(`deferred@${cpu.retired}`));
  };
  await loop.run(cpu, { maxInstructions: 10 });
  assert.deepEqual(order, ["deferred@1"]);
});

Deno.test("Timer.arm() re-armed from its callback fires periodically", () => {
  const loop = new EventLoop();
  const fired: number[] = [];
  const timer = loop.createTimer("periodic", (now) => {
    fired.push(now);
    timer.arm(now + 100);
  });
  timer.arm(100);
  loop.advanceTo(350);
  assert.deepEqual(fired, [100, 200, 300]);
  assert.equal(timer.deadlineNs, 400);
});
