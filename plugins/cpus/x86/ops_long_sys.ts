// Long mode system: 16-byte IDT gates with IST, IRETQ, SYSCALL/SYSRET, SWAPGS, LGDT/LIDT,
// MOV CRn/DRn with 64-bit registers

import { decodeModrm } from "./decode.ts";
import { readMem, setR, writeMem } from "./decode_long.ts";
import { flagsWriteMask } from "./far.ts";
import { getFlags, writeFlags } from "./flags.ts";
import { fetch8, sysRead32 } from "./memory.ts";
import { readMsr } from "./msr.ts";
import { addRsp, peekL, pushL, setRip } from "./ops_long.ts";
import { flushTlb } from "./paging.ts";
import { ATTR_L, setWindow } from "./paging_long.ts";
import {
  ATTR_P,
  DESC,
  descAttr,
  descBase,
  descLimit,
  loadSeg,
  markAccessed,
  readDescriptor,
  setCpl,
  setSegCache,
} from "./segmentation.ts";
import {
  type CpuCore,
  CS,
  EFER_SCE,
  EXC_GP,
  EXC_NP,
  fault,
  GS,
  IF,
  NT,
  type OpHandler,
  RF,
  SS,
  TF,
  TR,
  ud,
  VM,
} from "./state.ts";
import { writeCr0, writeCr4 } from "./system.ts";

const MSR_STAR = 0xc0000081, MSR_LSTAR = 0xc0000082, MSR_CSTAR = 0xc0000083;
const MSR_FMASK = 0xc0000084, MSR_KERNEL_GS_BASE = 0xc0000102;

/** Reads a dword of a system table at linear (hi, lo) with supervisor rights. */
function sysRead(c: CpuCore, hi: number, lo: number): number {
  if (hi !== c.linHi) setWindow(c, hi);
  return sysRead32(c, lo);
}

/**
 * Delivers interrupt `vector` in long mode (SDM vol. 3 §6.14): a 16-byte interrupt or
 * trap gate, a 64-bit code segment, the stack from the TSS (RSPn on a privilege change,
 * ISTn when the gate names one) aligned to 16 bytes, and SS, RSP, RFLAGS, CS, RIP and the
 * error code pushed as quadwords.
 */
export function deliverLong(c: CpuCore, vector: number, kind: number, errorCode: number): void {
  const ext = kind === 2 || kind === 0 ? 1 : 0;
  const idtCode = vector * 8 + 2 + ext;
  if (vector * 16 + 15 > c.idtLimit) fault(c, EXC_GP, idtCode);
  const at = (c.idtBase + vector * 16) | 0;
  const lo = sysRead(c, c.idtBaseHi, at);
  const hi = sysRead(c, c.idtBaseHi, (at + 4) | 0);
  const offHi = sysRead(c, c.idtBaseHi, (at + 8) | 0);
  const type = (hi >> 8) & 0x1f;
  const dpl = (hi >> 13) & 3;
  if (type !== 14 && type !== 15) fault(c, EXC_GP, idtCode);
  if ((kind === 1 || kind === 3) && dpl < c.cpl) fault(c, EXC_GP, idtCode);
  if ((hi & 0x8000) === 0) fault(c, EXC_NP, idtCode);
  const sel = lo >>> 16;
  const offset = (hi & 0xffff0000) | (lo & 0xffff);
  if ((sel & 0xfffc) === 0) fault(c, EXC_GP, ext);
  readDescriptor(c, sel);
  const cLo = DESC[0], cHi = DESC[1];
  const attr = descAttr(cHi);
  if ((attr & 0x18) !== 0x18 || (attr & ATTR_L) === 0) fault(c, EXC_GP, (sel & 0xfffc) | ext);
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, (sel & 0xfffc) | ext);
  const csDpl = (attr >> 5) & 3;
  const newCpl = (attr & 4) !== 0 ? c.cpl : csDpl;
  const ist = hi & 7;
  const oldSs = c.segSel[SS];
  const oldRsp = c.regs[4], oldRspHi = c.regsHi[4];
  const flags = getFlags(c);
  let spLo = c.regs[4], spHi = c.regsHi[4];
  if (ist !== 0 || newCpl < c.cpl) {
    const off = ist !== 0 ? 0x24 + 8 * (ist - 1) : 4 + 8 * newCpl;
    spLo = sysRead(c, c.segBaseHi[TR], (c.segBase[TR] + off) | 0);
    spHi = sysRead(c, c.segBaseHi[TR], (c.segBase[TR] + off + 4) | 0);
  }
  const ripLo = c.eip, ripHi = c.ripHi;
  c.regs[4] = spLo & ~0xf;
  c.regsHi[4] = spHi;
  const oldCpl = c.cpl;
  setCpl(c, newCpl);
  try {
    pushL(c, oldSs, 0);
    pushL(c, oldRsp, oldRspHi);
    pushL(c, flags, 0);
    pushL(c, c.segSel[CS], 0);
    pushL(c, ripLo, ripHi);
    if (errorCode >= 0) pushL(c, errorCode, 0);
  } catch (e) {
    setCpl(c, oldCpl);
    c.regs[4] = oldRsp;
    c.regsHi[4] = oldRspHi;
    throw e;
  }
  if (newCpl !== oldCpl) setSegCache(c, SS, newCpl, 0, 0, 0);
  markAccessed(c);
  setSegCache(c, CS, (sel & 0xfffc) | newCpl, descBase(cLo, cHi), descLimit(cLo, cHi), attr);
  setRip(c, offset, offHi);
  c.flags = flags & ~(TF | NT | RF | VM | (type === 14 ? IF : 0));
  c.lzMask = 0;
}

