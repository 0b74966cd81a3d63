// Boot test: the amd64 ISOLINUX CD (boot-amd64.iso) with the guide's -boot d line and a raw
// virtio disk; real QEMU runs it now, vmkit runs the same line once it has long mode

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import {
  AMD64_ISO,
  AMD64_ISO_MARKER_TEXT,
  amd64IsoArgs,
  bootOn,
  bootTail,
  ignoredNote,
  logMarkerTime,
  NO_LONG_MODE,
  type Side,
  whyNoAmd64,
} from "./amd64_guests.ts";
import { assertGuestWrote, assertGuideReport, guideCdFolder, READY } from "./guest_util.ts";

const WHY = whyNoAmd64([AMD64_ISO]);

/** SeaBIOS boots the CD, ISOLINUX the 64-bit kernel, which mounts the CD and writes the disk. */
async function guideCdBoot(side: Side): Promise<void> {
  // The guide's line names install.iso and hda in the folder it is typed in.
  const { dir, hda, cleanup } = await guideCdFolder(AMD64_ISO);
  try {
    const r = await bootOn(side, amd64IsoArgs(), { marker: READY, cwd: dir });
    logMarkerTime(side, "amd64 -boot d boot", "VMKIT-GUEST-READY", r);
    assert.match(r.text, /SeaBIOS \(version/, bootTail(r));
    assert.match(r.text, /Booting from DVD\/CD\.\.\./, bootTail(r));
    assert.match(r.text, /ISOLINUX \d+\.\d+/, bootTail(r));
    assert.match(r.text, /Linux version \d+\.\d+\.\d+\S*-amd64 /, bootTail(r));
    // The CD's isolinux.cfg (tools/fetch_guests.sh) skips the timer check (NO_TIMER_CHECK).
    assert.match(
      r.text,
      /Kernel command line: .*console=ttyS0 panic=-1 no_timer_check/,
      bootTail(r),
    );
    assert.match(r.text, /VMKIT-GUEST-READY \S+-amd64 x86_64/, bootTail(r));
    const report = assertGuideReport(r, side, bootTail);
    assert.equal(report.sr0, AMD64_ISO_MARKER_TEXT, bootTail(r));
    await assertGuestWrote(hda);
  } finally {
    await cleanup();
  }
}

Deno.test({
  name:
    "qemu-system-x86_64 with the guide's -boot d line boots the amd64 ISOLINUX CD's Linux, which sees the CD, the raw virtio disk, the NIC and the balloon, and writes the disk" +
    ignoredNote(WHY),
  ignore: skipUnless(import.meta, { ok: WHY === "", missing: WHY }),
  fn: () => guideCdBoot("qemu"),
});

Deno.test({
  name:
    "vmkit system-x86_64 with the guide's -boot d line boots the amd64 ISOLINUX CD the way QEMU does" +
    ignoredNote(NO_LONG_MODE),
  ignore: true,
  fn: () => guideCdBoot("vmkit"),
});
