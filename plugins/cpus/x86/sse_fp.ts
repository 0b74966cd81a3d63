// SSE/SSE2/SSE3 floating-point instructions: arithmetic, min/max, sqrt, compares, COMIS,
// conversions, RCP/RSQRT, ADDSUB and horizontal adds

import { decodeModrm } from "./decode.ts";
import { setArithFlags } from "./flags.ts";
import { fetch8, read32 } from "./memory.ts";
import {
  ARITH_FLAGS,
  CF,
  type CpuCore,
  CR4_OSXMMEXCPT,
  EXC_UD,
  EXC_XM,
  fault,
  PF,
  ZF,
} from "./state.ts";
import {
  arith,
  bits32,
  fp,
  fpBegin,
  fpUnmasked,
  isNaN32,
  isNaN64,
  isSNaN32,
  isSNaN64,
  pickNaN,
  put64,
  QNAN32,
  QNAN64_HI,
  roundInt,
  sqrt,
  toSingle,
  val32,
  val64,
} from "./sse_fp_core.ts";
import {
  def,
  loadM,
  NEED_SSE,
  NEED_SSE2,
  NEED_SSE3,
  P_66,
  P_F2,
  P_F3,
  P_NONE,
  srcScalar,
  srcX,
} from "./sse_ops.ts";
import { MMX_S, MX_IE, MX_PE, XMM_TMP } from "./sse_state.ts";
import { mmGet, mmSet, mmxUse } from "./mmx.ts";

const ADD = 0, SUB = 1, MUL = 2, DIV = 3, MIN = 4, MAX = 5, SQRT = 6;

/** Raises the SIMD floating-point exception: #XM with CR4.OSXMMEXCPT, else #UD. */
function simdFault(c: CpuCore): never {
  return fault(c, (c.cr4 & CR4_OSXMMEXCPT) !== 0 ? EXC_XM : EXC_UD);
}

/** Ends an FP instruction: MXCSR's flags, then the result in XMM_TMP goes to `d` unless faulting. */
function commit(c: CpuCore, d: number): void {
  const x = c.sse;
  const unmasked = fpUnmasked(x);
  x.mxcsr |= fp.flags;
  if (unmasked !== 0) simdFault(c);
  if (d >= 0) x.copy(d, XMM_TMP);
}

/** Float lane `a op b` (bits in, bits out). */
function lane32(op: number, a: number, b: number): number {
  const an = isNaN32(a), bn = isNaN32(b);
  if (op === MIN || op === MAX) {
    if (an || bn) {
      fp.flags |= MX_IE;
      return b;
    }
    const x = val32(a), y = val32(b);
    return (op === MIN ? x < y : x > y) ? a : b;
  }
  if (op === SQRT) {
    if (bn) {
      if (isSNaN32(b)) fp.flags |= MX_IE;
      return b | 0x400000;
    }
    const r = sqrt(val32(b), true);
    return r !== r ? QNAN32 : bits32(r);
  }
  if (an || bn) {
    const k = pickNaN(an, isSNaN32(a), bn, isSNaN32(b));
    let p = k === 0 ? a : b;
    if (k < 0) {
      const ma = a & 0x7fffff, mb = b & 0x7fffff;
      p = ma > mb ? a : mb > ma ? b : a >= 0 && b < 0 ? a : b;
    }
    return p | 0x400000;
  }
  const r = arith(op, val32(a), val32(b), true);
  return r !== r ? QNAN32 : bits32(r);
}

