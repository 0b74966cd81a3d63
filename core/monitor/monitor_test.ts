import assert from "node:assert/strict";
import { type CpuBackend, RunExit } from "../cpu.ts";
import { Machine } from "../machine.ts";
import { checkQmpArgs, monitorCommands, MonitorError, type MonitorHost } from "./commands.ts";
import { JsonStreamSplitter, Monitor } from "./monitor.ts";

/** A CPU that retires its whole budget each slice (a busy guest), leaving when asked. */
class BusyCpu implements CpuBackend {
  readonly arch = "fake";
  readonly model = "fake";
  instructionsRetired = 0;
  halted = false;
  resets = 0;
  reset(): void {
    this.resets++;
  }
  run(max: number): RunExit {
    this.instructionsRetired += Math.min(max, 1000);
    return RunExit.Budget;
  }
  setInterruptSource(): void {}
  raiseNmi(): void {}
  requestExit(): void {}
  requestReset(): void {}
  registers(): Record<string, number> {
    return { eax: 1 };
  }
}

function setup(hostClock = false) {
  const machine = new Machine({
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    clock: { hostYieldMs: 1, hostClock },
    createCpu: () => new BusyCpu(),
  });
  machine.memory.addRam("ram", 0, 1 << 20);
  machine.createCpus();
  let quits = 0;
  const host: MonitorHost = {
    name: "t",
    version: { major: 7, minor: 2, micro: 0, package: "" },
    chardevs: () => [],
    drives: () => [],
    quit: () => quits++,
  };
  const monitor = new Monitor(machine, host);
  const sent: string[] = [];
  const session = monitor.attachQmp({ write: (t) => sent.push(t) });
  const send = (text: string) => session.receive(new TextEncoder().encode(text));
  const messages = () => sent.join("").split("\r\n").filter((l) => l).map((l) => JSON.parse(l));
  return { machine, monitor, send, messages, cpu: machine.cpus[0] as BusyCpu, quits: () => quits };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to 20 s of host time, for a loaded machine) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await tick(10);
  assert.ok(cond());
}

Deno.test("stop pauses the CPU and the virtual clock; cont resumes both; quit ends the run", async () => {
  const { machine, send, messages, cpu, quits } = setup();
  const run = machine.run();
  send('{"execute": "qmp_capabilities"}');
  await until(() => cpu.instructionsRetired > 0);
  send('{"execute": "stop"}');
  await until(() => messages().length === 4); // greeting, two returns, STOP
  await tick();
  const retired = cpu.instructionsRetired, clock = machine.loop.nowNs;
  await tick(50);
  assert.equal(cpu.instructionsRetired, retired);
  assert.equal(machine.loop.nowNs, clock);
  assert.ok(machine.paused);
  // A reset while paused is carried out, and the machine stays paused (as in QEMU).
  send('{"execute": "system_reset"}');
  await until(() => cpu.resets === 2); // realize's reset, then ours
  assert.equal(cpu.instructionsRetired, retired);
  send('{"execute": "cont"}');
  await until(() => cpu.instructionsRetired > retired);
  assert.ok(machine.loop.nowNs > clock);
  send('{"execute": "quit"}');
  const exit = await run;
  assert.deepEqual(exit, { reason: "exit", exitCode: 0 });
  assert.equal(quits(), 1);
  const events = messages().filter((m) => m.event).map((m) => m.event);
  assert.deepEqual(events, ["STOP", "RESET", "RESUME", "SHUTDOWN"]);
});

