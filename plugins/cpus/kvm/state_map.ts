// X86State <-> struct kvm_regs, kvm_sregs and kvm_fpu

import {
  X86_CR0,
  X86_CR2,
  X86_CR3,
  X86_CR4,
  X86_CR8,
  X86_CS,
  X86_DS,
  X86_EFER,
  X86_ES,
  X86_FCW,
  X86_FDP,
  X86_FIP,
  X86_FOP,
  X86_FS,
  X86_FSW,
  X86_FTW,
  X86_GDTR_BASE,
  X86_GDTR_LIMIT,
  X86_GS,
  X86_IDTR_BASE,
  X86_IDTR_LIMIT,
  X86_LDTR,
  X86_MXCSR,
  X86_SS,
  X86_ST,
  X86_TR,
  X86_XMM,
  type X86State,
} from "../../../core/x86_state.ts";
import {
  FPU_FCW,
  FPU_FPR,
  FPU_FSW,
  FPU_FTWX,
  FPU_LAST_DP,
  FPU_LAST_IP,
  FPU_LAST_OPCODE,
  FPU_MXCSR,
  FPU_XMM,
  KVM_REGS_GPR_ORDER,
  KVM_REGS_RFLAGS,
  KVM_REGS_RIP,
  SEG_AVL,
  SEG_BASE,
  SEG_DB,
  SEG_DPL,
  SEG_G,
  SEG_L,
  SEG_LIMIT,
  SEG_PRESENT,
  SEG_S,
  SEG_SELECTOR,
  SEG_TYPE,
  SEG_UNUSABLE,
  SREGS_CR0,
  SREGS_CR2,
  SREGS_CR3,
  SREGS_CR4,
  SREGS_CR8,
  SREGS_CS,
  SREGS_DS,
  SREGS_EFER,
  SREGS_ES,
  SREGS_FS,
  SREGS_GDT,
  SREGS_GS,
  SREGS_IDT,
  SREGS_LDT,
  SREGS_SS,
  SREGS_TR,
} from "./_abi.ts";

/** Where each X86State segment (ES CS SS DS FS GS LDTR TR) sits in kvm_sregs. */
const SREGS_OFFSET: Record<number, number> = {
  [X86_ES]: SREGS_ES,
  [X86_CS]: SREGS_CS,
  [X86_SS]: SREGS_SS,
  [X86_DS]: SREGS_DS,
  [X86_FS]: SREGS_FS,
  [X86_GS]: SREGS_GS,
  [X86_LDTR]: SREGS_LDT,
  [X86_TR]: SREGS_TR,
};

/** Copies the general registers, RIP and RFLAGS into a kvm_regs buffer. */
export function stateToRegs(s: X86State, regs: DataView): void {
  KVM_REGS_GPR_ORDER.forEach((r, slot) => regs.setBigUint64(8 * slot, s.gpr(r), true));
  regs.setBigUint64(KVM_REGS_RIP, BigInt(s.rip), true);
  regs.setBigUint64(KVM_REGS_RFLAGS, BigInt(s.rflags), true);
}

/** Copies a kvm_regs buffer into the state. */
export function regsToState(regs: DataView, s: X86State): void {
  KVM_REGS_GPR_ORDER.forEach((r, slot) => s.setGpr(r, regs.getBigUint64(8 * slot, true)));
  s.rip = Number(regs.getBigUint64(KVM_REGS_RIP, true));
  s.rflags = Number(regs.getBigUint64(KVM_REGS_RFLAGS, true));
}

