// The opcodes the block translator handles: ALU, INC/DEC, MOV/LEA, stack, shifts, jumps, calls

import { LZ_SAR, LZ_SHL, LZ_SHR, LZ_SUB, SS } from "../state.ts";
import { type Emitter, END, MAX_INSNS, NEXT } from "./emitter.ts";

/** Translates the instruction at `e.pos`: NEXT, END, or 0 when it is left to the interpreter. */
export function translateInsn(e: Emitter): number {
  e.segOvr = -1;
  let op = e.u8();
  const SEG_PREFIX = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];
  const sp = SEG_PREFIX.indexOf(op);
  if (sp >= 0) {
    e.segOvr = sp;
    op = e.u8();
  }
  if (op < 0x40 && (op & 7) < 6) return aluForm(e, op >> 3, op & 7);
  if (op >= 0x40 && op < 0x50) {
    const r = op & 7, dec = op >= 0x48;
    e.emit(`const va = ${e.reg(r)};`);
    e.incDec(dec, 32);
    e.setReg(r, "vr");
    e.incDecFlags(dec, 32);
    return NEXT;
  }
  if (op >= 0x50 && op < 0x58) return push(e, e.reg(op & 7));
  if (op >= 0x58 && op < 0x60) {
    e.address(SS, `${e.reg(4)} >>> 0`);
    e.emit(`const v = ${e.rd(SS, 32)};`);
    e.setReg(4, "(r4 + 4) | 0");
    e.setReg(op & 7, "v");
    e.memEnd(e.pos);
    return NEXT;
  }
  if (op === 0x68) return push(e, String(e.s32()));
  if (op === 0x6a) return push(e, String(e.s8()));
  if (op >= 0x70 && op < 0x80) return jcc(e, op & 15, e.s8());
  switch (op) {
    case 0x0f:
      return twoByte(e);
    case 0x80:
    case 0x81:
    case 0x83: {
      const size = op === 0x80 ? 8 : 32;
      const m = e.modrm();
      const imm = op === 0x81 ? e.s32() : op === 0x83 ? e.s8() : e.u8();
      e.bindEa(m);
      e.alu(m.reg, size, e.readE(m, size), String(imm));
      if (m.reg !== 7) e.writeE(m, size, "vr");
      e.aluFlags(m.reg, size);
      if (m.mod !== 3) e.memEnd(e.pos);
      return NEXT;
    }
    case 0x84:
    case 0x85: {
      const size = op === 0x84 ? 8 : 32;
      const m = e.modrm();
      e.bindEa(m);
      e.alu(4, size, e.readE(m, size), e.getR(m.reg, size));
      e.aluFlags(4, size);
      if (m.mod !== 3) e.memEnd(e.pos);
      return NEXT;
    }
    case 0x87: {
      const m = e.modrm();
      if (m.mod !== 3) return 0;
      e.emit(`const t = ${e.reg(m.rm)};`);
      e.setReg(m.rm, e.reg(m.reg));
      e.setReg(m.reg, "t");
      return NEXT;
    }
    case 0x88:
    case 0x89:
    case 0x8a:
    case 0x8b: {
      const size = (op & 1) === 0 ? 8 : 32;
      const m = e.modrm();
      e.bindEa(m);
      if (op < 0x8a) e.writeE(m, size, e.getR(m.reg, size));
      else {
        e.emit(`const v = ${e.readE(m, size)};`);
        e.setR(m.reg, size, "v");
      }
      if (m.mod !== 3) e.memEnd(e.pos);
      return NEXT;
    }
    case 0x8d: {
      const m = e.modrm();
      if (m.mod === 3) return 0;
      e.setReg(m.reg, `${m.ea} | 0`);
      return NEXT;
    }
    case 0x90:
      return NEXT;
    case 0x98:
      e.setReg(0, `(${e.reg(0)} << 16) >> 16`);
      return NEXT;
    case 0x99:
      e.setReg(2, `${e.reg(0)} >> 31`);
      return NEXT;
    case 0xa8:
      e.alu(4, 8, e.get8(0), String(e.u8()));
      e.aluFlags(4, 8);
      return NEXT;
    case 0xa9:
      e.alu(4, 32, e.reg(0), String(e.s32()));
      e.aluFlags(4, 32);
      return NEXT;
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
      return shiftOp(e, op);
    case 0xc3: {
      e.address(SS, `${e.reg(4)} >>> 0`);
      e.emit(`const t = ${e.rd(SS, 32)};`);
      e.emit(`if ((t >>> 0) > lim) { k = ${e.i}; fault(c, 13, 0); }`);
      e.setReg(4, "(r4 + 4) | 0");
      const back = e.returns.pop();
      if (back === undefined || e.i + 1 >= MAX_INSNS) {
        e.exitTo("t");
        return END;
      }
      // Returning to the call made earlier in this block: go on inline, else leave.
      e.emit(`if (t !== ${back} || c.attention) { n = ${e.i + 1}; eip = t; break; }`);
      e.pos = e.posOf(back);
      return NEXT;
    }
    case 0xc6:
    case 0xc7: {
      const size = op === 0xc6 ? 8 : 32;
      const m = e.modrm();
      if (m.reg !== 0) return 0;
      const imm = size === 8 ? e.u8() : e.s32();
      e.bindEa(m);
      e.writeE(m, size, String(imm));
      if (m.mod !== 3) e.memEnd(e.pos);
      return NEXT;
    }
    case 0xe2: {
      const d = e.s8();
      const target = (e.eipAt(e.pos) + d) | 0;
      e.setReg(1, "(r1 - 1) | 0");
      e.emit("if (r1 !== 0) {");
      e.exitTo(target);
      e.emit("}");
      return NEXT;
    }
    case 0xe8: {
      const d = e.s32();
      const ret = e.eipAt(e.pos);
      const target = (ret + d) | 0;
      e.limitCheck(target);
      e.emit(`const sp = (${e.reg(4)} - 4) | 0;`);
      e.address(SS, "sp >>> 0");
      e.wr(SS, 32, String(ret));
      e.setReg(4, "sp");
      if (e.posOf(ret) >= 0 && e.posOf(target) >= 0 && target !== e.start) {
        e.emit(`if (c.attention) { n = ${e.i + 1}; eip = ${target}; break; }`);
        e.returns.push(ret);
        return e.follow(target, true);
      }
      e.exitTo(target, true);
      return END;
    }
    case 0xe9:
    case 0xeb: {
      const d = op === 0xe9 ? e.s32() : e.s8();
      return e.follow((e.eipAt(e.pos) + d) | 0);
    }
    case 0xf6:
    case 0xf7:
      return group3(e, op === 0xf6 ? 8 : 32);
    case 0xfe:
    case 0xff: {
      const size = op === 0xfe ? 8 : 32;
      const m = e.modrm();
      if (m.reg > 1) return 0;
      e.bindEa(m);
      e.emit(`const va = ${e.readE(m, size)};`);
      e.incDec(m.reg === 1, size);
      e.writeE(m, size, "vr");
      e.incDecFlags(m.reg === 1, size);
      if (m.mod !== 3) e.memEnd(e.pos);
      return NEXT;
    }
  }
  return 0;
}

