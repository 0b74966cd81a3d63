// Operand helpers of the CPU differential generator: registers, immediates and memory
// operands inside the data area, with the setup lines they need and the item's flag effects

import { CF, DATA_BASE, DATA_BYTES } from "./layout.ts";
import { edgeValue, hex, Rng } from "./rng.ts";

/** The CPU mode a program body is generated for. */
export type Mode = "pm32" | "long";

export const R32 = ["eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"];
export const R16 = ["ax", "bx", "cx", "dx", "si", "di", "bp"];
export const R8 = ["al", "bl", "cl", "dl", "ah", "bh", "ch", "dh"];
export const R64 = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
];
/** Byte registers with a 32-bit parent whose low byte movzx can take (base/index setup). */
export const LOW8: Record<string, string> = { eax: "al", ebx: "bl", ecx: "cl", edx: "dl" };

/** The 32-bit half of a 64-bit register (rax -> eax, r8 -> r8d). */
export function low32(r: string): string {
  return /^r\d+$/.test(r) ? `${r}d` : `e${r.slice(1)}`;
}

export type Width = 8 | 16 | 32 | 64;
export const SIZE: Record<Width, string> = { 8: "byte", 16: "word", 32: "dword", 64: "qword" };

/**
 * The state of the item being drawn (its lines and flag effects) and the operands an
 * instruction class asks for; every choice draws from the seed's {@linkcode Rng} in a
 * fixed order, so a seed gives the same stream on every host.
 */
export class Operands {
  readonly rng: Rng;
  readonly mode: Mode;
  /** Status flags undefined at this point of the stream. */
  protected undef = 0;
  /** The item's lines so far, setup first. */
  protected lines: string[] = [];
  /** Status flags the item reads, defines and leaves undefined. */
  protected reads = 0;
  protected defined = 0;
  protected undefs = 0;
  /** The item's last line may fault on purpose (the handler resumes after it). */
  protected faulting = false;

  /**
   * @param undefAtStart flags undefined when the body starts (CF: a later pass starts
   * with the CF the previous pass left, which may be undefined).
   */
  constructor(seed: number, mode: Mode, undefAtStart = CF) {
    this.rng = new Rng(seed);
    this.mode = mode;
    this.undef = undefAtStart;
  }

  /** Starts a new item: no lines, no flag effects. */
  protected startItem(): void {
    this.lines = [];
    this.reads = 0;
    this.defined = 0;
    this.undefs = 0;
    this.faulting = false;
  }

  /** The item's last line may raise an exception on purpose. */
  markFault(): void {
    this.faulting = true;
  }

  /** Adds a line to the item. */
  emit(line: string): void {
    this.lines.push(line);
  }
  /** The item reads `read`, defines `def` and leaves `undef` undefined. */
  flags(read: number, def: number, undef: number): void {
    this.reads |= read;
    this.defined |= def;
    this.undefs |= undef;
  }
  /** An operand width the mode has (64 only in long mode, and only with `allow64`). */
  width(allow64 = true): Width {
    const ws: Width[] = this.mode === "long" && allow64 ? [8, 16, 32, 64] : [8, 16, 32];
    return this.rng.pick(ws);
  }
  /** A general register of width `w` (never ESP/RSP). */
  reg(w: Width): string {
    if (w === 8) return this.rng.pick(this.mode === "long" ? R8.slice(0, 4) : R8);
    if (w === 16) return this.rng.pick(R16);
    if (w === 64) return this.rng.pick(R64);
    return this.rng.pick(R32);
  }
  /** An immediate for width `w`, biased to flag edges (64: a sign-extended imm32). */
  imm(w: Width): string {
    const v = edgeValue(this.rng);
    if (w === 8) return hex(v & 0xff);
    if (w === 16) return hex(v & 0xffff);
    if (w === 64) return String(v | 0); // sign-extended imm32
    return hex(v);
  }

  /**
   * A memory operand inside the data area, in one of the addressing forms: disp32 alone,
   * base+disp8/disp32 with the base set to a pointer, base+index*scale+disp with small
   * base and index values (movzx of their low byte or a MOV), index*scale+disp32.
   * Setup lines use MOV/MOVZX only, so flags stay as they are.
   */
  mem(w: Width, a16ok = true): string {
    const size = SIZE[w];
    const span = 16;
    const pick = this.rng.below(a16ok && this.mode === "pm32" ? 6 : 5);
    // Offsets that keep base (<= 255) + index (<= 255) * 8 + disp8 + the access inside.
    const off = () => this.rng.below(DATA_BYTES - 255 - 255 * 8 - 128 - span);
    const far = () => 128 + this.rng.below(DATA_BYTES - 256 - span);
    const small = (r: string) => {
      if (LOW8[r] && this.rng.chance(0.5)) this.emit(`movzx ${r}, ${LOW8[r]}`);
      else this.emit(`mov ${r}, ${hex(this.rng.below(256))}`);
    };
    const regs = R32.filter((r) => r !== "ebp" || this.rng.chance(0.5));
    if (pick === 0) return `${size} [${hex(DATA_BASE + far())}]`;
    if (pick === 1) {
      const b = this.rng.pick(regs);
      this.emit(`mov ${b}, ${hex(DATA_BASE + far())}`);
      const d = this.rng.below(3);
      if (d === 0) return `${size} [${b}]`;
      return `${size} [${b}${d === 1 ? "+" : "-"}${this.rng.below(128)}]`;
    }
    if (pick === 2 || pick === 3) {
      const b = this.rng.pick(regs);
      const i = this.rng.pick(R32.filter((r) => r !== b && r !== "ebp"));
      const scale = this.rng.pick([1, 2, 4, 8]);
      small(i);
      if (pick === 2) {
        small(b);
        return `${size} [${b}+${i}*${scale}+${hex(DATA_BASE + off())}]`;
      }
      this.emit(`mov ${b}, ${hex(DATA_BASE + off())}`);
      return `${size} [${b}+${i}*${scale}${this.rng.chance(0.5) ? "" : "+" + this.rng.below(128)}]`;
    }
    if (pick === 4) {
      const i = this.rng.pick(R32.filter((r) => r !== "ebp"));
      const scale = this.rng.pick([1, 2, 4, 8]);
      small(i);
      return `${size} [${i}*${scale}+${hex(DATA_BASE + off())}]`;
    }
    // 16-bit addressing: [bx|bp + si|di + disp] inside the first 64 KiB.
    const b = this.rng.pick(["bx", "bp"]);
    const i = this.rng.pick(["si", "di"]);
    this.emit(`mov ${b}, ${hex(DATA_BASE + off())}`);
    this.emit(`mov ${i}, ${hex(this.rng.below(256))}`);
    return `${size} [${b}+${i}${this.rng.chance(0.5) ? "" : "+" + this.rng.below(128)}]`;
  }

  /** A register or memory destination of width `w`. */
  rm(w: Width): string {
    return this.rng.chance(0.35) ? this.mem(w) : this.reg(w);
  }

  /** Emits the instruction under test and returns it. */
  put(insn: string): string {
    this.emit(insn);
    return insn;
  }

  /** Status flags undefined before the item being drawn. */
  undefNow(): number {
    return this.undef;
  }
}
