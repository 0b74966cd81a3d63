// One-byte opcodes for arithmetic forms, data movement, the stack and flag instructions

import { arith, dec, inc } from "./alu.ts";
import {
  dataSeg,
  decodeModrm,
  decodeModrmByte,
  getReg8,
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
import { flagsForPush, popFlags } from "./far.ts";
import { getAF, getCF, getFlags, materializeFlags, setArithFlags } from "./flags.ts";
import {
  fetch16,
  fetch32,
  fetch8,
  read16,
  read32,
  read8,
  write16,
  write32,
  write8,
} from "./memory.ts";
import { isProtected, loadSeg } from "./segmentation.ts";
import { adjustSp, pop, pop16, pop32, push, push16, push32 } from "./stack.ts";
import {
  AF,
  CF,
  type CpuCore,
  CS,
  DF,
  EAX,
  EBP,
  EDX,
  ESP,
  EXC_BR,
  fault,
  gp,
  IF,
  IOPL,
  type OpHandler,
  SS,
  ud,
  VM,
} from "./state.ts";

/** ALU forms 00..3F: Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev / AL,Ib / eAX,Iv. */
function installArith(t16: OpHandler[], t32: OpHandler[]): void {
  for (let op = 0; op < 8; op++) {
    const b = op << 3;
    const store = op !== 7;
    t16[b] = t32[b] = (c) => {
      decodeModrm(c);
      const r = arith(c, op, store ? readM8(c) : readE8(c), getReg8(c, c.modReg), 8);
      if (store) writeE8(c, r);
    };
    t16[b + 1] = (c) => {
      const m = fetch8(c);
      if (m >= 0xc0) {
        const d = m & 7;
        const r = arith(c, op, c.regs[d] & 0xffff, c.regs[(m >> 3) & 7] & 0xffff, 16);
        if (store) setReg16(c, d, r);
        return;
      }
      decodeModrmByte(c, m);
      const r = arith(c, op, store ? readM16(c) : readE16(c), c.regs[c.modReg] & 0xffff, 16);
      if (store) writeE16(c, r);
    };
    t32[b + 1] = (c) => {
      const m = fetch8(c);
      if (m >= 0xc0) {
        const regs = c.regs;
        const d = m & 7;
        const r = arith(c, op, regs[d], regs[(m >> 3) & 7], 32);
        if (store) regs[d] = r;
        return;
      }
      decodeModrmByte(c, m);
      const r = arith(c, op, store ? readM32(c) : readE32(c), c.regs[c.modReg], 32);
      if (store) writeE32(c, r);
    };
    t16[b + 2] = t32[b + 2] = (c) => {
      decodeModrm(c);
      const r = arith(c, op, getReg8(c, c.modReg), readE8(c), 8);
      if (store) setReg8(c, c.modReg, r);
    };
    t16[b + 3] = (c) => {
      decodeModrm(c);
      const r = arith(c, op, c.regs[c.modReg] & 0xffff, readE16(c), 16);
      if (store) setReg16(c, c.modReg, r);
    };
    t32[b + 3] = (c) => {
      const m = fetch8(c);
      const regs = c.regs;
      const g = (m >> 3) & 7;
      if (m >= 0xc0) {
        const r = arith(c, op, regs[g], regs[m & 7], 32);
        if (store) regs[g] = r;
        return;
      }
      decodeModrmByte(c, m);
      const r = arith(c, op, regs[g], readE32(c), 32);
      if (store) regs[g] = r;
    };
    t16[b + 4] = t32[b + 4] = (c) => {
      const r = arith(c, op, c.regs[EAX] & 0xff, fetch8(c), 8);
      if (store) setReg8(c, 0, r);
    };
    t16[b + 5] = (c) => {
      const r = arith(c, op, c.regs[EAX] & 0xffff, fetch16(c), 16);
      if (store) setReg16(c, 0, r);
    };
    t32[b + 5] = (c) => {
      const r = arith(c, op, c.regs[EAX], fetch32(c), 32);
      if (store) c.regs[EAX] = r;
    };
  }
  // TEST
  t16[0x84] = t32[0x84] = (c) => {
    decodeModrm(c);
    arith(c, 4, readE8(c), getReg8(c, c.modReg), 8);
  };
  t16[0x85] = (c) => {
    decodeModrm(c);
    arith(c, 4, readE16(c), c.regs[c.modReg] & 0xffff, 16);
  };
  t32[0x85] = (c) => {
    decodeModrm(c);
    arith(c, 4, readE32(c), c.regs[c.modReg], 32);
  };
  t16[0xa8] = t32[0xa8] = (c) => void arith(c, 4, c.regs[EAX] & 0xff, fetch8(c), 8);
  t16[0xa9] = (c) => void arith(c, 4, c.regs[EAX] & 0xffff, fetch16(c), 16);
  t32[0xa9] = (c) => void arith(c, 4, c.regs[EAX], fetch32(c), 32);
}

/** BCD adjustments, CBW/CWD, SALC, LAHF/SAHF, flag bit instructions. */
function installMisc(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x27] = t32[0x27] = (c) => { // DAA
    const al = c.regs[EAX] & 0xff;
    const cf = getCF(c), af = getAF(c);
    let r = al, ncf = 0, naf = 0;
    if ((al & 0xf) > 9 || af) {
      r = (r + 6) & 0xff;
      naf = AF;
    }
    if (al > 0x99 || cf) {
      r = (r + 0x60) & 0xff;
      ncf = CF;
    } else if (naf && al + 6 > 0xff) {
      ncf = CF;
    }
    setReg8(c, 0, r);
    logicFlags8(c, r, ncf | naf);
  };
  t16[0x2f] = t32[0x2f] = (c) => { // DAS
    const al = c.regs[EAX] & 0xff;
    const cf = getCF(c), af = getAF(c);
    let r = al, ncf = 0, naf = 0;
    if ((al & 0xf) > 9 || af) {
      r = (r - 6) & 0xff;
      naf = AF;
    }
    if (al > 0x99 || cf) {
      r = (r - 0x60) & 0xff;
      ncf = CF;
    } else if (naf && al < 6) {
      ncf = CF;
    }
    setReg8(c, 0, r);
    logicFlags8(c, r, ncf | naf);
  };
  t16[0x37] = t32[0x37] = (c) => { // AAA
    const ax = c.regs[EAX] & 0xffff;
    if ((ax & 0xf) > 9 || getAF(c)) {
      const r = ((ax + 0x106) & 0xff00) | ((ax + 6) & 0x0f);
      setReg16(c, 0, r);
      logicFlags8(c, (ax + 6) & 0xff, AF | CF);
    } else {
      setReg16(c, 0, ax & 0xff0f);
      logicFlags8(c, ax & 0xff, 0);
    }
  };
  t16[0x3f] = t32[0x3f] = (c) => { // AAS
    const ax = c.regs[EAX] & 0xffff;
    if ((ax & 0xf) > 9 || getAF(c)) {
      const r = ((ax - 0x106) & 0xff00) | ((ax - 6) & 0x0f);
      setReg16(c, 0, r);
      logicFlags8(c, (ax - 6) & 0xff, AF | CF);
    } else {
      setReg16(c, 0, ax & 0xff0f);
      logicFlags8(c, ax & 0xff, 0);
    }
  };
  t16[0xd4] = t32[0xd4] = (c) => { // AAM
    const base = fetch8(c);
    if (base === 0) fault(c, 0);
    const al = c.regs[EAX] & 0xff;
    const r = al % base;
    setReg16(c, 0, (Math.floor(al / base) << 8) | r);
    logicFlags8(c, r, 0);
  };
  t16[0xd5] = t32[0xd5] = (c) => { // AAD
    const base = fetch8(c);
    const ax = c.regs[EAX];
    const r = ((ax & 0xff) + ((ax >> 8) & 0xff) * base) & 0xff;
    setReg16(c, 0, r);
    logicFlags8(c, r, 0);
  };
  t16[0xd6] = t32[0xd6] = (c) => setReg8(c, 0, getCF(c) ? 0xff : 0); // SALC
  t16[0x98] = (c) => setReg16(c, 0, (c.regs[EAX] << 24) >> 24);
  t32[0x98] = (c) => c.regs[EAX] = (c.regs[EAX] << 16) >> 16;
  t16[0x99] = (c) => setReg16(c, EDX, (c.regs[EAX] << 16) >> 31);
  t32[0x99] = (c) => c.regs[EDX] = c.regs[EAX] >> 31;
  t16[0x9e] = t32[0x9e] = (c) => setArithFlags(c, 0xd5, (c.regs[EAX] >> 8) & 0xd5); // SAHF
  t16[0x9f] = t32[0x9f] = (c) => setReg8(c, 4, (getFlags(c) & 0xd7) | 2); // LAHF
  t16[0xf5] = t32[0xf5] = (c) => setArithFlags(c, CF, getCF(c) ^ 1);
  t16[0xf8] = t32[0xf8] = (c) => setArithFlags(c, CF, 0);
  t16[0xf9] = t32[0xf9] = (c) => setArithFlags(c, CF, CF);
  t16[0xfc] = t32[0xfc] = (c) => void (c.flags &= ~DF);
  t16[0xfd] = t32[0xfd] = (c) => void (c.flags |= DF);
  t16[0xfa] = t32[0xfa] = (c) => { // CLI
    if (!ioplAllows(c)) gp(c, 0);
    c.flags &= ~IF;
  };
  t16[0xfb] = t32[0xfb] = (c) => { // STI
    if (!ioplAllows(c)) gp(c, 0);
    if ((c.flags & IF) === 0) {
      c.flags |= IF;
      c.shadow = true;
      c.attention = true;
    }
  };
  t16[0x9b] = t32[0x9b] = (c) => fpuWait(c);
}

