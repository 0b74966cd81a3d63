// SIGINT, SIGHUP and SIGTERM end a running machine in order, as QEMU's termsig_handler:
// the message, exit status 0, and disks closed properly (a qcow2's dirty bitmap is stored
// and no longer marked in use, which real qemu-img judges)

import assert from "node:assert/strict";
import { skipUnless } from "../../tests/skip.ts";
import { MAIN } from "../../tests/test_util.ts";

/** The `flags` of the qcow2's first bitmap, as `qemu-img info --output=json -U` reports them. */
async function bitmapFlags(image: string): Promise<string[] | undefined> {
  const out = await new Deno.Command("qemu-img", {
    args: ["info", "-U", "--output=json", image],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return undefined;
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  return info["format-specific"]?.data?.bitmaps?.[0]?.flags;
}

/** Waits (up to a minute) until the QMP socket at `path` accepts a client and greets it. */
async function qmpGreeting(path: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      try {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /"QMP"/);
        return;
      } finally {
        conn.close();
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`no QMP greeting on ${path}`);
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  assert.ok(out.success, `${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

for (const [signal, number] of [["SIGINT", 2], ["SIGHUP", 1], ["SIGTERM", 15]] as const) {
  Deno.test({
    name: `system-x86_64 ends on ${signal} as QEMU: message, status 0, the qcow2's bitmap stored`,
    ignore: skipUnless(import.meta, "qemu-img"),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "vmkit-signal-" });
      try {
        const image = `${dir}/disk.qcow2`;
        await run("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"]);
        await run("qemu-img", ["bitmap", "--add", image, "b0"]);
        assert.deepEqual(await bitmapFlags(image), ["auto"]);
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--quiet",
            MAIN,
            "system-x86_64",
            "-S",
            "-display",
            "none",
            "-net",
            "none",
            "-monitor",
            "none",
            "-qmp",
            `unix:${dir}/qmp.sock,server=on,wait=off`,
            "-serial",
            "none",
            "-drive",
            `file=${image},format=qcow2,if=virtio`,
          ],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        // Up: QMP greets (vmkit listens for the signals before its monitors open), and the
        // bitmap is marked in use while the image is open for writing.
        await qmpGreeting(`${dir}/qmp.sock`);
        assert.deepEqual(
          await bitmapFlags(image),
          ["in-use", "auto"],
          "the bitmap is in use while vmkit runs",
        );
        child.kill(signal);
        const out = await child.output();
        assert.equal(out.code, 0);
        assert.match(
          new TextDecoder().decode(out.stderr),
          new RegExp(`terminating on signal ${number}\\n$`),
        );
        assert.deepEqual(await bitmapFlags(image), ["auto"], "stored at exit, not left in use");
        await run("qemu-img", ["check", "-q", image]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
