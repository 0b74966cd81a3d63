// Boot test: the iPXE CD from Debian's `ipxe` package. ISOLINUX loads ipxe.krn and iPXE
// starts from the CD as it does from a NIC's option ROM (it saves the FPU with FXSAVE at
// its first call back into real mode); with -net none it finds no network device and
// SeaBIOS goes on to "No bootable device." Real QEMU runs the same line beside it and
// the console text must agree.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { HAVE_BIOS, runProgramUntil, runVmkitUntil } from "../boot/boot_util.ts";
import { haveProgram } from "../test_util.ts";

const ISO = "/usr/lib/ipxe/ipxe.iso";
const HAVE_ISO = (() => {
  try {
    return Deno.statSync(ISO).isFile;
  } catch {
    return false;
  }
})();
const WHY_NOT = !HAVE_BIOS
  ? "SeaBIOS is missing (apt-get install seabios)"
  : !HAVE_ISO
  ? `${ISO} is missing (apt-get install ipxe)`
  : "";
const DONE = /No bootable device\./;
const TIMEOUT_MS = 20 * 60_000;
/** A terminal escape sequence (ESC [ ... letter). */
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]`, "g");

/** The console's lines without escapes, blank lines and trailing spaces. */
function lines(text: string): string[] {
  const end = text.search(DONE);
  const body = end >= 0 ? text.slice(0, end + "No bootable device.".length) : text;
  return body.replace(ANSI_ESCAPE, "").split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l);
}

Deno.test({
  name: "the iPXE CD: ISOLINUX loads ipxe.krn, iPXE starts and, with no NIC, hands back to " +
    "SeaBIOS, as in QEMU" + (WHY_NOT ? ` (skipped: ${WHY_NOT})` : ""),
  ignore: skipUnless(import.meta, { ok: WHY_NOT === "", missing: WHY_NOT }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const args = ["-nographic", "-cdrom", ISO, "-boot", "d", "-net", "none"];
    const vmkit = await runVmkitUntil(["system-x86_64", ...args], DONE, TIMEOUT_MS);
    assert.match(vmkit, /Loading ipxe\.krn\.\.\. ok/, vmkit.slice(-2000));
    assert.match(vmkit, /iPXE initialising devices\.\.\.ok/, vmkit.slice(-2000));
    assert.match(vmkit, /No more network devices/, vmkit.slice(-2000));
    assert.match(vmkit, DONE, vmkit.slice(-2000));
    if (haveProgram("qemu-system-x86_64")) {
      const qemu = await runProgramUntil(
        "qemu-system-x86_64",
        ["-accel", "tcg", ...args],
        DONE,
        TIMEOUT_MS,
      );
      assert.deepEqual(lines(vmkit), lines(qemu));
    }
  },
});
