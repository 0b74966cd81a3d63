// x87 arithmetic: the D8..DF opcode map over the double-precision register stack

import { setReg16 } from "./decode.ts";
import { materializeFlags } from "./flags.ts";
import { pendingError, setFpuExec } from "./fpu.ts";
import { type FpuState, TAG_EMPTY, TAG_SPECIAL, TAG_VALID, TAG_ZERO } from "./fpu_state.ts";
import {
  extendedOf,
  fromExtended,
  off,
  readExt80,
  readF32,
  readF64,
  readInt64,
  round,
  setExtended,
  toExtended,
  writeExt80,
  writeF32,
  writeF64,
  writeInt,
} from "./fpu_formats.ts";
import { read16, read32, read8, write16, write32, write8 } from "./memory.ts";
import { CF, type CpuCore, CR0_MP, CR0_TS, CS, EXC_NM, fault, PF, ud, ZF } from "./state.ts";
import { setFpuWait } from "./ops_basic.ts";

const SW_IE = 0x1, SW_ZE = 0x4, SW_SF = 0x40;
const C0 = 0x100, C1 = 0x200, C2 = 0x400, C3 = 0x4000;

function tagOf(v: number): number {
  return v === 0 ? TAG_ZERO : Number.isFinite(v) ? TAG_VALID : TAG_SPECIAL;
}

function getTag(f: FpuState, phys: number): number {
  return (f.tag >> (phys * 2)) & 3;
}

function setTag(f: FpuState, phys: number, t: number): void {
  f.tag = (f.tag & ~(3 << (phys * 2))) | (t << (phys * 2));
}

/** ST(i), with stack underflow giving the default NaN. */
function st(f: FpuState, i: number): number {
  const p = (f.top + i) & 7;
  if (getTag(f, p) === TAG_EMPTY) {
    f.sw |= SW_IE | SW_SF;
    f.sw &= ~C1;
    return NaN;
  }
  return f.regs[p];
}

function setSt(f: FpuState, i: number, v: number): void {
  const p = (f.top + i) & 7;
  f.regs[p] = v;
  f.raw &= ~(1 << p);
  setTag(f, p, tagOf(v));
}

function push(f: FpuState, v: number): void {
  const p = (f.top - 1) & 7;
  if (getTag(f, p) !== TAG_EMPTY) {
    f.sw |= SW_IE | SW_SF | C1;
    v = NaN;
  }
  f.top = p;
  f.regs[p] = v;
  f.raw &= ~(1 << p);
  setTag(f, p, tagOf(v));
}

function pop(f: FpuState): void {
  setTag(f, f.top, TAG_EMPTY);
  f.top = (f.top + 1) & 7;
}

function arith(f: FpuState, kind: number, a: number, b: number): number {
  switch (kind) {
    case 0:
      return a + b;
    case 1:
      return a * b;
    case 4:
      return a - b;
    case 5:
      return b - a;
    case 6:
      if (b === 0 && a === a && a !== 0) f.sw |= SW_ZE;
      return a / b;
    default:
      if (a === 0 && b === b && b !== 0) f.sw |= SW_ZE;
      return b / a;
  }
}

/** Sets C3/C2/C0 from comparing a with b (FCOM). */
function compare(f: FpuState, a: number, b: number): void {
  f.sw &= ~(C0 | C1 | C2 | C3);
  if (a !== a || b !== b) {
    f.sw |= C0 | C2 | C3 | SW_IE;
  } else if (a < b) f.sw |= C0;
  else if (a === b) f.sw |= C3;
}

/** Sets ZF/PF/CF from comparing a with b (FCOMI). */
function compareEflags(c: CpuCore, a: number, b: number): void {
  materializeFlags(c);
  let bits = 0;
  if (a !== a || b !== b) bits = ZF | PF | CF;
  else if (a < b) bits = CF;
  else if (a === b) bits = ZF;
  c.flags = (c.flags & ~(ZF | PF | CF | 0x800 | 0x80 | 0x10)) | bits;
  c.fpu.sw &= ~C1;
}

