// Interrupt and exception delivery: real-mode IVT, IDT gates, privilege stack switch, v86 exits

import { getFlags } from "./flags.ts";
import { linRead16, sysRead16, sysRead32 } from "./memory.ts";
import {
  ATTR_CODE,
  ATTR_P,
  ATTR_S,
  DESC,
  descAttr,
  descBase,
  descLimit,
  loadSegReal,
  markAccessed,
  readDescriptor,
  setCpl,
  setSegCache,
} from "./segmentation.ts";
import { push16, push32 } from "./stack.ts";
import {
  AC,
  type CpuCore,
  CR0_PE,
  CS,
  DS,
  EFER_LMA,
  ES,
  ESP,
  EXC_DF,
  EXC_GP,
  EXC_NP,
  EXC_SS,
  EXC_TS,
  fault,
  FS,
  GS,
  IF,
  NT,
  RF,
  SS,
  TF,
  TR,
  VM,
} from "./state.ts";
import { TASK_INT, taskSwitch } from "./tasks.ts";
import { deliverLong } from "./ops_long_sys.ts";

/** How an interrupt arose: it decides DPL checks, v86 handling and error codes. */
export const INT_EXCEPTION = 0, INT_SOFTWARE = 1, INT_EXTERNAL = 2, INT_SOFT_EXC = 3;

/**
 * Delivers interrupt `vector`. `c.eip` must already hold the return address (the
 * faulting instruction for faults, the next one for traps and INT n). `errorCode` is
 * -1 when none is pushed.
 */
export function deliverInterrupt(
  c: CpuCore,
  vector: number,
  kind: number,
  errorCode: number,
): void {
  c.halted = false;
  if ((c.efer & EFER_LMA) !== 0) {
    deliverLong(c, vector, kind, errorCode);
    return;
  }
  if ((c.cr0 & CR0_PE) === 0) {
    deliverReal(c, vector);
    return;
  }
  deliverProtected(c, vector, kind, errorCode);
}

function deliverReal(c: CpuCore, vector: number): void {
  if (vector * 4 + 3 > c.idtLimit) fault(c, EXC_GP, 0);
  const ivt = (c.idtBase + vector * 4) | 0;
  const ip = linRead16(c, ivt);
  const cs = linRead16(c, (ivt + 2) | 0);
  let flags = getFlags(c);
  if (c.model.family <= 2) flags &= 0x0fff;
  push16(c, flags);
  push16(c, c.segSel[CS]);
  push16(c, c.eip);
  c.flags = getFlags(c) & ~(IF | TF | AC | RF);
  c.lzMask = 0;
  loadSegReal(c, CS, cs);
  c.eip = ip;
}

