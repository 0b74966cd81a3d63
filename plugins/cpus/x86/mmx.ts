// MMX: MM0..MM7 over the x87 registers' significands, and the 0F xx forms without a prefix
//
// MMi is physical x87 register Ri's 64-bit significand; an MMX write leaves Ri's sign and
// exponent alone as QEMU 7.2 does (fpu_formats.ts setExtended keeps the words exactly), and every MMX
// instruction sets TOP = 0 and every tag valid first (sse_ops.ts mmxEnter; EMMS is in
// ops_0f.ts). The integer instructions run sse_int.ts's XMM lane code on scratch slots
// MMX_D and MMX_S, whose low 8 bytes hold the operands (the upper 8 bytes are zero and
// dropped), so each instruction has one implementation for both register files.

import { decodeModrm } from "./decode.ts";
import { extendedOf, setExtended, toExtended } from "./fpu_formats.ts";
import { fetch8, read16, read32, write32, write8 } from "./memory.ts";
import { type CpuCore, ud } from "./state.ts";
import { INT_OPS, shiftLanes } from "./sse_int.ts";
import {
  def,
  loadM,
  MMX_OP,
  NEED_MMX,
  NEED_SSE,
  NEED_SSE2,
  P_F2,
  P_F3,
  P_NONE,
  storeM,
} from "./sse_ops.ts";
import { MMX_D, MMX_S } from "./sse_state.ts";

/** MMi into dwords `at` and `at + 1` of scratch slot `slot`. */
export function mmGet(c: CpuCore, i: number, slot: number, at = 0): void {
  const [lo, hi] = extendedOf(c.fpu, i);
  c.sse.i32[4 * slot + at] = lo;
  c.sse.i32[4 * slot + at + 1] = hi;
}

/**
 * MMi = hi:lo. The SDM sets the register's sign and exponent to all ones; QEMU 7.2 TCG
 * leaves them as they were (tests/cpu_diff/mmx_probe_test.ts), and so does vmkit.
 */
export function mmSet(c: CpuCore, i: number, lo: number, hi: number): void {
  const f = c.fpu;
  const se = ((f.raw >> i) & 1) !== 0 ? f.rawSe[i] : toExtended(f.regs[i])[2];
  setExtended(f, i, lo | 0, hi | 0, se, true);
}

/** TOP = 0 and every tag valid: the x87 stack in MMX use (for SSE forms with an MM operand). */
export function mmxUse(c: CpuCore): void {
  c.fpu.top = 0;
  c.fpu.tag = 0;
}

/** MMi from dwords 0..1 of scratch slot `slot`. */
function mmFrom(c: CpuCore, i: number, slot: number): void {
  mmSet(c, i, c.sse.i32[4 * slot], c.sse.i32[4 * slot + 1]);
}

function clear(c: CpuCore, slot: number): void {
  c.sse.i32.fill(0, 4 * slot, 4 * slot + 4);
}

/** The mm/m64 source (ModRM decoded) into dwords `at`, `at + 1` of `slot` (others zero). */
function srcMM(c: CpuCore, slot: number, at = 0): void {
  clear(c, slot);
  if (c.modMod === 3) return mmGet(c, c.modRm & 7, slot, at);
  loadM(c, slot, 2);
  if (at !== 0) {
    const v = c.sse.i32, k = 4 * slot;
    v[k + at + 1] = v[k + 1];
    v[k + at] = v[k];
    for (let j = 0; j < at; j++) v[k + j] = 0;
  }
}

type LaneOp = (c: CpuCore, d: number, s: number) => void;

/** An XMM lane operation on MM operands: `at` 1 puts both at bytes 4..11 (PUNPCKHxx). */
function onMM(f: LaneOp, at = 0) {
  return (c: CpuCore) => {
    decodeModrm(c);
    srcMM(c, MMX_S, at);
    clear(c, MMX_D);
    mmGet(c, c.modReg & 7, MMX_D, at);
    f(c, MMX_D, MMX_S);
    mmFrom(c, c.modReg & 7, MMX_D);
  };
}