/** IRETQ (and IRETD/IRET in 64-bit mode): RIP, CS, RFLAGS, RSP and SS from the stack. */
/**
 * Checks the code segment an IRET or far RET returns to (not null, RPL not below CPL, a
 * present code segment) and leaves its descriptor in DESC; its attributes.
 */
function returnCs(c: CpuCore, cs: number): number {
  if ((cs & 0xfffc) === 0 || (cs & 3) < c.cpl) fault(c, EXC_GP, cs & 0xfffc);
  readDescriptor(c, cs);
  const attr = descAttr(DESC[1]);
  if ((attr & 0x18) !== 0x18) fault(c, EXC_GP, cs & 0xfffc);
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, cs & 0xfffc);
  return attr;
}

function iretLong(c: CpuCore): void {
  const size = (c.rex & 8) !== 0 ? 64 : c.op32 ? 32 : 16;
  const n = size >> 3;
  const rip = peekL(c, 0, size), ripHi = size === 64 ? c.tHi : 0;
  const cs = peekL(c, n, size) & 0xffff;
  const fl = peekL(c, 2 * n, size);
  const sp = peekL(c, 3 * n, size), spHi = size === 64 ? c.tHi : 0;
  const ss = peekL(c, 4 * n, size) & 0xffff;
  c.nmiBlocked = false;
  const rpl = cs & 3;
  const attr = returnCs(c, cs);
  const lo = DESC[0], hi = DESC[1];
  writeFlags(c, fl, flagsWriteMask(c, size !== 16));
  markAccessed(c);
  setSegCache(c, CS, cs, descBase(lo, hi), descLimit(lo, hi), attr);
  setCpl(c, rpl);
  if ((ss & 0xfffc) === 0) setSegCache(c, SS, ss, 0, 0, 0);
  else {
    readDescriptor(c, ss);
    markAccessed(c);
    setSegCache(
      c,
      SS,
      ss,
      descBase(DESC[0], DESC[1]),
      descLimit(DESC[0], DESC[1]),
      descAttr(DESC[1]),
    );
  }
  c.regs[4] = sp;
  c.regsHi[4] = spHi;
  setRip(c, rip, (attr & ATTR_L) !== 0 ? ripHi : 0);
}

/**
 * Far RET in 64-bit mode (CB, CA imm16): RIP and CS at the operand size (32 unless REX.W),
 * then RSP and SS too when returning to an outer privilege.
 */
