// Guest memory as the CPU sees it: linear and segment-checked accesses through the TLB, and fetch

import { PAGE_MMIO, PAGE_RAM, PAGE_ROM } from "../../../core/memory/address_space.ts";
import { ACCESS_READ, ACCESS_WRITE, tlbFill, translate, translateExec } from "./paging.ts";
import { type CpuCore, CS, EXC_GP, EXC_SS, fault, SEG_LIN, SS, TLB_MASK } from "./state.ts";
import { linSlow, setWindow } from "./paging_long.ts";

// Translated code re-checks its guest bytes after `codeEpoch` moves (see jit/dispatch.ts):
// a store through the slow path to a page holding code (which the TLB never maps for
// direct writes) or to anything but RAM moves it, and so does a read from MMIO (a device
// may DMA).

/**
 * Before a store that took the slow path reaches `phys`. A store to MMIO may start a
 * device (which may write RAM by DMA) or change the memory map, and a store to a page
 * holding translated code changes that code: both start a new code epoch and ask for
 * the boundary, so running translated code stops after the instruction. A store to
 * plain RAM (a TLB miss) needs neither, and translated code goes on.
 */
function slowStore(c: CpuCore, phys: number): void {
  const page = phys >>> 12;
  if (c.mem.pageKind[page] !== PAGE_RAM || c.codePages[page] === 1) {
    c.codeEpoch++;
    c.attention = true;
  }
}

function slowRead8(c: CpuCore, lin: number): number {
  const phys = translate(c, lin, ACCESS_READ);
  tlbFill(c, lin, phys, c.xlWritable);
  if (c.mem.pageKind[phys >>> 12] === PAGE_MMIO) c.codeEpoch++;
  return c.mem.read8(phys);
}

function slowWrite8(c: CpuCore, lin: number, v: number): void {
  const phys = translate(c, lin, ACCESS_WRITE);
  tlbFill(c, lin, phys, true);
  slowStore(c, phys);
  c.mem.write8(phys, v);
}

/** Reads a byte at a linear address. */
export function linRead8(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  if (c.tlbTagR[i] === pn) return c.tlbBytes[i][c.tlbOff[i] + (lin & 0xfff)];
  return slowRead8(c, lin);
}

/** Reads a little-endian word at a linear address. */
export function linRead16(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  const o = lin & 0xfff;
  if (c.tlbTagR[i] === pn && o !== 0xfff) {
    const p = c.tlbOff[i] + o;
    if ((p & 1) === 0) return c.tlbU16[i][p >> 1];
    const b = c.tlbBytes[i];
    return b[p] | (b[p + 1] << 8);
  }
  if (o !== 0xfff) {
    const phys = translate(c, lin, ACCESS_READ);
    tlbFill(c, lin, phys, c.xlWritable);
    if (c.mem.pageKind[phys >>> 12] === PAGE_MMIO) c.codeEpoch++;
    return c.mem.read16(phys);
  }
  // Crossing a page: both pages must translate before anything is read.
  const lo = translate(c, lin, ACCESS_READ);
  const hi = translate(c, (lin + 1) | 0, ACCESS_READ);
  const k = c.mem.pageKind;
  if (k[lo >>> 12] === PAGE_MMIO || k[hi >>> 12] === PAGE_MMIO) c.codeEpoch++;
  return c.mem.read8(lo) | (c.mem.read8(hi) << 8);
}

/** Reads a little-endian dword at a linear address (int32). */
export function linRead32(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  const o = lin & 0xfff;
  if (c.tlbTagR[i] === pn && o <= 0xffc) {
    const p = c.tlbOff[i] + o;
    if ((p & 3) === 0) return c.tlbI32[i][p >> 2];
    const b = c.tlbBytes[i];
    return b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
  }
  if (o <= 0xffc) {
    const phys = translate(c, lin, ACCESS_READ);
    tlbFill(c, lin, phys, c.xlWritable);
    if (c.mem.pageKind[phys >>> 12] === PAGE_MMIO) c.codeEpoch++;
    return c.mem.read32(phys) | 0;
  }
  // Crossing a page: the first page faults first; a fault on the second reports its first
  // byte (CR2), as the SDM and QEMU do, not the access's last byte.
  translate(c, lin, ACCESS_READ);
  translate(c, ((lin | 0xfff) + 1) | 0, ACCESS_READ);
  return linRead8(c, lin) | (linRead8(c, (lin + 1) | 0) << 8) |
    (linRead8(c, (lin + 2) | 0) << 16) | (linRead8(c, (lin + 3) | 0) << 24);
}

