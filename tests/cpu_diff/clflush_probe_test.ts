// CLFLUSH against QEMU: which operands fault (a not-present page, a null segment, the
// register form) and that the instruction changes nothing else

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps, type Dump, parseDump, runImage } from "./harness.ts";
import { pm32Source } from "./image_pm32.ts";
import { DATA_BASE, DATA_BYTES, hex, NP_PAGE } from "./layout.ts";
import { assemble } from "./program.ts";

async function onBoth(source: string): Promise<[Dump, Dump]> {
  const dir = await Deno.makeTempDir({ prefix: "vmkit-clflush-probe-" });
  try {
    const bin = await assemble(source, dir);
    const qemu = parseDump((await runImage("qemu", bin, dir)).text, "pm32");
    const vmkit = parseDump((await runImage("interp", bin, dir)).text, "pm32");
    return [qemu, vmkit];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Each CLFLUSH form, then a marker in EAX. */
export function clflushSource(body: string[]): string {
  return pm32Source({
    init: ["mov eax, 0"],
    flags: 2,
    data: new Array(DATA_BYTES).fill(0x5a),
    // ECX and EDX hold what the two -kernel loaders left: cleared for the exception hash
    body: ["  xor ecx, ecx", "  xor edx, edx", ...body, "  mov eax, 0x600df00d"],
    resume: [],
    passes: 1,
  });
}

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
      const [qemu, vmkit] = await onBoth(clflushSource(body));
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
