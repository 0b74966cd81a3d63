// Linear to physical translation: 2-level, PSE and PAE/NX page walks and the software TLB

import { PAGE_RAM, PAGE_ROM } from "../../../core/memory/address_space.ts";
import { FEAT_PSE36 } from "./models.ts";
import { flushOtherWindows, translateLong } from "./paging_long.ts";
import {
  type CpuCore,
  CR0_PG,
  CR0_WP,
  CR4_PAE,
  CR4_PSE,
  EFER_LMA,
  EFER_NXE,
  EXC_PF,
  fault,
  TLB_MASK,
  TLB_SIZE,
} from "./state.ts";

/** Access kinds for {@linkcode translate}. */
export const ACCESS_READ = 0, ACCESS_WRITE = 1, ACCESS_EXEC = 2;

/** Forgets every cached translation and the fetch window. */
export function flushTlb(c: CpuCore): void {
  c.tlbTagR.fill(-1);
  c.tlbTagW.fill(-1);
  c.itlbTag.fill(-1);
  c.tlbGen++;
  c.wtlb?.fill(-1);
  c.fetchLen = 0;
  c.memGeneration = c.mem.generation;
  if (c.tlbSets.length !== 0) flushOtherWindows(c);
}

/** Forgets the translations of the page holding `lin` (INVLPG). */
export function flushTlbPage(c: CpuCore, lin: number): void {
  const pn = lin >>> 12;
  c.tlbGen++;
  for (const half of [0, TLB_SIZE]) {
    const i = (pn & TLB_MASK) | half;
    if (c.tlbTagR[i] === pn) c.tlbTagR[i] = -1;
    if (c.tlbTagW[i] === pn) c.tlbTagW[i] = -1;
    if (c.itlbTag[i] === pn) c.itlbTag[i] = -1;
    for (const s of c.tlbSets) { // long mode's other windows: the same low page, to be safe
      if (s.tagR[i] === pn) s.tagR[i] = -1;
      if (s.tagW[i] === pn) s.tagW[i] = -1;
      if (s.itag[i] === pn) s.itag[i] = -1;
    }
    const w = c.wtlb;
    if (w !== null && (w[i << 3] === pn || w[(i << 3) + 2] === pn)) {
      w.fill(-1, i << 3, (i << 3) + 4);
    }
  }
  c.fetchLen = 0;
}

/** Re-flushes when the memory map changed under us (a region added or removed). */
export function checkMemoryGeneration(c: CpuCore): void {
  if (c.memGeneration !== c.mem.generation) flushTlb(c);
}

/** CPUID 8000_0001h EDX: long mode. */
const EXT_LM = 1 << 29;

/** The #PF error code's bit for a reserved bit set in a paging entry (with P). */
const PF_RSVD = 8 | 1;

/**
 * The reserved bits of a PAE entry's high dword, as QEMU 7.2 TCG checks them: the
 * address bits from the model's physical width (40 with long mode, else 36 with PSE-36,
 * else 32) up to bit 51, and bit 63 (XD) while EFER.NXE is clear.
 */
function paeHighReserved(c: CpuCore): number {
  const lm = (c.model.extFeatures & EXT_LM) !== 0; // TCG's default phys-bits is then 40
  const physBits = lm ? 40 : (c.model.features & FEAT_PSE36) !== 0 ? 36 : 32;
  const addr = (0xfffff << (physBits - 32)) & 0xfffff;
  return (addr | ((c.efer & EFER_NXE) === 0 ? 0x80000000 : 0)) | 0;
}

function pageFault(c: CpuCore, lin: number, code: number): never {
  c.cr2 = lin | 0;
  c.cr2Hi = 0;
  return fault(c, EXC_PF, code);
}

/**
 * Translates linear address `lin` for an access of `kind` at the current privilege
 * (user when `c.tlbUser` is set), setting accessed and dirty bits; raises #PF. Sets
 * `c.xlWritable` when a later write to the page needs no walk. Returns the physical
 * address with the A20 mask applied.
 */
