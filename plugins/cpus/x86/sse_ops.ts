// SSE/SSE2/SSE3 decoding: the mandatory-prefix table, the OSFXSR/EM/TS handshake, operands, moves
//
// Every 0F opcode with an SSE form goes through one table indexed by (opcode, prefix):
// prefix 0 none, 1 66h, 2 F3h, 3 F2h. F3h or F2h (the last of the two) wins over 66h, as
// the SDM says and QEMU 7.2 TCG does (tests/cpu_diff/sse_probes_test.ts). A form the table
// does not hold (the MMX forms without a prefix among them: vmkit has no MMX unit) is
// #UD. REX will only widen the register numbers.

import { decodeModrm } from "./decode.ts";
import { checkWrite, probeWrite, read32, write32, write8 } from "./memory.ts";
import {
  type CpuCore,
  CR0_EM,
  CR0_TS,
  CR4_OSFXSR,
  EXC_GP,
  EXC_NM,
  fault,
  type OpHandler,
  ud,
} from "./state.ts";
import { XMM_SRC, XMM_TMP } from "./sse_state.ts";

/** What an entry needs: SSE, SSE2 or SSE3 (CPUID), and whether the handshake applies. */
export const NEED_SSE = 1, NEED_SSE2 = 2, NEED_SSE3 = 4;
/** CLFLUSH (CPUID.1:EDX bit 19) and MMX (bit 23), checked the same way. */
export const NEED_CLFLUSH = 8, NEED_MMX = 16;
/** The MMX handshake instead of SSE's (no CR4.OSFXSR), then the x87 stack enters MMX use. */
export const MMX_OP = 0x200;
/** No CR0/CR4 handshake (MOVNTI and the fences run whatever CR0.EM, CR0.TS, CR4.OSFXSR say). */
export const NO_HANDSHAKE = 0x100;

/** Prefix column of the table. */
export const P_NONE = 0, P_66 = 1, P_F3 = 2, P_F2 = 3;

const HANDLERS: (OpHandler | undefined)[] = new Array(1024).fill(undefined);
const NEEDS = new Uint16Array(1024);

/** Defines the form (0F `op`, prefix column `p`) of an SSE instruction. */
export function def(op: number, p: number, need: number, h: OpHandler): void {
  HANDLERS[((op & 0xff) << 2) | p] = h;
  NEEDS[((op & 0xff) << 2) | p] = need;
}

/**
 * The SIMD handshake (SDM vol. 3 §13.1 and the exception tables of vol. 2): #UD without
 * the CPUID feature, with CR0.EM=1 or with CR4.OSFXSR=0; then #NM with CR0.TS=1.
 */
export function sseEnter(c: CpuCore, need: number): void {
  if ((c.sseFeat & need) === 0) ud(c);
  if ((need & NO_HANDSHAKE) !== 0) return;
  if ((need & MMX_OP) !== 0) return mmxEnter(c);
  if ((c.cr0 & CR0_EM) !== 0 || (c.cr4 & CR4_OSFXSR) === 0) ud(c);
  if ((c.cr0 & CR0_TS) !== 0) fault(c, EXC_NM);
}

/**
 * An MMX instruction's entry as QEMU 7.2 TCG makes it: #NM with CR0.TS, then #UD with
 * CR0.EM; then TOP = 0 and every tag valid.
 */
export function mmxEnter(c: CpuCore): void {
  if ((c.cr0 & CR0_TS) !== 0) fault(c, EXC_NM);
  if ((c.cr0 & CR0_EM) !== 0) ud(c);
  c.fpu.top = 0;
  c.fpu.tag = 0;
}

/** The prefix column of the instruction in flight. */
export function prefixColumn(c: CpuCore): number {
  return c.rep === 0xf3 ? P_F3 : c.rep === 0xf2 ? P_F2 : c.op32 !== c.code32 ? P_66 : P_NONE;
}

