// FXSAVE / FXRSTOR (0F AE /0, /1): the x87 state in the 512-byte FXSAVE image
//
// Implemented whatever CPUID says, as real P6-class parts do: firmware such as iPXE's
// real-mode transition saves the FPU with FXSAVE without asking CPUID first. vmkit has no
// SSE unit, so MXCSR reads as its reset value and the XMM area is written as zeros.
// Layout (Intel SDM vol. 2, FXSAVE, 32-bit form): FCW, FSW, abridged FTW, FOP, FIP, FCS,
// FDP, FDS, MXCSR, MXCSR_MASK, then ST0..ST7 (stack order) in 16-byte slots at 32.

import { decodeModrm } from "./decode.ts";
import { readF80, writeF80 } from "./fpu_formats.ts";
import { TAG_EMPTY, TAG_SPECIAL, TAG_VALID, TAG_ZERO } from "./fpu_state.ts";
import { read16, read32, read8, write16, write32, write8 } from "./memory.ts";
import {
  type CpuCore,
  CR0_EM,
  CR0_TS,
  EXC_GP,
  EXC_NM,
  fault,
  type OpHandler,
  ud,
} from "./state.ts";

/** MXCSR after reset: every SIMD exception masked, round to nearest. */
const MXCSR_RESET = 0x1f80;
/** The MXCSR bits a CPU with SSE2 lets software set (FXSAVE's MXCSR_MASK). */
const MXCSR_MASK = 0xffbf;
const FXSAVE_BYTES = 512;

/** Installs 0F AE /0 (FXSAVE) and /1 (FXRSTOR); the other forms stay undefined. */
export function installFxsave(t16: OpHandler[], t32: OpHandler[]): void {
  t16[0x1ae] = t32[0x1ae] = (c: CpuCore) => {
    decodeModrm(c);
    if (c.modMod === 3 || c.modReg > 1) return ud(c);
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

function fxsave(c: CpuCore): void {
  const f = c.fpu;
  // Touch the last byte first: a fault on the image's end leaves memory unchanged.
  write8(c, c.eaSeg, at(c, FXSAVE_BYTES - 1), 0);
  let abridged = 0;
  for (let p = 0; p < 8; p++) if (((f.tag >> (p * 2)) & 3) !== TAG_EMPTY) abridged |= 1 << p;
  write16(c, c.eaSeg, at(c, 0), f.cw);
  write16(c, c.eaSeg, at(c, 2), f.statusWord());
  write8(c, c.eaSeg, at(c, 4), abridged);
  write8(c, c.eaSeg, at(c, 5), 0);
  write16(c, c.eaSeg, at(c, 6), f.fop & 0x7ff);
  write32(c, c.eaSeg, at(c, 8), f.fip);
  write32(c, c.eaSeg, at(c, 12), f.fcs & 0xffff);
  write32(c, c.eaSeg, at(c, 16), f.fdp);
  write32(c, c.eaSeg, at(c, 20), f.fds & 0xffff);
  write32(c, c.eaSeg, at(c, 24), MXCSR_RESET);
  write32(c, c.eaSeg, at(c, 28), MXCSR_MASK);
  for (let i = 0; i < 8; i++) {
    const slot = 32 + i * 16;
    writeF80(c, slot, f.regs[(f.top + i) & 7]);
    write16(c, c.eaSeg, at(c, slot + 10), 0);
    write32(c, c.eaSeg, at(c, slot + 12), 0);
  }
  // XMM0..7 (no SSE unit: zeros); bytes 288..511 are left as they were.
  for (let o = 160; o < 288; o += 4) write32(c, c.eaSeg, at(c, o), 0);
}

function fxrstor(c: CpuCore): void {
  const f = c.fpu;
  read8(c, c.eaSeg, at(c, FXSAVE_BYTES - 1)); // the whole image must be readable
  const mxcsr = read32(c, c.eaSeg, at(c, 24)) >>> 0;
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
  const values: number[] = [];
  for (let i = 0; i < 8; i++) values.push(readF80(c, 32 + i * 16));
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
    const v = values[i];
    f.regs[p] = v;
    const t = (abridged >> p) & 1
      ? v === 0 ? TAG_ZERO : Number.isFinite(v) ? TAG_VALID : TAG_SPECIAL
      : TAG_EMPTY;
    tag |= t << (p * 2);
  }
  f.tag = tag;
}
