// 64-bit mode decoding: REX, 64-bit and RIP-relative addresses, FS/GS bases, sized operands

import { checkLock, getReg8, resetPrefixes, setReg8 } from "./decode.ts";
import {
  fetch32,
  fetch8,
  probeWrite,
  read16,
  read32,
  read8,
  write16,
  write32,
  write8,
} from "./memory.ts";
import { openLin } from "./paging_long.ts";
import { type CpuCore, FS, type OpHandler, SEG_LIN } from "./state.ts";

/**
 * The memory operand of ModRM byte `m` in 64-bit mode (decode.ts calls it whenever
 * `c.rex` is set): REX.R/X/B extend reg, index and base; mod 0 rm 5 is RIP-relative (RIP
 * at the end of the instruction: `c.immLen` more bytes follow); 67h truncates to 32
 * bits; FS and GS add their bases, the other segments are flat. The address goes into
 * (`eaHi`, `eaOff`) through SEG_LIN.
 */
export function decodeLong(c: CpuCore, m: number): void {
  const rex = c.rex;
  const mod = m >> 6;
  if ((rex & 4) !== 0) c.modReg |= 8;
  if (mod === 3) {
    if ((rex & 1) !== 0) c.modRm |= 8;
    c.immLen = 0;
    return;
  }
  eaLong(c, mod, m & 7, true);
}

