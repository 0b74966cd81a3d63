// The interpreter's state to and from core's X86State (the monitor, savevm, other backends)

import {
  X86_CR0,
  X86_CR2,
  X86_CR3,
  X86_CR4,
  X86_DR,
  X86_EFER,
  X86_EV_HALTED,
  X86_EV_NMI_BLOCKED,
  X86_EV_NMI_PENDING,
  X86_EV_SHADOW,
  X86_EV_WAIT_SIPI,
  X86_FCS,
  X86_FCW,
  X86_FDP,
  X86_FDS,
  X86_FIP,
  X86_FOP,
  X86_FSW,
  X86_FTW,
  X86_GDTR_BASE,
  X86_GDTR_LIMIT,
  X86_GPR,
  X86_IDTR_BASE,
  X86_IDTR_LIMIT,
  X86_MSR_INDEX,
  X86_MXCSR,
  X86_RIP,
  X86_SEG,
  X86_SEG_SIZE,
  X86_ST,
  X86State,
} from "../../../core/x86_state.ts";
import { getFlags } from "./flags.ts";
import { extendedOf, setExtended } from "./fpu_formats.ts";
import { flushTlb } from "./paging.ts";
import { setCpl, setSegCache } from "./segmentation.ts";
import { type CpuCore, CS, EFER_LMA } from "./state.ts";
import { updateMode } from "./paging_long.ts";
import { PLAIN_MSRS, readMsr, readTsc, writeMsr } from "./msr.ts";

/** MSRs the interpreter answers from fields (not from its table of stored MSRs). */
const MSR_SYSENTER_CS = 0x174, MSR_SYSENTER_ESP = 0x175, MSR_SYSENTER_EIP = 0x176;
const MSR_TSC = 0x10, MSR_APIC_BASE = 0x1b, MSR_PAT = 0x277;

/** Writes the architectural state of `c` into `s` (lazy flags and TSC made concrete). */
export function saveArchState(c: CpuCore, s: X86State): void {
  s.clear();
  for (let r = 0; r < 16; r++) setHalves(s, X86_GPR + 8 * r, c.regs[r], c.regsHi[r]);
  setHalves(s, X86_RIP, c.eip, c.ripHi);
  s.rflags = getFlags(c) >>> 0;
  s.setU64(X86_CR0, c.cr0 >>> 0);
  setHalves(s, X86_CR2, c.cr2, c.cr2Hi);
  s.setU64(X86_CR3, c.cr3 >>> 0);
  s.setU64(X86_CR4, c.cr4 >>> 0);
  s.setU64(X86_EFER, c.efer >>> 0);
  for (let i = 0; i < 8; i++) s.setU64(X86_DR + 8 * i, c.dr[i] >>> 0);
  setHalves(s, X86_GDTR_BASE, c.gdtBase, c.gdtBaseHi);
  s.setU32(X86_GDTR_LIMIT, c.gdtLimit);
  setHalves(s, X86_IDTR_BASE, c.idtBase, c.idtBaseHi);
  s.setU32(X86_IDTR_LIMIT, c.idtLimit);
  s.cpl = c.cpl;
  s.events = (c.halted ? X86_EV_HALTED : 0) | (c.nmiPending ? X86_EV_NMI_PENDING : 0) |
    (c.nmiBlocked ? X86_EV_NMI_BLOCKED : 0) | (c.shadow ? X86_EV_SHADOW : 0) |
    (c.waitSipi ? X86_EV_WAIT_SIPI : 0);
  for (let i = 0; i < 8; i++) {
    s.setSegment(i, {
      selector: c.segSel[i],
      attributes: c.segAttr[i],
      limit: c.segLimit[i],
      base: 0,
    });
    setHalves(s, X86_SEG + X86_SEG_SIZE * i + 8, c.segBase[i], c.segBaseHi[i]);
  }
  s.setMsr(MSR_SYSENTER_CS, BigInt(c.sysenterCs & 0xffff));
  s.setMsr(MSR_SYSENTER_ESP, BigInt(c.sysenterEsp >>> 0));
  s.setMsr(MSR_SYSENTER_EIP, BigInt(c.sysenterEip >>> 0));
  s.setMsr(MSR_TSC, BigInt(Math.max(0, Math.floor(readTsc(c)))));
  s.setMsr(MSR_APIC_BASE, BigInt(c.apicBase >>> 0));
  const pat = readMsr(c, MSR_PAT);
  s.setMsr(MSR_PAT, BigInt(pat[1] >>> 0) << 32n | BigInt(pat[0] >>> 0));
  for (const [index, [lo, hi]] of [...c.msrs].sort((a, b) => a[0] - b[0])) {
    if (index === MSR_PAT) continue;
    s.setMsr(index, BigInt(hi >>> 0) << 32n | BigInt(lo >>> 0));
  }
  const f = c.fpu;
  s.setU16(X86_FCW, f.cw);
  s.setU16(X86_FSW, f.statusWord());
  s.setU16(X86_FTW, f.tag);
  s.setU16(X86_FOP, f.fop);
  s.setU64(X86_FIP, f.fip >>> 0);
  s.setU64(X86_FDP, f.fdp >>> 0);
  s.setU16(X86_FCS, f.fcs);
  s.setU16(X86_FDS, f.fds);
  for (let i = 0; i < 8; i++) {
    const [lo, hi, se] = extendedOf(f, (f.top + i) & 7);
    const at = X86_ST + 16 * i;
    s.setU32(at, lo);
    s.setU32(at + 4, hi);
    s.setU16(at + 8, se);
  }
  s.setU32(X86_MXCSR, c.sse.mxcsr);
  for (let i = 0; i < 16; i++) s.xmm(i).set(c.sse.u8.subarray(16 * i, 16 * i + 16));
}

