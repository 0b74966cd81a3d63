// Integer arithmetic with lazy flags: ADD..CMP, INC/DEC, shifts and rotates, multiply, divide

import { getCF, materializeFlags, PARITY } from "./flags.ts";
import {
  AF,
  ARITH_FLAGS,
  CF,
  type CpuCore,
  EXC_DE,
  fault,
  LZ_ADD,
  LZ_LOGIC,
  LZ_SAR,
  LZ_SHL,
  LZ_SHR,
  LZ_SUB,
  OF,
  SF,
  ZF,
} from "./state.ts";

/** Mask of an operand of `size` bits (-1 for 32, so `& mask` also makes int32). */
export function sizeMask(size: number): number {
  return size === 32 ? -1 : (1 << size) - 1;
}

function lazy(c: CpuCore, op: number, a: number, b: number, r: number, size: number): void {
  c.lzOp = op;
  c.lzDst = a;
  c.lzSrc = b;
  c.lzRes = r;
  c.lzSize = size;
  c.lzMask = ARITH_FLAGS;
}

/**
 * Group-1 operation `op` (0 ADD, 1 OR, 2 ADC, 3 SBB, 4 AND, 5 SUB, 6 XOR, 7 CMP) on
 * `a` and `b` of `size` bits; sets the flags and returns the result (CMP returns `a`).
 */
export function arith(c: CpuCore, op: number, a: number, b: number, size: number): number {
  const m = sizeMask(size);
  let r: number;
  switch (op) {
    case 0:
      r = (a + b) & m;
      lazy(c, LZ_ADD, a, b, r, size);
      return r;
    case 1:
      r = (a | b) & m;
      lazy(c, LZ_LOGIC, a, b, r, size);
      return r;
    case 2:
      r = (a + b + getCF(c)) & m;
      lazy(c, LZ_ADD, a, b, r, size);
      return r;
    case 3:
      r = (a - b - getCF(c)) & m;
      lazy(c, LZ_SUB, a, b, r, size);
      return r;
    case 4:
      r = a & b & m;
      lazy(c, LZ_LOGIC, a, b, r, size);
      return r;
    case 5:
      r = (a - b) & m;
      lazy(c, LZ_SUB, a, b, r, size);
      return r;
    case 6:
      r = (a ^ b) & m;
      lazy(c, LZ_LOGIC, a, b, r, size);
      return r;
    default:
      r = (a - b) & m;
      lazy(c, LZ_SUB, a, b, r, size);
      return a;
  }
}

/** INC: like ADD 1 but CF is kept. */
export function inc(c: CpuCore, a: number, size: number): number {
  const cf = getCF(c);
  const r = (a + 1) & sizeMask(size);
  c.flags = (c.flags & ~CF) | cf;
  lazy(c, LZ_ADD, a, 1, r, size);
  c.lzMask = ARITH_FLAGS & ~CF;
  return r;
}

/** DEC: like SUB 1 but CF is kept. */
export function dec(c: CpuCore, a: number, size: number): number {
  const cf = getCF(c);
  const r = (a - 1) & sizeMask(size);
  c.flags = (c.flags & ~CF) | cf;
  lazy(c, LZ_SUB, a, 1, r, size);
  c.lzMask = ARITH_FLAGS & ~CF;
  return r;
}

/** NEG. */
export function neg(c: CpuCore, a: number, size: number): number {
  const r = (0 - a) & sizeMask(size);
  lazy(c, LZ_SUB, 0, a, r, size);
  return r;
}

/** Sets SF, ZF, PF from a result and the given CF/OF/AF bits; all six become concrete. */
export function setResultFlags(c: CpuCore, r: number, size: number, other: number): void {
  materializeFlags(c);
  const m = sizeMask(size);
  let f = other | PARITY[r & 0xff];
  if ((r & m) === 0) f |= ZF;
  if ((r >>> (size - 1)) & 1) f |= SF;
  c.flags = (c.flags & ~ARITH_FLAGS) | f;
}

/**
 * Shift/rotate group 2 operation `op` (0 ROL, 1 ROR, 2 RCL, 3 RCR, 4 SHL, 5 SHR, 6 SAL,
 * 7 SAR) of `a` by `count` (already masked to 5 bits). A zero count changes nothing.
 */
export function shift(c: CpuCore, op: number, a: number, count: number, size: number): number {
  if (count === 0) return a;
  const m = sizeMask(size);
  const top = size - 1;
  a &= m;
  let r: number;
  let cf: number;
  let of: number;
  switch (op) {
    case 0: { // ROL: only CF and OF change, the others stay lazy
      const n = count & top;
      r = n === 0 ? a : ((a << n) | (a >>> (size - n))) & m;
      cf = r & 1;
      of = ((r >>> top) & 1) ^ cf;
      setCfOf(c, cf, of);
      return r;
    }
    case 1: { // ROR
      const n = count & top;
      r = n === 0 ? a : ((a >>> n) | (a << (size - n))) & m;
      cf = (r >>> top) & 1;
      of = cf ^ ((r >>> (top - 1)) & 1);
      setCfOf(c, cf, of);
      return r;
    }
    case 2: { // RCL
      const n = size === 32 ? count : count % (size + 1);
      cf = getCF(c);
      r = a;
      for (let i = 0; i < n; i++) {
        const out = (r >>> top) & 1;
        r = ((r << 1) | cf) & m;
        cf = out;
      }
      of = ((r >>> top) & 1) ^ cf;
      setCfOf(c, cf, of);
      return r;
    }
    case 3: { // RCR
      const n = size === 32 ? count : count % (size + 1);
      cf = getCF(c);
      r = a;
      for (let i = 0; i < n; i++) {
        const out = r & 1;
        r = ((r >>> 1) | (cf << top)) & m;
        cf = out;
      }
      of = ((r >>> top) & 1) ^ ((r >>> (top - 1)) & 1);
      setCfOf(c, cf, of);
      return r;
    }
    case 4:
    case 6: // SHL/SAL (flags derived lazily, see flags.ts)
      r = (a << count) & m;
      lazy(c, LZ_SHL, a, count, r, size);
      return r;
    case 5: // SHR
      r = (a >>> count) & m;
      lazy(c, LZ_SHR, a, count, r, size);
      return r;
    default: { // SAR
      r = (((a << (32 - size)) >> (32 - size)) >> count) & m;
      lazy(c, LZ_SAR, a, count, r, size);
      return r;
    }
  }
}

