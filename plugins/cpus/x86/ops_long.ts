// 64-bit mode one-byte opcodes: ALU, moves, the 64-bit stack, near branches (sized by REX.W/66h)

import { arith, dec, inc } from "./alu.ts";
import { decodeModrm, getReg8 } from "./decode.ts";
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
import { flagsForPush, jmpFar, popFlags } from "./far.ts";
import { condition, getCF, getFlags, materializeFlags } from "./flags.ts";
import { fetch32, fetch8 } from "./memory.ts";
import { canonical, linAt } from "./paging_long.ts";
import {
  ARITH_FLAGS,
  CF,
  type CpuCore,
  EAX,
  EBP,
  EDX,
  ESP,
  fault,
  type OpHandler,
  PF,
  SEG_LIN,
  SF,
  ud,
  ZF,
} from "./state.ts";

/**
 * Group-1 operation `op` on (alo, ahi) and (blo, bhi) at `size` bits; the result's upper
 * half in `c.tHi`. Below 64 bits the lazy-flag ALU does it; at 64 the six flags are
 * computed at once from the halves (CF and OF from the upper half with the low half's
 * carry or borrow, ZF from both, PF and AF from the low byte).
 */
export function alu(
  c: CpuCore,
  op: number,
  size: number,
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
): number {
  if (size !== 64) {
    c.tHi = 0;
    return arith(c, op, alo, blo, size);
  }
  if (op === 1 || op === 4 || op === 6) {
    const lo = op === 1 ? alo | blo : op === 4 ? alo & blo : alo ^ blo;
    const hi = op === 1 ? ahi | bhi : op === 4 ? ahi & bhi : ahi ^ bhi;
    setFlags64(c, lo, hi, 0);
    c.tHi = hi;
    return lo;
  }
  const cin = op === 2 || op === 3 ? getCF(c) : 0;
  let lo: number, hi: number, cf: number, of: number;
  if (op === 0 || op === 2) {
    const l = (alo >>> 0) + (blo >>> 0) + cin;
    const h = (ahi >>> 0) + (bhi >>> 0) + (l > 0xffffffff ? 1 : 0);
    lo = l | 0;
    hi = h | 0;
    cf = h > 0xffffffff ? 1 : 0;
    of = ((ahi ^ hi) & (bhi ^ hi)) >>> 31;
  } else {
    const l = (alo >>> 0) - (blo >>> 0) - cin;
    const h = (ahi >>> 0) - (bhi >>> 0) - (l < 0 ? 1 : 0);
    lo = l | 0;
    hi = h | 0;
    cf = h < 0 ? 1 : 0;
    of = ((ahi ^ bhi) & (ahi ^ hi)) >>> 31;
  }
  c.flags = (c.flags & ~ARITH_FLAGS) | cf | (of << 11) | PF_OF(lo) | ((alo ^ blo ^ lo) & 0x10) |
    ((lo | hi) === 0 ? ZF : 0) | (hi < 0 ? SF : 0);
  c.lzMask = 0;
  if (op === 7) {
    c.tHi = ahi;
    return alo;
  }
  c.tHi = hi;
  return lo;
}

/** Sets SF, ZF, PF from the 64-bit result (lo, hi) and CF/OF/AF from `other`. */
export function setFlags64(c: CpuCore, lo: number, hi: number, other: number): void {
  materializeFlags(c);
  let f = other | (PF_OF(lo));
  if ((lo | hi) === 0) f |= ZF;
  if (hi < 0) f |= SF;
  c.flags = (c.flags & ~ARITH_FLAGS) | f;
}

function PF_OF(lo: number): number {
  let n = lo & 0xff;
  n ^= n >> 4;
  n ^= n >> 2;
  n ^= n >> 1;
  return (n & 1) === 0 ? PF : 0;
}

/** INC (`d` 1) or DEC (`d` -1) at `size` bits; CF is kept. */
export function incDec(c: CpuCore, size: number, lo: number, hi: number, d: number): number {
  if (size !== 64) {
    c.tHi = 0;
    return d > 0 ? inc(c, lo, size) : dec(c, lo, size);
  }
  const cf = getCF(c);
  const r = alu(c, d > 0 ? 0 : 5, 64, lo, hi, 1, 0);
  c.flags = (c.flags & ~CF) | cf;
  return r;
}

