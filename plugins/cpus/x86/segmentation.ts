// Segment registers: descriptor tables, cache loads with their checks, and privilege level

import { sysRead32, sysWrite32 } from "./memory.ts";
import { setWindow, updateMode } from "./paging_long.ts";
import {
  type CpuCore,
  CR0_PE,
  CS,
  EFER_LMA,
  EXC_GP,
  EXC_NP,
  EXC_SS,
  fault,
  LDTR,
  SS,
  TLB_SIZE,
  VM,
} from "./state.ts";

/** Scratch for the last descriptor read: [low dword, high dword, linear address]. */
export const DESC: Int32Array = new Int32Array(3);

/** Access-byte bits of the cached attribute word. */
export const ATTR_P = 0x80, ATTR_S = 0x10, ATTR_CODE = 0x08, ATTR_DB = 0x4000, ATTR_G = 0x8000;

/** Base address from a descriptor's two dwords. */
export function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0;
}

/** Byte-granular limit from a descriptor's two dwords. */
export function descLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf0000);
  return (hi & 0x800000) !== 0 ? raw * 4096 + 0xfff : raw;
}

/** The cached attribute word (descriptor bits 40..55). */
export function descAttr(hi: number): number {
  return (hi >>> 8) & 0xffff;
}

/** True in protected mode outside virtual-8086 mode. */
export function isProtected(c: CpuCore): boolean {
  return (c.cr0 & CR0_PE) !== 0 && (c.flags & VM) === 0;
}

/** Recomputes the valid read and write offset ranges of segment `s`. */
export function updateRanges(c: CpuCore, s: number): void {
  const a = c.segAttr[s];
  if ((a & ATTR_P) === 0 || (a & ATTR_S) === 0) {
    c.rdLo[s] = c.wrLo[s] = 0;
    c.rdHi[s] = c.wrHi[s] = -1;
    return;
  }
  let lo = 0;
  let hi = c.segLimit[s];
  const code = (a & ATTR_CODE) !== 0;
  if (!code && (a & 4) !== 0) {
    lo = hi + 1;
    hi = (a & ATTR_DB) !== 0 ? 0xffffffff : 0xffff;
  }
  if (code && (a & 2) === 0) {
    c.rdLo[s] = 0;
    c.rdHi[s] = -1;
  } else {
    c.rdLo[s] = lo;
    c.rdHi[s] = hi;
  }
  if (code || (a & 2) === 0) {
    c.wrLo[s] = 0;
    c.wrHi[s] = -1;
  } else {
    c.wrLo[s] = lo;
    c.wrHi[s] = hi;
  }
}

/** Fills a segment cache and its derived state. */
export function setSegCache(
  c: CpuCore,
  s: number,
  sel: number,
  base: number,
  limit: number,
  attr: number,
): void {
  c.segSel[s] = sel;
  c.segBase[s] = base | 0;
  c.segBaseHi[s] = 0;
  c.segLimit[s] = limit;
  c.segAttr[s] = attr;
  updateRanges(c, s);
  if (s === CS) {
    c.code32 = (attr & ATTR_DB) !== 0;
    c.fetchLen = 0;
    // The rest of this instruction already has its operands; the next one uses the new size.
    if (!c.prefixed) {
      c.op32 = c.addr32 = c.code32;
      c.table = c.code32 ? c.table32 : c.table16;
    }
    if ((c.efer & EFER_LMA) !== 0 || c.code64) updateMode(c);
  } else if (s === SS) {
    c.stack32 = (attr & ATTR_DB) !== 0;
  }
}

/** Sets the current privilege level (the TLB half and fetch window follow it). */
export function setCpl(c: CpuCore, cpl: number): void {
  c.cpl = cpl;
  const user = cpl === 3 ? TLB_SIZE : 0;
  if (user !== c.tlbUser) {
    c.tlbUser = user;
    c.fetchLen = 0;
  }
}

/** Loads a segment register the real-mode way: base = selector * 16, limit kept. */
export function loadSegReal(c: CpuCore, s: number, sel: number): void {
  sel &= 0xffff;
  if ((c.flags & VM) !== 0) {
    setSegCache(c, s, sel, sel << 4, 0xffff, 0xf3);
  } else {
    setSegCache(c, s, sel, sel << 4, c.segLimit[s], (c.segAttr[s] & 0xff00) | 0x93);
  }
}

/**
 * Reads the descriptor for `sel` into {@linkcode DESC}; raises `vector` (#GP unless
 * told) with the selector as error code when it lies outside its table.
 */
