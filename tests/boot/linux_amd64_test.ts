// Boot test: Debian's amd64 kernel and the busybox initramfs with the guide's -kernel line
// (virtio qcow2 disk on a raw backing file, virtio NIC, balloon, -smp 2, Cirrus) on the
// default CPU; real QEMU runs it now, vmkit runs the same line once it has long mode

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, runCommand, tempDir } from "../test_util.ts";
import {
  AMD64_INITRD,
  AMD64_KERNEL,
  amd64KernelArgs,
  bootOn,
  bootTail,
  ignoredNote,
  logMarkerTime,
  NO_LONG_MODE,
  type Side,
  whyNoAmd64,
} from "./amd64_guests.ts";
import { assertGuestWrote, assertGuideReport, makeGuideDisk, READY } from "./guest_util.ts";

const WHY = whyNoAmd64([AMD64_KERNEL, AMD64_INITRD]) ||
  (HAVE_QEMU_IMG ? "" : "qemu-img is missing (apt-get install qemu-utils)");

/** The whole check, the same on both sides: boot, /init's report, the guest's write read back. */
async function guideKernelBoot(side: Side): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    const disk = await makeGuideDisk(dir, "qemu-img");
    const r = await bootOn(side, amd64KernelArgs(disk), { marker: READY });
    logMarkerTime(side, "amd64 -kernel boot", "VMKIT-GUEST-READY", r);
    assert.match(r.text, /SeaBIOS \(version/, bootTail(r));
    assert.match(r.text, /Booting from ROM\.\.\./, bootTail(r));
    assert.match(r.text, /Linux version \d+\.\d+\.\d+\S*-amd64 /, bootTail(r));
    assert.match(r.text, /Kernel command line: console=ttyS0 panic=-1 no_timer_check/, bootTail(r));
    // The 64-bit kernel on the default CPU: the machine is x86_64.
    assert.match(r.text, /VMKIT-GUEST-READY \S+-amd64 x86_64/, bootTail(r));
    assertGuideReport(r, side, bootTail);
    // The write landed in the overlay; the backing file's sector 0 shows through.
    const raw = path.join(dir, "readback.raw");
    const conv = await runCommand("qemu-img", ["convert", "-O", "raw", disk, raw]);
    assert.equal(conv.code, 0, conv.stderr);
    await assertGuestWrote(raw);
    const check = await runCommand("qemu-img", ["check", disk]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  } finally {
    await cleanup();
  }
}

Deno.test({
  name:
    "qemu-system-x86_64 with the guide's -kernel line boots Debian's amd64 kernel, which sees the virtio qcow2 disk, NIC, balloon and 2 CPUs and writes the disk" +
    ignoredNote(WHY),
  ignore: skipUnless(import.meta, { ok: WHY === "", missing: WHY }),
  fn: () => guideKernelBoot("qemu"),
});

Deno.test({
  name:
    "vmkit system-x86_64 with the guide's -kernel line boots Debian's amd64 kernel the way QEMU does" +
    ignoredNote(NO_LONG_MODE),
  ignore: true,
  fn: () => guideKernelBoot("vmkit"),
});
