// SSE2 integer instructions on XMM registers: arithmetic, saturation, compares, logic, shifts,
// shuffles, unpacks, packs, PMOVMSKB, PEXTRW/PINSRW, PSADBW

import { decodeModrm } from "./decode.ts";
import { fetch8, read16 } from "./memory.ts";
import type { CpuCore } from "./state.ts";
import { ud } from "./state.ts";
import { def, moveDw, NEED_SSE, NEED_SSE2, P_66, P_F2, P_F3, P_NONE, rm, srcX } from "./sse_ops.ts";
import { XMM_TMP } from "./sse_state.ts";

type Lane = (a: number, b: number) => number;

const sat8 = (v: number) => (v > 127 ? 127 : v < -128 ? -128 : v);
const satU8 = (v: number) => (v > 255 ? 255 : v < 0 ? 0 : v);
const sat16 = (v: number) => (v > 32767 ? 32767 : v < -32768 ? -32768 : v);
const satU16 = (v: number) => (v > 65535 ? 65535 : v < 0 ? 0 : v);

/** Element-wise op on bytes (signed or not), words or dwords. */
function lanes(bits: 8 | 16 | 32, signed: boolean, f: Lane) {
  return (c: CpuCore, d: number, s: number) => {
    const x = c.sse;
    const v = bits === 8 ? (signed ? x.i8 : x.u8) : bits === 16 ? (signed ? x.i16 : x.u16) : x.i32;
    const n = 128 / bits, dd = n * d, ss = n * s;
    for (let i = 0; i < n; i++) v[dd + i] = f(v[dd + i], v[ss + i]);
  };
}

/** PADDQ / PSUBQ: 64-bit lanes as dword pairs with a carry. */
function addQ(sub: boolean) {
  return (c: CpuCore, d: number, s: number) => {
    const v = c.sse.u32;
    for (let q = 0; q < 2; q++) {
      const i = 4 * d + 2 * q, j = 4 * s + 2 * q;
      const lo = sub ? v[i] - v[j] : v[i] + v[j];
      const carry = sub ? (lo < 0 ? -1 : 0) : lo > 0xffffffff ? 1 : 0;
      v[i + 1] = v[i + 1] + (sub ? -v[j + 1] : v[j + 1]) + carry;
      v[i] = lo;
    }
  };
}

/** A result computed into XMM_TMP by `f`, then copied to `d` (operands may alias). */
function viaTmp(f: (c: CpuCore, d: number, s: number) => void) {
  return (c: CpuCore, d: number, s: number) => {
    f(c, d, s);
    c.sse.copy(d, XMM_TMP);
  };
}

/** PUNPCKLxx / PUNPCKHxx: interleave the low or high halves of d and s, `bytes` per element. */
function unpack(bytes: number, high: boolean) {
  return viaTmp((c, d, s) => {
    const u = c.sse.u8, t = 16 * XMM_TMP, half = high ? 8 : 0;
    for (let e = 0; e < 8 / bytes; e++) {
      for (let k = 0; k < bytes; k++) {
        u[t + 2 * e * bytes + k] = u[16 * d + half + e * bytes + k];
        u[t + (2 * e + 1) * bytes + k] = u[16 * s + half + e * bytes + k];
      }
    }
  });
}

/** PACKSSWB / PACKUSWB / PACKSSDW: narrow d then s with saturation. */
function pack(from: 16 | 32, sat: (v: number) => number) {
  return viaTmp((c, d, s) => {
    const x = c.sse;
    const src = from === 16 ? x.i16 : x.i32;
    const n = 128 / from;
    for (let i = 0; i < n; i++) {
      const a = sat(src[n * d + i]), b = sat(src[n * s + i]);
      if (from === 16) {
        x.u8[16 * XMM_TMP + i] = a;
        x.u8[16 * XMM_TMP + n + i] = b;
      } else {
        x.u16[8 * XMM_TMP + i] = a;
        x.u16[8 * XMM_TMP + n + i] = b;
      }
    }
  });
}

