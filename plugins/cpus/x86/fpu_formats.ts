// x87 memory formats: 32/64/80-bit reals, integers and rounding by the control word

import type { FpuState } from "./fpu_state.ts";
import { read16, read32, write16, write32 } from "./memory.ts";
import type { CpuCore } from "./state.ts";

const SW_IE = 0x1, SW_PE = 0x20;

const f32 = new Float32Array(1);
const f32i = new Int32Array(f32.buffer);
const f64 = new Float64Array(1);
const f64i = new Int32Array(f64.buffer);

/** Rounds by the control word's RC field. */
export function round(f: FpuState, v: number): number {
  if (!Number.isFinite(v)) return v;
  switch ((f.cw >> 10) & 3) {
    case 0: {
      const r = Math.round(v);
      return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
    }
    case 1:
      return Math.floor(v);
    case 2:
      return Math.ceil(v);
    default:
      return Math.trunc(v);
  }
}

/** Reads the m32real operand. */
export function readF32(c: CpuCore): number {
  f32i[0] = read32(c, c.eaSeg, c.eaOff);
  return f32[0];
}

/** Reads the m64real operand. */
export function readF64(c: CpuCore): number {
  f64i[0] = read32(c, c.eaSeg, c.eaOff);
  f64i[1] = read32(c, c.eaSeg, off(c, 4));
  return f64[0];
}

/** The operand offset plus `n`, wrapped to the address size. */
export function off(c: CpuCore, n: number): number {
  return c.addr32 ? (c.eaOff + n) >>> 0 : (c.eaOff + n) & 0xffff;
}

/** Converts an 80-bit extended value (mantissa lo/hi, sign+exponent) to a double. */
export function fromExtended(lo: number, hi: number, se: number): number {
  const sign = (se & 0x8000) !== 0 ? -1 : 1;
  const exp = se & 0x7fff;
  if (exp === 0x7fff) return (hi & 0x7fffffff) === 0 && lo === 0 ? sign * Infinity : NaN;
  if (exp === 0 && hi === 0 && lo === 0) return sign * 0;
  const mant = hi * 4294967296 + lo;
  const e = exp - 16383 - 63;
  // Two steps keep the intermediate power in range.
  return sign * mant * Math.pow(2, Math.trunc(e / 2)) * Math.pow(2, e - Math.trunc(e / 2));
}

/** Converts a double to 80-bit extended: [mantissa lo, mantissa hi, sign+exponent]. */
export function toExtended(v: number): [number, number, number] {
  f64[0] = v;
  const sign = f64i[1] < 0 ? 0x8000 : 0;
  if (v === 0) return [0, 0, sign];
  if (v !== v) return [0, 0xc0000000 | 0, 0xffff];
  if (!Number.isFinite(v)) return [0, 0x80000000 | 0, sign | 0x7fff];
  let e = (f64i[1] >>> 20) & 0x7ff;
  let mHi = f64i[1] & 0xfffff;
  let mLo = f64i[0] >>> 0;
  if (e === 0) {
    // Denormal double: normalise.
    e = 1;
    while ((mHi & 0x100000) === 0) {
      mHi = (mHi << 1) | (mLo >>> 31);
      mLo = (mLo << 1) >>> 0;
      e--;
    }
    mHi &= 0xfffff;
  }
  const hi = (0x80000000 | (mHi << 11) | (mLo >>> 21)) >>> 0;
  const lo = (mLo << 11) >>> 0;
  return [lo | 0, hi | 0, sign | (e - 1023 + 16383)];
}

/** Reads an m80real at operand offset `at` as its raw words: [significand lo, hi, sign+exponent]. */
export function readExt80(c: CpuCore, at: number): [number, number, number] {
  const lo = read32(c, c.eaSeg, off(c, at));
  const hi = read32(c, c.eaSeg, off(c, at + 4));
  return [lo, hi, read16(c, c.eaSeg, off(c, at + 8))];
}

/** Writes raw 80-bit words at operand offset `at`. */
export function writeExt80(c: CpuCore, at: number, x: readonly [number, number, number]): void {
  write32(c, c.eaSeg, off(c, at), x[0]);
  write32(c, c.eaSeg, off(c, at + 4), x[1]);
  write16(c, c.eaSeg, off(c, at + 8), x[2]);
}

/**
 * Physical register `p` set from 80-bit words: its double reading, and the words themselves
 * when the double loses them (exponent all ones) or `keep` says so (an MMX write), so
 * FXSAVE/FSAVE/FSTP m80 and MMX reads give them back.
 */
export function setExtended(
  f: FpuState,
  p: number,
  lo: number,
  hi: number,
  se: number,
  keep = false,
): void {
  f.regs[p] = fromExtended(lo >>> 0, hi >>> 0, se);
  if (!keep && (se & 0x7fff) !== 0x7fff) {
    f.raw &= ~(1 << p);
    return;
  }
  f.raw |= 1 << p;
  f.rawWords[2 * p] = lo;
  f.rawWords[2 * p + 1] = hi;
  f.rawSe[p] = se;
}

/** Physical register `p` as 80-bit words: [significand lo, hi, sign+exponent]. */
export function extendedOf(f: FpuState, p: number): [number, number, number] {
  if (((f.raw >> p) & 1) === 0) return toExtended(f.regs[p]);
  return [f.rawWords[2 * p], f.rawWords[2 * p + 1], f.rawSe[p]];
}

/** Writes the m32real operand. */
export function writeF32(c: CpuCore, v: number): void {
  f32[0] = v;
  write32(c, c.eaSeg, c.eaOff, f32i[0]);
}

/** Writes the m64real operand. */
export function writeF64(c: CpuCore, v: number): void {
  f64[0] = v;
  write32(c, c.eaSeg, c.eaOff, f64i[0]);
  write32(c, c.eaSeg, off(c, 4), f64i[1]);
}

/** Stores an integer of `bytes` with the FIST rules (out of range: integer indefinite). */
export function writeInt(c: CpuCore, v: number, bytes: number, truncate: boolean): void {
  const f = c.fpu;
  let r = truncate ? Math.trunc(v) : round(f, v);
  const limit = bytes === 2 ? 32768 : bytes === 4 ? 2147483648 : 9223372036854775808;
  if (!(r >= -limit && r < limit)) {
    f.sw |= SW_IE;
    r = -limit;
  } else if (r !== v) f.sw |= SW_PE;
  if (bytes === 2) write16(c, c.eaSeg, c.eaOff, r);
  else if (bytes === 4) write32(c, c.eaSeg, c.eaOff, r);
  else {
    const b = BigInt.asUintN(64, BigInt(r));
    write32(c, c.eaSeg, c.eaOff, Number(b & 0xffffffffn) | 0);
    write32(c, c.eaSeg, off(c, 4), Number(b >> 32n) | 0);
  }
}

/** Reads the m64int operand (exact to 2^53). */
export function readInt64(c: CpuCore): number {
  const lo = read32(c, c.eaSeg, c.eaOff) >>> 0;
  const hi = read32(c, c.eaSeg, off(c, 4));
  return hi * 4294967296 + lo;
}
