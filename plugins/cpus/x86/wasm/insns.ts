// The instructions the wasm tier translates: ALU, INC/DEC, MOV/LEA/MOVZX/MOVSX, IMUL, stack,
// shifts, SETcc, jumps, calls and returns, 32-bit and (with 66h) 16-bit operands (group 2,
// SHLD/SHRD, MUL/DIV and IMUL are in insns_arith.ts)

import { DS, LZ_SUB, SS } from "../state.ts";
import { OP } from "./encoder.ts";
import { imul, mulDiv32, shift, shiftDouble } from "./insns_arith.ts";
import {
  END,
  L_A,
  L_B,
  L_LIN,
  L_N,
  L_NEXT,
  L_ST,
  L_T,
  L_V,
  NEXT,
  type RegionCompiler,
} from "./region.ts";

const MASK: Record<number, number> = { 8: 0xff, 16: 0xffff, 32: -1 };
/** One-byte opcodes translated with a 66h prefix (16-bit operands). */
const SIZE16_OK = new Uint8Array(256);
for (let op = 0; op < 0x40; op++) if ((op & 7) < 6) SIZE16_OK[op] = 1;
for (
  const op of [
    0x0f,
    0x81,
    0x83,
    0x85,
    0x89,
    0x8b,
    0x90,
    0xa1,
    0xa3,
    0xa9,
    0xc1,
    0xc7,
    0xd1,
    0xd3,
    0xf7,
    0xff,
  ]
) SIZE16_OK[op] = 1;
for (let op = 0xb8; op < 0xc0; op++) SIZE16_OK[op] = 1;

