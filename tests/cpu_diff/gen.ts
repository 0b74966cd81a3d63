// Seeded generator of x86 test instructions (nasm syntax) with static tracking of undefined EFLAGS

import {
  AF,
  CF,
  DATA_BASE,
  DATA_BYTES,
  NP_PAGE,
  OF,
  PF,
  RO_PAGE,
  SF,
  STATUS,
  ZF,
} from "./layout.ts";
import { edgeValue, hex, Rng } from "./rng.ts";
import { x87Item } from "./gen_x87.ts";
import { rexItem, ripItem } from "./gen_long.ts";
import { sseItem } from "./gen_sse.ts";
import { mmxItem } from "./gen_mmx.ts";
import { LOW8, type Mode, Operands, R32, R64, SIZE, type Width } from "./gen_operands.ts";

export { AF, CF, DATA_BASE, DATA_BYTES, edgeValue, NP_PAGE, OF, PF, Rng, RO_PAGE, SF, STATUS, ZF };

export type { Mode };

/** One generated test instruction with the setup lines that make it safe to run. */
export interface Item {
  /** Instruction class (the names in docs/cpu-differential.md and known_differences.json). */
  cls: string;
  /** The instruction under test, as nasm reads it (the reproducer line). */
  insn: string;
  /** Every line to assemble, setup first; `@` is replaced by a label prefix unique to the item. */
  lines: string[];
  /** The lines between `@start` and `@end` may raise #DE (the handler resumes at `@end`). */
  mayFault: boolean;
  /** Status flags undefined after this item (given those undefined before it). */
  undefAfter: number;
  /** Status flags this item itself leaves undefined. */
  undefOwn: number;
  /** Status flags the instruction under test reads (CF for ADC, the condition of a Jcc). */
  reads: number;
}

/** Conditions and the flags each reads (SDM vol. 1 appendix B). */
const CONDS: [string, number][] = [
  ["o", OF],
  ["no", OF],
  ["b", CF],
  ["ae", CF],
  ["e", ZF],
  ["ne", ZF],
  ["be", CF | ZF],
  ["a", CF | ZF],
  ["s", SF],
  ["ns", SF],
  ["p", PF],
  ["np", PF],
  ["l", SF | OF],
  ["ge", SF | OF],
  ["le", ZF | SF | OF],
  ["g", ZF | SF | OF],
];

