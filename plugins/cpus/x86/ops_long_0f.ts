// 64-bit mode two-byte opcodes: the 64-bit forms, and the 32-bit ones that zero upper halves

import { decodeModrm } from "./decode.ts";
import { getR, osz, readE, readM, readMem, setR, writeE, writeMem } from "./decode_long.ts";
import { condition, getZF, setArithFlags } from "./flags.ts";
import { fetch8, probeWrite } from "./memory.ts";
import { alu, setFlags64 } from "./ops_long.ts";
import { big, unbig } from "./ops_long2.ts";
import { linAt } from "./paging_long.ts";
import {
  CF,
  type CpuCore,
  EAX,
  EBX,
  ECX,
  EDX,
  EXC_GP,
  fault,
  type OpHandler,
  ud,
  ZF,
} from "./state.ts";

/** `h` then the upper half of the ModRM reg operand cleared (a 32-bit write). */
function zeroReg(h: OpHandler): OpHandler {
  return (c) => {
    h(c);
    c.regsHi[c.modReg] = 0;
  };
}

/** `h` then the upper half of a register ModRM r/m operand cleared. */
function zeroRm(h: OpHandler): OpHandler {
  return (c) => {
    h(c);
    if (c.modMod === 3) c.regsHi[c.modRm] = 0;
  };
}

/** `h` then the upper halves of registers `regs` cleared. */
export function zeroRegs(h: OpHandler, regs: number[]): OpHandler {
  return (c) => {
    h(c);
    for (const r of regs) c.regsHi[r] = 0;
  };
}

/** By operand size: `h64` for REX.W, else the 32-bit (then `fix`) or 16-bit handler. */
function sized(
  t16: OpHandler[],
  t32: OpHandler[],
  op: number,
  h64: OpHandler,
  fix: (h: OpHandler) => OpHandler,
  immLen = 0,
): OpHandler {
  const h32 = fix(t32[op]), h16 = t16[op];
  return (c) => {
    c.immLen = immLen;
    if ((c.rex & 8) !== 0) h64(c);
    else if (c.op32) h32(c);
    else h16(c);
  };
}

/** Bit tests at 64 bits: register bit offsets address memory as a signed 64-bit number. */
function bitOp64(c: CpuCore, kind: number, offLo: number, offHi: number, fromReg: boolean) {
  let bit = offLo & 63;
  if (c.modMod !== 3 && fromReg) {
    const off = offHi * 4294967296 + (offLo >>> 0);
    const bytes = Math.floor(off / 64) * 8;
    const t = (c.eaOff >>> 0) + (bytes % 4294967296 + 4294967296) % 4294967296;
    const hi = (c.eaHi + Math.floor(bytes / 4294967296) + (t > 0xffffffff ? 1 : 0)) | 0;
    c.eaOff = t | 0;
    c.eaStack = false;
    linAt(c, hi);
    bit = offLo & 63;
  }
  const lo = kind === 0 ? readE(c, 64) : readM(c, 64);
  const hi = c.tHi;
  const cf = bit < 32 ? (lo >>> bit) & 1 : (hi >>> (bit - 32)) & 1;
  setArithFlags(c, CF, cf);
  if (kind === 0) return;
  let rl = lo, rh = hi;
  const m = 1 << (bit & 31);
  if (bit < 32) rl = kind === 1 ? rl | m : kind === 2 ? rl & ~m : rl ^ m;
  else rh = kind === 1 ? rh | m : kind === 2 ? rh & ~m : rh ^ m;
  writeE(c, 64, rl, rh);
}

/** Bit tests at 16/32 bits in 64-bit mode (the register offset addresses 64-bit memory). */
function bitOp(c: CpuCore, kind: number, offset: number, fromReg: boolean, size: number) {
  if (c.modMod !== 3 && fromReg) {
    const signed = size === 16 ? (offset << 16) >> 16 : offset | 0;
    const bytes = Math.floor(signed / size) * (size >> 3);
    const t = (c.eaOff >>> 0) + bytes;
    const hi = (c.eaHi + (t > 0xffffffff ? 1 : t < 0 ? -1 : 0)) | 0;
    c.eaOff = t | 0;
    c.eaStack = false;
    linAt(c, hi);
  }
  const bit = offset & (size - 1);
  const v = kind === 0 ? readE(c, size) : readM(c, size);
  setArithFlags(c, CF, (v >>> bit) & 1);
  if (kind === 0) return;
  const m = 1 << bit;
  writeE(c, size, kind === 1 ? v | m : kind === 2 ? v & ~m : v ^ m, 0);
}