/** Copies segments, descriptor tables, control registers and EFER into a kvm_sregs buffer. */
export function stateToSregs(s: X86State, sregs: DataView): void {
  for (let i = X86_ES; i <= X86_TR; i++) {
    const at = SREGS_OFFSET[i];
    const seg = s.segment(i);
    const a = seg.attributes;
    sregs.setBigUint64(at + SEG_BASE, BigInt(seg.base), true);
    sregs.setUint32(at + SEG_LIMIT, seg.limit, true);
    sregs.setUint16(at + SEG_SELECTOR, seg.selector, true);
    sregs.setUint8(at + SEG_TYPE, a & 0xf);
    sregs.setUint8(at + SEG_S, (a >> 4) & 1);
    sregs.setUint8(at + SEG_DPL, (a >> 5) & 3);
    const present = (a >> 7) & 1;
    sregs.setUint8(at + SEG_PRESENT, present);
    sregs.setUint8(at + SEG_AVL, (a >> 12) & 1);
    sregs.setUint8(at + SEG_L, (a >> 13) & 1);
    sregs.setUint8(at + SEG_DB, (a >> 14) & 1);
    sregs.setUint8(at + SEG_G, (a >> 15) & 1);
    // A segment register loaded with a null selector in protected mode is not present;
    // VMX calls that "unusable" and checks nothing else of it.
    sregs.setUint8(at + SEG_UNUSABLE, present ? 0 : 1);
  }
  sregs.setBigUint64(SREGS_GDT, BigInt(s.u64(X86_GDTR_BASE)), true);
  sregs.setUint16(SREGS_GDT + 8, s.u32(X86_GDTR_LIMIT), true);
  sregs.setBigUint64(SREGS_IDT, BigInt(s.u64(X86_IDTR_BASE)), true);
  sregs.setUint16(SREGS_IDT + 8, s.u32(X86_IDTR_LIMIT), true);
  sregs.setBigUint64(SREGS_CR0, BigInt(s.u64(X86_CR0)), true);
  sregs.setBigUint64(SREGS_CR2, BigInt(s.u64(X86_CR2)), true);
  sregs.setBigUint64(SREGS_CR3, BigInt(s.u64(X86_CR3)), true);
  sregs.setBigUint64(SREGS_CR4, BigInt(s.u64(X86_CR4)), true);
  sregs.setBigUint64(SREGS_CR8, BigInt(s.u64(X86_CR8)), true);
  sregs.setBigUint64(SREGS_EFER, BigInt(s.u64(X86_EFER)), true);
}

/** Copies a kvm_sregs buffer into the state (CPL from SS.DPL, as VMX keeps it). */
export function sregsToState(sregs: DataView, s: X86State): void {
  for (let i = X86_ES; i <= X86_TR; i++) {
    const at = SREGS_OFFSET[i];
    const present = sregs.getUint8(at + SEG_PRESENT) && !sregs.getUint8(at + SEG_UNUSABLE);
    const attributes = (sregs.getUint8(at + SEG_TYPE) & 0xf) |
      (sregs.getUint8(at + SEG_S) & 1) << 4 |
      (sregs.getUint8(at + SEG_DPL) & 3) << 5 |
      (present ? 1 : 0) << 7 |
      (sregs.getUint8(at + SEG_AVL) & 1) << 12 |
      (sregs.getUint8(at + SEG_L) & 1) << 13 |
      (sregs.getUint8(at + SEG_DB) & 1) << 14 |
      (sregs.getUint8(at + SEG_G) & 1) << 15;
    s.setSegment(i, {
      selector: sregs.getUint16(at + SEG_SELECTOR, true),
      attributes,
      limit: sregs.getUint32(at + SEG_LIMIT, true),
      base: Number(sregs.getBigUint64(at + SEG_BASE, true)),
    });
  }
  s.setU64(X86_GDTR_BASE, Number(sregs.getBigUint64(SREGS_GDT, true)));
  s.setU32(X86_GDTR_LIMIT, sregs.getUint16(SREGS_GDT + 8, true));
  s.setU64(X86_IDTR_BASE, Number(sregs.getBigUint64(SREGS_IDT, true)));
  s.setU32(X86_IDTR_LIMIT, sregs.getUint16(SREGS_IDT + 8, true));
  s.setU64(X86_CR0, Number(sregs.getBigUint64(SREGS_CR0, true)));
  s.setU64(X86_CR2, Number(sregs.getBigUint64(SREGS_CR2, true)));
  s.setU64(X86_CR3, Number(sregs.getBigUint64(SREGS_CR3, true)));
  s.setU64(X86_CR4, Number(sregs.getBigUint64(SREGS_CR4, true)));
  s.setU64(X86_CR8, Number(sregs.getBigUint64(SREGS_CR8, true)));
  s.setU64(X86_EFER, Number(sregs.getBigUint64(SREGS_EFER, true)));
  const cr0 = s.u64(X86_CR0);
  s.cpl = (cr0 & 1) === 0 ? 0 : (s.segment(X86_SS).attributes >> 5) & 3;
}

/** The x87 tag (00 valid, 01 zero, 10 special) of an 80-bit value: the full tag word's rule. */
function tagOf(bytes: Uint8Array): number {
  const exponent = (bytes[8] | (bytes[9] << 8)) & 0x7fff;
  let mantissaZero = true;
  for (let i = 0; i < 8; i++) if (bytes[i] !== 0) mantissaZero = false;
  if (exponent === 0) return mantissaZero ? 1 : 2;
  if (exponent === 0x7fff || (bytes[7] & 0x80) === 0) return 2;
  return 0;
}