// ---- the 64-bit stack ----

/** Pushes (lo, hi) at `size` bits (64, or 16 with 66h) through RSP. */
export function pushL(c: CpuCore, lo: number, hi: number, size = 64): void {
  const n = size >> 3;
  const sp = c.regs[ESP];
  const nlo = (sp - n) | 0;
  const nhi = (c.regsHi[ESP] - ((sp >>> 0) < n ? 1 : 0)) | 0;
  c.eaStack = true;
  linAt(c, nhi);
  writeMem(c, SEG_LIN, nlo, size, lo, hi);
  c.regs[ESP] = nlo;
  c.regsHi[ESP] = nhi;
}

/** Reads the value at RSP + `off` of `size` bits (upper half in `c.tHi`) without popping. */
export function peekL(c: CpuCore, off: number, size = 64): number {
  const sp = c.regs[ESP];
  const t = (sp >>> 0) + off;
  const hi = (c.regsHi[ESP] + (t > 0xffffffff ? 1 : 0)) | 0;
  c.eaStack = true;
  linAt(c, hi);
  return readMem(c, SEG_LIN, t | 0, size);
}

/** Adds `n` to RSP. */
export function addRsp(c: CpuCore, n: number): void {
  const t = (c.regs[ESP] >>> 0) + n;
  c.regs[ESP] = t | 0;
  c.regsHi[ESP] = (c.regsHi[ESP] + (t > 0xffffffff ? 1 : t < 0 ? -1 : 0)) | 0;
}

/** Pops `size` bits; the upper half in `c.tHi`. */
export function popL(c: CpuCore, size = 64): number {
  const v = peekL(c, 0, size);
  const hi = c.tHi;
  addRsp(c, size >> 3);
  c.tHi = hi;
  return v;
}

// ---- near branches ----

/** Moves RIP to (lo, hi); #GP(0) when that is not canonical. */
export function setRip(c: CpuCore, lo: number, hi: number): void {
  if (!canonical(hi)) fault(c, 13, 0);
  if (hi !== c.ripHi) {
    c.ripHi = hi;
    c.fetchLen = 0;
  }
  c.eip = lo | 0;
}

/** RIP + `rel` (a sign-extended displacement). */
export function jumpRel(c: CpuCore, rel: number): void {
  const t = (c.eip >>> 0) + rel;
  setRip(c, t | 0, (c.ripHi + (t > 0xffffffff ? 1 : t < 0 ? -1 : 0)) | 0);
}

/** Pushes the return RIP. */
export function pushRip(c: CpuCore): void {
  pushL(c, c.eip, c.ripHi);
}

