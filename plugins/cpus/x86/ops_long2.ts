// 64-bit mode: shifts, multiply and divide, string instructions with RSI/RDI/RCX

import { imul32, mul32, setMulFlags, shift } from "./alu.ts";
import { decodeModrm } from "./decode.ts";
import {
  fetchImm,
  getR,
  osz,
  readE,
  readM,
  readMem,
  setR,
  writeE,
  writeMem,
} from "./decode_long.ts";
import { getCF, getZF, materializeFlags } from "./flags.ts";
import { fetch8, probeWrite, tlbSlotForRead, tlbSlotForWrite } from "./memory.ts";
import { checkIoPermission } from "./ops_control.ts";
import { alu, setFlags64 } from "./ops_long.ts";
import { linAt } from "./paging_long.ts";
import {
  CF,
  type CpuCore,
  DF,
  EAX,
  EDX,
  EXC_DE,
  fault,
  OF,
  type OpHandler,
  SEG_LIN,
} from "./state.ts";

const M64 = (1n << 64n) - 1n;

/** (lo, hi) as an unsigned bigint. */
export function big(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The low half of bigint `v`; the upper half goes to `c.tHi`. */
export function unbig(c: CpuCore, v: bigint): number {
  c.tHi = Number((v >> 32n) & 0xffffffffn) | 0;
  return Number(v & 0xffffffffn) | 0;
}

/** The upper half of the last {@linkcode shl}/{@linkcode shr} result. */
let SH = 0;

/** (lo, hi) << n for n in 0..63; the upper half in `SH`. */
function shl(lo: number, hi: number, n: number): number {
  if (n === 0) {
    SH = hi;
    return lo;
  }
  if (n < 32) {
    SH = (hi << n) | (lo >>> (32 - n));
    return lo << n;
  }
  SH = lo << (n - 32);
  return 0;
}

/** (lo, hi) >> n for n in 0..63, arithmetic when `sar`; the upper half in `SH`. */
function shr(lo: number, hi: number, n: number, sar: boolean): number {
  if (n === 0) {
    SH = hi;
    return lo;
  }
  if (n < 32) {
    SH = sar ? hi >> n : hi >>> n;
    return (lo >>> n) | (hi << (32 - n));
  }
  SH = sar ? hi >> 31 : 0;
  return sar ? hi >> (n - 32) : hi >>> (n - 32);
}

/**
 * 64-bit shift or rotate `op` (group-2 order) of (lo, hi) by `count` (masked to 6 bits),
 * on int32 halves, with QEMU's flags: for SHL/SHR/SAR, CF the last bit out, OF from the top
 * bits of the value shifted by count-1 and of the result, AF clear; rotates change only CF
 * and OF. RCL/RCR (65-bit rotations, rare) go through BigInt.
 */
export function shift64(c: CpuCore, op: number, lo: number, hi: number, count: number): number {
  const n = count & 63;
  c.tHi = hi;
  if (n === 0) return lo;
  switch (op) {
    case 0:
    case 1: { // ROL, ROR
      const k = op === 0 ? n : 64 - n;
      const l1 = shl(lo, hi, k), h1 = SH;
      const l2 = shr(lo, hi, 64 - k, false), h2 = SH;
      const rl = l1 | l2, rh = h1 | h2;
      if (op === 0) setCfOf(c, rl & 1, (rh >>> 31) ^ (rl & 1));
      else setCfOf(c, rh >>> 31, (rh >>> 31) ^ ((rh >>> 30) & 1));
      c.tHi = rh;
      return rl;
    }
    case 2:
    case 3:
      return rotateCarry64(c, op === 2, lo, hi, n);
    case 4:
    case 6: {
      const sl = shl(lo, hi, n - 1), sh = SH;
      const rl = sl << 1, rh = (sh << 1) | (sl >>> 31);
      setFlags64(c, rl, rh, (sh >>> 31) | (((sh ^ rh) >>> 31) << 11));
      c.tHi = rh;
      return rl;
    }
    default: {
      const sar = op === 7;
      const sl = shr(lo, hi, n - 1, sar), sh = SH;
      const rl = (sl >>> 1) | (sh << 31), rh = sar ? sh >> 1 : sh >>> 1;
      setFlags64(c, rl, rh, (sl & 1) | (((sh ^ rh) >>> 31) << 11));
      c.tHi = rh;
      return rl;
    }
  }
}

/** RCL/RCR of (lo, hi) through CF by `n` (1..63). */
function rotateCarry64(c: CpuCore, left: boolean, lo: number, hi: number, n: number): number {
  let cf = BigInt(getCF(c));
  let r = big(lo, hi);
  for (let i = 0; i < n; i++) {
    if (left) {
      const out = r >> 63n;
      r = ((r << 1n) | cf) & M64;
      cf = out;
    } else {
      const out = r & 1n;
      r = (r >> 1n) | (cf << 63n);
      cf = out;
    }
  }
  const top = Number(r >> 63n);
  setCfOf(c, Number(cf), left ? top ^ Number(cf) : top ^ Number((r >> 62n) & 1n));
  return unbig(c, r);
}

function setCfOf(c: CpuCore, cf: number, of: number): void {
  materializeFlags(c);
  c.flags = (c.flags & ~(CF | OF)) | cf | (of << 11);
}

/** Group 2 at `size` bits by `count`; the result's upper half in `c.tHi`. */
function grp2(c: CpuCore, op: number, size: number, lo: number, hi: number, count: number) {
  if (size === 64) return shift64(c, op, lo, hi, count);
  c.tHi = 0;
  return shift(c, op, lo, count & 31, size);
}

function installShifts(t: OpHandler[]): void {
  const run = (c: CpuCore, size: number, how: number) => {
    if (how === 1) c.immLen = 1;
    decodeModrm(c);
    const op = c.modReg & 7;
    const a = readM(c, size);
    const ah = c.tHi;
    const count = how === 0 ? 1 : how === 1 ? fetch8(c) : c.regs[1] & 0xff;
    const masked = count & (size === 64 ? 63 : 31);
    const r = grp2(c, op, size, a, ah, count);
    if (masked !== 0 || size === 32) writeE(c, size, r, size === 64 ? c.tHi : 0);
  };
  t[0xc0] = (c) => run(c, 8, 1);
  t[0xc1] = (c) => run(c, osz(c), 1);
  t[0xd0] = (c) => run(c, 8, 0);
  t[0xd1] = (c) => run(c, osz(c), 0);
  t[0xd2] = (c) => run(c, 8, 2);
  t[0xd3] = (c) => run(c, osz(c), 2);
}

/** Unsigned or signed 64x64 -> 128 multiply of (alo, ahi) by (blo, bhi): [lo64, hi64]. */
function mul128(a: bigint, b: bigint, signed: boolean): [bigint, bigint] {
  const x = signed ? BigInt.asIntN(64, a) : a;
  const y = signed ? BigInt.asIntN(64, b) : b;
  const p = x * y;
  return [BigInt.asUintN(64, p), BigInt.asUintN(64, p >> 64n)];
}

/** Sets CF = OF = `overflow` and SF/ZF/PF from the low 64 bits (as QEMU's MULQ). */
function mulFlags64(c: CpuCore, overflow: boolean, lo: bigint): void {
  const l = unbig(c, lo);
  const h = c.tHi;
  setFlags64(c, l, h, overflow ? CF | OF : 0);
}

const HI = new Int32Array(1);

function installMulDiv(t: OpHandler[]): void {
  const grp3 = (c: CpuCore, size: number) => {
    const at = c.eip;
    const m = fetch8(c);
    c.eip = at;
    if (((m >> 3) & 7) <= 1) c.immLen = size === 8 ? 1 : size === 16 ? 2 : 4;
    decodeModrm(c);
    const op = c.modReg & 7;
    switch (op) {
      case 0:
      case 1: {
        const a = readE(c, size);
        const ah = c.tHi;
        const imm = fetchImm(c, size); // imm8/16/32, sign-extended for 64
        alu(c, 4, size, a, ah, imm, c.tHi);
        return;
      }
      case 2: {
        const a = readM(c, size);
        writeE(c, size, ~a, ~c.tHi);
        return;
      }
      case 3: {
        const a = readM(c, size);
        const r = alu(c, 5, size, 0, 0, a, c.tHi);
        writeE(c, size, r, c.tHi);
        return;
      }
      case 4:
      case 5: {
        const signed = op === 5;
        const b = readE(c, size);
        const bh = c.tHi;
        if (size === 64) {
          const [lo, hi] = mul128(big(c.regs[EAX], c.regsHi[EAX]), big(b, bh), signed);
          const over = signed
            ? hi !== (BigInt.asIntN(64, lo) < 0n ? (1n << 64n) - 1n : 0n)
            : hi !== 0n;
          setR(c, EAX, 64, unbig(c, lo), c.tHi);
          setR(c, EDX, 64, unbig(c, hi), c.tHi);
          mulFlags64(c, over, lo);
          return;
        }
        if (size === 32) {
          const lo = signed ? imul32(c.regs[EAX], b, HI) : mul32(c.regs[EAX], b, HI);
          const hi = HI[0] | 0;
          setR(c, EAX, 32, lo, 0);
          setR(c, EDX, 32, hi, 0);
          setMulFlags(c, signed ? hi !== lo >> 31 : hi !== 0, lo, 32);
          return;
        }
        if (size === 16) {
          const a = c.regs[EAX] & 0xffff;
          const p = signed ? ((a << 16) >> 16) * ((b << 16) >> 16) : a * b;
          setR(c, EAX, 16, p, 0);
          setR(c, EDX, 16, p >> 16, 0);
          setMulFlags(c, signed ? p !== ((p << 16) >> 16) : (p >>> 16) !== 0, p, 16);
          return;
        }
        const a = c.regs[EAX] & 0xff;
        const p = signed ? ((a << 24) >> 24) * ((b << 24) >> 24) : a * b;
        setR(c, EAX, 16, p, 0);
        setMulFlags(c, signed ? p !== ((p << 24) >> 24) : (p >>> 8) !== 0, p, 8);
        return;
      }
      default: {
        const signed = op === 7;
        const d = readE(c, size);
        const dh = c.tHi;
        if (size === 8) {
          const n = c.regs[EAX] & 0xffff;
          divide(c, signed, BigInt(n), BigInt(d), 8);
          const q = Number(QR[0]), r = Number(QR[1]);
          setR(c, EAX, 16, (q & 0xff) | ((r & 0xff) << 8), 0);
          return;
        }
        const lo = getR(c, EAX, size), lh = c.tHi;
        const hi = getR(c, EDX, size), hh = c.tHi;
        const half = BigInt(size);
        const mask = (1n << half) - 1n;
        const n = ((big(hi, hh) & mask) << half) | (big(lo, lh) & mask);
        divide(c, signed, n, big(d, dh) & mask, size);
        setR(c, EAX, size, unbig(c, QR[0]), c.tHi);
        setR(c, EDX, size, unbig(c, QR[1]), c.tHi);
      }
    }
  };
  t[0xf6] = (c) => grp3(c, 8);
  t[0xf7] = (c) => grp3(c, osz(c));
  // IMUL Gv, Ev (0F AF) and Gv, Ev, imm (69, 6B).
  const imul = (c: CpuCore, immBytes: number) => {
    const size = osz(c);
    c.immLen = immBytes === 4 && size === 16 ? 2 : immBytes;
    decodeModrm(c);
    const b = readE(c, size);
    const bh = c.tHi;
    let x: number, xh: number;
    if (immBytes === 0) {
      x = getR(c, c.modReg, size);
      xh = c.tHi;
    } else if (immBytes === 1) {
      x = (fetch8(c) << 24) >> 24;
      xh = x >> 31;
    } else if (size === 16) {
      x = ((fetch8(c) | (fetch8(c) << 8)) << 16) >> 16;
      xh = x >> 31;
    } else {
      x = fetch8(c) | (fetch8(c) << 8) | (fetch8(c) << 16) | (fetch8(c) << 24);
      xh = x >> 31;
    }
    if (size === 64) {
      const p = BigInt.asIntN(64, big(b, bh)) * BigInt.asIntN(64, big(x, xh));
      const lo = BigInt.asUintN(64, p);
      const over = BigInt.asIntN(64, lo) !== p;
      setR(c, c.modReg, 64, unbig(c, lo), c.tHi);
      mulFlags64(c, over, lo);
      return;
    }
    if (size === 32) {
      const lo = imul32(b, x, HI);
      setR(c, c.modReg, 32, lo, 0);
      setMulFlags(c, (HI[0] | 0) !== lo >> 31, lo, 32);
      return;
    }
    const p = ((b << 16) >> 16) * ((x << 16) >> 16);
    setR(c, c.modReg, 16, p, 0);
    setMulFlags(c, p !== ((p << 16) >> 16), p, 16);
  };
  t[0x1af] = (c) => imul(c, 0);
  t[0x69] = (c) => imul(c, 4);
  t[0x6b] = (c) => imul(c, 1);
}

/** Quotient and remainder of the last {@linkcode divide}. */
const QR: bigint[] = [0n, 0n];

/** Divides `n` (2*size bits) by `d` (size bits); #DE on zero or a quotient that does not fit. */
function divide(c: CpuCore, signed: boolean, n: bigint, d: bigint, size: number): void {
  if (d === 0n) fault(c, EXC_DE);
  const w = BigInt(size);
  if (!signed) {
    const q = n / d;
    if (q >> w !== 0n) fault(c, EXC_DE);
    QR[0] = q;
    QR[1] = n % d;
    return;
  }
  const sn = BigInt.asIntN(2 * size, n), sd = BigInt.asIntN(size, d);
  const q = sn / sd;
  if (q !== BigInt.asIntN(size, q)) fault(c, EXC_DE);
  QR[0] = BigInt.asUintN(size, q);
  QR[1] = BigInt.asUintN(size, sn % sd);
}

const MOVS = 0, CMPS = 1, STOS = 2, LODS = 3, SCAS = 4, INS = 5, OUTS = 6;

/** A string operand's linear address from index register `r` (RSI/RDI or ESI/EDI with 67h). */
function strAt(c: CpuCore, r: number, src: boolean): number {
  let lo = c.regs[r];
  let hi = c.addrOvr ? 0 : c.regsHi[r];
  if (src && c.segOvr >= 4) {
    const t0 = (lo >>> 0) + (c.segBase[c.segOvr] >>> 0);
    hi = (hi + c.segBaseHi[c.segOvr] + (t0 > 0xffffffff ? 1 : 0)) | 0;
    lo = t0 | 0;
  }
  c.eaStack = false;
  linAt(c, hi);
  return lo;
}

/** Adds `step` to index register `r` at the address size. */
function stepReg(c: CpuCore, r: number, step: number): void {
  const t0 = (c.regs[r] >>> 0) + step;
  c.regs[r] = t0 | 0;
  if (c.addrOvr) c.regsHi[r] = 0;
  else c.regsHi[r] = (c.regsHi[r] + (t0 > 0xffffffff ? 1 : t0 < 0 ? -1 : 0)) | 0;
}

/**
 * REP MOVS/STOS over plain RAM in 64-bit mode: up to the edge of the current page(s) with
 * typed-array copies, as ops_string.ts's `fastRep` does for 32-bit code. False when the
 * element loop must run (short counts, other windows, MMIO, code pages, self-overlap).
 */
function fastRep64(c: CpuCore, kind: number, bytes: number): boolean {
  const a32 = c.addrOvr;
  const count = a32 || c.regsHi[1] === 0 ? c.regs[1] >>> 0 : 0x7fffffff;
  const budget = Math.min(4096, c.sliceEnd - c.retired);
  if (count < 8 || budget < 8) return false;
  const down = (c.flags & DF) !== 0;
  const room = (lin: number) => {
    const inPage = lin & 0xfff;
    if (!down) return Math.floor((4096 - inPage) / bytes);
    return inPage + bytes > 4096 ? 0 : Math.floor(inPage / bytes) + 1;
  };
  let n = Math.min(count, budget);
  let sLin = 0, src: Uint8Array | null = null, sOff = 0;
  if (kind === MOVS) {
    sLin = strAt(c, 6, true);
    if (c.eaHi !== c.linHi || c.rdHi[SEG_LIN] < 0) return false;
    n = Math.min(n, room(sLin));
    if (n < 1) return false;
    const sSlot = tlbSlotForRead(c, sLin);
    if (sSlot < 0) return false;
    // Taken now: the destination's TLB fill below may reuse the same slot.
    src = c.tlbBytes[sSlot];
    sOff = c.tlbOff[sSlot];
  }
  const dLin = strAt(c, 7, false);
  if (c.eaHi !== c.linHi || c.rdHi[SEG_LIN] < 0) return false;
  n = Math.min(n, room(dLin));
  if (n < 1) return false;
  const dSlot = tlbSlotForWrite(c, dLin);
  if (dSlot < 0) return false;
  const len = n * bytes;
  const back = down ? len - bytes : 0;
  const dst = c.tlbBytes[dSlot];
  const dp = c.tlbOff[dSlot] + (dLin & 0xfff) - back;
  if (src !== null) {
    const sp = sOff + (sLin & 0xfff) - back;
    if (src === dst && (down ? dp < sp && dp + len > sp : dp > sp && dp < sp + len)) {
      return false;
    }
    if (src === dst) dst.copyWithin(dp, sp, sp + len);
    else dst.set(src.subarray(sp, sp + len), dp);
    stepReg(c, 6, down ? -len : len);
  } else {
    const lo = c.regs[EAX], hi = c.regsHi[EAX];
    if (bytes === 1) dst.fill(lo & 0xff, dp, dp + len);
    else {
      for (let k = 0; k < len; k += bytes) {
        for (let b = 0; b < bytes; b++) {
          dst[dp + k + b] = b < 4 ? lo >> (8 * b) : hi >> (8 * (b - 4));
        }
      }
    }
  }
  stepReg(c, 7, down ? -len : len);
  const t0 = (c.regs[1] >>> 0) - n;
  c.regs[1] = t0 | 0;
  if (a32) c.regsHi[1] = 0;
  else if (t0 < 0) c.regsHi[1] = (c.regsHi[1] - 1) | 0;
  if (c.regs[1] !== 0 || (!a32 && c.regsHi[1] !== 0)) c.eip = c.instrStart;
  c.retired += n - 1; // the run loop counts the first
  return true;
}

/** MOVS..SCAS at `size` bits with REP over RCX (ECX with 67h), a bounded chunk at a time. */
function stringOp(c: CpuCore, kind: number, size: number): void {
  const bytes = size >> 3;
  if (c.rep !== 0 && (kind === MOVS || kind === STOS) && fastRep64(c, kind, bytes)) return;
  const step = (c.flags & DF) !== 0 ? -bytes : bytes;
  const rep = c.rep;
  const a32 = c.addrOvr;
  const limit = rep === 0 ? 1 : Math.max(1, Math.min(4096, c.sliceEnd - c.retired));
  if (kind === INS || kind === OUTS) checkIoPermission(c, c.regs[EDX] & 0xffff, bytes);
  let n = 0;
  for (;;) {
    if (rep !== 0 && c.regs[1] === 0 && (a32 || c.regsHi[1] === 0)) break;
    switch (kind) {
      case MOVS: {
        const v = readMem(c, SEG_LIN, strAt(c, 6, true), size);
        const vh = c.tHi;
        writeMem(c, SEG_LIN, strAt(c, 7, false), size, v, vh);
        stepReg(c, 6, step);
        stepReg(c, 7, step);
        break;
      }
      case CMPS: {
        const a = readMem(c, SEG_LIN, strAt(c, 6, true), size);
        const ah = c.tHi;
        const b = readMem(c, SEG_LIN, strAt(c, 7, false), size);
        alu(c, 7, size, a, ah, b, c.tHi);
        stepReg(c, 6, step);
        stepReg(c, 7, step);
        break;
      }
      case STOS:
        writeMem(c, SEG_LIN, strAt(c, 7, false), size, c.regs[EAX], c.regsHi[EAX]);
        stepReg(c, 7, step);
        break;
      case INS: {
        const at = strAt(c, 7, false);
        probeWrite(c, SEG_LIN, at, bytes);
        c.codeEpoch++; // a device may write guest RAM
        writeMem(c, SEG_LIN, at, size, c.io.in(c.regs[EDX] & 0xffff, bytes as 1 | 2 | 4), 0);
        c.attention = true;
        stepReg(c, 7, step);
        break;
      }
      case OUTS: {
        const v = readMem(c, SEG_LIN, strAt(c, 6, true), size);
        c.codeEpoch++;
        c.io.out(c.regs[EDX] & 0xffff, bytes as 1 | 2 | 4, size === 32 ? v >>> 0 : v);
        c.attention = true;
        stepReg(c, 6, step);
        break;
      }
      case LODS: {
        const v = readMem(c, SEG_LIN, strAt(c, 6, true), size);
        setR(c, EAX, size, v, c.tHi);
        stepReg(c, 6, step);
        break;
      }
      default: {
        const b = readMem(c, SEG_LIN, strAt(c, 7, false), size);
        const bh = c.tHi;
        const a = getR(c, EAX, size);
        alu(c, 7, size, a, c.tHi, b, bh);
        stepReg(c, 7, step);
      }
    }
    if (rep === 0) return;
    stepReg(c, 1, -1);
    n++;
    if ((kind === CMPS || kind === SCAS) && (getZF(c) !== 0) !== (rep === 0xf3)) break;
    if (n >= limit && (c.regs[1] !== 0 || (!a32 && c.regsHi[1] !== 0))) {
      c.eip = c.instrStart;
      break;
    }
  }
  if (n > 1) c.retired += n - 1;
}

function installStrings(t: OpHandler[]): void {
  const ops = [[0xa4, MOVS], [0xa6, CMPS], [0xaa, STOS], [0xac, LODS], [0xae, SCAS]];
  for (const [op, kind] of [...ops, [0x6c, INS], [0x6e, OUTS]]) {
    t[op] = (c) => stringOp(c, kind, 8);
    // INS/OUTS move at most a dword (REX.W gives 32 bits).
    t[op + 1] = (c) => stringOp(c, kind, kind >= INS ? (c.op32 ? 32 : 16) : osz(c));
  }
}

/** Installs the shifts, multiply/divide and string instructions of 64-bit mode. */
export function installLong2(t: OpHandler[]): void {
  installShifts(t);
  installMulDiv(t);
  installStrings(t);
}
