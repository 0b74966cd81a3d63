// Long-mode items of the CPU differential generator: REX-only registers, 64-bit operand
// size, RIP-relative addressing and CMPXCHG16B

import { AF, CF, DATA_BASE, DATA_BYTES, OF, STATUS } from "./layout.ts";
import { edgeValue, hex } from "./rng.ts";
import { low32, type Operands, R64 } from "./gen_operands.ts";

/** R8..R12 (R13..R15 are not in the dump) at each width, and the REX-only byte registers. */
const EXT64 = ["r8", "r9", "r10", "r11", "r12"];
const EXT8 = ["r8b", "r9b", "r10b", "r11b", "r12b", "sil", "dil", "bpl"];

function extReg(o: Operands, w: 8 | 16 | 32 | 64): string {
  if (w === 8) return o.rng.pick(EXT8);
  const r = o.rng.pick(EXT64);
  return w === 64 ? r : w === 32 ? `${r}d` : `${r}w`;
}

/** A 64-bit value at the edges of the signed and unsigned ranges, or random. */
function edge64(o: Operands): bigint {
  const hi = BigInt(edgeValue(o.rng)), lo = BigInt(edgeValue(o.rng));
  return o.rng.chance(0.3) ? BigInt.asUintN(64, BigInt(edgeValue(o.rng) | 0)) : (hi << 32n) | lo;
}

/**
 * REX: R8..R12 and SIL/DIL/BPL in ALU, move, shift and multiply forms; 32-bit writes that
 * clear the upper half; MOVSXD, MOV r64, imm64; 64-bit base and index registers.
 */
export function rexItem(o: Operands): string {
  const k = o.rng.below(8);
  if (k === 0) {
    const w = o.rng.pick([8, 16, 32, 64] as const);
    const op = o.rng.pick(["add", "sub", "adc", "sbb", "and", "or", "xor", "cmp"]);
    const a = extReg(o, w);
    const b = o.rng.chance(0.5) ? extReg(o, w) : o.reg(w);
    const insn = o.rng.chance(0.5) ? `${op} ${a}, ${b}` : `${op} ${b}, ${a}`;
    const logic = op === "and" || op === "or" || op === "xor";
    o.flags(op === "adc" || op === "sbb" ? CF : 0, logic ? STATUS & ~AF : STATUS, logic ? AF : 0);
    return o.put(insn);
  }
  if (k === 1) {
    // A 32-bit destination zero-extends into the whole register; 8/16-bit ones do not.
    const w = o.rng.pick([8, 16, 32] as const);
    const src = o.rng.chance(0.5) ? extReg(o, w) : o.reg(w);
    return o.put(`mov ${extReg(o, w)}, ${src}`);
  }
  if (k === 2) {
    const v = edge64(o);
    return o.put(
      o.rng.chance(0.5)
        ? `mov ${o.rng.pick(R64)}, 0x${v.toString(16)}`
        : `movsxd ${o.rng.pick(R64)}, ${low32(o.rng.pick(R64))}`,
    );
  }
  if (k === 3) {
    // 64-bit shifts and rotates by counts around 32 and 63 (masked to 6 bits).
    const op = o.rng.pick(["shl", "shr", "sar", "rol", "ror"]);
    const count = o.rng.pick([1, 31, 32, 33, 63, 64, 65]);
    const masked = count & 63;
    const insn = o.put(`${op} ${o.rng.pick(R64)}, ${count}`);
    if (masked === 0) return insn;
    // OF is defined for a count of 1 only; AF is undefined after the shifts (SDM SAL/SAR/SHL/SHR).
    const of = masked === 1 ? OF : 0;
    if (op === "rol" || op === "ror") o.flags(0, CF | of, OF & ~of);
    else o.flags(0, (STATUS & ~AF & ~OF) | of, AF | (OF & ~of));
    return insn;
  }
  if (k === 4) {
    // 64-bit multiply: the high half in RDX, or a truncated two/three-operand IMUL.
    const form = o.rng.below(3);
    const src = extReg(o, 64);
    o.flags(0, CF | OF, STATUS & ~(CF | OF));
    if (form === 0) return o.put(`${o.rng.pick(["mul", "imul"])} ${src}`);
    if (form === 1) return o.put(`imul ${o.rng.pick(R64)}, ${src}`);
    return o.put(`imul ${o.rng.pick(R64)}, ${src}, ${edgeValue(o.rng) | 0}`);
  }
  if (k === 5) {
    // A 64-bit base and index (R8..R12 among them) with a disp8 or disp32.
    const base = o.rng.pick(R64);
    const index = o.rng.pick(R64.filter((r) => r !== base));
    const scale = o.rng.pick([1, 2, 4, 8]);
    const i = o.rng.below(64);
    const disp = o.rng.pick([0, 8, -8, 100, -100, 0x400]);
    const at = DATA_BASE + 512 + o.rng.below(DATA_BYTES - 2048);
    o.emit(`mov ${base}, ${hex(at - i * scale - disp)}`);
    o.emit(`mov ${low32(index)}, ${i}`);
    const m = `[${base}+${index}*${scale}${disp < 0 ? "-" : "+"}${Math.abs(disp)}]`;
    const w = o.rng.pick([8, 16, 32, 64] as const);
    const r = extReg(o, w);
    const size = { 8: "byte", 16: "word", 32: "dword", 64: "qword" }[w];
    if (o.rng.chance(0.5)) return o.put(`mov ${r}, ${size} ${m}`);
    o.flags(0, STATUS, 0);
    return o.put(`add ${size} ${m}, ${r}`);
  }
  if (k === 6) {
    // PUSH/POP of R8..R12 and XCHG/BSWAP/XADD on them.
    const a = o.rng.pick(EXT64), b = o.rng.pick(R64);
    const form = o.rng.below(4);
    if (form === 0) {
      o.emit(`push ${a}`);
      return o.put(`pop ${b}`);
    }
    if (form === 1) return o.put(`xchg ${a}, ${b}`);
    if (form === 2) return o.put(`bswap ${o.rng.chance(0.5) ? a : `${a}d`}`);
    o.flags(0, STATUS, 0);
    return o.put(`xadd ${a}, ${b}`);
  }
  // MOVZX/MOVSX into 64-bit registers, and CQO.
  const src = o.rng.chance(0.5) ? extReg(o, o.rng.pick([8, 16] as const)) : o.reg(8);
  return o.put(
    o.rng.chance(0.8) ? `${o.rng.pick(["movzx", "movsx"])} ${extReg(o, 64)}, ${src}` : "cqo",
  );
}