/** Translates one instruction at `pos`: NEXT, END, or 0 to leave it to the interpreter. */
export function translateInsn(rc: RegionCompiler): number {
  const c = rc.code;
  rc.segOvr = -1;
  rc.osz = 32;
  let op = rc.u8();
  let lock = false;
  for (let k = 0; k < 3; k++) {
    const sp = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65].indexOf(op);
    if (sp >= 0 && rc.segOvr < 0) rc.segOvr = sp;
    else if (op === 0x66 && rc.osz === 32) rc.osz = 16;
    else if (op === 0xf0 && !lock) lock = true;
    else break;
    op = rc.u8();
  }
  // LOCK: the CPUs take turns on one thread, so a locked read-modify-write is atomic as
  // it is; only the forms that allow LOCK are translated (the others raise #UD).
  if (lock && !lockable(op, rc.peek())) return 0;
  const osz = rc.osz;
  if (op < 0x40 && (op & 7) < 6) return aluForm(rc, op >> 3, op & 7);
  if (op >= 0x40 && op < 0x50) {
    rc.getR(op & 7, osz);
    c.set(L_A);
    rc.incDec(op >= 0x48, osz);
    rc.setR(op & 7, osz, L_V);
    return NEXT;
  }
  if (osz === 16 && !SIZE16_OK[op]) return 0;
  if (op >= 0x50 && op < 0x58) {
    rc.reg(op & 7);
    c.set(L_B);
    return push(rc);
  }
  if (op >= 0x58 && op < 0x60) {
    pop(rc);
    c.get(L_V);
    rc.setReg(op & 7);
    rc.memEnd();
    return NEXT;
  }
  if (op === 0x68 || op === 0x6a) {
    c.i32(op === 0x68 ? rc.s32() : rc.s8()).set(L_B);
    return push(rc);
  }
  if (op >= 0x70 && op < 0x80) return jcc(rc, op & 15, rc.s8());
  if (op >= 0xb0 && op < 0xb8) {
    c.i32(rc.u8()).set(L_V);
    rc.setR(op & 7, 8, L_V);
    return NEXT;
  }
  if (op >= 0xb8 && op < 0xc0) {
    c.i32(rc.imm(osz)).set(L_V);
    rc.setR(op & 7, osz, L_V);
    return NEXT;
  }
  switch (op) {
    case 0x0f:
      return twoByte(rc);
    case 0x80:
    case 0x81:
    case 0x83: {
      const size = op === 0x80 ? 8 : osz;
      const m = rc.modrm();
      const imm = op === 0x81 ? rc.imm(size) : op === 0x83 ? rc.s8() & MASK[size] : rc.u8();
      if (m.mod !== 3) rc.ea(m);
      rc.readE(m, size);
      c.set(L_A).i32(imm).set(L_B);
      rc.alu(m.reg, size, m.reg !== 7 ? m : null);
      rc.memEnd();
      return NEXT;
    }
    case 0x84:
    case 0x85: {
      const size = op === 0x84 ? 8 : osz;
      const m = rc.modrm();
      if (m.mod !== 3) rc.ea(m);
      rc.readE(m, size);
      c.set(L_A);
      rc.getR(m.reg, size);
      c.set(L_B);
      rc.alu(4, size);
      rc.memEnd();
      return NEXT;
    }
    case 0x87: {
      const m = rc.modrm();
      if (m.mod !== 3) return 0;
      rc.reg(m.rm);
      c.set(L_T);
      rc.reg(m.reg);
      rc.setReg(m.rm);
      c.get(L_T);
      rc.setReg(m.reg);
      return NEXT;
    }
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b: {
      const size = (op & 1) === 0 ? 8 : osz;
      const m = rc.modrm();
      if (m.mod !== 3) rc.ea(m);
      if (op < 0x8a) {
        rc.getR(m.reg, size);
        c.set(L_V);
        rc.writeE(m, size, L_V);
      } else {
        rc.readE(m, size);
        c.set(L_V);
        rc.setR(m.reg, size, L_V);
      }
      rc.memEnd();
      return NEXT;
    }
    case 0x8d: {
      const m = rc.modrm();
      if (m.mod === 3) return 0;
      rc.ea(m);
      c.get(L_LIN);
      rc.setReg(m.reg);
      return NEXT;
    }
    case 0x90:
      return NEXT;
    case 0x98:
      rc.reg(0);
      c.i32(16).op(OP.i32Shl).i32(16).op(OP.i32ShrS);
      rc.setReg(0);
      return NEXT;
    case 0x99:
      rc.reg(0);
      c.i32(31).op(OP.i32ShrS);
      rc.setReg(2);
      return NEXT;
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3: {
      const size = (op & 1) === 0 ? 8 : osz;
      c.i32(rc.s32()).set(L_LIN);
      const seg = rc.segOvr >= 0 ? rc.segOvr : DS;
      if (op < 0xa2) {
        rc.read(seg, size);
        c.set(L_V);
        rc.setR(0, size, L_V);
      } else {
        rc.getR(0, size);
        c.set(L_V);
        rc.write(seg, size, L_V);
      }
      rc.memEnd();
      return NEXT;
    }
    case 0xa8:
    case 0xa9: {
      const size = op === 0xa8 ? 8 : osz;
      rc.getR(0, size);
      c.set(L_A).i32(rc.imm(size)).set(L_B);
      rc.alu(4, size);
      return NEXT;
    }
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
      return shift(rc, op);
    case 0xc2:
    case 0xc3: {
      const extra = op === 0xc2 ? rc.u8() | (rc.u8() << 8) : 0;
      rc.reg(4);
      c.set(L_LIN);
      rc.read(SS, 32);
      c.set(L_A);
      rc.reg(4);
      c.i32(4 + extra).op(OP.i32Add);
      rc.setReg(4);
      if (rc.slow) {
        c.get(L_ST).open(OP.if);
        rc.exitDyn(rc.j + 1, L_A);
        c.end();
      }
      // A return to a call made in this region goes on inside it.
      if (!rc.discovering) {
        for (const b of rc.returnBlocks) {
          c.get(L_A).i32(rc.eipAt(rc.starts[b])).op(OP.i32Eq).open(OP.if);
          if (rc.j + 1 !== rc.len) {
            c.get(L_N).i32(rc.j + 1 - rc.len).op(OP.i32Add).set(L_N);
          }
          c.i32(b).set(L_NEXT).br(rc.lLoop);
          c.end();
        }
      }
      rc.exitDyn(rc.j + 1, L_A);
      return END;
    }
    case 0xc6:
    case 0xc7: {
      const size = op === 0xc6 ? 8 : osz;
      const m = rc.modrm();
      if (m.reg !== 0) return 0;
      const imm = rc.imm(size);
      if (m.mod !== 3) rc.ea(m);
      c.i32(imm).set(L_V);
      rc.writeE(m, size, L_V);
      rc.memEnd();
      return NEXT;
    }
    case 0xc9: {
      // LEAVE: ESP = EBP, then POP EBP.
      rc.reg(5);
      c.set(L_LIN);
      rc.read(SS, 32);
      c.set(L_V);
      rc.reg(5);
      c.i32(4).op(OP.i32Add);
      rc.setReg(4);
      c.get(L_V);
      rc.setReg(5);
      rc.memEnd();
      return NEXT;
    }
    case 0xe8: {
      const d = rc.s32();
      const ret = rc.eipAt(rc.pos);
      const target = (ret + d) | 0;
      rc.reg(4);
      c.i32(4).op(OP.i32Sub).set(L_LIN).i32(ret).set(L_B);
      rc.write(SS, 32, L_B);
      c.get(L_LIN);
      rc.setReg(4);
      rc.memEnd(target);
      const rp = rc.posOf(ret);
      if (rp >= 0) {
        const b = rc.blockAt(rp);
        if (b >= 0 && rc.discovering) rc.returnBlocks.add(b);
      }
      rc.jumpTo(target);
      return END;
    }
    case 0xe9:
    case 0xeb: {
      const d = op === 0xe9 ? rc.s32() : rc.s8();
      rc.jumpTo((rc.eipAt(rc.pos) + d) | 0);
      return END;
    }
    case 0xf6:
    case 0xf7:
      return group3(rc, op === 0xf6 ? 8 : osz);
    case 0xfe:
    case 0xff:
      return group5(rc, op === 0xfe ? 8 : osz);
  }
  return 0;
}