/** Double lane `v[out] = v[ai] op v[bi]` (low dword first). */
function lane64(op: number, v: Int32Array, out: number, ai: number, bi: number): void {
  const alo = v[ai], ahi = v[ai + 1], blo = v[bi], bhi = v[bi + 1];
  const an = isNaN64(ahi, alo), bn = isNaN64(bhi, blo);
  if (op === MIN || op === MAX) {
    let pickA = false;
    if (an || bn) fp.flags |= MX_IE;
    else {
      const x = val64(ahi, alo), y = val64(bhi, blo);
      pickA = op === MIN ? x < y : x > y;
    }
    v[out] = pickA ? alo : blo;
    v[out + 1] = pickA ? ahi : bhi;
    return;
  }
  if (op === SQRT) {
    if (bn) {
      if (isSNaN64(bhi, blo)) fp.flags |= MX_IE;
      v[out] = blo;
      v[out + 1] = bhi | 0x80000;
      return;
    }
    const r = sqrt(val64(bhi, blo), false);
    return r !== r ? nan64(v, out) : put64(v, out, r);
  }
  if (an || bn) {
    const k = pickNaN(an, isSNaN64(ahi, alo), bn, isSNaN64(bhi, blo));
    let pickA = k === 0;
    if (k < 0) {
      const ha = ahi & 0xfffff, hb = bhi & 0xfffff;
      pickA = ha !== hb
        ? ha > hb
        : (alo >>> 0) !== (blo >>> 0)
        ? (alo >>> 0) > (blo >>> 0)
        : ahi >= 0 && bhi < 0;
    }
    v[out] = pickA ? alo : blo;
    v[out + 1] = (pickA ? ahi : bhi) | 0x80000;
    return;
  }
  const r = arith(op, val64(ahi, alo), val64(bhi, blo), false);
  return r !== r ? nan64(v, out) : put64(v, out, r);
}

function nan64(v: Int32Array, out: number): void {
  v[out] = 0;
  v[out + 1] = QNAN64_HI;
}

/** `op` in its four forms: PS (none), PD (66), SS (F3), SD (F2). */
function arithForms(opcode: number, op: number): void {
  for (const p of [P_NONE, P_66, P_F3, P_F2]) {
    const single = p === P_NONE || p === P_F3, scalar = p >= P_F3;
    def(opcode, p, single ? NEED_SSE : NEED_SSE2, (c) => {
      decodeModrm(c);
      const s = scalar ? srcScalar(c, single ? 1 : 2) : srcX(c);
      const x = c.sse, v = x.i32, d = c.modReg, t = 4 * XMM_TMP;
      fpBegin(x);
      x.copy(XMM_TMP, d);
      if (single) {
        for (let i = 0; i < (scalar ? 1 : 4); i++) {
          v[t + i] = lane32(op, v[4 * d + i], v[4 * s + i]);
        }
      } else {
        for (let i = 0; i < (scalar ? 2 : 4); i += 2) lane64(op, v, t + i, 4 * d + i, 4 * s + i);
      }
      commit(c, d);
    });
  }
}

/** CMPccPS/PD/SS/SD predicate `pred` on float or double values (NaN-aware). */
function cmpLane(pred: number, unordered: boolean, sn: boolean, x: number, y: number): boolean {
  if (unordered) {
    if (sn || pred === 1 || pred === 2 || pred === 5 || pred === 6) fp.flags |= MX_IE;
    return pred >= 3 && pred <= 6;
  }
  switch (pred) {
    case 0:
      return x === y;
    case 1:
      return x < y;
    case 2:
      return x <= y;
    case 3:
      return false;
    case 4:
      return x !== y;
    case 5:
      return !(x < y);
    case 6:
      return !(x <= y);
  }
  return true;
}

