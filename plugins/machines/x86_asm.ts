// A small x86 code emitter (16- and 32-bit modes) with labels and fixups, for boot ROMs and test guests

import {
  type Condition,
  CONDITIONS,
  type CtrlReg,
  type Imm,
  type LabelRef,
  type Mem,
  type Operand,
  type Reg,
  type SegReg,
} from "./x86_operands.ts";

export * from "./x86_operands.ts";

/** The ALU group-1 operations in ModRM /digit order. */
const ALU_OPS = { add: 0, or: 1, adc: 2, sbb: 3, and: 4, sub: 5, xor: 6, cmp: 7 } as const;
type AluOp = keyof typeof ALU_OPS;
/** The shift/rotate group-2 operations in /digit order. */
const SHIFT_OPS = { rol: 0, ror: 1, shl: 4, shr: 5, sar: 7 } as const;
type ShiftOp = keyof typeof SHIFT_OPS;

/** Segment override prefixes indexed by segment register number. */
const SEGMENT_PREFIXES = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];

type FixupKind = "rel8" | "rel16" | "rel32" | "abs16" | "abs32";
interface Fixup {
  at: number;
  kind: FixupKind;
  label: string;
  addend: number;
  /** Offset of the byte after the instruction (relative fixups count from there). */
  end: number;
}

function isImm(op: Operand): op is Imm {
  return typeof op === "number" || typeof op === "string" || !("kind" in op);
}
function fitsI8(n: number): boolean {
  return n >= -128 && n <= 127;
}

/**
 * Emits x86 machine code into a byte buffer. Labels may be used before they are
 * defined; {@linkcode assemble} patches them. Forward jumps are near (rel32, or rel16
 * in 16-bit mode) unless `short` is asked for; backward jumps take the short form when
 * it fits, as nasm does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Assembler, ECX } from "./x86_asm.ts";
 *
 * const a = new Assembler({ bits: 32, origin: 0x100000 });
 * a.mov(ECX, 3);
 * a.label("again");
 * a.loop("again");
 * a.hlt();
 * assert.deepEqual([...a.assemble()], [0xb9, 3, 0, 0, 0, 0xe2, 0xfe, 0xf4]);
 * ```
 */
export class Assembler {
  #bytes: number[] = [];
  #labels = new Map<string, number>();
  #fixups: Fixup[] = [];
  #bits: 16 | 32;
  #origin: number;

  constructor(options: { bits?: 16 | 32; origin?: number } = {}) {
    this.#bits = options.bits ?? 32;
    this.#origin = options.origin ?? 0;
  }

  /** The address the next byte will have. */
  get here(): number {
    return this.#origin + this.#bytes.length;
  }

  /** Bytes emitted so far. */
  get length(): number {
    return this.#bytes.length;
  }

  /** Switches between 16-bit and 32-bit code (nasm's `bits`). */
  bits(mode: 16 | 32): this {
    this.#bits = mode;
    return this;
  }

