// SSE floating-point arithmetic on JavaScript numbers with MXCSR's rounding, DAZ/FTZ and flags
//
// Exactness (docs/x86-simd.md): a double-precision result of + - * / sqrt is rounded to
// nearest by the engine; the sign of the rounding error comes from an error-free
// transformation (TwoSum for + and -, Dekker's product for *, the residual a - q*b for /,
// a - q*q for sqrt, on operands scaled by powers of two so no step overflows or
// underflows). The error sign gives the directed roundings, PE, OE and UE. A
// single-precision result is the double result rounded once more with Math.fround:
// double rounding is innocuous for + - * / sqrt of floats (53 >= 2*24 + 2), and the
// error sign is exact (float products are exact in double).

import {
  DENORMAL_FLAG,
  MX_DAZ,
  MX_DE,
  MX_FTZ,
  MX_IE,
  MX_OE,
  MX_PE,
  MX_UE,
  MX_ZE,
  RC_DOWN,
  RC_NEAREST,
  RC_UP,
  RC_ZERO,
  type SseState,
} from "./sse_state.ts";

/** Flags raised by the instruction in flight, and MXCSR's controls at its start. */
export const fp = { flags: 0, rc: RC_NEAREST, daz: false, ftz: false };

/** Starts an SSE floating-point instruction: latches rounding, DAZ and FTZ; clears the flags. */
export function fpBegin(x: SseState): void {
  const m = x.mxcsr;
  fp.flags = 0;
  fp.rc = (m >> 13) & 3;
  fp.daz = (m & MX_DAZ) !== 0;
  // FTZ applies only with underflow masked (SDM vol. 1 §10.2.3.3).
  fp.ftz = (m & MX_FTZ) !== 0 && (m & (MX_UE << 7)) !== 0;
}

/** Flags of `fp.flags` whose exception MXCSR leaves unmasked (0: commit the result). */
export function fpUnmasked(x: SseState): number {
  return fp.flags & ~(x.mxcsr >> 7) & 0x3f;
}

// Bit views of one float and one double for NaN tests and neighbours (module scratch).
const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);
const F64 = new Float64Array(1), W64 = new Uint32Array(F64.buffer);

export const MAX32 = 3.4028234663852886e38, MIN32 = 1.1754943508222875e-38;
const MAX64 = Number.MAX_VALUE, MIN64 = 2.2250738585072014e-308;
export const QNAN32 = 0xffc00000 | 0;
export const QNAN64_HI = 0xfff80000 | 0;

export function isNaN32(b: number): boolean {
  return (b & 0x7fffffff) > 0x7f800000;
}
export function isSNaN32(b: number): boolean {
  return isNaN32(b) && (b & 0x400000) === 0;
}
export function isNaN64(hi: number, lo: number): boolean {
  const h = hi & 0x7fffffff;
  return h > 0x7ff00000 || (h === 0x7ff00000 && lo !== 0);
}
export function isSNaN64(hi: number, lo: number): boolean {
  return isNaN64(hi, lo) && (hi & 0x80000) === 0;
}

/**
 * The value of float bits `b` (not a NaN): DAZ flushes a denormal; DE only with
 * {@linkcode DENORMAL_FLAG} (QEMU 7.2 never raises it).
 */
