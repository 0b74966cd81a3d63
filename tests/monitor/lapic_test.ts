// HMP `info lapic [apic-id]` on a two-CPU machine at reset: every CPU's local APIC (LVT0
// masked on the boot CPU too, as QEMU 7.2 resets it), and QEMU's answers to bad ids,
// vmkit against real qemu-system-x86_64 7.2 on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { tempDir } from "../test_util.ts";
import { hmpBoth } from "./session_util.ts";

const COMMANDS = [
  "info lapic",
  "info lapic 1",
  "info lapic 0x0",
  "info lapic 01", // octal, as QEMU reads numbers
  // Hostile ids: none such, negative, past 32 bits, not a number, trailing words.
  "info lapic 7",
  "info lapic 0xffffffff",
  "info lapic -1",
  "info lapic 99999999999999",
  "info lapic 4294967296",
  "info lapic abc",
  "info lapic 1x",
  "info lapic 1 2",
];

Deno.test({
  name: "HMP info lapic shows each CPU's local APIC at reset as qemu-system-x86_64 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out = await hmpBoth(dir, "lapic", ["-S", "-smp", "2", "-net", "none"], COMMANDS);
      const dumps = out.vmkit.filter((l) => l.startsWith("dumping"));
      assert.deepEqual(dumps, [
        "dumping local APIC state for CPU 0 ",
        "dumping local APIC state for CPU 1 ",
        "dumping local APIC state for CPU 0 ",
        "dumping local APIC state for CPU 1 ",
      ]);
      assert.ok(
        out.vmkit.includes(
          "LVT0\t 0x00010000 active-hi edge  masked                      Fixed  (vec 0)",
        ),
      );
      assert.deepEqual(out.vmkit, out.qemu);
    } finally {
      await cleanup();
    }
  },
});