Deno.test("system_reset then quit in one read: the reset is carried out first, then vmkit quits", async () => {
  const { machine, send, messages, cpu, quits } = setup();
  const run = machine.run();
  send('{"execute": "qmp_capabilities"}');
  await until(() => cpu.instructionsRetired > 0);
  // Both requests reach the monitor together, while the guest runs.
  send('{"execute": "system_reset"}\n{"execute": "quit"}');
  // (A quit lost behind the reset would leave the guest running for good.)
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exit = await Promise.race([run, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
  clearTimeout(timer);
  machine.requestExit(1);
  assert.deepEqual(exit, { reason: "exit", exitCode: 0 });
  assert.equal(quits(), 1);
  assert.equal(cpu.resets, 2); // realize's reset, then ours
  // QEMU's order: RESET before system_reset's answer, SHUTDOWN before quit's.
  const seen = messages().slice(2).map((m) => (m.event as string) ?? "return");
  assert.deepEqual(seen, ["RESET", "return", "SHUTDOWN", "return"]);
});

Deno.test("stop holds a host clock (accel=kvm) too: no time passes for the guest while paused", async () => {
  const { machine, send, cpu } = setup(true);
  const run = machine.run();
  send('{"execute": "qmp_capabilities"}');
  await until(() => cpu.instructionsRetired > 0);
  send('{"execute": "stop"}');
  // Once the run loop has parked, the clock stands still for good.
  let last = -1;
  for (let i = 0; i < 2000 && machine.loop.nowNs !== last; i++) {
    last = machine.loop.nowNs;
    await tick(20);
  }
  const clock = machine.loop.nowNs;
  await tick(100);
  assert.equal(machine.loop.nowNs, clock);
  const contAt = performance.now();
  send('{"execute": "cont"}');
  await until(() => machine.loop.nowNs > clock);
  // It goes on from where it stood: no more time passed than since cont.
  assert.ok(machine.loop.nowNs - clock <= (performance.now() - contAt) * 1e6);
  send('{"execute": "quit"}');
  await run;
});

Deno.test("a plugin's command joins the table, and bad requests get QMP errors, never a throw", async () => {
  const { machine, send, messages } = setup();
  monitorCommands(machine).addQmp({
    name: "x-answer",
    args: [{ name: "n", type: "int" }],
    run: (_ctx, args) => ({ doubled: (args.n as number) * 2 }),
  });
  for (
    const text of [
      '{"execute": "x-answer", "arguments": {"n": 1}}', // before negotiation
      '{"execute": "qmp_capabilities"}',
      '{"execute": "qmp_capabilities"}',
      '{"execute": "x-answer", "arguments": {"n": 21}, "id": "a"}',
      '{"execute": "x-answer", "arguments": {"n": "21"}}',
      '{"execute": "x-answer"}',
      '{"execute": "x-answer", "arguments": []}',
      '{"execute": 5}',
      '"just a string"',
      "{not json}",
      '{"execute": "human-monitor-command", "arguments": {"command-line": "x /zz 0"}}',
      '{"execute": "human-monitor-command", "arguments": {"command-line": "xp /4xb 0x100000000"}}',
    ]
  ) send(text + "\n");
  await until(() => messages().length === 13);
  const m = messages().slice(1);
  const classes = m.map((r) => r.error?.class ?? "ok");
  assert.deepEqual(classes, [
    "CommandNotFound",
    "ok",
    "CommandNotFound",
    "ok",
    "GenericError",
    "GenericError",
    "GenericError",
    "GenericError",
    "GenericError",
    "GenericError",
    "ok",
    "ok",
  ]);
  assert.deepEqual(m[3], { return: { doubled: 42 }, id: "a" });
  assert.equal(m[4].error.desc, "Invalid parameter type for 'n', expected: integer");
  assert.equal(m[5].error.desc, "Parameter 'n' is missing");
  assert.equal(m[10].return, "invalid char in format: 'zz'\r\n");
});

Deno.test("JsonStreamSplitter takes requests split across reads, several per read, and refuses runaway ones once", () => {
  const s = new JsonStreamSplitter();
  const enc = new TextEncoder();
  assert.deepEqual(s.push(enc.encode('{"execute": "a", "x": "}{"')), []);
  assert.deepEqual(s.push(enc.encode('}{"execute": "b"}\n{"execute"')), [
    { text: '{"execute": "a", "x": "}{"}' },
    { text: '{"execute": "b"}' },
  ]);
  assert.deepEqual(s.push(enc.encode(': "c"}')), [{ text: '{"execute": "c"}' }]);
  // 2 MiB of one request: refused once, the rest skipped, and the stream goes on.
  const big = s.push(enc.encode('{"x": "' + "[{".repeat(1 << 20) + '"}'));
  assert.equal(big.length, 1);
  assert.match((big[0] as { error: string }).error, /longer than 1048576 bytes/);
  assert.deepEqual(s.push(enc.encode('{"execute": "d"}')), [{ text: '{"execute": "d"}' }]);
  // Nesting past 1024: refused once, whatever the depth.
  const deep = s.push(enc.encode("[".repeat(5000) + "]".repeat(5000) + "\n"));
  assert.deepEqual(deep, [{ error: "JSON nesting depth limit exceeded" }]);
  // Bytes that are not UTF-8.
  assert.deepEqual(s.push(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d])), [
    { error: "JSON parse error, invalid UTF-8 sequence" },
  ]);
  // An unclosed runaway is skipped without being kept until it closes.
  assert.equal(s.push(enc.encode("{" + "[".repeat(3 << 20))).length, 1);
  assert.deepEqual(s.push(enc.encode("]".repeat(3 << 20) + '}{"execute": "e"}')), [
    { text: '{"execute": "e"}' },
  ]);
});

Deno.test("checkQmpArgs refuses what QEMU refuses", () => {
  const cmd = {
    name: "c",
    args: [{ name: "s", type: "str" as const, optional: true }],
    run: () => ({}),
  };
  assert.deepEqual(checkQmpArgs(cmd, undefined), {});
  assert.throws(() => checkQmpArgs(cmd, { s: 1 }), MonitorError);
  assert.throws(() => checkQmpArgs(cmd, null), /must be an object/);
  assert.throws(() => checkQmpArgs(cmd, { t: "" }), /Parameter 't' is unexpected/);
});

Deno.test("HMP: banner, prompt, unknown commands and a huge line", async () => {
  const { monitor } = setup();
  const out: string[] = [];
  const s = monitor.attachHmp({ write: (t) => out.push(t) });
  const enc = new TextEncoder();
  s.receive(enc.encode("info status\r\nbogus\n"));
  s.receive(enc.encode("x".repeat(3 << 20)));
  s.receive(enc.encode("\ninfo name\n"));
  await until(() => out.join("").includes("(qemu) t\r\n(qemu) "));
  const text = out.join("");
  assert.ok(text.startsWith("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "));
  assert.match(text, /VM status: running\r\n\(qemu\) unknown command: 'bogus'\r\n\(qemu\) /);
  assert.match(text, /\(qemu\) t\r\n\(qemu\) $/);
});
