// MMX against QEMU: every MMX instruction form over fixed data, the MM registers stored with
// MOVQ and seen through FXSAVE and FNSAVE (the x87 view of an MMX write), CR0.EM/TS

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps } from "./harness.ts";
import { DATA_BASE, DATA_BYTES, hex } from "./layout.ts";
import { onBoth, probeSource } from "./probe.ts";
import { MMX_BINARY as BINARY } from "./gen_mmx.ts";

const at = (n: number) => hex(DATA_BASE + n);

/** Bytes 0..255 of the data area: a pattern with every sign and saturation case. */
function data(): number[] {
  const bytes = new Array(DATA_BYTES).fill(0);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = i < 16 ? [0x7f, 0x80, 0xff, 0x00, 0x01, 0xfe, 0x7e, 0x81][i & 7] : x >>> 24;
  }
  return bytes;
}

function body(): string[] {
  const out: string[] = ["  fninit"];
  let slot = 0x400;
  const save = (r: number) => `  movq [${at((slot += 8) - 8)}], mm${r}`;
  BINARY.forEach((op, i) => {
    const a = (8 * i) % 240, b = (8 * i + 24) % 240;
    const shift = op.startsWith("ps") && /ps(rl|ra|ll)/.test(op);
    out.push(`  movq mm1, [${at(a)}]`);
    if (shift) out.push(`  mov eax, ${i % 20}`, "  movd mm2, eax");
    else out.push(`  movq mm2, [${at(b)}]`);
    out.push(`  ${op} mm1, mm2`, save(1));
    out.push(`  movq mm3, [${at(b)}]`, `  ${op} mm3, [${at(shift ? 0x100 + 8 * (i % 3) : a)}]`);
    out.push(save(3));
  });
  for (const [op, n] of [["psrlw", 3], ["psraw", 15], ["psllw", 17], ["psrld", 9], ["psrad", 31]]) {
    out.push(`  movq mm4, [${at(16)}]`, `  ${op} mm4, ${n}`, save(4));
  }
  out.push(`  movq mm5, [${at(24)}]`, "  psrlq mm5, 13", save(5), "  psllq mm5, 40", save(5));
  out.push(`  pshufw mm6, [${at(32)}], 0x1b`, save(6), "  pshufw mm7, mm6, 0xd8", save(7));
  out.push("  pextrw eax, mm7, 2", `  mov [${at(slot)}], eax`);
  slot += 8;
  out.push("  mov ebx, 0x1234abcd", "  pinsrw mm7, ebx, 1", `  pinsrw mm7, [${at(40)}], 3`);
  out.push(save(7), "  pmovmskb eax, mm7", `  mov [${at(slot)}], eax`);
  slot += 8;
  out.push("  movd mm0, ebx", save(0), "  movd ecx, mm7", `  mov [${at(slot)}], ecx`);
  slot += 8;
  out.push(`  movd mm0, [${at(48)}]`, save(0), `  movd [${at(slot)}], mm7`);
  slot += 8;
  out.push(`  mov edi, ${at(slot)}`, "  maskmovq mm7, mm1");
  slot += 8;
  out.push(`  movntq [${at(slot)}], mm6`);
  slot += 8;
  out.push("  movq mm2, mm7", save(2));
  // The x87 view: FXSAVE (tags all valid, TOP 0, exponents all ones) and FNSAVE.
  out.push(`  fxsave [${at(0x1000)}]`, `  fnsave [${at(0x1200)}]`);
  // FNSAVE's environment holds FIP/FDP: not what this probe is about.
  for (let k = 0; k < 7; k++) out.push(`  mov dword [${at(0x1200 + 4 * k)}], 0`);
  out.push("  fninit", "  fld1", "  movq mm0, mm1", "  emms", "  fld1");
  out.push(`  fxsave [${at(0x1400)}]`, "  fninit");
  return out;
}

Deno.test({
  name: "cpu_diff: the MMX instructions, and MMX writes seen by FXSAVE/FNSAVE, match QEMU",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const [qemu, vmkit] = await onBoth(probeSource(body(), data()));
    assert.equal(qemu.problem, null);
    assert.deepEqual(qemu.exceptions, []);
    assert.deepEqual(compareDumps(qemu, vmkit, "pm32", 0), []);
  },
});

