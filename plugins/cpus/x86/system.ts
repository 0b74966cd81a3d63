// System instructions: descriptor tables, control/debug registers, CPUID, MSRs, SYSENTER

import { decodeModrm, readE16, setReg16, writeE16 } from "./decode.ts";
import { getFlags, setArithFlags } from "./flags.ts";
import { fetch8, read16, read32, sysRead32, sysWrite32, write16, write32 } from "./memory.ts";
import { cpuidLeaf } from "../../../core/x86_cpu_models.ts";
import { FEAT_SEP } from "./models.ts";
import { flushTlb, flushTlbPage } from "./paging.ts";
import { checkLongModeCr } from "./paging_long.ts";
import { readMsr, readTsc, writeMsr } from "./msr.ts";
import {
  ATTR_P,
  ATTR_S,
  DESC,
  descAttr,
  descBase,
  descLimit,
  isProtected,
  readDescriptor,
  setCpl,
  setSegCache,
} from "./segmentation.ts";
import {
  type CpuCore,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_WP,
  CR4_DE,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  CR4_TSD,
  CS,
  EAX,
  EBX,
  ECX,
  EDX,
  EFER_LMA,
  ESP,
  gp,
  IF,
  LDTR,
  type OpHandler,
  RF,
  SS,
  TR,
  ud,
  VM,
  ZF,
} from "./state.ts";

/** DR4/DR5 alias DR6/DR7, or #UD with CR4.DE (debugging extensions, SDM vol. 3 §18.2.2). */
function debugRegister(c: CpuCore, n: number): number {
  if (n !== 4 && n !== 5) return n;
  if ((c.cr4 & CR4_DE) !== 0) ud(c);
  return n + 2;
}

function requireCpl0(c: CpuCore): void {
  if ((c.flags & VM) !== 0 || (isProtected(c) && c.cpl !== 0)) gp(c, 0);
}

/** Writes CR0, flushing translations and switching modes as needed. */
export function writeCr0(c: CpuCore, v: number): void {
  v |= 0x10; // ET is hardwired on 486 and later
  if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) gp(c, 0);
  checkLongModeCr(c, v, c.cr4);
  const changed = c.cr0 ^ v;
  c.cr0 = v | 0;
  if ((changed & (CR0_PG | CR0_WP | CR0_PE)) !== 0) flushTlb(c);
  if ((changed & CR0_PE) !== 0) {
    if ((v & CR0_PE) === 0) setCpl(c, 0);
    c.attention = true;
  }
}

/** Writes CR4 (paging-related bits flush the TLB). */
export function writeCr4(c: CpuCore, v: number): void {
  checkLongModeCr(c, c.cr0, v);
  const changed = c.cr4 ^ v;
  c.cr4 = v | 0;
  if ((changed & (CR4_PAE | CR4_PSE | CR4_PGE)) !== 0) flushTlb(c);
}

/**
 * CPUID: QEMU 7.2's answer for the resolved model (core's cpuidLeaf, its flags already
 * limited to what this interpreter implements), with this CPU's APIC ID, the machine's
 * topology, CR4 and the APIC's global enable (IA32_APIC_BASE bit 11 shows in leaf 1 EDX).
 */
function cpuid(c: CpuCore): void {
  const r = c.regs;
  const config = c.model.config;
  if (config === null) ud(c); // no CPUID instruction (the 286 model)
  const out = cpuidLeaf(
    config,
    {
      apicId: c.apicId,
      topology: c.topology,
      cr4: c.cr4,
      apicEnabled: (c.apicBase & 0x800) !== 0,
    },
    r[EAX],
    r[ECX],
  );
  r[EAX] = out[0] | 0;
  r[EBX] = out[1] | 0;
  r[ECX] = out[2] | 0;
  r[EDX] = out[3] | 0;
}

/** Loads LDTR or TR from a selector (LLDT, LTR). */
function loadSystemSeg(c: CpuCore, s: number, sel: number): void {
  if ((sel & 0xfffc) === 0) {
    if (s === TR) gp(c, 0);
    setSegCache(c, s, sel, 0, 0, 0);
    return;
  }
  if ((sel & 4) !== 0) gp(c, sel & 0xfffc);
  readDescriptor(c, sel);
  const attr = descAttr(DESC[1]);
  const type = attr & 0x1f;
  // Long mode: 16-byte system descriptors, a 64-bit TSS only (type 9), base bits 32..63 next.
  const long = (c.efer & EFER_LMA) !== 0;
  if (s === LDTR ? type !== 2 : type !== 9 && (long || type !== 1)) gp(c, sel & 0xfffc);
  const baseHi = long ? sysRead32(c, (DESC[2] + 8) | 0) : 0;
  if ((attr & ATTR_P) === 0) gp(c, sel & 0xfffc); // #NP in the SDM; kept simple
  if (s === TR) {
    DESC[1] |= 0x200;
    sysWrite32(c, (DESC[2] + 4) | 0, DESC[1]);
  }
  setSegCache(
    c,
    s,
    sel,
    descBase(DESC[0], DESC[1]),
    descLimit(DESC[0], DESC[1]),
    descAttr(DESC[1]),
  );
  c.segBaseHi[s] = baseHi;
}

