// The VNC server against a test client and against hostile clients, over a surface the test draws into

import assert from "node:assert/strict";
import { DisplayRegistry, DisplaySurface, type InputEvent } from "../../../core/display.ts";
import { ENCODING_COPYRECT, MAX_CLIENTS, RfbServer } from "./rfb_server.ts";
import { TestRfbClient } from "./test_client.ts";

/** A display with one console over `surface`, recording the input it gets. */
function display(surface: DisplaySurface) {
  const registry = new DisplayRegistry();
  registry.addConsole({ id: "vga0", update: () => surface });
  const input: InputEvent[] = [];
  registry.addInputHandler((e) => input.push(e));
  return { registry, input };
}

function hash(n: number): number {
  return (Math.imul(n ^ (n >>> 15), 0x2c1b3c6d) >>> 7) & 0xffffff;
}

/** Text-like content: a few colours in glyph-sized blocks, different per `seed`. */
function paint(surface: DisplaySurface, seed: number, rows = surface.height): void {
  const colours = [0x000000, 0xa8a8a8, 0x0000a8, 0xffff55, 0x54fc54];
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < surface.width; x++) {
      const cell = hash((x >> 3) * 977 + (y >> 4) * 7919 + seed * 104729) % 97;
      const on = hash(cell * 131 + (y & 15) * 8 + (x & 7)) % 7 < 2;
      surface.pixels[y * surface.width + x] = on ? colours[1 + (cell % 4)] : colours[0];
    }
  }
  surface.markDirty(0, 0, surface.width, rows);
}

async function withServer(
  surface: DisplaySurface,
  fn: (ctx: {
    server: RfbServer;
    input: InputEvent[];
    connect: () => Promise<TestRfbClient>;
  }) => Promise<void>,
): Promise<void> {
  const { registry, input } = display(surface);
  const server = new RfbServer(registry, { name: "QEMU (test)", refreshMs: 5 });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = server.accept(listener);
  const clients: TestRfbClient[] = [];
  const connect = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const c = new TestRfbClient(conn);
    clients.push(c);
    return c;
  };
  try {
    await fn({ server, input, connect });
  } finally {
    for (const c of clients) {
      try {
        c.conn.close();
      } catch { /* closed by the server */ }
    }
    listener.close();
    server.close();
    await accepting;
  }
}

function assertSame(frame: { pixels: Uint32Array }, surface: DisplaySurface, what: string) {
  let differ = 0;
  for (let i = 0; i < surface.pixels.length; i++) {
    if (frame.pixels[i] !== surface.pixels[i]) differ++;
  }
  assert.equal(differ, 0, `${what}: pixels differing from the surface`);
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const [label, encodings] of [["raw", [0]], ["ZRLE", [16, 0]], ["Tight", [7, 0]]] as const) {
  Deno.test(`RfbServer: a client taking ${label} gets the screen, then only what changed`, async () => {
    const surface = new DisplaySurface(320, 200);
    paint(surface, 1);
    await withServer(surface, async ({ connect, server }) => {
      const c = await connect();
      assert.equal(await c.handshake(), "QEMU (test)");
      assert.deepEqual([c.frame.width, c.frame.height], [320, 200]);
      await c.setEncodings([...encodings]);
      await c.request(false);
      await c.update();
      assertSame(c.frame, surface, "first update");
      assert.ok(c.frame.encodings.every((e) => e === encodings[0]), `${c.frame.encodings}`);
      // A change in one corner: an incremental request gets that corner only.
      const bytesBefore = server.stats.bytesSent;
      for (let y = 150; y < 170; y++) surface.pixels.fill(0x123456, y * 320 + 250, y * 320 + 300);
      surface.markDirty(250, 150, 50, 20);
      await c.request(true);
      await c.update();
      assertSame(c.frame, surface, "incremental update");
      assert.ok(server.stats.bytesSent - bytesBefore < 320 * 200, "less than the screen was sent");
    });
  });
}

Deno.test("RfbServer: a scrolled text screen reaches a CopyRect client as a CopyRect plus the new line", async () => {
  const surface = new DisplaySurface(640, 400);
  paint(surface, 3);
  await withServer(surface, async ({ connect }) => {
    const c = await connect();
    await c.handshake();
    await c.setEncodings([16, ENCODING_COPYRECT, 0]);
    await c.request(false);
    await c.update();
    // Scroll up one 16-pixel text line, a fresh line at the bottom.
    surface.pixels.copyWithin(0, 16 * 640);
    for (let y = 384; y < 400; y++) {
      for (let x = 0; x < 640; x++) surface.pixels[y * 640 + x] = (x * 31 + y) & 0xffffff;
    }
    surface.markDirty(0, 0, 640, 400);
    c.frame.encodings = [];
    await c.request(true);
    await c.update();
    assert.equal(c.frame.encodings[0], ENCODING_COPYRECT, `${c.frame.encodings}`);
    assertSame(c.frame, surface, "after the scroll");
  });
});