/** A pack on MM operands: destination then source in one slot, packed into its low half. */
function packMM(f: LaneOp) {
  return (c: CpuCore) => {
    decodeModrm(c);
    srcMM(c, MMX_S);
    clear(c, MMX_D);
    mmGet(c, c.modReg & 7, MMX_D, 0);
    const v = c.sse.i32;
    v[4 * MMX_D + 2] = v[4 * MMX_S];
    v[4 * MMX_D + 3] = v[4 * MMX_S + 1];
    f(c, MMX_D, MMX_D);
    mmFrom(c, c.modReg & 7, MMX_D);
  };
}

/** MMX opcodes running the 66 form's lane code: opcode, CPUID need. */
const MMX = 0, EXT = 1, SSE2 = 2;
const SAME: [number, number][] = [
  ...[0xfc, 0xfd, 0xfe, 0xf8, 0xf9, 0xfa, 0xec, 0xed, 0xdc, 0xdd, 0xe8, 0xe9, 0xd8, 0xd9]
    .map((op) => [op, MMX] as [number, number]),
  ...[0xd5, 0xe5, 0x74, 0x75, 0x76, 0x64, 0x65, 0x66, 0xdb, 0xdf, 0xeb, 0xef, 0xf5, 0x60]
    .map((op) => [op, MMX] as [number, number]),
  ...[0x61, 0x62, 0xd1, 0xd2, 0xd3, 0xe1, 0xe2, 0xf1, 0xf2, 0xf3]
    .map((op) => [op, MMX] as [number, number]),
  ...[0xe4, 0xe0, 0xe3, 0xda, 0xde, 0xea, 0xee, 0xf6].map((op) => [op, EXT] as [number, number]),
  ...[0xd4, 0xfb, 0xf4].map((op) => [op, SSE2] as [number, number]),
];

const needOf = (k: number) => (k === MMX ? NEED_MMX : k === EXT ? NEED_SSE : NEED_SSE2) | MMX_OP;

/** Installs the MMX forms (0F xx without a prefix, and MOVQ2DQ/MOVDQ2Q). */
export function installMmx(): void {
  for (const [op, kind] of SAME) def(op, P_NONE, needOf(kind), onMM(INT_OPS.get(op)!));
  for (const op of [0x68, 0x69, 0x6a]) def(op, P_NONE, needOf(MMX), onMM(INT_OPS.get(op)!, 1));
  for (const op of [0x63, 0x67, 0x6b]) def(op, P_NONE, needOf(MMX), packMM(INT_OPS.get(op)!));
  const need = needOf(MMX);
  // Shifts by an immediate: 0F 71/72 /2 /4 /6, 0F 73 /2 /6.
  for (const [op, bits] of [[0x71, 16], [0x72, 32], [0x73, 64]]) {
    def(op, P_NONE, need, (c) => {
      decodeModrm(c);
      const n = fetch8(c);
      const r = c.modReg;
      if (c.modMod !== 3) return ud(c);
      const kind = r === 6 ? 0 : r === 2 ? 1 : r === 4 && bits !== 64 ? 2 : -1;
      if (kind < 0) return ud(c);
      clear(c, MMX_D);
      mmGet(c, c.modRm & 7, MMX_D);
      shiftLanes(c, MMX_D, bits, kind, n);
      mmFrom(c, c.modRm & 7, MMX_D);
    });
  }
  // MOVD mm, r/m32 and MOVD r/m32, mm.
  def(0x6e, P_NONE, need, (c) => {
    decodeModrm(c);
    mmSet(c, c.modReg & 7, c.modMod === 3 ? c.regs[c.modRm] : read32(c, c.eaSeg, c.eaOff), 0);
  });
  def(0x7e, P_NONE, need, (c) => {
    decodeModrm(c);
    mmGet(c, c.modReg & 7, MMX_D);
    const v = c.sse.i32[4 * MMX_D];
    if (c.modMod === 3) c.regs[c.modRm] = v;
    else write32(c, c.eaSeg, c.eaOff, v);
  });
  // MOVQ mm, mm/m64; MOVQ mm/m64, mm; MOVNTQ m64, mm.
  def(0x6f, P_NONE, need, (c) => {
    decodeModrm(c);
    srcMM(c, MMX_S);
    mmFrom(c, c.modReg & 7, MMX_S);
  });
  const store = (regOk: boolean) => (c: CpuCore) => {
    decodeModrm(c);
    if (c.modMod === 3 && !regOk) return ud(c);
    mmGet(c, c.modReg & 7, MMX_D);
    if (c.modMod === 3) mmFrom(c, c.modRm & 7, MMX_D);
    else storeM(c, MMX_D, 2);
  };
  def(0x7f, P_NONE, need, store(true));
  def(0xe7, P_NONE, needOf(EXT), store(false));
  installMmxExt();
}