function installCompares(): void {
  for (const p of [P_NONE, P_66, P_F3, P_F2]) {
    const single = p === P_NONE || p === P_F3, scalar = p >= P_F3;
    def(0xc2, p, single ? NEED_SSE : NEED_SSE2, (c) => {
      decodeModrm(c);
      const s = scalar ? srcScalar(c, single ? 1 : 2) : srcX(c);
      const pred = fetch8(c) & 7;
      const x = c.sse, v = x.i32, d = c.modReg, t = 4 * XMM_TMP;
      fpBegin(x);
      x.copy(XMM_TMP, d);
      const step = single ? 1 : 2, n = scalar ? step : 4;
      for (let i = 0; i < n; i += step) {
        const a = 4 * d + i, b = 4 * s + i;
        let r: boolean;
        if (single) {
          const un = isNaN32(v[a]) || isNaN32(v[b]);
          const sn = isSNaN32(v[a]) || isSNaN32(v[b]);
          r = cmpLane(pred, un, sn, un ? 0 : val32(v[a]), un ? 0 : val32(v[b]));
        } else {
          const un = isNaN64(v[a + 1], v[a]) || isNaN64(v[b + 1], v[b]);
          const sn = isSNaN64(v[a + 1], v[a]) || isSNaN64(v[b + 1], v[b]);
          r = cmpLane(pred, un, sn, un ? 0 : val64(v[a + 1], v[a]), un ? 0 : val64(v[b + 1], v[b]));
          v[t + i + 1] = r ? -1 : 0;
        }
        v[t + i] = r ? -1 : 0;
      }
      commit(c, d);
    });
  }
  // COMISS/UCOMISS (0F 2F/2E), COMISD/UCOMISD (66): ZF, PF, CF; OF, SF, AF cleared.
  for (const [op, signalling] of [[0x2e, false], [0x2f, true]] as const) {
    for (const p of [P_NONE, P_66]) {
      const single = p === P_NONE;
      def(op, p, single ? NEED_SSE : NEED_SSE2, (c) => {
        decodeModrm(c);
        const s = srcScalar(c, single ? 1 : 2);
        const x = c.sse, v = x.i32, a = 4 * c.modReg, b = 4 * s;
        fpBegin(x);
        const un = single
          ? isNaN32(v[a]) || isNaN32(v[b])
          : isNaN64(v[a + 1], v[a]) || isNaN64(v[b + 1], v[b]);
        let f = 0;
        if (un) {
          const sn = single
            ? isSNaN32(v[a]) || isSNaN32(v[b])
            : isSNaN64(v[a + 1], v[a]) || isSNaN64(v[b + 1], v[b]);
          if (sn || signalling) fp.flags |= MX_IE;
          f = ZF | PF | CF;
        } else {
          const xa = single ? val32(v[a]) : val64(v[a + 1], v[a]);
          const xb = single ? val32(v[b]) : val64(v[b + 1], v[b]);
          f = xa < xb ? CF : xa === xb ? ZF : 0;
        }
        commit(c, -1);
        setArithFlags(c, ARITH_FLAGS, f);
      });
    }
  }
}

const INDEFINITE = 0x80000000 | 0;

/** A float or double value to int32 under MXCSR (or truncated): IE and the indefinite integer. */
function toInt32(v: number, truncate: boolean): number {
  if (v !== v) {
    fp.flags |= MX_IE;
    return INDEFINITE;
  }
  const r = roundInt(v, truncate);
  if (r < -2147483648 || r > 2147483647) {
    fp.flags |= MX_IE;
    return INDEFINITE;
  }
  if (r !== v) fp.flags |= MX_PE;
  return r | 0;
}

/** The value of float lane `i` of `v` for a conversion (NaN for any NaN; SNaN raises IE). */
function cvtIn32(v: Int32Array, i: number, de: boolean): number {
  const b = v[i];
  if (isNaN32(b)) {
    if (isSNaN32(b)) fp.flags |= MX_IE;
    return NaN;
  }
  return val32(b, de);
}

function cvtIn64(v: Int32Array, i: number, de: boolean): number {
  if (isNaN64(v[i + 1], v[i])) {
    if (isSNaN64(v[i + 1], v[i])) fp.flags |= MX_IE;
    return NaN;
  }
  return val64(v[i + 1], v[i], de);
}

/** Float lane `i` of `v` widened to double lane `out` (NaN payloads kept, quieted). */
function widen(v: Int32Array, out: number, i: number): void {
  const b = v[i];
  if (isNaN32(b)) {
    if (isSNaN32(b)) fp.flags |= MX_IE;
    const m = b & 0x7fffff;
    const lo = (m & 7) << 29, hi = (b & 0x80000000) | 0x7ff80000 | (m >>> 3);
    v[out] = lo;
    v[out + 1] = hi;
    return;
  }
  put64(v, out, val32(b));
}

/** Double lane `i` of `v` narrowed to float lane `out` under MXCSR. */
function narrow(v: Int32Array, out: number, i: number): void {
  const lo = v[i], hi = v[i + 1];
  if (isNaN64(hi, lo)) {
    if (isSNaN64(hi, lo)) fp.flags |= MX_IE;
    v[out] = (hi & 0x80000000) | 0x7fc00000 | ((hi & 0xfffff) << 3) | (lo >>> 29);
    return;
  }
  v[out] = bits32(toSingle(val64(hi, lo)));
}

/** Defines a conversion into XMM_TMP (a copy of the destination first) then commit. */
function cvt(
  op: number,
  p: number,
  need: number,
  srcDwords: number,
  f: (v: Int32Array, t: number, s: number) => void,
): void {
  def(op, p, need, (c) => {
    decodeModrm(c);
    const s = srcDwords === 4 ? srcX(c) : srcScalar(c, srcDwords);
    const x = c.sse;
    fpBegin(x);
    x.copy(XMM_TMP, c.modReg);
    f(x.i32, 4 * XMM_TMP, 4 * s);
    commit(c, c.modReg);
  });
}

