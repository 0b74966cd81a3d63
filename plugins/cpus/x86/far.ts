// Far control transfers: JMP/CALL far (code segments, call gates, tasks), RET far and IRET

import { getFlags, writeFlags } from "./flags.ts";
import { sysRead16 } from "./memory.ts";
import {
  ATTR_CODE,
  ATTR_P,
  ATTR_S,
  DESC,
  descAttr,
  descBase,
  descLimit,
  invalidateSegsForCpl,
  isProtected,
  loadCsChecked,
  loadSegReal,
  markAccessed,
  readDescriptor,
  setCpl,
  setSegCache,
} from "./segmentation.ts";
import { stackFromTss } from "./interrupts.ts";
import { adjustSp, peek16, peek32, push16, push32 } from "./stack.ts";
import {
  AC,
  AF,
  CF,
  type CpuCore,
  CS,
  DF,
  DS,
  ES,
  ESP,
  EXC_GP,
  EXC_NP,
  EXC_SS,
  EXC_TS,
  fault,
  FS,
  GS,
  ID,
  IF,
  IOPL,
  NT,
  OF,
  PF,
  SF,
  SS,
  TF,
  TR,
  VIF,
  VIP,
  VM,
  ZF,
} from "./state.ts";
import { TASK_CALL, TASK_IRET, TASK_JMP, taskSwitch } from "./tasks.ts";

