// Flag emission for the region compiler: CF, OF, ZF, SF and the Jcc/SETcc conditions computed
// in wasm from the lazy-flag locals (D, S, R, F) of the last producer, or through the `cond`
// helper when no producer is known in the region

import { LZ_ADD, LZ_LOGIC, LZ_SHL, LZ_SHR, LZ_SUB } from "../state.ts";
import { type Code, OP } from "./encoder.ts";
import { IMP_COND, L_D, L_F, L_R, L_S } from "./locals.ts";

/** A flag state with every arithmetic flag in the `F` local (after IMUL). */
export const CONCRETE = -1;

/** The last flag producer a region compiled, as far as the compiler knows it. */
export interface Flags {
  op: number;
  size: number;
  /** A SUB or CMP: conditions compare the operands directly. */
  pure: boolean;
  /** INC/DEC: CF is bit 0 of the `F` local. */
  noCf: boolean;
  /** The count of a shift by a constant. */
  count: number;
}

/** Pushes (x >>> sh) & 1. */
export function bit(c: Code, sh: number): void {
  c.i32(sh).op(OP.i32ShrU).i32(1).op(OP.i32And);
}
/** Pushes CF (0 or 1). */
export function cf(c: Code, f: Flags | null, spill: () => void): void {
  if (f === null) {
    spill();
    c.i32(2).call(IMP_COND);
    return;
  }
  if (f.noCf || f.op === CONCRETE) {
    c.get(L_F).i32(1).op(OP.i32And);
    return;
  }
  const sh = f.size - 1;
  switch (f.op) {
    case LZ_ADD: // ((d & s) | ((d | s) & ~r)) >>> sh & 1
      c.get(L_D).get(L_S).op(OP.i32And).get(L_D).get(L_S).op(OP.i32Or).get(L_R).i32(-1)
        .op(OP.i32Xor).op(OP.i32And).op(OP.i32Or);
      bit(c, sh);
      return;
    case LZ_SUB:
      if (f.pure) {
        c.get(L_D).get(L_S).op(OP.i32LtU);
        return;
      }
      // ((~d & s) | ((~d | s) & r)) >>> sh & 1
      c.get(L_D).i32(-1).op(OP.i32Xor).get(L_S).op(OP.i32And).get(L_D).i32(-1).op(OP.i32Xor)
        .get(L_S).op(OP.i32Or).get(L_R).op(OP.i32And).op(OP.i32Or);
      bit(c, sh);
      return;
    case LZ_LOGIC:
      c.i32(0);
      return;
  }
  shiftCf(c, f);
}
function shiftCf(c: Code, f: Flags): void {
  const n = f.count, size = f.size;
  if (f.op === LZ_SHL) {
    if (n > size) c.i32(0);
    else {
      c.get(L_D);
      bit(c, size - n);
    }
  } else if (f.op === LZ_SHR) {
    c.get(L_D);
    bit(c, n - 1);
  } else {
    c.get(L_D).i32(32 - size).op(OP.i32Shl).i32(32 - size).op(OP.i32ShrS).i32(n - 1)
      .op(OP.i32ShrS).i32(1).op(OP.i32And);
  }
}
function of(c: Code, f: Flags): void {
  const sh = f.size - 1;
  switch (f.op) {
    case LZ_ADD:
      c.get(L_D).get(L_R).op(OP.i32Xor).get(L_S).get(L_R).op(OP.i32Xor).op(OP.i32And);
      bit(c, sh);
      return;
    case LZ_SUB:
      c.get(L_D).get(L_S).op(OP.i32Xor).get(L_D).get(L_R).op(OP.i32Xor).op(OP.i32And);
      bit(c, sh);
      return;
    case LZ_SHL:
      c.get(L_R);
      bit(c, sh);
      shiftCf(c, f);
      c.op(OP.i32Xor);
      return;
    case LZ_SHR:
      if (f.count === 1) {
        c.get(L_D);
        bit(c, sh);
      } else c.i32(0);
      return;
    default:
      c.i32(0);
  }
}
function zf(c: Code): void {
  c.get(L_R).op(OP.i32Eqz);
}
function sf(c: Code, f: Flags): void {
  c.get(L_R);
  bit(c, f.size - 1);
}
/** Pushes condition `cc` (0/1). */
export function cond(c: Code, f: Flags | null, cc: number, spill: () => void): void {
  if (f === null) {
    spill();
    c.i32(cc).call(IMP_COND);
    return;
  }
  if (f.op === CONCRETE) {
    const bitF = (b: number) => {
      c.get(L_F);
      bit(c, b);
    };
    switch (cc >> 1) {
      case 0:
        bitF(11);
        break;
      case 1:
        bitF(0);
        break;
      case 2:
        bitF(6);
        break;
      case 3:
        c.get(L_F).i32(0x41).op(OP.i32And).i32(0).op(OP.i32Ne);
        break;
      case 4:
        bitF(7);
        break;
      case 5:
        bitF(2);
        break;
      case 6:
        bitF(7);
        bitF(11);
        c.op(OP.i32Xor);
        break;
      default:
        bitF(7);
        bitF(11);
        c.op(OP.i32Xor);
        bitF(6);
        c.op(OP.i32Or);
    }
    if (cc & 1) c.op(OP.i32Eqz);
    return;
  }
  const ext = (l: number) => {
    c.get(l);
    if (f.size < 32) c.i32(32 - f.size).op(OP.i32Shl);
  };
  const pureSub = f.pure && !f.noCf;
  switch (cc >> 1) {
    case 0:
      of(c, f);
      break;
    case 1:
      cf(c, f, spill);
      break;
    case 2:
      zf(c);
      break;
    case 3:
      if (pureSub) c.get(L_D).get(L_S).op(OP.i32LeU);
      else {
        cf(c, f, spill);
        zf(c);
        c.op(OP.i32Or);
      }
      break;
    case 4:
      sf(c, f);
      break;
    case 5:
      c.get(L_R).i32(0xff).op(OP.i32And).op(OP.i32Popcnt).i32(1).op(OP.i32And).op(OP.i32Eqz);
      break;
    case 6:
      if (pureSub) {
        ext(L_D);
        ext(L_S);
        c.op(OP.i32LtS);
      } else {
        sf(c, f);
        of(c, f);
        c.op(OP.i32Xor);
      }
      break;
    default:
      if (pureSub) {
        ext(L_D);
        ext(L_S);
        c.op(OP.i32LeS);
      } else {
        sf(c, f);
        of(c, f);
        c.op(OP.i32Xor);
        zf(c);
        c.op(OP.i32Or);
      }
  }
  if (cc & 1) c.op(OP.i32Eqz);
}
