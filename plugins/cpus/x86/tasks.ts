// Hardware task switching through TSS descriptors and task gates (SDM vol. 3 §7.3)

import { getFlags } from "./flags.ts";
import { sysRead16, sysRead32, sysWrite16, sysWrite32 } from "./memory.ts";
import { flushTlb } from "./paging.ts";
import {
  ATTR_P,
  ATTR_S,
  DESC,
  descAttr,
  descBase,
  descLimit,
  loadSegReal,
  readDescriptor,
  setCpl,
  setSegCache,
} from "./segmentation.ts";
import { push16, push32 } from "./stack.ts";
import {
  type CpuCore,
  CR0_PG,
  CR0_TS,
  CS,
  EXC_GP,
  EXC_NP,
  EXC_TS,
  fault,
  LDTR,
  NT,
  SS,
  TR,
  VM,
} from "./state.ts";

/** Why a task switch happens (decides busy bits, NT and the back link). */
export const TASK_JMP = 0, TASK_CALL = 1, TASK_IRET = 2, TASK_INT = 3;

/**
 * Switches to the task whose TSS selector is `sel`, saving the current task into its
 * TSS. `errorCode` >= 0 is pushed on the new task's stack (exceptions via task gates).
 */
export function taskSwitch(c: CpuCore, sel: number, reason: number, errorCode: number): void {
  if ((sel & 4) !== 0) fault(c, EXC_TS, sel & 0xfffc);
  readDescriptor(c, sel);
  const lo = DESC[0], hi = DESC[1], descLin = DESC[2];
  const attr = descAttr(hi);
  const type = attr & 0x1f;
  const wantBusy = reason === TASK_IRET;
  const okType = wantBusy ? type === 3 || type === 11 : type === 1 || type === 9;
  if (!okType) fault(c, reason === TASK_IRET ? EXC_TS : EXC_GP, sel & 0xfffc);
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, sel & 0xfffc);
  const new32 = (type & 8) !== 0;
  const newBase = descBase(lo, hi);
  const newLimit = descLimit(lo, hi);
  if (newLimit < (new32 ? 0x67 : 0x2b)) fault(c, EXC_TS, sel & 0xfffc);

  // Save the outgoing task.
  const oldBase = c.segBase[TR];
  const old32 = (c.segAttr[TR] & 8) !== 0;
  let flags = getFlags(c);
  if (reason === TASK_IRET) flags &= ~NT;
  const r = c.regs;
  if (old32) {
    sysWrite32(c, (oldBase + 0x20) | 0, c.eip);
    sysWrite32(c, (oldBase + 0x24) | 0, flags);
    for (let i = 0; i < 8; i++) sysWrite32(c, (oldBase + 0x28 + i * 4) | 0, r[i]);
    for (let s = 0; s < 6; s++) sysWrite16(c, (oldBase + 0x48 + s * 4) | 0, c.segSel[s]);
  } else {
    sysWrite16(c, (oldBase + 0x0e) | 0, c.eip);
    sysWrite16(c, (oldBase + 0x10) | 0, flags);
    for (let i = 0; i < 8; i++) sysWrite16(c, (oldBase + 0x12 + i * 2) | 0, r[i]);
    for (let s = 0; s < 4; s++) sysWrite16(c, (oldBase + 0x22 + s * 2) | 0, c.segSel[s]);
  }
  if (reason === TASK_JMP || reason === TASK_IRET) setBusy(c, c.segSel[TR], false);

  // Read the incoming task.
  let cr3 = c.cr3, eip: number, eflags: number, ldt: number;
  const regs = new Int32Array(8);
  const segs = new Uint16Array(6);
  if (new32) {
    cr3 = sysRead32(c, (newBase + 0x1c) | 0);
    eip = sysRead32(c, (newBase + 0x20) | 0);
    eflags = sysRead32(c, (newBase + 0x24) | 0);
    for (let i = 0; i < 8; i++) regs[i] = sysRead32(c, (newBase + 0x28 + i * 4) | 0);
    for (let s = 0; s < 6; s++) segs[s] = sysRead16(c, (newBase + 0x48 + s * 4) | 0);
    ldt = sysRead16(c, (newBase + 0x60) | 0);
  } else {
    eip = sysRead16(c, (newBase + 0x0e) | 0);
    eflags = sysRead16(c, (newBase + 0x10) | 0) | (getFlags(c) & 0xffff0000 & ~VM);
    for (let i = 0; i < 8; i++) regs[i] = sysRead16(c, (newBase + 0x12 + i * 2) | 0) | 0xffff0000;
    for (let s = 0; s < 4; s++) segs[s] = sysRead16(c, (newBase + 0x22 + s * 2) | 0);
    ldt = sysRead16(c, (newBase + 0x2a) | 0);
  }
  if (reason === TASK_CALL || reason === TASK_INT) {
    sysWrite16(c, newBase, c.segSel[TR]);
    eflags |= NT;
  }
  if (reason !== TASK_IRET) {
    DESC[2] = descLin;
    sysWrite32(c, (descLin + 4) | 0, hi | 0x200);
  }
  setSegCache(c, TR, sel, newBase, newLimit, attr | 2);
  c.cr0 |= CR0_TS;
  if (new32 && (c.cr0 & CR0_PG) !== 0) {
    c.cr3 = cr3;
    flushTlb(c);
  }
  for (let i = 0; i < 8; i++) c.regs[i] = new32 ? regs[i] : (r[i] & ~0xffff) | (regs[i] & 0xffff);
  c.flags = eflags | 2;
  c.lzMask = 0;
  c.eip = eip;
  // LDT, then segments (checks raise #TS in the new task's context).
  if ((ldt & 0xfffc) === 0) {
    setSegCache(c, LDTR, ldt, 0, 0, 0);
  } else {
    if ((ldt & 4) !== 0) fault(c, EXC_TS, ldt & 0xfffc);
    readDescriptor(c, ldt, EXC_TS);
    const la = descAttr(DESC[1]);
    if ((la & 0x1f) !== 2) fault(c, EXC_TS, ldt & 0xfffc);
    setSegCache(c, LDTR, ldt, descBase(DESC[0], DESC[1]), descLimit(DESC[0], DESC[1]), la);
  }
  if ((eflags & VM) !== 0) {
    for (let s = 0; s < 6; s++) loadSegReal(c, s, segs[s]);
    setCpl(c, 3);
  } else {
    const cpl = segs[CS] & 3;
    setCpl(c, cpl);
    for (const s of [CS, SS, 0, 3, 4, 5]) {
      const sel2 = segs[s];
      if (s >= 4 && !new32) {
        setSegCache(c, s, 0, 0, 0, 0);
        continue;
      }
      if ((sel2 & 0xfffc) === 0) {
        if (s === CS || s === SS) fault(c, EXC_TS, 0);
        setSegCache(c, s, sel2, 0, 0, 0);
        continue;
      }
      readDescriptor(c, sel2, EXC_TS);
      const a = descAttr(DESC[1]);
      if ((a & ATTR_S) === 0) fault(c, EXC_TS, sel2 & 0xfffc);
      if ((a & ATTR_P) === 0) fault(c, EXC_NP, sel2 & 0xfffc);
      setSegCache(c, s, sel2, descBase(DESC[0], DESC[1]), descLimit(DESC[0], DESC[1]), a);
    }
  }
  if (errorCode >= 0) {
    if (new32) push32(c, errorCode);
    else push16(c, errorCode);
  }
  if ((c.eip >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
  c.attention = true;
}

function setBusy(c: CpuCore, sel: number, busy: boolean): void {
  readDescriptor(c, sel);
  const hi = busy ? DESC[1] | 0x200 : DESC[1] & ~0x200;
  sysWrite32(c, (DESC[2] + 4) | 0, hi);
}