function deliverProtected(c: CpuCore, vector: number, kind: number, errorCode: number): void {
  const ext = kind === INT_EXTERNAL || kind === INT_EXCEPTION ? 1 : 0;
  const idtCode = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > c.idtLimit) fault(c, EXC_GP, idtCode);
  const entry = (c.idtBase + vector * 8) | 0;
  const lo = sysRead32(c, entry);
  const hi = sysRead32(c, (entry + 4) | 0);
  const type = (hi >> 8) & 0x1f;
  const dpl = (hi >> 13) & 3;
  if (type !== 5 && type !== 6 && type !== 7 && type !== 14 && type !== 15) {
    fault(c, EXC_GP, idtCode);
  }
  if ((kind === INT_SOFTWARE || kind === INT_SOFT_EXC) && dpl < c.cpl) {
    fault(c, EXC_GP, idtCode);
  }
  if ((hi & 0x8000) === 0) fault(c, EXC_NP, idtCode);
  if (type === 5) {
    taskSwitch(c, (lo >>> 16) & 0xffff, TASK_INT, errorCode);
    return;
  }
  const gate32 = (type & 8) !== 0;
  const sel = (lo >>> 16) & 0xffff;
  const offset = gate32 ? (hi & 0xffff0000) | (lo & 0xffff) : lo & 0xffff;
  if ((sel & 0xfffc) === 0) fault(c, EXC_GP, ext);
  readDescriptor(c, sel);
  const cLo = DESC[0], cHi = DESC[1];
  const attr = descAttr(cHi);
  const cdpl = (attr >> 5) & 3;
  if ((attr & ATTR_S) === 0 || (attr & ATTR_CODE) === 0 || cdpl > c.cpl) {
    fault(c, EXC_GP, (sel & 0xfffc) | ext);
  }
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, (sel & 0xfffc) | ext);
  const conforming = (attr & 4) !== 0;
  const v86 = (c.flags & VM) !== 0;
  const oldFlags = getFlags(c);
  const oldCs = c.segSel[CS];
  const oldEip = c.eip;
  const limit = descLimit(cLo, cHi);
  if ((offset >>> 0) > limit) fault(c, EXC_GP, ext);
  if (!conforming && cdpl < c.cpl) {
    // Inner privilege: stack from the TSS.
    if (v86 && cdpl !== 0) fault(c, EXC_GP, (sel & 0xfffc) | ext);
    const oldSs = c.segSel[SS];
    const oldEsp = c.regs[ESP];
    const [newSs, newEsp] = stackFromTss(c, cdpl, ext);
    readDescriptor(c, newSs, EXC_TS);
    const sAttr = descAttr(DESC[1]);
    if (
      (newSs & 3) !== cdpl || ((sAttr >> 5) & 3) !== cdpl || (sAttr & ATTR_S) === 0 ||
      (sAttr & ATTR_CODE) !== 0 || (sAttr & 2) === 0
    ) fault(c, EXC_TS, (newSs & 0xfffc) | ext);
    if ((sAttr & ATTR_P) === 0) fault(c, EXC_SS, (newSs & 0xfffc) | ext);
    markAccessed(c);
    const ssBase = descBase(DESC[0], DESC[1]);
    const ssLimit = descLimit(DESC[0], DESC[1]);
    if (v86) {
      c.flags &= ~VM;
    }
    setSegCache(c, SS, newSs, ssBase, ssLimit, sAttr);
    setCpl(c, cdpl);
    c.regs[ESP] = c.stack32 ? newEsp : (c.regs[ESP] & ~0xffff) | (newEsp & 0xffff);
    const push = gate32 ? push32 : push16;
    if (v86) {
      push(c, c.segSel[GS]);
      push(c, c.segSel[FS]);
      push(c, c.segSel[DS]);
      push(c, c.segSel[ES]);
      for (const s of [ES, DS, FS, GS]) setSegCache(c, s, 0, 0, 0, 0);
    }
    push(c, oldSs);
    push(c, oldEsp);
    push(c, oldFlags);
    push(c, oldCs);
    push(c, oldEip);
    if (errorCode >= 0) push(c, errorCode);
  } else {
    if (v86) fault(c, EXC_GP, (sel & 0xfffc) | ext);
    const push = gate32 ? push32 : push16;
    push(c, oldFlags);
    push(c, oldCs);
    push(c, oldEip);
    if (errorCode >= 0) push(c, errorCode);
  }
  readDescriptor(c, sel);
  markAccessed(c);
  setSegCache(c, CS, (sel & 0xfffc) | c.cpl, descBase(cLo, cHi), limit, attr);
  c.eip = offset | 0;
  c.flags = getFlags(c) & ~(TF | NT | RF | VM | ((type & 1) === 0 ? IF : 0));
  c.lzMask = 0;
}

/** Reads SS:ESP for privilege `dpl` from the current TSS. */
export function stackFromTss(c: CpuCore, dpl: number, ext: number): [number, number] {
  const type = c.segAttr[TR] & 0xf;
  const base = c.segBase[TR];
  if ((type & 8) !== 0) {
    const off = 4 + dpl * 8;
    if (off + 5 > c.segLimit[TR]) fault(c, EXC_TS, (c.segSel[TR] & 0xfffc) | ext);
    return [sysRead16(c, (base + off + 4) | 0), sysRead32(c, (base + off) | 0)];
  }
  const off = 2 + dpl * 4;
  if (off + 3 > c.segLimit[TR]) fault(c, EXC_TS, (c.segSel[TR] & 0xfffc) | ext);
  return [sysRead16(c, (base + off + 2) | 0), sysRead16(c, (base + off) | 0)];
}

/** Exception classes for the double-fault rule (SDM vol. 3 table 6-5). */
function isContributory(v: number): boolean {
  return v === 0 || (v >= 10 && v <= 13);
}

/** True when vector `v` pushes an error code in protected mode. */
export function hasErrorCode(v: number): boolean {
  return v === 8 || (v >= 10 && v <= 14) || v === 17;
}

/**
 * Delivers the exception recorded in `c.excVector`/`c.excCode` after a fault unwound an
 * instruction, turning a fault during delivery into #DF and a fault during #DF into
 * shutdown. Returns false on shutdown (triple fault).
 */
export function deliverException(c: CpuCore, FAULT: Error): boolean {
  let vector = c.excVector;
  let code = c.excHasCode || hasErrorCode(vector) ? c.excCode : -1;
  for (let attempt = 0; attempt < 3; attempt++) {
    const pm = (c.cr0 & CR0_PE) !== 0;
    try {
      deliverInterrupt(c, vector, INT_EXCEPTION, pm ? code : -1);
      return true;
    } catch (e) {
      if (e !== FAULT) throw e;
      const second = c.excVector;
      if (vector === EXC_DF) return false;
      if (
        (isContributory(vector) && isContributory(second)) ||
        (vector === 14 && (isContributory(second) || second === 14))
      ) {
        vector = EXC_DF;
        code = 0;
      } else {
        vector = second;
        code = c.excHasCode || hasErrorCode(second) ? c.excCode : -1;
      }
    }
  }
  return false;
}
