import assert from "node:assert/strict";
import { KEYBOARD } from "../device.ts";
import { Machine } from "../machine.ts";
import type { MonitorHost } from "./commands.ts";
import { Monitor } from "./monitor.ts";

function setup() {
  const machine = new Machine({
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    createCpu: () => {
      throw new Error("no CPU here");
    },
  });
  const typed: number[] = [];
  // A keyboard in set 1: each key event as the bytes a translating i8042 would queue.
  machine.provide(KEYBOARD, {
    sendScancodes: (codes) => typed.push(...codes),
    keyEvent: (code, down) => {
      if (code >= 0xe000) typed.push(0xe0);
      typed.push((code & 0x7f) | (down ? 0 : 0x80));
    },
  });
  const host: MonitorHost = {
    version: { major: 7, minor: 2, micro: 0, package: "" },
    chardevs: () => [],
    drives: () => [],
    quit: () => {},
  };
  return { monitor: new Monitor(machine, host), typed };
}

Deno.test("sendkey types set 1 make codes in order and break codes in reverse", async () => {
  const { monitor, typed } = setup();
  assert.equal(await monitor.hmp("sendkey ctrl-alt-delete 0"), "");
  assert.deepEqual(typed, [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]);
  typed.length = 0;
  assert.equal(await monitor.hmp("sendkey 0x1e 0"), ""); // a number is QEMU's qnum: 'a'
  assert.deepEqual(typed, [0x1e, 0x9e]);
  typed.length = 0;
  assert.equal(await monitor.hmp("sendkey kp_0-f12-1 0"), "");
  assert.deepEqual(typed, [0x52, 0x58, 0x02, 0x82, 0xd8, 0xd2]);
});

Deno.test("sendkey refuses unknown keys and a missing argument as QEMU 7.2 words it", async () => {
  const { monitor, typed } = setup();
  assert.equal(await monitor.hmp("sendkey foo"), "invalid parameter: foo\n");
  assert.equal(await monitor.hmp("sendkey a-nokey"), "invalid parameter: nokey\n");
  assert.equal(
    await monitor.hmp("sendkey"),
    'sendkey: string expected\nTry "help sendkey" for more information\n',
  );
  assert.deepEqual(typed, []);
});