/**
 * Whether LOCK may prefix opcode `op` with ModRM byte `m` among the forms this tier
 * translates: ADD..XOR (not CMP) to memory, group 1 to memory (not CMP), NOT/NEG and
 * INC/DEC of memory. SDM vol. 2 "LOCK": other forms raise #UD (left to the interpreter).
 */
function lockable(op: number, m: number): boolean {
  const reg = (m >> 3) & 7;
  if (m < 0 || m >= 0xc0) return false;
  if (op < 0x40) return (op & 7) < 2 && op >> 3 !== 7;
  if (op === 0x80 || op === 0x81 || op === 0x83) return reg !== 7;
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3;
  if (op === 0xfe || op === 0xff) return reg <= 1;
  return false;
}

function aluForm(rc: RegionCompiler, op: number, form: number): number {
  const c = rc.code;
  const size = (form & 1) === 0 ? 8 : rc.osz;
  if (form >= 4) {
    rc.getR(0, size);
    c.set(L_A).i32(rc.imm(size)).set(L_B);
    rc.alu(op, size);
    if (op !== 7) rc.setR(0, size, L_V);
    return NEXT;
  }
  const m = rc.modrm();
  if (m.mod !== 3) rc.ea(m);
  if (form < 2) {
    rc.readE(m, size);
    c.set(L_A);
    rc.getR(m.reg, size);
    c.set(L_B);
    rc.alu(op, size, op !== 7 ? m : null);
  } else {
    rc.getR(m.reg, size);
    c.set(L_A);
    rc.readE(m, size);
    c.set(L_B);
    rc.alu(op, size);
    if (op !== 7) rc.setR(m.reg, size, L_V);
  }
  rc.memEnd();
  return NEXT;
}

/** PUSH of local B. */
function push(rc: RegionCompiler): number {
  const c = rc.code;
  rc.reg(4);
  c.i32(4).op(OP.i32Sub).set(L_LIN);
  rc.write(SS, 32, L_B);
  c.get(L_LIN);
  rc.setReg(4);
  rc.memEnd();
  return NEXT;
}
/** POP into local V (ESP updated; the caller writes the destination). */
function pop(rc: RegionCompiler): void {
  const c = rc.code;
  rc.reg(4);
  c.set(L_LIN);
  rc.read(SS, 32);
  c.set(L_V);
  rc.reg(4);
  c.i32(4).op(OP.i32Add);
  rc.setReg(4);
}