/** Sets CF and OF concretely and leaves the other status flags as they are (lazy or not). */
function setCfOf(c: CpuCore, cf: number, of: number): void {
  c.flags = (c.flags & ~(CF | OF)) | cf | (of << 11);
  c.lzMask &= ~(CF | OF);
}

/** SHLD/SHRD of `a` with bits from `b` by `count` (masked to 5 bits; 0 = no-op). */
export function shiftDouble(
  c: CpuCore,
  left: boolean,
  a: number,
  b: number,
  count: number,
  size: number,
): number {
  if (count === 0) return a;
  const m = sizeMask(size);
  let r: number;
  let cf: number;
  if (size === 16) {
    // Work on a 32-bit concatenation (counts above 16 are undefined; keep the pattern).
    const wide = left ? ((a & 0xffff) << 16) | (b & 0xffff) : ((b & 0xffff) << 16) | (a & 0xffff);
    if (left) {
      r = ((wide << count) | (count > 16 ? (a & 0xffff) << (count - 16) : 0)) >>> 16;
      cf = ((wide << (count - 1)) >>> 31) & 1;
    } else {
      r = (wide >>> count) | (count > 16 ? (a << (32 - count)) : 0);
      cf = (wide >>> (count - 1)) & 1;
    }
    r &= 0xffff;
  } else if (left) {
    r = ((a << count) | (b >>> (32 - count))) & m;
    cf = (a >>> (32 - count)) & 1;
  } else {
    r = ((a >>> count) | (b << (32 - count))) & m;
    cf = (a >>> (count - 1)) & 1;
  }
  const of = ((r ^ a) >>> (size - 1)) & 1;
  setResultFlags(c, r, size, cf | (of << 11));
  return r;
}

/** Unsigned 32x32 -> 64 multiply; returns the low half and stores the high in `hiOut[0]`. */
export function mul32(a: number, b: number, hiOut: Int32Array): number {
  a >>>= 0;
  b >>>= 0;
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const ll = aL * bL, lh = aL * bH, hl = aH * bL, hh = aH * bH;
  const cross = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  hiOut[0] = hh + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(cross / 65536);
  return ((cross & 0xffff) << 16) | (ll & 0xffff);
}

/** Signed 32x32 -> 64 multiply; low half returned, high half in `hiOut[0]`. */
export function imul32(a: number, b: number, hiOut: Int32Array): number {
  const lo = mul32(a, b, hiOut);
  let hi = hiOut[0];
  if (a < 0) hi -= b;
  if (b < 0) hi -= a;
  hiOut[0] = hi;
  return lo;
}

/** Sets CF and OF together (MUL/IMUL); SF, ZF, PF from the low result as a P6 does. */
export function setMulFlags(c: CpuCore, overflow: boolean, low: number, size: number): void {
  setResultFlags(c, low, size, overflow ? CF | OF : 0);
  c.flags &= ~AF;
}

/**
 * Unsigned 64/32 divide of hi:lo by d. Stores quotient and remainder in `out`; raises
 * #DE when d is 0 or the quotient does not fit 32 bits.
 */
export function div64(c: CpuCore, hi: number, lo: number, d: number, out: Float64Array): void {
  hi >>>= 0;
  lo >>>= 0;
  d >>>= 0;
  if (d === 0 || hi >= d) fault(c, EXC_DE);
  let r = hi;
  const n1 = r * 65536 + (lo >>> 16);
  const q1 = Math.floor(n1 / d);
  r = n1 - q1 * d;
  const n2 = r * 65536 + (lo & 0xffff);
  const q2 = Math.floor(n2 / d);
  r = n2 - q2 * d;
  out[0] = q1 * 65536 + q2;
  out[1] = r;
}

/** Signed 64/32 divide (IDIV); quotient and remainder as signed numbers in `out`. */
export function idiv64(c: CpuCore, hi: number, lo: number, d: number, out: Float64Array): void {
  const negN = hi < 0;
  let nh = hi >>> 0, nl = lo >>> 0;
  if (negN) {
    nl = (~nl + 1) >>> 0;
    nh = (~nh + (nl === 0 ? 1 : 0)) >>> 0;
  }
  const negD = d < 0;
  const ad = negD ? (-d) >>> 0 : d >>> 0;
  if (ad === 0) fault(c, EXC_DE);
  if (nh >= ad) fault(c, EXC_DE);
  div64(c, nh, nl, ad, out);
  let q = out[0];
  let r = out[1];
  if (negN !== negD) q = -q;
  if (negN) r = -r;
  if (q > 0x7fffffff || q < -0x80000000) fault(c, EXC_DE);
  out[0] = q;
  out[1] = r;
}