export function val32(b: number, de = true): number {
  if ((b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0) {
    if (fp.daz) return b < 0 ? -0 : 0;
    if (de && DENORMAL_FLAG) fp.flags |= MX_DE;
  }
  U32[0] = b;
  return F32[0];
}

/** The value of double bits `hi:lo` (not a NaN), with DAZ and DE as {@linkcode val32}. */
export function val64(hi: number, lo: number, de = true): number {
  if ((hi & 0x7ff00000) === 0 && ((hi & 0xfffff) !== 0 || lo !== 0)) {
    if (fp.daz) return hi < 0 ? -0 : 0;
    if (de && DENORMAL_FLAG) fp.flags |= MX_DE;
  }
  W64[0] = lo;
  W64[1] = hi;
  return F64[0];
}

/** Float bits of a (non-NaN) value. */
export function bits32(v: number): number {
  F32[0] = v;
  return U32[0] | 0;
}

/** Double bits of a (non-NaN) value into `out[at]` (low) and `out[at + 1]` (high). */
export function put64(out: Int32Array, at: number, v: number): void {
  F64[0] = v;
  out[at] = W64[0];
  out[at + 1] = W64[1];
}

function next32(f: number, up: boolean): number {
  if (f === 0) return up ? 1.401298464324817e-45 : -1.401298464324817e-45;
  F32[0] = f;
  U32[0] += (f > 0) === up ? 1 : -1;
  return F32[0];
}

function next64(f: number, up: boolean): number {
  if (f === 0) return up ? Number.MIN_VALUE : -Number.MIN_VALUE;
  F64[0] = f;
  if ((f > 0) === up) {
    W64[0] += 1;
    if (W64[0] === 0) W64[1] += 1;
  } else {
    if (W64[0] === 0) W64[1] -= 1;
    W64[0] -= 1;
  }
  return F64[0];
}

/**
 * The final result from `f` (the result rounded to nearest in the format) and `err`
 * (a number whose sign is that of exact - f; 0 when exact): MXCSR's rounding, overflow,
 * underflow with FTZ, PE.
 */
function finish(f: number, err: number, single: boolean): number {
  const max = single ? MAX32 : MAX64, min = single ? MIN32 : MIN64;
  if (f === Infinity || f === -Infinity) {
    fp.flags |= MX_OE | MX_PE;
    const pos = f > 0;
    const rc = fp.rc;
    if (rc === RC_ZERO || (rc === RC_DOWN && pos) || (rc === RC_UP && !pos)) {
      return pos ? max : -max;
    }
    return f;
  }
  let r = f;
  if (err !== 0) {
    fp.flags |= MX_PE;
    const rc = fp.rc;
    let dir = 0;
    if (rc === RC_UP && err > 0) dir = 1;
    else if (rc === RC_DOWN && err < 0) dir = -1;
    else if (rc === RC_ZERO && ((f > 0 && err < 0) || (f < 0 && err > 0))) dir = f > 0 ? -1 : 1;
    if (dir !== 0) r = single ? next32(f, dir > 0) : next64(f, dir > 0);
    if (r === Infinity || r === -Infinity) fp.flags |= MX_OE;
  }
  if (Math.abs(r) < min && (r !== 0 || err !== 0)) {
    if (fp.ftz) {
      fp.flags |= MX_UE | MX_PE;
      return (r === 0 ? err < 0 : r < 0) ? -0 : 0;
    }
    if (err !== 0) fp.flags |= MX_UE;
  }
  return r;
}

// ---- error-free transformations

const SPLIT = 134217729; // 2^27 + 1

/** The sign-carrying error of the product a*b - p for moderate a, b (Dekker). */
function productError(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a), al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b), bl = b - bh;
  return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

/** ilogb of a finite non-zero double. */
function expOf(v: number): number {
  F64[0] = v;
  const e = (W64[1] >>> 20) & 0x7ff;
  if (e !== 0) return e - 1023;
  F64[0] = v * 18446744073709551616; // 2^64
  return ((W64[1] >>> 20) & 0x7ff) - 1023 - 64;
}

/** v * 2^n exactly (n within a few thousand, no intermediate underflow for normal inputs). */
function scale(v: number, n: number): number {
  while (n > 600) {
    v *= 4.149515568880993e180; // 2^600
    n -= 600;
  }
  while (n < -600) {
    v *= 2.409919865102884e-181; // 2^-600
    n += 600;
  }
  return v * 2 ** n;
}