  /** Defines `name` at the current address. */
  label(name: string): this {
    if (this.#labels.has(name)) throw new RangeError(`Label '${name}' is defined twice`);
    this.#labels.set(name, this.here);
    return this;
  }

  /** The address of a defined label. */
  address(name: string): number {
    const a = this.#labels.get(name);
    if (a === undefined) throw new RangeError(`Label '${name}' is not defined`);
    return a;
  }

  /** Resolves every fixup and returns the code. */
  assemble(): Uint8Array {
    const out = Uint8Array.from(this.#bytes);
    const view = new DataView(out.buffer);
    for (const f of this.#fixups) {
      const target = this.address(f.label) + f.addend;
      const rel = target - (this.#origin + f.end);
      switch (f.kind) {
        case "rel8":
          if (!fitsI8(rel)) throw new RangeError(`Short jump to '${f.label}' is out of range`);
          view.setInt8(f.at, rel);
          break;
        case "rel16":
          view.setInt16(f.at, rel, true);
          break;
        case "rel32":
          view.setInt32(f.at, rel, true);
          break;
        case "abs16":
          view.setUint16(f.at, target & 0xffff, true);
          break;
        case "abs32":
          view.setUint32(f.at, target >>> 0, true);
          break;
      }
    }
    return out;
  }

  // ---- data directives ----

  /** Bytes (`db`). */
  db(...values: (number | Uint8Array)[]): this {
    for (const v of values) {
      if (typeof v === "number") this.#bytes.push(v & 0xff);
      else for (const b of v) this.#bytes.push(b);
    }
    return this;
  }

  /** Little-endian 16-bit words (`dw`). */
  dw(...values: number[]): this {
    for (const v of values) this.#le(v, 2);
    return this;
  }

  /** Little-endian 32-bit words (`dd`); a label gives its address. */
  dd(...values: Imm[]): this {
    for (const v of values) this.#imm(v, 4);
    return this;
  }

  /** ASCII text, optionally NUL-terminated. */
  ascii(text: string, options: { nul?: boolean } = {}): this {
    for (const b of new TextEncoder().encode(text)) this.#bytes.push(b);
    if (options.nul) this.#bytes.push(0);
    return this;
  }

  /** Pads with `fill` up to a multiple of `alignment` bytes (of the address). */
  align(alignment: number, fill = 0): this {
    while (this.here % alignment !== 0) this.#bytes.push(fill);
    return this;
  }

  /** `count` bytes of `fill` (nasm's `times count db fill`). */
  fill(count: number, fill = 0): this {
    for (let i = 0; i < count; i++) this.#bytes.push(fill);
    return this;
  }

  // ---- moves ----

  /** `mov` between registers, memory, immediates, segment and control registers. */
  mov(dst: Operand, src: Operand): this {
    if (isImm(dst)) throw new TypeError("mov cannot write an immediate");
    if (dst.kind === "sreg") return this.#modrm([0x8e], this.#gpr(src, 16), dst.code, 16, false);
    if (dst.kind === "creg") return this.#crMove(0x22, dst, src);
    if (!isImm(src) && src.kind === "sreg") {
      // A register destination takes the prefix of its width; memory is always 16 bits.
      const bits = dst.kind === "reg" ? dst.bits : 16;
      return this.#modrm([0x8c], dst, src.code, bits, dst.kind === "reg");
    }
    if (!isImm(src) && src.kind === "creg") return this.#crMove(0x20, src, dst);
    if (isImm(src)) {
      if (dst.kind === "reg") {
        this.#osize(dst.bits);
        this.#bytes.push((dst.bits === 8 ? 0xb0 : 0xb8) + dst.code);
        return this.#imm(src, dst.bits / 8);
      }
      const bits = this.#width(dst);
      return this.#modrm([bits === 8 ? 0xc6 : 0xc7], dst, 0, bits, true).#imm(src, bits / 8);
    }
    if (src.kind !== "reg" && dst.kind !== "reg") throw new TypeError("mov needs a register");
    // The accumulator has short forms for an absolute address (moffs): A0-A3.
    const acc = src.kind === "reg" ? src : dst as Reg;
    const moffs = src.kind === "reg" ? dst : src;
    if (acc.code === 0 && moffs.kind === "mem" && !moffs.base && !moffs.index) {
      if (moffs.seg) this.#bytes.push(SEGMENT_PREFIXES[moffs.seg.code]);
      this.#osize(acc.bits);
      this.#bytes.push((src === acc ? 0xa2 : 0xa0) + (acc.bits === 8 ? 0 : 1));
      return this.#imm(moffs.disp, this.#bits / 8);
    }
    if (src.kind === "reg") {
      return this.#modrm([src.bits === 8 ? 0x88 : 0x89], dst, src.code, src.bits, true);
    }
    const d = dst as Reg;
    return this.#modrm([d.bits === 8 ? 0x8a : 0x8b], src, d.code, d.bits, true);
  }

  /** `movzx r, r/m8|r/m16`. */
  movzx(dst: Reg, src: Reg | Mem): this {
    return this.#modrm([0x0f, this.#width(src) === 8 ? 0xb6 : 0xb7], src, dst.code, dst.bits, true);
  }

  /** `movsx r, r/m8|r/m16`. */
  movsx(dst: Reg, src: Reg | Mem): this {
    return this.#modrm([0x0f, this.#width(src) === 8 ? 0xbe : 0xbf], src, dst.code, dst.bits, true);
  }

  /** `lea r, [mem]`. */
  lea(dst: Reg, src: Mem): this {
    return this.#modrm([0x8d], src, dst.code, dst.bits, true);
  }

  // ---- arithmetic ----

  add(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("add", dst, src);
  }
  or(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("or", dst, src);
  }
  adc(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("adc", dst, src);
  }
  sbb(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("sbb", dst, src);
  }
  and(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("and", dst, src);
  }
  sub(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("sub", dst, src);
  }
  xor(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("xor", dst, src);
  }
  cmp(dst: Reg | Mem, src: Reg | Mem | Imm): this {
    return this.#alu("cmp", dst, src);
  }

  /** `test r/m, r` or `test r/m, imm`. */
  test(dst: Reg | Mem, src: Reg | Imm): this {
    const bits = this.#width(dst);
    if (!isImm(src)) return this.#modrm([bits === 8 ? 0x84 : 0x85], dst, src.code, bits, true);
    if (dst.kind === "reg" && dst.code === 0) {
      this.#osize(bits);
      this.#bytes.push(bits === 8 ? 0xa8 : 0xa9);
    } else this.#modrm([bits === 8 ? 0xf6 : 0xf7], dst, 0, bits, true);
    return this.#imm(src, bits / 8);
  }

  inc(dst: Reg | Mem): this {
    return this.#incDec(dst, 0);
  }
  dec(dst: Reg | Mem): this {
    return this.#incDec(dst, 1);
  }
  not(dst: Reg | Mem): this {
    return this.#group3(dst, 2);
  }
  neg(dst: Reg | Mem): this {
    return this.#group3(dst, 3);
  }
  /** Unsigned `mul r/m` (EDX:EAX = EAX * src). */
  mul(src: Reg | Mem): this {
    return this.#group3(src, 4);
  }
  /** Unsigned `div r/m` (EAX = EDX:EAX / src, EDX = remainder). */
  div(src: Reg | Mem): this {
    return this.#group3(src, 6);
  }
  /** `imul r, r/m`. */
  imul(dst: Reg, src: Reg | Mem): this {
    return this.#modrm([0x0f, 0xaf], src, dst.code, dst.bits, true);
  }

  shl(dst: Reg | Mem, count: number | Reg): this {
    return this.#shift("shl", dst, count);
  }
  shr(dst: Reg | Mem, count: number | Reg): this {
    return this.#shift("shr", dst, count);
  }
  sar(dst: Reg | Mem, count: number | Reg): this {
    return this.#shift("sar", dst, count);
  }
  rol(dst: Reg | Mem, count: number | Reg): this {
    return this.#shift("rol", dst, count);
  }
  ror(dst: Reg | Mem, count: number | Reg): this {
    return this.#shift("ror", dst, count);
  }

  // ---- control flow ----

  /** `jmp label` (near or short), or `jmp r/m` (indirect). */
  jmp(target: string | Reg | Mem, options: { short?: boolean } = {}): this {
    if (typeof target !== "string") return this.#modrm([0xff], target, 4, this.#bits, false);
    return this.#branch([0xeb], [0xe9], target, options.short ?? false);
  }

  /** `jcc label`: `cond` is `e`, `ne`, `b`, `l`, ... */
  jcc(cond: Condition, target: string, options: { short?: boolean } = {}): this {
    const tttn = CONDITIONS[cond];
    return this.#branch([0x70 + tttn], [0x0f, 0x80 + tttn], target, options.short ?? false);
  }

  /** `call label` (near) or `call r/m` (indirect). */
  call(target: string | Reg | Mem): this {
    if (typeof target !== "string") return this.#modrm([0xff], target, 2, this.#bits, false);
    this.#bytes.push(0xe8);
    return this.#rel(target, this.#bits === 16 ? "rel16" : "rel32");
  }

  /** `ret`, or `ret imm16` popping extra bytes. */
  ret(popBytes = 0): this {
    if (popBytes === 0) return this.db(0xc3);
    this.#bytes.push(0xc2);
    return this.#le(popBytes, 2);
  }

  /** `loop label` (decrement ECX/CX, jump while non-zero; rel8 only). */
  loop(target: string): this {
    this.#bytes.push(0xe2);
    return this.#rel(target, "rel8");
  }

  /** `jmp far selector:offset` (ptr16:32 in 32-bit code, ptr16:16 unless `bits` says 32). */
  jmpFar(selector: number, offset: Imm, options: { bits?: 16 | 32 } = {}): this {
    const bits = options.bits ?? this.#bits;
    this.#osize(bits);
    this.#bytes.push(0xea);
    this.#imm(offset, bits / 8);
    return this.#le(selector, 2);
  }

  // ---- stack ----

  push(src: Reg | SegReg | Imm): this {
    if (isImm(src)) {
      if (typeof src === "number" && fitsI8(src)) return this.db(0x6a, src);
      this.#bytes.push(0x68);
      return this.#imm(src, this.#bits / 8);
    }
    if (src.kind === "sreg") return this.#segPushPop(src, true);
    this.#osize(src.bits);
    return this.db(0x50 + src.code);
  }

  pop(dst: Reg | SegReg): this {
    if (dst.kind === "sreg") return this.#segPushPop(dst, false);
    this.#osize(dst.bits);
    return this.db(0x58 + dst.code);
  }

  pushad(): this {
    this.#osize(32);
    return this.db(0x60);
  }
  popad(): this {
    this.#osize(32);
    return this.db(0x61);
  }
  pushfd(): this {
    this.#osize(32);
    return this.db(0x9c);
  }
  popfd(): this {
    this.#osize(32);
    return this.db(0x9d);
  }

  // ---- strings ----

  /** `rep movsd`. */
  repMovsd(): this {
    this.#bytes.push(0xf3);
    return this.movsd();
  }
  /** `rep stosd`. */
  repStosd(): this {
    this.#bytes.push(0xf3);
    return this.stosd();
  }
  /** `rep movsb`. */
  repMovsb(): this {
    return this.db(0xf3, 0xa4);
  }
  /** `rep stosb`. */
  repStosb(): this {
    return this.db(0xf3, 0xaa);
  }
  movsb(): this {
    return this.db(0xa4);
  }
  movsd(): this {
    this.#osize(32);
    return this.db(0xa5);
  }
  stosb(): this {
    return this.db(0xaa);
  }
  stosd(): this {
    this.#osize(32);
    return this.db(0xab);
  }
  lodsb(): this {
    return this.db(0xac);
  }
  lodsd(): this {
    this.#osize(32);
    return this.db(0xad);
  }
  cld(): this {
    return this.db(0xfc);
  }
  std(): this {
    return this.db(0xfd);
  }

  // ---- port I/O and system ----

  /** `in al|ax|eax, dx` or `in al|ax|eax, imm8`. */
  in(dst: Reg, port: number | Reg): this {
    this.#osize(dst.bits);
    const wide = dst.bits === 8 ? 0 : 1;
    if (typeof port === "number") return this.db(0xe4 + wide, port);
    return this.db(0xec + wide);
  }

  /** `out dx, al|ax|eax` or `out imm8, al|ax|eax`. */
  out(port: number | Reg, src: Reg): this {
    this.#osize(src.bits);
    const wide = src.bits === 8 ? 0 : 1;
    if (typeof port === "number") return this.db(0xe6 + wide, port);
    return this.db(0xee + wide);
  }

  cli(): this {
    return this.db(0xfa);
  }
  sti(): this {
    return this.db(0xfb);
  }
  hlt(): this {
    return this.db(0xf4);
  }
  nop(): this {
    return this.db(0x90);
  }

  /**
   * `lgdt [mem]`. With a 16-bit operand size the CPU loads only 24 bits of the base;
   * `o32` adds the operand-size prefix in 16-bit code (nasm's `o32 lgdt`).
   */
  lgdt(src: Mem, options: { o32?: boolean } = {}): this {
    return this.#modrm([0x0f, 0x01], src, 2, options.o32 ? 32 : this.#bits, true);
  }
  /** `lidt [mem]`; `o32` as for {@linkcode lgdt}. */
  lidt(src: Mem, options: { o32?: boolean } = {}): this {
    return this.#modrm([0x0f, 0x01], src, 3, options.o32 ? 32 : this.#bits, true);
  }
  /** `invlpg [mem]`. */
  invlpg(src: Mem): this {
    return this.#modrm([0x0f, 0x01], src, 7, this.#bits, false);
  }

  // ---- encoding helpers ----

  #le(value: number, bytes: number): this {
    for (let i = 0; i < bytes; i++) this.#bytes.push((value >>> (8 * i)) & 0xff);
    return this;
  }

  /** An immediate or absolute label address of `bytes` bytes. */
  #imm(value: Imm, bytes: number): this {
    if (typeof value === "number") return this.#le(value, bytes);
    const { label, addend } = typeof value === "string" ? { label: value, addend: 0 } : value;
    const at = this.#bytes.length;
    this.#le(0, bytes);
    this.#fixups.push({ at, kind: bytes === 2 ? "abs16" : "abs32", label, addend, end: 0 });
    return this;
  }

  #rel(target: string, kind: "rel8" | "rel16" | "rel32"): this {
    const at = this.#bytes.length;
    const size = kind === "rel8" ? 1 : kind === "rel16" ? 2 : 4;
    this.#le(0, size);
    this.#fixups.push({ at, kind, label: target, addend: 0, end: at + size });
    return this;
  }