/** The effective address of a 64-bit mode memory operand; `seg` adds FS/GS (not for LEA). */
export function eaLong(c: CpuCore, mod: number, rm: number, seg: boolean): void {
  const rex = c.rex;
  const r = c.regs, rh = c.regsHi;
  let lo = 0, hi = 0;
  let stack = false;
  if (rm === 4) {
    const sib = fetch8(c);
    const index = ((sib >> 3) & 7) | ((rex & 2) << 2);
    const base = (sib & 7) | ((rex & 1) << 3);
    if (index !== 4) {
      const s = sib >> 6;
      lo = r[index];
      hi = rh[index];
      if (s !== 0) {
        hi = (hi << s) | (lo >>> (32 - s));
        lo = lo << s;
      }
    }
    if ((sib & 7) === 5 && mod === 0) {
      const d = fetch32(c);
      const t = (lo >>> 0) + (d >>> 0);
      hi = (hi + (d >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
      lo = t | 0;
    } else {
      const t = (lo >>> 0) + (r[base] >>> 0);
      hi = (hi + rh[base] + (t > 0xffffffff ? 1 : 0)) | 0;
      lo = t | 0;
      stack = (base & 7) === 4 || (base & 7) === 5;
    }
  } else if (rm === 5 && mod === 0) {
    const d = fetch32(c);
    const end = (c.eip >>> 0) + c.immLen;
    const t = (end >>> 0) + (d >>> 0);
    hi = (c.ripHi + (end > 0xffffffff ? 1 : 0) + (d >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
    lo = t | 0;
  } else {
    const base = rm | ((rex & 1) << 3);
    lo = r[base];
    hi = rh[base];
    stack = rm === 4 || rm === 5;
  }
  c.immLen = 0;
  if (mod !== 0) {
    const d = mod === 1 ? (fetch8(c) << 24) >> 24 : fetch32(c);
    const t = (lo >>> 0) + (d >>> 0);
    hi = (hi + (d >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
    lo = t | 0;
  }
  if (c.addrOvr) hi = 0;
  if (seg && c.segOvr >= FS) {
    const s = c.segOvr;
    const t = (lo >>> 0) + (c.segBase[s] >>> 0);
    hi = (hi + c.segBaseHi[s] + (t > 0xffffffff ? 1 : 0)) | 0;
    lo = t | 0;
  }
  c.eaOff = lo;
  c.eaSeg = SEG_LIN;
  c.eaStack = stack && c.segOvr < FS;
  if (hi !== c.eaHi || c.rdHi[SEG_LIN] < 0) {
    c.eaHi = hi;
    openLin(c);
  }
}

/** The operand size of the instruction in flight: 64 with REX.W, 16 with 66h, else 32. */
export function osz(c: CpuCore): number {
  return (c.rex & 8) !== 0 ? 64 : c.op32 ? 32 : 16;
}

/** Register `r` of `size` bits (8 follows the REX rules); the upper half in `c.tHi`. */
export function getR(c: CpuCore, r: number, size: number): number {
  if (size === 64) {
    c.tHi = c.regsHi[r];
    return c.regs[r];
  }
  c.tHi = 0;
  if (size === 32) return c.regs[r];
  if (size === 16) return c.regs[r] & 0xffff;
  return getReg8(c, r);
}

/** Writes register `r` at `size` bits: 32 zeroes the upper half, 8 and 16 keep the rest. */
export function setR(c: CpuCore, r: number, size: number, lo: number, hi: number): void {
  if (size === 64) {
    c.regs[r] = lo;
    c.regsHi[r] = hi;
  } else if (size === 32) {
    c.regs[r] = lo;
    c.regsHi[r] = 0;
  } else if (size === 16) c.regs[r] = (c.regs[r] & ~0xffff) | (lo & 0xffff);
  else setReg8(c, r, lo);
}

/** Reads `size` bits at seg:off (the memory operand's window); the upper half in `c.tHi`. */
export function readMem(c: CpuCore, seg: number, off: number, size: number): number {
  c.tHi = 0;
  if (size === 8) return read8(c, seg, off);
  if (size === 16) return read16(c, seg, off);
  if (size === 32) return read32(c, seg, off);
  const lo = read32(c, seg, off);
  c.tHi = read32(c, seg, (off + 4) | 0);
  return lo;
}

/** Writes `size` bits at seg:off; a 64-bit store checks both halves before either is written. */
export function writeMem(
  c: CpuCore,
  seg: number,
  off: number,
  size: number,
  lo: number,
  hi: number,
) {
  if (size === 8) write8(c, seg, off, lo);
  else if (size === 16) write16(c, seg, off, lo);
  else if (size === 32) write32(c, seg, off, lo);
  else {
    probeWrite(c, seg, off, 8);
    write32(c, seg, off, lo);
    write32(c, seg, (off + 4) | 0, hi);
  }
}

/** Reads the ModRM operand at `size`; upper half in `c.tHi`. */
export function readE(c: CpuCore, size: number): number {
  if (c.modMod === 3) return getR(c, c.modRm, size);
  return readMem(c, c.eaSeg, c.eaOff, size);
}

/** Reads the ModRM operand of a read-modify-write instruction (the write probed first). */
export function readM(c: CpuCore, size: number): number {
  if (c.modMod === 3) return getR(c, c.modRm, size);
  const v = readMem(c, c.eaSeg, c.eaOff, size);
  const hi = c.tHi;
  probeWrite(c, c.eaSeg, c.eaOff, size >> 3);
  c.tHi = hi;
  return v;
}

/** Writes the ModRM operand at `size`. */
export function writeE(c: CpuCore, size: number, lo: number, hi: number): void {
  if (c.modMod === 3) setR(c, c.modRm, size, lo, hi);
  else writeMem(c, c.eaSeg, c.eaOff, size, lo, hi);
}

/** Fetches an immediate of `size` bits (64-bit operands take a sign-extended imm32). */
export function fetchImm(c: CpuCore, size: number): number {
  if (size === 8) {
    c.tHi = 0;
    return fetch8(c);
  }
  if (size === 16) {
    c.tHi = 0;
    return fetch8(c) | (fetch8(c) << 8);
  }
  const v = fetch32(c);
  c.tHi = size === 64 ? v >> 31 : 0;
  return v;
}

/** Prefix bytes of 64-bit mode (legacy prefixes, and REX 40..4F). */
const IS_PREFIX64 = new Uint8Array(256);
for (const p of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) {
  IS_PREFIX64[p] = 1;
}
for (let p = 0x40; p < 0x50; p++) IS_PREFIX64[p] = 1;

/** Continues decoding after a prefix in 64-bit mode (see decode.ts's `afterPrefix`). */
function afterPrefix64(c: CpuCore): void {
  c.prefixed = true;
  if (++c.prefixCount >= 4 && !c.lenCheck) {
    c.lenCheck = true;
    c.fetchLen = 0;
  }
  const op = fetch8(c);
  if (c.lock && !IS_PREFIX64[op]) checkLock(c, op);
  c.table[op](c);
  // The instruction may have left 64-bit mode (a far jump): the defaults follow CS.
  if (c.prefixed) resetPrefixes(c);
}

/**
 * Installs 64-bit mode's prefixes: REX (only the last prefix before the opcode counts;
 * a legacy prefix after it drops it), 66h, 67h (32-bit addresses), LOCK, REP, and the
 * segment overrides, of which only FS and GS do anything.
 */
export function installPrefixes64(t: OpHandler[]): void {
  for (let p = 0x40; p < 0x50; p++) {
    t[p] = (c) => {
      c.rex = 0x100 | p;
      afterPrefix64(c);
    };
  }
  for (const [op, seg] of [[0x26, -1], [0x2e, -1], [0x36, -1], [0x3e, -1], [0x64, 4], [0x65, 5]]) {
    t[op] = (c) => {
      c.segOvr = seg; // ES, CS, SS and DS overrides are ignored (as the last prefix)
      c.rex = 0x100;
      afterPrefix64(c);
    };
  }
  t[0x66] = (c) => {
    c.op32 = false;
    c.rex = 0x100;
    afterPrefix64(c);
  };
  t[0x67] = (c) => {
    c.addrOvr = true; // addr32 stays set: offsets the 32-bit handlers add wrap at 32 bits
    c.rex = 0x100;
    afterPrefix64(c);
  };
  t[0xf0] = (c) => {
    c.lock = true;
    c.rex = 0x100;
    afterPrefix64(c);
  };
  t[0xf2] = (c) => {
    c.rep = 0xf2;
    c.rex = 0x100;
    afterPrefix64(c);
  };
  t[0xf3] = (c) => {
    c.rep = 0xf3;
    c.rex = 0x100;
    afterPrefix64(c);
  };
  t[0x0f] = (c) => {
    c.table[0x100 | fetch8(c)](c);
  };
}