function aluForm(e: Emitter, op: number, form: number): number {
  const size = (form & 1) === 0 ? 8 : 32;
  if (form >= 4) {
    const imm = size === 8 ? e.u8() : e.s32();
    e.alu(op, size, e.getR(0, size), String(imm));
    if (op !== 7) e.setR(0, size, "vr");
    e.aluFlags(op, size);
    return NEXT;
  }
  const m = e.modrm();
  e.bindEa(m);
  if (form < 2) {
    e.alu(op, size, e.readE(m, size), e.getR(m.reg, size));
    if (op !== 7) e.writeE(m, size, "vr");
  } else {
    e.alu(op, size, e.getR(m.reg, size), e.readE(m, size));
    if (op !== 7) e.setR(m.reg, size, "vr");
  }
  e.aluFlags(op, size);
  if (m.mod !== 3) e.memEnd(e.pos);
  return NEXT;
}

function push(e: Emitter, value: string): number {
  e.emit(`const sp = (${e.reg(4)} - 4) | 0;`);
  e.address(SS, "sp >>> 0");
  e.wr(SS, 32, value);
  e.setReg(4, "sp");
  e.memEnd(e.pos);
  return NEXT;
}

function jcc(e: Emitter, cc: number, d: number): number {
  const target = (e.eipAt(e.pos) + d) | 0;
  e.emit(`if (${e.cond(cc)}) {`);
  e.exitTo(target);
  e.emit("}");
  return NEXT;
}

