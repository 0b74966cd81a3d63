// The SIMD unit: handshake, exceptions, MXCSR, FXSAVE/FXRSTOR and each instruction family

import assert from "node:assert/strict";
import { X86_MXCSR, X86State } from "../../../core/x86_state.ts";
import { SSE_BYTES, SseState } from "./sse_state.ts";
import { HAVE_NASM, runProgram } from "./test_util.ts";

const why = HAVE_NASM ? "" : " (ignored: nasm is not installed)";

/** Assembles real-mode `body` in a frame: IVT entries for #UD, #NM, #GP and #XM, CR4 set. */
function program(body: string, cr4 = 0x600): Uint8Array {
  const src = `bits 16
org 0x7c00
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7000
${
    [6, 7, 13, 19].map((v) => `  mov word [${v * 4}], h${v}\n  mov word [${v * 4 + 2}], 0`).join(
      "\n",
    )
  }
  mov eax, cr4
  or eax, ${cr4}
  mov cr4, eax
${body}
  mov al, 0xff
  out 0x80, al
  hlt
${[6, 7, 13, 19].map((v) => `h${v}:\n  mov al, ${v}\n  out 0x81, al\n  hlt`).join("\n")}
align 16
data:
  dd 0x3f800000, 0x40000000, 0x40400000, 0x40800000 ; 1 2 3 4 (floats)
  dq 0x3ff0000000000000, 0x4008000000000000 ; 1.0 3.0 (doubles)
  times 64 db 0x11
`;
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/t.asm`, src);
    const r = new Deno.Command("nasm", {
      args: ["-f", "bin", "-o", `${dir}/t.bin`, `${dir}/t.asm`],
    })
      .outputSync();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
    return Deno.readFileSync(`${dir}/t.bin`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Runs `body`; returns the reports and XMM registers as 32-digit hex (high first), MXCSR. */
function run(body: string, options: { cr4?: number; model?: string } = {}) {
  const r = runProgram(program(body, options.cr4), { model: options.model });
  const s = new X86State();
  r.cpu.getState(s);
  const xmm = Array.from(
    { length: 8 },
    (_, i) => [...s.xmm(i)].reverse().map((b) => b.toString(16).padStart(2, "0")).join(""),
  );
  return { reports: r.reports, xmm, mxcsr: s.u32(X86_MXCSR), ram: r.ram, regs: r.cpu.registers() };
}

const test = (name: string, fn: () => void) =>
  Deno.test({ name: `${name}${why}`, ignore: !HAVE_NASM, fn });

test("SSE handshake: #UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS", () => {
  assert.deepEqual(run("  xorps xmm0, xmm0", { cr4: 0 }).reports, ["81:6"]);
  assert.deepEqual(
    run("  mov eax, cr0\n  or al, 4\n  mov cr0, eax\n  addps xmm0, xmm1").reports,
    ["81:6"],
  );
  assert.deepEqual(
    run("  mov eax, cr0\n  or al, 8\n  mov cr0, eax\n  paddb xmm0, xmm1").reports,
    ["81:7"],
  );
  // MOVNTI and the fences are not SIMD-state instructions: no handshake.
  assert.deepEqual(
    run("  mov eax, 5\n  movnti [data+32], eax\n  lfence\n  mfence\n  sfence", { cr4: 0 }).reports,
    ["80:ff"],
  );
});

test("SIMD features follow -cpu: qemu32,-sse2 runs ADDPS but PADDB is #UD; -mmx drops MMX", () => {
  assert.deepEqual(run("  addps xmm0, xmm1", { model: "qemu32,-sse2" }).reports, ["80:ff"]);
  assert.deepEqual(run("  paddb xmm0, xmm1", { model: "qemu32,-sse2" }).reports, ["81:6"]);
  assert.deepEqual(run("  paddb mm0, mm1").reports, ["80:ff"]);
  assert.deepEqual(run("  paddb mm0, mm1", { model: "qemu32,-mmx" }).reports, ["81:6"]);
  // PADDQ on MM is SSE2's: -sse2 makes it #UD while PADDD on MM still runs.
  assert.deepEqual(run("  paddq mm0, mm1", { model: "qemu32,-sse2" }).reports, ["81:6"]);
  assert.deepEqual(run("  paddd mm0, mm1", { model: "qemu32,-sse2" }).reports, ["80:ff"]);
});

test("MMX: CR0.TS is #NM (before CR0.EM, as QEMU 7.2), CR0.EM is #UD, CR4.OSFXSR not needed", () => {
  const cr0 = (bits: number) =>
    `  mov eax, cr0\n  or eax, ${bits}\n  mov cr0, eax\n  pxor mm0, mm0`;
  assert.deepEqual(run(cr0(8)).reports, ["81:7"]);
  assert.deepEqual(run(cr0(4)).reports, ["81:6"]);
  assert.deepEqual(run(cr0(12)).reports, ["81:7"]);
  assert.deepEqual(run("  pxor mm0, mm0", { cr4: 0 }).reports, ["80:ff"]);
});

test("CLFLUSH follows CPUID: qemu64 runs it (whatever CR0.EM says), qemu32 and 66h/F3h are #UD", () => {
  assert.deepEqual(run("  clflush [data]", { model: "qemu64" }).reports, ["80:ff"]);
  const em = "  mov eax, cr0\n  or eax, 4\n  mov cr0, eax\n  clflush [data]";
  assert.deepEqual(run(em, { model: "qemu64" }).reports, ["80:ff"]);
  assert.deepEqual(run("  clflush [data]", { model: "qemu32" }).reports, ["81:6"]);
  assert.deepEqual(run("  db 0x66\n  clflush [data]", { model: "qemu64" }).reports, ["81:6"]);
  assert.deepEqual(run("  db 0xf3\n  clflush [data]", { model: "qemu64" }).reports, ["81:6"]);
});

test("SIMD exceptions: unmasked divide-by-zero is #XM with OSXMMEXCPT, else #UD; dest unchanged", () => {
  const body = `  mov dword [data+40], 0x1d80 ; ZM unmasked
  ldmxcsr [data+40]
  movaps xmm0, [data]
  xorps xmm1, xmm1
  divps xmm0, xmm1`;
  const xm = run(body);
  assert.deepEqual(xm.reports, ["81:13"]);
  assert.equal(xm.xmm[0], "4080000040400000400000003f800000");
  assert.equal(xm.mxcsr, 0x1d84, "ZE set");
  assert.deepEqual(run(body, { cr4: 0x200 }).reports, ["81:6"]);
  // Masked: infinities and the sticky flag.
  const masked = run(body.replace("0x1d80", "0x1f80"));
  assert.deepEqual(masked.reports, ["80:ff"]);
  assert.equal(masked.xmm[0], "7f8000007f8000007f8000007f800000");
  assert.equal(masked.mxcsr, 0x1f84);
});

test("LDMXCSR with a reserved bit is #GP(0); STMXCSR stores MXCSR; DAZ is settable", () => {
  assert.deepEqual(
    run("  mov dword [data+40], 0x11f80\n  ldmxcsr [data+40]").reports,
    ["81:d"],
  );
  const r = run("  mov dword [data+40], 0x9fc0\n  ldmxcsr [data+40]\n  stmxcsr [data+44]");
  assert.equal(r.mxcsr, 0x9fc0);
});

test("FXSAVE/FXRSTOR carry XMM0..7 and MXCSR; FXRSTOR with reserved MXCSR bits is #GP", () => {
  const r = run(`  movaps xmm3, [data]
  mov dword [data+40], 0x3f80
  ldmxcsr [data+40]
  fxsave [0x1000]
  xorps xmm3, xmm3
  mov dword [data+40], 0x1f80
  ldmxcsr [data+40]
  fxrstor [0x1000]`);
  assert.deepEqual(r.reports, ["80:ff"]);
  assert.equal(r.xmm[3], "4080000040400000400000003f800000");
  assert.equal(r.mxcsr, 0x3f80);
  const view = new DataView(r.ram.buffer, r.ram.byteOffset + 0x1000, 512);
  assert.equal(view.getUint32(24, true), 0x3f80);
  assert.equal(view.getUint32(28, true), 0xffff, "MXCSR_MASK");
  assert.equal(view.getUint32(160 + 48, true), 0x3f800000, "XMM3 at 160 + 3 * 16");
  assert.deepEqual(
    run("  fxsave [0x1000]\n  mov dword [0x1000+24], 0x10000\n  fxrstor [0x1000]").reports,
    ["81:d"],
  );
});

test("SSE2 integer: saturation, multiplies, PSADBW, packs, shifts, shuffles, PMOVMSKB", () => {
  const r = run(`  mov eax, 0x80ff7f01
  movd xmm0, eax
  pshufd xmm0, xmm0, 0 ; broadcast
  movdqa xmm1, xmm0
  paddusb xmm1, xmm0 ; ff ff fe 02
  movdqa xmm2, xmm0
  paddsb xmm2, xmm0 ; 80 fe 7f 02
  mov eax, 0xfffffffe
  movd xmm3, eax
  movd xmm4, eax
  pmuludq xmm3, xmm4 ; 0xfffffffc00000004
  movdqa xmm5, xmm0
  psadbw xmm5, xmm1
  movdqa xmm6, xmm0
  psraw xmm6, 4
  pmovmskb ecx, xmm0
  movdqa xmm7, xmm0
  packsswb xmm7, xmm6
  pextrw edx, xmm0, 1
  pslldq xmm6, 15`);
  assert.deepEqual(r.reports, ["80:ff"]);
  assert.equal(r.xmm[1], "fffffe02".repeat(4), "PADDUSB: 02 fe ff ff");
  assert.equal(r.xmm[2], "80fe7f02".repeat(4), "PADDSB: 02 7f fe 80");
  assert.equal(r.xmm[5], "00000000000001fe".repeat(2), "PSADBW: 1 + 127 + 0 + 127, twice");
  assert.equal(r.xmm[6], "f0" + "00".repeat(15), "PSRAW by 4 then PSLLDQ by 15");
  assert.equal(r.xmm[7], "807f".repeat(8), "PACKSSWB saturates both ways");
  assert.equal(r.xmm[3], "0000000000000000fffffffc00000004");
  assert.equal(r.regs.ecx, 0xcccc, "PMOVMSKB: sign bits of 01 7f ff 80 per dword");
  assert.equal(r.regs.edx & 0xffff, 0x80ff);
});

/** Loads MXCSR = `mx`, runs `insns`, and reports XMM0 and MXCSR. */
function fpRun(mx: number, setup: string, insns: string) {
  return run(`  mov dword [data+40], ${mx}
${setup}
  ldmxcsr [data+40]
${insns}`);
}

/** Float bits of `v` into xmm register `x` (via EAX). */
const f32 = (x: number, bits: number) => `  mov eax, ${bits}\n  movd xmm${x}, eax`;

test("SSE floating point: MXCSR's four rounding modes, PE, overflow, FTZ underflow", () => {
  const third = (rc: number) =>
    fpRun(
      0x1f80 | (rc << 13),
      f32(0, 0x3f800000) + "\n" + f32(1, 0x40400000),
      "  divss xmm0, xmm1",
    );
  assert.deepEqual(
    [0, 1, 2, 3].map((rc) => third(rc).xmm[0].slice(24)),
    ["3eaaaaab", "3eaaaaaa", "3eaaaaab", "3eaaaaaa"],
  );
  assert.equal(third(0).mxcsr, 0x1fa0, "PE");
  // Doubles: 1/3 and sqrt(2) rounded up and down.
  const d = (rc: number, op: string) =>
    fpRun(0x1f80 | (rc << 13), "  movq xmm1, [data+16]\n  movq xmm2, [data+24]", op).xmm[0]
      .slice(16);
  assert.equal(d(0, "  movq xmm0, xmm1\n  divsd xmm0, xmm2"), "3fd5555555555555");
  assert.equal(d(2, "  movq xmm0, xmm1\n  divsd xmm0, xmm2"), "3fd5555555555556");
  assert.equal(d(0, "  addsd xmm1, xmm1\n  sqrtsd xmm0, xmm1"), "3ff6a09e667f3bcd");
  assert.equal(d(1, "  addsd xmm1, xmm1\n  sqrtsd xmm0, xmm1"), "3ff6a09e667f3bcc");
  // Overflow: to infinity when rounding to nearest, to the largest float toward zero.
  const big = (rc: number) =>
    fpRun(
      0x1f80 | (rc << 13),
      f32(0, 0x7f7fffff) + "\n" + f32(1, 0x40000000),
      "  mulss xmm0, xmm1",
    );
  assert.equal(big(0).xmm[0].slice(24), "7f800000");
  assert.equal(big(3).xmm[0].slice(24), "7f7fffff");
  assert.equal(big(0).mxcsr & 0x3f, 0x28, "OE and PE");
  // An exact tiny result is no underflow; FTZ flushes it with UE and PE.
  const tiny = (mx: number) =>
    fpRun(mx, f32(0, 0x00800000) + "\n" + f32(1, 0x3f000000), "  mulss xmm0, xmm1");
  assert.equal(tiny(0x1f80).xmm[0].slice(24), "00400000");
  assert.equal(tiny(0x1f80).mxcsr, 0x1f80);
  assert.equal(tiny(0x9f80).xmm[0].slice(24), "00000000");
  assert.equal(tiny(0x9f80).mxcsr, 0x9fb0);
  // A quotient that underflows to zero keeps its sign (-tiny / huge = -0), with UE and PE.
  const q = fpRun(
    0x1f80,
    "  mov dword [data+48], 1\n  mov dword [data+52], 0x80000000\n  movq xmm0, [data+48]\n" +
      "  mov dword [data+48], 0\n  mov dword [data+52], 0x7fe00000\n  movq xmm1, [data+48]",
    "  divsd xmm0, xmm1",
  );
  assert.equal(q.xmm[0].slice(16), "8000000000000000");
  assert.equal(q.mxcsr, 0x1fb0);
  // DAZ: a denormal operand is zero.
  assert.equal(
    fpRun(0x1fc0, f32(0, 0x3f800000) + "\n" + f32(1, 0x00000001), "  addss xmm0, xmm1").mxcsr,
    0x1fc0,
  );
});

test("SSE floating point: NaNs, invalid operations, compares, COMISS flags", () => {
  const r = fpRun(
    0x1f80,
    f32(0, 0xff800000) + "\n" + f32(1, 0x7f800000) + "\n" + f32(2, 0x7fa00000) + "\n" +
      f32(3, 0x3f800000) + "\n" + f32(4, 0x3f800000),
    `  addss xmm0, xmm1 ; -inf + inf: IE, the default NaN
  addss xmm3, xmm2 ; 1 + SNaN: IE, the SNaN quieted
  cmpltss xmm4, xmm2 ; unordered: false
  comiss xmm2, xmm2
  pushfd
  pop ecx`,
  );
  assert.equal(r.xmm[0].slice(24), "ffc00000");
  assert.equal(r.xmm[3].slice(24), "7fe00000");
  assert.equal(r.xmm[4].slice(24), "00000000");
  assert.equal(r.mxcsr, 0x1f81);
  assert.equal(r.regs.ecx & 0x8d5, 0x45, "unordered: ZF PF CF");
  const lt = fpRun(
    0x1f80,
    f32(0, 0x3f800000) + "\n" + f32(1, 0x40000000),
    `  ucomiss xmm0, xmm1
  pushfd
  pop ecx
  cmpless xmm0, xmm1`,
  );
  assert.equal(lt.regs.ecx & 0x8d5, 0x01, "less: CF");
  assert.equal(lt.xmm[0].slice(24), "ffffffff");
  assert.equal(lt.mxcsr, 0x1f80);
});

test("SSE conversions: rounding to integers, truncation, the integer indefinite, widen/narrow", () => {
  const cv = (rc: number, bits: number, op: string) =>
    fpRun(0x1f80 | (rc << 13), f32(1, bits), `  ${op} ecx, xmm1`);
  assert.equal(cv(0, 0x40200000, "cvtss2si").regs.ecx, 2, "2.5 to even");
  assert.equal(cv(2, 0x40200000, "cvtss2si").regs.ecx, 3, "2.5 up");
  assert.equal(cv(0, 0xc0200000, "cvttss2si").regs.ecx | 0, -2, "-2.5 truncated");
  const nan = cv(0, 0x7fc00000, "cvtss2si");
  assert.equal(nan.regs.ecx >>> 0, 0x80000000);
  assert.equal(nan.mxcsr, 0x1f81);
  const w = fpRun(
    0x1f80,
    f32(1, 0x3fc00000),
    `  cvtss2sd xmm0, xmm1
  cvtsd2ss xmm2, xmm0
  mov eax, -7
  cvtsi2sd xmm3, eax
  cvtpd2dq xmm4, xmm3`,
  );
  assert.equal(w.xmm[0].slice(16), "3ff8000000000000");
  assert.equal(w.xmm[2].slice(24), "3fc00000");
  assert.equal(w.xmm[3].slice(16), "c01c000000000000");
  assert.equal(w.xmm[4], "000000000000000000000000fffffff9");
});

Deno.test("SseState can live in a WebAssembly.Memory: its views see the bytes there", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const x = new SseState(memory.buffer, 4096);
  x.f64[2] = 1.5; // XMM1 low lane
  assert.equal(new DataView(memory.buffer).getFloat64(4096 + 16, true), 1.5);
  x.i32[4 * 15 + 3] = -1; // XMM15's top dword
  assert.equal(new Uint8Array(memory.buffer)[4096 + 255], 0xff);
  assert.throws(() => new SseState(memory.buffer, 8), RangeError);
  assert.throws(() => new SseState(memory.buffer, 65536 - SSE_BYTES + 16), RangeError);
});
