// Hostile QMP input against vmkit and real qemu-system-x86_64 7.2: malformed JSON, bad
// members, deep nesting, bad UTF-8, huge requests and a client that floods requests
// without reading the answers. Each gets QMP's error class; nothing crashes, and the
// memory vmkit holds stays bounded.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, tempDir } from "../test_util.ts";

const encoder = new TextEncoder();

/** A raw QMP connection: sends bytes, reads answers line by line. */
class RawQmp {
  #conn: Deno.UnixConn;
  #buf = "";
  #decoder = new TextDecoder();
  #chunk = new Uint8Array(1 << 16);

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  static async connect(socket: string): Promise<RawQmp> {
    for (let i = 0;; i++) {
      try {
        return new RawQmp(await Deno.connect({ transport: "unix", path: socket }));
      } catch (e) {
        if (i > 600) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async line(): Promise<Record<string, unknown>> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const text = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        if (text.trim()) return JSON.parse(text);
        continue;
      }
      const n = await this.#conn.read(this.#chunk);
      if (n === null) throw new Error("connection closed");
      this.#buf += this.#decoder.decode(this.#chunk.subarray(0, n), { stream: true });
    }
  }

  async send(bytes: Uint8Array): Promise<void> {
    for (let done = 0; done < bytes.length;) done += await this.#conn.write(bytes.subarray(done));
  }

  /**
   * Sends `bytes`, then a query-status with id `sync`; returns every answer before the
   * sync's (events apart).
   */
  async exchange(bytes: Uint8Array, sync: string): Promise<Record<string, unknown>[]> {
    await this.send(bytes);
    await this.send(encoder.encode(`\n{"execute": "query-status", "id": "${sync}"}\n`));
    const out: Record<string, unknown>[] = [];
    for (;;) {
      const msg = await this.line();
      if ("event" in msg) continue;
      if (msg.id === sync) return out;
      out.push(msg);
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

function start(vm: "vmkit" | "qemu", socket: string): Deno.ChildProcess {
  const args = [
    "-S",
    "-display",
    "none",
    "-net",
    "none",
    "-qmp",
    `unix:${socket},server=on,wait=off`,
  ];
  return new Deno.Command(vm === "vmkit" ? Deno.execPath() : "qemu-system-x86_64", {
    args: vm === "vmkit" ? ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args] : args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

const bytes = (text: string) => encoder.encode(text);
const HOSTILE: [string, Uint8Array][] = [
  ["execute not a string", bytes('{"execute": 5}')],
  ["unknown member", bytes('{"execute": "query-status", "foo": 1}')],
  ["no execute", bytes("{}")],
  ["arguments not an object", bytes('{"execute": "query-status", "arguments": []}')],
  ["not an object", bytes('"just a string"')],
  ["not JSON", bytes("garbage")],
  ["unknown command", bytes('{"execute": "no-such-command"}')],
  ["unknown argument", bytes('{"execute": "query-status", "arguments": {"x": 1}}')],
  [
    "wrong argument type",
    bytes('{"execute": "human-monitor-command", "arguments": {"command-line": []}}'),
  ],
  ["missing argument", bytes('{"execute": "human-monitor-command"}')],
  ["nesting 2000 deep", bytes("[".repeat(2000) + "]".repeat(2000))],
  ["object nesting 1100 deep", bytes('{"a": '.repeat(1100) + "1" + "}".repeat(1100))],
];

Deno.test({
  name: "QMP answers hostile input with QEMU 7.2's error classes and keeps serving",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const answers: Record<string, Record<string, unknown>[][]> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const socket = path.join(dir, `${vm}.sock`);
        const child = start(vm, socket);
        const qmp = await RawQmp.connect(socket);
        try {
          await qmp.line(); // greeting
          await qmp.exchange(bytes('{"execute": "qmp_capabilities"}'), "caps");
          answers[vm] = [];
          for (const [i, [, input]] of HOSTILE.entries()) {
            answers[vm].push(await qmp.exchange(input, `s${i}`));
          }
          await qmp.send(bytes('{"execute": "quit"}\n'));
          assert.equal((await child.status).code, 0);
        } finally {
          qmp.close();
          try {
            child.kill("SIGKILL");
          } catch {
            // exited
          }
          await child.stderr.cancel();
        }
      }
      const errors = (list: Record<string, unknown>[]) =>
        list.map((m) => (m.error as { class: string; desc: string } | undefined));
      HOSTILE.forEach(([what], i) => {
        const v = errors(answers.vmkit[i]), q = errors(answers.qemu[i]);
        assert.ok(v.length >= 1, what);
        // The first answer: the class, and QEMU's words.
        assert.equal(v[0]?.class, q[0]?.class, `${what}: ${JSON.stringify(v)}`);
        assert.equal(v[0]?.desc, q[0]?.desc, `${what}: ${JSON.stringify(v)}`);
        // Any further answers (QEMU's lexer restarts inside a refused request) carry
        // QEMU's classes too.
        for (const e of v.slice(1)) assert.ok(q.some((x) => x?.class === e?.class), what);
        assert.ok(v.every((e) => e !== undefined), what);
      });
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "QMP survives bad UTF-8, a 4 MiB request and a client that never reads its answers",
  async fn() {
    const { dir, cleanup } = await tempDir();
    const socket = path.join(dir, "vmkit.sock");
    const child = start("vmkit", socket);
    const qmp = await RawQmp.connect(socket);
    try {
      await qmp.line();
      await qmp.exchange(bytes('{"execute": "qmp_capabilities"}'), "caps");
      const bad = await qmp.exchange(
        new Uint8Array([...bytes('{"execute": "query-status'), 0xff, ...bytes('"}')]),
        "utf8",
      );
      assert.equal((bad[0].error as { class: string }).class, "GenericError");
      // A request past the size limit is refused once, the rest of it skipped.
      const huge = bytes(
        `{"execute": "query-name", "arguments": {"x": "${"A{[".repeat(1400000)}"}}`,
      );
      const big = await qmp.exchange(huge, "big");
      assert.equal(big.length, 1, JSON.stringify(big).slice(0, 500));
      assert.equal((big[0].error as { class: string }).class, "GenericError");
      // A flood of requests whose answers nobody reads: vmkit stops taking more once its
      // answers back up (the client's writes block), and its memory stays bounded.
      const rss = () => {
        const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
        return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
      };
      const before = rss();
      const request = bytes('{"execute": "query-status"}\n'.repeat(1000));
      let sent = 0;
      const flood = (async () => {
        for (let i = 0; i < 2000; i++) {
          await qmp.send(request);
          sent += request.length;
        }
      })();
      const stalled = await Promise.race([
        flood.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), 5000)),
      ]);
      const grown = rss() - before;
      assert.ok(stalled, `vmkit read all ${sent} bytes without anyone reading its answers`);
      assert.ok(grown < 100 * 2 ** 20, `vmkit grew by ${grown} bytes`);
      // It took a bounded part of the flood (the socket buffers and 1 MiB of answers'
      // worth; without the bound it reads all 56 MB and grows by hundreds of MB).
      assert.ok(sent < 16 * 2 ** 20, `vmkit took ${sent} bytes`);
      child.kill("SIGKILL");
      await child.status;
      await flood.catch(() => {});
    } finally {
      qmp.close();
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      await child.stderr.cancel().catch(() => {});
      await cleanup();
    }
  },
});
