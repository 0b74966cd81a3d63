// SSE forms that REX.W widens to 64-bit integers: MOVQ to/from a general register or m64,
// CVTSI2SS/SD from r/m64, CVT(T)SS2SI/SD2SI into r64

import { decodeModrm } from "./decode.ts";
import { readE, setR, writeE } from "./decode_long.ts";
import { big } from "./ops_long2.ts";
import { type CpuCore, type OpHandler } from "./state.ts";
import { mmGet, mmSet } from "./mmx.ts";
import { MMX_OP, NEED_MMX, P_NONE, prefixColumn, sseEnter } from "./sse_ops.ts";
import { MMX_D } from "./sse_state.ts";

const MX_IE = 0x1, MX_PE = 0x20, MX_DAZ = 0x40;

/** The 128-bit slot index of XMM `r` in 32-bit lanes. */
function lane(r: number): number {
  return 4 * r;
}

/** Rounds `v` to an integer by MXCSR.RC (or toward zero). */
function roundMx(c: CpuCore, v: number, truncate: boolean): number {
  const rc = truncate ? 3 : (c.sse.mxcsr >> 13) & 3;
  if (rc === 3) return Math.trunc(v);
  if (rc === 1) return Math.floor(v);
  if (rc === 2) return Math.ceil(v);
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** A float to int64 (QEMU's indefinite 0x8000000000000000 and IE when out of range), into r64. */
function toInt64(c: CpuCore, v: number, truncate: boolean, reg: number): void {
  const r = Number.isNaN(v) ? NaN : roundMx(c, v, truncate);
  if (!(r >= -9223372036854775808 && r < 9223372036854775808)) {
    c.sse.mxcsr |= MX_IE;
    setR(c, reg, 64, 0, 0x80000000 | 0);
    return;
  }
  if (r !== v) c.sse.mxcsr |= MX_PE;
  const b = BigInt.asUintN(64, BigInt(r));
  setR(c, reg, 64, Number(b & 0xffffffffn) | 0, Number(b >> 32n) | 0);
}

/** int64 (lo, hi) to the nearest float of `bits` mantissa bits by MXCSR.RC; PE when inexact. */
function fromInt64(c: CpuCore, lo: number, hi: number, bits: number): number {
  const v = BigInt.asIntN(64, big(lo, hi));
  const neg = v < 0n;
  let m = neg ? -v : v;
  const len = m.toString(2).length;
  if (len <= bits) return Number(v);
  const e = BigInt(len - bits);
  let q = m >> e;
  const rem = m - (q << e);
  if (rem !== 0n) {
    c.sse.mxcsr |= MX_PE;
    const rc = (c.sse.mxcsr >> 13) & 3;
    const half = 1n << (e - 1n);
    if (
      (rc === 0 && (rem > half || (rem === half && (q & 1n) === 1n))) ||
      (rc === 1 && neg) || (rc === 2 && !neg)
    ) q++;
  }
  m = q << e;
  return Number(neg ? -m : m);
}

/** The scalar source of a CVT: XMM lane 0 or memory, as a number (DAZ applied). */
function scalarIn(c: CpuCore, single: boolean): number {
  let v: number;
  if (c.modMod === 3) {
    v = single ? c.sse.f32[lane(c.modRm)] : c.sse.f64[2 * c.modRm];
  } else {
    const lo = readE(c, single ? 32 : 64), hi = c.tHi;
    const t = new DataView(new ArrayBuffer(8));
    t.setInt32(0, lo, true);
    t.setInt32(4, hi, true);
    v = single ? t.getFloat32(0, true) : t.getFloat64(0, true);
  }
  const tiny = single ? 1.1754943508222875e-38 : 2.2250738585072014e-308;
  if ((c.sse.mxcsr & MX_DAZ) !== 0 && v !== 0 && Math.abs(v) < tiny) v = 0;
  return v;
}

/** Wraps the 0F opcodes whose REX.W forms are 64-bit (`h` runs the others). */
export function rexWSse(t: OpHandler[]): void {
  const wrap = (op: number, w: OpHandler) => {
    const h = t[op];
    t[op] = (c) => ((c.rex & 8) !== 0 ? w : h)(c);
  };
  // 0F 2A/2C/2D: REX.W widens only the F3h/F2h forms (CVTSI2SS, CVT(T)SS2SI and the SD ones);
  // CVTPI2PS and the other MMX-operand forms ignore it.
  const wrapCvt = (op: number, w: OpHandler) => {
    const h = t[op];
    t[op] = (c) => ((c.rex & 8) !== 0 && c.rep !== 0 ? w : h)(c);
  };
  // 66 REX.W 0F 6E: MOVQ xmm, r/m64; 66 REX.W 0F 7E: MOVQ r/m64, xmm.
  wrap(0x16e, (c) => {
    decodeModrm(c);
    if (prefixColumn(c) === P_NONE) { // REX.W 0F 6E: MOVQ mm, r/m64
      sseEnter(c, NEED_MMX | MMX_OP);
      const lo = readE(c, 64);
      return mmSet(c, c.modReg & 7, lo, c.tHi);
    }
    const lo = readE(c, 64), hi = c.tHi;
    const x = c.sse.i32, at = lane(c.modReg);
    x[at] = lo;
    x[at + 1] = hi;
    x[at + 2] = x[at + 3] = 0;
  });
  wrap(0x17e, (c) => {
    decodeModrm(c);
    if (prefixColumn(c) === P_NONE) { // REX.W 0F 7E: MOVQ r/m64, mm
      sseEnter(c, NEED_MMX | MMX_OP);
      mmGet(c, c.modReg & 7, MMX_D);
      return writeE(c, 64, c.sse.i32[4 * MMX_D], c.sse.i32[4 * MMX_D + 1]);
    }
    const x = c.sse.i32, at = lane(c.modReg);
    writeE(c, 64, x[at], x[at + 1]);
  });
  wrapCvt(0x12a, (c) => { // CVTSI2SS / CVTSI2SD xmm, r/m64
    decodeModrm(c);
    const lo = readE(c, 64), hi = c.tHi;
    if (c.rep === 0xf3) c.sse.f32[lane(c.modReg)] = fromInt64(c, lo, hi, 24);
    else c.sse.f64[2 * c.modReg] = fromInt64(c, lo, hi, 53);
  });
  for (const [op, trunc] of [[0x12c, true], [0x12d, false]] as const) {
    wrapCvt(op, (c) => {
      decodeModrm(c);
      toInt64(c, scalarIn(c, c.rep === 0xf3), trunc, c.modReg);
    });
  }
}