/** Generates the instruction stream of one seed; each call to {@linkcode next} adds one item. */
export class Generator extends Operands {
  /** The classes this mode generates, with their weights. */
  classes(): [string, number, () => string][] {
    const all: [string, number, () => string][] = [
      ["alu", 14, () => this.#alu()],
      ["incdec", 4, () => this.#incDec()],
      ["shift", 10, () => this.#shift()],
      ["shld", 3, () => this.#shld()],
      ["mul", 5, () => this.#mul()],
      ["div", 5, () => this.#div()],
      ["string", 5, () => this.#string()],
      ["cond", 8, () => this.#cond()],
      ["bit", 6, () => this.#bit()],
      ["xchg", 5, () => this.#xchg()],
      ["stack", 3, () => this.#stack()],
      ["lea", 6, () => this.#lea()],
      ["move", 5, () => this.#move()],
      ["x87", 5, () => x87Item(this.rng, (l) => this.emit(l), (r, d, u) => this.flags(r, d, u))],
    ];
    all.push(
      ["trap", 2, () => this.#trap()],
      ["misc", 4, () => this.#misc()],
      ["smc", 2, () => this.#smc()],
      ["pf", 2, () => this.#pf()],
    );
    if (this.mode === "pm32") {
      all.push(
        ["bcd", 4, () => this.#bcd()],
        ["sse", 12, () => sseItem(this)],
        ["mmx", 4, () => mmxItem(this)],
      );
    } else {
      all.push(
        ["rex", 8, () => rexItem(this)],
        ["rip", 4, () => ripItem(this)],
        ["sse", 16, () => sseItem(this)],
        ["mmx", 4, () => mmxItem(this)],
      );
    }
    return all;
  }

  /**
   * The next item of the stream. An item `exclude` refuses is drawn again (the stream
   * then differs from the unfiltered one from that item on).
   */
  next(exclude?: (cls: string, insn: string) => boolean): Item {
    for (;;) {
      const undef = this.undef;
      const item = this.#draw();
      if (!exclude?.(item.cls, item.insn)) return item;
      this.undef = undef;
    }
  }

  #draw(): Item {
    const classes = this.classes();
    const total = classes.reduce((s, c) => s + c[1], 0);
    let r = this.rng.below(total);
    let chosen = classes[0];
    for (const c of classes) {
      if (r < c[1]) {
        chosen = c;
        break;
      }
      r -= c[1];
    }
    this.startItem();
    let mayFault = false;
    const insn = chosen[2]();
    if (
      chosen[0] === "div" || chosen[0] === "trap" || chosen[0] === "pf" ||
      (chosen[0] === "bcd" && insn.startsWith("aam")) || this.faulting
    ) {
      mayFault = true;
    }
    // A flag reader whose flags are undefined gets a CMP first that defines all six.
    const pre: string[] = [];
    if (this.reads & this.undef) {
      pre.push(`cmp ${this.rng.pick(R32)}, ${hex(edgeValue(this.rng))}`);
      this.undef = 0;
    }
    this.undef = (this.undef & ~(this.defined | this.undefs)) | this.undefs;
    return {
      cls: chosen[0],
      insn,
      lines: [...pre, ...this.lines],
      mayFault,
      undefAfter: this.undef,
      undefOwn: this.undefs,
      reads: this.reads,
    };
  }

  /** Status flags undefined at this point of the stream. */
  get undefinedFlags(): number {
    return this.undef;
  }

  // ---- instruction classes

  #alu(): string {
    const op = this.rng.pick(["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test"]);
    const w = this.width();
    const form = this.rng.below(4);
    let insn: string;
    if (form === 0) insn = `${op} ${this.reg(w)}, ${this.reg(w)}`;
    else if (form === 1) insn = `${op} ${this.rm(w)}, ${this.imm(w)}`;
    else if (form === 2 && op !== "test") insn = `${op} ${this.reg(w)}, ${this.mem(w)}`;
    else insn = `${op} ${this.mem(w)}, ${this.reg(w)}`;
    if (w !== 8 && form === 1 && this.rng.chance(0.3)) {
      // The sign-extended imm8 encodings (83 /r).
      insn = insn.replace(/, [^,]*$/, `, byte ${(this.rng.below(256) - 128)}`);
      if (op === "test") insn = `test ${this.reg(w)}, ${this.imm(w)}`;
    }
    this.emit(insn);
    const reads = op === "adc" || op === "sbb" ? CF : 0;
    const logic = op === "and" || op === "or" || op === "xor" || op === "test";
    this.flags(reads, logic ? STATUS & ~AF : STATUS, logic ? AF : 0);
    return insn;
  }

  #incDec(): string {
    const op = this.rng.pick(["inc", "dec", "neg", "not"]);
    const insn = `${op} ${this.rm(this.width())}`;
    this.emit(insn);
    if (op === "neg") this.flags(0, STATUS, 0);
    else if (op !== "not") this.flags(0, STATUS & ~CF, 0);
    return insn;
  }

  #shift(): string {
    const op = this.rng.pick(["shl", "shr", "sar", "sal", "rol", "ror", "rcl", "rcr"]);
    const w = this.width();
    const dst = this.rm(w);
    const form = this.rng.below(3);
    let count: number;
    let insn: string;
    const pickCount = () =>
      this.rng.pick([0, 1, 1, 2, w - 1, w, w + 1, 31, 32, 33, 63, 64, 255, this.rng.below(40)]);
    if (form === 0) {
      count = 1;
      insn = `${op} ${dst}, 1`;
    } else if (form === 1) {
      count = pickCount() & 0xff;
      insn = `${op} ${dst}, ${count}`;
    } else {
      count = pickCount() & 0xff;
      // ECX may be the base or index of dst: set CL first, from another register's view.
      if (/\b(e?cx|cl|ch|rcx)\b/.test(dst)) {
        insn = `${op} ${dst}, 1`;
        count = 1;
      } else {
        this.emit(`mov cl, ${count}`);
        insn = `${op} ${dst}, cl`;
      }
    }
    this.emit(insn);
    const masked = count & (w === 64 ? 63 : 31);
    if (masked === 0) return insn; // flags unchanged (SDM SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR)
    const rotate = op.length === 3 && op[0] === "r";
    if (rotate) {
      const readsCf = op === "rcl" || op === "rcr" ? CF : 0;
      // CF is affected for a non-zero masked count; OF only for a count of 1.
      this.flags(readsCf, CF | (masked === 1 ? OF : 0), masked === 1 ? 0 : OF);
      return insn;
    }
    // CF is undefined for SHL/SHR with a count >= the operand width; AF always undefined.
    const cfUndef = op !== "sar" && masked >= w;
    this.flags(
      0,
      SF | ZF | PF | (cfUndef ? 0 : CF) | (masked === 1 ? OF : 0),
      AF | (cfUndef ? CF : 0) | (masked === 1 ? 0 : OF),
    );
    return insn;
  }

  #shld(): string {
    const op = this.rng.pick(["shld", "shrd"]);
    const w: Width = this.mode === "long" ? this.rng.pick([16, 32, 64]) : this.rng.pick([16, 32]);
    const dst = this.rm(w);
    const src = this.reg(w);
    let count = this.rng.pick([0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, this.rng.below(64)]);
    // A 16-bit double shift by more than 16 has an undefined result (SDM SHLD).
    if (w === 16 && (count & 31) > 16) count = 16;
    let insn: string;
    if (this.rng.chance(0.5) && !/\b(e?cx|cl|rcx)\b/.test(dst + src)) {
      this.emit(`mov cl, ${count}`);
      insn = `${op} ${dst}, ${src}, cl`;
    } else insn = `${op} ${dst}, ${src}, ${count}`;
    this.emit(insn);
    const masked = count & (w === 64 ? 63 : 31);
    if (masked === 0) return insn;
    this.flags(0, SF | ZF | PF | CF | (masked === 1 ? OF : 0), AF | (masked === 1 ? 0 : OF));
    return insn;
  }

  #mul(): string {
    const w = this.width();
    const form = w === 8 ? 0 : this.rng.below(3);
    let insn: string;
    if (form === 0) insn = `${this.rng.pick(["mul", "imul"])} ${this.rm(w)}`;
    else if (form === 1) insn = `imul ${this.reg(w)}, ${this.rm(w)}`;
    else insn = `imul ${this.reg(w)}, ${this.rm(w)}, ${this.imm(w === 64 ? 32 : w)}`;
    this.emit(insn);
    this.flags(0, CF | OF, SF | ZF | AF | PF);
    return insn;
  }

  #div(): string {
    const op = this.rng.pick(["div", "idiv"]);
    const w = this.width();
    const src = this.rm(w);
    // Half the time make the quotient fit, so both the result and #DE are exercised.
    if (this.rng.chance(0.5) && !/\b([re]?[ad]x|[ad][lh])\b/.test(src)) {
      const hi = w === 8 ? "ah" : w === 16 ? "dx" : w === 32 ? "edx" : "rdx";
      this.emit(
        op === "div"
          ? `xor ${hi}, ${hi}`
          : w === 8
          ? "cbw"
          : `${{ 16: "cwd", 32: "cdq", 64: "cqo" }[w]}`,
      );
      if (op === "div") this.flags(0, STATUS & ~AF, AF);
    }
    const insn = `${op} ${src}`;
    this.emit(insn);
    this.flags(0, 0, STATUS);
    return insn;
  }

  #bcd(): string {
    const op = this.rng.pick(["daa", "das", "aaa", "aas", "aam", "aad"]);
    if (this.rng.chance(0.4)) this.emit(`mov ax, ${hex(this.rng.u32() & 0xffff)}`);
    let insn = op;
    if (op === "aam" || op === "aad") {
      const base = this.rng.pick([10, 10, 0, 1, 16, 0xff, this.rng.below(256)]);
      if (base !== 10) insn = `${op} ${base}`;
    }
    this.emit(insn);
    if (op === "daa" || op === "das") this.flags(CF | AF, STATUS & ~OF, OF);
    else if (op === "aaa" || op === "aas") this.flags(AF, AF | CF, OF | SF | ZF | PF);
    else if (insn !== "aam 0") this.flags(0, SF | ZF | PF, OF | AF | CF);
    // AAM 0 raises #DE and leaves every flag as it was (defined or not).
    return insn;
  }

  #string(): string {
    const w = this.rng.pick([8, 16, 32] as Width[]);
    const sfx = { 8: "b", 16: "w", 32: "d", 64: "q" }[w];
    const op = this.rng.pick(["movs", "lods", "stos", "cmps", "scas"]);
    const down = this.rng.chance(0.4);
    this.emit(down ? "std" : "cld");
    // A quarter use the other address size: SI/DI/CX (a16) in 32-bit code, ESI/EDI/ECX
    // (a32) in 64-bit code; the high halves of the registers must not take part.
    const other = this.rng.chance(0.25);
    const [si, di, cx, asz] = other && this.mode === "pm32"
      ? ["si", "di", "cx", "a16 "]
      : ["esi", "edi", "ecx", other ? "a32 " : ""];
    const mid = DATA_BASE + 1024 + this.rng.below(2048);
    this.emit(`mov ${si}, ${hex(mid + this.rng.below(64) - 32)}`);
    this.emit(`mov ${di}, ${hex(mid + this.rng.below(64) - 32)}`);
    const rep = this.rng.below(3);
    let prefix = "";
    let count = 1;
    if (rep > 0) {
      count = this.rng.pick([0, 1, 2, 3, 7, 16]);
      this.emit(`mov ${cx}, ${count}`);
      prefix = op === "cmps" || op === "scas" ? (rep === 1 ? "repe " : "repne ") : "rep ";
    }
    const insn = `${asz}${prefix}${op}${sfx}`;
    this.emit(insn);
    // With a count of 0 nothing runs and the flags stay as they were.
    if ((op === "cmps" || op === "scas") && count > 0) this.flags(0, STATUS, 0);
    return insn;
  }

  /**
   * Instructions that raise an exception or trap on purpose: INT3 and INTO (traps: the
   * handler sees the next EIP), BOUND (#BR) and UD2 (#UD) (faults: the handler resumes
   * after them). In 64-bit mode INTO and BOUND are invalid and leave out.
   */
  #trap(): string {
    const k = this.rng.below(this.mode === "pm32" ? 4 : 2);
    if (k === 0) return this.put("int3");
    if (k === 1) return this.put("ud2");
    if (k === 2) {
      this.flags(OF, 0, 0);
      return this.put("into");
    }
    // BOUND r32, m32&32 / r16, m16&16: the bounds pair comes from the data area.
    const w = this.rng.pick([16, 32] as Width[]);
    const r = this.reg(w);
    const m = this.mem(w).replace(/^(word|dword) /, "");
    return this.put(`bound ${r}, ${m}`);
  }

  /**
   * Self-modifying code: a store rewrites the imm32 of an ADD a few bytes on (or of one
   * item further back, already run), so every pass runs different code from the same
   * bytes' place; translated blocks and wasm regions must see it.
   */
  #smc(): string {
    const src = this.rng.pick(R32.filter((r) => r !== "esp"));
    const dst = this.rng.pick(["ebx", "ecx", "edx", "esi", "edi", "ebp"]);
    const store = this.rng.below(3);
    const width = store === 0
      ? `dword [@p+2], ${src}`
      : store === 1
      ? `word [@p+${2 + this.rng.below(3)}], ${src.replace(/^e/, "")}`
      : `byte [@p+${2 + this.rng.below(4)}], ${hex(this.rng.below(256))}`;
    this.emit(`mov ${width}`);
    if (this.rng.chance(0.5)) this.emit(`lea ${dst === "ebx" ? "ecx" : "ebx"}, [${src}+1]`);
    // 81 /0 id: the immediate sits at byte 2 (strict dword keeps nasm off the 83 form).
    this.emit(`@p: add ${dst}, strict dword ${hex(edgeValue(this.rng))}`);
    this.flags(0, STATUS, 0);
    return `mov ${width.replaceAll("@", "")}; @p: add ${dst}, imm32`;
  }

  /**
   * Page faults: reads and writes of the not-present page at {@linkcode NP_PAGE}, writes
   * to the read-only page at {@linkcode RO_PAGE} (CR0.WP), reads of it, and accesses that
   * cross from the data area into it or from it into the not-present page (a faulting
   * write must leave the first page's bytes alone). The handler logs CR2 and resumes after.
   */
  #pf(): string {
    const w = this.rng.pick([8, 16, 32] as Width[]);
    const r = this.reg(w);
    const size = SIZE[w];
    const at = (page: number) => hex(page + this.rng.below(4096 - w / 8));
    const k = this.rng.below(7);
    if (k === 0) return this.put(`mov ${r}, ${size} [${at(NP_PAGE)}]`);
    if (k === 1) return this.put(`mov ${size} [${at(NP_PAGE)}], ${r}`);
    if (k === 2) return this.put(`add ${size} [${at(RO_PAGE)}], ${r}`);
    if (k === 3) {
      this.flags(0, STATUS, 0);
      return this.put(`add ${r}, ${size} [${at(RO_PAGE)}]`);
    }
    const r32 = this.reg(32);
    const cross = (page: number) => hex(page - 1 - this.rng.below(3));
    if (k === 4) return this.put(`mov dword [${cross(RO_PAGE)}], ${r32}`);
    if (k === 5) return this.put(`mov ${r32}, dword [${cross(RO_PAGE)}]`);
    return this.put(`mov ${r32}, dword [${cross(NP_PAGE)}]`);
  }

  /** XLAT, CMPXCHG8B, LOOP/JECXZ, ENTER/LEAVE, SALC. */
  #misc(): string {
    const k = this.rng.below(this.mode === "pm32" ? 5 : 4);
    if (k === 0) {
      this.emit(`mov ebx, ${hex(DATA_BASE + 256 + this.rng.below(DATA_BYTES - 512))}`);
      return this.put("xlatb");
    }
    if (k === 1) {
      const m = this.mem(64, false).replace("qword ", "");
      if (/\b(e?[abcd]x)\b/.test(m)) return this.put("nop");
      if (this.rng.chance(0.5)) {
        // Make the compare succeed now and then: EDX:EAX from the operand.
        this.emit(`mov eax, ${m.replace("[", "dword [")}`);
        this.emit(`mov edx, ${m.replace("]", "+4]").replace("[", "dword [")}`);
      }
      // QEMU 7.2 computes the flags CMPXCHG8B keeps from a stale lazy-flags state (they
      // come out as garbage, up to 0x7fffffff with IF, TF and IOPL when a PUSHF or an
      // exception frame takes them): ZF goes to a register at once and a CMP defines the
      // rest, so nothing reads the others (docs/cpu-differential.md, "the oracle's bugs").
      const insn = this.put(`${this.rng.chance(0.3) ? "lock " : ""}cmpxchg8b qword ${m}`);
      this.emit(`setz ${this.rng.pick(["al", "bl", "cl", "dl"])}`);
      this.emit(`cmp ${this.rng.pick(R32)}, ${hex(edgeValue(this.rng))}`);
      this.flags(0, STATUS, 0);
      return insn;
    }
    if (k === 2) {
      const op = this.rng.pick(["loop", "loope", "loopne", "jecxz"]);
      const a16 = this.mode === "pm32" && this.rng.chance(0.3);
      const count = this.rng.pick(a16 ? [0, 1, 2, 5, 0xffff] : [0, 1, 2, 5, 0x10000, 0x10001]);
      this.emit(`mov ${a16 ? "cx" : "ecx"}, ${hex(count)}`);
      const r = this.rng.pick(["eax", "ebx", "edx", "esi", "edi"]);
      this.emit("@top:");
      this.emit(`add ${r}, ${hex(this.rng.pick([1, 0xffffffff, 3, 0x80000000]))}`);
      // Only small counts loop back; the others test the count and fall through.
      const back = op !== "jecxz" && count >= 1 && count <= 5;
      const target = back ? "@top" : "@next";
      const insn = op === "jecxz"
        ? `${a16 ? "jcxz" : "jecxz"} ${target}`
        : `${a16 ? "a16 " : ""}${op} ${target}`;
      this.emit(insn);
      this.emit("@next:");
      this.flags(0, STATUS, 0);
      return insn;
    }
    if (k === 3) {
      const size = this.rng.pick([0, 4, 16, 100]);
      this.emit(`enter ${size}, 0`);
      this.emit(
        `mov ${this.mode === "long" ? "qword" : "dword"} [${this.mode === "long" ? "rbp" : "ebp"}-${
          size + 4
        }], ${edgeValue(this.rng) & 0x7fffffff}`,
      );
      this.emit("leave");
      return `enter ${size}, 0; leave`;
    }
    this.flags(CF, 0, 0);
    return this.put("salc");
  }

  #cond(): string {
    const [cc, reads] = this.rng.pick(CONDS);
    this.flags(reads, 0, 0);
    const form = this.rng.below(3);
    let insn: string;
    if (form === 0) {
      const w = this.rng.pick<Width>(this.mode === "long" ? [16, 32, 64] : [16, 32]);
      insn = `cmov${cc} ${this.reg(w)}, ${this.rm(w)}`;
      this.emit(insn);
    } else if (form === 1) {
      insn = `set${cc} ${this.rm(8)}`;
      this.emit(insn);
    } else {
      insn = `j${cc} @skip`;
      this.emit(insn);
      // The skipped instruction leaves the flags alone.
      this.emit(`mov ${this.reg(32)}, ${hex(edgeValue(this.rng))}`);
      this.emit("@skip:");
    }
    return insn;
  }

  #bit(): string {
    const op = this.rng.pick(["bt", "bts", "btr", "btc", "bsf", "bsr"]);
    const w = this.rng.pick<Width>(this.mode === "long" ? [16, 32, 64] : [16, 32]);
    let insn: string;
    if (op === "bsf" || op === "bsr") {
      // A zero source leaves the destination as it was in QEMU (AMD documents it).
      insn = `${op} ${this.reg(w)}, ${this.rm(w)}`;
      this.emit(insn);
      this.flags(0, ZF, CF | OF | SF | AF | PF);
      return insn;
    }
    const form = this.rng.below(4);
    if (form < 2) {
      insn = `${op} ${this.rm(w)}, ${this.rng.below(256)}`;
    } else if (form === 2) {
      insn = `${op} ${this.reg(w)}, ${this.reg(w)}`;
    } else {
      // A register bit offset reaches memory beyond the operand: keep it within 0..255.
      const r = this.rng.pick(["eax", "ebx", "ecx", "edx"]);
      const m = this.mem(w, false);
      if (m.includes(r)) return this.#bit();
      this.emit(`movzx ${r}, ${LOW8[r]}`);
      const rr = w === 16 ? r.slice(1) : w === 64 ? "r" + r.slice(1) : r;
      insn = `${op} ${m}, ${rr}`;
    }
    this.emit(insn);
    this.flags(0, CF, OF | SF | AF | PF);
    return insn;
  }

  #xchg(): string {
    const op = this.rng.pick(["xchg", "cmpxchg", "xadd", "bswap"]);
    const w = this.width();
    let insn: string;
    if (op === "bswap") {
      insn = `bswap ${this.reg(this.mode === "long" && this.rng.chance(0.3) ? 64 : 32)}`;
    } else {
      const lock = op !== "xchg" && this.rng.chance(0.3);
      const dst = this.rm(w);
      insn = `${lock && dst.includes("[") ? "lock " : ""}${op} ${dst}, ${this.reg(w)}`;
    }
    this.emit(insn);
    if (op === "cmpxchg" || op === "xadd") this.flags(0, STATUS, 0);
    return insn;
  }

  #stack(): string {
    const k = this.rng.below(this.mode === "long" ? 3 : 5);
    const r = this.mode === "long" ? this.rng.pick(R64) : this.rng.pick(R32);
    if (k === 0) {
      // PUSHF with the undefined flags masked off in the register it lands in.
      // Only the defined status flags and DF: the system flags are constant here, and
      // QEMU's CMPXCHG8B bug would show in them first.
      const keep = ~this.undefNow() & (STATUS | 0x400 | 0x2);
      this.emit(this.mode === "long" ? "pushfq" : "pushfd");
      this.emit(`pop ${r}`);
      const insn = `and ${r}, ${hex(keep & 0x7fffffff)}`;
      this.emit(insn);
      this.flags(0, STATUS & ~AF, AF);
      return "pushf";
    }
    if (k === 1) {
      this.emit(`push ${this.mode === "long" ? "qword" : "dword"} ${edgeValue(this.rng) | 0}`);
      this.emit(`pop ${r}`);
      return `push imm; pop ${r}`;
    }
    if (k === 2) {
      const keep = ~this.undefNow() & 0xff;
      this.emit("lahf");
      this.emit(`and ah, ${hex(keep)}`);
      this.flags(0, STATUS & ~AF, AF);
      if (this.rng.chance(0.5)) {
        this.emit("sahf");
        this.flags(0, SF | ZF | AF | PF | CF, 0);
      }
      return "lahf/sahf";
    }
    if (k === 3) {
      this.emit("pushad");
      this.emit(
        `mov dword [esp+${this.rng.pick([0, 4, 8, 12, 16, 28])}], ${hex(edgeValue(this.rng))}`,
      );
      this.emit("popad");
      return "pushad; mov [esp+n]; popad";
    }
    this.emit("pushaw");
    this.emit(
      `mov word [esp+${this.rng.pick([0, 2, 6, 8, 14])}], ${hex(edgeValue(this.rng) & 0xffff)}`,
    );
    this.emit("popaw");
    return "pushaw; mov [esp+n]; popaw";
  }

  #lea(): string {
    const w = this.rng.pick<Width>(this.mode === "long" ? [16, 32, 64] : [16, 32]);
    const dst = this.reg(w);
    const form = this.rng.below(this.mode === "long" ? 6 : 8);
    const disp = () =>
      this.rng.pick([
        "",
        `+${this.rng.below(128)}`,
        `-${this.rng.below(129)}`,
        `+${hex(this.rng.u32() & 0x7fffffff)}`,
      ]);
    const base = this.mode === "long" && this.rng.chance(0.5)
      ? this.rng.pick(R64)
      : this.rng.pick([...R32, "esp"]);
    const regsOf = (b: string) => b.startsWith("r") ? R64 : R32;
    const index = this.rng.pick(regsOf(base));
    const scale = this.rng.pick([1, 2, 4, 8]);
    let ea: string;
    if (form === 0) ea = `[${base}]`;
    else if (form === 1) ea = `[${base}${disp()}]`;
    else if (form === 2) ea = `[${base}+${index}*${scale}${disp()}]`;
    else if (form === 3) ea = `[${index}*${scale}${disp()}]`;
    else if (form === 4) ea = `[${hex(this.rng.u32())}]`;
    else if (form === 5) ea = `[${index}*${scale}+${base}${disp()}]`;
    else if (form === 6) {
      // 16-bit addressing forms (SDM vol. 2 table 2-1).
      const d = this.rng.pick([
        "",
        `+${this.rng.below(128)}`,
        `-${this.rng.below(129)}`,
        `+${hex(this.rng.below(0x10000))}`,
      ]);
      ea = `[${this.rng.pick(["bx+si", "bx+di", "bp+si", "bp+di", "si", "di", "bx", "bp"])}${d}]`;
    } else {
      const insn = `a16 lea ${dst}, [${hex(this.rng.below(0x10000))}]`;
      this.emit(insn);
      return insn;
    }
    const insn = `lea ${dst}, ${ea}`;
    this.emit(insn);
    return insn;
  }

