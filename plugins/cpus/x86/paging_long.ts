// Long mode: EFER.LMA, 64-bit and compatibility mode, 4-level paging and the TLB's 4 GiB window

import { updateRanges } from "./segmentation.ts";
import {
  type CpuCore,
  CR0_PG,
  CR0_WP,
  CR4_PAE,
  CS,
  EFER_LMA,
  EFER_LME,
  EFER_NXE,
  EXC_GP,
  EXC_PF,
  EXC_SS,
  fault,
  gp,
  SEG_LIN,
  TLB_SIZE,
  type TlbArrays,
} from "./state.ts";

/** The L bit (64-bit code) of a code segment's cached attributes (descriptor bit 53). */
export const ATTR_L = 0x2000;

/** CPUID 8000_0001h EDX: 1 GiB pages. */
const EXT_PDPE1GB = 1 << 26;

/**
 * Re-derives the decoding mode from EFER.LMA and CS.L: 64-bit mode decodes with the
 * 64-bit table (REX, 64-bit addresses, flat segments); compatibility mode and legacy
 * modes with the 16/32-bit ones. Called whenever CS or EFER.LMA changes.
 */
export function updateMode(c: CpuCore): void {
  const on = (c.efer & EFER_LMA) !== 0 && (c.segAttr[CS] & ATTR_L) !== 0;
  if (on) {
    // 64-bit mode ignores CS's base and limit.
    c.segBase[CS] = 0;
    c.segLimit[CS] = 0xffffffff;
    updateRanges(c, CS);
    c.code64 = true;
    c.code32 = true;
    c.rex = 0x100;
    c.fetchLen = 0;
    if (!c.prefixed) {
      c.op32 = true;
      c.addr32 = true;
      c.addrOvr = false;
      c.table = c.table64;
    }
    openLin(c);
    return;
  }
  if (c.code64) {
    c.code64 = false;
    c.rex = 0;
    c.fetchLen = 0;
    if (!c.prefixed) {
      c.addr32 = c.op32 = c.code32;
      c.table = c.code32 ? c.table32 : c.table16;
    }
    // 32-bit code sees only translations of the low 4 GiB, and the translators (which mark
    // the pages holding their code read-only in window 0's TLB only) none of the others'.
    setWindow(c, 0);
    flushOtherWindows(c);
  }
  c.ripHi = 0;
}

/** True when the upper half `hi` makes a canonical (48-bit) address. */
export function canonical(hi: number): boolean {
  return ((hi << 16) >> 16) === hi;
}

/** Opens or closes SEG_LIN's limits: open only while `eaHi` is the TLB's window and canonical. */
export function openLin(c: CpuCore): void {
  c.segBase[SEG_LIN] = 0;
  c.segAttr[SEG_LIN] = 0x93;
  c.segLimit[SEG_LIN] = 0xffffffff;
  if (c.eaHi === c.linHi) {
    c.rdLo[SEG_LIN] = c.wrLo[SEG_LIN] = 0;
    c.rdHi[SEG_LIN] = c.wrHi[SEG_LIN] = 0xffffffff;
  } else {
    c.rdLo[SEG_LIN] = c.wrLo[SEG_LIN] = Infinity;
    c.rdHi[SEG_LIN] = c.wrHi[SEG_LIN] = -1;
  }
}

/** Windows the TLB keeps at once (window 0's arrays among them, never evicted). */
const WINDOWS = 4;
let useCounter = 0;

function currentArrays(c: CpuCore, hi: number): TlbArrays {
  return {
    hi,
    used: 0,
    tagR: c.tlbTagR,
    tagW: c.tlbTagW,
    off: c.tlbOff,
    bytes: c.tlbBytes,
    u16: c.tlbU16,
    i32: c.tlbI32,
    itag: c.itlbTag,
    iphys: c.itlbPhys,
  };
}

