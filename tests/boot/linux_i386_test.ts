// Boot test: Debian's i386 kernel and a busybox initramfs through -kernel/-initrd (SeaBIOS + linuxboot_dma.bin)

import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN } from "../test_util.ts";

/** Where tools/fetch_guests.sh leaves the guests. */
const GUESTS = Deno.env.get("VMKIT_GUESTS") ??
  path.join(Deno.env.get("HOME") ?? "/root", ".cache", "vmkit-guests");
const KERNEL = path.join(GUESTS, "vmlinuz-i386");
const INITRD = path.join(GUESTS, "initrd-i386.gz");
const FIRMWARE = ["/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/linuxboot_dma.bin"];
/** The /init of the fetched initramfs prints this, then runs `poweroff -f`. */
const MARKER = /VMKIT-GUEST-READY/;
/**
 * The interpreter reaches "Linux version" in about a minute (the decompressor is the
 * long part) and /init in several; these limits leave room for a loaded machine.
 * VMKIT_LINUX_BOOT_TIMEOUT_MS overrides the second.
 */
const BANNER_TIMEOUT_MS = 5 * 60_000;
const MARKER_TIMEOUT_MS = Number(Deno.env.get("VMKIT_LINUX_BOOT_TIMEOUT_MS") ?? 15 * 60_000);

function isFile(file: string): boolean {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}

const missingGuests = [KERNEL, INITRD].filter((f) => !isFile(f));
const missingFirmware = FIRMWARE.filter((f) => !isFile(f));
const why = [
  missingGuests.length ? `${missingGuests.join(", ")} missing: run tools/fetch_guests.sh` : "",
  missingFirmware.length
    ? `${missingFirmware.join(", ")} missing: apt-get install seabios qemu-system-data`
    : "",
].filter((s) => s).join("; ");
const IGNORED = why ? ` (ignored: ${why})` : "";
/**
 * The boot to /init (about 3 minutes here with the block translator) runs by default;
 * VMKIT_LINUX_FULL_BOOT=0 runs only the shorter check of the kernel's first lines.
 */
const FULL_BOOT = Deno.env.get("VMKIT_LINUX_FULL_BOOT") !== "0";

const ARGS = [
  "system-x86_64",
  "-nographic",
  "-m",
  "256",
  "-kernel",
  KERNEL,
  "-initrd",
  INITRD,
  "-append",
  "console=ttyS0 panic=-1",
];

/**
 * Runs `vmkit ARGS` until its output matches `until`, the process ends, or `timeoutMs`
 * passes; returns everything it printed (stderr appended) and whether it exited itself.
 */
async function runUntil(
  until: RegExp,
  timeoutMs: number,
): Promise<{ text: string; exited: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...ARGS],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  let exited = true;
  const errors = new Response(child.stderr).text();
  const timer = setTimeout(() => {
    exited = false;
    child.kill("SIGKILL");
  }, timeoutMs);
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (until.test(text)) {
        exited = false;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
  }
  const stderr = await errors;
  return { text: stderr ? `${text}\n--- stderr ---\n${stderr}` : text, exited };
}

/** The end of the console, for failure messages. */
function tail(text: string): string {
  return `\n--- last serial output ---\n${text.slice(-4000)}`;
}

/** What SeaBIOS, linuxboot_dma.bin and the kernel print first, as QEMU's run shows them. */
function assertBanner(text: string): void {
  assert.match(text, /SeaBIOS \(version/, tail(text));
  assert.match(text, /Booting from ROM\.\.\./, tail(text));
  assert.match(text, /Linux version \d+\.\d+\.\d+\S*-686 /, tail(text));
  assert.match(text, /BIOS-e820: \[mem 0x0000000000100000-/, tail(text));
  assert.match(text, /RAMDISK: \[mem 0x/, tail(text));
  assert.match(text, /Kernel command line: console=ttyS0 panic=-1/, tail(text));
}

Deno.test({
  name:
    `vmkit system-x86_64 -kernel vmlinuz-i386 -initrd runs SeaBIOS, linuxboot_dma.bin and the kernel's first lines${
      IGNORED || (FULL_BOOT ? " (ignored: the boot to /init below checks the same lines)" : "")
    }`,
  ignore: why !== "" || FULL_BOOT,
  async fn() {
    const { text } = await runUntil(/Kernel command line: [^\r\n]*\r?\n/, BANNER_TIMEOUT_MS);
    assertBanner(text);
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 -kernel vmlinuz-i386 -initrd reaches /init, which prints the marker and powers off${
      IGNORED ||
      (FULL_BOOT ? "" : " (ignored: VMKIT_LINUX_FULL_BOOT=0)")
    }`,
  ignore: why !== "" || !FULL_BOOT,
  async fn() {
    const { text } = await runUntil(MARKER, MARKER_TIMEOUT_MS);
    assertBanner(text);
    assert.match(text, MARKER, tail(text));
  },
});