  #move(): string {
    const k = this.rng.below(6);
    let insn: string;
    if (k === 0) {
      const w = this.rng.pick([16, 32] as Width[]);
      insn = `${this.rng.pick(["movzx", "movsx"])} ${this.reg(w)}, ${this.rm(8)}`;
    } else if (k === 1) {
      insn = `${this.rng.pick(["movzx", "movsx"])} ${this.reg(32)}, ${this.rm(16)}`;
    } else if (k === 2) {
      insn = this.rng.pick(
        this.mode === "long"
          ? ["cbw", "cwde", "cwd", "cdq", "cdqe", "cqo"]
          : ["cbw", "cwde", "cwd", "cdq"],
      );
    } else if (k === 3) {
      const w = this.width();
      insn = `mov ${this.rm(w)}, ${this.imm(w === 64 ? 32 : w)}`;
    } else if (k === 4) {
      insn = this.rng.pick(["clc", "stc", "cmc"]);
      this.flags(insn === "cmc" ? CF : 0, CF, 0);
    } else {
      const w = this.width();
      insn = this.rng.chance(0.5)
        ? `mov ${this.reg(w)}, ${this.mem(w)}`
        : `mov ${this.mem(w)}, ${this.reg(w)}`;
    }
    this.emit(insn);
    return insn;
  }
}