/** Shift of every `bits` lane of register `d` by `count` (left, logical right, arithmetic right). */
export function shiftLanes(c: CpuCore, d: number, bits: number, kind: number, count: number): void {
  const x = c.sse;
  if (bits === 64) {
    const v = x.u32;
    for (let q = 0; q < 2; q++) {
      const i = 4 * d + 2 * q;
      const a = v[i], b = v[i + 1];
      let lo = 0, hi = 0;
      if (count > 63) lo = hi = 0;
      else if (count >= 32) {
        if (kind === 0) hi = a << (count - 32);
        else lo = b >>> (count - 32);
      } else if (count === 0) {
        lo = a;
        hi = b;
      } else if (kind === 0) {
        lo = a << count;
        hi = (b << count) | (a >>> (32 - count));
      } else {
        lo = (a >>> count) | (b << (32 - count));
        hi = b >>> count;
      }
      v[i] = lo;
      v[i + 1] = hi;
    }
    return;
  }
  const n = 128 / bits, v = bits === 16 ? x.i16 : x.i32, mask = bits === 16 ? 0xffff : -1;
  for (let i = n * d; i < n * d + n; i++) {
    const a = v[i];
    if (kind === 2) v[i] = a >> (count > bits - 1 ? bits - 1 : count);
    else if (count > bits - 1) v[i] = 0;
    else if (kind === 0) v[i] = a << count;
    else v[i] = (a & mask) >>> count;
  }
}

/** The shift count of an xmm/m128 count operand: its low quadword, saturated. */
function countOf(c: CpuCore, s: number): number {
  const v = c.sse.u32;
  return v[4 * s + 1] !== 0 ? 256 : v[4 * s] > 255 ? 256 : v[4 * s];
}

/** Byte shift of the whole register (PSLLDQ left, PSRLDQ right). */
function shiftBytes(c: CpuCore, d: number, left: boolean, n: number): void {
  const u = c.sse.u8, b = 16 * d;
  if (n > 16) n = 16;
  if (left) {
    for (let i = 15; i >= 0; i--) u[b + i] = i >= n ? u[b + i - n] : 0;
  } else {
    for (let i = 0; i < 16; i++) u[b + i] = i + n < 16 ? u[b + i + n] : 0;
  }
}

/**
 * The lane operations of the 66 0F xx integer instructions by opcode, for the MMX forms
 * (mmx.ts), which run the same code on the low 8 bytes of scratch slots.
 */
export const INT_OPS: Map<number, (c: CpuCore, d: number, s: number) => void> = new Map();