/** LAR/LSL/VERR/VERW: true when the selector's descriptor is visible at CPL/RPL. */
function descriptorVisible(
  c: CpuCore,
  sel: number,
  kind: "lar" | "lsl" | "verr" | "verw",
): boolean {
  if ((sel & 0xfffc) === 0) return false;
  const index = sel & 0xfff8;
  const limit = (sel & 4) !== 0 ? c.segLimit[LDTR] : c.gdtLimit;
  if (index + 7 > limit) return false;
  readDescriptor(c, sel);
  const attr = descAttr(DESC[1]);
  const dpl = (attr >> 5) & 3;
  const conformingCode = (attr & 0x1c) === 0x1c;
  if ((attr & ATTR_S) === 0) {
    const type = attr & 0xf;
    const okLar = [1, 2, 3, 4, 5, 9, 11, 12].includes(type);
    const okLsl = [1, 2, 3, 9, 11].includes(type);
    if (kind === "verr" || kind === "verw") return false;
    if (!(kind === "lar" ? okLar : okLsl)) return false;
    return dpl >= c.cpl && dpl >= (sel & 3);
  }
  if (!conformingCode && (dpl < c.cpl || dpl < (sel & 3))) return false;
  const code = (attr & 8) !== 0;
  if (kind === "verr") return !code || (attr & 2) !== 0;
  if (kind === "verw") return !code && (attr & 2) !== 0;
  return true;
}

