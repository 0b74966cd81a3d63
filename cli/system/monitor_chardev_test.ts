// `info chardev` of -monitor and -qmp sockets, compared with QEMU 7.2 on the same command line

import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { MAIN } from "../../tests/test_util.ts";

/** Loopback ports nobody listens on (taken and released at once). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

const decoder = new TextDecoder();

/** Connects to an HMP socket, asks `info chardev`, quits; the chardev lines, sorted. */
async function infoChardev(port: number): Promise<string[]> {
  let conn: Deno.TcpConn | undefined;
  for (let i = 0; i < 200 && !conn; i++) {
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  assert.ok(conn, `nothing listens on ${port}`);
  let text = "";
  const buf = new Uint8Array(65536);
  const readUntil = async (marker: RegExp) => {
    while (!marker.test(text)) {
      const n = await conn!.read(buf).catch(() => null);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
  };
  await readUntil(/\(qemu\) /);
  text = "";
  await conn.write(new TextEncoder().encode("info chardev\r"));
  await readUntil(/filename=[^]*\(qemu\) /);
  const answer = text;
  // Read until the monitor hangs up: closing with unread bytes would reset the
  // connection before the monitor reads `quit`.
  await conn.write(new TextEncoder().encode("quit\r"));
  await readUntil(/$^/);
  conn.close();
  return answer.split(/\r?\n/)
    .filter((l) => / filename=/.test(l)).sort();
}

Deno.test({
  name: "info chardev names -monitor and -qmp as QEMU does, connected or not",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const out: Record<string, string[]> = {};
    for (const vm of ["qemu", "vmkit"]) {
      const [hmp, telnet, qmp] = freePorts(3);
      const args = [
        "-display",
        "none",
        "-S",
        "-serial",
        "null",
        "-parallel",
        "none",
        "-monitor",
        `tcp:127.0.0.1:${hmp},server=on,wait=off`,
        "-monitor",
        `telnet:127.0.0.1:${telnet},server=on,wait=off`,
        "-qmp",
        `tcp:127.0.0.1:${qmp},server=on,wait=off`,
      ];
      const child = vm === "qemu"
        ? new Deno.Command("qemu-system-x86_64", { args, stdout: "null", stderr: "null" }).spawn()
        : new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args],
          stdout: "null",
          stderr: "null",
        }).spawn();
      try {
        out[vm] = (await infoChardev(hmp)).map((l) =>
          l.replaceAll(`:${hmp}`, ":HMP").replaceAll(`:${telnet}`, ":TELNET")
            .replaceAll(`:${qmp}`, ":QMP").replace(/<-> 127\.0\.0\.1:\d+$/, "<-> 127.0.0.1:PEER")
        );
        assert.equal((await child.status).code, 0);
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited
        }
      }
    }
    assert.deepEqual(out.vmkit, out.qemu);
    assert.ok(
      out.vmkit.includes("compat_monitor2: filename=disconnected:tcp:127.0.0.1:QMP,server=on"),
    );
    assert.ok(
      out.vmkit.includes(
        "compat_monitor0: filename=tcp:127.0.0.1:HMP,server=on <-> 127.0.0.1:PEER",
      ),
    );
  },
});
