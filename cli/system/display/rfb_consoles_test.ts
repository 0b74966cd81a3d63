// The VNC server over several consoles: Ctrl-Alt-N switching as QEMU's, a text console taking the keys

import assert from "node:assert/strict";
import {
  DisplayRegistry,
  DisplaySurface,
  type InputEvent,
  type KeyEvent,
} from "../../../core/display.ts";
import { TextConsole } from "../../../core/text_console.ts";
import { ENCODING_DESKTOP_SIZE, ENCODING_RAW, RfbServer } from "./rfb_server.ts";
import { TestRfbClient } from "./test_client.ts";

const CONTROL_L = 0xffe3;
const ALT_L = 0xffe9;

function testFont(): Uint8Array {
  const font = new Uint8Array(4096);
  for (let c = 0; c < 256; c++) font.fill(c, c * 16, (c + 1) * 16);
  return font;
}

async function withConsoles(
  consoles: number,
  fn: (ctx: {
    vga: DisplaySurface;
    vc: TextConsole;
    typed: number[];
    input: InputEvent[];
    client: TestRfbClient;
  }) => Promise<void>,
): Promise<void> {
  const registry = new DisplayRegistry();
  const vga = new DisplaySurface(720, 400);
  for (let i = 0; i < vga.pixels.length; i++) vga.pixels[i] = (i * 2654435761) & 0xffffff;
  if (consoles > 0) registry.addConsole({ id: "vga0", update: () => vga });
  const vc = new TextConsole("compat_monitor0", testFont());
  const typed: number[] = [];
  vc.onInput = (bytes) => typed.push(...bytes);
  vc.write("compat_monitor0 console\r\n(qemu) ");
  if (consoles !== 1) registry.addConsole(vc);
  const input: InputEvent[] = [];
  registry.addInputHandler((e) => input.push(e));
  const server = new RfbServer(registry, { name: "QEMU", refreshMs: 5 });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = server.accept(listener);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const client = new TestRfbClient(conn);
  try {
    await client.handshake();
    await client.setEncodings([ENCODING_RAW, ENCODING_DESKTOP_SIZE]);
    await client.request(false);
    await client.update();
    await fn({ vga, vc, typed, input, client });
  } finally {
    conn.close();
    listener.close();
    server.close();
    await accepting;
  }
}

async function tap(client: TestRfbClient, keysyms: number[]): Promise<void> {
  for (const k of keysyms) await client.key(k, true);
  for (const k of [...keysyms].reverse()) await client.key(k, false);
}

/** Requests whole screens until the client's frame is `surface` (size and pixels). */
async function frameBecomes(client: TestRfbClient, surface: DisplaySurface): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await client.request(false);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const frame = await Promise.race([
      client.update(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no update from the server")), 5000);
      }),
    ]).finally(() => clearTimeout(timer));
    if (
      frame.width === surface.width && frame.height === surface.height &&
      frame.pixels.every((p, at) => p === surface.pixels[at])
    ) return;
    await settle();
  }
  assert.fail(`the client's frame never became the ${surface.width}x${surface.height} console`);
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
}

/** Waits (up to 10 s, for a loaded machine) until the server has handled what `cond` needs. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

Deno.test("RfbServer: Ctrl-Alt-2 shows the text console (DesktopSize), its keys reach it only; Ctrl-Alt-1 returns", async () => {
  await withConsoles(2, async ({ vga, vc, typed, input, client }) => {
    assert.deepEqual([client.frame.width, client.frame.height], [720, 400]);
    await tap(client, [CONTROL_L, ALT_L, 0x32]);
    await frameBecomes(client, vc.update());
    assert.ok(client.frame.encodings.includes(ENCODING_DESKTOP_SIZE));
    // The guest heard Ctrl and Alt go down, and up at the switch; never the '2'.
    const keys = input.filter((e): e is KeyEvent => e.type === "key");
    assert.deepEqual(keys.map((k) => [k.scancode, k.down]), [
      [0x1d, true],
      [0x38, true],
      [0x1d, false],
      [0x38, false],
    ]);
    const heard = input.length;
    for (const ch of "info status") await tap(client, [ch.charCodeAt(0)]);
    await tap(client, [0xff0d]);
    await tap(client, [CONTROL_L, 0x63]); // Ctrl-C: a control code
    await until(() => typed.length >= "info status\r\x03".length);
    assert.equal(String.fromCharCode(...typed), "info status\r\x03");
    assert.equal(input.length, heard, "the guest heard keys typed on the text console");
    // What the console shows reaches the client.
    vc.write("info status\r\nVM status: running\r\n");
    await frameBecomes(client, vc.update());
    await tap(client, [CONTROL_L, ALT_L, 0x31]);
    await frameBecomes(client, vga);
    // Back on the guest's screen, keys reach the guest again.
    await tap(client, [0x61]);
    await until(() => input.length >= heard + 2);
    assert.deepEqual(
      input.slice(heard).map((e) => [(e as KeyEvent).scancode, (e as KeyEvent).down]),
      [[0x1e, true], [0x1e, false]],
    );
  });
});

Deno.test("RfbServer: Ctrl-Alt-N of a console that does not exist changes nothing", async () => {
  await withConsoles(2, async ({ vga, typed, client }) => {
    await tap(client, [CONTROL_L, ALT_L, 0x35]);
    await tap(client, [0x62]);
    await frameBecomes(client, vga);
    assert.deepEqual(typed, []);
  });
});

Deno.test("RfbServer: with one console, Ctrl-Alt-2 reaches the guest as before", async () => {
  await withConsoles(1, async ({ input, client }) => {
    await tap(client, [CONTROL_L, ALT_L, 0x32]);
    await until(() => input.length >= 6);
    assert.deepEqual(input.map((e) => [(e as KeyEvent).scancode, (e as KeyEvent).down]), [
      [0x1d, true],
      [0x38, true],
      [0x03, true],
      [0x03, false],
      [0x38, false],
      [0x1d, false],
    ]);
  });
});

Deno.test("RfbServer: odd keys on a text console send nothing and harm nothing", async () => {
  await withConsoles(2, async ({ vc, typed, input, client }) => {
    await tap(client, [CONTROL_L, ALT_L, 0x32]);
    await frameBecomes(client, vc.update());
    const heard = input.length;
    // Unknown keysyms, Unicode ones, modifiers alone, function keys, a key released
    // that was never pressed, and QEMU's extended key event with a nonsense keycode.
    for (const sym of [0, 0x1f, 0xffffffff, 0x01000416, 0xffbe, 0xfe50, 0xffe1, 0xffeb]) {
      await tap(client, [sym]);
    }
    await client.key(0x41, false);
    await client.write([255, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
    await tap(client, [0x6f, 0x6b]);
    await frameBecomes(client, vc.update());
    assert.equal(String.fromCharCode(...typed), "ok");
    assert.equal(input.length, heard, "the guest heard keys typed on the text console");
  });
});

Deno.test("RfbServer: a text console alone (no graphics card) is shown and takes the keys", async () => {
  await withConsoles(0, async ({ vc, typed, input, client }) => {
    await frameBecomes(client, vc.update());
    await tap(client, [0x6f, 0x6b]);
    await tap(client, [CONTROL_L, ALT_L, 0x31]);
    await until(() => typed.length >= 2);
    await settle(); // (Ctrl-Alt-1 with no graphics must not reach the guest either)
    assert.equal(String.fromCharCode(...typed), "ok");
    assert.deepEqual(input, []);
  });
});
