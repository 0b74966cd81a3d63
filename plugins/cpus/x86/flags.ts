// Lazy arithmetic flags: the last result is kept and each flag is derived when asked

import {
  AF,
  ARITH_FLAGS,
  CF,
  type CpuCore,
  LZ_ADD,
  LZ_SHL,
  LZ_SHR,
  LZ_SUB,
  OF,
  PF,
  SF,
  ZF,
} from "./state.ts";

/** PARITY[b] is PF for the byte b. */
export const PARITY: Uint8Array = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  let n = b;
  n ^= n >> 4;
  n ^= n >> 2;
  n ^= n >> 1;
  PARITY[b] = (n & 1) ? 0 : PF;
}

/** CF as 0 or 1. */
export function getCF(c: CpuCore): number {
  if ((c.lzMask & CF) === 0) return c.flags & CF;
  const sh = c.lzSize - 1;
  if (c.lzOp === LZ_ADD) {
    return (((c.lzDst & c.lzSrc) | ((c.lzDst | c.lzSrc) & ~c.lzRes)) >>> sh) & 1;
  }
  if (c.lzOp === LZ_SUB) {
    return (((~c.lzDst & c.lzSrc) | ((~c.lzDst | c.lzSrc) & c.lzRes)) >>> sh) & 1;
  }
  return c.lzOp >= LZ_SHL ? shiftCF(c) : 0;
}

/** CF of a lazy shift: the last bit shifted out. */
function shiftCF(c: CpuCore): number {
  const n = c.lzSrc, size = c.lzSize;
  if (c.lzOp === LZ_SHL) return n <= size ? (c.lzDst >>> (size - n)) & 1 : 0;
  if (c.lzOp === LZ_SHR) return (c.lzDst >>> (n - 1)) & 1;
  return (((c.lzDst << (32 - size)) >> (32 - size)) >> (n - 1)) & 1;
}

/** OF as 0 or 1. */
export function getOF(c: CpuCore): number {
  if ((c.lzMask & OF) === 0) return (c.flags >> 11) & 1;
  const sh = c.lzSize - 1;
  if (c.lzOp === LZ_ADD) return (((c.lzDst ^ c.lzRes) & (c.lzSrc ^ c.lzRes)) >>> sh) & 1;
  if (c.lzOp === LZ_SUB) return (((c.lzDst ^ c.lzSrc) & (c.lzDst ^ c.lzRes)) >>> sh) & 1;
  // Shifts: SHL as MSB(result) ^ CF, SHR as the old MSB for a count of 1, SAR clears it.
  if (c.lzOp === LZ_SHL) return ((c.lzRes >>> sh) & 1) ^ shiftCF(c);
  if (c.lzOp === LZ_SHR) return c.lzSrc === 1 ? (c.lzDst >>> sh) & 1 : 0;
  return 0;
}

/** ZF as 0 or 1. */
export function getZF(c: CpuCore): number {
  if ((c.lzMask & ZF) === 0) return (c.flags >> 6) & 1;
  return (c.lzRes << (32 - c.lzSize)) === 0 ? 1 : 0;
}

/** SF as 0 or 1. */
export function getSF(c: CpuCore): number {
  if ((c.lzMask & SF) === 0) return (c.flags >> 7) & 1;
  return (c.lzRes >>> (c.lzSize - 1)) & 1;
}

/** PF as 0 or 1. */
export function getPF(c: CpuCore): number {
  if ((c.lzMask & PF) === 0) return (c.flags >> 2) & 1;
  return PARITY[c.lzRes & 0xff] >> 2;
}

/** AF as 0 or 1. */
export function getAF(c: CpuCore): number {
  if ((c.lzMask & AF) === 0) return (c.flags >> 4) & 1;
  if (c.lzOp === LZ_ADD || c.lzOp === LZ_SUB) return ((c.lzDst ^ c.lzSrc ^ c.lzRes) >> 4) & 1;
  return 0;
}

/** The full EFLAGS value. */
export function getFlags(c: CpuCore): number {
  if (c.lzMask === 0) return c.flags;
  return (c.flags & ~ARITH_FLAGS) | getCF(c) | (getPF(c) << 2) | (getAF(c) << 4) |
    (getZF(c) << 6) | (getSF(c) << 7) | (getOF(c) << 11);
}

/** Makes every flag concrete in `c.flags` (before changing some of them by hand). */
export function materializeFlags(c: CpuCore): void {
  if (c.lzMask !== 0) {
    c.flags = getFlags(c);
    c.lzMask = 0;
  }
}

/** Replaces the arithmetic flags in `mask` with `bits`. */
export function setArithFlags(c: CpuCore, mask: number, bits: number): void {
  materializeFlags(c);
  c.flags = (c.flags & ~mask) | (bits & mask);
}

/** Evaluates Jcc/SETcc/CMOVcc condition `cc` (0..15). */
export function condition(c: CpuCore, cc: number): boolean {
  let r: boolean;
  switch (cc >> 1) {
    case 0:
      r = getOF(c) !== 0;
      break;
    case 1:
      r = getCF(c) !== 0;
      break;
    case 2:
      r = getZF(c) !== 0;
      break;
    case 3:
      r = (getCF(c) | getZF(c)) !== 0;
      break;
    case 4:
      r = getSF(c) !== 0;
      break;
    case 5:
      r = getPF(c) !== 0;
      break;
    case 6:
      r = getSF(c) !== getOF(c);
      break;
    default:
      r = getZF(c) !== 0 || getSF(c) !== getOF(c);
  }
  return (cc & 1) ? !r : r;
}

/** Replaces the EFLAGS bits in `mask` with those of `v` (POPF, IRET, task switch). */
export function writeFlags(c: CpuCore, v: number, mask: number): void {
  materializeFlags(c);
  c.flags = (c.flags & ~mask) | (v & mask) | 2;
  c.attention = true;
}
