// Boot test: memtest86+'s 64-bit build (Debian's memtest86+x64.bin) through -kernel, to its
// test screen on the serial console, on real QEMU and on vmkit (its long mode, the interpreter)

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import {
  bootOn,
  ignoredNote,
  logMarkerTime,
  MEMTEST,
  memtestArgs,
  type Side,
  whyNoAmd64,
} from "./amd64_guests.ts";
import { tail } from "./guest_util.ts";

const WHY = whyNoAmd64([MEMTEST]);

/** The test screen: the first test's name in the "Test #" field, so testing has begun. */
const TEST_SCREEN = /#0 +\[Address test, walking ones/;

async function memtestScreen(side: Side): Promise<void> {
  const r = await bootOn(side, memtestArgs(), { marker: TEST_SCREEN, stopAt: TEST_SCREEN });
  logMarkerTime(side, "memtest86+x64", "its test screen", r);
  assert.match(r.text, /Booting from ROM\.\./, tail(r));
  assert.match(r.text, /Memtest86\+ v\d+\.\d+/, tail(r));
  // The CPU the default machine gives: QEMU's qemu64 model, as memtest names it.
  assert.match(r.text, /QEMU Virtual CPU version 2\.5\+/, tail(r));
  assert.match(r.text, /Memory +: +\d+MB/, tail(r));
  assert.match(r.text, TEST_SCREEN, tail(r));
  assert.equal(r.timedOut, false, tail(r));
}

Deno.test({
  name:
    "qemu-system-x86_64 -kernel memtest86+x64.bin reaches its test screen on the serial console" +
    ignoredNote(WHY),
  ignore: skipUnless(import.meta, { ok: WHY === "", missing: WHY }),
  fn: () => memtestScreen("qemu"),
});

Deno.test({
  name: "vmkit system-x86_64 -kernel memtest86+x64.bin reaches its test screen the way QEMU does" +
    ignoredNote(WHY),
  ignore: skipUnless(import.meta, { ok: WHY === "", missing: WHY }),
  fn: () => memtestScreen("vmkit"),
});