function freshArrays(hi: number): TlbArrays {
  const n = 2 * TLB_SIZE;
  return {
    hi,
    used: 0,
    tagR: new Int32Array(n).fill(-1),
    tagW: new Int32Array(n).fill(-1),
    off: new Int32Array(n),
    bytes: new Array(n).fill(new Uint8Array(0)),
    u16: new Array(n).fill(new Uint16Array(0)),
    i32: new Array(n).fill(new Int32Array(0)),
    itag: new Int32Array(n).fill(-1),
    iphys: new Int32Array(n),
  };
}

/** Forgets every translation of the windows other than the current one. */
export function flushOtherWindows(c: CpuCore): void {
  for (const s of c.tlbSets) {
    if (s.tagR === c.tlbTagR) continue;
    s.tagR.fill(-1);
    s.tagW.fill(-1);
    s.itag.fill(-1);
  }
}

/**
 * Makes the TLB hold translations of the 4 GiB of linear addresses whose upper half is
 * `hi`. The TLB's int32 tags (the 32-bit fast paths, the translators and the wasm mirror
 * are as before) stand for window `linHi`; long mode keeps up to four windows' arrays and
 * swaps them in (a kernel at the top of the address space and its direct map and user
 * memory each keep theirs), flushing the least recently used when a fifth is needed.
 */
export function setWindow(c: CpuCore, hi: number): void {
  if (hi !== c.linHi) {
    const sets = c.tlbSets;
    if (sets.length === 0) sets.push(currentArrays(c, c.linHi));
    let next = sets.find((s) => s.hi === hi);
    if (next === undefined) {
      if (sets.length < WINDOWS) {
        next = freshArrays(hi);
        sets.push(next);
      } else {
        next = sets[1];
        for (const s of sets) if (s !== sets[0] && s.used < next.used) next = s;
        next.tagR.fill(-1);
        next.tagW.fill(-1);
        next.itag.fill(-1);
        next.hi = hi;
      }
    }
    next.used = ++useCounter;
    c.tlbTagR = next.tagR;
    c.tlbTagW = next.tagW;
    c.tlbOff = next.off;
    c.tlbBytes = next.bytes;
    c.tlbU16 = next.u16;
    c.tlbI32 = next.i32;
    c.itlbTag = next.itag;
    c.itlbPhys = next.iphys;
    c.linHi = hi;
    c.tlbGen++;
  }
  if (c.code64) openLin(c);
}

/**
 * The slow path of an access through SEG_LIN whose limit check failed: a non-canonical
 * address raises #GP(0) (#SS(0) for a stack reference), another window moves the TLB
 * there; returns when the access may go on.
 */
export function linSlow(c: CpuCore, stack: boolean): void {
  if (!canonical(c.eaHi)) fault(c, stack ? EXC_SS : EXC_GP, 0);
  if (c.eaHi === c.linHi) fault(c, EXC_GP, 0); // an access across a 4 GiB boundary
  setWindow(c, c.eaHi);
}

/** Points SEG_LIN at linear address (`lo`, `hi`) for an access by the instruction itself. */
export function linAt(c: CpuCore, hi: number): void {
  if (hi !== c.eaHi || c.rdHi[SEG_LIN] < 0) {
    c.eaHi = hi;
    openLin(c);
  }
}

/**
 * CR0 and CR4 writes under EFER.LME (SDM vol. 3 §9.8.5): paging on with LME enters
 * long mode (LMA) and needs CR4.PAE; paging off leaves it. Returns with `c.efer` updated.
 */
export function checkLongModeCr(c: CpuCore, cr0: number, cr4: number): void {
  const pg = (cr0 & CR0_PG) !== 0;
  if (pg && (c.cr0 & CR0_PG) === 0 && (c.efer & EFER_LME) !== 0) {
    if ((cr4 & CR4_PAE) === 0) gp(c, 0);
    if ((c.segAttr[CS] & ATTR_L) !== 0) gp(c, 0);
    c.efer |= EFER_LMA;
  } else if (!pg && (c.efer & EFER_LMA) !== 0) {
    if (c.code64) gp(c, 0);
    c.efer &= ~EFER_LMA;
  }
  if ((c.efer & EFER_LMA) !== 0 && (cr4 & CR4_PAE) === 0) gp(c, 0);
}