/** Installs a dispatcher on every 0F opcode that has an SSE form. */
export function installSseTable(t16: OpHandler[], t32: OpHandler[]): void {
  for (let op = 0; op < 256; op++) {
    let any = false;
    for (let p = 0; p < 4; p++) if (HANDLERS[(op << 2) | p] !== undefined) any = true;
    if (!any) continue;
    const base = op << 2;
    t16[0x100 | op] = t32[0x100 | op] = (c) => {
      const i = base | prefixColumn(c);
      const h = HANDLERS[i];
      if (h === undefined) return ud(c);
      sseEnter(c, NEEDS[i]);
      h(c);
    };
  }
}

/** The offset `n` bytes past the memory operand (wrapping as the address size does). */
export function eaAt(c: CpuCore, n: number): number {
  return c.addr32 ? (c.eaOff + n) | 0 : (c.eaOff + n) & 0xffff;
}

/** #GP(0) unless the memory operand's linear address is 16-byte aligned. */
export function checkAligned(c: CpuCore): void {
  if (((c.segBase[c.eaSeg] + c.eaOff) & 15) !== 0) fault(c, EXC_GP, 0);
}

/** Loads `dwords` dwords of the memory operand into slot `slot` from its low end. */
export function loadM(c: CpuCore, slot: number, dwords: number): void {
  const v = c.sse.i32;
  const seg = c.eaSeg;
  if (dwords === 4) {
    const a = read32(c, seg, c.eaOff), b = read32(c, seg, eaAt(c, 4));
    const x = read32(c, seg, eaAt(c, 8)), y = read32(c, seg, eaAt(c, 12));
    v[4 * slot] = a;
    v[4 * slot + 1] = b;
    v[4 * slot + 2] = x;
    v[4 * slot + 3] = y;
  } else if (dwords === 2) {
    const a = read32(c, seg, c.eaOff), b = read32(c, seg, eaAt(c, 4));
    v[4 * slot] = a;
    v[4 * slot + 1] = b;
  } else v[4 * slot] = read32(c, seg, c.eaOff);
}

/** Stores `dwords` dwords of slot `slot` (from dword `from`) to the memory operand. */
export function storeM(c: CpuCore, slot: number, dwords: number, from = 0): void {
  const v = c.sse.i32;
  const seg = c.eaSeg;
  if (dwords > 1) probeWrite(c, seg, c.eaOff, 4 * dwords);
  else checkWrite(c, seg, c.eaOff, 4);
  for (let k = 0; k < dwords; k++) write32(c, seg, eaAt(c, 4 * k), v[4 * slot + from + k]);
}

/**
 * The xmm/m128 source: its register number, or the scratch slot holding the memory
 * operand (16-byte aligned unless `unaligned`). The ModRM byte is decoded already.
 */
export function srcX(c: CpuCore, unaligned = false): number {
  if (c.modMod === 3) return c.modRm;
  if (!unaligned) checkAligned(c);
  loadM(c, XMM_SRC, 4);
  return XMM_SRC;
}

/** The xmm/m64 or xmm/m32 source of a scalar form (low `dwords` dwords used). */
export function srcScalar(c: CpuCore, dwords: number): number {
  if (c.modMod === 3) return c.modRm;
  loadM(c, XMM_SRC, dwords);
  return XMM_SRC;
}

/** Handler for `op xmm, xmm/m128` running `f(sse-registers, dest, src)`. */
export function rm(f: (c: CpuCore, d: number, s: number) => void, unaligned = false): OpHandler {
  return (c) => {
    decodeModrm(c);
    f(c, c.modReg, srcX(c, unaligned));
  };
}

/** Zeroes dwords `from..3` of slot `r`. */
function zeroFrom(c: CpuCore, r: number, from: number): void {
  for (let k = from; k < 4; k++) c.sse.i32[4 * r + k] = 0;
}

/** Copies `n` dwords from slot `s` (at dword `sf`) to slot `d` (at dword `df`). */
export function moveDw(c: CpuCore, d: number, df: number, s: number, sf: number, n: number): void {
  const v = c.sse.i32;
  for (let k = 0; k < n; k++) v[4 * d + df + k] = v[4 * s + sf + k];
}

