// Boot test: the real Debian 12 installer (netboot linux + initrd.gz, amd64) to its first
// screen, "Select a language", on the serial console; real QEMU runs it now, vmkit runs the
// same line once it has long mode

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, runCommand, tempDir } from "../test_util.ts";
import {
  bootOn,
  bootTail,
  DI_INITRD,
  DI_LINUX,
  ignoredNote,
  installerArgs,
  logMarkerTime,
  NO_LONG_MODE,
  type Side,
  whyNoAmd64,
} from "./amd64_guests.ts";

const WHY = whyNoAmd64([DI_LINUX, DI_INITRD]) ||
  (HAVE_QEMU_IMG ? "" : "qemu-img is missing (apt-get install qemu-utils)");

/**
 * The title of d-i's first screen (localechooser), drawn by newt inside GNU screen on
 * the serial console; the run is stopped once it shows.
 */
const SELECT_LANGUAGE = /Select a language/;

async function installerFirstScreen(side: Side): Promise<void> {
  const { dir, cleanup } = await tempDir();
  try {
    const disk = path.join(dir, "disk.qcow2");
    const created = await runCommand("qemu-img", ["create", "-q", "-f", "qcow2", disk, "4G"]);
    assert.equal(created.code, 0, created.stderr);
    const r = await bootOn(side, installerArgs(disk), {
      marker: SELECT_LANGUAGE,
      stopAt: SELECT_LANGUAGE,
    });
    logMarkerTime(side, "Debian installer", '"Select a language"', r);
    assert.match(r.text, /Linux version \d+\.\d+\.\d+\S*-amd64 /, bootTail(r));
    assert.match(r.text, /Kernel command line: console=ttyS0,115200n8/, bootTail(r));
    assert.match(r.text, SELECT_LANGUAGE, bootTail(r));
    assert.equal(r.timedOut, false, bootTail(r));
  } finally {
    await cleanup();
  }
}

Deno.test({
  name:
    'qemu-system-x86_64 boots the Debian 12 installer (netboot, amd64) to "Select a language" on the serial console' +
    ignoredNote(WHY),
  ignore: skipUnless(import.meta, { ok: WHY === "", missing: WHY }),
  fn: () => installerFirstScreen("qemu"),
});

Deno.test({
  name:
    'vmkit system-x86_64 boots the Debian 12 installer to "Select a language" the way QEMU does' +
    ignoredNote(NO_LONG_MODE),
  ignore: true,
  fn: () => installerFirstScreen("vmkit"),
});
