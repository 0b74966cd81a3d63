// The wasm tier's shifts, rotates, double shifts, multiplies and divides (group 2, SHLD/SHRD,
// MUL/IMUL/DIV/IDIV), split from insns.ts

import { ARITH_FLAGS, LZ_SAR, LZ_SHL, LZ_SHR } from "../state.ts";
import { OP } from "./encoder.ts";
import {
  CONCRETE,
  L_A,
  L_B,
  L_F,
  L_M,
  L_P,
  L_Q,
  L_T,
  L_V,
  L_W,
  type ModRm,
  NEXT,
  type RegionCompiler,
} from "./region.ts";

/**
 * Group 2 by an immediate, by 1 or by CL: SHL, SHR, SAR (lazy flags) and, 32-bit, ROL and
 * ROR (CF and OF concrete, the other flags left as they were). A count of CL is only known
 * at run time: a zero count changes nothing, and what the flags hold after is not known to
 * the compiler (conditions read them through the helper). RCL, RCR and constant zero
 * counts stay with the interpreter.
 */
export function shift(rc: RegionCompiler, op: number): number {
  const c = rc.code;
  const size = (op & 1) === 0 ? 8 : rc.osz;
  const m = rc.modrm();
  const byCl = op === 0xd2 || op === 0xd3;
  const count = byCl ? -1 : (op >= 0xd0 ? 1 : rc.u8()) & 31;
  const kind = m.reg === 6 ? 4 : m.reg;
  if (kind === 2 || kind === 3 || count === 0 || (kind < 2 && size !== 32)) return 0;
  if (m.mod !== 3) rc.ea(m);
  rc.readE(m, size);
  c.set(L_A);
  const n = () => (byCl ? c.get(L_W) : c.i32(count));
  if (byCl) {
    rc.reg(1);
    c.i32(31).op(OP.i32And).tee(L_W).open(OP.if);
  }
  if (kind < 2) {
    // ROL/ROR r/m32: CF and OF concrete, the other flags stay (lazy or not).
    c.get(L_A);
    n();
    c.op(kind === 0 ? OP.i32Rotl : OP.i32Rotr).set(L_V);
    rc.writeE(m, size, L_V);
    c.get(L_F).i32(~0x801).op(OP.i32And);
    if (kind === 0) {
      // CF = bit 0, OF = MSB ^ CF
      c.get(L_V).i32(1).op(OP.i32And).tee(L_T).op(OP.i32Or);
      c.get(L_V).i32(31).op(OP.i32ShrU).get(L_T).op(OP.i32Xor);
    } else {
      // CF = MSB, OF = MSB ^ bit 30
      c.get(L_V).i32(31).op(OP.i32ShrU).op(OP.i32Or);
      c.get(L_V).i32(31).op(OP.i32ShrU).get(L_V).i32(30).op(OP.i32ShrU).i32(1).op(OP.i32And)
        .op(OP.i32Xor);
    }
    c.i32(11).op(OP.i32Shl).op(OP.i32Or).set(L_F);
    c.get(L_M).i32(~0x801).op(OP.i32And).set(L_M);
    rc.fl = null;
  } else {
    let lz: number;
    c.get(L_A);
    if (kind === 4) {
      n();
      c.op(OP.i32Shl);
      lz = LZ_SHL;
    } else if (kind === 5) {
      n();
      c.op(OP.i32ShrU);
      lz = LZ_SHR;
    } else {
      if (size < 32) c.i32(32 - size).op(OP.i32Shl).i32(32 - size).op(OP.i32ShrS);
      n();
      c.op(OP.i32ShrS);
      lz = LZ_SAR;
    }
    rc.fix(size);
    c.set(L_V);
    rc.writeE(m, size, L_V);
    rc.produce(lz, size, false, L_A, byCl ? L_W : null, count);
  }
  if (byCl) {
    c.end();
    rc.fl = null;
  }
  rc.memEnd();
  return NEXT;
}