function shiftOp(e: Emitter, op: number): number {
  const size = (op & 1) === 0 ? 8 : 32;
  const m = e.modrm();
  const count = (op >= 0xd0 ? 1 : e.u8()) & 31;
  const kind = m.reg === 6 ? 4 : m.reg;
  if (kind < 4 || count === 0) return 0;
  e.bindEa(m);
  e.emit(`const va = ${e.readE(m, size)};`);
  let r: string, lz: number;
  const fix = size === 32 ? " | 0" : " & 0xff";
  if (kind === 4) {
    r = `(va << ${count})${fix}`;
    lz = LZ_SHL;
  } else if (kind === 5) {
    r = `(va >>> ${count})${fix}`;
    lz = LZ_SHR;
  } else {
    r = size === 32 ? `va >> ${count}` : `(((va << 24) >> 24) >> ${count}) & 0xff`;
    lz = LZ_SAR;
  }
  e.emit(`const vr = ${r};`);
  e.writeE(m, size, "vr");
  e.setFlags(lz, size, "va", String(count), "vr");
  if (m.mod !== 3) e.memEnd(e.pos);
  return NEXT;
}

function group3(e: Emitter, size: number): number {
  const m = e.modrm();
  if (m.reg === 1 || m.reg > 3) return 0;
  const imm = m.reg === 0 ? (size === 8 ? e.u8() : e.s32()) : 0;
  e.bindEa(m);
  if (m.reg === 0) {
    e.alu(4, size, e.readE(m, size), String(imm));
    e.aluFlags(4, size);
  } else if (m.reg === 2) {
    e.emit(`const v = ${e.readE(m, size)};`);
    e.writeE(m, size, size === 32 ? "~v" : "~v & 0xff");
  } else {
    e.emit(`const vb = ${e.readE(m, size)};`);
    e.emit(`const vr = (0 - vb)${size === 32 ? " | 0" : " & 0xff"};`);
    e.writeE(m, size, "vr");
    e.setFlags(LZ_SUB, size, "0", "vb", "vr", true);
  }
  if (m.mod !== 3) e.memEnd(e.pos);
  return NEXT;
}

function twoByte(e: Emitter): number {
  const op = e.u8();
  if (op >= 0x80 && op < 0x90) return jcc(e, op & 15, e.s32());
  if (op >= 0x90 && op < 0xa0) {
    const m = e.modrm();
    e.bindEa(m);
    e.emit(`const v = ${e.cond(op & 15)} ? 1 : 0;`);
    e.writeE(m, 8, "v");
    if (m.mod !== 3) e.memEnd(e.pos);
    return NEXT;
  }
  if (op === 0xb6 || op === 0xb7 || op === 0xbe || op === 0xbf) {
    const size = (op & 1) === 0 ? 8 : 16;
    const m = e.modrm();
    e.bindEa(m);
    e.emit(`const v = ${e.readE(m, size)};`);
    const sx = 32 - size;
    e.setReg(m.reg, op < 0xb8 ? "v" : `(v << ${sx}) >> ${sx}`);
    if (m.mod !== 3) e.memEnd(e.pos);
    return NEXT;
  }
  return 0;
}
