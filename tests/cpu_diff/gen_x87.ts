// x87 items of the CPU differential generator: two loads, one operation, one store

import { AF, CF, DATA_BASE, OF, PF, SF, STATUS, ZF } from "./layout.ts";
import { hex, type Rng } from "./rng.ts";

/**
 * One x87 item. x87: loads from the data area, one operation, a store back, the stack left empty.
 * Exceptions stay masked (FNINIT's control word), so results are QNaN/inf where the
 * SDM says; the status word's exception bits are in the final dump.
 */
export function x87Item(
  rng: Rng,
  emit: (line: string) => void,
  flags: (read: number, def: number, undef: number) => void,
): string {
  const slot = () => hex(DATA_BASE + 8 * (32 + rng.below(400)));
  const load = () => {
    const k = rng.below(6);
    if (k === 0) return `fld dword [${slot()}]`;
    if (k === 1) return `fld qword [${slot()}]`;
    if (k === 2) return `fild dword [${slot()}]`;
    if (k === 3) return `fild word [${slot()}]`;
    if (k === 4) return rng.pick(["fld1", "fldz", "fldpi", "fldl2e", "fldln2"]);
    return `fild qword [${slot()}]`;
  };
  emit(load());
  emit(load());
  const op = rng.pick([
    "faddp",
    "fsubp",
    "fsubrp",
    "fmulp",
    "fdivp",
    "fdivrp",
    "fsqrt",
    "fabs",
    "fchs",
    "frndint",
    "fxch",
    "fcom",
    "fucomi",
    "fcomi",
    "fprem",
    "fscale",
  ]);
  let insn = op;
  if (op.endsWith("p")) insn = `${op} st1, st0`;
  else if (op === "fxch" || op === "fcom") insn = `${op} st1`;
  else if (op === "fucomi" || op === "fcomi") insn = `${op} st0, st1`;
  emit(insn);
  if (op === "fcom") {
    emit("fnstsw ax");
    emit("and ax, 0x4500");
    flags(0, STATUS & ~AF, AF);
  }
  // FCOMI/FUCOMI clear OF, SF and AF (SDM), but QEMU 7.2 keeps them as they were:
  // only ZF, PF and CF are compared.
  if (op === "fucomi" || op === "fcomi") flags(0, ZF | PF | CF, OF | SF | AF);
  const depth = op.endsWith("p") ? 1 : 2;
  const store = rng.pick([
    "fstp qword",
    "fstp dword",
    "fistp dword",
    "fistp qword",
    "fstp tword",
  ]);
  const where = store.endsWith("tword") ? hex(DATA_BASE + 16 * (16 + rng.below(200))) : slot();
  emit(`${store} [${where}]`);
  if (depth === 2) emit("fstp st0");
  return insn;
}