function realTarget(c: CpuCore, sel: number, off: number): void {
  if ((off >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
  loadSegReal(c, CS, sel);
  c.eip = off | 0;
}

/** Checks the code segment in DESC as a direct JMP/CALL target at the current CPL. */
function checkDirectCode(c: CpuCore, sel: number): void {
  const attr = descAttr(DESC[1]);
  const dpl = (attr >> 5) & 3;
  if ((attr & ATTR_CODE) === 0) fault(c, EXC_GP, sel & 0xfffc);
  if ((attr & 4) !== 0) {
    if (dpl > c.cpl) fault(c, EXC_GP, sel & 0xfffc);
  } else if ((sel & 3) > c.cpl || dpl !== c.cpl) {
    fault(c, EXC_GP, sel & 0xfffc);
  }
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, sel & 0xfffc);
}

/** Checks a gate or TSS descriptor's DPL and presence for JMP/CALL through it. */
function checkGate(c: CpuCore, sel: number): void {
  const dpl = (DESC[1] >> 13) & 3;
  if (dpl < c.cpl || dpl < (sel & 3)) fault(c, EXC_GP, sel & 0xfffc);
  if ((DESC[1] & 0x8000) === 0) fault(c, EXC_NP, sel & 0xfffc);
}

/** JMP ptr16:16/32 and JMP m16:16/32. */
export function jmpFar(c: CpuCore, sel: number, off: number): void {
  if (!isProtected(c)) return realTarget(c, sel, off);
  if ((sel & 0xfffc) === 0) fault(c, EXC_GP, 0);
  readDescriptor(c, sel);
  const attr = descAttr(DESC[1]);
  if ((attr & ATTR_S) !== 0) {
    checkDirectCode(c, sel);
    loadCsChecked(c, sel, off, c.cpl);
    return;
  }
  const type = attr & 0x1f;
  if (type === 4 || type === 12) {
    checkGate(c, sel);
    const lo = DESC[0], hi = DESC[1];
    const target = lo >>> 16;
    const toff = type === 12 ? (hi & 0xffff0000) | (lo & 0xffff) : lo & 0xffff;
    if ((target & 0xfffc) === 0) fault(c, EXC_GP, 0);
    readDescriptor(c, target);
    const ta = descAttr(DESC[1]);
    const tdpl = (ta >> 5) & 3;
    if ((ta & ATTR_S) === 0 || (ta & ATTR_CODE) === 0) fault(c, EXC_GP, target & 0xfffc);
    if ((ta & 4) !== 0 ? tdpl > c.cpl : tdpl !== c.cpl) fault(c, EXC_GP, target & 0xfffc);
    loadCsChecked(c, target, toff, c.cpl);
  } else if (type === 5) {
    checkGate(c, sel);
    taskSwitch(c, DESC[0] >>> 16, TASK_JMP, -1);
  } else if (type === 1 || type === 9) {
    checkGate(c, sel);
    taskSwitch(c, sel, TASK_JMP, -1);
  } else {
    fault(c, EXC_GP, sel & 0xfffc);
  }
}

/** CALL ptr16:16/32 and CALL m16:16/32; `op32` is the operand size. */
export function callFar(c: CpuCore, sel: number, off: number, op32: boolean): void {
  const push = op32 ? push32 : push16;
  const retCs = c.segSel[CS];
  const retEip = c.eip;
  if (!isProtected(c)) {
    if ((off >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
    const sp = c.regs[ESP];
    push(c, retCs);
    try {
      push(c, retEip);
    } catch (e) {
      c.regs[ESP] = sp;
      throw e;
    }
    realTarget(c, sel, off);
    return;
  }
  if ((sel & 0xfffc) === 0) fault(c, EXC_GP, 0);
  readDescriptor(c, sel);
  const attr = descAttr(DESC[1]);
  const sp = c.regs[ESP];
  if ((attr & ATTR_S) !== 0) {
    checkDirectCode(c, sel);
    if ((off >>> 0) > descLimit(DESC[0], DESC[1])) fault(c, EXC_GP, 0);
    const lo = DESC[0], hi = DESC[1], lin = DESC[2];
    try {
      push(c, retCs);
      push(c, retEip);
    } catch (e) {
      c.regs[ESP] = sp;
      throw e;
    }
    DESC[0] = lo;
    DESC[1] = hi;
    DESC[2] = lin;
    loadCsChecked(c, sel, off, c.cpl);
    return;
  }
  const type = attr & 0x1f;
  if (type === 5) {
    checkGate(c, sel);
    taskSwitch(c, DESC[0] >>> 16, TASK_CALL, -1);
    return;
  }
  if (type === 1 || type === 9) {
    checkGate(c, sel);
    taskSwitch(c, sel, TASK_CALL, -1);
    return;
  }
  if (type !== 4 && type !== 12) fault(c, EXC_GP, sel & 0xfffc);
  checkGate(c, sel);
  const gLo = DESC[0], gHi = DESC[1];
  const gate32 = type === 12;
  const target = gLo >>> 16;
  const toff = gate32 ? (gHi & 0xffff0000) | (gLo & 0xffff) : gLo & 0xffff;
  const params = gHi & 0x1f;
  if ((target & 0xfffc) === 0) fault(c, EXC_GP, 0);
  readDescriptor(c, target);
  const tLo = DESC[0], tHi = DESC[1];
  const ta = descAttr(tHi);
  const tdpl = (ta >> 5) & 3;
  if ((ta & ATTR_S) === 0 || (ta & ATTR_CODE) === 0 || tdpl > c.cpl) {
    fault(c, EXC_GP, target & 0xfffc);
  }
  if ((ta & ATTR_P) === 0) fault(c, EXC_NP, target & 0xfffc);
  const gpush = gate32 ? push32 : push16;
  if ((ta & 4) === 0 && tdpl < c.cpl) {
    const [newSs, newEsp] = stackFromTss(c, tdpl, 0);
    readDescriptor(c, newSs, EXC_TS);
    const sa = descAttr(DESC[1]);
    if (
      (newSs & 3) !== tdpl || ((sa >> 5) & 3) !== tdpl || (sa & ATTR_S) === 0 ||
      (sa & ATTR_CODE) !== 0 || (sa & 2) === 0
    ) fault(c, EXC_TS, newSs & 0xfffc);
    if ((sa & ATTR_P) === 0) fault(c, EXC_SS, newSs & 0xfffc);
    markAccessed(c);
    const oldSs = c.segSel[SS];
    const oldEsp = c.regs[ESP];
    const args: number[] = [];
    for (let i = params - 1; i >= 0; i--) {
      args.push(gate32 ? peek32(c, i * 4) : peek16(c, i * 2));
    }
    setSegCache(c, SS, newSs, descBase(DESC[0], DESC[1]), descLimit(DESC[0], DESC[1]), sa);
    c.regs[ESP] = c.stack32 ? newEsp : (c.regs[ESP] & ~0xffff) | (newEsp & 0xffff);
    gpush(c, oldSs);
    gpush(c, oldEsp);
    for (const a of args) gpush(c, a);
    gpush(c, retCs);
    gpush(c, retEip);
    DESC[0] = tLo;
    DESC[1] = tHi;
    loadCsChecked(c, target, toff, tdpl);
  } else {
    try {
      gpush(c, retCs);
      gpush(c, retEip);
    } catch (e) {
      c.regs[ESP] = sp;
      throw e;
    }
    DESC[0] = tLo;
    DESC[1] = tHi;
    loadCsChecked(c, target, toff, c.cpl);
  }
}

/** Validates the code segment for a return to `sel` (RET far, IRET); leaves it in DESC. */
function checkReturnCs(c: CpuCore, sel: number): void {
  if ((sel & 0xfffc) === 0) fault(c, EXC_GP, 0);
  readDescriptor(c, sel);
  const attr = descAttr(DESC[1]);
  const rpl = sel & 3;
  const dpl = (attr >> 5) & 3;
  if (rpl < c.cpl || (attr & ATTR_S) === 0 || (attr & ATTR_CODE) === 0) {
    fault(c, EXC_GP, sel & 0xfffc);
  }
  if ((attr & 4) !== 0 ? dpl > rpl : dpl !== rpl) fault(c, EXC_GP, sel & 0xfffc);
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, sel & 0xfffc);
}

/** Loads SS:ESP for a return to the outer level `rpl`. */
function loadOuterStack(c: CpuCore, ss: number, esp: number, rpl: number): void {
  if ((ss & 0xfffc) === 0) fault(c, EXC_GP, 0);
  readDescriptor(c, ss);
  const sa = descAttr(DESC[1]);
  if (
    (ss & 3) !== rpl || ((sa >> 5) & 3) !== rpl || (sa & ATTR_S) === 0 ||
    (sa & ATTR_CODE) !== 0 || (sa & 2) === 0
  ) fault(c, EXC_GP, ss & 0xfffc);
  if ((sa & ATTR_P) === 0) fault(c, EXC_SS, ss & 0xfffc);
  markAccessed(c);
  setSegCache(c, SS, ss, descBase(DESC[0], DESC[1]), descLimit(DESC[0], DESC[1]), sa);
  c.regs[ESP] = c.stack32 ? esp : (c.regs[ESP] & ~0xffff) | (esp & 0xffff);
}

/** RET far (CB/CA): pops EIP and CS, then releases `imm` bytes of parameters. */
export function retFar(c: CpuCore, op32: boolean, imm: number): void {
  const s = op32 ? 4 : 2;
  const eip = op32 ? peek32(c, 0) : peek16(c, 0);
  const cs = peek16(c, s);
  if (!isProtected(c)) {
    if ((eip >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
    adjustSp(c, 2 * s + imm);
    realTarget(c, cs, eip);
    return;
  }
  checkReturnCs(c, cs);
  const rpl = cs & 3;
  if (rpl === c.cpl) {
    adjustSp(c, 2 * s + imm);
    loadCsChecked(c, cs, eip, c.cpl);
    return;
  }
  const esp = op32 ? peek32(c, 2 * s + imm) : peek16(c, 2 * s + imm);
  const ss = peek16(c, 3 * s + imm);
  const lo = DESC[0], hi = DESC[1], lin = DESC[2];
  loadOuterStack(c, ss, esp, rpl);
  DESC[0] = lo;
  DESC[1] = hi;
  DESC[2] = lin;
  loadCsChecked(c, cs, eip, rpl);
  adjustSp(c, imm);
  invalidateSegsForCpl(c);
}

/** The EFLAGS bits POPF/IRET may change here, before the IOPL and IF rules. */
export function flagsWriteMask(c: CpuCore, op32: boolean): number {
  let m = CF | PF | AF | ZF | SF | TF | IF | DF | OF | IOPL | NT;
  if (op32) {
    if (c.model.family >= 4) m |= AC;
    if (c.model.level >= 0) m |= ID;
  }
  if (isProtected(c)) {
    if (c.cpl > 0) m &= ~IOPL;
    if (c.cpl > ((c.flags & IOPL) >> 12)) m &= ~IF;
  } else if ((c.flags & VM) !== 0) {
    m &= ~IOPL;
  }
  return m;
}

/** Writes popped FLAGS with the model's real-mode quirks (a 286 keeps bits 12..15 at 0). */
export function popFlags(c: CpuCore, v: number, op32: boolean): void {
  if (c.model.family <= 2) {
    writeFlags(c, v & 0x0fff, 0xffd5);
    return;
  }
  writeFlags(c, v, flagsWriteMask(c, op32));
}

/** IRET/IRETD. */
export function iret(c: CpuCore, op32: boolean): void {
  c.nmiBlocked = false;
  const s = op32 ? 4 : 2;
  const v86 = (c.flags & VM) !== 0;
  if (v86 && (c.flags & IOPL) !== IOPL) fault(c, EXC_GP, 0);
  if (!isProtected(c)) {
    const eip = op32 ? peek32(c, 0) : peek16(c, 0);
    const cs = peek16(c, s);
    const fl = op32 ? peek32(c, 2 * s) : peek16(c, 2 * s);
    if ((eip >>> 0) > c.segLimit[CS] && !v86) fault(c, EXC_GP, 0);
    adjustSp(c, 3 * s);
    if (v86) loadSegReal(c, CS, cs);
    else realTarget(c, cs, eip);
    c.eip = eip;
    popFlags(c, fl, op32);
    return;
  }
  if ((c.flags & NT) !== 0) {
    const link = sysRead16(c, c.segBase[TR]);
    taskSwitch(c, link, TASK_IRET, -1);
    return;
  }
  const eip = op32 ? peek32(c, 0) : peek16(c, 0);
  const cs = peek16(c, s);
  const fl = op32 ? peek32(c, 2 * s) : peek16(c, 2 * s);
  if (op32 && (fl & VM) !== 0 && c.cpl === 0) {
    // Return to virtual-8086 mode.
    const esp = peek32(c, 12);
    const ss = peek32(c, 16);
    const es = peek32(c, 20), ds = peek32(c, 24), fs = peek32(c, 28), gs = peek32(c, 32);
    writeFlags(c, fl, 0x3f7fd5 | VIF | VIP);
    c.flags |= VM;
    loadSegReal(c, CS, cs);
    loadSegReal(c, SS, ss);
    loadSegReal(c, ES, es);
    loadSegReal(c, DS, ds);
    loadSegReal(c, FS, fs);
    loadSegReal(c, GS, gs);
    c.regs[ESP] = esp;
    c.eip = eip & 0xffff;
    setCpl(c, 3);
    return;
  }
  checkReturnCs(c, cs);
  const rpl = cs & 3;
  const mask = flagsWriteMask(c, op32);
  if (rpl === c.cpl) {
    adjustSp(c, 3 * s);
    loadCsChecked(c, cs, eip, c.cpl);
    writeFlags(c, fl, mask);
    return;
  }
  const esp = op32 ? peek32(c, 3 * s) : peek16(c, 3 * s);
  const ss = peek16(c, 4 * s);
  const lo = DESC[0], hi = DESC[1], lin = DESC[2];
  loadOuterStack(c, ss, esp, rpl);
  DESC[0] = lo;
  DESC[1] = hi;
  DESC[2] = lin;
  writeFlags(c, fl, mask);
  loadCsChecked(c, cs, eip, rpl);
  invalidateSegsForCpl(c);
}

/** PUSHF's value: VM and RF read as 0. */
export function flagsForPush(c: CpuCore): number {
  let f = getFlags(c) & ~(VM | 0x10000);
  if (c.model.family <= 2 && !isProtected(c)) f &= 0x0fff;
  return f;
}