/**
 * RIP-relative addressing: loads and stores of the data area, an immediate after the
 * displacement (RIP is the end of the whole instruction), LEA of a nearby label, and a
 * read of the code's own bytes.
 */
export function ripItem(o: Operands): string {
  const at = hex(DATA_BASE + o.rng.below(DATA_BYTES - 8));
  const k = o.rng.below(6);
  const w = o.rng.pick([8, 16, 32, 64] as const);
  const size = { 8: "byte", 16: "word", 32: "dword", 64: "qword" }[w];
  if (k === 0) return o.put(`mov ${o.reg(w)}, ${size} [rel ${at}]`);
  if (k === 1) return o.put(`mov ${size} [rel ${at}], ${o.reg(w)}`);
  if (k === 2) {
    // The immediate follows the displacement: a decoder must add its length to RIP.
    o.flags(0, STATUS, 0);
    const imm = w === 8 ? o.rng.below(256) : w === 16 ? o.rng.below(0x10000) : edgeValue(o.rng) | 0;
    return o.put(`${o.rng.pick(["cmp", "add", "sub"])} ${size} [rel ${at}], ${imm}`);
  }
  if (k === 3) {
    o.emit(`@here: nop`);
    return o.put(`lea ${o.rng.pick(R64)}, [rel @here${o.rng.pick(["", "+1", "-16", "+0x100"])}]`);
  }
  if (k === 4) {
    // The code's own bytes, read through RIP (the assembled image is the same on both).
    const r = o.rng.pick(R64);
    o.emit(`mov ${low32(r)}, dword [rel @there]`);
    return o.put(`@there: add ${r}, 1`);
  }
  // CMPXCHG16B on an aligned slot; half the time RDX:RAX match it. QEMU computes the
  // flags it keeps from stale lazy flags (as for CMPXCHG8B): ZF goes to a register at once.
  const slot = hex(DATA_BASE + 16 * o.rng.below(DATA_BYTES / 16));
  if (o.rng.chance(0.5)) {
    o.emit(`mov rax, [${slot}]`);
    o.emit(`mov rdx, [${slot}+8]`);
  }
  const insn = o.put(`${o.rng.chance(0.3) ? "lock " : ""}cmpxchg16b [${slot}]`);
  o.emit(`setz ${o.rng.pick(["al", "bl", "cl", "dl"])}`);
  o.emit(`cmp ${o.rng.pick(R64)}, ${edgeValue(o.rng) | 0}`);
  o.flags(0, STATUS, 0);
  return insn;
}