export function translate(c: CpuCore, lin: number, kind: number): number {
  if ((c.cr0 & CR0_PG) === 0) {
    c.xlWritable = true;
    return (lin & c.a20Mask) >>> 0;
  }
  const user = c.tlbUser !== 0;
  const write = kind === ACCESS_WRITE;
  const mem = c.mem;
  // I/D is reported for fetches only with NX in force (EFER.NXE and PAE), as QEMU does.
  const errBase = (write ? 2 : 0) | (user ? 4 : 0) |
    (kind === ACCESS_EXEC && (c.efer & EFER_NXE) !== 0 && (c.cr4 & CR4_PAE) !== 0 ? 16 : 0);
  let perm: number; // bit1 R/W, bit2 U/S, combined over levels
  let phys: number;
  let dirty: boolean;
  let nx = false;
  if ((c.cr4 & CR4_PAE) !== 0) {
    if ((c.efer & EFER_LMA) !== 0) return translateLong(c, lin, kind, paeHighReserved(c));
    const pdptAddr = ((c.cr3 & ~0x1f) + ((lin >>> 30) << 3)) >>> 0;
    const pdpte = mem.read32(pdptAddr & c.a20Mask);
    if ((pdpte & 1) === 0) return pageFault(c, lin, errBase);
    const rsvdHi = paeHighReserved(c);
    // A PDPTE also has bits 52..62 reserved, and its XD bit whatever EFER.NXE says.
    const pdpteHi = mem.read32((pdptAddr + 4) & c.a20Mask);
    if ((pdpteHi & (rsvdHi | 0xfff00000)) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
    const pdeAddr = ((pdpte & ~0xfff) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0;
    const pde = mem.read32(pdeAddr & c.a20Mask);
    const pdeHi = mem.read32((pdeAddr + 4) & c.a20Mask);
    if ((pde & 1) === 0) return pageFault(c, lin, errBase);
    if ((pdeHi & rsvdHi) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
    // A 2 MiB page's address bits 13..20 (bit 12 is PAT) are reserved.
    if ((pde & 0x80) !== 0 && (pde & 0x1fe000) !== 0) {
      return pageFault(c, lin, errBase | PF_RSVD);
    }
    const nxe = (c.efer & EFER_NXE) !== 0;
    if (nxe && (pdeHi & 0x80000000) !== 0) nx = true;
    if ((pde & 0x80) !== 0) {
      perm = pde;
      phys = ((pde & 0xffe00000) | (lin & 0x1fffff)) >>> 0;
      if (!checkPerm(c, perm, write, user, kind, nx)) return pageFault(c, lin, errBase | 1);
      const upd = pde | 0x20 | (write ? 0x40 : 0);
      if (upd !== pde) {
        tableStore(c, pdeAddr & c.a20Mask);
        mem.write32(pdeAddr & c.a20Mask, upd);
      }
      dirty = (upd & 0x40) !== 0;
    } else {
      const pteAddr = ((pde & ~0xfff) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0;
      const pte = mem.read32(pteAddr & c.a20Mask);
      const pteHi = mem.read32((pteAddr + 4) & c.a20Mask);
      if ((pte & 1) === 0) return pageFault(c, lin, errBase);
      if ((pteHi & rsvdHi) !== 0) return pageFault(c, lin, errBase | PF_RSVD);
      if (nxe && (pteHi & 0x80000000) !== 0) nx = true;
      perm = pde & pte;
      if (!checkPerm(c, perm, write, user, kind, nx)) return pageFault(c, lin, errBase | 1);
      if ((pde & 0x20) === 0) {
        tableStore(c, pdeAddr & c.a20Mask);
        mem.write32(pdeAddr & c.a20Mask, pde | 0x20);
      }
      const upd = pte | 0x20 | (write ? 0x40 : 0);
      if (upd !== pte) {
        tableStore(c, pteAddr & c.a20Mask);
        mem.write32(pteAddr & c.a20Mask, upd);
      }
      phys = ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
      dirty = (upd & 0x40) !== 0;
    }
  } else {
    const pdeAddr = ((c.cr3 & ~0xfff) + ((lin >>> 22) << 2)) >>> 0;
    const pde = mem.read32(pdeAddr & c.a20Mask);
    if ((pde & 1) === 0) return pageFault(c, lin, errBase);
    if ((pde & 0x80) !== 0 && (c.cr4 & CR4_PSE) !== 0) {
      perm = pde;
      if (!checkPerm(c, perm, write, user, kind, false)) return pageFault(c, lin, errBase | 1);
      const upd = pde | 0x20 | (write ? 0x40 : 0);
      if (upd !== pde) {
        tableStore(c, pdeAddr & c.a20Mask);
        mem.write32(pdeAddr & c.a20Mask, upd);
      }
      phys = ((pde & 0xffc00000) | (lin & 0x3fffff)) >>> 0;
      dirty = (upd & 0x40) !== 0;
    } else {
      const pteAddr = ((pde & ~0xfff) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
      const pte = mem.read32(pteAddr & c.a20Mask);
      if ((pte & 1) === 0) return pageFault(c, lin, errBase);
      perm = pde & pte;
      if (!checkPerm(c, perm, write, user, kind, false)) return pageFault(c, lin, errBase | 1);
      if ((pde & 0x20) === 0) {
        tableStore(c, pdeAddr & c.a20Mask);
        mem.write32(pdeAddr & c.a20Mask, pde | 0x20);
      }
      const upd = pte | 0x20 | (write ? 0x40 : 0);
      if (upd !== pte) {
        tableStore(c, pteAddr & c.a20Mask);
        mem.write32(pteAddr & c.a20Mask, upd);
      }
      phys = ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
      dirty = (upd & 0x40) !== 0;
    }
  }
  c.xlWritable = dirty && ((perm & 2) !== 0 || (!user && (c.cr0 & CR0_WP) === 0));
  return (phys & c.a20Mask) >>> 0;
}

/**
 * {@linkcode translate} for an instruction fetch at `lin`, through the fetch TLB: a
 * hit costs two loads instead of a page walk (the walk already set the accessed bits).
 */
export function translateExec(c: CpuCore, lin: number): number {
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  if (c.itlbTag[i] === pn) return (c.itlbPhys[i] | (lin & 0xfff)) >>> 0;
  const phys = translate(c, lin, ACCESS_EXEC);
  c.itlbTag[i] = pn;
  c.itlbPhys[i] = phys & ~0xfff;
  return phys;
}

function checkPerm(
  c: CpuCore,
  perm: number,
  write: boolean,
  user: boolean,
  kind: number,
  nx: boolean,
): boolean {
  if (user && (perm & 4) === 0) return false;
  if (write && (perm & 2) === 0 && (user || (c.cr0 & CR0_WP) !== 0)) return false;
  if (nx && kind === ACCESS_EXEC) return false;
  return true;
}

const VIEWS = new WeakMap<Uint8Array, { u16: Uint16Array; i32: Int32Array } | null>();

/** Word and dword views over a region's bytes (null when its offset is not 4-aligned). */
function viewsOf(bytes: Uint8Array): { u16: Uint16Array; i32: Int32Array } | null {
  let v = VIEWS.get(bytes);
  if (v === undefined) {
    v = (bytes.byteOffset & 3) !== 0 ? null : {
      u16: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1),
      i32: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2),
    };
    VIEWS.set(bytes, v);
  }
  return v;
}

/**
 * Before an accessed or dirty bit update at physical `addr`: a store to RAM that no
 * TLB saw, so when the page holds translated code (or is not RAM) a new code epoch
 * starts and translated code re-checks its bytes.
 */
function tableStore(c: CpuCore, addr: number): void {
  const page = addr >>> 12;
  if (c.mem.pageKind[page] !== PAGE_RAM || c.codePages[page] === 1) c.codeEpoch++;
}

/**
 * Enters the translation of `lin` to `phys` into the TLB when the page is RAM or ROM,
 * so later accesses index the backing bytes directly.
 */
export function tlbFill(c: CpuCore, lin: number, phys: number, writable: boolean): void {
  const page = phys >>> 12;
  const kind = c.mem.pageKind[page];
  if (kind !== PAGE_RAM && kind !== PAGE_ROM) return;
  const region = c.mem.regionAt(phys)!;
  const bytes = region.bytes!;
  const views = viewsOf(bytes);
  if (!views) return; // a misaligned alias: leave it to the bus
  const pn = lin >>> 12;
  const i = (pn & TLB_MASK) | c.tlbUser;
  c.tlbBytes[i] = bytes;
  c.tlbU16[i] = views.u16;
  c.tlbI32[i] = views.i32;
  c.tlbOff[i] = page * 4096 - region.base;
  c.tlbTagR[i] = pn;
  c.tlbTagW[i] = writable && kind === PAGE_RAM && c.codePages[page] !== 1 ? pn : -1;
  const w = c.wtlb;
  if (w !== null && c.linHi === 0) {
    // The wasm mirror: the page number as an i64 (low, high word), the host address.
    const k = i << 3;
    if (bytes.buffer === c.wtlbBuffer) {
      w[k] = pn;
      w[k + 1] = 0;
      const wr = c.tlbTagW[i] === pn;
      w[k + 2] = wr ? pn : -1;
      w[k + 3] = wr ? 0 : -1;
      w[k + 4] = bytes.byteOffset + c.tlbOff[i];
    } else w.fill(-1, k, k + 4);
  }
}