function installAlu(t: OpHandler[]): void {
  for (let op = 0; op < 8; op++) {
    const b = op << 3;
    const store = op !== 7;
    const rmReg = (c: CpuCore, size: number) => {
      decodeModrm(c);
      const a = store ? readM(c, size) : readE(c, size);
      const ah = c.tHi;
      const v = getR(c, c.modReg, size);
      const r = alu(c, op, size, a, ah, v, c.tHi);
      if (store) writeE(c, size, r, c.tHi);
    };
    const regRm = (c: CpuCore, size: number) => {
      decodeModrm(c);
      const v = readE(c, size);
      const vh = c.tHi;
      const a = getR(c, c.modReg, size);
      const r = alu(c, op, size, a, c.tHi, v, vh);
      if (store) setR(c, c.modReg, size, r, c.tHi);
    };
    t[b] = (c) => rmReg(c, 8);
    t[b + 1] = (c) => rmReg(c, osz(c));
    t[b + 2] = (c) => regRm(c, 8);
    t[b + 3] = (c) => regRm(c, osz(c));
    const accImm = (c: CpuCore, size: number) => {
      const imm = fetchImm(c, size);
      const ih = c.tHi;
      const a = getR(c, EAX, size);
      const r = alu(c, op, size, a, c.tHi, imm, ih);
      if (store) setR(c, EAX, size, r, c.tHi);
    };
    t[b + 4] = (c) => accImm(c, 8);
    t[b + 5] = (c) => accImm(c, osz(c));
  }
  // Group 1: 80 Eb,Ib; 81 Ev,Iz; 83 Ev,Ib (sign-extended). 82 is #UD in 64-bit mode.
  const grp1 = (c: CpuCore, size: number, immSize: number) => {
    c.immLen = immSize === 64 ? 4 : immSize >> 3;
    decodeModrm(c);
    const op = c.modReg & 7;
    const a = op === 7 ? readE(c, size) : readM(c, size);
    const ah = c.tHi;
    let imm: number, ih: number;
    if (immSize === 8 && size !== 8) {
      imm = (fetch8(c) << 24) >> 24;
      ih = imm >> 31;
      if (size === 16) imm &= 0xffff;
      else if (size === 32) ih = 0;
    } else {
      imm = fetchImm(c, immSize);
      ih = c.tHi;
    }
    const r = alu(c, op, size, a, ah, imm, ih);
    if (op !== 7) writeE(c, size, r, c.tHi);
  };
  t[0x80] = (c) => grp1(c, 8, 8);
  t[0x81] = (c) => {
    const s = osz(c);
    grp1(c, s, s);
  };
  t[0x83] = (c) => grp1(c, osz(c), 8);
  t[0x84] = (c) => {
    decodeModrm(c);
    const a = readE(c, 8);
    alu(c, 4, 8, a, 0, getReg8(c, c.modReg), 0);
  };
  t[0x85] = (c) => {
    const s = osz(c);
    decodeModrm(c);
    const a = readE(c, s);
    const ah = c.tHi;
    const b = getR(c, c.modReg, s);
    alu(c, 4, s, a, ah, b, c.tHi);
  };
  t[0xa8] = (c) => void alu(c, 4, 8, c.regs[EAX] & 0xff, 0, fetch8(c), 0);
  t[0xa9] = (c) => {
    const s = osz(c);
    const imm = fetchImm(c, s);
    const ih = c.tHi;
    const a = getR(c, EAX, s);
    alu(c, 4, s, a, c.tHi, imm, ih);
  };
}