/** PSHUFW, PEXTRW, PINSRW, PMOVMSKB, MASKMOVQ, MOVQ2DQ, MOVDQ2Q. */
function installMmxExt(): void {
  const need = needOf(EXT);
  def(0x70, P_NONE, need, (c) => {
    decodeModrm(c);
    srcMM(c, MMX_S);
    const imm = fetch8(c);
    const w = c.sse.u16, s = 8 * MMX_S, d = 8 * MMX_D;
    for (let i = 0; i < 4; i++) w[d + i] = w[s + ((imm >> (2 * i)) & 3)];
    mmFrom(c, c.modReg & 7, MMX_D);
  });
  def(0xc5, P_NONE, need, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const imm = fetch8(c);
    mmGet(c, c.modRm & 7, MMX_S);
    c.regs[c.modReg] = c.sse.u16[8 * MMX_S + (imm & 3)];
  });
  def(0xc4, P_NONE, need, (c) => {
    decodeModrm(c);
    const v = c.modMod === 3 ? c.regs[c.modRm] : read16(c, c.eaSeg, c.eaOff);
    const imm = fetch8(c);
    mmGet(c, c.modReg & 7, MMX_D);
    c.sse.u16[8 * MMX_D + (imm & 3)] = v;
    mmFrom(c, c.modReg & 7, MMX_D);
  });
  def(0xd7, P_NONE, need, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    mmGet(c, c.modRm & 7, MMX_S);
    const u = c.sse.u8, s = 16 * MMX_S;
    let m = 0;
    for (let i = 0; i < 8; i++) m |= (u[s + i] >> 7) << i;
    c.regs[c.modReg] = m;
  });
  // MASKMOVQ mm, mm: the bytes whose mask byte has bit 7 set go to DS:EDI.
  def(0xf7, P_NONE, need, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    mmGet(c, c.modReg & 7, MMX_D);
    mmGet(c, c.modRm & 7, MMX_S);
    const u = c.sse.u8, src = 16 * MMX_D, mask = 16 * MMX_S;
    const seg = c.segOvr >= 0 ? c.segOvr : 3;
    const base = c.addr32 ? c.regs[7] : c.regs[7] & 0xffff;
    for (let i = 0; i < 8; i++) {
      if ((u[mask + i] & 0x80) === 0) continue;
      write8(c, seg, c.addr32 ? (base + i) | 0 : (base + i) & 0xffff, u[src + i]);
    }
  });
  // MOVQ2DQ xmm, mm (F3 0F D6) and MOVDQ2Q mm, xmm (F2 0F D6): SSE2 with the SSE handshake,
  // and the x87 stack enters MMX use as with any MMX instruction.
  def(0xd6, P_F3, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    mmxUse(c);
    const d = c.modReg;
    clear(c, d);
    mmGet(c, c.modRm & 7, d);
  });
  def(0xd6, P_F2, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    mmxUse(c);
    const v = c.sse.i32, s = 4 * c.modRm;
    mmSet(c, c.modReg & 7, v[s], v[s + 1]);
  });
}
