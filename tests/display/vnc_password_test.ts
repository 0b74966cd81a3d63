// VNC Authentication against the real thing: vmkit's client side answers QEMU's server, and vncsnapshot logs in to vmkit's

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { TestRfbClient } from "../../cli/system/display/test_client.ts";
import { vncAuthResponse } from "../../cli/system/display/vnc_auth.ts";
import { haveProgram, MAIN, stopChild, tempDir } from "../test_util.ts";
import { freeDisplay, onPath } from "./vnc_util.ts";

/** Runs an emulator with `-vnc ...,password=on` and a QMP socket; sets the password over QMP. */
async function withPasswordServer(
  program: string,
  prefix: string[],
  password: string,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = await tempDir();
  const qmp = path.join(dir, "qmp.sock");
  const display = freeDisplay(100);
  const child = new Deno.Command(program, {
    args: [
      ...prefix,
      "-nodefaults",
      "-vga",
      "std",
      "-S",
      "-display",
      "none",
      "-vnc",
      `127.0.0.1:${display},password=on`,
      "-qmp",
      `unix:${qmp},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let conn: Deno.UnixConn | undefined;
    const deadline = Date.now() + 60_000;
    while (!conn) {
      try {
        conn = await Deno.connect({ transport: "unix", path: qmp });
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const send = (o: unknown) => conn.write(new TextEncoder().encode(JSON.stringify(o) + "\n"));
    await send({ execute: "qmp_capabilities" });
    await send({ execute: "change-vnc-password", arguments: { password }, id: "pw" });
    let text = "";
    const buf = new Uint8Array(4096);
    while (!text.includes('"id": "pw"') && !text.includes('"id":"pw"')) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`QMP closed: ${text}`);
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(text, /"return": \{\}, "id": "pw"|"return":\{\},"id":"pw"/, text);
    try {
      await fn(5900 + display);
    } finally {
      conn.close();
    }
  } finally {
    await stopChild(child);
    await cleanup();
  }
}

async function login(port: number, password: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    return await new TestRfbClient(conn).handshake({ password });
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "VNC Authentication: the response vmkit computes is the one QEMU's server checks" +
    (haveProgram("qemu-system-x86_64") ? "" : " (ignored: qemu-system-x86_64 is not installed)"),
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    await withPasswordServer("qemu-system-x86_64", [], "tr0ub4dor", async (port) => {
      assert.equal(await login(port, "tr0ub4dor"), "QEMU");
      await assert.rejects(() => login(port, "tr0ub4xx"), /security failed/);
    });
  },
});

const HAVE_VNCSNAPSHOT = onPath("vncsnapshot");
Deno.test({
  name: "VNC Authentication: vncsnapshot with a password file logs in to vmkit's server " +
    "(password=on, change-vnc-password)" +
    (HAVE_VNCSNAPSHOT ? "" : " (ignored: vncsnapshot is not installed)"),
  ignore: skipUnless(import.meta, "vncsnapshot"),
  async fn() {
    await withPasswordServer(
      Deno.execPath(),
      ["run", "-A", MAIN, "system-x86_64"],
      "hunter2",
      async (port) => {
        const { dir, cleanup } = await tempDir();
        try {
          // A vncpasswd file: the password DES-encrypted under VNC's fixed key.
          const fixed = String.fromCharCode(23, 82, 107, 6, 35, 78, 88, 7);
          const block = new Uint8Array(16);
          block.set(new TextEncoder().encode("hunter2"));
          const passwd = path.join(dir, "passwd");
          await Deno.writeFile(passwd, vncAuthResponse(fixed, block).subarray(0, 8));
          const wrong = path.join(dir, "wrong");
          block.set(new TextEncoder().encode("hunter3"));
          await Deno.writeFile(wrong, vncAuthResponse(fixed, block).subarray(0, 8));
          const snap = (file: string) =>
            new Deno.Command("vncsnapshot", {
              args: [
                "-quiet",
                "-allowblank",
                "-passwd",
                file,
                `127.0.0.1:${port - 5900}`,
                path.join(dir, "s.jpg"),
              ],
              stdout: "null",
              stderr: "piped",
              signal: AbortSignal.timeout(60_000),
            }).output();
          const good = await snap(passwd);
          assert.equal(good.code, 0, new TextDecoder().decode(good.stderr));
          assert.ok((await Deno.stat(path.join(dir, "s.jpg"))).size > 0);
          const bad = await snap(wrong);
          assert.notEqual(bad.code, 0, "a wrong password is refused");
          assert.equal(await login(port, "hunter2"), "QEMU");
        } finally {
          await cleanup();
        }
      },
    );
  },
});
