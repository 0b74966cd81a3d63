// 0F AE: FXSAVE / FXRSTOR (the x87 and SSE state in the 512-byte image), LDMXCSR, STMXCSR,
// LFENCE, MFENCE, SFENCE
//
// FXSAVE/FXRSTOR are implemented whatever CPUID says, as real P6-class parts do: firmware
// such as iPXE's real-mode transition saves the FPU with FXSAVE without asking CPUID first.
// MXCSR and XMM0..7 are saved and restored only with CR4.OSFXSR, as QEMU 7.2 TCG does.
// Layout (Intel SDM vol. 2, FXSAVE, 32-bit form): FCW, FSW, abridged FTW, FOP, FIP, FCS,
// FDP, FDS, MXCSR, MXCSR_MASK, then ST0..ST7 (stack order) in 16-byte slots at 32.

import { decodeModrm } from "./decode.ts";
import { extendedOf, readExt80, setExtended, writeExt80 } from "./fpu_formats.ts";
import { TAG_EMPTY, TAG_SPECIAL, TAG_VALID, TAG_ZERO } from "./fpu_state.ts";
import { checkWrite, probeWrite, read16, read32, read8, write16, write32 } from "./memory.ts";
import {
  type CpuCore,
  CR0_EM,
  CR0_TS,
  CR4_OSFXSR,
  EXC_GP,
  EXC_NM,
  fault,
  type OpHandler,
  ud,
} from "./state.ts";
import {
  NEED_CLFLUSH,
  NEED_SSE,
  NEED_SSE2,
  NO_HANDSHAKE,
  prefixColumn,
  sseEnter,
} from "./sse_ops.ts";
import { MXCSR_MASK } from "./sse_state.ts";

const FXSAVE_BYTES = 512;

/**
 * LDMXCSR, STMXCSR (memory forms /2, /3), CLFLUSH (memory form /7) and the fences (register
 * forms /5../7).
 */
function mxcsrOrFence(c: CpuCore): void {
  if (prefixColumn(c) !== 0) return ud(c);
  const r = c.modReg;
  if (c.modMod === 3) {
    if (r < 5) return ud(c);
    return sseEnter(c, (r === 7 ? NEED_SSE : NEED_SSE2) | NO_HANDSHAKE); // ordering is a no-op here
  }
  // CLFLUSH: QEMU 7.2 TCG computes the address and touches nothing, so a not-present page
  // or a null segment does not fault (tests/cpu_diff/clflush_probe_test.ts shows it).
  if (r === 7) return sseEnter(c, NEED_CLFLUSH | NO_HANDSHAKE);
  if (r !== 2 && r !== 3) return ud(c); // XSAVE, XRSTOR, XSAVEOPT: not offered
  sseEnter(c, NEED_SSE);
  if (r === 2) {
    const v = read32(c, c.eaSeg, c.eaOff);
    if ((v & ~MXCSR_MASK) !== 0) return fault(c, EXC_GP, 0);
    c.sse.mxcsr = v & 0xffff;
  } else {
    checkWrite(c, c.eaSeg, c.eaOff, 4);
    write32(c, c.eaSeg, c.eaOff, c.sse.mxcsr);
  }
}

/**
 * Installs 0F AE: /0 FXSAVE, /1 FXRSTOR, /2 LDMXCSR, /3 STMXCSR, /7 CLFLUSH, LFENCE, MFENCE,
 * SFENCE.
 */
export function installFxsave(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x1ae] = t32[0x1ae] = (c: CpuCore) => {
    decodeModrm(c);
    if (c.modMod === 3 || c.modReg > 1) return mxcsrOrFence(c);
    if ((c.cr0 & CR0_EM) !== 0) return ud(c);
    if ((c.cr0 & CR0_TS) !== 0) return fault(c, EXC_NM);
    if (((c.segBase[c.eaSeg] + c.eaOff) & 15) !== 0) return fault(c, EXC_GP, 0);
    if (c.modReg === 0) fxsave(c);
    else fxrstor(c);
  };
}

function at(c: CpuCore, n: number): number {
  return c.addr32 ? (c.eaOff + n) >>> 0 : (c.eaOff + n) & 0xffff;
}

