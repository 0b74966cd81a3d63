// Boot test: -boot n. SeaBIOS runs the e1000's iPXE option ROM (efi-e1000.rom, found as
// QEMU finds it), iPXE gets 10.0.2.15 by DHCP from the user network and loads the
// Multiboot demo guest by TFTP from tftp=/bootfile=; the guest's serial output and its
// isa-debug-exit status prove it ran. Real QEMU runs the same command line beside it.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { findFirmware } from "../../core/firmware.ts";
import { buildDemoGuest, DEMO_BANNER, DEMO_EXIT_CODE } from "../../tools/demo_guest.ts";
import { HAVE_BIOS } from "../boot/boot_util.ts";
import { haveProgram, MAIN, tempDir } from "../test_util.ts";

const HAVE_ROM = findFirmware("efi-e1000.rom").path !== null;
const WHY_NOT = !HAVE_BIOS
  ? "SeaBIOS is missing (apt-get install seabios)"
  : !HAVE_ROM
  ? "efi-e1000.rom is missing (apt-get install ipxe-qemu)"
  : "";
const TIMEOUT_MS = 30 * 60_000;
/** A terminal escape sequence (ESC [ ... letter). */
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]`, "g");

/** Runs `program args` until it exits; its exit code and stdout. */
async function runToExit(program: string, args: string[]): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(program, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  try {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    // SeaBIOS and iPXE draw with escape sequences; keep the text.
    return { code: out.code, out: text.replace(ANSI_ESCAPE, "") };
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "-boot n: iPXE from the e1000's ROM gets 10.0.2.15 by DHCP and boots a kernel by TFTP" +
    (WHY_NOT ? ` (skipped: ${WHY_NOT})` : ""),
  ignore: skipUnless(import.meta, { ok: WHY_NOT === "", missing: WHY_NOT }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await Deno.writeFile(path.join(dir, "demo.bin"), buildDemoGuest());
      const args = [
        "-nographic",
        "-boot",
        "n",
        "-net",
        "nic,model=e1000",
        "-net",
        `user,tftp=${dir},bootfile=demo.bin`,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
      ];
      const started = performance.now();
      const vmkit = await runToExit(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "system-x86_64",
        ...args,
      ]);
      console.log(
        `vmkit -boot n to the guest's exit: ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      assert.equal(vmkit.code, DEMO_EXIT_CODE, vmkit.out.slice(-2000));
      assert.match(vmkit.out, /net0: 10\.0\.2\.15\/255\.255\.255\.0/, vmkit.out.slice(-2000));
      assert.match(vmkit.out, /tftp:\/\/10\.0\.2\.2\/demo\.bin\.\.\. ok/);
      assert.ok(vmkit.out.includes(DEMO_BANNER), vmkit.out.slice(-2000));
      assert.match(vmkit.out, /Sum of the primes below 10000: 5736396/);
      if (haveProgram("qemu-system-x86_64")) {
        const qemu = await runToExit("qemu-system-x86_64", ["-accel", "tcg", ...args]);
        assert.equal(qemu.code, DEMO_EXIT_CODE, qemu.out.slice(-2000));
        const guest = (t: string) =>
          t.slice(t.indexOf(DEMO_BANNER)).split(/\r?\n/).filter((l) => !l.startsWith("Memory:"))
            .map((l) => l.trimEnd()).filter((l) => l !== "");
        assert.deepEqual(guest(vmkit.out), guest(qemu.out));
      }
    } finally {
      await cleanup();
    }
  },
});
