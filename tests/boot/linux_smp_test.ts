// Boot test of -smp 2: Debian's i386 kernel brings up both CPUs (INIT/SIPI, TSC sync, IPIs)

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { runVmkitUntil } from "./boot_util.ts";
import { BOOT_TIMEOUT_MS, INITRD, KERNEL, missingFiles } from "./guest_util.ts";

/** The /init of the fetched initramfs prints this, then runs `poweroff -f`. */
const MARKER = /VMKIT-GUEST-READY/;
/** The kernel's line once every CPU is up (kernel/smp.c). */
const BROUGHT_UP = /smp: Brought up 1 node, 2 CPUs/;
/** What a CPU that did not come up, or a TSC that did not agree, looks like in the log. */
const FAILURES = [
  /CPU1 failed to boot/,
  /Not responding/,
  /CPU1: Stuck/,
  /Marking TSC unstable due to check_tsc_sync/,
  /TSC synchronization.*Measured/,
  /Kernel panic/,
];
/**
 * By default the boot stops at the bring-up line: the guide's command lines in
 * linux_i386_test.ts and linux_iso_test.ts boot -smp 2 to /init and check nproc=2, so
 * the IPIs of a whole boot are covered there. VMKIT_LINUX_FULL_BOOT=1 goes on to /init.
 */
const FULL_BOOT = Deno.env.get("VMKIT_LINUX_FULL_BOOT") === "1";

const why = missingFiles([KERNEL, INITRD]);

function tail(text: string): string {
  return text.split("\n").slice(-40).join("\n");
}

Deno.test({
  name: `vmkit system-x86_64 -smp 2 boots Debian's i386 kernel with both CPUs brought up${
    FULL_BOOT ? " and runs /init" : ""
  }${why ? ` (ignored: ${why})` : ""}`,
  ignore: skipUnless(import.meta, { ok: why === "", missing: why }),
  async fn() {
    const text = await runVmkitUntil(
      [
        "system-x86_64",
        "-nographic",
        "-m",
        "256",
        "-smp",
        "2",
        // Linux checks the TSCs against each other only on Intel models: on an AMD one
        // (qemu64, the default) without constant_tsc it marks the TSC unstable for every
        // machine with more than one CPU, before any check, under QEMU as here.
        "-cpu",
        "qemu32",
        "-kernel",
        KERNEL,
        "-initrd",
        INITRD,
        "-append",
        "console=ttyS0 panic=-1",
      ],
      FULL_BOOT ? MARKER : BROUGHT_UP,
      // The interpreter reaches the SMP bring-up in a few minutes and /init in several;
      // the limit leaves room for a loaded machine (VMKIT_LINUX_BOOT_TIMEOUT_MS).
      BOOT_TIMEOUT_MS,
    );
    assert.match(text, /Linux version/, tail(text));
    assert.match(text, /x86: Booting SMP configuration/, tail(text));
    assert.match(text, BROUGHT_UP, tail(text));
    for (const bad of FAILURES) assert.doesNotMatch(text, bad, tail(text));
    if (FULL_BOOT) assert.match(text, MARKER, tail(text));
  },
});
