import assert from "node:assert/strict";
import { IrqLine } from "../../core/irq.ts";
import { Machine } from "../../core/machine.ts";
import { Monitor } from "../../core/monitor/monitor.ts";
import { testConfig } from "../machines/test_util.ts";
import { HOST_KEY_BACKLOG, I8042, PS2_QUEUE_HEADROOM, PS2_QUEUE_SIZE } from "./kbd_i8042.ts";

function setup() {
  const events: string[] = [];
  let a20 = true;
  const kbd = new IrqLine("irq1");
  const i8042 = new I8042("i8042", { kbd, aux: new IrqLine("irq12") }, {
    reset: () => events.push("reset"),
    setA20: (enabled) => {
      a20 = enabled;
      events.push(`a20 ${enabled}`);
    },
    a20: () => a20,
  }, null);
  return { i8042, kbd, events };
}

/** Reads every byte waiting in the output buffer. */
function drain(i8042: I8042): number[] {
  const out: number[] = [];
  while (i8042.readStatus() & 0x01) out.push(i8042.readData());
  return out;
}

Deno.test("I8042 self test 0xAA answers 0x55 and sets the system flag", () => {
  const { i8042 } = setup();
  i8042.writeCommand(0xaa);
  assert.equal(i8042.readStatus() & 0x05, 0x05);
  assert.deepEqual(drain(i8042), [0x55]);
});

Deno.test("I8042 command byte is read with 0x20 and written with 0x60", () => {
  const { i8042, kbd } = setup();
  i8042.writeCommand(0x20);
  assert.deepEqual(drain(i8042), [0x45]);
  i8042.writeCommand(0x60);
  i8042.writeData(0x44); // interrupts off
  i8042.writeCommand(0x20);
  assert.equal(kbd.level, false);
  assert.deepEqual(drain(i8042), [0x44]);
});

Deno.test("I8042 output port write 0xD1 drives the A20 gate", () => {
  const { i8042, events } = setup();
  i8042.writeCommand(0xd1);
  i8042.writeData(0x01); // A20 off, reset line high (inactive)
  i8042.writeCommand(0xd1);
  i8042.writeData(0x03);
  assert.deepEqual(events, ["a20 false", "a20 true"]);
  i8042.writeCommand(0xd0);
  assert.equal(drain(i8042)[0] & 0x03, 0x03);
});

Deno.test("I8042 pulse command 0xFE requests a machine reset", () => {
  const { i8042, events } = setup();
  i8042.writeCommand(0xfe);
  assert.deepEqual(events, ["reset"]);
  i8042.writeCommand(0xff); // pulses no line
  assert.deepEqual(events, ["reset"]);
});

Deno.test("I8042 keyboard reset 0xFF answers ACK then self-test passed, with IRQ 1", () => {
  const { i8042, kbd } = setup();
  i8042.writeData(0xff);
  assert.equal(kbd.level, true);
  assert.deepEqual(drain(i8042), [0xfa, 0xaa]);
  assert.equal(kbd.level, false);
});

Deno.test("I8042 keeps its reply queues bounded when a guest loops `out 0x60, 0xee` without reading", () => {
  const { i8042 } = setup();
  for (let i = 0; i < 1_000_000; i++) i8042.writeData(0xee);
  // The mouse too: 0xd4 then GET DEVICE ID, forever.
  for (let i = 0; i < 100_000; i++) {
    i8042.writeCommand(0xd4);
    i8042.writeData(0xf2);
  }
  const state = i8042.saveState() as { kbdQueue: number[]; auxQueue: number[] };
  assert.ok(state.kbdQueue.length <= PS2_QUEUE_SIZE + PS2_QUEUE_HEADROOM);
  assert.ok(state.auxQueue.length <= PS2_QUEUE_SIZE + PS2_QUEUE_HEADROOM);
  const bytes = drain(i8042);
  assert.ok(bytes.length <= 2 * (PS2_QUEUE_SIZE + PS2_QUEUE_HEADROOM) + 1);
  assert.equal(bytes[0], 0xee, "the first answers are kept, the newest dropped");
  // The controller still works once the guest reads.
  i8042.writeCommand(0xaa);
  assert.deepEqual(drain(i8042), [0x55]);
});

Deno.test("the monitor's sendkey reaches the guest through port 0x60", async () => {
  const machine = new Machine(testConfig());
  machine.createDevice("i8042");
  await machine.realize();
  const monitor = new Monitor(machine, {
    version: { major: 7, minor: 2, micro: 0, package: "" },
    chardevs: () => [],
    drives: () => [],
    quit: () => {},
  });
  assert.equal(await monitor.hmp("sendkey ctrl-c 0"), "");
  const read: number[] = [];
  for (let i = 0; i < 8 && (machine.io.in(0x64, 1) & 1); i++) read.push(machine.io.in(0x60, 1));
  assert.deepEqual(read, [0x1d, 0x2e, 0xae, 0x9d]);
});

