// SSE and SSE2 items of the CPU differential generator: moves, integer and floating-point
// arithmetic, compares, shuffles, conversions and MXCSR, on XMM0..XMM15 in long mode and
// XMM0..XMM7 (no REX, no RIP-relative or 64-bit forms) in 32-bit protected mode

import { DATA_BASE, DATA_BYTES, STATUS } from "./layout.ts";
import { hex } from "./rng.ts";
import { low32, type Operands, R32, R64 } from "./gen_operands.ts";

/** The XMM registers (XMM8..15 need a REX prefix); all sixteen are in the long-mode dump. */
const XMM_ALL = Array.from({ length: 16 }, (_, i) => `xmm${i}`);
const XMM_32 = XMM_ALL.slice(0, 8);
let XMM = XMM_ALL;

/** The mode's general registers for bases and conversions. */
function gprs(o: Operands): string[] {
  return o.mode === "long" ? R64 : R32;
}

/** `[rel x]` in long mode, `[x]` in 32-bit mode (the choice is drawn in both). */
function rel(o: Operands): string {
  return o.mode === "long" ? "rel " : "";
}

/** Single-precision values at the edges: zeros, denormals, infinities, NaNs, extremes. */
const EDGE_F32 = [
  0x00000000,
  0x80000000,
  0x00000001,
  0x807fffff,
  0x00800000,
  0x3f800000,
  0xbf800000,
  0x7f7fffff,
  0x7f800000,
  0xff800000,
  0x7fc00000,
  0xffc00000,
  0x7fa00000,
  0x4f000000, // 2^31: just out of int32 range
  0xcf000000,
  0x3effffff,
  0x3f000000, // 0.5: rounding-mode edge
  0x3fc00000, // 1.5
];

/** Integer SSE2 operations with an xmm/m128 source (66 0F xx). */
const INT_OPS = [
  "paddb",
  "paddw",
  "paddd",
  "paddq",
  "psubb",
  "psubw",
  "psubd",
  "psubq",
  "paddsb",
  "paddsw",
  "paddusb",
  "paddusw",
  "psubsb",
  "psubsw",
  "psubusb",
  "psubusw",
  "pmullw",
  "pmulhw",
  "pmulhuw",
  "pmuludq",
  "pmaddwd",
  "pand",
  "pandn",
  "por",
  "pxor",
  "pcmpeqb",
  "pcmpeqw",
  "pcmpeqd",
  "pcmpgtb",
  "pcmpgtw",
  "pcmpgtd",
  "punpcklbw",
  "punpcklwd",
  "punpckldq",
  "punpcklqdq",
  "punpckhbw",
  "punpckhwd",
  "punpckhdq",
  "punpckhqdq",
  "packsswb",
  "packssdw",
  "packuswb",
  "pmaxsw",
  "pminsw",
  "pmaxub",
  "pminub",
  "pavgb",
  "pavgw",
  "psadbw",
  "psllw",
  "pslld",
  "psllq",
  "psrlw",
  "psrld",
  "psrlq",
  "psraw",
  "psrad",
];

/** Packed and scalar floating-point arithmetic (they set MXCSR's sticky exception flags). */
const FP_OPS = ["add", "sub", "mul", "div", "min", "max", "sqrt"];
const FP_LOGIC = ["andps", "andnps", "orps", "xorps", "andpd", "andnpd", "orpd", "xorpd"];

/** Conversions: [mnemonic, destination kind, source kind]. */
const CVT: [string, "x" | "r32" | "r64", "x" | "m64" | "r32" | "r64" | "s32" | "s64"][] = [
  ["cvtdq2ps", "x", "x"],
  ["cvtps2dq", "x", "x"],
  ["cvttps2dq", "x", "x"],
  ["cvtdq2pd", "x", "m64"],
  ["cvtpd2dq", "x", "x"],
  ["cvttpd2dq", "x", "x"],
  ["cvtps2pd", "x", "m64"],
  ["cvtpd2ps", "x", "x"],
  ["cvtss2sd", "x", "s32"],
  ["cvtsd2ss", "x", "s64"],
  ["cvtsi2ss", "x", "r32"],
  ["cvtsi2sd", "x", "r32"],
  ["cvtsi2ss", "x", "r64"],
  ["cvtsi2sd", "x", "r64"],
  ["cvtss2si", "r32", "s32"],
  ["cvttss2si", "r32", "s32"],
  ["cvtsd2si", "r32", "s64"],
  ["cvttsd2si", "r32", "s64"],
  ["cvtss2si", "r64", "s32"],
  ["cvttss2si", "r64", "s32"],
  ["cvtsd2si", "r64", "s64"],
  ["cvttsd2si", "r64", "s64"],
];