/** SHLD/SHRD r/m32, r32 by an immediate or CL (0F A4/A5/AC/AD): flags concrete. */
export function shiftDouble(rc: RegionCompiler, op: number): number {
  const c = rc.code;
  const left = op < 0xa8;
  const byCl = (op & 1) === 1;
  const m = rc.modrm();
  const count = byCl ? -1 : rc.u8() & 31;
  if (m.mod !== 3) rc.ea(m);
  rc.readE(m, 32);
  c.set(L_A);
  if (count === 0) {
    rc.memEnd();
    return NEXT; // read, nothing written
  }
  rc.getR(m.reg, 32);
  c.set(L_B);
  const n = () => (byCl ? c.get(L_W) : c.i32(count));
  const rest = () => {
    c.i32(32);
    n();
    c.op(OP.i32Sub);
  };
  if (byCl) {
    rc.reg(1);
    c.i32(31).op(OP.i32And).tee(L_W).open(OP.if);
  }
  c.get(L_A);
  n();
  c.op(left ? OP.i32Shl : OP.i32ShrU).get(L_B);
  rest();
  c.op(left ? OP.i32ShrU : OP.i32Shl).op(OP.i32Or).set(L_V);
  // T = CF | OF << 11: CF the last bit shifted out of A, OF the sign change.
  c.get(L_A);
  if (left) rest();
  else {
    n();
    c.i32(1).op(OP.i32Sub);
  }
  c.op(OP.i32ShrU).i32(1).op(OP.i32And);
  c.get(L_V).get(L_A).op(OP.i32Xor).i32(31).op(OP.i32ShrU).i32(11).op(OP.i32Shl).op(OP.i32Or)
    .set(L_T);
  rc.writeE(m, 32, L_V);
  resultFlags(rc, 32);
  if (byCl) {
    c.end();
    rc.fl = null;
  }
  rc.memEnd();
  return NEXT;
}

/** Concrete flags after a multiply: CF and OF set when local T is 1 (`setMulFlags`). */
function mulFlags(rc: RegionCompiler, size: number): void {
  rc.code.get(L_T).i32(0x801).op(OP.i32Mul).set(L_T);
  resultFlags(rc, size);
}

/**
 * Concrete flags: CF and OF as bits in local T, SF, ZF, PF of V's low `size` bits, AF
 * clear (the interpreter's `setResultFlags`).
 */
function resultFlags(rc: RegionCompiler, size: number): void {
  const c = rc.code;
  c.get(L_F).i32(~ARITH_FLAGS).op(OP.i32And).get(L_T).op(OP.i32Or);
  c.get(L_V).i32(0xff).op(OP.i32And).op(OP.i32Popcnt).i32(1).op(OP.i32And).op(OP.i32Eqz)
    .i32(2).op(OP.i32Shl).op(OP.i32Or);
  c.get(L_V);
  rc.fix(size);
  c.op(OP.i32Eqz).i32(6).op(OP.i32Shl).op(OP.i32Or);
  c.get(L_V);
  rc.bit(size - 1);
  c.i32(7).op(OP.i32Shl).op(OP.i32Or).set(L_F);
  c.i32(0).set(L_M);
  rc.fl = { op: CONCRETE, size, pure: false, noCf: false, count: 0 };
}

/**
 * MUL, IMUL, DIV and IDIV r/m32 (F7 /4../7) on EDX:EAX. A divide that would raise #DE
 * (zero divisor, quotient too large, or IDIV by -1, which wasm's i64.div_s may trap on)
 * leaves the region before the instruction, so the interpreter raises the exception.
 */