/** The #PF error code's bit for a reserved bit set in a paging entry (with P). */
const PF_RSVD = 8 | 1;

function pageFault(c: CpuCore, lin: number, code: number): never {
  c.cr2 = lin | 0;
  c.cr2Hi = c.linHi;
  return fault(c, EXC_PF, code);
}

/** The physical address an entry points to (bits 12..51). */
function entryAddr(lo: number, hi: number): number {
  return (hi & 0xfffff) * 4294967296 + ((lo & ~0xfff) >>> 0);
}

/**
 * 4-level translation (SDM vol. 3 §4.5) of linear address (`c.linHi`, `lin`) for an access
 * of `kind` (0 read, 1 write, 2 fetch), as QEMU 7.2 TCG walks it: accessed bits set on the
 * way down, reserved bits (physical address bits from 40, PS in a PML4E, bit 63 without
 * EFER.NXE, the low address bits of large pages) fault with RSVD, permissions combined
 * over the levels, 2 MiB and 1 GiB pages. Returns the physical address.
 */
export function translateLong(c: CpuCore, lin: number, kind: number, rsvdHi: number): number {
  const hi = c.linHi;
  const user = c.tlbUser !== 0;
  const write = kind === 1;
  const mem = c.mem;
  const nxe = (c.efer & EFER_NXE) !== 0;
  const errBase = (write ? 2 : 0) | (user ? 4 : 0) | (kind === 2 && nxe ? 16 : 0);
  let perm = 6;
  let nx = false;
  let table = (c.cr3 & ~0xfff) >>> 0;
  const index = [
    (hi >>> 7) & 0x1ff,
    ((hi & 0x7f) << 2) | (lin >>> 30),
    (lin >>> 21) & 0x1ff,
    (lin >>> 12) & 0x1ff,
  ];
  for (let level = 0; level < 4; level++) {
    const at = table + index[level] * 8;
    const e = mem.read32(at) | 0;
    const eHi = mem.read32(at + 4) | 0;
    if ((e & 1) === 0) return pageFault(c, lin, errBase);
    if ((eHi & rsvdHi) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
    const big = (e & 0x80) !== 0;
    if (big && level === 0) return pageFault(c, lin, errBase | PF_RSVD);
    if (big && level === 1 && (c.model.extFeatures & EXT_PDPE1GB) === 0) {
      return pageFault(c, lin, errBase | PF_RSVD);
    }
    if (big && level === 1 && (e & 0x3fffe000) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
    if (big && level === 2 && (e & 0x1fe000) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
    perm &= e;
    if (nxe && eHi < 0) nx = true;
    const leaf = level === 3 || big;
    if (!leaf) {
      if ((e & 0x20) === 0) mem.write32(at, (e | 0x20) >>> 0);
      table = entryAddr(e, eHi);
      continue;
    }
    if (user && (perm & 4) === 0) return pageFault(c, lin, errBase | 1);
    if (write && (perm & 2) === 0 && (user || (c.cr0 & CR0_WP) !== 0)) {
      return pageFault(c, lin, errBase | 1);
    }
    if (nx && kind === 2) return pageFault(c, lin, errBase | 1);
    const upd = e | 0x20 | (write ? 0x40 : 0);
    if (upd !== e) {
      c.codeEpoch++;
      mem.write32(at, upd >>> 0);
    }
    c.xlWritable = (upd & 0x40) !== 0 && ((perm & 2) !== 0 || (!user && (c.cr0 & CR0_WP) === 0));
    const size = level === 3 ? 0xfff : level === 2 ? 0x1fffff : 0x3fffffff;
    return entryAddr(e, eHi) - ((e & ~0xfff) >>> 0 & size) + ((lin & size) >>> 0);
  }
  return 0; // unreachable
}