function installConversions(): void {
  const zeroHigh = (v: Int32Array, t: number) => (v[t + 2] = v[t + 3] = 0);
  cvt(0x5a, P_NONE, NEED_SSE2, 2, (v, t, s) => { // CVTPS2PD
    const a = v[s], b = v[s + 1];
    v[t + 2] = b;
    widen(v, t + 2, t + 2);
    v[t] = a;
    widen(v, t, t);
  });
  cvt(0x5a, P_66, NEED_SSE2, 4, (v, t, s) => { // CVTPD2PS
    narrow(v, t, s);
    narrow(v, t + 1, s + 2);
    zeroHigh(v, t);
  });
  cvt(0x5a, P_F3, NEED_SSE2, 1, (v, t, s) => { // CVTSS2SD
    v[t] = v[s];
    widen(v, t, t);
  });
  cvt(0x5a, P_F2, NEED_SSE2, 2, (v, t, s) => narrow(v, t, s)); // CVTSD2SS
  cvt(0x5b, P_NONE, NEED_SSE2, 4, (v, t, s) => { // CVTDQ2PS
    for (let i = 0; i < 4; i++) v[t + i] = bits32(toSingle(v[s + i]));
  });
  for (const [p, trunc] of [[P_66, false], [P_F3, true]] as const) { // CVT(T)PS2DQ
    cvt(0x5b, p, NEED_SSE2, 4, (v, t, s) => {
      for (let i = 0; i < 4; i++) v[t + i] = toInt32(cvtIn32(v, s + i, false), trunc);
    });
  }
  cvt(0xe6, P_F3, NEED_SSE2, 2, (v, t, s) => { // CVTDQ2PD
    const a = v[s], b = v[s + 1];
    put64(v, t, a);
    put64(v, t + 2, b);
  });
  for (const [p, trunc] of [[P_F2, false], [P_66, true]] as const) { // CVT(T)PD2DQ
    cvt(0xe6, p, NEED_SSE2, 4, (v, t, s) => {
      v[t] = toInt32(cvtIn64(v, s, false), trunc);
      v[t + 1] = toInt32(cvtIn64(v, s + 2, false), trunc);
      zeroHigh(v, t);
    });
  }
  // CVTSI2SS / CVTSI2SD xmm, r/m32.
  for (const [p, single] of [[P_F3, true], [P_F2, false]] as const) {
    def(0x2a, p, single ? NEED_SSE : NEED_SSE2, (c) => {
      decodeModrm(c);
      const n = c.modMod === 3 ? c.regs[c.modRm] : read32(c, c.eaSeg, c.eaOff);
      const x = c.sse, v = x.i32, t = 4 * XMM_TMP;
      fpBegin(x);
      x.copy(XMM_TMP, c.modReg);
      if (single) v[t] = bits32(toSingle(n));
      else put64(v, t, n);
      commit(c, c.modReg);
    });
  }
  // The MMX-operand conversions: every form enters MMX use first, as QEMU 7.2 does.
  // CVTPI2PS / CVTPI2PD xmm, mm/m64.
  for (const [p, single] of [[P_NONE, true], [P_66, false]] as const) {
    def(0x2a, p, single ? NEED_SSE : NEED_SSE2, (c) => {
      decodeModrm(c);
      mmxUse(c);
      const x = c.sse, v = x.i32, t = 4 * XMM_TMP;
      if (c.modMod === 3) mmGet(c, c.modRm & 7, MMX_S);
      else loadM(c, MMX_S, 2);
      const a = v[4 * MMX_S], b = v[4 * MMX_S + 1];
      fpBegin(x);
      x.copy(XMM_TMP, c.modReg);
      if (single) {
        v[t] = bits32(toSingle(a));
        v[t + 1] = bits32(toSingle(b));
      } else {
        put64(v, t, a);
        put64(v, t + 2, b);
      }
      commit(c, c.modReg);
    });
  }
  // CVT(T)PS2PI mm, xmm/m64 and CVT(T)PD2PI mm, xmm/m128.
  for (const [op, trunc] of [[0x2d, false], [0x2c, true]] as const) {
    for (const [p, single] of [[P_NONE, true], [P_66, false]] as const) {
      def(op, p, single ? NEED_SSE : NEED_SSE2, (c) => {
        decodeModrm(c);
        mmxUse(c);
        const s = 4 * (single ? srcScalar(c, 2) : srcX(c));
        const x = c.sse, v = x.i32;
        fpBegin(x);
        const a = toInt32(single ? cvtIn32(v, s, false) : cvtIn64(v, s, false), trunc);
        const b = toInt32(single ? cvtIn32(v, s + 1, false) : cvtIn64(v, s + 2, false), trunc);
        commit(c, -1);
        mmSet(c, c.modReg & 7, a, b);
      });
    }
  }
  // CVT(T)SS2SI / CVT(T)SD2SI r32, xmm/m32 or m64.
  for (const [op, trunc] of [[0x2d, false], [0x2c, true]] as const) {
    for (const [p, single] of [[P_F3, true], [P_F2, false]] as const) {
      def(op, p, single ? NEED_SSE : NEED_SSE2, (c) => {
        decodeModrm(c);
        const s = srcScalar(c, single ? 1 : 2);
        const x = c.sse, v = x.i32;
        fpBegin(x);
        const r = toInt32(single ? cvtIn32(v, 4 * s, false) : cvtIn64(v, 4 * s, false), trunc);
        commit(c, -1);
        c.regs[c.modReg] = r;
      });
    }
  }
}

