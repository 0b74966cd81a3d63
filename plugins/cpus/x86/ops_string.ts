// String instructions (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) with REP prefixes

import { arith } from "./alu.ts";
import { dataSeg } from "./decode.ts";
import { getZF } from "./flags.ts";
import { checkIoPermission } from "./ops_control.ts";
import {
  checkWrite,
  read16,
  read32,
  read8,
  tlbSlotForRead,
  tlbSlotForWrite,
  write16,
  write32,
  write8,
} from "./memory.ts";
import { type CpuCore, DF, ECX, EDI, ES, ESI, EXC_GP, fault, type OpHandler } from "./state.ts";

const MOVS = 0, CMPS = 1, STOS = 2, LODS = 3, SCAS = 4, INS = 5, OUTS = 6;

/** Iterations of a REP string op before it yields to the run loop (it resumes itself). */
const REP_CHUNK = 4096;

/**
 * Iterations a REP string instruction may do now: each counts as one instruction retired
 * (as QEMU's icount does), so a REP stops at the end of the slice and resumes in the
 * next; at least one, as the run loop calls a handler only with budget left.
 */
function repBudget(c: CpuCore): number {
  return Math.max(1, Math.min(REP_CHUNK, c.sliceEnd - c.retired));
}

function rd(c: CpuCore, seg: number, off: number, bytes: number): number {
  return bytes === 1 ? read8(c, seg, off) : bytes === 2 ? read16(c, seg, off) : read32(c, seg, off);
}

function wr(c: CpuCore, seg: number, off: number, v: number, bytes: number): void {
  if (bytes === 1) write8(c, seg, off, v);
  else if (bytes === 2) write16(c, seg, off, v);
  else write32(c, seg, off, v);
}

function setAcc(c: CpuCore, v: number, bytes: number): void {
  const r = c.regs;
  if (bytes === 1) r[0] = (r[0] & ~0xff) | (v & 0xff);
  else if (bytes === 2) r[0] = (r[0] & ~0xffff) | (v & 0xffff);
  else r[0] = v;
}

/**
 * The 286 quirk: its microcode advances an index register right after each access and
 * notices a limit fault afterwards, so the registers of the accesses up to and including
 * the faulting one are advanced, and CX of a REP form is already decremented (by two when
 * the faulting access was a store), as the conformance data shows.
 */
function check286(c: CpuCore, kind: number, bytes: number, step: number): void {
  const r = c.regs;
  const mask = c.addr32 ? -1 : 0xffff;
  const src = dataSeg(c);
  // Accesses in microcode order: [segment, register, is store].
  const order = kind === MOVS
    ? [[src, ESI, 0], [ES, EDI, 1]]
    : kind === CMPS
    ? [[ES, EDI, 0], [src, ESI, 0]]
    : kind === LODS || kind === OUTS
    ? [[src, ESI, 0]]
    : kind === SCAS
    ? [[ES, EDI, 0]]
    : [[ES, EDI, 1]];
  let bad = -1;
  for (let i = 0; i < order.length && bad < 0; i++) {
    const [seg, reg, store] = order[i];
    const off = r[reg] & mask;
    const hi = store ? c.wrHi[seg] : c.rdHi[seg];
    if (off + bytes - 1 > hi) bad = i;
  }
  if (bad < 0) return;
  for (let i = 0; i <= bad; i++) {
    const reg = order[i][1];
    r[reg] = (r[reg] & ~mask) | ((r[reg] + step) & mask);
  }
  if (c.rep !== 0) {
    const dec = kind === CMPS ? bad : order[bad][2] ? 2 : 1;
    r[ECX] = (r[ECX] & ~mask) | ((r[ECX] - dec) & mask);
  }
  fault(c, EXC_GP, 0);
}

/**
 * REP MOVS/STOS over plain RAM: copies or fills up to the edge of the current page(s)
 * with typed-array operations, in either direction. Returns false when the element loop
 * must run instead (MMIO, segment or page edges, overlaps that repeat data).
 */