function installMoves(t: OpHandler[]): void {
  t[0x88] = (c) => {
    decodeModrm(c);
    writeE(c, 8, getReg8(c, c.modReg), 0);
  };
  t[0x89] = (c) => {
    const s = osz(c);
    decodeModrm(c);
    const v = getR(c, c.modReg, s);
    writeE(c, s, v, c.tHi);
  };
  t[0x8a] = (c) => {
    decodeModrm(c);
    setR(c, c.modReg, 8, readE(c, 8), 0);
  };
  t[0x8b] = (c) => {
    const s = osz(c);
    decodeModrm(c);
    const v = readE(c, s);
    setR(c, c.modReg, s, v, c.tHi);
  };
  t[0x63] = (c) => { // MOVSXD
    const s = osz(c);
    decodeModrm(c);
    const v = readE(c, 32);
    setR(c, c.modReg, s, v, v >> 31);
  };
  t[0x8d] = (c) => { // LEA: no segment base
    const s = osz(c);
    const save = c.segOvr;
    c.segOvr = -1;
    decodeModrm(c);
    c.segOvr = save;
    if (c.modMod === 3) ud(c);
    setR(c, c.modReg, s, c.eaOff, c.eaHi);
  };
  t[0x86] = (c) => {
    decodeModrm(c);
    const a = readM(c, 8);
    writeE(c, 8, getReg8(c, c.modReg), 0);
    setR(c, c.modReg, 8, a, 0);
  };
  t[0x87] = (c) => {
    const s = osz(c);
    decodeModrm(c);
    const a = readM(c, s);
    const ah = c.tHi;
    const v = getR(c, c.modReg, s);
    writeE(c, s, v, c.tHi);
    setR(c, c.modReg, s, a, ah);
  };
  for (let i = 0; i < 8; i++) {
    t[0x90 + i] = (c) => {
      const r = i | ((c.rex & 1) << 3);
      if (r === 0) {
        if (c.rep === 0xf3) {
          c.attention = true;
          c.yieldRequested = c.yieldOnPause;
        }
        return;
      }
      const s = osz(c);
      const a = getR(c, EAX, s);
      const ah = c.tHi;
      const v = getR(c, r, s);
      setR(c, EAX, s, v, c.tHi);
      setR(c, r, s, a, ah);
    };
    t[0xb0 + i] = (c) => setR(c, i | ((c.rex & 1) << 3), 8, fetch8(c), 0);
    t[0xb8 + i] = (c) => {
      const r = i | ((c.rex & 1) << 3);
      const s = osz(c);
      if (s === 64) {
        const lo = fetch32(c);
        setR(c, r, 64, lo, fetch32(c));
      } else setR(c, r, s, fetchImm(c, s), 0);
    };
  }
  t[0xc6] = (c) => {
    c.immLen = 1;
    decodeModrm(c);
    if ((c.modReg & 7) !== 0) ud(c);
    writeE(c, 8, fetch8(c), 0);
  };
  t[0xc7] = (c) => {
    const s = osz(c);
    c.immLen = s === 16 ? 2 : 4;
    decodeModrm(c);
    if ((c.modReg & 7) !== 0) ud(c);
    const v = fetchImm(c, s);
    writeE(c, s, v, c.tHi);
  };
  // MOV AL/eAX <-> moffs64 (a 64-bit absolute address; 32-bit with 67h).
  const moffs = (c: CpuCore) => {
    let lo = fetch32(c);
    let hi = c.addrOvr ? 0 : fetch32(c);
    if (c.segOvr >= 4) {
      const t0 = (lo >>> 0) + (c.segBase[c.segOvr] >>> 0);
      hi = (hi + c.segBaseHi[c.segOvr] + (t0 > 0xffffffff ? 1 : 0)) | 0;
      lo = t0 | 0;
    }
    c.eaStack = false;
    linAt(c, hi);
    return lo;
  };
  t[0xa0] = (c) => setR(c, EAX, 8, readMem(c, SEG_LIN, moffs(c), 8), 0);
  t[0xa1] = (c) => {
    const s = osz(c);
    const v = readMem(c, SEG_LIN, moffs(c), s);
    setR(c, EAX, s, v, c.tHi);
  };
  t[0xa2] = (c) => writeMem(c, SEG_LIN, moffs(c), 8, c.regs[EAX], 0);
  t[0xa3] = (c) => {
    const s = osz(c);
    const off = moffs(c);
    writeMem(c, SEG_LIN, off, s, c.regs[EAX], c.regsHi[EAX]);
  };
  t[0x98] = (c) => { // CBW / CWDE / CDQE
    const s = osz(c);
    const a = c.regs[EAX];
    if (s === 64) setR(c, EAX, 64, a, a >> 31);
    else if (s === 32) setR(c, EAX, 32, (a << 16) >> 16, 0);
    else setR(c, EAX, 16, (a << 24) >> 24, 0);
  };
  t[0x99] = (c) => { // CWD / CDQ / CQO
    const s = osz(c);
    if (s === 64) {
      const h = c.regsHi[EAX] >> 31;
      setR(c, EDX, 64, h, h);
    } else if (s === 32) setR(c, EDX, 32, c.regs[EAX] >> 31, 0);
    else setR(c, EDX, 16, (c.regs[EAX] << 16) >> 31, 0);
  };
  t[0xd7] = (c) => { // XLAT: [RBX + AL]
    const base = c.regs[3];
    const t0 = (base >>> 0) + (c.regs[EAX] & 0xff);
    let hi = c.addrOvr ? 0 : (c.regsHi[3] + (t0 > 0xffffffff ? 1 : 0)) | 0;
    let lo = c.addrOvr ? t0 | 0 : t0 | 0;
    if (c.segOvr >= 4) {
      const t1 = (lo >>> 0) + (c.segBase[c.segOvr] >>> 0);
      hi = (hi + c.segBaseHi[c.segOvr] + (t1 > 0xffffffff ? 1 : 0)) | 0;
      lo = t1 | 0;
    }
    c.eaStack = false;
    linAt(c, hi);
    setR(c, EAX, 8, readMem(c, SEG_LIN, lo, 8), 0);
  };
}

