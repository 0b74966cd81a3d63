// Keys typed through a VNC client reach a Linux shell on the VGA console: vmkit's server, the i8042 and the guest's keyboard driver end to end, as with QEMU's server

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { TestRfbClient } from "../../cli/system/display/test_client.ts";
import { BOOT_TIMEOUT_MS, INITRD, KERNEL, missingFiles } from "../boot/guest_util.ts";
import { haveProgram, MAIN, stopChild, tempDir } from "../test_util.ts";
import { freeDisplay } from "./vnc_util.ts";

const whyNot = missingFiles([KERNEL, INITRD]) ||
  (haveProgram("qemu-system-x86_64") ? "" : " (ignored: qemu-system-x86_64 is not installed)");

/**
 * The shell runs on the last console, tty0 (the VGA text screen), so what reaches it came from
 * the keyboard; the typed command answers on the serial port the test reads. `$((6*7))` makes
 * the shell compute the answer, so an echo of the typed characters cannot pass for it.
 */
const APPEND = "console=ttyS0 console=tty0 guest.shell=1 printk.time=0";
const COMMAND = "echo vmkit-keys-$((6*7)) >/dev/ttyS0\n";
const ANSWER = /vmkit-keys-42/;
/** The kernel has started /init: from here the console's keyboard input is kept for the shell. */
const INIT_STARTED = /Run \/init as init process/;

/** US-layout characters typed with Shift held. */
const SHIFTED = new Set('$()*>_!@#%^&+{}|:"<?~'.split(""));

/** Types `text` through the RFB client: a key press and release per character, Shift as a user would. */
async function type(client: TestRfbClient, text: string): Promise<void> {
  for (const ch of text) {
    const keysym = ch === "\n" ? 0xff0d : ch.charCodeAt(0); // XK_Return, or Latin-1 = keysym
    const shift = SHIFTED.has(ch) || (ch >= "A" && ch <= "Z");
    if (shift) await client.key(0xffe1, true); // XK_Shift_L
    await client.key(keysym, true);
    await client.key(keysym, false);
    if (shift) await client.key(0xffe1, false);
  }
}

async function waitFor(file: string, pattern: RegExp, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(file).catch(() => "");
    if (pattern.test(text)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Boots the guest under `program` with a VNC server, types the command and waits for its answer. */
async function keysReachShell(vm: "vmkit" | "qemu", dir: string): Promise<string> {
  const serial = path.join(dir, `${vm}-serial.log`);
  const display = freeDisplay();
  const args = [
    "-M",
    "pc",
    "-m",
    "256",
    "-nodefaults",
    "-vga",
    "std",
    "-display",
    "none",
    "-vnc",
    `127.0.0.1:${display}`,
    "-no-reboot",
    "-kernel",
    KERNEL,
    "-initrd",
    INITRD,
    "-append",
    APPEND,
    "-serial",
    `file:${serial}`,
  ];
  const [program, pre] = vm === "vmkit"
    ? [Deno.execPath(), ["run", "-A", MAIN, "system-x86_64"]]
    : ["qemu-system-x86_64", ["-accel", "tcg"]];
  const child = new Deno.Command(program, {
    args: [...pre, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let conn: Deno.Conn | null = null;
  try {
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    assert.ok(await waitFor(serial, INIT_STARTED, deadline), `${vm}: /init never started`);
    conn = await Deno.connect({ hostname: "127.0.0.1", port: 5900 + display });
    const client = new TestRfbClient(conn);
    await client.handshake();
    // /init loads its modules before the shell reads; keys typed meanwhile may be taken by
    // nothing, so the command is typed again until it is answered.
    let answered = false;
    while (!answered && Date.now() < deadline) {
      await type(client, COMMAND);
      answered = await waitFor(serial, ANSWER, Math.min(deadline, Date.now() + 20_000));
    }
    const log = await Deno.readTextFile(serial);
    assert.ok(
      answered,
      `${vm}: the typed command was never answered; serial ends with:\n${log.slice(-1500)}`,
    );
    return log;
  } finally {
    conn?.close();
    await stopChild(child);
    await stderr;
  }
}

Deno.test({
  name: "keys typed through a VNC client reach a Linux shell on the VGA console, in vmkit as in " +
    `QEMU 7.2${whyNot}`,
  ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const vm of ["qemu", "vmkit"] as const) {
        const log = await keysReachShell(vm, dir);
        assert.match(log, ANSWER, vm);
      }
    } finally {
      await cleanup();
    }
  },
});