export function readDescriptor(c: CpuCore, sel: number, vector = EXC_GP): void {
  const index = sel & 0xfff8;
  let base: number, limit: number;
  if ((sel & 4) !== 0) {
    if ((c.segAttr[LDTR] & ATTR_P) === 0) fault(c, vector, sel & 0xfffc);
    base = c.segBase[LDTR];
    limit = c.segLimit[LDTR];
  } else {
    base = c.gdtBase;
    limit = c.gdtLimit;
  }
  if (index + 7 > limit) fault(c, vector, sel & 0xfffc);
  // Long mode: the table may lie above 4 GiB; its upper half picks the TLB's window.
  if ((c.efer & EFER_LMA) !== 0) {
    const hi = (sel & 4) !== 0 ? c.segBaseHi[LDTR] : c.gdtBaseHi;
    if (hi !== c.linHi) setWindow(c, hi);
  }
  const lin = (base + index) | 0;
  DESC[0] = sysRead32(c, lin);
  DESC[1] = sysRead32(c, (lin + 4) | 0);
  DESC[2] = lin;
}

/** Sets the accessed bit of the descriptor last read, as the CPU does on a load. */
export function markAccessed(c: CpuCore): void {
  if ((DESC[1] & 0x100) === 0) {
    DESC[1] |= 0x100;
    sysWrite32(c, (DESC[2] + 4) | 0, DESC[1]);
  }
}

/** MOV/POP/LxS to a data segment register or SS, with the protected-mode checks. */
export function loadSeg(c: CpuCore, s: number, sel: number): void {
  sel &= 0xffff;
  if (!isProtected(c)) {
    loadSegReal(c, s, sel);
    return;
  }
  if ((sel & 0xfffc) === 0) {
    // 64-bit mode takes a null SS below CPL 3 (with RPL = CPL).
    if (s === SS && !(c.code64 && c.cpl !== 3 && (sel & 3) === c.cpl)) fault(c, EXC_GP, 0);
    setSegCache(c, s, sel, 0, 0, 0);
    return;
  }
  readDescriptor(c, sel);
  const hi = DESC[1];
  const attr = descAttr(hi);
  const dpl = (attr >> 5) & 3;
  const rpl = sel & 3;
  const code = (attr & ATTR_CODE) !== 0;
  if (s === SS) {
    if (rpl !== c.cpl || dpl !== c.cpl || (attr & ATTR_S) === 0 || code || (attr & 2) === 0) {
      fault(c, EXC_GP, sel & 0xfffc);
    }
    if ((attr & ATTR_P) === 0) fault(c, EXC_SS, sel & 0xfffc);
  } else {
    if ((attr & ATTR_S) === 0 || (code && (attr & 2) === 0)) fault(c, EXC_GP, sel & 0xfffc);
    if ((!code || (attr & 4) === 0) && (dpl < c.cpl || dpl < rpl)) {
      fault(c, EXC_GP, sel & 0xfffc);
    }
    if ((attr & ATTR_P) === 0) fault(c, EXC_NP, sel & 0xfffc);
  }
  markAccessed(c);
  setSegCache(c, s, sel, descBase(DESC[0], hi), descLimit(DESC[0], hi), descAttr(DESC[1]));
}

/**
 * Checks that the descriptor in {@linkcode DESC} is a code segment a far JMP/CALL/RET
 * may load as CS at privilege `cpl` and loads it with EIP `eip`.
 */
export function loadCsChecked(c: CpuCore, sel: number, eip: number, cpl: number): void {
  const lo = DESC[0], hi = DESC[1];
  const attr = descAttr(hi);
  if ((attr & ATTR_S) === 0 || (attr & ATTR_CODE) === 0) fault(c, EXC_GP, sel & 0xfffc);
  if ((attr & ATTR_P) === 0) fault(c, EXC_NP, sel & 0xfffc);
  const limit = descLimit(lo, hi);
  // A 64-bit code segment (L under EFER.LMA) has no limit.
  const flat = (c.efer & EFER_LMA) !== 0 && (attr & 0x2000) !== 0;
  if ((eip >>> 0) > limit && !flat) fault(c, EXC_GP, 0);
  markAccessed(c);
  setSegCache(c, CS, (sel & 0xfffc) | cpl, descBase(lo, hi), limit, descAttr(DESC[1]));
  setCpl(c, cpl);
  c.eip = eip | 0;
}

/** Nulls data segment registers the new (outer) privilege may not use (far RET, IRET). */
export function invalidateSegsForCpl(c: CpuCore): void {
  for (const s of [0, 3, 4, 5]) {
    const a = c.segAttr[s];
    const dpl = (a >> 5) & 3;
    const conformingCode = (a & 0x1c) === 0x1c;
    if ((a & ATTR_P) !== 0 && !conformingCode && dpl < c.cpl) {
      setSegCache(c, s, 0, 0, 0, 0);
    }
  }
}