export function mulDiv32(rc: RegionCompiler, m: ModRm): number {
  const c = rc.code;
  if (m.mod !== 3) rc.ea(m);
  rc.readE(m, 32);
  c.set(L_B);
  const op = m.reg;
  if (op <= 5) {
    const ext = op === 4 ? OP.i64ExtendI32U : OP.i64ExtendI32S;
    rc.reg(0);
    c.op(ext).get(L_B).op(ext).op(OP.i64Mul).tee(L_P).op(OP.i32WrapI64).set(L_V);
    c.get(L_P).op(OP.i64Const).sleb(32).op(OP.i64ShrU).op(OP.i32WrapI64).set(L_A);
    c.get(L_V);
    rc.setReg(0);
    c.get(L_A);
    rc.setReg(2);
    // Overflow: the high half is not the extension of the low half.
    c.get(L_A);
    if (op === 4) c.i32(0);
    else c.get(L_V).i32(31).op(OP.i32ShrS);
    c.op(OP.i32Ne).set(L_T);
    mulFlags(rc, 32);
    rc.memEnd();
    return NEXT;
  }
  // The dividend EDX:EAX as an i64.
  rc.reg(2);
  c.op(OP.i64ExtendI32U).op(OP.i64Const).sleb(32).op(OP.i64Shl);
  rc.reg(0);
  c.op(OP.i64ExtendI32U).op(OP.i64Or).set(L_P);
  // #DE (or the IDIV cases left to the interpreter): leave before the instruction.
  if (op === 6) {
    c.get(L_B).op(OP.i32Eqz);
    rc.reg(2);
    c.get(L_B).op(OP.i32GeU).op(OP.i32Or);
  } else {
    c.get(L_B).op(OP.i32Eqz).get(L_B).i32(-1).op(OP.i32Eq).op(OP.i32Or);
  }
  c.open(OP.if);
  rc.exit(rc.j, rc.eipAt(rc.insnStart));
  c.end();
  const ext = op === 6 ? OP.i64ExtendI32U : OP.i64ExtendI32S;
  c.get(L_P).get(L_B).op(ext).op(op === 6 ? OP.i64DivU : OP.i64DivS).set(L_Q);
  if (op === 7) {
    // The quotient must fit 32 signed bits.
    c.get(L_Q).get(L_Q).op(OP.i32WrapI64).op(OP.i64ExtendI32S).op(OP.i64Ne).open(OP.if);
    rc.exit(rc.j, rc.eipAt(rc.insnStart));
    c.end();
  }
  c.get(L_P).get(L_B).op(ext).op(op === 6 ? OP.i64RemU : OP.i64RemS).op(OP.i32WrapI64);
  rc.setReg(2);
  c.get(L_Q).op(OP.i32WrapI64);
  rc.setReg(0);
  rc.memEnd();
  return NEXT;
}

/** IMUL r, r/m (0F AF): CF and OF on overflow, SF, ZF, PF of the low result, AF clear. */
export function imul(rc: RegionCompiler, size: number): number {
  const c = rc.code;
  const m = rc.modrm();
  if (m.mod !== 3) rc.ea(m);
  rc.getR(m.reg, size);
  c.set(L_A);
  rc.readE(m, size);
  c.set(L_B);
  if (size === 32) {
    c.get(L_A).get(L_B).op(OP.i32Mul).set(L_V);
    c.get(L_A).op(OP.i64ExtendI32S).get(L_B).op(OP.i64ExtendI32S).op(OP.i64Mul);
    c.get(L_V).op(OP.i64ExtendI32S).op(OP.i64Ne).set(L_T);
  } else {
    c.get(L_A).i32(16).op(OP.i32Shl).i32(16).op(OP.i32ShrS);
    c.get(L_B).i32(16).op(OP.i32Shl).i32(16).op(OP.i32ShrS).op(OP.i32Mul).set(L_V);
    c.get(L_V).i32(16).op(OP.i32Shl).i32(16).op(OP.i32ShrS).get(L_V).op(OP.i32Ne).set(L_T);
  }
  mulFlags(rc, size);
  rc.setR(m.reg, size, L_V);
  rc.memEnd();
  return NEXT;
}
