// Boot test: Debian's i386 kernel and the test initramfs through -kernel/-initrd, with the
// guide's virtio disk, NIC and balloon, then the disk the guest wrote read back by both tools

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, runCommand, runVmkit, tempDir } from "../test_util.ts";
import {
  assertGuestWrote,
  assertGuideReport,
  BOOT_TIMEOUT_MS,
  type BootResult,
  bootVmkit,
  DONE,
  guideKernelArgs,
  INITRD,
  KERNEL,
  logTimes,
  makeGuideDisk,
  missingDevices,
  missingFiles,
  offered,
  parseReport,
  READY,
  tail,
} from "./guest_util.ts";

const whyNoGuest = missingFiles([KERNEL, INITRD]);
const whyNoDevices = whyNoGuest ? "" : missingDevices(offered());

/** The guide's command line (issues 1 and 3), with the disk the test makes. */
function guideArgs(disk: string): string[] {
  return ["system-x86_64", ...guideKernelArgs("i386", disk)];
}

/** What SeaBIOS, linuxboot_dma.bin and the kernel print first, as QEMU's run shows them. */
function assertBanner(result: BootResult): void {
  const text = result.text;
  assert.match(text, /SeaBIOS \(version/, tail(result));
  assert.match(text, /Booting from ROM\.\.\./, tail(result));
  assert.match(text, /Linux version \d+\.\d+\.\d+\S*-686 /, tail(result));
  assert.match(text, /Kernel command line: console=ttyS0 panic=-1/, tail(result));
}

Deno.test({
  name:
    `vmkit system-x86_64 with the guide's -kernel command line boots Linux with virtio disk, NIC and balloon, and the guest's write reads back through vmkit img and qemu-img${
      whyNoGuest || whyNoDevices ? ` (ignored: ${whyNoGuest || whyNoDevices})` : ""
    }`,
  ignore: whyNoGuest !== "" || whyNoDevices !== "",
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // A qcow2 overlay on a raw backing file whose sector 0 the host wrote.
      const disk = await makeGuideDisk(dir, "vmkit");

      const result = await bootVmkit(guideArgs(disk), {
        marker: READY,
        timeoutMs: BOOT_TIMEOUT_MS,
      });
      logTimes("guide -kernel boot", result);
      assertBanner(result);
      assert.match(result.text, READY, tail(result));
      assertGuideReport(result, "vmkit");

      // The guest's write, read back by vmkit img and by real qemu-img.
      const viaVmkit = path.join(dir, "vmkit.raw");
      const conv = await runVmkit(["img", "convert", "-O", "raw", disk, viaVmkit]);
      assert.equal(conv.code, 0, conv.stderr);
      await assertGuestWrote(viaVmkit);
      const vmkitCheck = await runVmkit(["img", "check", disk]);
      assert.equal(vmkitCheck.code, 0, vmkitCheck.stdout + vmkitCheck.stderr);
      if (!HAVE_QEMU_IMG) {
        console.log("note: qemu-img is missing: the read-back through real qemu-img is skipped");
        return;
      }
      const viaQemu = path.join(dir, "qemu.raw");
      const qconv = await runCommand("qemu-img", ["convert", "-O", "raw", disk, viaQemu]);
      assert.equal(qconv.code, 0, qconv.stderr);
      await assertGuestWrote(viaQemu);
      const check = await runCommand("qemu-img", ["check", disk]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /No errors were found on the image/);
    } finally {
      await cleanup();
    }
  },
});

/**
 * Without the guide's devices, the plain -kernel boot runs instead (the test above covers
 * it once they are registered): /init reports no disk, NIC or balloon and powers off.
 */
Deno.test({
  name:
    `vmkit system-x86_64 -kernel vmlinuz-i386 -initrd reaches /init, which reports and powers off${
      whyNoGuest
        ? ` (ignored: ${whyNoGuest})`
        : whyNoDevices
        ? ""
        : " (ignored: the guide's command line above boots the same kernel)"
    }`,
  ignore: whyNoGuest !== "" || whyNoDevices === "",
  async fn() {
    const args = [
      "system-x86_64",
      "-nographic",
      "-no-reboot",
      "-m",
      "256",
      "-kernel",
      KERNEL,
      "-initrd",
      INITRD,
      "-append",
      "console=ttyS0 panic=-1",
    ];
    const result = await bootVmkit(args, { marker: READY, timeoutMs: BOOT_TIMEOUT_MS });
    logTimes("plain -kernel boot", result);
    assertBanner(result);
    assert.match(result.text, READY, tail(result));
    const report = parseReport(result.text);
    assert.equal(report.nproc, 1, tail(result));
    assert.equal(report.balloon, "no", tail(result));
    assert.equal(report.vda, undefined, tail(result));
    assert.match(result.text, DONE, tail(result));
    assert.equal(result.code, 0, `vmkit did not exit 0 after poweroff${tail(result)}`);
  },
});