/** Writes a byte at a linear address. */
export function linWrite8(c: CpuCore, lin: number, v: number): void {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  if (c.tlbTagW[i] === pn) {
    c.tlbBytes[i][c.tlbOff[i] + (lin & 0xfff)] = v;
    return;
  }
  slowWrite8(c, lin, v);
}

/** Writes a word at a linear address. */
export function linWrite16(c: CpuCore, lin: number, v: number): void {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  const o = lin & 0xfff;
  if (c.tlbTagW[i] === pn && o !== 0xfff) {
    const p = c.tlbOff[i] + o;
    if ((p & 1) === 0) {
      c.tlbU16[i][p >> 1] = v;
      return;
    }
    const b = c.tlbBytes[i];
    b[p] = v;
    b[p + 1] = v >> 8;
    return;
  }
  if (o !== 0xfff) {
    const phys = translate(c, lin, ACCESS_WRITE);
    tlbFill(c, lin, phys, true);
    slowStore(c, phys);
    c.mem.write16(phys, v & 0xffff);
    return;
  }
  const lo = translate(c, lin, ACCESS_WRITE);
  const hi = translate(c, (lin + 1) | 0, ACCESS_WRITE);
  slowStore(c, lo);
  slowStore(c, hi);
  c.mem.write8(lo, v & 0xff);
  c.mem.write8(hi, (v >> 8) & 0xff);
}

/** Writes a dword at a linear address. */
export function linWrite32(c: CpuCore, lin: number, v: number): void {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  const o = lin & 0xfff;
  if (c.tlbTagW[i] === pn && o <= 0xffc) {
    const p = c.tlbOff[i] + o;
    if ((p & 3) === 0) {
      c.tlbI32[i][p >> 2] = v;
      return;
    }
    const b = c.tlbBytes[i];
    b[p] = v;
    b[p + 1] = v >> 8;
    b[p + 2] = v >> 16;
    b[p + 3] = v >> 24;
    return;
  }
  if (o <= 0xffc) {
    const phys = translate(c, lin, ACCESS_WRITE);
    tlbFill(c, lin, phys, true);
    slowStore(c, phys);
    c.mem.write32(phys, v >>> 0);
    return;
  }
  translate(c, lin, ACCESS_WRITE);
  translate(c, ((lin | 0xfff) + 1) | 0, ACCESS_WRITE);
  linWrite8(c, lin, v & 0xff);
  linWrite8(c, (lin + 1) | 0, (v >> 8) & 0xff);
  linWrite8(c, (lin + 2) | 0, (v >> 16) & 0xff);
  linWrite8(c, (lin + 3) | 0, (v >>> 24) & 0xff);
}

/** The fault for a limit or rights violation through segment `seg`: #SS for SS, else #GP. */
export function segFault(c: CpuCore, seg: number): void {
  // 64-bit mode's flat operand: another 4 GiB window, or a non-canonical address.
  if (seg === SEG_LIN) return linSlow(c, c.eaStack);
  // The 286 reports real-mode stack limit violations as #GP too (conformance data).
  return fault(c, seg === SS && c.model.family > 2 ? EXC_SS : EXC_GP, 0);
}

// The seg:off accessors take `off` unsigned or as an int32 bit pattern (`CpuCore.eaOff`).

/** Reads a byte at seg:off. */
export function read8(c: CpuCore, seg: number, off: number): number {
  off = off >>> 0;
  if (off < c.rdLo[seg] || off > c.rdHi[seg]) segFault(c, seg);
  return linRead8(c, (c.segBase[seg] + off) | 0);
}

/** Reads a word at seg:off. */
export function read16(c: CpuCore, seg: number, off: number): number {
  off = off >>> 0;
  if (off < c.rdLo[seg] || off + 1 > c.rdHi[seg]) segFault(c, seg);
  return linRead16(c, (c.segBase[seg] + off) | 0);
}

