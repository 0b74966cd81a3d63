// Boot test: Debian's amd64 kernel and the busybox initramfs with the guide's -kernel line
// (virtio qcow2 disk on a raw backing file, virtio NIC, balloon, -smp 2, Cirrus) on the
// default CPU; real QEMU runs it now, vmkit runs the same line once it has long mode

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
import {
  GUEST_WRITE_OFFSET,
  guestPattern,
  GUIDE_MAC,
  hex,
  hostSector0,
  parseReport,
  READY,
  writeHostDisk,
} from "./guest_util.ts";

const WHY = whyNoAmd64([AMD64_KERNEL, AMD64_INITRD]) ||
  (HAVE_QEMU_IMG ? "" : "qemu-img is missing (apt-get install qemu-utils)");

/** Reads `length` bytes at `offset` of a disk image, converted to raw by qemu-img. */
async function readRaw(disk: string, dir: string, offset: number, length: number) {
  const raw = path.join(dir, "readback.raw");
  const conv = await runCommand("qemu-img", ["convert", "-O", "raw", disk, raw]);
  assert.equal(conv.code, 0, conv.stderr);
  const file = await Deno.open(raw, { read: true });
  try {
    const bytes = new Uint8Array(length);
    await file.seek(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = await file.read(bytes.subarray(got));
      if (n === null) break;
      got += n;
    }
    return bytes;
  } finally {
    file.close();
  }
}

/** The whole check, the same on both sides: boot, /init's report, the guest's write read back. */
async function guideKernelBoot(side: Side): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    const base = path.join(dir, "base.raw");
    const disk = path.join(dir, "disk.qcow2");
    await writeHostDisk(base);
    const created = await runCommand("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-b",
      base,
      "-F",
      "raw",
      disk,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const r = await bootOn(side, amd64KernelArgs(disk), { marker: READY });
    logMarkerTime(side, "amd64 -kernel boot", "VMKIT-GUEST-READY", r);
    assert.match(r.text, /SeaBIOS \(version/, bootTail(r));
    assert.match(r.text, /Booting from ROM\.\.\./, bootTail(r));
    assert.match(r.text, /Linux version \d+\.\d+\.\d+\S*-amd64 /, bootTail(r));
    assert.match(r.text, /Kernel command line: console=ttyS0 panic=-1 no_timer_check/, bootTail(r));
    // The 64-bit kernel on the default CPU: the machine is x86_64.
    assert.match(r.text, /VMKIT-GUEST-READY \S+-amd64 x86_64/, bootTail(r));
    const report = parseReport(r.text);
    assert.equal(report.vda, hex(hostSector0().subarray(0, 32)), bootTail(r));
    assert.equal(report.nproc, 2, bootTail(r));
    assert.equal(report.net.get("eth0"), GUIDE_MAC, bootTail(r));
    assert.equal(report.balloon, "yes", bootTail(r));
    assert.ok(report.done, `no VMKIT-GUEST-DONE${bootTail(r)}`);
    assert.equal(r.code, 0, `${side} did not exit 0 after poweroff${bootTail(r)}`);
    // The write landed in the overlay; the backing file's sector 0 shows through.
    assert.deepEqual(
      await readRaw(disk, dir, GUEST_WRITE_OFFSET, 4096),
      guestPattern(),
    );
    assert.deepEqual(await readRaw(disk, dir, 0, 512), hostSector0());
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
  ignore: WHY !== "",
  fn: () => guideKernelBoot("qemu"),
});

Deno.test({
  name:
    "vmkit system-x86_64 with the guide's -kernel line boots Debian's amd64 kernel the way QEMU does" +
    ignoredNote(NO_LONG_MODE),
  ignore: true,
  fn: () => guideKernelBoot("vmkit"),
});
