// accel=kvm with the test Linux guest, where the host's KVM can run a stock kernel

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { runVmkitUntil } from "../boot/boot_util.ts";
import {
  GUIDE_LINUX,
  INITRD,
  KERNEL,
  kernelArgs,
  missingFiles,
  READY,
} from "../boot/guest_util.ts";
import { NEEDS_KVM } from "./kvm_util.ts";

/**
 * Why this host's KVM cannot run a stock (not paravirtualised) Linux kernel, or "". A
 * Pagetable-based VM host (the kvm_pvm module) runs only PVM-aware guest kernels and
 * emulates other guests' code instruction by instruction.
 */
function stockLinuxUnsupported(): string {
  try {
    Deno.statSync("/sys/module/kvm_pvm");
    return "the host's KVM is PVM (kvm_pvm), which runs only PVM-aware Linux kernels";
  } catch {
    return "";
  }
}

const whyNot = NEEDS_KVM ||
  [missingFiles([KERNEL, INITRD]), stockLinuxUnsupported()].filter((s) => s).map((s) =>
    ` (ignored: ${s})`
  ).join("");

Deno.test({
  name: `vmkit -machine type=pc,accel=kvm boots the i386 test kernel to its ready line${whyNot}`,
  ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
  async fn() {
    const out = await runVmkitUntil(
      [
        "system-x86_64",
        ...kernelArgs(768, KERNEL, GUIDE_LINUX.i386.append, INITRD),
        // The last -machine accel= wins, as in QEMU.
        "-machine",
        "accel=kvm",
        "-net",
        "none",
      ],
      READY,
      600_000,
    );
    assert.match(out, READY, out);
  },
});
