// CLFLUSH against QEMU: which operands fault (a not-present page, a null segment, the
// register form) and that the instruction changes nothing else

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps } from "./harness.ts";
import { DATA_BASE, hex, NP_PAGE } from "./layout.ts";
import { onBoth, probeSource } from "./probe.ts";

const CASES: [string, string[]][] = [
  ["data page", [`  clflush [${hex(DATA_BASE + 0x40)}]`, "  mov ebx, 1"]],
  ["not-present page", [`  clflush [${hex(NP_PAGE + 8)}]`, "  mov ebx, 2"]],
  ["null ES", [
    "  xor ecx, ecx",
    "  mov es, cx",
    `  clflush [es:${hex(DATA_BASE)}]`,
    "  mov ebx, 3",
  ]],
  ["register operand (SFENCE)", ["  db 0x0f, 0xae, 0xf8 | 7", "  mov ebx, 4"]],
  // 66h is CLFLUSHOPT, which qemu64 lacks; F3h and F2h forms are #UD in QEMU 7.2
  ["66h prefix", [`  db 0x66, 0x0f, 0xae, 0x3d`, `  dd ${hex(DATA_BASE)}`, "  mov ebx, 5"]],
  ["F3h prefix", [`  db 0xf3, 0x0f, 0xae, 0x3d`, `  dd ${hex(DATA_BASE)}`, "  mov ebx, 6"]],
];

for (const [name, body] of CASES) {
  Deno.test({
    name: `cpu_diff: CLFLUSH on a ${name} does what QEMU does`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
    async fn() {
      const [qemu, vmkit] = await onBoth(probeSource(body));
      if (name.includes("prefix")) assert.equal(qemu.exceptions[0]?.slice(0, 4), "E 06");
      else {
        assert.equal(qemu.problem, null);
        assert.deepEqual(qemu.exceptions, []);
      }
      const diffs = compareDumps(qemu, vmkit, "pm32", 0).filter((d) =>
        d.what !== "ecx" && d.what !== "edx"
      );
      assert.deepEqual(diffs, []);
    },
  });
}
