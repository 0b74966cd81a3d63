// Two-byte (0F xx) integer opcodes: MOVZX/MOVSX, SETcc, CMOVcc, BT*, BSF/BSR, SHxD, XADD, CMPXCHG*

import { arith, setResultFlags, shiftDouble } from "./alu.ts";
import {
  decodeModrm,
  getReg8,
  probeE,
  readE16,
  readE32,
  readE8,
  readM16,
  readM32,
  readM8,
  setReg16,
  setReg8,
  writeE16,
  writeE32,
  writeE8,
} from "./decode.ts";
import { condition, getZF, materializeFlags, setArithFlags } from "./flags.ts";
import { checkWrite, fetch8, read16, read32, write32 } from "./memory.ts";
import {
  CF,
  type CpuCore,
  CR0_EM,
  CR0_TS,
  EAX,
  EBX,
  ECX,
  EDX,
  EXC_NM,
  fault,
  type OpHandler,
  ud,
  ZF,
} from "./state.ts";

/** Bit-test family: 0 BT, 1 BTS, 2 BTR, 3 BTC. */
function bitOp(c: CpuCore, kind: number, bitOffset: number, fromReg: boolean, size: number): void {
  let v: number;
  let bit: number;
  if (c.modMod === 3) {
    bit = bitOffset & (size - 1);
    v = size === 16 ? c.regs[c.modRm] & 0xffff : c.regs[c.modRm];
  } else {
    let off = c.eaOff;
    if (fromReg) {
      const signed = size === 16 ? (bitOffset << 16) >> 16 : bitOffset | 0;
      const unitBytes = size / 8;
      off = off + Math.floor(signed / size) * unitBytes;
      off = c.addr32 ? off >>> 0 : off & 0xffff;
    }
    bit = bitOffset & (size - 1);
    c.eaOff = off | 0;
    v = size === 16 ? read16(c, c.eaSeg, off) : read32(c, c.eaSeg, off);
    if (kind !== 0) probeE(c, size / 8);
  }
  const cf = (v >>> bit) & 1;
  setArithFlags(c, CF, cf);
  if (kind === 0) return;
  const m = 1 << bit;
  const r = kind === 1 ? v | m : kind === 2 ? v & ~m : v ^ m;
  if (size === 16) writeE16(c, r);
  else writeE32(c, r);
}