/** The conversions 32-bit code has (no 64-bit general registers). */
const CVT_32 = CVT.filter(([, d, s]) => d !== "r64" && s !== "r64");

/** An aligned 16-byte slot of the data area, in one of the addressing forms. */
function m128(o: Operands): string {
  const at = DATA_BASE + 16 * o.rng.below(DATA_BYTES / 16 - 8);
  const k = o.rng.below(4);
  if (k === 0) return `oword [${hex(at)}]`;
  if (k === 1) return `oword [${rel(o)}${hex(at)}]`;
  const base = o.rng.pick(gprs(o));
  if (k === 2) {
    o.emit(`mov ${base}, ${hex(at)}`);
    return `oword [${base}]`;
  }
  // base + index*scale = at, with a 64-bit base and index.
  const index = o.rng.pick(gprs(o).filter((r) => r !== base));
  const scale = o.rng.pick([1, 2, 4, 8]);
  const n = 16 * o.rng.below(4);
  o.emit(`mov ${base}, ${hex(at - n * scale)}`);
  o.emit(`mov ${low32(index)}, ${n}`);
  return `oword [${base}+${index}*${scale}]`;
}

/** Any-alignment memory of `bytes` (scalar operands, MOVUPS/MOVDQU). */
function mAny(o: Operands, bytes: 4 | 8 | 16): string {
  const size = { 4: "dword", 8: "qword", 16: "oword" }[bytes];
  const at = DATA_BASE + o.rng.below(DATA_BYTES - 64);
  return o.rng.chance(0.3) ? `${size} [${rel(o)}${hex(at)}]` : `${size} [${hex(at)}]`;
}

/** An xmm register or (aligned) memory source. */
function xmmOrM128(o: Operands): string {
  return o.rng.chance(0.3) ? m128(o).replace(/^oword /, "") : o.rng.pick(XMM);
}

/** Loads an edge single-precision pattern into an XMM register (broadcast or one lane). */
function edgeInto(o: Operands, x: string): void {
  const r = o.rng.pick(
    o.mode === "long" ? ["eax", "ecx", "edx", "r8d", "r9d"] : ["eax", "ecx", "edx"],
  );
  o.emit(`mov ${r}, ${hex(o.rng.pick(EDGE_F32))}`);
  o.emit(`movd ${x}, ${r}`);
  if (o.rng.chance(0.5)) o.emit(`pshufd ${x}, ${x}, ${o.rng.below(256)}`);
}

/**
 * One SSE/SSE2 item. MXCSR keeps every exception masked (a masked fault gives the
 * default result and a sticky flag, both in the dump); rounding control, FTZ and DAZ vary.
 * A MOVAPS/MOVDQA at an address that is not 16-byte aligned raises #GP(0), on purpose.
 */