/** Installs the SSE2 integer instructions (66 0F xx) and the SSE ones on XMM. */
export function installSseInt(): void {
  const d66 = (op: number, f: (c: CpuCore, d: number, s: number) => void) => {
    INT_OPS.set(op, f);
    def(op, P_66, NEED_SSE2, rm(f));
  };
  d66(0xfc, lanes(8, false, (a, b) => a + b));
  d66(0xfd, lanes(16, false, (a, b) => a + b));
  d66(0xfe, lanes(32, true, (a, b) => a + b));
  d66(0xd4, addQ(false));
  d66(0xf8, lanes(8, false, (a, b) => a - b));
  d66(0xf9, lanes(16, false, (a, b) => a - b));
  d66(0xfa, lanes(32, true, (a, b) => a - b));
  d66(0xfb, addQ(true));
  d66(0xec, lanes(8, true, (a, b) => sat8(a + b)));
  d66(0xed, lanes(16, true, (a, b) => sat16(a + b)));
  d66(0xdc, lanes(8, false, (a, b) => satU8(a + b)));
  d66(0xdd, lanes(16, false, (a, b) => satU16(a + b)));
  d66(0xe8, lanes(8, true, (a, b) => sat8(a - b)));
  d66(0xe9, lanes(16, true, (a, b) => sat16(a - b)));
  d66(0xd8, lanes(8, false, (a, b) => satU8(a - b)));
  d66(0xd9, lanes(16, false, (a, b) => satU16(a - b)));
  d66(0xd5, lanes(16, true, (a, b) => Math.imul(a, b)));
  d66(0xe5, lanes(16, true, (a, b) => (a * b) >> 16));
  d66(0xe4, lanes(16, false, (a, b) => (a * b) >>> 16));
  d66(0xe0, lanes(8, false, (a, b) => (a + b + 1) >> 1));
  d66(0xe3, lanes(16, false, (a, b) => (a + b + 1) >> 1));
  d66(0xda, lanes(8, false, (a, b) => (a < b ? a : b)));
  d66(0xde, lanes(8, false, (a, b) => (a > b ? a : b)));
  d66(0xea, lanes(16, true, (a, b) => (a < b ? a : b)));
  d66(0xee, lanes(16, true, (a, b) => (a > b ? a : b)));
  d66(0x74, lanes(8, false, (a, b) => (a === b ? 0xff : 0)));
  d66(0x75, lanes(16, false, (a, b) => (a === b ? 0xffff : 0)));
  d66(0x76, lanes(32, true, (a, b) => (a === b ? -1 : 0)));
  d66(0x64, lanes(8, true, (a, b) => (a > b ? -1 : 0)));
  d66(0x65, lanes(16, true, (a, b) => (a > b ? -1 : 0)));
  d66(0x66, lanes(32, true, (a, b) => (a > b ? -1 : 0)));
  // Logic: PAND PANDN POR PXOR and the ANDPS/ANDNPS/ORPS/XORPS (+PD) forms.
  const and = lanes(32, true, (a, b) => a & b), andn = lanes(32, true, (a, b) => ~a & b);
  const or = lanes(32, true, (a, b) => a | b), xor = lanes(32, true, (a, b) => a ^ b);
  d66(0xdb, and);
  d66(0xdf, andn);
  d66(0xeb, or);
  d66(0xef, xor);
  for (const [op, f] of [[0x54, and], [0x55, andn], [0x56, or], [0x57, xor]] as const) {
    def(op, P_NONE, NEED_SSE, rm(f));
    def(op, P_66, NEED_SSE2, rm(f));
  }
  // PMULUDQ: the even dwords, unsigned, into 64-bit products.
  d66(0xf4, (c, d, s) => {
    const v = c.sse.u32;
    for (let q = 0; q < 2; q++) {
      const a = v[4 * d + 2 * q], b = v[4 * s + 2 * q];
      const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
      const cross = ah * bl + al * bh; // < 2^33, exact
      const low = al * bl + (cross % 65536) * 65536; // < 2^33, exact
      v[4 * d + 2 * q + 1] = ah * bh + Math.floor(cross / 65536) + Math.floor(low / 4294967296);
      const lo = low % 4294967296;
      v[4 * d + 2 * q] = lo;
    }
  });
  // PMADDWD: pairs of signed word products summed into dwords.
  d66(0xf5, (c, d, s) => {
    const w = c.sse.i16, v = c.sse.i32;
    for (let i = 0; i < 4; i++) {
      const p = 8 * d + 2 * i, q = 8 * s + 2 * i;
      v[4 * d + i] = (w[p] * w[q] + w[p + 1] * w[q + 1]) | 0;
    }
  });
  // PSADBW: sums of absolute byte differences per quadword.
  d66(0xf6, (c, d, s) => {
    const u = c.sse.u8, v = c.sse.i32;
    for (let q = 0; q < 2; q++) {
      let sum = 0;
      for (let i = 0; i < 8; i++) sum += Math.abs(u[16 * d + 8 * q + i] - u[16 * s + 8 * q + i]);
      v[4 * d + 2 * q] = sum;
      v[4 * d + 2 * q + 1] = 0;
    }
  });
  // Unpacks and packs.
  d66(0x60, unpack(1, false));
  d66(0x61, unpack(2, false));
  d66(0x62, unpack(4, false));
  d66(0x6c, unpack(8, false));
  d66(0x68, unpack(1, true));
  d66(0x69, unpack(2, true));
  d66(0x6a, unpack(4, true));
  d66(0x6d, unpack(8, true));
  d66(0x63, pack(16, sat8));
  d66(0x67, pack(16, satU8));
  d66(0x6b, pack(32, sat16));
  // UNPCKLPS/UNPCKHPS, UNPCKLPD/UNPCKHPD: the same interleaves on dwords and quadwords.
  def(0x14, P_NONE, NEED_SSE, rm(unpack(4, false)));
  def(0x15, P_NONE, NEED_SSE, rm(unpack(4, true)));
  def(0x14, P_66, NEED_SSE2, rm(unpack(8, false)));
  def(0x15, P_66, NEED_SSE2, rm(unpack(8, true)));
  // Shifts by an xmm/m128 count: PSRLW/D/Q D1..D3, PSRAW/D E1/E2, PSLLW/D/Q F1..F3.
  for (
    const [op, bits, kind] of [
      [0xd1, 16, 1],
      [0xd2, 32, 1],
      [0xd3, 64, 1],
      [0xe1, 16, 2],
      [0xe2, 32, 2],
      [0xf1, 16, 0],
      [0xf2, 32, 0],
      [0xf3, 64, 0],
    ]
  ) {
    d66(op, (c, d, s) => shiftLanes(c, d, bits, kind, countOf(c, s)));
  }
  // Shifts by an immediate: 66 0F 71/72/73 /2 /4 /6, and 73 /3 PSRLDQ, /7 PSLLDQ.
  for (const [op, bits] of [[0x71, 16], [0x72, 32], [0x73, 64]]) {
    def(op, P_66, NEED_SSE2, (c) => {
      decodeModrm(c);
      const n = fetch8(c);
      const r = c.modReg;
      if (c.modMod !== 3) return ud(c);
      if (bits === 64 && (r === 3 || r === 7)) return shiftBytes(c, c.modRm, r === 7, n);
      const kind = r === 6 ? 0 : r === 2 ? 1 : r === 4 && bits !== 64 ? 2 : -1;
      if (kind < 0) return ud(c);
      shiftLanes(c, c.modRm, bits, kind, n);
    });
  }
  // PSHUFD, PSHUFHW, PSHUFLW xmm, xmm/m128, imm8.
  for (const p of [P_66, P_F3, P_F2]) {
    def(0x70, p, NEED_SSE2, (c) => {
      decodeModrm(c);
      const s = srcX(c);
      const imm = fetch8(c);
      const x = c.sse, d = c.modReg;
      if (p === P_66) {
        for (let i = 0; i < 4; i++) x.i32[4 * XMM_TMP + i] = x.i32[4 * s + ((imm >> (2 * i)) & 3)];
      } else {
        const keep = p === P_F3 ? 0 : 4, mix = 4 - keep;
        for (let i = 0; i < 4; i++) {
          x.u16[8 * XMM_TMP + keep + i] = x.u16[8 * s + keep + i];
          x.u16[8 * XMM_TMP + mix + i] = x.u16[8 * s + mix + ((imm >> (2 * i)) & 3)];
        }
      }
      x.copy(d, XMM_TMP);
    });
  }
  // SHUFPS / SHUFPD xmm, xmm/m128, imm8: low lanes from d, high lanes from s.
  def(0xc6, P_NONE, NEED_SSE, (c) => {
    decodeModrm(c);
    const s = srcX(c);
    const imm = fetch8(c);
    const v = c.sse.i32, d = c.modReg, t = 4 * XMM_TMP;
    v[t] = v[4 * d + (imm & 3)];
    v[t + 1] = v[4 * d + ((imm >> 2) & 3)];
    v[t + 2] = v[4 * s + ((imm >> 4) & 3)];
    v[t + 3] = v[4 * s + ((imm >> 6) & 3)];
    c.sse.copy(d, XMM_TMP);
  });
  def(0xc6, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    const s = srcX(c);
    const imm = fetch8(c);
    const d = c.modReg;
    moveDw(c, XMM_TMP, 0, d, imm & 1 ? 2 : 0, 2);
    moveDw(c, XMM_TMP, 2, s, imm & 2 ? 2 : 0, 2);
    c.sse.copy(d, XMM_TMP);
  });
  // PMOVMSKB r32, xmm.
  def(0xd7, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const u = c.sse.u8, s = 16 * c.modRm;
    let m = 0;
    for (let i = 0; i < 16; i++) m |= (u[s + i] >> 7) << i;
    c.regs[c.modReg] = m;
  });
  // PEXTRW r32, xmm, imm8 and PINSRW xmm, r32/m16, imm8.
  def(0xc5, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const imm = fetch8(c);
    c.regs[c.modReg] = c.sse.u16[8 * c.modRm + (imm & 7)];
  });
  def(0xc4, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    const v = c.modMod === 3 ? c.regs[c.modRm] : read16(c, c.eaSeg, c.eaOff);
    const imm = fetch8(c);
    c.sse.u16[8 * c.modReg + (imm & 7)] = v;
  });
}
