// SSE inside hot loops: the block translator and the wasm tier end every block before an SSE
// instruction, and the interpreter runs it with the registers the block left

import assert from "node:assert/strict";
import { assertSameRun, runFlat } from "./test_util.ts";

/**
 * loop: add eax, ecx; movd xmm0, eax; paddd xmm1, xmm0; cvtsi2ss xmm2, eax;
 * addps xmm3, xmm2; mulsd xmm4, xmm3; pmovmskb ebx, xmm1; xor edx, ebx;
 * pshufd xmm5, xmm1, 0x1b; movdqu [0x200000], xmm5; sub edx, [0x200004];
 * dec ecx; jnz loop; hlt (nasm, org 0x100000)
 */
const LOOP = new Uint8Array([
  0x01,
  0xc8,
  0x66,
  0x0f,
  0x6e,
  0xc0,
  0x66,
  0x0f,
  0xfe,
  0xc8,
  0xf3,
  0x0f,
  0x2a,
  0xd0,
  0x0f,
  0x58,
  0xda,
  0xf2,
  0x0f,
  0x59,
  0xe3,
  0x66,
  0x0f,
  0xd7,
  0xd9,
  0x31,
  0xda,
  0x66,
  0x0f,
  0x70,
  0xe9,
  0x1b,
  0xf3,
  0x0f,
  0x7f,
  0x2d,
  0x00,
  0x00,
  0x20,
  0x00,
  0x2b,
  0x15,
  0x04,
  0x00,
  0x20,
  0x00,
  0x49,
  0x75,
  0xcf,
  0xf4,
]);

const TIERS = [
  { name: "the block translator", jit: true, extra: {} },
  { name: "the wasm tier", jit: true, extra: { wasmHot: 1 } },
];

for (const tier of TIERS) {
  Deno.test(`a hot loop with SSE in it ends in the interpreter's state under ${tier.name}`, () => {
    const run = (jit: boolean, extra: { wasmHot?: number }) =>
      runFlat(LOOP, {
        jit,
        ...extra,
        slices: [5000, 7, 100_000],
        setup: (_ram, cpu) => {
          cpu.core.cr4 |= 0x600; // OSFXSR, OSXMMEXCPT
          cpu.core.regs[1] = 20_000; // ECX: iterations
          cpu.core.regs[2] = 0x12345;
        },
      });
    const interp = run(false, {});
    const translated = run(tier.jit, tier.extra);
    assertSameRun(translated, interp, tier.name);
    assert.equal(interp.retired, 20_000 * 13 + 1);
    assert.deepEqual(translated.cpu.core.sse.u8, interp.cpu.core.sse.u8, "XMM registers");
    assert.equal(translated.cpu.core.sse.mxcsr, interp.cpu.core.sse.mxcsr, "MXCSR");
    assert.notEqual(interp.cpu.core.sse.mxcsr & 0x20, 0, "inexact results raised PE");
    assert.ok(translated.cpu.blocks !== null && translated.cpu.blocks.translated > 0);
  });
}
