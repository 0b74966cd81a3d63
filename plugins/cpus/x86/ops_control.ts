// Control transfer opcodes: Jcc, JMP, CALL, RET, LOOP, INT, IRET, HLT, and port I/O

import { setReg16 } from "./decode.ts";
import { callFar, iret, jmpFar, retFar } from "./far.ts";
import { condition, getOF } from "./flags.ts";
import { fetch16, fetch32, fetch8, sysRead16, sysRead8 } from "./memory.ts";
import { deliverInterrupt, INT_EXCEPTION, INT_SOFT_EXC, INT_SOFTWARE } from "./interrupts.ts";
import { ioplAllows } from "./ops_basic.ts";
import { adjustSp, pop16, pop32, push16, push32 } from "./stack.ts";
import {
  type CpuCore,
  CR0_PE,
  CS,
  ECX,
  EXC_BP,
  EXC_GP,
  EXC_OF,
  fault,
  gp,
  IOPL,
  type OpHandler,
  TR,
  VM,
} from "./state.ts";

/** Moves EIP to `target`, checking the CS limit (#GP(0) beyond it). */
export function jumpNear(c: CpuCore, target: number): void {
  if ((target >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
  c.eip = target | 0;
}

/**
 * Checks IN/OUT/INS/OUTS access to `bytes` ports from `port`: IOPL, then the TSS I/O
 * permission bitmap in protected and virtual-8086 mode.
 */
export function checkIoPermission(c: CpuCore, port: number, bytes: number): void {
  if (ioplAllows(c) && (c.flags & VM) === 0) return;
  const type = c.segAttr[TR] & 0xf;
  if ((type & 8) === 0 || c.segLimit[TR] < 0x67) gp(c, 0);
  const base = c.segBase[TR];
  const mapOff = sysRead16(c, (base + 0x66) | 0);
  const byte = mapOff + (port >> 3);
  if (byte + 1 > c.segLimit[TR]) gp(c, 0);
  const bits = sysRead8(c, (base + byte) | 0) | (sysRead8(c, (base + byte + 1) | 0) << 8);
  if (((bits >> (port & 7)) & ((1 << bytes) - 1)) !== 0) gp(c, 0);
}

/** Installs jumps, calls, returns, loops, interrupts, HLT and port I/O. */
export function installControl(t16: OpHandler[], t32: OpHandler[]): void {
  for (let cc = 0; cc < 16; cc++) {
    t16[0x70 + cc] = (c) => {
      const d = (fetch8(c) << 24) >> 24;
      if (condition(c, cc)) jumpNear(c, (c.eip + d) & 0xffff);
    };
    t32[0x70 + cc] = (c) => {
      const d = (fetch8(c) << 24) >> 24;
      if (condition(c, cc)) jumpNear(c, c.eip + d);
    };
    t16[0x180 + cc] = (c) => {
      const d = fetch16(c);
      if (condition(c, cc)) jumpNear(c, (c.eip + d) & 0xffff);
    };
    t32[0x180 + cc] = (c) => {
      const d = fetch32(c);
      if (condition(c, cc)) jumpNear(c, c.eip + d);
    };
  }
  t16[0xeb] = (c) => {
    const d = (fetch8(c) << 24) >> 24;
    jumpNear(c, (c.eip + d) & 0xffff);
  };
  t32[0xeb] = (c) => {
    const d = (fetch8(c) << 24) >> 24;
    jumpNear(c, c.eip + d);
  };
  t16[0xe9] = (c) => {
    const d = fetch16(c);
    jumpNear(c, (c.eip + d) & 0xffff);
  };
  t32[0xe9] = (c) => {
    const d = fetch32(c);
    jumpNear(c, c.eip + d);
  };
  t16[0xe8] = (c) => {
    const d = fetch16(c);
    const t = (c.eip + d) & 0xffff;
    if (t > c.segLimit[CS]) fault(c, EXC_GP, 0);
    push16(c, c.eip);
    c.eip = t;
  };
  t32[0xe8] = (c) => {
    const d = fetch32(c);
    const t = (c.eip + d) | 0;
    if ((t >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
    push32(c, c.eip);
    c.eip = t;
  };
  t16[0xc3] = (c) => {
    const t = pop16(c);
    if (t > c.segLimit[CS]) {
      adjustSp(c, -2);
      fault(c, EXC_GP, 0);
    }
    c.eip = t;
  };
  t32[0xc3] = (c) => {
    const t = pop32(c);
    if ((t >>> 0) > c.segLimit[CS]) {
      adjustSp(c, -4);
      fault(c, EXC_GP, 0);
    }
    c.eip = t;
  };
  t16[0xc2] = (c) => {
    const n = fetch16(c);
    const t = pop16(c);
    if (t > c.segLimit[CS]) {
      adjustSp(c, -2);
      fault(c, EXC_GP, 0);
    }
    c.eip = t;
    adjustSp(c, n);
  };
  t32[0xc2] = (c) => {
    const n = fetch16(c);
    const t = pop32(c);
    if ((t >>> 0) > c.segLimit[CS]) {
      adjustSp(c, -4);
      fault(c, EXC_GP, 0);
    }
    c.eip = t;
    adjustSp(c, n);
  };
  t16[0xea] = (c) => {
    const off = fetch16(c);
    jmpFar(c, fetch16(c), off);
  };
  t32[0xea] = (c) => {
    const off = fetch32(c);
    jmpFar(c, fetch16(c), off);
  };
  t16[0x9a] = (c) => {
    const off = fetch16(c);
    callFar(c, fetch16(c), off, false);
  };
  t32[0x9a] = (c) => {
    const off = fetch32(c);
    callFar(c, fetch16(c), off, true);
  };
  t16[0xcb] = (c) => retFar(c, false, 0);
  t32[0xcb] = (c) => retFar(c, true, 0);
  t16[0xca] = (c) => retFar(c, false, fetch16(c));
  t32[0xca] = (c) => retFar(c, true, fetch16(c));
  t16[0xcf] = (c) => iret(c, false);
  t32[0xcf] = (c) => iret(c, true);
  t16[0xcc] = t32[0xcc] = (c) => deliverInterrupt(c, EXC_BP, INT_SOFT_EXC, -1);
  t16[0xcd] = t32[0xcd] = (c) => {
    const n = fetch8(c);
    if ((c.flags & VM) !== 0 && (c.flags & IOPL) !== IOPL) gp(c, 0);
    deliverInterrupt(c, n, INT_SOFTWARE, -1);
  };
  t16[0xce] = t32[0xce] = (c) => {
    if (getOF(c)) deliverInterrupt(c, EXC_OF, INT_SOFT_EXC, -1);
  };
  // ICEBP: a #DB trap without the gate DPL check of INT n.
  t16[0xf1] = t32[0xf1] = (c) => deliverInterrupt(c, 1, INT_EXCEPTION, -1);
  t16[0xf4] = t32[0xf4] = (c) => {
    if ((c.cr0 & CR0_PE) !== 0 && c.cpl !== 0) gp(c, 0); // includes virtual-8086 mode
    c.halted = true;
    c.attention = true;
  };
  // LOOP family: the counter is CX or ECX by address size.
  const loop = (kind: number) => (c: CpuCore) => {
    const d = (fetch8(c) << 24) >> 24;
    const r = c.regs;
    let cnt: number;
    if (kind === 3) {
      cnt = c.addr32 ? r[ECX] : r[ECX] & 0xffff;
      if (cnt !== 0) return;
    } else {
      if (c.addr32) {
        cnt = r[ECX] = (r[ECX] - 1) | 0;
      } else {
        cnt = (r[ECX] - 1) & 0xffff;
        setReg16(c, ECX, cnt);
      }
      if (cnt === 0) return;
      if (kind === 0 && condition(c, 4)) return; // LOOPNE: stop when ZF=1
      if (kind === 1 && !condition(c, 4)) return; // LOOPE: stop when ZF=0
    }
    jumpNear(c, c.op32 ? c.eip + d : (c.eip + d) & 0xffff);
  };
  for (let k = 0; k < 4; k++) t16[0xe0 + k] = t32[0xe0 + k] = loop(k);
  // Port I/O.
  const inPort = (c: CpuCore, port: number, bytes: 1 | 2 | 4) => {
    checkIoPermission(c, port, bytes);
    c.codeEpoch++; // a device may write guest RAM
    const v = c.io.in(port, bytes);
    const r = c.regs;
    if (bytes === 1) r[0] = (r[0] & ~0xff) | (v & 0xff);
    else if (bytes === 2) r[0] = (r[0] & ~0xffff) | (v & 0xffff);
    else r[0] = v;
    c.attention = true;
  };
  const outPort = (c: CpuCore, port: number, bytes: 1 | 2 | 4) => {
    checkIoPermission(c, port, bytes);
    const v = c.regs[0];
    c.codeEpoch++;
    c.io.out(port, bytes, bytes === 1 ? v & 0xff : bytes === 2 ? v & 0xffff : v >>> 0);
    c.attention = true;
  };
  t16[0xe4] = t32[0xe4] = (c) => inPort(c, fetch8(c), 1);
  t16[0xe5] = (c) => inPort(c, fetch8(c), 2);
  t32[0xe5] = (c) => inPort(c, fetch8(c), 4);
  t16[0xe6] = t32[0xe6] = (c) => outPort(c, fetch8(c), 1);
  t16[0xe7] = (c) => outPort(c, fetch8(c), 2);
  t32[0xe7] = (c) => outPort(c, fetch8(c), 4);
  t16[0xec] = t32[0xec] = (c) => inPort(c, c.regs[2] & 0xffff, 1);
  t16[0xed] = (c) => inPort(c, c.regs[2] & 0xffff, 2);
  t32[0xed] = (c) => inPort(c, c.regs[2] & 0xffff, 4);
  t16[0xee] = t32[0xee] = (c) => outPort(c, c.regs[2] & 0xffff, 1);
  t16[0xef] = (c) => outPort(c, c.regs[2] & 0xffff, 2);
  t32[0xef] = (c) => outPort(c, c.regs[2] & 0xffff, 4);
}