/** CR0 bits and a pending x87 exception in front of an MMX instruction: which fault comes. */
const ENTRY: [string, string | null, string[]][] = [
  ["CR0.TS", "E 07", ["  mov eax, cr0", "  or eax, 8", "  mov cr0, eax", "  pxor mm0, mm0"]],
  ["CR0.EM", "E 06", ["  mov eax, cr0", "  or eax, 4", "  mov cr0, eax", "  pxor mm0, mm0"]],
  ["CR0.EM and CR0.TS", "E 07", [
    "  mov eax, cr0",
    "  or eax, 12",
    "  mov cr0, eax",
    "  pxor mm0, mm0",
  ]],
  // QEMU 7.2 raises no #MF here: the MMX instruction runs, the x87 error stays pending.
  ["a pending x87 exception", null, [
    "  mov eax, cr0",
    "  or eax, 0x20", // CR0.NE: #MF, not IRQ 13
    "  mov cr0, eax",
    "  fninit",
    `  mov word [${at(0x100)}], 0x37b`, // ZE unmasked
    `  fldcw [${at(0x100)}]`,
    "  fld1",
    "  fldz",
    "  fdivp st1, st0",
    "  pxor mm0, mm0",
    "  fninit",
  ]],
];

for (const [name, vector, lines] of ENTRY) {
  Deno.test({
    name: `cpu_diff: an MMX instruction with ${name} faults as in QEMU`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
    async fn() {
      const [qemu, vmkit] = await onBoth(probeSource(lines));
      assert.equal(qemu.exceptions[0]?.slice(0, 4) ?? null, vector);
      assert.deepEqual(compareDumps(qemu, vmkit, "pm32", 0), []);
    },
  });
}

/** Floats and doubles for the conversions: fractions, halves, out of range, NaN, negative. */
function cvtData(): number[] {
  const bytes = new Array(DATA_BYTES).fill(0);
  const dv = new DataView(new ArrayBuffer(256));
  [1.5, -2.5, 3e9, -0.49, NaN, 7.75, 2147483647.0, -2147483648.0].forEach((f, i) =>
    dv.setFloat32(4 * i, f, true)
  );
  [2.5, -1.5, 1e10, 0.5, -3.75, NaN, 123456.789, -0.0].forEach((d, i) =>
    dv.setFloat64(32 + 8 * i, d, true)
  );
  [7, -9, 0x7fffffff, -0x80000000].forEach((n, i) => dv.setInt32(96 + 4 * i, n, true));
  for (let i = 0; i < 256; i++) bytes[i] = dv.getUint8(i);
  return bytes;
}

function cvtBody(): string[] {
  const out: string[] = ["  fninit"];
  let slot = 0x400;
  const put = (l: string) => {
    out.push(l, `  movq [${at(slot)}], mm0`);
    slot += 8;
  };
  const putX = (l: string) => {
    out.push(l, `  movdqu [${at(slot)}], xmm1`);
    slot += 16;
  };
  for (const rc of [0x1f80, 0x3f80, 0x5f80, 0x7f80]) {
    out.push(`  mov dword [${at(0x300)}], ${rc}`, `  ldmxcsr [${at(0x300)}]`);
    for (const k of [0, 8, 16, 24]) {
      put(`  cvtps2pi mm0, [${at(k)}]`);
      put(`  cvttps2pi mm0, [${at(k)}]`);
      out.push(`  movups xmm2, [${at(k)}]`);
      put("  cvtps2pi mm0, xmm2");
    }
    for (const k of [32, 48, 64, 80]) {
      put(`  cvtpd2pi mm0, [${at(k)}]`);
      put(`  cvttpd2pi mm0, [${at(k)}]`);
      out.push(`  movupd xmm2, [${at(k)}]`);
      put("  cvttpd2pi mm0, xmm2");
    }
    out.push(`  movq mm3, [${at(96)}]`, `  movq mm4, [${at(104)}]`, "  pcmpeqb xmm1, xmm1");
    putX(`  cvtpi2ps xmm1, mm3`);
    putX(`  cvtpi2ps xmm1, [${at(104)}]`);
    putX(`  cvtpi2pd xmm1, mm4`);
    putX(`  cvtpi2pd xmm1, [${at(96)}]`);
    out.push(`  stmxcsr [${at(slot)}]`);
    slot += 8;
  }
  out.push(`  fxsave [${at(0x1000)}]`, "  fninit");
  out.push("  fld1", `  cvtpi2ps xmm1, [${at(96)}]`, `  fxsave [${at(0x1200)}]`, "  fninit");
  return out;
}

Deno.test({
  name: "cpu_diff: CVTPI2PS/PD, CVT(T)PS2PI, CVT(T)PD2PI in every rounding mode match QEMU",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
  async fn() {
    const [qemu, vmkit] = await onBoth(probeSource(cvtBody(), cvtData()));
    assert.equal(qemu.problem, null);
    assert.deepEqual(qemu.exceptions, []);
    assert.deepEqual(compareDumps(qemu, vmkit, "pm32", 0), []);
  },
});
