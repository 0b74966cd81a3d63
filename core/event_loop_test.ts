import assert from "node:assert/strict";
import { EventLoop, type SliceExecutor } from "./event_loop.ts";
import { HOST_ATTENTION } from "./host_attention.ts";

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

Deno.test("EventLoop.requestStop(): a quit sent while a reset is pending wins; a pause does not", async () => {
  for (
    const [requests, expected] of [
      [["reset", "exit"], "exit"],
      [["reset", "shutdown"], "shutdown"],
      [["reset", "pause"], "reset"],
      [["pause", "reset", "pause"], "reset"],
    ] as const
  ) {
    const loop = new EventLoop();
    const cpu = new FakeCpu();
    cpu.onInstruction = () => {
      if (cpu.retired === 3) { for (const r of requests) loop.requestStop(r); }
    };
    const result = await loop.run(cpu, { maxInstructions: 1000 });
    assert.deepEqual(result, { reason: "stop", detail: expected, instructions: 3 }, `${requests}`);
  }
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

Deno.test({
  name: "EventLoop.run(): bytes reaching a socket of this thread are read while the guest is busy",
  sanitizeResources: false,
  async fn() {
    // Each slice keeps the thread busy for 1 ms, as a guest that never halts. Without a
    // real wait now and then, Deno's runtime polled sockets only every few dozen turns of
    // its loop: ~0.4 s (median) with such a guest, ~90 turns of 5 ms.
    const busy: SliceExecutor = {
      runSlice(max) {
        const end = performance.now() + 1;
        while (performance.now() < end) { /* busy */ }
        retired += max;
        return max;
      },
      isIdle: () => false,
      instructionsRetired: () => retired,
    };
    let retired = 0;
    const loop = new EventLoop({ maxSliceInstructions: 1000 });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    // The client runs on a thread of its own; it says "sent" by message (which a turn of
    // the loop delivers) right after writing its byte.
    const worker = new Worker(
      URL.createObjectURL(
        new Blob([
          `self.onmessage = async (e) => {
            const conn = await Deno.connect({ hostname: "127.0.0.1", port: e.data });
            await conn.write(new Uint8Array([42]));
            self.postMessage("sent");
            await new Promise((r) => setTimeout(r, 60_000));
          };`,
        ], { type: "application/javascript" }),
      ),
      { type: "module" },
    );
    let sentAt = -1;
    let readAt = -1;
    // (Under load the byte may be read before the message arrives: then it was read at once.)
    const sent = new Promise<void>((resolve) =>
      worker.onmessage = () => {
        sentAt = retired;
        resolve();
      }
    );
    void (async () => {
      const conn = await listener.accept();
      const n = await conn.read(new Uint8Array(1));
      readAt = retired;
      assert.equal(n, 1);
      loop.requestStop("read");
      conn.close();
    })();
    worker.postMessage(listener.addr.port);
    try {
      // At most 5 s of busy slices.
      const result = await loop.run(busy, { maxInstructions: 5000 * 1000 });
      assert.equal(result.reason, "stop", "the socket was never read while the guest ran");
      await sent;
      // Busy slices between "sent" and the read: 3-11 measured (the poll comes every 5-50 ms);
      // 220-290 without the polls (the runtime polled sockets every ~60 turns of its loop).
      assert.ok(sentAt >= 0);
      const slices = (readAt - sentAt) / 1000;
      assert.ok(slices < 100, `the byte waited ${slices} busy slices of 1 ms`);
    } finally {
      worker.terminate();
      listener.close();
    }
  },
});

Deno.test({
  name:
    "EventLoop.run(): a thread's message flagged in HOST_ATTENTION is handled after the current slice",
  sanitizeResources: false,
  async fn() {
    // The worker posts, then sets the attention word, then says so through `sync`; the
    // slice that asked waits for that, so the message is queued before the slice ends.
    // Slices take no time here: without the word, the next turn of the host loop (every
    // 5 ms) would come thousands of slices later.
    const sync = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      URL.createObjectURL(
        new Blob([
          `self.onmessage = (e) => {
            const [attention, sync] = e.data;
            self.postMessage("hello");
            Atomics.store(new Int32Array(attention), 0, 1);
            Atomics.store(sync, 0, 1);
            Atomics.notify(sync, 0);
          };`,
        ], { type: "application/javascript" }),
      ),
      { type: "module" },
    );
    let slices = 0;
    let askedAt = -1;
    let handledAt = -1;
    const loop = new EventLoop({ maxSliceInstructions: 1000 });
    worker.onmessage = () => {
      handledAt = slices;
      loop.requestStop("handled");
    };
    const executor: SliceExecutor = {
      runSlice(max) {
        slices++;
        if (slices === 100) {
          askedAt = slices;
          worker.postMessage([HOST_ATTENTION, sync]);
          Atomics.wait(sync, 0, 0, 10_000);
        }
        return max;
      },
      isIdle: () => false,
      instructionsRetired: () => slices * 1000,
    };
    try {
      const result = await loop.run(executor, { maxInstructions: 1e9 });
      assert.equal(result.reason, "stop");
      assert.equal(sync[0], 1, "the worker never answered");
      assert.equal(askedAt, 100);
      // Handled in the turn right after the slice that was running.
      assert.equal(handledAt, askedAt, `handled ${handledAt - askedAt} slices later`);
    } finally {
      worker.terminate();
    }
  },
});

Deno.test("EventLoop.run(): without network permission the socket polls fall back to a timer", async () => {
  // A busy run of ~40 ms (several poll periods) in a process that may not use the network.
  const script = `
    import { EventLoop } from ${JSON.stringify(new URL("./event_loop.ts", import.meta.url).href)};
    let retired = 0;
    const busy = {
      runSlice(max) {
        const end = performance.now() + 1;
        while (performance.now() < end) {}
        retired += max;
        return max;
      },
      isIdle: () => false,
      instructionsRetired: () => retired,
    };
    const result = await new EventLoop({ maxSliceInstructions: 1000 }).run(busy, {
      maxInstructions: 40_000,
    });
    console.log(result.reason, result.instructions);
  `;
  const dir = await Deno.makeTempDir({ prefix: "vmkit-loop-" });
  const file = `${dir}/busy.js`;
  await Deno.writeTextFile(file, script);
  const out = await new Deno.Command(Deno.execPath(), {
    // Reading only: `deno eval` would grant everything.
    args: ["run", "--no-config", "--no-prompt", "--allow-read", file],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "budget 40000");
});