  #branch(short: number[], near: number[], target: string, forceShort: boolean): this {
    const known = this.#labels.get(target);
    if (forceShort || (known !== undefined && fitsI8(known - (this.here + short.length + 1)))) {
      this.db(...short);
      return this.#rel(target, "rel8");
    }
    this.db(...near);
    return this.#rel(target, this.#bits === 16 ? "rel16" : "rel32");
  }

  /** The operand-size prefix when `bits` differs from the mode's default. */
  #osize(bits: number): void {
    if (bits !== 8 && bits !== this.#bits) this.#bytes.push(0x66);
  }

  #width(op: Reg | Mem): 8 | 16 | 32 {
    if (op.kind === "reg") return op.bits;
    if (op.bits === undefined) throw new TypeError("Memory operand needs a size (bits)");
    return op.bits;
  }

  #gpr(op: Operand, bits: number): Reg | Mem {
    if (isImm(op) || (op.kind !== "reg" && op.kind !== "mem")) {
      throw new TypeError(`Operand must be a ${bits}-bit register or memory`);
    }
    return op;
  }

  #crMove(opcode: number, cr: CtrlReg, gpr: Operand): this {
    if (isImm(gpr) || gpr.kind !== "reg" || gpr.bits !== 32) {
      throw new TypeError("mov to or from a control register needs a 32-bit register");
    }
    return this.db(0x0f, opcode, 0xc0 | (cr.code << 3) | gpr.code);
  }

  #segPushPop(s: SegReg, push: boolean): this {
    if (s.code >= 4) return this.db(0x0f, (push ? 0xa0 : 0xa1) + (s.code - 4) * 8);
    if (!push && s.code === 1) throw new TypeError("pop cs does not exist");
    return this.db(s.code * 8 + (push ? 6 : 7));
  }

  #alu(op: AluOp, dst: Reg | Mem, src: Reg | Mem | Imm): this {
    const n = ALU_OPS[op];
    const bits = isImm(src) ? this.#width(dst) : src.kind === "reg" ? src.bits : this.#width(dst);
    if (!isImm(src)) {
      if (src.kind === "reg") {
        return this.#modrm([(n << 3) | (bits === 8 ? 0 : 1)], dst, src.code, bits, true);
      }
      if (dst.kind !== "reg") throw new TypeError(`${op} needs a register operand`);
      return this.#modrm([(n << 3) | (bits === 8 ? 2 : 3)], src, dst.code, bits, true);
    }
    if (bits === 8) {
      if (dst.kind === "reg" && dst.code === 0) return this.db((n << 3) | 4).#imm(src, 1);
      return this.#modrm([0x80], dst, n, 8, true).#imm(src, 1);
    }
    if (typeof src === "number" && fitsI8(src | 0)) {
      return this.#modrm([0x83], dst, n, bits, true).#le(src, 1);
    }
    if (dst.kind === "reg" && dst.code === 0) {
      this.#osize(bits);
      return this.db((n << 3) | 5).#imm(src, bits / 8);
    }
    return this.#modrm([0x81], dst, n, bits, true).#imm(src, bits / 8);
  }

  #incDec(dst: Reg | Mem, digit: number): this {
    const bits = this.#width(dst);
    if (dst.kind === "reg" && bits !== 8) {
      this.#osize(bits);
      return this.db(0x40 + digit * 8 + dst.code);
    }
    return this.#modrm([bits === 8 ? 0xfe : 0xff], dst, digit, bits, true);
  }

  #group3(dst: Reg | Mem, digit: number): this {
    const bits = this.#width(dst);
    return this.#modrm([bits === 8 ? 0xf6 : 0xf7], dst, digit, bits, true);
  }

  #shift(op: ShiftOp, dst: Reg | Mem, count: number | Reg): this {
    const bits = this.#width(dst);
    const base = bits === 8 ? 0 : 1;
    const n = SHIFT_OPS[op];
    if (typeof count !== "number") return this.#modrm([0xd2 + base], dst, n, bits, true);
    if (count === 1) return this.#modrm([0xd0 + base], dst, n, bits, true);
    return this.#modrm([0xc0 + base], dst, n, bits, true).#le(count, 1);
  }

  /**
   * Emits prefixes, `opcode`, ModRM (with SIB and displacement) for r/m operand `rm`
   * and the reg field `regField`. `sized` adds the operand-size prefix for `bits`.
   */
  #modrm(opcode: number[], rm: Reg | Mem, regField: number, bits: number, sized: boolean): this {
    if (rm.kind === "mem" && rm.seg) {
      this.#bytes.push(SEGMENT_PREFIXES[rm.seg.code]);
    }
    const addr16 = rm.kind === "mem" && this.#bits === 16 && this.#uses16BitAddressing(rm);
    if (sized) this.#osize(bits);
    if (rm.kind === "mem" && this.#bits === 16 && !addr16) this.#bytes.push(0x67);
    this.#bytes.push(...opcode);
    if (rm.kind === "reg") {
      this.#bytes.push(0xc0 | (regField << 3) | rm.code);
      return this;
    }
    return addr16 ? this.#mem16(rm, regField) : this.#mem32(rm, regField);
  }

  #uses16BitAddressing(m: Mem): boolean {
    if (m.index) return false;
    return !m.base || m.base.bits === 16;
  }

  /** 16-bit ModRM: only `[disp16]` and `[bx|si|di|bp + disp]` are offered. */
  #mem16(m: Mem, regField: number): this {
    const r = regField << 3;
    if (!m.base) {
      this.#bytes.push(r | 6);
      return this.#imm(m.disp, 2);
    }
    const rmCode = { 6: 4, 7: 5, 5: 6, 3: 7 }[m.base.code as 3 | 5 | 6 | 7];
    if (rmCode === undefined) throw new TypeError(`[${m.base.name}] is not a 16-bit address`);
    return this.#dispForm(m.disp, r | rmCode, rmCode === 6, 2);
  }

  #mem32(m: Mem, regField: number): this {
    const r = regField << 3;
    if (!m.base && !m.index) {
      this.#bytes.push(r | 5);
      return this.#imm(m.disp, 4);
    }
    if (m.index) {
      if (m.index.code === 4) throw new TypeError("esp cannot be an index register");
      const ss = { 1: 0, 2: 1, 4: 2, 8: 3 }[m.scale ?? 1];
      if (!m.base) {
        this.#bytes.push(r | 4, (ss << 6) | (m.index.code << 3) | 5);
        return this.#imm(m.disp, 4);
      }
      this.#dispPrefix(m.disp, r | 4, m.base.code === 5);
      this.#bytes.push((ss << 6) | (m.index.code << 3) | m.base.code);
      return this.#dispValue(m.disp, m.base.code === 5, 4);
    }
    const base = m.base!;
    if (base.code === 4) {
      this.#dispPrefix(m.disp, r | 4, false);
      this.#bytes.push(0x24);
      return this.#dispValue(m.disp, false, 4);
    }
    return this.#dispForm(m.disp, r | base.code, base.code === 5, 4);
  }

  /** ModRM byte with mod chosen from the displacement, then the displacement. */
  #dispForm(disp: number | LabelRef, modrm: number, needsDisp: boolean, size: number): this {
    this.#dispPrefix(disp, modrm, needsDisp);
    return this.#dispValue(disp, needsDisp, size);
  }

  #dispPrefix(disp: number | LabelRef, modrm: number, needsDisp: boolean): void {
    if (typeof disp !== "number") this.#bytes.push(0x80 | modrm);
    else if (disp === 0 && !needsDisp) this.#bytes.push(modrm);
    else if (fitsI8(disp)) this.#bytes.push(0x40 | modrm);
    else this.#bytes.push(0x80 | modrm);
  }

  #dispValue(disp: number | LabelRef, needsDisp: boolean, size: number): this {
    if (typeof disp !== "number") return this.#imm(disp, size);
    if (disp === 0 && !needsDisp) return this;
    if (fitsI8(disp)) return this.#le(disp, 1);
    return this.#le(disp, size);
  }
}