/** a op b for op 0 add, 1 sub, 2 mul, 3 div on non-NaN values, rounded as MXCSR says. */
export function arith(op: number, a: number, b: number, single: boolean): number {
  if (op === 1) b = -b;
  if (op <= 1) {
    const s = a + b;
    if (s !== s) {
      fp.flags |= MX_IE;
      return NaN;
    }
    if (s === 0) {
      // An exact zero sum: -0 only for (-0)+(-0), or x + (-x) when rounding down.
      if (a === 0 && b === 0 && Object.is(a, b)) return a;
      return fp.rc === RC_DOWN ? -0 : 0;
    }
    if (!Number.isFinite(a) || !Number.isFinite(b)) return s;
    const bb = s - a;
    const e = (a - (s - bb)) + (b - bb);
    if (!single) return Number.isFinite(s) ? finish(s, e, false) : finish(s, -s, false);
    const f = Math.fround(s);
    return finish(f, (s - f) + e, true);
  }
  if (op === 2) {
    const p = a * b;
    if (p !== p) {
      fp.flags |= MX_IE;
      return NaN;
    }
    if (p === 0 && (a === 0 || b === 0)) return p;
    if (!Number.isFinite(a) || !Number.isFinite(b)) return p;
    if (single) {
      const f = Math.fround(p); // p is exact: float * float fits a double
      return finish(f, p - f, true);
    }
    if (!Number.isFinite(p)) return finish(p, -p, false);
    const ea = expOf(a), eb = expOf(b);
    const as = scale(a, -ea), bs = scale(b, -eb);
    const ps = as * bs;
    const e = productError(as, bs, ps) + (ps - scale(p, -ea - eb));
    return finish(p, e, false);
  }
  // Division.
  if (b === 0 && a === a && a !== 0 && Number.isFinite(a)) {
    fp.flags |= MX_ZE;
    return (a < 0) !== Object.is(b, -0) ? -Infinity : Infinity;
  }
  const q = a / b;
  if (q !== q) {
    fp.flags |= MX_IE;
    return NaN;
  }
  if (q === 0 && a === 0) return q;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return q;
  if (single) {
    const f = Math.fround(q);
    if (!Number.isFinite(f)) return finish(f, -f, true);
    // exact - f = (a - f*b) / b; f*b is exact in double.
    const r = a - f * b;
    return finish(f, b > 0 ? r : -r, true);
  }
  if (!Number.isFinite(q)) return finish(q, -q, false);
  const ea = expOf(a), eb = expOf(b);
  const as = scale(a, -ea), bs = scale(b, -eb);
  if (q === 0) return finish(q, (a < 0) !== (b < 0) ? -1 : 1, false); // q keeps its sign
  const qs = scale(q, eb - ea); // exact: q scaled towards 1
  const p = qs * bs;
  const r = (as - p) - productError(qs, bs, p);
  return finish(q, b > 0 ? r : -r, false);
}

/** sqrt of a non-NaN value, rounded as MXCSR says (negative non-zero: IE, NaN). */
export function sqrt(a: number, single: boolean): number {
  if (a < 0) {
    fp.flags |= MX_IE;
    return NaN;
  }
  if (a === 0 || a === Infinity) return a;
  const q = Math.sqrt(a);
  if (single) {
    const f = Math.fround(q);
    return finish(f, a - f * f, true);
  }
  const k = expOf(a) >> 1;
  const as = scale(a, -2 * k), qs = scale(q, -k);
  const p = qs * qs;
  return finish(q, (as - p) - productError(qs, qs, p), false);
}

/** Rounds a double value to float under MXCSR (CVTSD2SS, CVTPD2PS, CVTSI2SS). */
export function toSingle(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const f = Math.fround(v);
  return finish(f, Number.isFinite(f) ? v - f : -f, true);
}

/** An integer result of a conversion rounded as MXCSR says (or truncated). */
export function roundInt(v: number, truncate: boolean): number {
  if (truncate || fp.rc === RC_ZERO) return Math.trunc(v);
  if (fp.rc === RC_DOWN) return Math.floor(v);
  if (fp.rc === RC_UP) return Math.ceil(v);
  const fl = Math.floor(v), d = v - fl;
  return d > 0.5 ? fl + 1 : d < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
}

/**
 * The NaN result of two operands one of which is a NaN, as QEMU 7.2 TCG's softfloat
 * picks it for x86 (the x87 rule: a QNaN beats an SNaN, else the larger significand),
 * quieted; IE for any SNaN. `aNaN`/`bNaN` say which are NaNs; `as`/`bs` are the
 * significands compared (float bits, or the double's high word then low word).
 */
export function pickNaN(aNaN: boolean, aSnan: boolean, bNaN: boolean, bSnan: boolean): number {
  if (aSnan || bSnan) fp.flags |= MX_IE;
  if (!aNaN) return 1;
  if (!bNaN) return 0;
  if (aSnan !== bSnan) return aSnan ? 1 : 0;
  return -1; // both NaNs of one kind: the caller compares significands
}