export function sseItem(o: Operands): string {
  XMM = o.mode === "long" ? XMM_ALL : XMM_32;
  const k = o.rng.below(11);
  if (k === 10) return moreItem(o);
  if (k === 0) {
    // MXCSR: a new rounding mode, FTZ, DAZ and sticky flags, all exceptions masked.
    const mx = 0x1f80 | (o.rng.below(4) << 13) | (o.rng.chance(0.3) ? 0x8000 : 0) |
      (o.rng.chance(0.3) ? 0x40 : 0) | (o.rng.chance(0.3) ? o.rng.below(64) : 0);
    const slot = hex(DATA_BASE + 4 * o.rng.below(DATA_BYTES / 4));
    o.emit(`mov dword [${slot}], ${hex(mx)}`);
    const insn = o.put(`ldmxcsr [${slot}]`);
    if (o.rng.chance(0.5)) o.emit(`stmxcsr [${hex(DATA_BASE + 4 * o.rng.below(DATA_BYTES / 4))}]`);
    return insn;
  }
  if (k === 1) {
    // Moves between XMM registers, memory and general registers.
    const x = o.rng.pick(XMM), y = o.rng.pick(XMM);
    const form = o.rng.below(9);
    if (form === 0) return o.put(`${o.rng.pick(["movaps", "movapd", "movdqa"])} ${x}, ${y}`);
    if (form === 1) return o.put(`${o.rng.pick(["movaps", "movdqa"])} ${x}, ${m128(o)}`);
    if (form === 2) return o.put(`${o.rng.pick(["movaps", "movdqa", "movapd"])} ${m128(o)}, ${x}`);
    if (form === 3) return o.put(`${o.rng.pick(["movups", "movdqu"])} ${mAny(o, 16)}, ${x}`);
    if (form === 4) return o.put(`${o.rng.pick(["movups", "movdqu"])} ${x}, ${mAny(o, 16)}`);
    if (form === 5) {
      const r = o.rng.pick(gprs(o));
      const r32 = o.mode === "long" ? low32(r) : r;
      const forms = [`movd ${x}, ${r32}`, `movd ${r32}, ${x}`];
      if (o.mode === "long") forms.push(`movq ${x}, ${r}`, `movq ${r}, ${x}`);
      return o.put(o.rng.pick(forms));
    }
    if (form === 6) {
      return o.put(
        o.rng.pick([
          `movq ${x}, ${mAny(o, 8)}`,
          `movq ${mAny(o, 8)}, ${x}`,
          `movss ${x}, ${mAny(o, 4)}`,
          `movsd ${x}, ${mAny(o, 8)}`,
          `movss ${x}, ${y}`,
          `movsd ${x}, ${y}`,
          `movss ${mAny(o, 4)}, ${x}`,
          `movsd ${mAny(o, 8)}, ${x}`,
          `movq ${x}, ${y}`,
          `movhlps ${x}, ${y}`,
          `movlhps ${x}, ${y}`,
        ]),
      );
    }
    if (form === 7) {
      // A misaligned MOVAPS/MOVDQA: #GP(0); the handler resumes after it.
      o.markFault();
      const at = DATA_BASE + 16 * o.rng.below(DATA_BYTES / 16 - 2) + 1 + o.rng.below(15);
      return o.put(`${o.rng.pick(["movaps", "movdqa"])} ${x}, [${hex(at)}]`);
    }
    edgeInto(o, x);
    return "edge value";
  }
  if (k <= 4) {
    // Integer arithmetic, logic, compares, unpacks and packs (and shifts by an XMM count).
    const op = o.rng.pick(INT_OPS);
    const x = o.rng.pick(XMM);
    if (/^ps[lr]/.test(op) && o.rng.chance(0.5)) {
      // The immediate-count form; PSLLDQ/PSRLDQ shift whole bytes.
      const count = o.rng.pick([0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 255, o.rng.below(70)]);
      if (o.rng.chance(0.3)) return o.put(`${o.rng.pick(["pslldq", "psrldq"])} ${x}, ${count}`);
      return o.put(`${op} ${x}, ${count}`);
    }
    return o.put(`${op} ${x}, ${xmmOrM128(o)}`);
  }
  if (k === 5) {
    // Shuffles, extracts, inserts and masks.
    const x = o.rng.pick(XMM), y = o.rng.pick(XMM);
    const imm = o.rng.below(256);
    const r = o.rng.pick(
      o.mode === "long"
        ? ["eax", "ebx", "ecx", "edx", "esi", "edi", "r8d", "r11d"]
        : ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "ebx"],
    );
    // The choice is made first: a memory operand's setup lines belong to the chosen form only.
    return o.put(
      o.rng.pick([
        () => `pshufd ${x}, ${xmmOrM128(o)}, ${imm}`,
        () => `pshuflw ${x}, ${y}, ${imm}`,
        () => `pshufhw ${x}, ${y}, ${imm}`,
        () => `shufps ${x}, ${xmmOrM128(o)}, ${imm}`,
        () => `shufpd ${x}, ${y}, ${imm & 3}`,
        () => `unpcklps ${x}, ${y}`,
        () => `unpckhpd ${x}, ${y}`,
        () => `pextrw ${r}, ${x}, ${imm & 7}`,
        () => `pinsrw ${x}, ${r}, ${imm & 7}`,
        () => `pmovmskb ${r}, ${x}`,
        () => `movmskps ${r}, ${x}`,
        () => `movmskpd ${r}, ${x}`,
      ])(),
    );
  }
  if (k <= 7) {
    // Floating-point arithmetic, packed and scalar, single and double.
    const x = o.rng.pick(XMM);
    if (o.rng.chance(0.3)) edgeInto(o, o.rng.pick(XMM));
    if (o.rng.chance(0.15)) return o.put(`${o.rng.pick(FP_LOGIC)} ${x}, ${xmmOrM128(o)}`);
    const op = o.rng.pick(FP_OPS);
    const sfx = o.rng.pick(["ps", "pd", "ss", "sd"]);
    const src = sfx[0] === "p"
      ? xmmOrM128(o)
      : o.rng.chance(0.3)
      ? mAny(o, sfx === "ss" ? 4 : 8)
      : o.rng.pick(XMM);
    return o.put(`${op}${sfx} ${x}, ${src}`);
  }
  if (k === 8) {
    // Compares: CMPccPS/PD/SS/SD into a mask, (U)COMISS/SD into ZF, PF and CF.
    const x = o.rng.pick(XMM), y = o.rng.pick(XMM);
    if (o.rng.chance(0.5)) {
      const sfx = o.rng.pick(["ps", "pd", "ss", "sd"]);
      return o.put(`cmp${sfx} ${x}, ${y}, ${o.rng.below(8)}`);
    }
    // They set ZF, PF and CF and clear OF, SF and AF.
    o.flags(0, STATUS, 0);
    return o.put(`${o.rng.pick(["comiss", "ucomiss", "comisd", "ucomisd"])} ${x}, ${y}`);
  }
  // Conversions between integers, singles and doubles (MXCSR's rounding mode applies).
  const [op, dst, src] = o.rng.pick(o.mode === "long" ? CVT : CVT_32);
  const x = o.rng.pick(XMM);
  const r64 = o.rng.pick(gprs(o));
  const d = dst === "x" ? x : dst === "r32" ? (o.mode === "long" ? low32(r64) : r64) : r64;
  let s: string;
  if (src === "r32" || src === "r64") {
    const r = o.rng.pick(gprs(o));
    s = src === "r32" && o.mode === "long" ? low32(r) : r;
  } else if (src === "x" && o.rng.chance(0.2)) s = m128(o).replace(/^oword /, "");
  else if (src !== "x" && o.rng.chance(0.4)) s = mAny(o, src === "s32" ? 4 : 8);
  else {
    s = o.rng.pick(XMM);
    if (o.rng.chance(0.3)) edgeInto(o, s);
  }
  return o.put(`${op} ${d}, ${s}`);
}