Deno.test("RfbServer: a mode change reaches the client as a DesktopSize rectangle and a new screen", async () => {
  const surface = new DisplaySurface(320, 200);
  paint(surface, 2);
  await withServer(surface, async ({ connect }) => {
    const c = await connect();
    await c.handshake();
    await c.setEncodings([16, -223]);
    await c.request(false);
    await c.update();
    surface.resize(640, 480);
    paint(surface, 5);
    c.frame.encodings = [];
    await c.request(true);
    await c.update();
    assert.equal(c.frame.encodings[0], -223);
    assert.deepEqual([c.frame.width, c.frame.height], [640, 480]);
    assertSame(c.frame, surface, "after the mode change");
  });
});

Deno.test("RfbServer: key and pointer events reach the input handlers as scancodes and positions", async () => {
  const surface = new DisplaySurface(320, 200);
  await withServer(surface, async ({ connect, input }) => {
    const c = await connect();
    await c.handshake();
    await c.key(0x61, true); // 'a'
    await c.key(0x61, false);
    await c.key(0xff52, true); // Up
    // A QEMU extended key event: keycode 0x9c is KP Enter (0xe0 0x1c).
    await c.write([255, 0, 0, 1, 0, 0, 0xff, 0x8d, 0, 0, 0, 0x9c]);
    await c.pointer(100, 50, 1);
    await c.pointer(9999, 9999, 4); // clamped to the screen; RFB right is the display's 2
    await waitFor(() => input.length >= 6, "six input events");
    assert.deepEqual(input.slice(0, 4), [
      { type: "key", scancode: 0x1e, down: true },
      { type: "key", scancode: 0x1e, down: false },
      { type: "key", scancode: 0xe048, down: true },
      { type: "key", scancode: 0xe01c, down: true },
    ]);
    assert.deepEqual(input[4], { type: "pointer", x: 100, y: 50, absolute: true, buttons: 1 });
    assert.deepEqual(input[5], { type: "pointer", x: 319, y: 199, absolute: true, buttons: 2 });
    // Leaving with keys down releases them (no key stays stuck in the guest).
    c.conn.close();
    await waitFor(() => input.length >= 8, "the releases");
    assert.deepEqual(
      input.slice(6).map((e) => e.type === "key" && !e.down && e.scancode).sort(),
      [0xe01c, 0xe048],
    );
  });
});

Deno.test("RfbServer: several clients at once; an exclusive one (shared-flag 0) ends the others", async () => {
  const surface = new DisplaySurface(160, 100);
  paint(surface, 4);
  await withServer(surface, async ({ connect, server }) => {
    const a = await connect();
    const b = await connect();
    await a.handshake({ version: "RFB 003.003\n" });
    await b.handshake({ version: "RFB 003.007\n" });
    for (const c of [a, b]) {
      await c.setEncodings([16]);
      await c.request(false);
      await c.update();
      assertSame(c.frame, surface, "each client");
    }
    assert.equal(server.clientCount, 2);
    const x = await connect();
    await x.handshake({ shared: false });
    await waitFor(() => server.clientCount === 1, "the others to be closed");
  });
});

