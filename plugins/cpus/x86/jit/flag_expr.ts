// Compile-time lazy flags for translated blocks: condition expressions and the write-back

import {
  ARITH_FLAGS,
  CF,
  type CpuCore,
  LZ_ADD,
  LZ_LOGIC,
  LZ_SHL,
  LZ_SHR,
  LZ_SUB,
} from "../state.ts";

/**
 * What the translator knows about the arithmetic flags at a point of a block.
 * `op < 0`: the flags are still those held in the CPU state (block entry). Otherwise the
 * block locals `fd`, `fs`, `fr` hold the operands and result of the last producer `op`
 * (an `LZ_*` code) of `size` bits. After INC/DEC (`noCf`) CF is the one the producer
 * before left: `cfOp` -1 holds it in the local `fcf`, else it is computed only when
 * something reads it (a condition, ADC/SBB, a block exit) from that producer's operands
 * kept in `pd`, `ps`, `pr` (`cfOp` at `cfSize` bits). Dead carries cost three moves.
 * `pureSub` marks a SUB or CMP, whose conditions compare the operands directly.
 */
export interface FlagState {
  op: number;
  size: number;
  noCf: boolean;
  pureSub: boolean;
  cfOp: number;
  cfSize: number;
}

/** The state at block entry: every flag lives in the CPU state. */
export const FLAGS_IN_CPU: FlagState = {
  op: -1,
  size: 32,
  noCf: false,
  pureSub: false,
  cfOp: -1,
  cfSize: 32,
};

/** The run-time code of a state for {@linkcode writeBackFlags} (-1: nothing to write). */
export function flagCode(f: FlagState): number {
  if (f.op < 0) return -1;
  const cf = f.noCf ? 0x200 | ((f.cfOp + 1) << 10) | (f.cfSize << 13) : 0;
  return f.op | (f.size << 3) | cf;
}

/**
 * Stores the block's flag locals into the CPU's lazy-flag fields, leaving the same state
 * the interpreter would have after the same instructions.
 */
export function writeBackFlags(
  c: CpuCore,
  code: number,
  fd: number,
  fs: number,
  fr: number,
  fcf: number,
  pd: number,
  ps: number,
  pr: number,
): void {
  if (code < 0) return;
  c.lzOp = code & 7;
  c.lzSize = (code >> 3) & 63;
  c.lzDst = fd;
  c.lzSrc = fs;
  c.lzRes = fr;
  if ((code & 0x200) !== 0) {
    const cfOp = ((code >> 10) & 7) - 1;
    const cf = cfOp < 0 ? fcf : lazyCf(cfOp, (code >> 13) & 63, pd, ps, pr);
    c.flags = (c.flags & ~CF) | cf;
    c.lzMask = ARITH_FLAGS & ~CF;
  } else {
    c.lzMask = ARITH_FLAGS;
  }
}

/** CF of producer `op` at `size` bits from its operands and result (as flags.ts). */
export function lazyCf(op: number, size: number, d: number, s: number, r: number): number {
  const sh = size - 1;
  if (op === LZ_ADD) return (((d & s) | ((d | s) & ~r)) >>> sh) & 1;
  if (op === LZ_SUB) return (((~d & s) | ((~d | s) & r)) >>> sh) & 1;
  if (op === LZ_LOGIC) return 0;
  return shiftCf(op, size, d, s);
}

/** CF of a shift by a non-zero count `n` of `d` (as flags.ts derives it). */
export function shiftCf(op: number, size: number, d: number, n: number): number {
  if (op === LZ_SHL) return n <= size ? (d >>> (size - n)) & 1 : 0;
  if (op === LZ_SHR) return (d >>> (n - 1)) & 1;
  return (((d << (32 - size)) >> (32 - size)) >> (n - 1)) & 1;
}

/** CF as a 0/1 expression. */
export function cfExpr(f: FlagState): string {
  if (f.op < 0) return "getCF(c)";
  if (f.noCf) {
    return f.cfOp < 0 ? "fcf" : opCfExpr(f.cfOp, f.cfSize, "pd", "ps", "pr");
  }
  return opCfExpr(f.op, f.size, "fd", "fs", "fr");
}