function installStack(t: OpHandler[]): void {
  for (let i = 0; i < 8; i++) {
    t[0x50 + i] = (c) => {
      const r = i | ((c.rex & 1) << 3);
      if (c.op32 || (c.rex & 8) !== 0) pushL(c, c.regs[r], c.regsHi[r]);
      else pushL(c, c.regs[r], 0, 16);
    };
    t[0x58 + i] = (c) => {
      const r = i | ((c.rex & 1) << 3);
      if (c.op32 || (c.rex & 8) !== 0) {
        const v = popL(c);
        setR(c, r, 64, v, c.tHi);
      } else setR(c, r, 16, popL(c, 16), 0);
    };
  }
  const stackSize = (c: CpuCore) => (c.op32 || (c.rex & 8) !== 0 ? 64 : 16);
  t[0x68] = (c) => {
    const s = stackSize(c);
    const v = s === 64 ? fetch32(c) : fetchImm(c, 16);
    pushL(c, v, v >> 31, s);
  };
  t[0x6a] = (c) => {
    const v = (fetch8(c) << 24) >> 24;
    pushL(c, v, v >> 31, stackSize(c));
  };
  t[0x8f] = (c) => { // POP Ev: the address is computed after RSP moved
    const s = stackSize(c);
    const at = c.eip;
    const m = fetch8(c);
    if (((m >> 3) & 7) !== 0) ud(c);
    const sp = c.regs[ESP], sph = c.regsHi[ESP];
    const v = popL(c, s);
    const vh = c.tHi;
    try {
      c.eip = at;
      decodeModrm(c);
      writeE(c, s, v, vh);
    } catch (e) {
      c.regs[ESP] = sp;
      c.regsHi[ESP] = sph;
      throw e;
    }
  };
  t[0xc9] = (c) => { // LEAVE
    const s = stackSize(c);
    c.regs[ESP] = c.regs[EBP];
    c.regsHi[ESP] = c.regsHi[EBP];
    const v = popL(c, s);
    setR(c, EBP, s, v, c.tHi);
  };
  t[0xc8] = (c) => { // ENTER
    const size = fetch8(c) | (fetch8(c) << 8);
    const level = fetch8(c) & 31;
    const s = stackSize(c);
    const n = s >> 3;
    const bp = c.regs[EBP], bph = c.regsHi[EBP];
    pushL(c, bp, bph, s);
    const frame = c.regs[ESP], frameHi = c.regsHi[ESP];
    let b = bp, bh = bph;
    for (let i = 1; i < level; i++) {
      const t0 = (b >>> 0) - n;
      bh = (bh - (t0 < 0 ? 1 : 0)) | 0;
      b = t0 | 0;
      c.eaStack = true;
      linAt(c, bh);
      const v = readMem(c, SEG_LIN, b, s);
      pushL(c, v, c.tHi, s);
    }
    if (level > 0) pushL(c, frame, frameHi, s);
    addRsp(c, -size);
    setR(c, EBP, s === 64 ? 64 : 16, frame, frameHi);
  };
  t[0x9c] = (c) => { // PUSHFQ: VM and RF read as 0
    pushL(c, flagsForPush(c) & ~0x30000, 0, stackSize(c));
  };
  t[0x9d] = (c) => { // POPFQ
    const v = popL(c, stackSize(c));
    popFlags(c, stackSize(c) === 64 ? v : (getFlags(c) & 0xffff0000) | (v & 0xffff), true);
  };
}

