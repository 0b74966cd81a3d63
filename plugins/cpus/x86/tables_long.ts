// 64-bit mode's opcode table: the long-mode handlers, and the 16/32-bit ones that carry over

import { installPrefixes64 } from "./decode_long.ts";
import { installLong } from "./ops_long.ts";
import { installLong2 } from "./ops_long2.ts";
import { installLong0f, zeroRegs } from "./ops_long_0f.ts";
import { installLongSys } from "./ops_long_sys.ts";
import { rexWSse } from "./sse_long.ts";
import { type CpuCore, type OpHandler, ud } from "./state.ts";

/**
 * Opcodes whose 16/32-bit handlers are right in 64-bit mode as they are: they decode
 * through `decodeModrm` (which applies REX and 64-bit addresses) or touch no general
 * register at 32 bits. The x87 and SSE maps are among them (XMM8..15 through REX).
 */
const SAME: number[] = [
  0x9b,
  0x9e,
  0x9f,
  0xcc,
  0xcd,
  0xf1,
  0xf4,
  0xf5,
  0xf8,
  0xf9,
  0xfa,
  0xfb,
  0xfc,
  0xfd,
  0xe4,
  0xe6,
  0xe7,
  0xec,
  0xee,
  0xef,
  0x100,
  0x106,
  0x108,
  0x109,
  0x10b,
  0x10d,
  0x130,
  0x1ae,
  0x1b0,
  0x1c0,
  0x177,
];
for (let op = 0xd8; op <= 0xdf; op++) SAME.push(op);
for (let op = 0x118; op <= 0x11f; op++) SAME.push(op);
for (
  const [a, b] of [[0x110, 0x117], [0x128, 0x12f], [0x150, 0x17f], [0x1c2, 0x1c6], [0x1d0, 0x1ff]]
) {
  for (let op = a; op <= b; op++) SAME.push(op);
}

/** SSE opcodes taking an imm8 after the ModRM operand (RIP-relative addresses end after it). */
const IMM8 = [0x170, 0x171, 0x172, 0x173, 0x1c2, 0x1c4, 0x1c5, 0x1c6];

/** SSE opcodes writing a 32-bit general register from the ModRM reg field (upper half cleared). */
const GPR_REG = [0x150, 0x1d7, 0x1c5, 0x12c, 0x12d];

/** Builds 64-bit mode's table from the 16- and 32-bit ones. */
export function buildTable64(t16: OpHandler[], t32: OpHandler[]): OpHandler[] {
  const undefinedOp = (c: CpuCore) => ud(c);
  const t: OpHandler[] = new Array(512).fill(undefinedOp);
  for (const op of SAME) t[op] = (c) => (c.op32 ? t32 : t16)[op](c);
  for (const op of IMM8) {
    const h = t[op];
    t[op] = (c) => {
      c.immLen = 1;
      h(c);
    };
  }
  for (const op of GPR_REG) {
    const h = t[op];
    t[op] = (c) => {
      h(c);
      // 0F 2C/2D write a general register only with F3h/F2h (CVT(T)SS2SI, CVT(T)SD2SI);
      // without, they are CVT(T)PS2PI/CVT(T)PD2PI into an MMX register.
      const cvt = op === 0x12c || op === 0x12d;
      if (cvt ? c.rep !== 0 : c.modMod === 3) c.regsHi[c.modReg] = 0;
    };
  }
  // MOVD r/m32, xmm: a register destination's upper half clears.
  const movdOut = t[0x17e];
  t[0x17e] = (c) => {
    movdOut(c);
    if (c.modMod === 3 && c.rep === 0) c.regsHi[c.modRm] = 0;
  };
  for (const op of [0xe5, 0xed]) { // IN eAX: a 32-bit read zero-extends
    t[op] = (c) => {
      (c.op32 ? t32 : t16)[op](c);
      if (c.op32) c.regsHi[0] = 0;
    };
  }
  t[0x131] = zeroRegs((c) => t32[0x131](c), [0, 2]); // RDTSC
  t[0x132] = zeroRegs((c) => t32[0x132](c), [0, 2]); // RDMSR
  t[0x1a2] = zeroRegs((c) => t32[0x1a2](c), [0, 1, 2, 3]); // CPUID
  t[0x8c] = (c) => { // MOV r/m, Sreg: a register destination is zero-extended
    t32[0x8c](c);
    if (c.modMod === 3) c.regsHi[c.modRm] = 0;
  };
  t[0x8e] = t32[0x8e];
  t[0xff] = t32[0xff]; // far CALL/JMP forms (ops_long.ts takes the near ones)
  rexWSse(t);
  installLong(t);
  installLong2(t);
  installLong0f(t, t16, t32);
  installLongSys(t, t32);
  installPrefixes64(t);
  return t;
}