/** Installs 0F 00, 0F 01, LAR/LSL, CLTS, MOV CR/DR, MSRs, CPUID, SYSENTER/SYSEXIT, ARPL. */
export function installSystem(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x100] = t32[0x100] = (c) => {
    decodeModrm(c);
    if (!isProtected(c)) ud(c);
    switch (c.modReg) {
      case 0:
      case 1: {
        const v = c.segSel[c.modReg === 0 ? LDTR : TR];
        if (c.modMod === 3 && c.op32) c.regs[c.modRm] = v;
        else writeE16(c, v);
        break;
      }
      case 2:
      case 3: {
        requireCpl0(c);
        loadSystemSeg(c, c.modReg === 2 ? LDTR : TR, readE16(c));
        break;
      }
      case 4:
      case 5:
        setArithFlags(
          c,
          ZF,
          descriptorVisible(c, readE16(c), c.modReg === 4 ? "verr" : "verw") ? ZF : 0,
        );
        break;
      default:
        ud(c);
    }
  };
  t16[0x101] = t32[0x101] = (c) => {
    decodeModrm(c);
    const reg = c.modReg;
    if (c.modMod === 3 && reg !== 4 && reg !== 6) ud(c);
    const off2 = (n: number) => c.addr32 ? (c.eaOff + n) >>> 0 : (c.eaOff + n) & 0xffff;
    switch (reg) {
      case 0:
      case 1: {
        const base = reg === 0 ? c.gdtBase : c.idtBase;
        write16(c, c.eaSeg, c.eaOff, reg === 0 ? c.gdtLimit : c.idtLimit);
        write32(
          c,
          c.eaSeg,
          off2(2),
          c.op32 ? base : (base & 0xffffff) | (c.model.family <= 2 ? 0xff000000 : 0),
        );
        break;
      }
      case 2:
      case 3: {
        requireCpl0(c);
        const limit = read16(c, c.eaSeg, c.eaOff);
        let base = read32(c, c.eaSeg, off2(2));
        if (!c.op32) base &= 0xffffff;
        if (reg === 2) {
          c.gdtLimit = limit;
          c.gdtBase = base;
        } else {
          c.idtLimit = limit;
          c.idtBase = base;
        }
        break;
      }
      case 4: // SMSW
        if (c.modMod === 3 && c.op32) c.regs[c.modRm] = c.cr0;
        else writeE16(c, c.cr0);
        break;
      case 6: { // LMSW: PE can be set, not cleared
        requireCpl0(c);
        const v = readE16(c);
        writeCr0(c, (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & 1));
        break;
      }
      case 7:
        requireCpl0(c);
        flushTlbPage(c, (c.segBase[c.eaSeg] + c.eaOff) | 0);
        break;
      default:
        ud(c);
    }
  };
  const larLsl = (lsl: boolean) => (c: CpuCore) => {
    decodeModrm(c);
    if (!isProtected(c)) ud(c);
    const sel = readE16(c);
    if (!descriptorVisible(c, sel, lsl ? "lsl" : "lar")) {
      setArithFlags(c, ZF, 0);
      return;
    }
    const v = lsl ? descLimit(DESC[0], DESC[1]) : DESC[1] & 0x00ffff00;
    if (c.op32) c.regs[c.modReg] = v;
    else setReg16(c, c.modReg, v);
    setArithFlags(c, ZF, ZF);
  };
  t16[0x102] = t32[0x102] = larLsl(false);
  t16[0x103] = t32[0x103] = larLsl(true);
  t16[0x106] = t32[0x106] = (c) => {
    requireCpl0(c);
    c.cr0 &= ~CR0_TS;
  };
  t16[0x108] =
    t32[0x108] =
    t16[0x109] =
    t32[0x109] =
      (c) => requireCpl0(c);
  t16[0x120] = t32[0x120] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = (m >> 3) & 7;
    const v = n === 0 ? c.cr0 : n === 2 ? c.cr2 : n === 3 ? c.cr3 : n === 4 ? c.cr4 : ud(c);
    c.regs[m & 7] = v;
  };
  t16[0x122] = t32[0x122] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const v = c.regs[m & 7];
    switch ((m >> 3) & 7) {
      case 0:
        writeCr0(c, v);
        break;
      case 2:
        c.cr2 = v;
        break;
      case 3:
        c.cr3 = v;
        flushTlb(c);
        break;
      case 4:
        writeCr4(c, v);
        break;
      default:
        ud(c);
    }
  };
  t16[0x121] = t32[0x121] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = debugRegister(c, (m >> 3) & 7);
    c.regs[m & 7] = n === 6 ? c.dr[6] | 0xffff0ff0 : n === 7 ? c.dr[7] | 0x400 : c.dr[n];
  };
  t16[0x123] = t32[0x123] = (c) => {
    const m = fetch8(c);
    requireCpl0(c);
    const n = debugRegister(c, (m >> 3) & 7);
    c.dr[n] = c.regs[m & 7];
  };
  t16[0x130] = t32[0x130] = (c) => {
    requireCpl0(c);
    if (c.model.level < 1) ud(c);
    writeMsr(c, c.regs[ECX] >>> 0, c.regs[EAX], c.regs[EDX]);
  };
  t16[0x132] = t32[0x132] = (c) => {
    requireCpl0(c);
    if (c.model.level < 1) ud(c);
    const [lo, hi] = readMsr(c, c.regs[ECX] >>> 0);
    c.regs[EAX] = lo;
    c.regs[EDX] = hi;
  };
  t16[0x131] = t32[0x131] = (c) => {
    if (c.model.family < 5) ud(c);
    if ((c.cr4 & CR4_TSD) !== 0 && (c.cr0 & CR0_PE) !== 0 && c.cpl !== 0) gp(c, 0);
    const t = readTsc(c);
    c.regs[EAX] = t % 4294967296 | 0;
    c.regs[EDX] = Math.floor(t / 4294967296) | 0;
  };
  t16[0x1a2] = t32[0x1a2] = (c) => {
    if (c.model.level < 0) ud(c);
    cpuid(c);
  };
  t16[0x134] = t32[0x134] = (c) => { // SYSENTER
    if ((c.model.features & FEAT_SEP) === 0) ud(c);
    if ((c.cr0 & CR0_PE) === 0 || (c.sysenterCs & 0xfffc) === 0) gp(c, 0);
    c.flags = getFlags(c) & ~(VM | IF | RF);
    c.lzMask = 0;
    const cs = c.sysenterCs & 0xfffc;
    setSegCache(c, CS, cs, 0, 0xffffffff, 0xc09b);
    setCpl(c, 0);
    setSegCache(c, SS, (cs + 8) & 0xfffc, 0, 0xffffffff, 0xc093);
    c.regs[ESP] = c.sysenterEsp;
    c.eip = c.sysenterEip;
  };
  t16[0x135] = t32[0x135] = (c) => { // SYSEXIT
    if ((c.model.features & FEAT_SEP) === 0) ud(c);
    if (!isProtected(c) || c.cpl !== 0 || (c.sysenterCs & 0xfffc) === 0) gp(c, 0);
    const cs = c.sysenterCs & 0xfffc;
    setSegCache(c, CS, (cs + 16) | 3, 0, 0xffffffff, 0xc0fb);
    setCpl(c, 3);
    setSegCache(c, SS, (cs + 24) | 3, 0, 0xffffffff, 0xc0f3);
    c.regs[ESP] = c.regs[ECX];
    c.eip = c.regs[EDX];
  };
  t16[0x63] = t32[0x63] = (c) => { // ARPL
    if (!isProtected(c)) ud(c);
    decodeModrm(c);
    const d = readE16(c);
    const s = c.regs[c.modReg] & 3;
    if ((d & 3) < s) {
      writeE16(c, (d & ~3) | s);
      setArithFlags(c, ZF, ZF);
    } else {
      setArithFlags(c, ZF, 0);
    }
  };
}
