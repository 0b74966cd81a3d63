// Instruction decoding: ModRM/SIB effective addresses, register operands and prefixes

import {
  fetch16,
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
import { decodeLong } from "./decode_long.ts";
import {
  type CpuCore,
  DS,
  EBP,
  EBX,
  EDI,
  ESI,
  EXC_UD,
  fault,
  type OpHandler,
  SS,
} from "./state.ts";

/** Reads the ModRM byte and, for a memory operand, computes `eaSeg:eaOff`. */
export function decodeModrm(c: CpuCore): void {
  decodeModrmByte(c, fetch8(c));
}

/** Decodes an already fetched ModRM byte `m` (handlers peek it for register fast paths). */
export function decodeModrmByte(c: CpuCore, m: number): void {
  const mod = m >> 6;
  c.modMod = mod;
  c.modReg = (m >> 3) & 7;
  c.modRm = m & 7;
  if (c.rex !== 0) {
    decodeLong(c, m);
    return;
  }
  if (mod === 3) return;
  if (c.addr32) decodeEa32(c, mod, m & 7);
  else decodeEa16(c, mod, m & 7);
}

function decodeEa16(c: CpuCore, mod: number, rm: number): void {
  const r = c.regs;
  let off: number;
  let seg = DS;
  switch (rm) {
    case 0:
      off = r[EBX] + r[ESI];
      break;
    case 1:
      off = r[EBX] + r[EDI];
      break;
    case 2:
      off = r[EBP] + r[ESI];
      seg = SS;
      break;
    case 3:
      off = r[EBP] + r[EDI];
      seg = SS;
      break;
    case 4:
      off = r[ESI];
      break;
    case 5:
      off = r[EDI];
      break;
    case 6:
      if (mod === 0) {
        off = fetch16(c);
      } else {
        off = r[EBP];
        seg = SS;
      }
      break;
    default:
      off = r[EBX];
  }
  if (mod === 1) off += (fetch8(c) << 24) >> 24;
  else if (mod === 2) off += fetch16(c);
  c.eaOff = off & 0xffff;
  c.eaSeg = c.segOvr >= 0 ? c.segOvr : seg;
}

function decodeEa32(c: CpuCore, mod: number, rm: number): void {
  const r = c.regs;
  let off: number;
  let seg = DS;
  if (rm === 4) {
    const sib = fetch8(c);
    const base = sib & 7;
    const index = (sib >> 3) & 7;
    off = index === 4 ? 0 : r[index] << (sib >> 6);
    if (base === 5 && mod === 0) {
      off += fetch32(c);
    } else {
      off += r[base];
      if (base === 4 || base === 5) seg = SS;
    }
  } else if (rm === 5 && mod === 0) {
    off = fetch32(c);
  } else {
    off = r[rm];
    if (rm === 5) seg = SS;
  }
  if (mod === 1) off += (fetch8(c) << 24) >> 24;
  else if (mod === 2) off += fetch32(c);
  c.eaOff = off | 0; // int32 bit pattern (see CpuCore.eaOff)
  c.eaSeg = c.segOvr >= 0 ? c.segOvr : seg;
}

/** The default-DS segment of a string or moffs operand with overrides applied. */
export function dataSeg(c: CpuCore): number {
  return c.segOvr >= 0 ? c.segOvr : DS;
}

/** Reads 8-bit register `r` (AL..BH). */
export function getReg8(c: CpuCore, r: number): number {
  if (r < 4) return c.regs[r] & 0xff;
  // With a REX prefix 4..7 are SPL, BPL, SIL, DIL and 8..15 R8B..R15B.
  return (c.rex & 0x40) !== 0 ? c.regs[r] & 0xff : (c.regs[r - 4] >> 8) & 0xff;
}

/** Writes 8-bit register `r`. */
export function setReg8(c: CpuCore, r: number, v: number): void {
  if (r < 4 || (c.rex & 0x40) !== 0) c.regs[r] = (c.regs[r] & ~0xff) | (v & 0xff);
  else c.regs[r - 4] = (c.regs[r - 4] & ~0xff00) | ((v & 0xff) << 8);
}

/** Writes the low word of register `r`. */
export function setReg16(c: CpuCore, r: number, v: number): void {
  c.regs[r] = (c.regs[r] & ~0xffff) | (v & 0xffff);
}

/** Reads the byte ModRM operand. */
export function readE8(c: CpuCore): number {
  return c.modMod === 3 ? getReg8(c, c.modRm) : read8(c, c.eaSeg, c.eaOff);
}

/**
 * Reads the byte ModRM operand of a read-modify-write instruction: a memory operand
 * must also be writable (see {@linkcode probeWrite}) before the instruction changes flags.
 */
export function readM8(c: CpuCore): number {
  if (c.modMod === 3) return getReg8(c, c.modRm);
  const v = read8(c, c.eaSeg, c.eaOff);
  probeWrite(c, c.eaSeg, c.eaOff, 1);
  return v;
}

/** Checks that a memory ModRM operand of `size` bytes could be written (see {@linkcode readM8}). */
export function probeE(c: CpuCore, size: number): void {
  if (c.modMod !== 3) probeWrite(c, c.eaSeg, c.eaOff, size);
}

/** Reads the word ModRM operand of a read-modify-write instruction (see {@linkcode readM8}). */
export function readM16(c: CpuCore): number {
  if (c.modMod === 3) return c.regs[c.modRm] & 0xffff;
  const v = read16(c, c.eaSeg, c.eaOff);
  probeWrite(c, c.eaSeg, c.eaOff, 2);
  return v;
}

/** Reads the dword ModRM operand of a read-modify-write instruction (see {@linkcode readM8}). */
export function readM32(c: CpuCore): number {
  if (c.modMod === 3) return c.regs[c.modRm];
  const v = read32(c, c.eaSeg, c.eaOff);
  probeWrite(c, c.eaSeg, c.eaOff, 4);
  return v;
}

/** Writes the byte ModRM operand. */
export function writeE8(c: CpuCore, v: number): void {
  if (c.modMod === 3) setReg8(c, c.modRm, v);
  else write8(c, c.eaSeg, c.eaOff, v);
}

/** Reads the word ModRM operand. */
export function readE16(c: CpuCore): number {
  return c.modMod === 3 ? c.regs[c.modRm] & 0xffff : read16(c, c.eaSeg, c.eaOff);
}

/** Writes the word ModRM operand. */
export function writeE16(c: CpuCore, v: number): void {
  if (c.modMod === 3) setReg16(c, c.modRm, v);
  else write16(c, c.eaSeg, c.eaOff, v);
}

/** Reads the dword ModRM operand (int32). */
export function readE32(c: CpuCore): number {
  return c.modMod === 3 ? c.regs[c.modRm] : read32(c, c.eaSeg, c.eaOff);
}

/** Writes the dword ModRM operand. */
export function writeE32(c: CpuCore, v: number): void {
  if (c.modMod === 3) c.regs[c.modRm] = v;
  else write32(c, c.eaSeg, c.eaOff, v);
}

/** Resets the prefix state at an instruction boundary (or after a fault). */
export function resetPrefixes(c: CpuCore): void {
  c.prefixed = false;
  c.segOvr = -1;
  c.rep = 0;
  c.lock = false;
  c.prefixCount = 0;
  if (c.code64) {
    c.rex = 0x100;
    c.op32 = true;
    c.addr32 = true;
    c.addrOvr = false;
    c.table = c.table64;
  } else {
    c.op32 = c.code32;
    c.addr32 = c.code32;
    c.table = c.code32 ? c.table32 : c.table16;
  }
  if (c.lenCheck) {
    c.lenCheck = false;
    c.fetchLen = 0;
  }
}

/** Opcodes LOCK may prefix (with a memory destination), and the ModRM reg values allowed. */
const LOCKABLE = new Uint8Array(512);
for (let op = 0; op < 0x40; op += 8) {
  if (op !== 0x38) LOCKABLE[op] = LOCKABLE[op + 1] = 0xff; // ALU ops except CMP
}
LOCKABLE[0x80] =
  LOCKABLE[0x81] =
  LOCKABLE[0x82] =
  LOCKABLE[0x83] =
    0x7f; // not /7 (CMP)
LOCKABLE[0x86] = LOCKABLE[0x87] = 0xff; // XCHG
LOCKABLE[0xf6] = LOCKABLE[0xf7] = 0x0c; // NOT, NEG
LOCKABLE[0xfe] = LOCKABLE[0xff] = 0x03; // INC, DEC
for (const op of [0x1ab, 0x1b3, 0x1bb, 0x1b0, 0x1b1, 0x1c0, 0x1c1]) LOCKABLE[op] = 0xff;
LOCKABLE[0x1ba] = 0xe0; // BTS, BTR, BTC with imm8
LOCKABLE[0x1c7] = 0x02; // CMPXCHG8B

/** #UD for LOCK before an instruction that cannot be locked (386 and later). */
export function checkLock(c: CpuCore, op: number): void {
  const start = c.eip;
  const full = op === 0x0f ? 0x100 | fetch8(c) : op;
  const allowed = LOCKABLE[full];
  const modrm = allowed !== 0 ? fetch8(c) : 0;
  c.eip = start;
  if (allowed === 0 || (modrm >> 6) === 3 || (allowed & (1 << ((modrm >> 3) & 7))) === 0) {
    fault(c, EXC_UD);
  }
}

/** Continues decoding after a prefix byte. */
function afterPrefix(c: CpuCore): void {
  c.prefixed = true;
  if (++c.prefixCount >= 4 && !c.lenCheck) {
    // Long prefix runs may exceed the instruction length limit: check every byte.
    c.lenCheck = true;
    c.fetchLen = 0;
  }
  const op = fetch8(c);
  if (c.lock && c.model.family > 2 && !IS_PREFIX[op]) checkLock(c, op);
  c.table[op](c);
  // The outermost prefix handler restores the defaults once the instruction is done.
  if (c.prefixed) resetPrefixes(c);
}

const IS_PREFIX = new Uint8Array(256);
for (const p of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) {
  IS_PREFIX[p] = 1;
}

/** Installs the prefix bytes (segment overrides, 66h, 67h, LOCK, REP). */
export function installPrefixes(t16: OpHandler[], t32: OpHandler[]): void {
  const segs = [[0x26, 0], [0x2e, 1], [0x36, 2], [0x3e, 3], [0x64, 4], [0x65, 5]];
  for (const [op, seg] of segs) {
    const h = (c: CpuCore) => {
      c.segOvr = seg;
      afterPrefix(c);
    };
    t16[op] = t32[op] = h;
  }
  t16[0x66] = t32[0x66] = (c) => {
    c.op32 = !c.code32;
    c.table = c.op32 ? c.table32 : c.table16;
    afterPrefix(c);
  };
  t16[0x67] = t32[0x67] = (c) => {
    c.addr32 = !c.code32;
    afterPrefix(c);
  };
  t16[0xf0] = t32[0xf0] = (c) => {
    c.lock = true;
    afterPrefix(c);
  };
  t16[0xf2] = t32[0xf2] = (c) => {
    c.rep = 0xf2;
    afterPrefix(c);
  };
  t16[0xf3] = t32[0xf3] = (c) => {
    c.rep = 0xf3;
    afterPrefix(c);
  };
  t16[0x0f] = t32[0x0f] = (c) => {
    c.table[0x100 | fetch8(c)](c);
  };
}