function fullTagWord(f: FpuState): number {
  let t = 0;
  for (let p = 0; p < 8; p++) {
    let tag = getTag(f, p);
    if (tag !== TAG_EMPTY) tag = tagOf(f.regs[p]);
    t |= tag << (p * 2);
  }
  return t;
}

/** FNSTENV layout (protected-mode format); returns the byte size. */
function storeEnv(c: CpuCore): number {
  const f = c.fpu;
  if (c.op32) {
    write32(c, c.eaSeg, c.eaOff, f.cw | 0xffff0000);
    write32(c, c.eaSeg, off(c, 4), f.statusWord() | 0xffff0000);
    write32(c, c.eaSeg, off(c, 8), fullTagWord(f) | 0xffff0000);
    write32(c, c.eaSeg, off(c, 12), f.fip);
    write32(c, c.eaSeg, off(c, 16), f.fcs | (f.fop << 16));
    write32(c, c.eaSeg, off(c, 20), f.fdp);
    write32(c, c.eaSeg, off(c, 24), f.fds | 0xffff0000);
    return 28;
  }
  write16(c, c.eaSeg, c.eaOff, f.cw);
  write16(c, c.eaSeg, off(c, 2), f.statusWord());
  write16(c, c.eaSeg, off(c, 4), fullTagWord(f));
  write16(c, c.eaSeg, off(c, 6), f.fip);
  write16(c, c.eaSeg, off(c, 8), f.fcs);
  write16(c, c.eaSeg, off(c, 10), f.fdp);
  write16(c, c.eaSeg, off(c, 12), f.fds);
  return 14;
}

function loadEnv(c: CpuCore): number {
  const f = c.fpu;
  const n = c.op32 ? 4 : 2;
  const rd = (i: number) =>
    c.op32 ? read32(c, c.eaSeg, off(c, i * n)) : read16(c, c.eaSeg, off(c, i * n));
  f.cw = rd(0) & 0xffff;
  const sw = rd(1) & 0xffff;
  f.sw = sw & ~0x3800;
  f.top = (sw >> 11) & 7;
  const tw = rd(2) & 0xffff;
  // Only "empty" matters on load; other tags are recomputed from the values.
  let tag = 0;
  for (let p = 0; p < 8; p++) {
    tag |= (((tw >> (p * 2)) & 3) === TAG_EMPTY ? TAG_EMPTY : tagOf(f.regs[p])) << (p * 2);
  }
  f.tag = tag;
  return c.op32 ? 28 : 14;
}

/** FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (D9 E8..EE). */
const CONSTANTS = [1, Math.log2(10), Math.LOG2E, Math.PI, Math.log10(2), Math.LN2, 0];

function fxam(f: FpuState): void {
  const p = f.top;
  const v = f.regs[p];
  f.sw &= ~(C0 | C1 | C2 | C3);
  if (v < 0 || Object.is(v, -0)) f.sw |= C1;
  if (getTag(f, p) === TAG_EMPTY) f.sw |= C3 | C0;
  else if (v !== v) f.sw |= C0;
  else if (!Number.isFinite(v)) f.sw |= C2 | C0;
  else if (v === 0) f.sw |= C3;
  else f.sw |= C2;
}

function fprem(f: FpuState, ieee: boolean): void {
  const a = st(f, 0), b = st(f, 1);
  f.sw &= ~(C0 | C1 | C2 | C3);
  if (b === 0 || !Number.isFinite(a) || b !== b) {
    f.sw |= SW_IE;
    setSt(f, 0, NaN);
    return;
  }
  const q = ieee ? Math.round(a / b) : Math.trunc(a / b);
  const r = a - q * b;
  setSt(f, 0, r);
  const qi = Math.abs(q);
  if (qi & 1) f.sw |= C1;
  if (qi & 2) f.sw |= C3;
  if (qi & 4) f.sw |= C0;
}

