// Small SSE probe kernels against QEMU: FXSAVE images (CR4.OSFXSR clear and set) and the
// mandatory prefixes when 66h, F3h and F2h come together

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps } from "./harness.ts";
import { onBoth } from "./probe.ts";
import { pm32Source } from "./image_pm32.ts";
import { DATA_BASE, DATA_BYTES, hex } from "./layout.ts";

/** Three FXSAVEs over a data area of 0xAA bytes: OSFXSR off (twice), then on with x87 values. */
function source(): string {
  const m = hex(DATA_BASE + 4096);
  const body = [
    "  mov eax, 0x12345678",
    "  movd xmm1, eax",
    "  pshufd xmm1, xmm1, 0",
    `  mov dword [${m}], 0x3fa0`,
    `  ldmxcsr [${m}]`,
    "  mov eax, cr4",
    "  and eax, ~0x200",
    "  mov cr4, eax",
    `  fxsave [${hex(DATA_BASE)}]`,
    "  fld1",
    `  fxsave [${hex(DATA_BASE + 512)}]`,
    "  mov eax, cr4",
    "  or eax, 0x200",
    "  mov cr4, eax",
    "  fldz",
    `  fxsave [${hex(DATA_BASE + 1024)}]`,
    "  fstp st0",
    "  fstp st0",
    "  xor eax, eax",
  ];
  return pm32Source({
    init: ["mov eax, 0"],
    flags: 2,
    data: new Array(DATA_BYTES).fill(0xaa),
    body,
    resume: [],
    passes: 1,
  });
}

Deno.test({
  name: "cpu_diff: FXSAVE writes the bytes QEMU writes, with CR4.OSFXSR clear and set",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const [qemu, vmkit] = await onBoth(source());
    assert.equal(qemu.problem, null);
    // QEMU leaves MXCSR and the XMM area alone without OSFXSR, and writes them with it.
    assert.equal(qemu.data[24], 0xaa);
    assert.equal(new DataView(qemu.data.buffer).getUint32(1024 + 24, true), 0x3fa0);
    // ECX and EDX hold what the two -kernel loaders left (SeaBIOS's and vmkit's differ).
    const diffs = compareDumps(qemu, vmkit, "pm32", 0).filter((d) =>
      d.what !== "ecx" && d.what !== "edx"
    );
    assert.deepEqual(diffs, []);
  },
});

/** MOVUPS/MOVUPD/MOVSS/MOVSD (0F 10) under mixed prefixes: which form runs. */
function prefixSource(): string {
  const body = [
    "  mov eax, 0x11111111",
    "  movd xmm1, eax",
    "  pshufd xmm1, xmm1, 0",
    "  mov eax, 0x22222222",
    "  movd xmm0, eax",
    "  pshufd xmm0, xmm0, 0",
    "  movdqa xmm2, xmm0",
    "  movdqa xmm3, xmm0",
    "  movdqa xmm4, xmm0",
    "  db 0x66, 0xf3, 0x0f, 0x10, 0xd1 ; xmm2: MOVSS, not MOVUPD",
    "  db 0xf2, 0xf3, 0x0f, 0x10, 0xd9 ; xmm3: MOVSS (the last of F2/F3)",
    "  db 0xf3, 0xf2, 0x0f, 0x10, 0xe1 ; xmm4: MOVSD",
    "  db 0xf3, 0x66, 0x0f, 0x10, 0xe9 ; xmm5: MOVSS",
  ];
  return pm32Source({
    init: ["mov eax, 0"],
    flags: 2,
    data: new Array(DATA_BYTES).fill(0),
    body,
    resume: [],
    passes: 1,
  });
}

Deno.test({
  name: "cpu_diff: with 66h and F3h/F2h together the F3h/F2h form runs, as on QEMU",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const [qemu, vmkit] = await onBoth(prefixSource());
    assert.equal(qemu.problem, null);
    assert.equal(qemu.xmm[2], 0x22222222222222222222222211111111n);
    assert.equal(qemu.xmm[4], 0x22222222222222221111111111111111n);
    assert.deepEqual(vmkit.xmm, qemu.xmm);
  },
});