function fastRep(c: CpuCore, kind: number, bytes: number): boolean {
  const r = c.regs;
  const mask = c.addr32 ? -1 : 0xffff;
  const count = c.addr32 ? r[ECX] >>> 0 : r[ECX] & 0xffff;
  const budget = repBudget(c);
  if (count < 8 || budget < 8) return false;
  const down = (c.flags & DF) !== 0;
  // Elements that fit between offset `off` (linear `lin`) and the page or segment edge.
  const room = (lin: number, off: number) => {
    const inPage = lin & 0xfff;
    if (!down) {
      return Math.min(
        Math.floor((4096 - inPage) / bytes),
        Math.floor(((mask >>> 0) - off + 1) / bytes),
      );
    }
    if (inPage + bytes > 4096) return 0;
    return Math.min(Math.floor(inPage / bytes) + 1, Math.floor(off / bytes) + 1);
  };
  const di = (r[EDI] & mask) >>> 0;
  const dLin = (c.segBase[ES] + di) | 0;
  let n = Math.min(count, budget, room(dLin, di));
  const ds = dataSeg(c);
  let si = 0, sLin = 0;
  if (kind === MOVS) {
    si = (r[ESI] & mask) >>> 0;
    sLin = (c.segBase[ds] + si) | 0;
    n = Math.min(n, room(sLin, si));
  }
  if (n < 1) return false;
  const len = n * bytes;
  const back = down ? len - bytes : 0; // from the first element to the lowest byte
  if (di - back < c.wrLo[ES] || di - back + len - 1 > c.wrHi[ES]) return false;
  if (kind === MOVS && (si - back < c.rdLo[ds] || si - back + len - 1 > c.rdHi[ds])) return false;
  const dSlot = tlbSlotForWrite(c, dLin);
  if (dSlot < 0) return false;
  const dst = c.tlbBytes[dSlot];
  const dp = c.tlbOff[dSlot] + (dLin & 0xfff) - back;
  if (kind === MOVS) {
    const sSlot = tlbSlotForRead(c, sLin);
    if (sSlot < 0) return false;
    const src = c.tlbBytes[sSlot];
    const sp = c.tlbOff[sSlot] + (sLin & 0xfff) - back;
    // An overlap where the copy runs into its own source repeats data: element loop.
    if (src === dst && (down ? dp < sp && dp + len > sp : dp > sp && dp < sp + len)) {
      return false;
    }
    if (src === dst) dst.copyWithin(dp, sp, sp + len);
    else dst.set(src.subarray(sp, sp + len), dp);
    r[ESI] = (r[ESI] & ~mask) | ((down ? si - len : si + len) & mask);
  } else {
    const v = r[0];
    if (bytes === 1) dst.fill(v & 0xff, dp, dp + len);
    else {
      for (let k = 0; k < len; k += bytes) {
        dst[dp + k] = v;
        dst[dp + k + 1] = v >> 8;
        if (bytes === 4) {
          dst[dp + k + 2] = v >> 16;
          dst[dp + k + 3] = v >> 24;
        }
      }
    }
  }
  r[EDI] = (r[EDI] & ~mask) | ((down ? di - len : di + len) & mask);
  r[ECX] = (r[ECX] & ~mask) | ((count - n) & mask);
  if (count - n > 0) c.eip = c.instrStart;
  c.retired += n - 1; // the run loop counts the first
  return true;
}