/**
 * Loads the architectural state of `s` into `c`: the registers, then everything derived
 * from them (segment ranges, operand size, TLB and fetch window) is rebuilt. The upper
 * halves of the registers, RIP, CR2, the descriptor-table and segment bases load too.
 */
export function loadArchState(c: CpuCore, s: X86State): void {
  for (let r = 0; r < 16; r++) {
    c.regs[r] = s.u32(X86_GPR + 8 * r) | 0;
    c.regsHi[r] = s.u32(X86_GPR + 8 * r + 4) | 0;
  }
  c.eip = s.u32(X86_RIP) | 0;
  c.ripHi = s.u32(X86_RIP + 4) | 0;
  c.flags = (s.rflags | 2) & 0x3f7fd7;
  c.lzMask = 0;
  c.cr0 = s.u64(X86_CR0) | 0;
  c.cr2 = s.u32(X86_CR2) | 0;
  c.cr2Hi = s.u32(X86_CR2 + 4) | 0;
  c.cr3 = s.u64(X86_CR3) | 0;
  c.cr4 = s.u64(X86_CR4) | 0;
  c.efer = s.u64(X86_EFER) | 0;
  for (let i = 0; i < 8; i++) c.dr[i] = s.u64(X86_DR + 8 * i) | 0;
  c.gdtBase = s.u32(X86_GDTR_BASE) | 0;
  c.gdtBaseHi = s.u32(X86_GDTR_BASE + 4) | 0;
  c.gdtLimit = s.u32(X86_GDTR_LIMIT) & 0xffff;
  c.idtBase = s.u32(X86_IDTR_BASE) | 0;
  c.idtBaseHi = s.u32(X86_IDTR_BASE + 4) | 0;
  c.idtLimit = s.u32(X86_IDTR_LIMIT) & 0xffff;
  const ev = s.events;
  c.halted = (ev & X86_EV_HALTED) !== 0;
  c.nmiPending = (ev & X86_EV_NMI_PENDING) !== 0;
  c.nmiBlocked = (ev & X86_EV_NMI_BLOCKED) !== 0;
  c.shadow = (ev & X86_EV_SHADOW) !== 0;
  c.waitSipi = (ev & X86_EV_WAIT_SIPI) !== 0;
  for (let i = 0; i < 8; i++) {
    if (i === CS) continue;
    const seg = s.segment(i);
    setSegCache(c, i, seg.selector, seg.base | 0, seg.limit, seg.attributes);
    c.segBaseHi[i] = s.u32(X86_SEG + X86_SEG_SIZE * i + 12) | 0;
  }
  // CS last: it resets the decoder's operand size for the next instruction.
  const cs = s.segment(CS);
  setSegCache(c, CS, cs.selector, cs.base | 0, cs.limit, cs.attributes);
  setCpl(c, s.cpl);
  if ((c.efer & EFER_LMA) !== 0) updateMode(c);
  c.sysenterCs = Number(s.msr(MSR_SYSENTER_CS) ?? 0n) & 0xffff;
  c.sysenterEsp = Number(s.msr(MSR_SYSENTER_ESP) ?? 0n) | 0;
  c.sysenterEip = Number(s.msr(MSR_SYSENTER_EIP) ?? 0n) | 0;
  c.apicBase = Number(s.msr(MSR_APIC_BASE) ?? 0n) >>> 0;
  const tsc = s.msr(MSR_TSC) ?? 0n;
  writeMsr(c, MSR_TSC, Number(tsc & 0xffffffffn) | 0, Number(tsc >> 32n) | 0);
  c.msrs.clear();
  const pat = s.msr(MSR_PAT) ?? 0n;
  if (pat !== 0n) c.msrs.set(MSR_PAT, [Number(pat & 0xffffffffn) | 0, Number(pat >> 32n) | 0]);
  for (const index of PLAIN_MSRS) {
    const v = X86_MSR_INDEX.includes(index) ? s.msr(index) : undefined;
    if (v) c.msrs.set(index, [Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0]);
  }
  for (const index of s.tableMsrs()) {
    if (X86_MSR_INDEX.includes(index)) continue;
    const v = s.msr(index) ?? 0n;
    c.msrs.set(index, [Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0]);
  }
  const f = c.fpu;
  f.cw = s.u16(X86_FCW);
  const sw = s.u16(X86_FSW);
  f.top = (sw >> 11) & 7;
  f.sw = sw & ~0x3800;
  f.tag = s.u16(X86_FTW);
  f.fop = s.u16(X86_FOP);
  f.fip = s.u64(X86_FIP) | 0;
  f.fdp = s.u64(X86_FDP) | 0;
  f.fcs = s.u16(X86_FCS);
  f.fds = s.u16(X86_FDS);
  for (let i = 0; i < 8; i++) {
    const at = X86_ST + 16 * i;
    setExtended(f, (f.top + i) & 7, s.u32(at) | 0, s.u32(at + 4) | 0, s.u16(at + 8));
  }
  c.sse.mxcsr = s.u32(X86_MXCSR) & 0xffff;
  for (let i = 0; i < 16; i++) c.sse.u8.set(s.xmm(i), 16 * i);
  c.attention = true;
  flushTlb(c);
}

/** Writes a 64-bit field from its int32 halves. */
function setHalves(s: X86State, offset: number, lo: number, hi: number): void {
  s.setU32(offset, lo);
  s.setU32(offset + 4, hi);
}