/** Installs the 0F map of 64-bit mode into `t` from the 16/32-bit tables. */
export function installLong0f(t: OpHandler[], t16: OpHandler[], t32: OpHandler[]): void {
  // MOVZX / MOVSX
  for (const [op, from, signed] of [[0x1b6, 8, 0], [0x1b7, 16, 0], [0x1be, 8, 1], [0x1bf, 16, 1]]) {
    const h64: OpHandler = (c) => {
      decodeModrm(c);
      let v = readE(c, from);
      if (signed) v = from === 8 ? (v << 24) >> 24 : (v << 16) >> 16;
      setR(c, c.modReg, 64, v, signed ? v >> 31 : 0);
    };
    t[op] = sized(t16, t32, op, h64, zeroReg);
  }
  for (let cc = 0; cc < 16; cc++) {
    t[0x190 + cc] = t32[0x190 + cc];
    const h64: OpHandler = (c) => {
      decodeModrm(c);
      const v = readE(c, 64);
      if (condition(c, cc)) setR(c, c.modReg, 64, v, c.tHi);
    };
    t[0x140 + cc] = sized(t16, t32, 0x140 + cc, h64, zeroReg);
  }
  for (const [op, kind] of [[0x1a3, 0], [0x1ab, 1], [0x1b3, 2], [0x1bb, 3]]) {
    t[op] = (c) => {
      const s = osz(c);
      decodeModrm(c);
      const off = getR(c, c.modReg, s);
      if (s === 64) bitOp64(c, kind, off, c.tHi, true);
      else bitOp(c, kind, off, true, s);
    };
  }
  t[0x1ba] = (c) => {
    const s = osz(c);
    c.immLen = 1;
    decodeModrm(c);
    if ((c.modReg & 7) < 4) ud(c);
    const kind = (c.modReg & 7) - 4;
    const imm = fetch8(c);
    if (s === 64) bitOp64(c, kind, imm, 0, false);
    else bitOp(c, kind, imm, false, s);
  };
  for (const [op, reverse] of [[0x1bc, false], [0x1bd, true]] as const) {
    const h64: OpHandler = (c) => {
      decodeModrm(c);
      const lo = readE(c, 64), hi = c.tHi;
      if ((lo | hi) === 0) {
        setArithFlags(c, ZF, ZF);
        return;
      }
      let bit: number;
      if (reverse) bit = hi !== 0 ? 63 - Math.clz32(hi) : 31 - Math.clz32(lo);
      else bit = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 63 - Math.clz32(hi & -hi);
      setFlags64(c, 1, 0, 0);
      c.flags &= ~ZF;
      setR(c, c.modReg, 64, bit, 0);
    };
    t[op] = sized(t16, t32, op, h64, zeroReg);
  }
  for (const [op, left, imm] of [[0x1a4, 1, 1], [0x1a5, 1, 0], [0x1ac, 0, 1], [0x1ad, 0, 0]]) {
    const h64: OpHandler = (c) => {
      decodeModrm(c);
      const lo = readE(c, 64), hi = c.tHi;
      const n = (imm ? fetch8(c) : c.regs[ECX]) & 63;
      if (n === 0) return;
      if (c.modMod !== 3) probeWrite(c, c.eaSeg, c.eaOff, 8);
      const a = big(lo, hi), b = big(c.regs[c.modReg], c.regsHi[c.modReg]);
      const N = BigInt(n);
      const M = (1n << 64n) - 1n;
      let r: bigint, src: bigint;
      if (left) {
        src = ((a << (N - 1n)) | (b >> (65n - N))) & M;
        r = ((a << N) | (b >> (64n - N))) & M;
      } else {
        src = ((a >> (N - 1n)) | (b << (65n - N))) & M;
        r = ((a >> N) | (b << (64n - N))) & M;
      }
      const cf = left ? Number(src >> 63n) : Number(src & 1n);
      const of = Number(((src ^ r) >> 63n) & 1n);
      const rl = unbig(c, r), rh = c.tHi;
      setFlags64(c, rl, rh, cf | (of << 11));
      writeE(c, 64, rl, rh);
    };
    t[op] = sized(t16, t32, op, h64, zeroRm, imm ? 1 : 0);
  }
  t[0x1c0] = t32[0x1c0];
  t[0x1c1] = (c) => { // XADD
    const s = osz(c);
    decodeModrm(c);
    const a = readM(c, s), ah = c.tHi;
    const b = getR(c, c.modReg, s);
    const r = alu(c, 0, s, a, ah, b, c.tHi);
    const rh = c.tHi;
    if (c.modMod !== 3) writeE(c, s, r, rh);
    setR(c, c.modReg, s, a, ah);
    if (c.modMod === 3) writeE(c, s, r, rh);
  };
  // CMPXCHG as QEMU 7.2: a memory destination is stored in both cases, then rAX takes the
  // old value; a register destination is written only when equal, rAX only when not.
  const cmpxchg = (c: CpuCore, s: number) => {
    decodeModrm(c);
    const d = readE(c, s), dh = c.tHi;
    const a = getR(c, EAX, s);
    alu(c, 7, s, a, c.tHi, d, dh);
    let n = d, nh = dh;
    const equal = getZF(c) !== 0;
    if (equal) {
      n = getR(c, c.modReg, s);
      nh = c.tHi;
    }
    if (c.modMod === 3) {
      if (equal) writeE(c, s, n, nh);
      else setR(c, EAX, s, d, dh);
    } else {
      writeE(c, s, n, nh);
      setR(c, EAX, s, d, dh);
    }
  };
  t[0x1b0] = (c) => cmpxchg(c, 8);
  t[0x1b1] = (c) => cmpxchg(c, osz(c));
  t[0x1c7] = (c) => { // CMPXCHG8B / CMPXCHG16B
    decodeModrm(c);
    if ((c.modReg & 7) !== 1 || c.modMod === 3) ud(c);
    const r = c.regs, rh = c.regsHi;
    if ((c.rex & 8) === 0) {
      probeWrite(c, c.eaSeg, c.eaOff, 8);
      const lo = readMem(c, c.eaSeg, c.eaOff, 64), hi = c.tHi;
      if (lo === r[EAX] && hi === r[EDX]) {
        writeMem(c, c.eaSeg, c.eaOff, 64, r[EBX], r[ECX]);
        setArithFlags(c, ZF, ZF);
      } else {
        writeMem(c, c.eaSeg, c.eaOff, 64, lo, hi);
        setR(c, EAX, 32, lo, 0);
        setR(c, EDX, 32, hi, 0);
        setArithFlags(c, ZF, 0);
      }
      return;
    }
    if ((c.eaOff & 15) !== 0) fault(c, EXC_GP, 0);
    probeWrite(c, c.eaSeg, c.eaOff, 16);
    const o2 = (c.eaOff + 8) | 0;
    const l0 = readMem(c, c.eaSeg, c.eaOff, 64), h0 = c.tHi;
    const l1 = readMem(c, c.eaSeg, o2, 64), h1 = c.tHi;
    if (l0 === r[EAX] && h0 === rh[EAX] && l1 === r[EDX] && h1 === rh[EDX]) {
      writeMem(c, c.eaSeg, c.eaOff, 64, r[EBX], rh[EBX]);
      writeMem(c, c.eaSeg, o2, 64, r[ECX], rh[ECX]);
      setArithFlags(c, ZF, ZF);
    } else {
      writeMem(c, c.eaSeg, c.eaOff, 64, l0, h0);
      writeMem(c, c.eaSeg, o2, 64, l1, h1);
      setR(c, EAX, 64, l0, h0);
      setR(c, EDX, 64, l1, h1);
      setArithFlags(c, ZF, 0);
    }
  };
  for (let i = 0; i < 8; i++) {
    t[0x1c8 + i] = (c) => { // BSWAP
      const r = i | ((c.rex & 1) << 3);
      const sw = (v: number) =>
        ((v >>> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24)) | 0;
      if ((c.rex & 8) !== 0) setR(c, r, 64, sw(c.regsHi[r]), sw(c.regs[r]));
      else setR(c, r, 32, sw(c.regs[r]), 0); // 66h is ignored, as QEMU does
    };
  }
}