function d9Register(c: CpuCore, m: number): void {
  const f = c.fpu;
  const i = m & 7;
  switch (m >> 3) {
    case 0: // FLD ST(i)
      push(f, st(f, i));
      return;
    case 1: { // FXCH
      const a = st(f, 0), b = st(f, i);
      setSt(f, 0, b);
      setSt(f, i, a);
      return;
    }
    case 2: // FNOP
      return;
    case 4:
      switch (i) {
        case 0:
          setSt(f, 0, -st(f, 0));
          return;
        case 1:
          setSt(f, 0, Math.abs(st(f, 0)));
          return;
        case 4:
          compare(f, st(f, 0), 0);
          return;
        case 5:
          fxam(f);
          return;
      }
      break;
    case 5:
      if (i < 7) {
        push(f, CONSTANTS[i]);
        return;
      }
      break;
    case 6:
      switch (i) {
        case 0:
          setSt(f, 0, Math.pow(2, st(f, 0)) - 1);
          return;
        case 1: { // FYL2X
          const v = st(f, 1) * Math.log2(st(f, 0));
          pop(f);
          setSt(f, 0, v);
          return;
        }
        case 2: // FPTAN
          setSt(f, 0, Math.tan(st(f, 0)));
          push(f, 1);
          f.sw &= ~C2;
          return;
        case 3: { // FPATAN
          const v = Math.atan2(st(f, 1), st(f, 0));
          pop(f);
          setSt(f, 0, v);
          return;
        }
        case 4: { // FXTRACT
          const v = st(f, 0);
          if (v === 0) {
            f.sw |= SW_ZE;
            setSt(f, 0, -Infinity);
            push(f, v);
            return;
          }
          const e = Math.floor(Math.log2(Math.abs(v)));
          let sig = v / Math.pow(2, e);
          let ee = e;
          if (Math.abs(sig) >= 2) {
            sig /= 2;
            ee++;
          } else if (Math.abs(sig) < 1) {
            sig *= 2;
            ee--;
          }
          setSt(f, 0, ee);
          push(f, sig);
          return;
        }
        case 5:
          fprem(f, true);
          return;
        case 6:
          f.top = (f.top - 1) & 7;
          return;
        default:
          f.top = (f.top + 1) & 7;
          return;
      }
    case 7:
      switch (i) {
        case 0:
          fprem(f, false);
          return;
        case 1: { // FYL2XP1
          const v = st(f, 1) * Math.log2(st(f, 0) + 1);
          pop(f);
          setSt(f, 0, v);
          return;
        }
        case 2: {
          const v = st(f, 0);
          if (v < 0) f.sw |= SW_IE;
          setSt(f, 0, Math.sqrt(v));
          return;
        }
        case 3: { // FSINCOS
          const v = st(f, 0);
          setSt(f, 0, Math.sin(v));
          push(f, Math.cos(v));
          f.sw &= ~C2;
          return;
        }
        case 4:
          setSt(f, 0, round(f, st(f, 0)));
          return;
        case 5: { // FSCALE
          const s = Math.trunc(st(f, 1));
          setSt(f, 0, st(f, 0) * Math.pow(2, s));
          return;
        }
        case 6:
          setSt(f, 0, Math.sin(st(f, 0)));
          f.sw &= ~C2;
          return;
        default:
          setSt(f, 0, Math.cos(st(f, 0)));
          f.sw &= ~C2;
          return;
      }
  }
  ud(c);
}

function fcmov(c: CpuCore, cond: boolean, i: number): void {
  if (cond) setSt(c.fpu, 0, st(c.fpu, i));
}