/**
 * FXSAVE as QEMU 7.2 TCG writes the image: FCW, FSW, the abridged tags, zeros for FIP, FCS,
 * FDP and FDS, the eight 80-bit registers; MXCSR, MXCSR_MASK and XMM0..7 only with
 * CR4.OSFXSR. FOP, the reserved bytes of the register slots and bytes 288..511 are left
 * as they were.
 */
function fxsave(c: CpuCore): void {
  const f = c.fpu;
  // The whole image must be writable first: a fault leaves memory unchanged.
  probeWrite(c, c.eaSeg, c.eaOff, FXSAVE_BYTES);
  let abridged = 0;
  for (let p = 0; p < 8; p++) if (((f.tag >> (p * 2)) & 3) !== TAG_EMPTY) abridged |= 1 << p;
  write16(c, c.eaSeg, at(c, 0), f.cw);
  write16(c, c.eaSeg, at(c, 2), f.statusWord());
  write16(c, c.eaSeg, at(c, 4), abridged);
  for (let o = 8; o < 24; o += 4) write32(c, c.eaSeg, at(c, o), 0);
  for (let i = 0; i < 8; i++) writeExt80(c, 32 + i * 16, extendedOf(f, (f.top + i) & 7));
  if ((c.cr4 & CR4_OSFXSR) === 0) return;
  write32(c, c.eaSeg, at(c, 24), c.sse.mxcsr);
  write32(c, c.eaSeg, at(c, 28), MXCSR_MASK);
  const x = c.sse.i32;
  for (let k = 0; k < 32; k++) write32(c, c.eaSeg, at(c, 160 + 4 * k), x[k]);
}

function fxrstor(c: CpuCore): void {
  const f = c.fpu;
  read8(c, c.eaSeg, at(c, FXSAVE_BYTES - 1)); // the whole image must be readable
  // MXCSR and XMM0..7 come back only with CR4.OSFXSR (as QEMU's FXRSTOR); reserved
  // MXCSR bits are #GP(0) as the SDM says (QEMU 7.2 accepts them).
  const sse = (c.cr4 & CR4_OSFXSR) !== 0;
  const mxcsr = sse ? read32(c, c.eaSeg, at(c, 24)) >>> 0 : 0;
  if ((mxcsr & ~MXCSR_MASK) !== 0) return fault(c, EXC_GP, 0);
  const cw = read16(c, c.eaSeg, at(c, 0));
  const sw = read16(c, c.eaSeg, at(c, 2));
  const abridged = read8(c, c.eaSeg, at(c, 4));
  const fop = read16(c, c.eaSeg, at(c, 6)) & 0x7ff;
  const fip = read32(c, c.eaSeg, at(c, 8)) >>> 0;
  const fcs = read16(c, c.eaSeg, at(c, 12));
  const fdp = read32(c, c.eaSeg, at(c, 16)) >>> 0;
  const fds = read16(c, c.eaSeg, at(c, 20));
  const top = (sw >> 11) & 7;
  const values: [number, number, number][] = [];
  for (let i = 0; i < 8; i++) values.push(readExt80(c, 32 + i * 16));
  // The XMM area must be readable too: nothing changes before every read succeeded.
  if (sse) { for (let o = 160; o < 288; o += 4) read32(c, c.eaSeg, at(c, o)); }
  // Every read succeeded: now change the state.
  f.cw = cw;
  f.sw = sw & ~0x3800;
  f.top = top;
  f.fop = fop;
  f.fip = fip;
  f.fcs = fcs;
  f.fdp = fdp;
  f.fds = fds;
  let tag = 0;
  for (let i = 0; i < 8; i++) {
    const p = (top + i) & 7;
    setExtended(f, p, ...values[i]);
    const v = f.regs[p];
    const t = (abridged >> p) & 1
      ? v === 0 ? TAG_ZERO : Number.isFinite(v) ? TAG_VALID : TAG_SPECIAL
      : TAG_EMPTY;
    tag |= t << (p * 2);
  }
  f.tag = tag;
  if (!sse) return;
  c.sse.mxcsr = mxcsr;
  const x = c.sse.i32;
  for (let k = 0; k < 32; k++) x[k] = read32(c, c.eaSeg, at(c, 160 + 4 * k));
}