Deno.test("RfbServer: hostile clients are closed and never stop the others", async () => {
  const surface = new DisplaySurface(160, 100);
  paint(surface, 6);
  await withServer(surface, async ({ connect, server }) => {
    const attacks: [string, (c: TestRfbClient) => Promise<void>][] = [
      ["a bad version", (c) => c.write(new TextEncoder().encode("GET / HTTP/1.1\n"))],
      ["an unknown message", async (c) => {
        await c.handshake();
        await c.write([99, 0, 0, 0]);
      }],
      ["a 2 GiB cut text", async (c) => {
        await c.handshake();
        await c.write([6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
      }],
      ["an extended-clipboard cut text", async (c) => {
        await c.handshake();
        await c.write([6, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0]);
      }],
      ["a bad pixel format", async (c) => {
        await c.handshake();
        await c.write([0, 0, 0, 0, 24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
      }],
      ["an unoffered security type", async (c) => {
        await c.write(new TextEncoder().encode("RFB 003.008\n"));
        await c.write([2]);
      }],
    ];
    const good = await connect();
    await good.handshake();
    await good.setEncodings([16]);
    for (const [what, attack] of attacks) {
      const before = server.stats.rejected;
      const c = await connect();
      await attack(c).catch(() => {});
      await waitFor(() => server.stats.rejected > before, `${what} to be refused`);
      // The well-behaved client is still served.
      paint(surface, server.stats.rejected);
      await good.request(true);
      await good.update();
      assertSame(good.frame, surface, `after ${what}`);
    }
  });
});

Deno.test("RfbServer: a client that never reads gets at most one update in flight while others go on", async () => {
  const surface = new DisplaySurface(1024, 768);
  await withServer(surface, async ({ connect, server }) => {
    const slow = await connect();
    await slow.handshake();
    await slow.setEncodings([0]);
    // Ask again and again, never read: raw 1024x768 updates fill the socket.
    const ask = new Uint8Array(10 * 200);
    for (let i = 0; i < 200; i++) ask.set([3, 0, 0, 0, 0, 0, 4, 0, 3, 0], i * 10);
    const good = await connect();
    await good.handshake();
    await good.setEncodings([16]);
    for (let round = 0; round < 20; round++) {
      paint(surface, round);
      await slow.write(ask);
      await good.request(round > 0);
      await good.update();
      assertSame(good.frame, surface, `round ${round}`);
    }
    // The slow client holds at most a socket buffer plus one update.
    assert.ok(
      server.stats.bytesSent < 20 * 1024 * 768 * 4,
      `bytes handed to sockets: ${server.stats.bytesSent}`,
    );
  });
});

Deno.test("RfbServer: past MAX_CLIENTS connections are closed at once", async () => {
  const surface = new DisplaySurface(64, 64);
  await withServer(surface, async ({ connect, server }) => {
    const clients = [];
    for (let i = 0; i < MAX_CLIENTS; i++) {
      const c = await connect();
      await c.handshake();
      clients.push(c);
    }
    const extra = await connect();
    await assert.rejects(() => extra.handshake());
    assert.equal(server.clientCount, MAX_CLIENTS);
  });
});

Deno.test("RfbServer: a flood of update requests does not make the screen render more than once a period", async () => {
  const surface = new DisplaySurface(64, 64);
  const { registry } = display(surface);
  let renders = 0;
  const counting = new DisplayRegistry();
  counting.addConsole({
    id: "vga0",
    update: () => {
      renders++;
      return registry.console(0)!.update();
    },
  });
  const server = new RfbServer(counting, { name: "QEMU", refreshMs: 1000 });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = server.accept(listener);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  try {
    const c = new TestRfbClient(conn);
    await c.handshake();
    const start = performance.now();
    const flood = new Uint8Array(10 * 5000);
    for (let i = 0; i < 5000; i++) flood.set([3, 1, 0, 0, 0, 0, 0, 64, 0, 64], i * 10);
    const before = renders;
    await c.write(flood);
    await c.request(true);
    await waitFor(() => server.stats.connections === 1 && renders > before, "a render");
    await new Promise((r) => setTimeout(r, 200));
    const periods = Math.ceil((performance.now() - start) / 1000);
    assert.ok(renders - before <= periods + 1, `${renders - before} renders in ${periods} periods`);
  } finally {
    conn.close();
    listener.close();
    server.close();
    await accepting;
  }
});

Deno.test("RfbServer: with password=on, VNC Authentication lets the right password in and no other", async () => {
  const surface = new DisplaySurface(64, 64);
  const { registry } = display(surface);
  const server = new RfbServer(registry, { name: "QEMU", passwordRequired: true });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = server.accept(listener);
  const open: Deno.Conn[] = [];
  const connect = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    open.push(conn);
    return new TestRfbClient(conn);
  };
  try {
    // No password set yet: nobody gets in, not even with an empty one.
    await assert.rejects(
      () => connect().then((c) => c.handshake({ password: "" })),
      /Authentication failed/,
    );
    // A client that offers only None is refused.
    await assert.rejects(() => connect().then((c) => c.handshake()), /no security type/);
    assert.equal(server.setPassword("s3cret"), true);
    assert.equal(
      new RfbServer(registry, { name: "QEMU" }).setPassword("x"),
      false,
      "no password on a server without password=on",
    );
    await assert.rejects(
      () => connect().then((c) => c.handshake({ password: "wrong" })),
      /Authentication failed/,
    );
    for (const version of ["RFB 003.008\n", "RFB 003.007\n", "RFB 003.003\n"]) {
      const c = await connect();
      assert.equal(await c.handshake({ password: "s3cret", version }), "QEMU");
    }
  } finally {
    for (const c of open) {
      try {
        c.close();
      } catch { /* closed by the server */ }
    }
    listener.close();
    server.close();
    await accepting;
  }
});