function retFarLong(c: CpuCore, imm: number): void {
  const size = (c.rex & 8) !== 0 ? 64 : c.op32 ? 32 : 16;
  const n = size >> 3;
  const rip = peekL(c, 0, size), ripHi = size === 64 ? c.tHi : 0;
  const cs = peekL(c, n, 16);
  const rpl = cs & 3;
  const attr = returnCs(c, cs);
  const lo = DESC[0], hi = DESC[1];
  let sp = 0, spHi = 0, ss = 0;
  const outer = rpl > c.cpl;
  if (outer) {
    sp = peekL(c, 2 * n + imm, size);
    spHi = size === 64 ? c.tHi : 0;
    ss = peekL(c, 3 * n + imm, 16);
  }
  markAccessed(c);
  setSegCache(c, CS, cs, descBase(lo, hi), descLimit(lo, hi), attr);
  setCpl(c, rpl);
  if (outer) {
    if ((ss & 0xfffc) === 0) setSegCache(c, SS, ss, 0, 0, 0);
    else loadSeg(c, SS, ss);
    c.regs[4] = sp;
    c.regsHi[4] = spHi;
    addRsp(c, imm);
  } else addRsp(c, 2 * n + imm);
  setRip(c, rip, (attr & ATTR_L) !== 0 ? ripHi : 0);
}

/** SYSCALL (AMD APM vol. 3): RCX and R11 take RIP and RFLAGS; CS/SS from STAR, RIP from LSTAR. */
function syscall(c: CpuCore): void {
  if ((c.efer & EFER_SCE) === 0) ud(c);
  const star = readMsr(c, MSR_STAR);
  const sel = star[1] & 0xfffc;
  setR(c, 1, 64, c.eip, c.ripHi);
  const flags = getFlags(c);
  setR(c, 11, 64, flags & ~RF, 0);
  const target = readMsr(c, c.code64 ? MSR_LSTAR : MSR_CSTAR);
  const mask = readMsr(c, MSR_FMASK)[0];
  setSegCache(c, CS, sel, 0, 0xffffffff, 0xa09b);
  setSegCache(c, SS, (sel + 8) & 0xffff, 0, 0xffffffff, 0xc093);
  setCpl(c, 0);
  c.flags = flags & ~mask & ~RF;
  c.lzMask = 0;
  setRip(c, target[0], target[1]);
}

/** SYSRET: to 64-bit code with REX.W (CS = STAR[63:48] + 16), else to compatibility mode. */
function sysret(c: CpuCore): void {
  if ((c.efer & EFER_SCE) === 0) ud(c);
  if (c.cpl !== 0) fault(c, EXC_GP, 0);
  const base = readMsr(c, MSR_STAR)[1] >>> 16;
  const to64 = (c.rex & 8) !== 0;
  if (to64) {
    setSegCache(c, CS, ((base + 16) | 3) & 0xffff, 0, 0xffffffff, 0xa0fb);
  } else setSegCache(c, CS, base | 3, 0, 0xffffffff, 0xc0fb);
  setSegCache(c, SS, ((base + 8) | 3) & 0xffff, 0, 0xffffffff, 0xc0f3);
  setCpl(c, 3);
  writeFlags(c, (c.regs[11] & 0x3c7fd7) | 2, 0x3f7fd7);
  if (to64) setRip(c, c.regs[1], c.regsHi[1]);
  else setRip(c, c.regs[1], 0);
}

function requireCpl0(c: CpuCore): void {
  if (c.cpl !== 0) fault(c, EXC_GP, 0);
}