function stringOp(c: CpuCore, kind: number, bytes: number): void {
  if (
    c.rep !== 0 && (kind === MOVS || kind === STOS) && c.model.family > 2 &&
    fastRep(c, kind, bytes)
  ) return;
  const r = c.regs;
  const a32 = c.addr32;
  const mask = a32 ? -1 : 0xffff;
  const step = (c.flags & DF) !== 0 ? -bytes : bytes;
  const bits = bytes * 8;
  if (kind === INS || kind === OUTS) checkIoPermission(c, r[2] & 0xffff, bytes);
  const rep = c.rep;
  let count = rep === 0 ? 1 : a32 ? r[ECX] >>> 0 : r[ECX] & 0xffff;
  let n = 0;
  const limit = rep === 0 ? 1 : repBudget(c);
  // Iterations past the first count as instructions retired (the run loop counts one).
  // A fault in an iteration leaves the iterations before it uncounted.
  while (count > 0) {
    const si = r[ESI] & mask, di = r[EDI] & mask;
    if (c.model.family <= 2) check286(c, kind, bytes, step);
    switch (kind) {
      case MOVS:
        wr(c, ES, di >>> 0, rd(c, dataSeg(c), si >>> 0, bytes), bytes);
        r[ESI] = (r[ESI] & ~mask) | ((si + step) & mask);
        r[EDI] = (r[EDI] & ~mask) | ((di + step) & mask);
        break;
      case CMPS: {
        const a = rd(c, dataSeg(c), si >>> 0, bytes);
        const b = rd(c, ES, di >>> 0, bytes);
        arith(c, 7, a, b, bits);
        r[ESI] = (r[ESI] & ~mask) | ((si + step) & mask);
        r[EDI] = (r[EDI] & ~mask) | ((di + step) & mask);
        break;
      }
      case STOS:
        wr(c, ES, di >>> 0, r[0], bytes);
        r[EDI] = (r[EDI] & ~mask) | ((di + step) & mask);
        break;
      case LODS:
        setAcc(c, rd(c, dataSeg(c), si >>> 0, bytes), bytes);
        r[ESI] = (r[ESI] & ~mask) | ((si + step) & mask);
        break;
      case SCAS: {
        const b = rd(c, ES, di >>> 0, bytes);
        const accMask = bytes === 4 ? -1 : (1 << bits) - 1;
        arith(c, 7, r[0] & accMask, b, bits);
        r[EDI] = (r[EDI] & ~mask) | ((di + step) & mask);
        break;
      }
      case INS: {
        checkWrite(c, ES, di >>> 0, bytes);
        c.codeEpoch++; // a device may write guest RAM
        const v = c.io.in(r[2] & 0xffff, bytes as 1 | 2 | 4);
        wr(c, ES, di >>> 0, v, bytes);
        r[EDI] = (r[EDI] & ~mask) | ((di + step) & mask);
        c.attention = true;
        break;
      }
      default: {
        const v = rd(c, dataSeg(c), si >>> 0, bytes);
        c.codeEpoch++;
        c.io.out(r[2] & 0xffff, bytes as 1 | 2 | 4, bytes === 4 ? v >>> 0 : v);
        r[ESI] = (r[ESI] & ~mask) | ((si + step) & mask);
        c.attention = true;
      }
    }
    if (rep === 0) return;
    count--;
    r[ECX] = (r[ECX] & ~mask) | (count & mask);
    n++;
    if ((kind === CMPS || kind === SCAS) && (getZF(c) !== 0) !== (rep === 0xf3)) break;
    if (n >= limit && count > 0) {
      c.eip = c.instrStart;
      break;
    }
  }
  if (n > 1) c.retired += n - 1;
}

/** Installs A4..AF and 6C..6F. */
export function installString(t16: OpHandler[], t32: OpHandler[]): void {
  const ops = [
    [0xa4, MOVS],
    [0xa6, CMPS],
    [0xaa, STOS],
    [0xac, LODS],
    [0xae, SCAS],
    [0x6c, INS],
    [0x6e, OUTS],
  ];
  for (const [op, kind] of ops) {
    t16[op] = t32[op] = (c) => stringOp(c, kind, 1);
    t16[op + 1] = (c) => stringOp(c, kind, 2);
    t32[op + 1] = (c) => stringOp(c, kind, 4);
  }
}