/** The FWAIT hook: replaced by the FPU module. */
export let fpuWait: (c: CpuCore) => void = () => {};
/** Lets the FPU module install its WAIT behaviour. */
export function setFpuWait(f: (c: CpuCore) => void): void {
  fpuWait = f;
}

/** True when CLI/STI/IN/OUT are allowed without an I/O permission check. */
export function ioplAllows(c: CpuCore): boolean {
  const iopl = (c.flags & IOPL) >> 12;
  if ((c.flags & VM) !== 0) return iopl === 3;
  if (!isProtected(c)) return true;
  return c.cpl <= iopl;
}

function logicFlags8(c: CpuCore, r: number, cfaf: number): void {
  // SF, ZF, PF from an 8-bit result; OF cleared; CF and AF as given.
  arith(c, 1, r, 0, 8);
  materializeFlags(c);
  c.flags = (c.flags & ~(CF | AF)) | cfaf;
}

/** INC/DEC/PUSH/POP reg, PUSHA/POPA, PUSH imm, segment push/pop, BOUND. */
function installStack(t16: OpHandler[], t32: OpHandler[]): void {
  for (let r = 0; r < 8; r++) {
    t16[0x40 + r] = (c) => setReg16(c, r, inc(c, c.regs[r] & 0xffff, 16));
    t32[0x40 + r] = (c) => c.regs[r] = inc(c, c.regs[r], 32);
    t16[0x48 + r] = (c) => setReg16(c, r, dec(c, c.regs[r] & 0xffff, 16));
    t32[0x48 + r] = (c) => c.regs[r] = dec(c, c.regs[r], 32);
    t16[0x50 + r] = (c) => push16(c, c.regs[r]);
    t32[0x50 + r] = (c) => push32(c, c.regs[r]);
    t16[0x58 + r] = (c) => {
      const v = pop16(c);
      setReg16(c, r, v);
    };
    t32[0x58 + r] = (c) => {
      const v = pop32(c);
      c.regs[r] = v;
    };
  }
  t16[0x60] = (c) => {
    const sp = c.regs[ESP];
    for (let r = 0; r < 8; r++) push16(c, r === ESP ? sp : c.regs[r]);
  };
  t32[0x60] = (c) => {
    const sp = c.regs[ESP];
    for (let r = 0; r < 8; r++) push32(c, r === ESP ? sp : c.regs[r]);
  };
  t16[0x61] = (c) => {
    for (let r = 7; r >= 0; r--) {
      const v = pop16(c);
      if (r !== ESP) setReg16(c, r, v);
    }
  };
  t32[0x61] = (c) => {
    for (let r = 7; r >= 0; r--) {
      const v = pop32(c);
      if (r !== ESP) c.regs[r] = v;
    }
  };
  t16[0x62] = (c) => { // BOUND
    decodeModrm(c);
    if (c.modMod === 3) ud(c);
    const lo = (read16(c, c.eaSeg, c.eaOff) << 16) >> 16;
    const hi = (read16(c, c.eaSeg, (c.eaOff + 2) & (c.addr32 ? -1 : 0xffff)) << 16) >> 16;
    const v = (c.regs[c.modReg] << 16) >> 16;
    if (v < lo || v > hi) fault(c, EXC_BR);
  };
  t32[0x62] = (c) => {
    decodeModrm(c);
    if (c.modMod === 3) ud(c);
    const lo = read32(c, c.eaSeg, c.eaOff);
    const hi = read32(c, c.eaSeg, ((c.eaOff + 4) & (c.addr32 ? -1 : 0xffff)) >>> 0);
    const v = c.regs[c.modReg];
    if (v < lo || v > hi) fault(c, EXC_BR);
  };
  t16[0x68] = (c) => push16(c, fetch16(c));
  t32[0x68] = (c) => push32(c, fetch32(c));
  t16[0x6a] = (c) => push16(c, (fetch8(c) << 24) >> 24);
  t32[0x6a] = (c) => push32(c, (fetch8(c) << 24) >> 24);
  const segPush = [[0x06, 0], [0x0e, 1], [0x16, 2], [0x1e, 3], [0x1a0, 4], [0x1a8, 5]];
  for (const [op, s] of segPush) {
    t16[op] = (c) => push16(c, c.segSel[s]);
    t32[op] = (c) => pushSeg32(c, c.segSel[s]);
  }
  const segPop = [[0x07, 0], [0x17, 2], [0x1f, 3], [0x1a1, 4], [0x1a9, 5]];
  for (const [op, s] of segPop) {
    t16[op] = (c) => {
      loadSeg(c, s, peekSel(c));
      adjustSp(c, 2);
      if (s === SS) inhibit(c);
    };
    t32[op] = (c) => {
      loadSeg(c, s, peekSel(c));
      adjustSp(c, 4);
      if (s === SS) inhibit(c);
    };
  }
  t16[0x9c] = t32[0x9c] = (c) => {
    if ((c.flags & VM) !== 0 && (c.flags & IOPL) !== IOPL) gp(c, 0);
    push(c, flagsForPush(c));
  };
  t16[0x9d] = t32[0x9d] = (c) => {
    if ((c.flags & VM) !== 0 && (c.flags & IOPL) !== IOPL) gp(c, 0);
    const v = pop(c);
    popFlags(c, c.op32 ? v : (getFlags(c) & 0xffff0000) | (v & 0xffff), c.op32);
  };
  t16[0xc9] = (c) => { // LEAVE
    const bp = c.stack32 ? c.regs[EBP] >>> 0 : c.regs[EBP] & 0xffff;
    const v = read16(c, SS, bp);
    if (c.stack32) c.regs[ESP] = (bp + 2) | 0;
    else setReg16(c, ESP, bp + 2);
    setReg16(c, EBP, v);
  };
  t32[0xc9] = (c) => {
    const bp = c.stack32 ? c.regs[EBP] >>> 0 : c.regs[EBP] & 0xffff;
    const v = read32(c, SS, bp);
    if (c.stack32) c.regs[ESP] = (bp + 4) | 0;
    else setReg16(c, ESP, bp + 4);
    c.regs[EBP] = v;
  };
  t16[0xc8] = (c) => enter(c, false);
  t32[0xc8] = (c) => enter(c, true);
}