/** A load `op xmm, xmm/m128` (aligned or not) and its store `op xmm/m128, xmm`. */
function moves(load: number, store: number, p: number, need: number, unaligned: boolean): void {
  def(load, p, need, (c) => {
    decodeModrm(c);
    c.sse.copy(c.modReg, srcX(c, unaligned));
  });
  def(store, p, need, (c) => {
    decodeModrm(c);
    if (c.modMod === 3) return c.sse.copy(c.modRm, c.modReg);
    if (!unaligned) checkAligned(c);
    storeM(c, c.modReg, 4);
  });
}

/** A store-only form `op m, xmm` of `dwords` dwords from dword `from` (mod 3 is #UD). */
function storeOnly(op: number, p: number, need: number, dwords: number, from: number, al: boolean) {
  def(op, p, need, (c) => {
    decodeModrm(c);
    if (c.modMod === 3) return ud(c);
    if (al) checkAligned(c);
    storeM(c, c.modReg, dwords, from);
  });
}

/** Installs the data moves (0F 10..17, 28/29, 2B, 50, 6E/6F, 7E/7F, C3, D6, E7, F0, F7). */
export function installSseMoves(): void {
  moves(0x10, 0x11, P_NONE, NEED_SSE, true); // MOVUPS
  moves(0x10, 0x11, P_66, NEED_SSE2, true); // MOVUPD
  moves(0x28, 0x29, P_NONE, NEED_SSE, false); // MOVAPS
  moves(0x28, 0x29, P_66, NEED_SSE2, false); // MOVAPD
  moves(0x6f, 0x7f, P_66, NEED_SSE2, false); // MOVDQA
  moves(0x6f, 0x7f, P_F3, NEED_SSE2, true); // MOVDQU
  // MOVSS / MOVSD: a register source merges the low lane; memory zero-extends.
  for (const [p, need, n] of [[P_F3, NEED_SSE, 1], [P_F2, NEED_SSE2, 2]]) {
    def(0x10, p, need, (c) => {
      decodeModrm(c);
      if (c.modMod === 3) return moveDw(c, c.modReg, 0, c.modRm, 0, n);
      loadM(c, XMM_SRC, n);
      moveDw(c, c.modReg, 0, XMM_SRC, 0, n);
      zeroFrom(c, c.modReg, n);
    });
    def(0x11, p, need, (c) => {
      decodeModrm(c);
      if (c.modMod === 3) return moveDw(c, c.modRm, 0, c.modReg, 0, n);
      storeM(c, c.modReg, n);
    });
  }
  // MOVLPS/MOVHLPS, MOVLPD; MOVHPS/MOVLHPS, MOVHPD.
  for (const [p, need] of [[P_NONE, NEED_SSE], [P_66, NEED_SSE2]]) {
    for (const hi of [0, 1]) {
      def(hi ? 0x16 : 0x12, p, need, (c) => {
        decodeModrm(c);
        if (c.modMod === 3) {
          if (p === P_66) return ud(c);
          return moveDw(c, c.modReg, hi ? 2 : 0, c.modRm, hi ? 0 : 2, 2); // MOVLHPS / MOVHLPS
        }
        loadM(c, XMM_SRC, 2);
        moveDw(c, c.modReg, hi ? 2 : 0, XMM_SRC, 0, 2);
      });
      storeOnly(hi ? 0x17 : 0x13, p, need, 2, hi ? 2 : 0, false);
    }
  }
  // SSE3: MOVSLDUP, MOVSHDUP, MOVDDUP, LDDQU.
  for (const [op, odd] of [[0x12, 0], [0x16, 1]]) {
    def(op, P_F3, NEED_SSE3, (c) => {
      decodeModrm(c);
      const s = srcX(c);
      const v = c.sse.i32, d = 4 * c.modReg;
      const a = v[4 * s + odd], b = v[4 * s + 2 + odd];
      v[d] = v[d + 1] = a;
      v[d + 2] = v[d + 3] = b;
    });
  }
  def(0x12, P_F2, NEED_SSE3, (c) => {
    decodeModrm(c);
    const s = srcScalar(c, 2);
    moveDw(c, XMM_TMP, 0, s, 0, 2);
    moveDw(c, c.modReg, 0, XMM_TMP, 0, 2);
    moveDw(c, c.modReg, 2, XMM_TMP, 0, 2);
  });
  def(0xf0, P_F2, NEED_SSE3, (c) => {
    decodeModrm(c);
    if (c.modMod === 3) return ud(c);
    loadM(c, XMM_SRC, 4);
    c.sse.copy(c.modReg, XMM_SRC);
  });
  storeOnly(0x2b, P_NONE, NEED_SSE, 4, 0, true); // MOVNTPS
  storeOnly(0x2b, P_66, NEED_SSE2, 4, 0, true); // MOVNTPD
  storeOnly(0xe7, P_66, NEED_SSE2, 4, 0, true); // MOVNTDQ
  // MOVD xmm, r/m32 and MOVD r/m32, xmm.
  def(0x6e, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    const v = c.modMod === 3 ? c.regs[c.modRm] : read32(c, c.eaSeg, c.eaOff);
    c.sse.i32[4 * c.modReg] = v;
    zeroFrom(c, c.modReg, 1);
  });
  def(0x7e, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    const v = c.sse.i32[4 * c.modReg];
    if (c.modMod === 3) c.regs[c.modRm] = v;
    else write32(c, c.eaSeg, c.eaOff, v);
  });
  // MOVQ xmm, xmm/m64 (F3 0F 7E) and MOVQ xmm/m64, xmm (66 0F D6): the upper half zeroed.
  def(0x7e, P_F3, NEED_SSE2, (c) => {
    decodeModrm(c);
    const s = srcScalar(c, 2);
    moveDw(c, c.modReg, 0, s, 0, 2);
    zeroFrom(c, c.modReg, 2);
  });
  def(0xd6, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return storeM(c, c.modReg, 2);
    moveDw(c, c.modRm, 0, c.modReg, 0, 2);
    zeroFrom(c, c.modRm, 2);
  });
  // MOVMSKPS / MOVMSKPD r32, xmm.
  def(0x50, P_NONE, NEED_SSE, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const v = c.sse.i32, s = 4 * c.modRm;
    c.regs[c.modReg] = (v[s] >>> 31) | ((v[s + 1] >>> 31) << 1) | ((v[s + 2] >>> 31) << 2) |
      ((v[s + 3] >>> 31) << 3);
  });
  def(0x50, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const v = c.sse.i32, s = 4 * c.modRm;
    c.regs[c.modReg] = (v[s + 1] >>> 31) | ((v[s + 3] >>> 31) << 1);
  });
  // MOVNTI m32, r32: a general-register store (no SIMD state, no handshake).
  def(0xc3, P_NONE, NEED_SSE2 | NO_HANDSHAKE, (c) => {
    decodeModrm(c);
    if (c.modMod === 3) return ud(c);
    write32(c, c.eaSeg, c.eaOff, c.regs[c.modReg]);
  });
  // MASKMOVDQU xmm, xmm: the bytes whose mask byte has bit 7 set go to DS:EDI.
  def(0xf7, P_66, NEED_SSE2, (c) => {
    decodeModrm(c);
    if (c.modMod !== 3) return ud(c);
    const u = c.sse.u8, src = 16 * c.modReg, mask = 16 * c.modRm;
    const seg = c.segOvr >= 0 ? c.segOvr : 3;
    const base = c.addr32 ? c.regs[7] : c.regs[7] & 0xffff;
    for (let i = 0; i < 16; i++) {
      if ((u[mask + i] & 0x80) === 0) continue;
      const off = c.addr32 ? (base + i) | 0 : (base + i) & 0xffff;
      write8(c, seg, off, u[src + i]);
    }
  });
}