function opCfExpr(op: number, size: number, d: string, s: string, r: string): string {
  const sh = size - 1;
  switch (op) {
    case LZ_ADD:
      return `((((${d} & ${s}) | ((${d} | ${s}) & ~${r})) >>> ${sh}) & 1)`;
    case LZ_SUB:
      return `((((~${d} & ${s}) | ((~${d} | ${s}) & ${r})) >>> ${sh}) & 1)`;
    case LZ_LOGIC:
      return "0";
    default:
      return `shiftCf(${op}, ${size}, ${d}, ${s})`;
  }
}

function ofExpr(f: FlagState): string {
  const sh = f.size - 1;
  switch (f.op) {
    case LZ_ADD:
      return `((((fd ^ fr) & (fs ^ fr)) >>> ${sh}) & 1)`;
    case LZ_SUB:
      return `((((fd ^ fs) & (fd ^ fr)) >>> ${sh}) & 1)`;
    case LZ_SHL:
      return `(((fr >>> ${sh}) & 1) ^ shiftCf(${f.op}, ${f.size}, fd, fs))`;
    case LZ_SHR:
      return `(fs === 1 ? (fd >>> ${sh}) & 1 : 0)`;
    default: // LOGIC, SAR
      return "0";
  }
}

function sfExpr(f: FlagState): string {
  return f.size === 32 ? "(fr < 0 ? 1 : 0)" : `((fr >>> ${f.size - 1}) & 1)`;
}

/** A boolean expression for Jcc/SETcc condition `cc` (0..15) in flag state `f`. */
export function conditionExpr(f: FlagState, cc: number): string {
  if (f.op < 0) return `condition(c, ${cc})`;
  const s = f.size;
  const ext = (v: string) => (s === 32 ? v : `((${v} << ${32 - s}) >> ${32 - s})`);
  let e: string | undefined;
  if (f.pureSub) {
    switch (cc >> 1) {
      case 1:
        e = "((fd >>> 0) < (fs >>> 0))";
        break;
      case 2:
        e = "(fd === fs)";
        break;
      case 3:
        e = "((fd >>> 0) <= (fs >>> 0))";
        break;
      case 6:
        e = `(${ext("fd")} < ${ext("fs")})`;
        break;
      case 7:
        e = `(${ext("fd")} <= ${ext("fs")})`;
        break;
    }
  } else if (f.op === LZ_LOGIC && !f.noCf) {
    switch (cc >> 1) {
      case 0:
      case 1:
        e = "false";
        break;
      case 3:
        e = "(fr === 0)";
        break;
      case 6:
        e = `(${sfExpr(f)} !== 0)`;
        break;
      case 7:
        e = `(fr === 0 || ${sfExpr(f)} !== 0)`;
        break;
    }
  }
  if (e === undefined) {
    switch (cc >> 1) {
      case 0:
        e = `(${ofExpr(f)} !== 0)`;
        break;
      case 1:
        e = `(${cfExpr(f)} !== 0)`;
        break;
      case 2:
        e = "(fr === 0)";
        break;
      case 3:
        e = `(fr === 0 || ${cfExpr(f)} !== 0)`;
        break;
      case 4:
        e = `(${sfExpr(f)} !== 0)`;
        break;
      case 5:
        e = "(PARITY[fr & 0xff] !== 0)";
        break;
      case 6:
        e = `(${sfExpr(f)} !== ${ofExpr(f)})`;
        break;
      default:
        e = `(fr === 0 || ${sfExpr(f)} !== ${ofExpr(f)})`;
    }
  }
  return (cc & 1) !== 0 ? `!${e}` : e;
}

/** The flag state after a producer: full lazy flags from `op` at `size` bits. */
export function produced(op: number, size: number, pureSub = false): FlagState {
  return { op, size, noCf: false, pureSub: pureSub && op === LZ_SUB, cfOp: -1, cfSize: 32 };
}