function enter(c: CpuCore, op32: boolean): void {
  const size = fetch16(c);
  const level = fetch8(c) & 31;
  const s = op32 ? 4 : 2;
  const spMask = c.stack32 ? -1 : 0xffff;
  let sp = c.regs[ESP];
  const bp = c.regs[EBP];
  const wr = (v: number) => {
    sp = (sp - s) & spMask;
    if (op32) write32(c, SS, sp >>> 0, v);
    else write16(c, SS, sp >>> 0, v);
  };
  wr(bp);
  const frame = sp;
  let b = bp;
  for (let i = 1; i < level; i++) {
    b = (b - s) & spMask;
    wr(op32 ? read32(c, SS, b >>> 0) : read16(c, SS, b >>> 0));
  }
  if (level > 0) wr(frame);
  sp = (sp - size) & spMask;
  if (op32) c.regs[EBP] = frame;
  else setReg16(c, EBP, frame);
  if (c.stack32) c.regs[ESP] = sp;
  else setReg16(c, ESP, sp);
}

function pushSeg32(c: CpuCore, sel: number): void {
  // A 32-bit segment push writes only the low word on P6 (the upper half is unchanged).
  const sp = c.stack32 ? (c.regs[ESP] - 4) >>> 0 : (c.regs[ESP] - 4) & 0xffff;
  write16(c, SS, sp, sel);
  adjustSp(c, -4);
}