/**
 * The rest: SSE3 (QEMU's qemu64 and qemu32 have pni), RCP/RSQRT, the half-register moves,
 * the non-temporal stores and MASKMOVDQU.
 */
function moreItem(o: Operands): string {
  const x = o.rng.pick(XMM), y = o.rng.pick(XMM);
  const form = o.rng.below(6);
  if (form === 0) {
    if (o.rng.chance(0.3)) edgeInto(o, y);
    const op = o.rng.pick(["addsubps", "addsubpd", "haddps", "haddpd", "hsubps", "hsubpd"]);
    return o.put(`${op} ${x}, ${xmmOrM128(o)}`);
  }
  if (form === 1) {
    return o.put(
      o.rng.pick([
        () => `movddup ${x}, ${y}`,
        () => `movddup ${x}, ${mAny(o, 8)}`,
        () => `movshdup ${x}, ${xmmOrM128(o)}`,
        () => `movsldup ${x}, ${xmmOrM128(o)}`,
        () => `lddqu ${x}, ${mAny(o, 16)}`,
      ])(),
    );
  }
  if (form === 2) {
    if (o.rng.chance(0.3)) edgeInto(o, y);
    const op = o.rng.pick(["rcpps", "rsqrtps", "rcpss", "rsqrtss"]);
    return o.put(`${op} ${x}, ${op.endsWith("ss") ? y : xmmOrM128(o)}`);
  }
  if (form === 3) {
    const op = o.rng.pick(["movlps", "movhps", "movlpd", "movhpd"]);
    return o.put(o.rng.chance(0.5) ? `${op} ${x}, ${mAny(o, 8)}` : `${op} ${mAny(o, 8)}, ${x}`);
  }
  if (form === 4) {
    const r = o.rng.pick(o.mode === "long" ? ["eax", "ecx", "r9d"] : ["eax", "ecx", "esi"]);
    return o.put(
      o.rng.pick([
        () => `movntdq ${m128(o)}, ${x}`,
        () => `movntps ${m128(o)}, ${x}`,
        () => `movntpd ${m128(o)}, ${x}`,
        () => `movnti ${mAny(o, 4)}, ${r}`,
        () => `unpcklpd ${x}, ${xmmOrM128(o)}`,
        () => `unpckhps ${x}, ${xmmOrM128(o)}`,
        () => `shufpd ${x}, ${xmmOrM128(o)}, ${o.rng.below(4)}`,
      ])(),
    );
  }
  // MASKMOVDQU stores to [EDI] / [RDI]: point it into the data area first.
  const di = o.mode === "long" ? "rdi" : "edi";
  o.emit(`mov ${di}, ${hex(DATA_BASE + o.rng.below(DATA_BYTES - 16))}`);
  return o.put(`maskmovdqu ${x}, ${y}`);
}