function jcc(rc: RegionCompiler, cc: number, d: number): number {
  const target = (rc.eipAt(rc.pos) + d) | 0;
  rc.cond(cc);
  rc.code.open(OP.if);
  rc.jumpTo(target);
  rc.code.end();
  return NEXT;
}

function group3(rc: RegionCompiler, size: number): number {
  const c = rc.code;
  const m = rc.modrm();
  if (m.reg === 1) return 0;
  if (m.reg >= 4) return size === 32 ? mulDiv32(rc, m) : 0;
  const imm = m.reg === 0 ? rc.imm(size) : 0;
  if (m.mod !== 3) rc.ea(m);
  rc.readE(m, size);
  if (m.reg === 0) {
    c.set(L_A).i32(imm).set(L_B);
    rc.alu(4, size);
  } else if (m.reg === 2) {
    c.i32(-1).op(OP.i32Xor);
    rc.fix(size);
    c.set(L_V);
    rc.writeE(m, size, L_V);
  } else {
    c.set(L_B).i32(0).set(L_A);
    c.i32(0).get(L_B).op(OP.i32Sub);
    rc.fix(size);
    c.set(L_V);
    rc.writeE(m, size, L_V);
    rc.produce(LZ_SUB, size, true, L_A, L_B);
  }
  rc.memEnd();
  return NEXT;
}

function group5(rc: RegionCompiler, size: number): number {
  const c = rc.code;
  const m = rc.modrm();
  if (m.reg > 1 && (size !== 32 || (m.reg !== 2 && m.reg !== 4 && m.reg !== 6))) return 0;
  if (m.mod !== 3) rc.ea(m);
  rc.readE(m, size);
  if (m.reg <= 1) {
    c.set(L_A);
    rc.incDec(m.reg === 1, size, m);
    rc.memEnd();
    return NEXT;
  }
  c.set(L_B);
  if (m.reg === 4) {
    rc.exitDyn(rc.j + 1, L_B);
    return END;
  }
  if (m.reg === 6) return push(rc);
  // CALL r/m32: push the return address, leave for the target.
  c.get(L_B).set(L_A).i32(rc.eipAt(rc.pos)).set(L_B);
  rc.reg(4);
  c.i32(4).op(OP.i32Sub).set(L_LIN);
  rc.write(SS, 32, L_B);
  c.get(L_LIN);
  rc.setReg(4);
  rc.exitDyn(rc.j + 1, L_A);
  return END;
}

function twoByte(rc: RegionCompiler): number {
  const c = rc.code;
  const op = rc.u8();
  const osz = rc.osz;
  const cmov = op >= 0x40 && op < 0x50;
  if (osz === 16 && op !== 0xaf && op !== 0xb6 && op !== 0xbe && !cmov) return 0;
  if (op >= 0x80 && op < 0x90) return jcc(rc, op & 15, rc.s32());
  if (op === 0xaf) return imul(rc, osz);
  if (op === 0xa4 || op === 0xa5 || op === 0xac || op === 0xad) return shiftDouble(rc, op);
  if (cmov) {
    // CMOVcc: the source is read (and may fault) whatever the condition.
    const m = rc.modrm();
    if (m.mod !== 3) rc.ea(m);
    rc.readE(m, osz);
    c.set(L_V);
    rc.cond(op & 15);
    c.open(OP.if);
    rc.setR(m.reg, osz, L_V);
    c.end();
    rc.memEnd();
    return NEXT;
  }
  if (op >= 0x90 && op < 0xa0) {
    const m = rc.modrm();
    if (m.mod !== 3) rc.ea(m);
    rc.cond(op & 15);
    c.set(L_V);
    rc.writeE(m, 8, L_V);
    rc.memEnd();
    return NEXT;
  }
  if (op === 0xb6 || op === 0xb7 || op === 0xbe || op === 0xbf) {
    const size = (op & 1) === 0 ? 8 : 16;
    const m = rc.modrm();
    if (m.mod !== 3) rc.ea(m);
    rc.readE(m, size);
    if (op >= 0xb8) c.i32(32 - size).op(OP.i32Shl).i32(32 - size).op(OP.i32ShrS);
    c.set(L_V);
    rc.setR(m.reg, osz, L_V);
    rc.memEnd();
    return NEXT;
  }
  return 0;
}