/** Installs the two-byte integer opcodes. */
export function install0f(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x1b6] = (c) => {
    decodeModrm(c);
    setReg16(c, c.modReg, readE8(c));
  };
  t32[0x1b6] = (c) => {
    decodeModrm(c);
    c.regs[c.modReg] = readE8(c);
  };
  t16[0x1b7] = (c) => {
    decodeModrm(c);
    setReg16(c, c.modReg, readE16(c));
  };
  t32[0x1b7] = (c) => {
    decodeModrm(c);
    c.regs[c.modReg] = readE16(c);
  };
  t16[0x1be] = (c) => {
    decodeModrm(c);
    setReg16(c, c.modReg, (readE8(c) << 24) >> 24);
  };
  t32[0x1be] = (c) => {
    decodeModrm(c);
    c.regs[c.modReg] = (readE8(c) << 24) >> 24;
  };
  t16[0x1bf] = (c) => {
    decodeModrm(c);
    setReg16(c, c.modReg, readE16(c));
  };
  t32[0x1bf] = (c) => {
    decodeModrm(c);
    c.regs[c.modReg] = (readE16(c) << 16) >> 16;
  };
  for (let cc = 0; cc < 16; cc++) {
    t16[0x190 + cc] = t32[0x190 + cc] = (c) => {
      decodeModrm(c);
      writeE8(c, condition(c, cc) ? 1 : 0);
    };
    t16[0x140 + cc] = (c) => {
      decodeModrm(c);
      const v = readE16(c);
      if (condition(c, cc)) setReg16(c, c.modReg, v);
    };
    t32[0x140 + cc] = (c) => {
      decodeModrm(c);
      const v = readE32(c);
      if (condition(c, cc)) c.regs[c.modReg] = v;
    };
  }
  const bts = [[0x1a3, 0], [0x1ab, 1], [0x1b3, 2], [0x1bb, 3]];
  for (const [op, kind] of bts) {
    t16[op] = (c) => {
      decodeModrm(c);
      bitOp(c, kind, c.regs[c.modReg] & 0xffff, true, 16);
    };
    t32[op] = (c) => {
      decodeModrm(c);
      bitOp(c, kind, c.regs[c.modReg], true, 32);
    };
  }
  t16[0x1ba] = (c) => {
    decodeModrm(c);
    if (c.modReg < 4) ud(c);
    bitOp(c, c.modReg - 4, fetch8(c), false, 16);
  };
  t32[0x1ba] = (c) => {
    decodeModrm(c);
    if (c.modReg < 4) ud(c);
    bitOp(c, c.modReg - 4, fetch8(c), false, 32);
  };
  const bsf = (c: CpuCore, v: number, size: number, reverse: boolean) => {
    if (v === 0) {
      setArithFlags(c, ZF, ZF);
      return;
    }
    const bit = reverse ? 31 - Math.clz32(v) : 31 - Math.clz32(v & -v);
    setResultFlags(c, 1, 8, 0);
    materializeFlags(c);
    c.flags &= ~ZF;
    if (size === 16) setReg16(c, c.modReg, bit);
    else c.regs[c.modReg] = bit;
  };
  t16[0x1bc] = (c) => {
    decodeModrm(c);
    bsf(c, readE16(c), 16, false);
  };
  t32[0x1bc] = (c) => {
    decodeModrm(c);
    bsf(c, readE32(c), 32, false);
  };
  t16[0x1bd] = (c) => {
    decodeModrm(c);
    bsf(c, readE16(c), 16, true);
  };
  t32[0x1bd] = (c) => {
    decodeModrm(c);
    bsf(c, readE32(c), 32, true);
  };
  // SHLD/SHRD: imm8 (A4/AC) or CL (A5/AD).
  for (const [op, left, imm] of [[0x1a4, 1, 1], [0x1a5, 1, 0], [0x1ac, 0, 1], [0x1ad, 0, 0]]) {
    t16[op] = (c) => {
      decodeModrm(c);
      const a = readE16(c);
      const n = (imm ? fetch8(c) : c.regs[ECX]) & 31;
      if (n !== 0) {
        probeE(c, 2);
        writeE16(c, shiftDouble(c, left === 1, a, c.regs[c.modReg] & 0xffff, n, 16));
      }
    };
    t32[op] = (c) => {
      decodeModrm(c);
      const a = readE32(c);
      const n = (imm ? fetch8(c) : c.regs[ECX]) & 31;
      if (n !== 0) {
        probeE(c, 4);
        writeE32(c, shiftDouble(c, left === 1, a, c.regs[c.modReg], n, 32));
      }
    };
  }
  // XADD.
  t16[0x1c0] = t32[0x1c0] = (c) => {
    decodeModrm(c);
    const a = readM8(c);
    const b = getReg8(c, c.modReg);
    const r = arith(c, 0, a, b, 8);
    // SRC <- DEST then DEST <- sum: with the same register twice the sum wins.
    if (c.modMod !== 3) writeE8(c, r);
    setReg8(c, c.modReg, a);
    if (c.modMod === 3) writeE8(c, r);
  };
  t16[0x1c1] = (c) => {
    decodeModrm(c);
    const a = readM16(c);
    const r = arith(c, 0, a, c.regs[c.modReg] & 0xffff, 16);
    if (c.modMod !== 3) writeE16(c, r);
    setReg16(c, c.modReg, a);
    if (c.modMod === 3) writeE16(c, r);
  };
  t32[0x1c1] = (c) => {
    decodeModrm(c);
    const a = readM32(c);
    const r = arith(c, 0, a, c.regs[c.modReg], 32);
    if (c.modMod !== 3) writeE32(c, r);
    c.regs[c.modReg] = a;
    if (c.modMod === 3) writeE32(c, r);
  };
  // CMPXCHG: the destination is written in both cases (as the locked bus cycle does).
  t16[0x1b0] = t32[0x1b0] = (c) => {
    decodeModrm(c);
    const d = readE8(c);
    arith(c, 7, c.regs[EAX] & 0xff, d, 8);
    if (getZF(c)) writeE8(c, getReg8(c, c.modReg));
    else {
      writeE8(c, d);
      setReg8(c, 0, d);
    }
  };
  t16[0x1b1] = (c) => {
    decodeModrm(c);
    const d = readE16(c);
    arith(c, 7, c.regs[EAX] & 0xffff, d, 16);
    if (getZF(c)) writeE16(c, c.regs[c.modReg]);
    else {
      writeE16(c, d);
      setReg16(c, EAX, d);
    }
  };
  t32[0x1b1] = (c) => {
    decodeModrm(c);
    const d = readE32(c);
    arith(c, 7, c.regs[EAX], d, 32);
    if (getZF(c)) writeE32(c, c.regs[c.modReg]);
    else {
      writeE32(c, d);
      c.regs[EAX] = d;
    }
  };
  t16[0x1c7] = t32[0x1c7] = (c) => { // CMPXCHG8B
    decodeModrm(c);
    if (c.modReg !== 1 || c.modMod === 3) ud(c);
    const r = c.regs;
    const off2 = c.addr32 ? (c.eaOff + 4) >>> 0 : (c.eaOff + 4) & 0xffff;
    checkWrite(c, c.eaSeg, c.eaOff, 8);
    const lo = read32(c, c.eaSeg, c.eaOff);
    const hi = read32(c, c.eaSeg, off2);
    if (lo === r[EAX] && hi === r[EDX]) {
      write32(c, c.eaSeg, c.eaOff, r[EBX]);
      write32(c, c.eaSeg, off2, r[ECX]);
      setArithFlags(c, ZF, ZF);
    } else {
      write32(c, c.eaSeg, c.eaOff, lo);
      write32(c, c.eaSeg, off2, hi);
      r[EAX] = lo;
      r[EDX] = hi;
      setArithFlags(c, ZF, 0);
    }
  };
  for (let reg = 0; reg < 8; reg++) {
    t16[0x1c8 + reg] = (c) => setReg16(c, reg, 0); // undefined; zero as P6 does
    t32[0x1c8 + reg] = (c) => {
      const v = c.regs[reg];
      c.regs[reg] = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
    };
  }
  // NOP Ev (0F 1F) and the hint space 0F 18..1F.
  for (let op = 0x118; op <= 0x11f; op++) {
    t16[op] = t32[op] = (c) => decodeModrm(c);
  }
  t16[0x10b] = t32[0x10b] = (c) => ud(c); // UD2
  // PREFETCH/PREFETCHW (0F 0D /r): a hint QEMU runs as a NOP on every model (Linux uses
  // PREFETCHW on AMD models such as qemu64); a register operand is #UD.
  t16[0x10d] = t32[0x10d] = (c) => {
    decodeModrm(c);
    if (c.modMod === 3) ud(c);
  };
  // EMMS: every x87 tag empty (#NM with CR0.EM or TS, as QEMU). Linux runs it on AMD models
  // (qemu64) in its FXSAVE-leak workaround, before FILD, even without the rest of MMX.
  t16[0x177] = t32[0x177] = (c) => {
    if ((c.cr0 & (CR0_EM | CR0_TS)) !== 0) fault(c, EXC_NM);
    c.fpu.tag = 0xffff;
  };
}
