// HMP `info lapic [apic-id]` on a two-CPU machine at reset: every CPU's local APIC (LVT0
// masked on the boot CPU too, as QEMU 7.2 resets it), and QEMU's answers to bad ids,
// vmkit against real qemu-system-x86_64 7.2 on the same command line

import assert from "node:assert/strict";
import * as path from "node:path";
import { tempDir } from "../test_util.ts";
import { HAVE_PYTHON, HAVE_QEMU, hmpBody, session } from "./session_util.ts";

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
  ignore: !(HAVE_PYTHON && HAVE_QEMU),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out: Record<string, string[]> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}.sock`);
        const r = await session(vm, [
          "-S",
          "-smp",
          "2",
          "-net",
          "none",
          "-monitor",
          `unix:${sock},server=on,wait=off`,
        ], ["hmp", sock, ...COMMANDS, "quit"]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        out[vm] = hmpBody(r.lines).filter((l) => !l.startsWith("QEMU"));
      }
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