/** Reads a dword at seg:off (int32). */
export function read32(c: CpuCore, seg: number, off: number): number {
  off = off >>> 0;
  if (off < c.rdLo[seg] || off + 3 > c.rdHi[seg]) segFault(c, seg);
  return linRead32(c, (c.segBase[seg] + off) | 0);
}

/** Writes a byte at seg:off. */
export function write8(c: CpuCore, seg: number, off: number, v: number): void {
  off = off >>> 0;
  if (off < c.wrLo[seg] || off > c.wrHi[seg]) segFault(c, seg);
  linWrite8(c, (c.segBase[seg] + off) | 0, v);
}

/** Writes a word at seg:off. */
export function write16(c: CpuCore, seg: number, off: number, v: number): void {
  off = off >>> 0;
  if (off < c.wrLo[seg] || off + 1 > c.wrHi[seg]) segFault(c, seg);
  linWrite16(c, (c.segBase[seg] + off) | 0, v);
}

/** Writes a dword at seg:off. */
export function write32(c: CpuCore, seg: number, off: number, v: number): void {
  off = off >>> 0;
  if (off < c.wrLo[seg] || off + 3 > c.wrHi[seg]) segFault(c, seg);
  linWrite32(c, (c.segBase[seg] + off) | 0, v);
}

/** Checks that `size` bytes at seg:off may be written, without writing (for RMW and far pointers). */
export function checkWrite(c: CpuCore, seg: number, off: number, size: number): void {
  off = off >>> 0;
  if (off < c.wrLo[seg] || off + size - 1 > c.wrHi[seg]) segFault(c, seg);
}

/**
 * Raises the fault a write of `size` bytes at seg:off would raise, without writing. A
 * read-modify-write instruction calls it after its read and before it changes any flag
 * (as QEMU stores before it updates the flags), so a write that faults leaves EFLAGS as
 * they were. The accessed and dirty bits it sets are those the write sets right after.
 */
export function probeWrite(c: CpuCore, seg: number, off: number, size: number): void {
  off = off >>> 0;
  if (off < c.wrLo[seg] || off + size - 1 > c.wrHi[seg]) segFault(c, seg);
  const lin = (c.segBase[seg] + off) | 0;
  const pn = lin >>> 12;
  if (c.tlbTagW[(pn & TLB_MASK) | c.tlbUser] === pn && (lin & 0xfff) <= 4096 - size) return;
  translate(c, lin, ACCESS_WRITE);
  if ((lin & 0xfff) > 4096 - size) translate(c, ((lin | 0xfff) + 1) | 0, ACCESS_WRITE);
}

/** Checks that `size` bytes at seg:off may be read. */
export function checkRead(c: CpuCore, seg: number, off: number, size: number): void {
  off = off >>> 0;
  if (off < c.rdLo[seg] || off + size - 1 > c.rdHi[seg]) segFault(c, seg);
}

/** Points the fetch window at the RAM or ROM page holding `lin` (EIP `eip`, physical `phys`). */
function mapFetch(c: CpuCore, eip: number, lin: number, phys: number): void {
  const page = phys >>> 12;
  const kind = c.mem.pageKind[page];
  if (!c.lenCheck && (kind === PAGE_RAM || kind === PAGE_ROM)) {
    const region = c.mem.regionAt(phys)!;
    const pageOff = lin & 0xfff;
    let start = eip - pageOff;
    let off = page * 4096 - region.base;
    if (start < 0) {
      off += pageOff;
      start = eip;
    }
    const end = Math.min(eip - pageOff + 4095, c.segLimit[CS]);
    c.fetchBytes = region.bytes!;
    c.fetchOff = off;
    c.fetchBase = start | 0;
    c.fetchLen = end - start + 1;
  }
}

/**
 * Points the fetch window at the page of CS:EIP before anything is fetched there (a
 * jump to another page), so the translated code of the target can be found. Call with
 * `instrStart` at EIP: a page fault is the one the instruction's fetch would raise; a
 * limit violation is left to that fetch.
 */