function peekSel(c: CpuCore): number {
  const sp = c.stack32 ? c.regs[ESP] >>> 0 : c.regs[ESP] & 0xffff;
  return read16(c, SS, sp);
}

/** Blocks interrupts for one instruction (after MOV SS/POP SS). */
export function inhibit(c: CpuCore): void {
  c.shadow = true;
  c.attention = true;
}

/** MOV forms, XCHG, LEA, segment moves, moffs, immediates, XLAT, LES/LDS. */
function installMov(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x88] = t32[0x88] = (c) => {
    decodeModrm(c);
    writeE8(c, getReg8(c, c.modReg));
  };
  t16[0x89] = (c) => {
    const m = fetch8(c);
    if (m >= 0xc0) {
      setReg16(c, m & 7, c.regs[(m >> 3) & 7]);
      return;
    }
    decodeModrmByte(c, m);
    write16(c, c.eaSeg, c.eaOff, c.regs[(m >> 3) & 7]);
  };
  t32[0x89] = (c) => {
    const m = fetch8(c);
    if (m >= 0xc0) {
      c.regs[m & 7] = c.regs[(m >> 3) & 7];
      return;
    }
    decodeModrmByte(c, m);
    write32(c, c.eaSeg, c.eaOff, c.regs[(m >> 3) & 7]);
  };
  t16[0x8a] = t32[0x8a] = (c) => {
    decodeModrm(c);
    setReg8(c, c.modReg, readE8(c));
  };
  t16[0x8b] = (c) => {
    const m = fetch8(c);
    if (m >= 0xc0) {
      setReg16(c, (m >> 3) & 7, c.regs[m & 7]);
      return;
    }
    decodeModrmByte(c, m);
    setReg16(c, (m >> 3) & 7, read16(c, c.eaSeg, c.eaOff));
  };
  t32[0x8b] = (c) => {
    const m = fetch8(c);
    if (m >= 0xc0) {
      c.regs[(m >> 3) & 7] = c.regs[m & 7];
      return;
    }
    decodeModrmByte(c, m);
    c.regs[(m >> 3) & 7] = read32(c, c.eaSeg, c.eaOff);
  };
  t16[0x8c] = (c) => {
    decodeModrm(c);
    if (c.modReg > 5 || (c.model.family <= 2 && c.modReg > 3)) ud(c);
    writeE16(c, c.segSel[c.modReg]);
  };
  t32[0x8c] = (c) => {
    decodeModrm(c);
    if (c.modReg > 5) ud(c);
    if (c.modMod === 3) c.regs[c.modRm] = c.segSel[c.modReg];
    else writeE16(c, c.segSel[c.modReg]);
  };
  t16[0x8e] = t32[0x8e] = (c) => {
    decodeModrm(c);
    const s = c.modReg;
    if (s > 5 || s === CS || (c.model.family <= 2 && s > 3)) ud(c);
    loadSeg(c, s, readE16(c));
    if (s === SS) inhibit(c);
  };
  t16[0x8d] = (c) => {
    decodeModrm(c);
    if (c.modMod === 3) ud(c);
    setReg16(c, c.modReg, c.eaOff);
  };
  t32[0x8d] = (c) => {
    decodeModrm(c);
    if (c.modMod === 3) ud(c);
    c.regs[c.modReg] = c.eaOff;
  };
  t16[0x86] = t32[0x86] = (c) => {
    decodeModrm(c);
    const a = readE8(c);
    writeE8(c, getReg8(c, c.modReg));
    setReg8(c, c.modReg, a);
  };
  t16[0x87] = (c) => {
    decodeModrm(c);
    const a = readE16(c);
    writeE16(c, c.regs[c.modReg]);
    setReg16(c, c.modReg, a);
  };
  t32[0x87] = (c) => {
    decodeModrm(c);
    const a = readE32(c);
    writeE32(c, c.regs[c.modReg]);
    c.regs[c.modReg] = a;
  };
  for (let r = 1; r < 8; r++) {
    t16[0x90 + r] = (c) => {
      const a = c.regs[EAX];
      setReg16(c, EAX, c.regs[r]);
      setReg16(c, r, a);
    };
    t32[0x90 + r] = (c) => {
      const a = c.regs[EAX];
      c.regs[EAX] = c.regs[r];
      c.regs[r] = a;
    };
  }
  t16[0x90] = t32[0x90] = (c) => {
    if (c.rep === 0xf3) {
      // PAUSE: a spin loop; let the loop look around, and with several CPUs let another
      // one run (what the spinner waits for is usually another CPU's store).
      c.attention = true;
      c.yieldRequested = c.yieldOnPause;
    }
  };
  const moffs = (c: CpuCore) => (c.addr32 ? fetch32(c) >>> 0 : fetch16(c));
  t16[0xa0] = t32[0xa0] = (c) => setReg8(c, 0, read8(c, dataSeg(c), moffs(c)));
  t16[0xa1] = (c) => setReg16(c, 0, read16(c, dataSeg(c), moffs(c)));
  t32[0xa1] = (c) => c.regs[EAX] = read32(c, dataSeg(c), moffs(c));
  t16[0xa2] = t32[0xa2] = (c) => write8(c, dataSeg(c), moffs(c), c.regs[EAX]);
  t16[0xa3] = (c) => write16(c, dataSeg(c), moffs(c), c.regs[EAX]);
  t32[0xa3] = (c) => write32(c, dataSeg(c), moffs(c), c.regs[EAX]);
  for (let r = 0; r < 8; r++) {
    t16[0xb0 + r] = t32[0xb0 + r] = (c) => setReg8(c, r, fetch8(c));
    t16[0xb8 + r] = (c) => setReg16(c, r, fetch16(c));
    t32[0xb8 + r] = (c) => c.regs[r] = fetch32(c);
  }
  t16[0xc6] = t32[0xc6] = (c) => {
    decodeModrm(c);
    if (c.modReg !== 0) ud(c);
    writeE8(c, fetch8(c));
  };
  t16[0xc7] = (c) => {
    decodeModrm(c);
    if (c.modReg !== 0) ud(c);
    writeE16(c, fetch16(c));
  };
  t32[0xc7] = (c) => {
    decodeModrm(c);
    if (c.modReg !== 0) ud(c);
    writeE32(c, fetch32(c));
  };
  // POP Ev computes a stack-relative address after the pop; a faulting store undoes it
  // (the 286 keeps SP popped).
  const popEv = (c: CpuCore, op32: boolean) => {
    const modrmAt = c.eip;
    decodeModrm(c);
    if (c.modReg !== 0) ud(c);
    const sp = c.regs[ESP];
    const v = op32 ? pop32(c) : pop16(c);
    try {
      if (c.modMod !== 3 && c.addr32) {
        c.eip = modrmAt;
        decodeModrm(c);
      }
      if (op32) writeE32(c, v);
      else writeE16(c, v);
    } catch (e) {
      if (c.model.family > 2) c.regs[ESP] = sp;
      throw e;
    }
  };
  t16[0x8f] = (c) => popEv(c, false);
  t32[0x8f] = (c) => popEv(c, true);
  t16[0xd7] = t32[0xd7] = (c) => { // XLAT
    const off = c.addr32
      ? (c.regs[3] + (c.regs[EAX] & 0xff)) >>> 0
      : (c.regs[3] + (c.regs[EAX] & 0xff)) & 0xffff;
    setReg8(c, 0, read8(c, dataSeg(c), off));
  };
  const lxs = (op: number, s: number) => {
    t16[op] = (c) => {
      decodeModrm(c);
      if (c.modMod === 3) ud(c);
      const off = read16(c, c.eaSeg, c.eaOff);
      const sel = read16(c, c.eaSeg, (c.eaOff + 2) & (c.addr32 ? -1 : 0xffff));
      loadSeg(c, s, sel);
      setReg16(c, c.modReg, off);
      if (s === SS) inhibit(c);
    };
    t32[op] = (c) => {
      decodeModrm(c);
      if (c.modMod === 3) ud(c);
      const off = read32(c, c.eaSeg, c.eaOff);
      const sel = read16(c, c.eaSeg, ((c.eaOff + 4) & (c.addr32 ? -1 : 0xffff)) >>> 0);
      loadSeg(c, s, sel);
      c.regs[c.modReg] = off;
      if (s === SS) inhibit(c);
    };
  };
  lxs(0xc4, 0);
  lxs(0xc5, 3);
  lxs(0x1b2, 2);
  lxs(0x1b4, 4);
  lxs(0x1b5, 5);
}

/** Installs the opcodes of this module into both tables. */
export function installBasic(t16: OpHandler[], t32: OpHandler[]): void {
  installArith(t16, t32);
  installMisc(t16, t32);
  installStack(t16, t32);
  installMov(t16, t32);
}
