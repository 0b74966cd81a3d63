// RDMSR/WRMSR: the model-specific registers QEMU 7.2 TCG implements for its x86-64 target
//
// Checked against qemu-system-x86_64 -accel tcg with tests/cpu_diff/msr.ts. QEMU's TCG never
// raises #GP from RDMSR or WRMSR: an MSR it does not know reads as 0 and ignores writes,
// and EFER keeps only the bits the CPU model has (SCE with syscall, LME with lm, NXE with
// nx; LMA is read-only and set only on entering long mode
// when CR0.PG is set with LME and CR4.PAE, see paging_long.ts).

import { EXT_NX, FEAT_MCA, FEAT_MCE, FEAT_MTRR } from "./models.ts";
import { flushTlb } from "./paging.ts";
import { type CpuCore, EFER_LME, EFER_NXE, EFER_SCE, FS, GS } from "./state.ts";

/** MSR numbers (Intel SDM vol. 4, AMD APM vol. 2). */
export const MSR_IA32_TSC = 0x10, MSR_IA32_APICBASE = 0x1b, MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175, MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_CR_PAT = 0x277, MSR_MTRRcap = 0xfe, MSR_MTRRdefType = 0x2ff;
export const MSR_EFER = 0xc0000080, MSR_STAR = 0xc0000081, MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083, MSR_FMASK = 0xc0000084, MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101, MSR_KERNEL_GS_BASE = 0xc0000102, MSR_TSC_AUX = 0xc0000103;
export const MSR_MISC_ENABLE = 0x1a0, MSR_MCG_CAP = 0x179, MSR_MCG_STATUS = 0x17a;
export const MSR_UCODE_REV = 0x8b, MSR_FEATURE_CONTROL = 0x3a;

/** The 64-bit MSRs kept as plain stores (the syscall MSRs, KernelGSbase, TSC_AUX, MCG_STATUS). */
export const PLAIN_MSRS: readonly number[] = [
  MSR_STAR,
  MSR_LSTAR,
  MSR_CSTAR,
  MSR_FMASK,
  MSR_KERNEL_GS_BASE,
  MSR_TSC_AUX,
  MSR_MCG_STATUS,
  MSR_FEATURE_CONTROL,
];

/** The EFER bits WRMSR may change on this model (QEMU's update mask). */
function eferMask(c: CpuCore): number {
  const ext = c.model.extFeatures;
  return ((ext & (1 << 11)) !== 0 ? EFER_SCE : 0) | ((ext & (1 << 29)) !== 0 ? EFER_LME : 0) |
    ((ext & EXT_NX) !== 0 ? EFER_NXE : 0);
}

/** The TSC the guest reads: the machine's virtual clock (or retired instructions) plus its offset. */
export function readTsc(c: CpuCore): number {
  return tscBase(c) + c.tscOffset;
}

function tscBase(c: CpuCore): number {
  return c.tscClock === null ? c.retired : c.tscClock();
}

function isMtrr(index: number): boolean {
  return (index >= 0x200 && index <= 0x20f) || index === 0x250 || index === 0x258 ||
    index === 0x259 || (index >= 0x268 && index <= 0x26f) || index === MSR_MTRRdefType;
}

/** RDMSR: [lo, hi]; an MSR QEMU does not know reads as 0. */
export function readMsr(c: CpuCore, index: number): [number, number] {
  switch (index) {
    case MSR_IA32_TSC: {
      const t = readTsc(c);
      return [t % 4294967296 | 0, Math.floor(t / 4294967296) | 0];
    }
    case MSR_IA32_APICBASE:
      return [c.apicBase | 0, 0];
    case MSR_IA32_SYSENTER_CS:
      return [c.sysenterCs, 0];
    case MSR_IA32_SYSENTER_ESP:
      return [c.sysenterEsp, 0];
    case MSR_IA32_SYSENTER_EIP:
      return [c.sysenterEip, 0];
    case MSR_EFER:
      return [c.efer, 0];
    case MSR_FS_BASE:
      return [c.segBase[FS], c.segBaseHi[FS]];
    case MSR_GS_BASE:
      return [c.segBase[GS], c.segBaseHi[GS]];
    case MSR_MTRRcap: // 8 variable ranges, fixed ranges, write-combining
      return [(c.model.features & FEAT_MTRR) !== 0 ? 0x508 : 0, 0];
    case MSR_MISC_ENABLE: // fast strings, as QEMU resets it
      return c.msrs.get(index) ?? [1, 0];
    case MSR_MCG_CAP: // QEMU's 10 banks, MCG_CTL_P and MCG_SER_P with MCE and MCA
      return [
        (c.model.features & (FEAT_MCE | FEAT_MCA)) === (FEAT_MCE | FEAT_MCA) ? 0x100010a : 0,
        0,
      ];
    case MSR_UCODE_REV: { // QEMU's microcode revision: 0x100000000 Intel, 0x01000065 AMD
      const vendor = c.model.config?.vendor;
      return vendor === "AuthenticAMD" ? [0x01000065, 0] : [0, vendor === "GenuineIntel" ? 1 : 0];
    }
    case MSR_IA32_CR_PAT:
      return c.msrs.get(index) ?? [0x00070406, 0x00070406];
  }
  if (isMtrr(index) || PLAIN_MSRS.includes(index)) return c.msrs.get(index) ?? [0, 0];
  return [0, 0];
}

/** WRMSR; writes to an MSR QEMU does not know are ignored. */
export function writeMsr(c: CpuCore, index: number, lo: number, hi: number): void {
  switch (index) {
    case MSR_IA32_TSC:
      c.tscOffset = (hi >>> 0) * 4294967296 + (lo >>> 0) - tscBase(c);
      return;
    case MSR_IA32_APICBASE:
      c.apicBase = (lo & 0xfffff900) >>> 0;
      return;
    case MSR_IA32_SYSENTER_CS:
      c.sysenterCs = lo & 0xffff;
      return;
    case MSR_IA32_SYSENTER_ESP:
      c.sysenterEsp = lo;
      return;
    case MSR_IA32_SYSENTER_EIP:
      c.sysenterEip = lo;
      return;
    case MSR_EFER: {
      const mask = eferMask(c);
      const v = (c.efer & ~mask) | (lo & mask);
      if (((c.efer ^ v) & EFER_NXE) !== 0) flushTlb(c);
      c.efer = v;
      return;
    }
    case MSR_FS_BASE:
      c.segBase[FS] = lo;
      c.segBaseHi[FS] = hi;
      return;
    case MSR_GS_BASE:
      c.segBase[GS] = lo;
      c.segBaseHi[GS] = hi;
      return;
    case MSR_MISC_ENABLE:
    case MSR_IA32_CR_PAT:
      c.msrs.set(index, [lo, hi]);
      return;
  }
  if (isMtrr(index) || PLAIN_MSRS.includes(index)) c.msrs.set(index, [lo, hi]);
}