/** RCPPS/RCPSS and RSQRTPS/RSQRTSS: as QEMU 7.2 TCG computes them (a division), flags untouched. */
function installEstimates(): void {
  for (const [op, root] of [[0x53, false], [0x52, true]] as const) {
    for (const p of [P_NONE, P_F3]) {
      def(op, p, NEED_SSE, (c) => {
        decodeModrm(c);
        const s = p === P_F3 ? srcScalar(c, 1) : srcX(c);
        const x = c.sse, v = x.i32, d = c.modReg, t = 4 * XMM_TMP;
        fpBegin(x);
        x.copy(XMM_TMP, d);
        for (let i = 0; i < (p === P_F3 ? 1 : 4); i++) {
          const b = root ? lane32(SQRT, 0, v[4 * s + i]) : v[4 * s + i];
          v[t + i] = lane32(DIV, 0x3f800000, b);
        }
        fp.flags = 0;
        commit(c, d);
      });
    }
  }
}

/** SSE3: ADDSUBPS/PD, HADDPS/PD, HSUBPS/PD. */
function installSse3(): void {
  for (const [p, single] of [[P_F2, true], [P_66, false]] as const) {
    def(0xd0, p, NEED_SSE3, (c) => {
      decodeModrm(c);
      const s = srcX(c);
      const x = c.sse, v = x.i32, d = c.modReg, t = 4 * XMM_TMP;
      fpBegin(x);
      if (single) {
        for (let i = 0; i < 4; i++) {
          v[t + i] = lane32(i & 1 ? ADD : SUB, v[4 * d + i], v[4 * s + i]);
        }
      } else {
        lane64(SUB, v, t, 4 * d, 4 * s);
        lane64(ADD, v, t + 2, 4 * d + 2, 4 * s + 2);
      }
      commit(c, d);
    });
    for (const [op, kind] of [[0x7c, ADD], [0x7d, SUB]]) {
      def(op, p, NEED_SSE3, (c) => {
        decodeModrm(c);
        const s = srcX(c);
        const x = c.sse, v = x.i32, d = 4 * c.modReg, t = 4 * XMM_TMP;
        fpBegin(x);
        if (single) {
          v[t] = lane32(kind, v[d], v[d + 1]);
          v[t + 1] = lane32(kind, v[d + 2], v[d + 3]);
          v[t + 2] = lane32(kind, v[4 * s], v[4 * s + 1]);
          v[t + 3] = lane32(kind, v[4 * s + 2], v[4 * s + 3]);
        } else {
          lane64(kind, v, t, d, d + 2);
          lane64(kind, v, t + 2, 4 * s, 4 * s + 2);
        }
        commit(c, c.modReg);
      });
    }
  }
}

/** Installs the floating-point instructions. */
export function installSseFp(): void {
  arithForms(0x58, ADD);
  arithForms(0x5c, SUB);
  arithForms(0x59, MUL);
  arithForms(0x5e, DIV);
  arithForms(0x5d, MIN);
  arithForms(0x5f, MAX);
  arithForms(0x51, SQRT);
  installCompares();
  installConversions();
  installEstimates();
  installSse3();
}