/** Copies the x87 and SSE state into a kvm_fpu buffer (FXSAVE layout, abridged tags). */
export function stateToFpu(s: X86State, fpu: Uint8Array): void {
  const v = new DataView(fpu.buffer, fpu.byteOffset, fpu.byteLength);
  for (let i = 0; i < 8; i++) {
    fpu.set(s.bytes.subarray(X86_ST + 16 * i, X86_ST + 16 * i + 16), FPU_FPR + 16 * i);
  }
  v.setUint16(FPU_FCW, s.u16(X86_FCW), true);
  v.setUint16(FPU_FSW, s.u16(X86_FSW), true);
  const ftw = s.u16(X86_FTW);
  let abridged = 0;
  for (let r = 0; r < 8; r++) if (((ftw >> (2 * r)) & 3) !== 3) abridged |= 1 << r;
  v.setUint8(FPU_FTWX, abridged);
  v.setUint16(FPU_LAST_OPCODE, s.u16(X86_FOP), true);
  v.setBigUint64(FPU_LAST_IP, BigInt(s.u64(X86_FIP)), true);
  v.setBigUint64(FPU_LAST_DP, BigInt(s.u64(X86_FDP)), true);
  fpu.set(s.bytes.subarray(X86_XMM, X86_XMM + 256), FPU_XMM);
  v.setUint32(FPU_MXCSR, s.u32(X86_MXCSR), true);
}

/** Copies a kvm_fpu buffer into the state, rebuilding the full tag word from the values. */
export function fpuToState(fpu: Uint8Array, s: X86State): void {
  const v = new DataView(fpu.buffer, fpu.byteOffset, fpu.byteLength);
  for (let i = 0; i < 8; i++) {
    s.bytes.set(fpu.subarray(FPU_FPR + 16 * i, FPU_FPR + 16 * i + 16), X86_ST + 16 * i);
  }
  const fsw = v.getUint16(FPU_FSW, true);
  s.setU16(X86_FCW, v.getUint16(FPU_FCW, true));
  s.setU16(X86_FSW, fsw);
  const abridged = v.getUint8(FPU_FTWX);
  const top = (fsw >> 11) & 7;
  let ftw = 0;
  for (let r = 0; r < 8; r++) {
    // Physical register r is ST((r - TOP) & 7).
    const st = (r - top) & 7;
    const tag = (abridged >> r) & 1
      ? tagOf(fpu.subarray(FPU_FPR + 16 * st, FPU_FPR + 16 * st + 10))
      : 3;
    ftw |= tag << (2 * r);
  }
  s.setU16(X86_FTW, ftw);
  s.setU16(X86_FOP, v.getUint16(FPU_LAST_OPCODE, true));
  s.setU64(X86_FIP, Number(v.getBigUint64(FPU_LAST_IP, true)));
  s.setU64(X86_FDP, Number(v.getBigUint64(FPU_LAST_DP, true)));
  s.bytes.set(fpu.subarray(FPU_XMM, FPU_XMM + 256), X86_XMM);
  s.setU32(X86_MXCSR, v.getUint32(FPU_MXCSR, true));
}

/**
 * Fills `s` with the x86 power-on state (Intel SDM vol. 3 §9.1.1): CS:IP F000:FFF0 with
 * CS base FFFF0000, real mode, EDX the family/model/stepping signature.
 */
export function resetState(s: X86State, signature: number): void {
  s.clear();
  s.setGpr32(2, signature);
  s.rip = 0xfff0;
  s.rflags = 0x2;
  s.setU64(X86_CR0, 0x60000010);
  for (let i = X86_ES; i <= X86_GS; i++) {
    s.setSegment(i, { selector: 0, attributes: 0x93, limit: 0xffff, base: 0 });
  }
  s.setSegment(X86_CS, { selector: 0xf000, attributes: 0x9b, limit: 0xffff, base: 0xffff0000 });
  s.setSegment(X86_LDTR, { selector: 0, attributes: 0x82, limit: 0xffff, base: 0 });
  s.setSegment(X86_TR, { selector: 0, attributes: 0x8b, limit: 0xffff, base: 0 });
  s.setU32(X86_GDTR_LIMIT, 0xffff);
  s.setU32(X86_IDTR_LIMIT, 0xffff);
  s.setU16(X86_FCW, 0x37f);
  s.setU16(X86_FTW, 0xffff);
  s.setU32(X86_MXCSR, 0x1f80);
  s.setMsr(0x1b, 0xfee00000n | 0x800n); // IA32_APIC_BASE: enabled (BSP bit set by the caller)
  s.setMsr(0x277, 0x0007040600070406n); // IA32_PAT power-on value
}
