import assert from "node:assert/strict";
import { MAX_UNREAD_BYTES, SocketRelay } from "./socket_relay.ts";

async function readAll(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const got = await conn.read(out.subarray(at));
    if (got === null) throw new Error("closed early");
    at += got;
  }
  return out;
}

Deno.test("SocketRelay: a TCP client's bytes reach the main thread and its replies reach the client", async () => {
  const relay = SocketRelay.listen({ transport: "tcp", hostname: "127.0.0.1", ports: [0] });
  try {
    assert.ok(relay.port > 0);
    const client = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    const iterator = relay[Symbol.asyncIterator]();
    const conn = (await iterator.next()).value!;
    assert.equal(conn.remoteAddr.transport, "tcp");
    await client.write(new TextEncoder().encode("hello"));
    const buf = new Uint8Array(16);
    const n = await conn.read(buf);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "hello");
    // A large write resolves once all of it is on the socket.
    const big = new Uint8Array(3 << 20).map((_, i) => i * 7);
    const [written, got] = await Promise.all([conn.write(big), readAll(client, big.length)]);
    assert.equal(written, big.length);
    assert.deepEqual(got, big);
    client.close();
    assert.equal(await conn.read(buf), null, "the client's close ends the reads");
    await assert.rejects(conn.write(new Uint8Array(1)));
  } finally {
    await relay.close();
  }
});

Deno.test("SocketRelay.listen() refuses a port in use with the system's message, and tries the next", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () =>
        SocketRelay.listen({ transport: "tcp", hostname: "127.0.0.1", ports: [taken.addr.port] }),
      /in use/i,
    );
  } finally {
    taken.close();
  }
});

Deno.test("SocketRelay: a unix socket client is served, and close() ends its connection", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/relay.sock`;
  const relay = SocketRelay.listen({ transport: "unix", path });
  try {
    const client = await Deno.connect({ transport: "unix", path });
    const conn = (await relay[Symbol.asyncIterator]().next()).value!;
    assert.equal(conn.remoteAddr.transport, "unix");
    await conn.write(new TextEncoder().encode("RFB 003.008\n"));
    assert.equal(new TextDecoder().decode(await readAll(client, 12)), "RFB 003.008\n");
    await relay.close();
    assert.equal(await client.read(new Uint8Array(4)), null, "the thread closed the socket");
    client.close();
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SocketRelay: a client that floods a server that does not read is held at the limit", async () => {
  const relay = SocketRelay.listen({ transport: "tcp", hostname: "127.0.0.1", ports: [0] });
  try {
    const client = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    const conn = (await relay[Symbol.asyncIterator]().next()).value!;
    const flood = new Uint8Array(64 << 10);
    let sent = 0;
    // Writes stop completing once the socket buffers fill behind the paused relay.
    const writing = (async () => {
      try {
        for (let i = 0; i < 256; i++) sent += await client.write(flood);
      } catch {
        // closed at the end
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(sent < 16 << 20, `the client got ${sent} bytes out: reading did not pause`);
    assert.ok(
      conn.buffered <= MAX_UNREAD_BYTES + (64 << 10),
      `${conn.buffered} bytes wait on the main thread`,
    );
    // Reading lets more in.
    const before = conn.buffered;
    const buf = new Uint8Array(1 << 20);
    for (let i = 0; i < 4; i++) await conn.read(buf);
    client.close();
    await writing;
    assert.ok(before > 0);
  } finally {
    await relay.close();
  }
});

Deno.test("SocketRelay: the web transport serves the page and relays a WebSocket's binary messages", async () => {
  const relay = SocketRelay.listen({
    transport: "web",
    hostname: "127.0.0.1",
    ports: [0],
    page: "<title>relay</title>",
  });
  try {
    const html = await (await fetch(`http://127.0.0.1:${relay.port}/`)).text();
    assert.equal(html, "<title>relay</title>");
    const missing = await fetch(`http://127.0.0.1:${relay.port}/nothing`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const ws = new WebSocket(`ws://127.0.0.1:${relay.port}/websockify`);
    ws.binaryType = "arraybuffer";
    const got: Uint8Array[] = [];
    ws.onmessage = (e) => got.push(new Uint8Array(e.data as ArrayBuffer));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const conn = (await relay[Symbol.asyncIterator]().next()).value!;
    assert.equal(conn.remoteAddr.transport, "websocket");
    ws.send(new Uint8Array([1, 2, 3]));
    const buf = new Uint8Array(8);
    assert.equal(await conn.read(buf), 3);
    assert.deepEqual([...buf.subarray(0, 3)], [1, 2, 3]);
    await conn.write(new Uint8Array([9, 8]));
    while (got.length === 0) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual([...got[0]], [9, 8]);
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close();
    await closed;
    assert.equal(await conn.read(buf), null);
  } finally {
    await relay.close();
  }
});

Deno.test("SocketRelay.listen() refuses a web port in use with the system's message", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () =>
        SocketRelay.listen({
          transport: "web",
          hostname: "127.0.0.1",
          ports: [taken.addr.port],
          page: "",
        }),
      /in use/i,
    );
  } finally {
    taken.close();
  }
});
