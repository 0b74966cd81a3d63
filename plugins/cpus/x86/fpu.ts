// x87 FPU instructions (D8..DF) and WAIT

import { decodeModrm } from "./decode.ts";
import { checkRead } from "./memory.ts";
import { FEAT_FPU } from "./models.ts";
import {
  type CpuCore,
  CR0_EM,
  CR0_NE,
  CR0_TS,
  EXC_MF,
  EXC_NM,
  fault,
  type OpHandler,
} from "./state.ts";

/** Operand bytes of the memory forms D8..DF by (opcode - D8) * 8 + reg (0: no access). */
const MEM_BYTES = [
  4,
  4,
  4,
  4,
  4,
  4,
  4,
  4, // D8 m32real
  4,
  0,
  4,
  4,
  0,
  2,
  0,
  2, // D9
  4,
  4,
  4,
  4,
  4,
  4,
  4,
  4, // DA m32int
  4,
  4,
  4,
  4,
  0,
  10,
  0,
  10, // DB
  8,
  8,
  8,
  8,
  8,
  8,
  8,
  8, // DC m64real
  8,
  8,
  8,
  8,
  0,
  0,
  0,
  2, // DD
  2,
  2,
  2,
  2,
  2,
  2,
  2,
  2, // DE m16int
  2,
  2,
  2,
  2,
  10,
  8,
  10,
  8, // DF
];

/** Installs the escape opcodes. Without an FPU they decode their operand and do nothing. */
export function installFpu(t16: OpHandler[], t32: OpHandler[]): void {
  for (let op = 0xd8; op <= 0xdf; op++) {
    const row = (op - 0xd8) * 8;
    t16[op] = t32[op] = (c: CpuCore) => {
      decodeModrm(c);
      if ((c.model.features & FEAT_FPU) === 0) {
        // No coprocessor: the 286 still runs the operand's bus cycles (limit checks apply).
        const n = MEM_BYTES[row + c.modReg];
        if (c.modMod !== 3 && n > 0 && c.model.family <= 2) checkRead(c, c.eaSeg, c.eaOff, n);
        return;
      }
      if ((c.cr0 & (CR0_EM | CR0_TS)) !== 0) fault(c, EXC_NM);
      const f = c.fpu;
      if ((f.sw & SW_ES) !== 0 && !isNoWait(op, c.modMod, c.modReg, c.modRm)) pendingError(c);
      fpuExec(c, op);
      // An unmasked exception sets ES and B; it is reported at the next waiting instruction.
      if ((f.sw & ~f.cw & 0x3f) !== 0) f.sw |= SW_ES | SW_B;
      else f.sw &= ~(SW_ES | SW_B);
    };
  }
}

const SW_ES = 0x80, SW_B = 0x8000;

/** The control forms that never report a pending exception (FNINIT, FNSTSW...). */
function isNoWait(op: number, mod: number, reg: number, rm: number): boolean {
  if (op === 0xdb) return mod === 3 && reg === 4 && (rm === 2 || rm === 3);
  if (op === 0xd9) return mod !== 3 && (reg === 6 || reg === 7);
  if (op === 0xdd) return mod !== 3 && (reg === 6 || reg === 7);
  return op === 0xdf && mod === 3 && reg === 4 && rm === 0;
}

/**
 * Reports a pending unmasked x87 exception: #MF with CR0.NE; without it the PC's FERR#
 * line goes to IRQ 13 (a board concern), so the instruction proceeds.
 */
export function pendingError(c: CpuCore): void {
  if ((c.cr0 & CR0_NE) !== 0) fault(c, EXC_MF);
}

/** Executes one x87 instruction (filled in by the FPU core). */
export let fpuExec: (c: CpuCore, op: number) => void = () => {};

/** Installs the FPU core implementation. */
export function setFpuExec(f: (c: CpuCore, op: number) => void): void {
  fpuExec = f;
}