export function mapFetchWindow(c: CpuCore): void {
  const eip = c.eip >>> 0;
  if (eip > c.segLimit[CS]) return;
  const lin = (c.segBase[CS] + eip) | 0;
  mapFetch(c, eip, lin, translateExec(c, lin));
}

function fetchSlow(c: CpuCore): number {
  const eip = c.eip >>> 0;
  if (((c.eip - c.instrStart) >>> 0) >= c.maxInstrLen) fault(c, EXC_GP, 0);
  if (eip > c.segLimit[CS]) fault(c, EXC_GP, 0);
  if (c.code64 && c.ripHi !== c.linHi) setWindow(c, c.ripHi);
  const lin = (c.segBase[CS] + eip) | 0;
  const phys = translateExec(c, lin);
  mapFetch(c, eip, lin, phys);
  c.eip = (c.eip + 1) | 0;
  if (c.mem.pageKind[phys >>> 12] === PAGE_MMIO) c.codeEpoch++;
  return c.mem.read8(phys);
}

/** Fetches the next instruction byte. */
export function fetch8(c: CpuCore): number {
  const o = (c.eip - c.fetchBase) >>> 0;
  if (o < c.fetchLen) {
    c.eip = (c.eip + 1) | 0;
    return c.fetchBytes[c.fetchOff + o];
  }
  return fetchSlow(c);
}

/** Fetches a little-endian word. */
export function fetch16(c: CpuCore): number {
  const o = (c.eip - c.fetchBase) >>> 0;
  if (o + 1 < c.fetchLen) {
    c.eip = (c.eip + 2) | 0;
    const b = c.fetchBytes;
    const p = c.fetchOff + o;
    return b[p] | (b[p + 1] << 8);
  }
  return fetch8(c) | (fetch8(c) << 8);
}

/** Fetches a little-endian dword (int32). */
export function fetch32(c: CpuCore): number {
  const o = (c.eip - c.fetchBase) >>> 0;
  if (o + 3 < c.fetchLen) {
    c.eip = (c.eip + 4) | 0;
    const b = c.fetchBytes;
    const p = c.fetchOff + o;
    return b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
  }
  return fetch16(c) | (fetch16(c) << 16);
}

/** Reads a byte with supervisor rights at a linear address (descriptor tables, TSS). */
export function sysRead8(c: CpuCore, lin: number): number {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    return linRead8(c, lin);
  } finally {
    c.tlbUser = u;
  }
}

/** Reads a word with supervisor rights. */
export function sysRead16(c: CpuCore, lin: number): number {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    return linRead16(c, lin);
  } finally {
    c.tlbUser = u;
  }
}

/** Reads a dword with supervisor rights. */
export function sysRead32(c: CpuCore, lin: number): number {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    return linRead32(c, lin);
  } finally {
    c.tlbUser = u;
  }
}

/** Writes a word with supervisor rights. */
export function sysWrite16(c: CpuCore, lin: number, v: number): void {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    linWrite16(c, lin, v);
  } finally {
    c.tlbUser = u;
  }
}

/** Writes a dword with supervisor rights. */
export function sysWrite32(c: CpuCore, lin: number, v: number): void {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    linWrite32(c, lin, v);
  } finally {
    c.tlbUser = u;
  }
}

/** Writes a byte with supervisor rights. */
export function sysWrite8(c: CpuCore, lin: number, v: number): void {
  const u = c.tlbUser;
  c.tlbUser = 0;
  try {
    linWrite8(c, lin, v);
  } finally {
    c.tlbUser = u;
  }
}

/**
 * Returns the TLB slot through which the page of `lin` can be written directly (RAM),
 * walking the page tables if needed, or -1 when the page is not plain RAM.
 */
export function tlbSlotForWrite(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  if (c.tlbTagW[i] === pn) return i;
  const phys = translate(c, lin, ACCESS_WRITE);
  tlbFill(c, lin, phys, true);
  return c.tlbTagW[i] === pn ? i : -1;
}

/** Like {@linkcode tlbSlotForWrite} for reads (RAM or ROM). */
export function tlbSlotForRead(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  if (c.tlbTagR[i] === pn) return i;
  const phys = translate(c, lin, ACCESS_READ);
  tlbFill(c, lin, phys, c.xlWritable);
  return c.tlbTagR[i] === pn ? i : -1;
}