/** Installs the long-mode system instructions into the 64-bit table `t`. */
export function installLongSys(t: OpHandler[], t32: OpHandler[]): void {
  t[0xcf] = (c) => iretLong(c);
  t[0xcb] = (c) => retFarLong(c, 0);
  t[0xca] = (c) => retFarLong(c, fetch8(c) | (fetch8(c) << 8));
  t[0x105] = (c) => syscall(c);
  t[0x107] = (c) => sysret(c);
  const grp7 = t32[0x101];
  t[0x101] = (c) => {
    const at = c.eip;
    const m = fetch8(c);
    const reg = (m >> 3) & 7;
    if (m === 0xf8) { // SWAPGS
      requireCpl0(c);
      const k = c.msrs.get(MSR_KERNEL_GS_BASE) ?? [0, 0];
      c.msrs.set(MSR_KERNEL_GS_BASE, [c.segBase[GS], c.segBaseHi[GS]]);
      c.segBase[GS] = k[0];
      c.segBaseHi[GS] = k[1];
      return;
    }
    c.eip = at;
    if ((m >> 6) === 3 || reg > 3) {
      grp7(c);
      return;
    }
    decodeModrm(c);
    const seg = c.eaSeg, off = c.eaOff;
    if (reg <= 1) {
      writeMem(c, seg, off, 16, reg === 0 ? c.gdtLimit : c.idtLimit, 0);
      writeMem(
        c,
        seg,
        (off + 2) | 0,
        64,
        reg === 0 ? c.gdtBase : c.idtBase,
        reg === 0 ? c.gdtBaseHi : c.idtBaseHi,
      );
      return;
    }
    requireCpl0(c);
    const limit = readMem(c, seg, off, 16);
    const base = readMem(c, seg, (off + 2) | 0, 64), baseHi = c.tHi;
    if (reg === 2) {
      c.gdtLimit = limit;
      c.gdtBase = base;
      c.gdtBaseHi = baseHi;
    } else {
      c.idtLimit = limit;
      c.idtBase = base;
      c.idtBaseHi = baseHi;
    }
  };
  // MOV r64, CRn / MOV CRn, r64 (REX.R reaches CR8, the TPR).
  t[0x120] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = ((m >> 3) & 7) | ((c.rex & 4) << 1);
    const r = (m & 7) | ((c.rex & 1) << 3);
    if (n === 2) setR(c, r, 64, c.cr2, c.cr2Hi);
    else if (n === 0 || n === 3 || n === 4) {
      setR(c, r, 64, n === 0 ? c.cr0 : n === 3 ? c.cr3 : c.cr4, 0);
    } else if (n === 8) setR(c, r, 64, c.cr8, 0);
    else ud(c);
  };
  t[0x122] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = ((m >> 3) & 7) | ((c.rex & 4) << 1);
    const r = (m & 7) | ((c.rex & 1) << 3);
    const v = c.regs[r];
    if (n === 0 || n === 4) {
      if (c.regsHi[r] !== 0) fault(c, EXC_GP, 0);
      if (n === 0) writeCr0(c, v);
      else writeCr4(c, v);
    } else if (n === 2) {
      c.cr2 = v;
      c.cr2Hi = c.regsHi[r];
    } else if (n === 3) {
      c.cr3 = v;
      flushTlb(c);
    } else if (n === 8) c.cr8 = v & 15;
    else ud(c);
  };
  t[0x121] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = (m >> 3) & 7;
    const v = n === 6 || n === 4
      ? c.dr[6] | 0xffff0ff0
      : n === 7 || n === 5
      ? c.dr[7] | 0x400
      : c.dr[n];
    setR(c, (m & 7) | ((c.rex & 1) << 3), 64, v, 0);
  };
  t[0x123] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = (m >> 3) & 7;
    c.dr[n === 4 || n === 5 ? n + 2 : n] = c.regs[(m & 7) | ((c.rex & 1) << 3)];
  };
  // PUSH/POP FS and GS (64-bit stack slots).
  for (const [op, s] of [[0x1a0, 4], [0x1a8, 5]]) {
    t[op] = (c) => pushL(c, c.segSel[s], 0, c.op32 || (c.rex & 8) !== 0 ? 64 : 16);
    t[op + 1] = (c) => {
      const size = c.op32 || (c.rex & 8) !== 0 ? 64 : 16;
      const sel = peekL(c, 0, 16);
      loadSeg(c, s, sel);
      addRsp(c, size >> 3);
    };
  }
}