function installBranches(t: OpHandler[]): void {
  for (let cc = 0; cc < 16; cc++) {
    t[0x70 + cc] = (c) => {
      const d = (fetch8(c) << 24) >> 24;
      if (condition(c, cc)) jumpRel(c, d);
    };
    t[0x180 + cc] = (c) => {
      const d = fetch32(c);
      if (condition(c, cc)) jumpRel(c, d);
    };
  }
  t[0xeb] = (c) => jumpRel(c, (fetch8(c) << 24) >> 24);
  t[0xe9] = (c) => jumpRel(c, fetch32(c));
  t[0xe8] = (c) => {
    const d = fetch32(c);
    pushRip(c);
    jumpRel(c, d);
  };
  t[0xc3] = (c) => {
    const lo = peekL(c, 0);
    const hi = c.tHi;
    setRip(c, lo, hi);
    addRsp(c, 8);
  };
  t[0xc2] = (c) => {
    const n = fetch8(c) | (fetch8(c) << 8);
    const lo = peekL(c, 0);
    const hi = c.tHi;
    setRip(c, lo, hi);
    addRsp(c, 8 + n);
  };
  // LOOP/LOOPE/LOOPNE/JRCXZ: RCX, or ECX with 67h.
  for (let k = 0; k < 4; k++) {
    t[0xe0 + k] = (c) => {
      const d = (fetch8(c) << 24) >> 24;
      const a32 = c.addrOvr;
      let zero: boolean;
      if (k === 3) {
        zero = c.regs[1] === 0 && (a32 || c.regsHi[1] === 0);
        if (zero) jumpRel(c, d);
        return;
      }
      const lo = c.regs[1];
      const nlo = (lo - 1) | 0;
      if (a32) {
        c.regs[1] = nlo;
        c.regsHi[1] = 0;
      } else {
        c.regs[1] = nlo;
        if (lo === 0) c.regsHi[1] = (c.regsHi[1] - 1) | 0;
      }
      zero = nlo === 0 && (a32 || c.regsHi[1] === 0);
      if (zero) return;
      if (k === 0 && condition(c, 4)) return;
      if (k === 1 && !condition(c, 4)) return;
      jumpRel(c, d);
    };
  }
}

/** FE/FF: INC, DEC, CALL, JMP, PUSH (far forms in ops_long_sys.ts). */
function installGroup45(t: OpHandler[]): void {
  t[0xfe] = (c) => {
    decodeModrm(c);
    const op = c.modReg & 7;
    if (op > 1) ud(c);
    const a = readM(c, 8);
    writeE(c, 8, incDec(c, 8, a, 0, op === 0 ? 1 : -1), 0);
  };
  const far = t[0xff];
  t[0xff] = (c) => {
    const at = c.eip;
    const m = fetch8(c);
    const op = (m >> 3) & 7;
    c.eip = at;
    if (op === 5 && (c.rex & 8) !== 0) { // JMP FAR m16:64
      decodeModrm(c);
      if (c.modMod === 3) ud(c);
      const lo = readMem(c, c.eaSeg, c.eaOff, 64), hi = c.tHi;
      const sel = readMem(c, c.eaSeg, (c.eaOff + 8) | 0, 16);
      jmpFar(c, sel, lo);
      if (c.code64) setRip(c, lo, hi);
      return;
    }
    if (op === 3 || op === 5 || op === 7) {
      far(c); // the m16:32 forms (CALL FAR m16:64 is not there yet)
      return;
    }
    decodeModrm(c);
    if (op <= 1) {
      const s = osz(c);
      const a = readM(c, s);
      const r = incDec(c, s, a, c.tHi, op === 0 ? 1 : -1);
      writeE(c, s, r, c.tHi);
      return;
    }
    const s = op === 6 && !c.op32 && (c.rex & 8) === 0 ? 16 : 64;
    const v = readE(c, s);
    const vh = c.tHi;
    if (op === 2) {
      pushRip(c);
      setRip(c, v, vh);
    } else if (op === 4) setRip(c, v, vh);
    else pushL(c, v, vh, s);
  };
}

/** Opcodes that do not exist in 64-bit mode. */
const INVALID64 = [
  0x06,
  0x07,
  0x0e,
  0x16,
  0x17,
  0x1e,
  0x1f,
  0x27,
  0x2f,
  0x37,
  0x3f,
  0x60,
  0x61,
  0x62,
  0x82,
  0x9a,
  0xc4,
  0xc5,
  0xce,
  0xd4,
  0xd5,
  0xd6,
  0xea,
];

/** Installs the one-byte opcodes of 64-bit mode into `t` (which holds the 32-bit ones). */
export function installLong(t: OpHandler[]): void {
  for (const op of INVALID64) t[op] = (c) => ud(c);
  installAlu(t);
  installMoves(t);
  installStack(t);
  installBranches(t);
  installGroup45(t);
}