Deno.test("I8042.keyEvent() sends set 1 codes while the controller translates, set 2 codes when it does not", () => {
  const { i8042 } = setup();
  // Firmware default: translation on (command byte bit 6).
  i8042.keyEvent(0x1e, true); // 'a'
  i8042.keyEvent(0x1e, false);
  i8042.keyEvent(0xe048, true); // Up
  i8042.keyEvent(0xe048, false);
  assert.deepEqual(drain(i8042), [0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8]);
  // Translation off (Linux's atkbd may ask for raw set 2): make codes and F0 breaks.
  i8042.writeCommand(0x60);
  i8042.writeData(0x05);
  for (const [code, make] of [[0x1e, 0x1c], [0x1c, 0x5a], [0x41, 0x83], [0x58, 0x07]]) {
    i8042.keyEvent(code, true);
    i8042.keyEvent(code, false);
    assert.deepEqual(drain(i8042), [make, 0xf0, make], `set 1 code ${code.toString(16)}`);
  }
  i8042.keyEvent(0xe048, true);
  i8042.keyEvent(0xe048, false);
  assert.deepEqual(drain(i8042), [0xe0, 0x75, 0xe0, 0xf0, 0x75]);
  // The keyboard told to stop scanning (0xF5) sends nothing.
  i8042.writeData(0xf5);
  drain(i8042);
  i8042.keyEvent(0x1e, true);
  assert.deepEqual(drain(i8042), []);
});

Deno.test("keyBytes: set 1 to set 2 gives every key its own code", async () => {
  const { keyBytes } = await import("./kbd_i8042.ts");
  const seen = new Map<number, number>();
  for (let code = 1; code < 0x60; code++) {
    const bytes = keyBytes(code, true, 2);
    if (bytes.length === 0) continue;
    assert.equal(seen.get(bytes[0]), undefined, `set 1 ${code.toString(16)} collides`);
    seen.set(bytes[0], code);
  }
  assert.ok(seen.size >= 88, `${seen.size} keys mapped`);
});

Deno.test("I8042 input(): pointer moves become PS/2 mouse packets once the guest enables reporting", () => {
  const { i8042 } = setup();
  const aux = (v: number) => {
    i8042.writeCommand(0xd4);
    i8042.writeData(v);
  };
  i8042.input({ type: "pointer", x: 10, y: 10, absolute: true, buttons: 0 });
  assert.deepEqual(drain(i8042), [], "no packets before 0xF4");
  aux(0xf4);
  assert.deepEqual(drain(i8042), [0xfa]);
  // Right 5 and down 3 (PS/2 Y grows upwards) with the left button.
  i8042.input({ type: "pointer", x: 15, y: 13, absolute: true, buttons: 1 });
  assert.deepEqual(drain(i8042), [0x08 | 0x01 | 0x20, 5, 0xfd]);
  // A jump of 300 to the left goes out as two packets of at most 255.
  i8042.input({ type: "pointer", x: -300, y: 0, absolute: false, buttons: 0 });
  assert.deepEqual(drain(i8042), [0x08 | 0x10, 1, 0, 0x08 | 0x10, 0xd3, 0]);
  // Keys go to the keyboard, not the mouse.
  i8042.input({ type: "key", scancode: 0x1c, down: true });
  assert.deepEqual(drain(i8042), [0x1c]);
});

Deno.test("I8042.keyEvent(): a burst of host keys larger than the queue reaches a slow guest whole and in order", () => {
  const { i8042 } = setup();
  // Shift+4 ('$') then 'a', 20 times: 120 bytes at once, where the PS/2 queue holds 16.
  const expected: number[] = [];
  for (let i = 0; i < 20; i++) {
    i8042.keyEvent(0x2a, true);
    i8042.keyEvent(0x05, true);
    i8042.keyEvent(0x05, false);
    i8042.keyEvent(0x2a, false);
    i8042.keyEvent(0x1e, true);
    i8042.keyEvent(0x1e, false);
    expected.push(0x2a, 0x05, 0x85, 0xaa, 0x1e, 0x9e);
  }
  assert.deepEqual(drain(i8042), expected);
  // A flood past the backlog keeps what fits and drops the rest whole: memory stays bounded.
  for (let i = 0; i < HOST_KEY_BACKLOG + 500; i++) i8042.keyEvent(0x1e, (i & 1) === 0);
  const got = drain(i8042);
  assert.ok(got.length <= HOST_KEY_BACKLOG + PS2_QUEUE_SIZE + 1, `${got.length} bytes`); // + the output buffer
  assert.ok(got.length >= HOST_KEY_BACKLOG, `${got.length} bytes`);
  // A reset forgets keys still waiting.
  for (let i = 0; i < 40; i++) i8042.keyEvent(0x1e, (i & 1) === 0);
  i8042.reset();
  assert.deepEqual(drain(i8042), []);
});