/** Executes one x87 instruction whose ModRM has been decoded. */
function fpuExec(c: CpuCore, op: number): void {
  const f = c.fpu;
  const reg = c.modReg;
  const mem = c.modMod !== 3;
  const i = c.modRm;
  const modrm = (c.modMod << 6) | (reg << 3) | i;
  if (!(op === 0xd9 && reg >= 4 && mem) && !(op === 0xdd && reg >= 4 && mem) && op !== 0xdb) {
    f.fop = ((op & 7) << 8) | modrm;
    f.fip = c.instrStart;
    f.fcs = c.segSel[CS];
    if (mem) {
      f.fdp = c.eaOff;
      f.fds = c.segSel[c.eaSeg];
    }
  }
  switch (op) {
    case 0xd8:
    case 0xdc:
    case 0xda:
    case 0xde: {
      if (mem) {
        const v = op === 0xd8
          ? readF32(c)
          : op === 0xdc
          ? readF64(c)
          : op === 0xda
          ? read32(c, c.eaSeg, c.eaOff)
          : (read16(c, c.eaSeg, c.eaOff) << 16) >> 16;
        if (reg === 2 || reg === 3) {
          compare(f, st(f, 0), v);
          if (reg === 3) pop(f);
        } else setSt(f, 0, arith(f, reg, st(f, 0), v));
        return;
      }
      if (op === 0xd8) {
        if (reg === 2 || reg === 3) {
          compare(f, st(f, 0), st(f, i));
          if (reg === 3) pop(f);
        } else setSt(f, 0, arith(f, reg, st(f, 0), st(f, i)));
        return;
      }
      if (op === 0xda) {
        switch (reg) {
          case 0:
            return fcmov(c, condCF(c), i);
          case 1:
            return fcmov(c, zfSet(c), i);
          case 2:
            return fcmov(c, condCF(c) || zfSet(c), i);
          case 3:
            return fcmov(c, pfSet(c), i);
          case 5:
            if (i === 1) {
              compare(f, st(f, 0), st(f, 1));
              pop(f);
              pop(f);
              return;
            }
        }
        return ud(c);
      }
      // DC / DE register forms: ST(i) = ST(i) op ST(0), with the reversed pairs swapped.
      if (reg === 2 || reg === 3) {
        compare(f, st(f, 0), st(f, i));
        if (op === 0xde && reg === 3 && i === 1) {
          pop(f);
          pop(f);
        } else if (reg === 3) pop(f);
        return;
      }
      const kind = reg >= 4 ? reg ^ 1 : reg;
      setSt(f, i, arith(f, kind, st(f, i), st(f, 0)));
      if (op === 0xde) pop(f);
      return;
    }
    case 0xd9:
      if (!mem) return d9Register(c, modrm & 0x3f);
      switch (reg) {
        case 0:
          push(f, readF32(c));
          return;
        case 2:
          writeF32(c, st(f, 0));
          return;
        case 3:
          writeF32(c, st(f, 0));
          pop(f);
          return;
        case 4:
          loadEnv(c);
          return;
        case 5:
          f.cw = read16(c, c.eaSeg, c.eaOff) | 0x40;
          return;
        case 6:
          storeEnv(c);
          f.cw |= 0x3f; // FNSTENV masks all exceptions
          return;
        case 7:
          write16(c, c.eaSeg, c.eaOff, f.cw);
          return;
      }
      return ud(c);
    case 0xdb:
      if (!mem) {
        switch (reg) {
          case 0:
            return fcmov(c, !condCF(c), i);
          case 1:
            return fcmov(c, !zfSet(c), i);
          case 2:
            return fcmov(c, !condCF(c) && !zfSet(c), i);
          case 3:
            return fcmov(c, !pfSet(c), i);
          case 4:
            if (i === 2) f.sw &= 0x7f00; // FNCLEX
            else if (i === 3) f.init(); // FNINIT
            return; // FENI, FDISI, FSETPM: no-ops
          case 5:
          case 6:
            compareEflags(c, st(f, 0), st(f, i));
            return;
        }
        return ud(c);
      }
      switch (reg) {
        case 0:
          push(f, read32(c, c.eaSeg, c.eaOff));
          return;
        case 1:
        case 2:
        case 3:
          writeInt(c, st(f, 0), 4, reg === 1);
          if (reg !== 2) pop(f);
          return;
        case 5: { // FLD m80: the words as they are (a NaN's payload included)
          const [lo, hi, se] = readExt80(c, 0);
          const full = getTag(f, (f.top - 1) & 7) !== TAG_EMPTY;
          push(f, fromExtended(lo >>> 0, hi >>> 0, se));
          if (!full) setExtended(f, f.top, lo, hi, se);
          return;
        }
        case 7: { // FSTP m80
          const empty = getTag(f, f.top) === TAG_EMPTY;
          const v = st(f, 0);
          writeExt80(c, 0, empty ? toExtended(v) : extendedOf(f, f.top));
          pop(f);
          return;
        }
      }
      return ud(c);
    case 0xdd:
      if (!mem) {
        switch (reg) {
          case 0:
            setTag(f, (f.top + i) & 7, TAG_EMPTY);
            return;
          case 2:
          case 3:
            setSt(f, i, st(f, 0));
            if (reg === 3) pop(f);
            return;
          case 4:
          case 5:
            compare(f, st(f, 0), st(f, i));
            if (reg === 5) pop(f);
            return;
        }
        return ud(c);
      }
      switch (reg) {
        case 0:
          push(f, readF64(c));
          return;
        case 1:
          writeInt(c, st(f, 0), 8, true);
          pop(f);
          return;
        case 2:
          writeF64(c, st(f, 0));
          return;
        case 3:
          writeF64(c, st(f, 0));
          pop(f);
          return;
        case 4: { // FRSTOR
          const n = loadEnv(c);
          for (let k = 0; k < 8; k++) {
            const p = (f.top + k) & 7;
            const [lo, hi, se] = readExt80(c, n + k * 10);
            setExtended(f, p, lo, hi, se);
            if (getTag(f, p) !== TAG_EMPTY) setTag(f, p, tagOf(f.regs[p]));
          }
          return;
        }
        case 6: { // FNSAVE
          const n = storeEnv(c);
          for (let k = 0; k < 8; k++) writeExt80(c, n + k * 10, extendedOf(f, (f.top + k) & 7));
          f.init();
          return;
        }
        case 7:
          write16(c, c.eaSeg, c.eaOff, f.statusWord());
          return;
      }
      return ud(c);
    default: // 0xdf
      if (!mem) {
        if (reg === 4 && i === 0) {
          setReg16(c, 0, f.statusWord());
          return;
        }
        if (reg === 5 || reg === 6) {
          compareEflags(c, st(f, 0), st(f, i));
          pop(f);
          return;
        }
        if (reg === 0) { // FFREEP
          setTag(f, (f.top + i) & 7, TAG_EMPTY);
          pop(f);
          return;
        }
        return ud(c);
      }
      switch (reg) {
        case 0:
          push(f, (read16(c, c.eaSeg, c.eaOff) << 16) >> 16);
          return;
        case 1:
        case 2:
        case 3:
          writeInt(c, st(f, 0), 2, reg === 1);
          if (reg !== 2) pop(f);
          return;
        case 4: { // FBLD
          let v = 0;
          for (let k = 8; k >= 0; k--) {
            const b = read8(c, c.eaSeg, off(c, k));
            v = v * 100 + (b >> 4) * 10 + (b & 15);
          }
          push(f, (read8(c, c.eaSeg, off(c, 9)) & 0x80) !== 0 ? -v : v);
          return;
        }
        case 5:
          push(f, readInt64(c));
          return;
        case 6: { // FBSTP
          let v = round(f, st(f, 0));
          const neg = v < 0 || Object.is(v, -0);
          v = Math.abs(v);
          for (let k = 0; k < 9; k++) {
            const lo = v % 10;
            v = Math.floor(v / 10);
            const hi = v % 10;
            v = Math.floor(v / 10);
            write8(c, c.eaSeg, off(c, k), (hi << 4) | lo);
          }
          write8(c, c.eaSeg, off(c, 9), neg ? 0x80 : 0);
          pop(f);
          return;
        }
        case 7:
          writeInt(c, st(f, 0), 8, false);
          pop(f);
          return;
      }
  }
}

function condCF(c: CpuCore): boolean {
  materializeFlags(c);
  return (c.flags & CF) !== 0;
}

function zfSet(c: CpuCore): boolean {
  materializeFlags(c);
  return (c.flags & ZF) !== 0;
}

function pfSet(c: CpuCore): boolean {
  materializeFlags(c);
  return (c.flags & PF) !== 0;
}

/** WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set. */
function fpuWaitCheck(c: CpuCore): void {
  if ((c.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) fault(c, EXC_NM);
  if ((c.fpu.sw & 0x80) !== 0) pendingError(c);
}

setFpuExec(fpuExec);
setFpuWait(fpuWaitCheck);
