import assert from "node:assert/strict";
import { type CpuBackend, RunExit } from "../cpu.ts";
import { BALLOON, type MemoryBalloon } from "../device.ts";
import { Machine } from "../machine.ts";
import type { MonitorHost } from "./commands.ts";
import { Monitor } from "./monitor.ts";

class IdleCpu implements CpuBackend {
  readonly arch = "fake";
  readonly model = "fake";
  instructionsRetired = 0;
  halted = true;
  reset(): void {}
  run(): RunExit {
    return RunExit.Halt;
  }
  setInterruptSource(): void {}
  raiseNmi(): void {}
  requestExit(): void {}
  requestReset(): void {}
  registers(): Record<string, number> {
    return {};
  }
}

/** A balloon whose guest driver the test plays. */
class FakeBalloon implements MemoryBalloon {
  actualPages = 0;
  targetPages = 0;
  #listeners: (() => void)[] = [];
  setTargetPages(pages: number): void {
    this.targetPages = pages;
  }
  onActualChange(listener: () => void): void {
    this.#listeners.push(listener);
  }
  report(pages: number): void {
    this.actualPages = pages;
    for (const l of this.#listeners) l();
  }
}

function setup(withBalloon: boolean) {
  const machine = new Machine({
    ramBytes: 256 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: () => new IdleCpu(),
  });
  const balloon = new FakeBalloon();
  if (withBalloon) machine.provide(BALLOON, balloon);
  const host: MonitorHost = {
    version: { major: 7, minor: 2, micro: 0, package: "" },
    chardevs: () => [],
    drives: () => [],
    quit: () => {},
  };
  const monitor = new Monitor(machine, host);
  const sent: string[] = [];
  const session = monitor.attachQmp({ write: (t) => sent.push(t) });
  const run = async (...requests: string[]) => {
    session.receive(new TextEncoder().encode(requests.join("\n") + "\n"));
    await session.idle();
  };
  const messages = () =>
    sent.join("").split("\r\n").filter((l) => l).map((l) => JSON.parse(l)).slice(1);
  return { monitor, balloon, run, messages };
}

Deno.test("balloon asks for (RAM - target) pages; query-balloon reports RAM less the balloon", async () => {
  const { balloon, run, messages } = setup(true);
  await run(
    '{"execute": "qmp_capabilities"}',
    '{"execute": "balloon", "arguments": {"value": 134217728}}',
    '{"execute": "balloon", "arguments": {"value": 1099511627776}}',
    '{"execute": "balloon", "arguments": {"value": -1}}',
  );
  // The second target is above the RAM: the balloon empties.
  assert.equal(balloon.targetPages, 0);
  balloon.report(32768);
  await run('{"execute": "query-balloon"}');
  const m = messages().filter((x) => !("event" in x));
  assert.deepEqual(m.slice(1, 3), [{ return: {} }, { return: {} }]);
  assert.deepEqual(m[3].error, {
    class: "GenericError",
    desc: "Parameter 'target' expects a size",
  });
  assert.deepEqual(m[4], { return: { actual: 128 << 20 } });
});

Deno.test("BALLOON_CHANGE goes out at once, then at most once a second with the newest size", async () => {
  const { balloon, run, messages } = setup(true);
  await run('{"execute": "qmp_capabilities"}');
  balloon.report(256);
  balloon.report(512);
  balloon.report(1024);
  const events = () => messages().filter((x) => x.event === "BALLOON_CHANGE").map((x) => x.data);
  // The first at once; the two that followed within the period are one, sent later.
  assert.deepEqual(events(), [{ actual: (256 << 20) - 256 * 4096 }]);
  for (let i = 0; i < 200 && events().length < 2; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(events(), [
    { actual: (256 << 20) - 256 * 4096 },
    { actual: (256 << 20) - 1024 * 4096 },
  ]);
});

Deno.test("balloon commands without a balloon device are DeviceNotActive, as QEMU's", async () => {
  const { monitor, run, messages } = setup(false);
  await run('{"execute": "qmp_capabilities"}', '{"execute": "query-balloon"}');
  assert.deepEqual(messages()[1].error, {
    class: "DeviceNotActive",
    desc: "No balloon device has been activated",
  });
  assert.equal(await monitor.hmp("info balloon"), "Error: No balloon device has been activated\n");
  assert.equal(await monitor.hmp("balloon 100"), "Error: No balloon device has been activated\n");
});
