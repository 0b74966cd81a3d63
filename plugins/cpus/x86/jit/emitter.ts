// Decoder and JavaScript emitter for one translated block of 32-bit guest code

import { DS, LZ_ADD, LZ_LOGIC, LZ_SUB, SS } from "../state.ts";
import { translateInsn } from "./insns.ts";
import {
  cfExpr,
  conditionExpr,
  flagCode,
  FLAGS_IN_CPU,
  type FlagState,
  produced,
} from "./flag_expr.ts";

/** Longest block in instructions (longer runs continue in the next block). */
export const MAX_INSNS = 64;

/** Thrown by the decoder when an instruction runs past the bytes it may read. */
const TRUNCATED = new Error("instruction crosses the fetch window");

/** Placeholders filled in once the block is complete. */
export const N_MARK = "%N%", WB_MARK = "%WB%";

/** A decoded ModRM operand: register fields, or the effective address of memory. */
export interface ModRm {
  mod: number;
  reg: number;
  rm: number;
  /** Effective-offset expression (unsigned) for a memory operand. */
  ea: string;
  seg: number;
}

/** The result of translating one instruction: go on at `pos`, or the block ends here. */
export const NEXT = 1, END = 2;

/**
 * Decodes guest code from a fetch window (`bytes[base, base + avail)` holding CS offsets
 * from `winEip`) starting at window position `startPos`, and emits the body of the block
 * function: straight-line code that follows direct jumps and calls within the window,
 * returns to a call made in the same block, leaves by side exits, and loops in place when
 * control comes back to the block start.
 */
export class Emitter {
  readonly lines: string[] = [];
  used = 0;
  written = 0;
  fl: FlagState = FLAGS_IN_CPU;
  /** Some instruction reads the flags the block was entered with. */
  readsEntryFlags = false;
  pos: number;
  /** Window positions of the lowest and past the highest byte decoded. */
  lo: number;
  hi: number;
  /** Return addresses of calls made in this block, innermost last. */
  readonly returns: number[] = [];
  i = 0;
  segOvr = -1;
  readonly eips: number[] = [];
  #body: string[] = [];

  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
    readonly avail: number,
    readonly winEip: number,
    readonly startPos: number,
  ) {
    this.pos = this.lo = this.hi = startPos;
  }

  /** EIP of the block start (int32). */
  get start(): number {
    return this.eipAt(this.startPos);
  }

  u8(): number {
    if (this.pos >= this.avail) throw TRUNCATED;
    if (this.pos >= this.hi) this.hi = this.pos + 1;
    return this.bytes[this.base + this.pos++];
  }
  s8(): number {
    return (this.u8() << 24) >> 24;
  }
  s32(): number {
    return this.u8() | (this.u8() << 8) | (this.u8() << 16) | (this.u8() << 24);
  }
  /** EIP of the byte at relative offset `p` (int32). */
  eipAt(p: number): number {
    return (this.winEip + p) | 0;
  }
  /** The window position of `eip`, or -1 outside the window. */
  posOf(eip: number): number {
    const p = (eip - this.winEip) >>> 0;
    return p < this.avail ? p : -1;
  }

  emit(line: string): void {
    this.#body.push(line);
  }
  reg(r: number): string {
    this.used |= 1 << r;
    return `r${r}`;
  }
  setReg(r: number, e: string): void {
    this.used |= 1 << r;
    this.written |= 1 << r;
    this.emit(`r${r} = ${e};`);
  }
  get8(r: number): string {
    return r < 4 ? `(${this.reg(r)} & 0xff)` : `((${this.reg(r - 4)} >> 8) & 0xff)`;
  }
  set8(r: number, e: string): void {
    if (r < 4) this.setReg(r, `(r${r} & ~0xff) | ((${e}) & 0xff)`);
    else this.setReg(r - 4, `(r${r - 4} & ~0xff00) | (((${e}) & 0xff) << 8)`);
  }
  /** Reads a register operand of `size` bits. */
  getR(r: number, size: number): string {
    return size === 8 ? this.get8(r) : size === 16 ? `(${this.reg(r)} & 0xffff)` : this.reg(r);
  }
  setR(r: number, size: number, e: string): void {
    if (size === 8) this.set8(r, e);
    else this.setReg(r, e);
  }

  modrm(): ModRm {
    const m = this.u8();
    const mod = m >> 6, reg = (m >> 3) & 7, rm = m & 7;
    if (mod === 3) return { mod, reg, rm, ea: "", seg: DS };
    const parts: string[] = [];
    let seg = DS;
    let disp = 0;
    if (rm === 4) {
      const sib = this.u8();
      const b = sib & 7, x = (sib >> 3) & 7, sc = sib >> 6;
      if (x !== 4) parts.push(sc !== 0 ? `(${this.reg(x)} << ${sc})` : this.reg(x));
      if (b === 5 && mod === 0) {
        disp = this.s32();
      } else {
        parts.push(this.reg(b));
        if (b === 4 || b === 5) seg = SS;
      }
    } else if (rm === 5 && mod === 0) {
      disp = this.s32();
    } else {
      parts.push(this.reg(rm));
      if (rm === 5) seg = SS;
    }
    if (mod === 1) disp += this.s8();
    else if (mod === 2) disp += this.s32();
    disp |= 0;
    if (disp !== 0 || parts.length === 0) parts.push(String(disp));
    const ea = parts.length === 1 && disp !== 0
      ? String(disp >>> 0)
      : `((${parts.join(" + ")}) >>> 0)`;
    return { mod, reg, rm, ea, seg: this.segOvr >= 0 ? this.segOvr : seg };
  }

  /**
   * The bookkeeping before a call that may fault or reach a device: the instruction
   * index for the fault handler and the retired clock devices read.
   */
  get sync(): string {
    return `k = ${this.i}, c.retired = rb + ${this.i}`;
  }

  /** Ends a memory-touching instruction: leave when something needs the boundary. */
  memEnd(nextPos: number): void {
    this.emit(`if (c.attention) { n = ${this.i + 1}; eip = ${this.eipAt(nextPos)}; break; }`);
  }

  /**
   * Binds `ea` (and the TLB slot of a DS or SS access) for a memory operand at offset
   * expression `off` through segment `seg`.
   */
  address(seg: number, off: string): void {
    this.emit(`const ea = ${off};`);
    if (seg === DS || seg === SS) {
      this.emit("const pg = ea >>> 12, ti = (pg & 1023) | tu, po = ea & 0xfff;");
    }
  }
  /**
   * A read of `size` bits at `ea`. DS and SS accesses take the TLB inline when both
   * segments are flat (base 0, limit 4 GiB, checked on entry), where a dword that does
   * not cross a page cannot break the limit; anything else goes through memory.ts.
   */
  rd(seg: number, size: number): string {
    const slow = `(${this.sync}, R${size}(c, ${seg}, ea))`;
    if (seg !== DS && seg !== SS) return slow;
    if (size === 8) return `(flat && TR[ti] === pg ? TB[ti][TO[ti] + po] : ${slow})`;
    if (size === 16) return slow;
    return `(flat && TR[ti] === pg && po <= 0xffc && ((TO[ti] + po) & 3) === 0 ? TI[ti][(TO[ti] + po) >> 2] : ${slow})`;
  }
  /** A write of `size` bits of `v` at `ea` (see {@linkcode rd}). */
  wr(seg: number, size: number, v: string): void {
    const slow = `{ ${this.sync}; W${size}(c, ${seg}, ea, ${v}); }`;
    if (seg !== DS && seg !== SS || size === 16) this.emit(slow);
    else if (size === 8) {
      this.emit(`if (flat && TW[ti] === pg) TB[ti][TO[ti] + po] = ${v}; else ${slow}`);
    } else {
      this.emit(
        `if (flat && TW[ti] === pg && po <= 0xffc && ((TO[ti] + po) & 3) === 0) TI[ti][(TO[ti] + po) >> 2] = ${v}; else ${slow}`,
      );
    }
  }

  /** Evaluates the ModRM operand `m` of `size` bits, binding `ea` first for memory. */
  readE(m: ModRm, size: number): string {
    if (m.mod === 3) return this.getR(m.rm, size);
    return this.rd(m.seg, size);
  }
  bindEa(m: ModRm): void {
    if (m.mod !== 3) this.address(m.seg, m.ea);
  }
  writeE(m: ModRm, size: number, v: string): void {
    if (m.mod === 3) this.setR(m.rm, size, v);
    else this.wr(m.seg, size, v);
  }

  setFlags(op: number, size: number, d: string, s: string, r: string, pureSub = false): void {
    this.fl = produced(op, size, pureSub);
    this.emit(`fd = ${d}; fs = ${s}; fr = ${r}; fst = ${flagCode(this.fl)};`);
  }
  readCf(): string {
    if (this.fl.op < 0) this.readsEntryFlags = true;
    return cfExpr(this.fl);
  }
  cond(cc: number): string {
    if (this.fl.op < 0) this.readsEntryFlags = true;
    return conditionExpr(this.fl, cc);
  }

  /** Emits group-1 `op` on `a`, `b`; binds `vr` to the result. */
  alu(op: number, size: number, a: string, b: string): void {
    const fix = size === 32 ? " | 0" : ` & ${size === 8 ? 0xff : 0xffff}`;
    this.emit(`const va = ${a}; const vb = ${b};`);
    let r: string;
    switch (op) {
      case 0:
        r = `(va + vb)${fix}`;
        break;
      case 1:
        r = "va | vb";
        break;
      case 2:
        this.emit(`const cin = ${this.readCf()};`);
        r = `(va + vb + cin)${fix}`;
        break;
      case 3:
        this.emit(`const cin = ${this.readCf()};`);
        r = `(va - vb - cin)${fix}`;
        break;
      case 4:
        r = "va & vb";
        break;
      case 6:
        r = "va ^ vb";
        break;
      default:
        r = `(va - vb)${fix}`;
    }
    this.emit(`const vr = ${r};`);
  }
  aluFlags(op: number, size: number): void {
    const lz = op === 0 || op === 2 ? LZ_ADD : op === 3 || op === 5 || op === 7 ? LZ_SUB : LZ_LOGIC;
    this.setFlags(lz, size, "va", "vb", "vr", op === 5 || op === 7);
  }

  /** INC (`dec` false) or DEC of the value in `va`; binds `vr`. */
  incDec(dec: boolean, size: number): void {
    const fix = size === 32 ? " | 0" : ` & ${size === 8 ? 0xff : 0xffff}`;
    this.emit(`const vr = (va ${dec ? "-" : "+"} 1)${fix};`);
  }
  /**
   * The flags of INC/DEC: CF stays what the previous producer made it. Rather than
   * computing it now, its operands move to `pd`, `ps`, `pr`, so a CF nobody reads
   * before the next producer costs nothing (see `FlagState`).
   */
  incDecFlags(dec: boolean, size: number): void {
    const f = this.fl;
    let keep = "", cfOp = f.cfOp, cfSize = f.cfSize;
    if (f.op < 0) {
      this.readsEntryFlags = true;
      keep = "fcf = getCF(c); ";
      cfOp = -1;
    } else if (!f.noCf) {
      cfOp = f.op;
      cfSize = f.size;
      if (f.op !== LZ_LOGIC) keep = "pd = fd; ps = fs; pr = fr; ";
    }
    this.fl = { op: dec ? LZ_SUB : LZ_ADD, size, noCf: true, pureSub: false, cfOp, cfSize };
    this.emit(`${keep}fd = va; fs = 1; fr = vr; fst = ${flagCode(this.fl)};`);
  }

  /** The CS limit check of a near jump to a constant target. */
  limitCheck(target: number): void {
    this.emit(`if (${target >>> 0} > lim) { k = ${this.i}; fault(c, 13, 0); }`);
  }

  /**
   * Leaves the block after this instruction with EIP = `target` (an expression, or a
   * constant checked against the CS limit), looping in place when it is the block start.
   */
  exitTo(target: number | string, checked = false): void {
    const m = this.i + 1;
    if (typeof target === "number") {
      if (!checked) this.limitCheck(target);
      if (target === this.start) {
        this.emit(
          `if (rb + ${m + "+" + N_MARK} <= end) { ${WB_MARK}rb += ${m}; continue; }`,
        );
      }
    }
    this.emit(`n = ${m}; eip = ${target}; break;`);
  }

  /** Continues translation at `target` when it lies in the window, else leaves there. */
  follow(target: number, checked = false): number {
    const p = this.posOf(target);
    if (p < 0 || target === this.start || this.i + 1 >= MAX_INSNS) {
      this.exitTo(target, checked);
      return END;
    }
    if (!checked) this.limitCheck(target);
    this.pos = p;
    if (p < this.lo) this.lo = p;
    return NEXT;
  }

  /** Translates up to MAX_INSNS instructions; returns how many, 0 when none. */
  run(): number {
    while (this.i < MAX_INSNS) {
      const at = this.pos;
      const saved = {
        fl: this.fl,
        used: this.used,
        written: this.written,
        r: this.readsEntryFlags,
        hi: this.hi,
        returns: [...this.returns],
      };
      this.#body = [];
      let kind = 0;
      try {
        kind = translateInsn(this);
      } catch (e) {
        if (e !== TRUNCATED) throw e;
      }
      if (kind === 0) {
        this.pos = at;
        this.fl = saved.fl;
        this.used = saved.used;
        this.written = saved.written;
        this.readsEntryFlags = saved.r;
        this.hi = saved.hi;
        this.returns.splice(0, this.returns.length, ...saved.returns);
        break;
      }
      this.eips.push(this.eipAt(at));
      this.lines.push(`{ // ${this.i}: ${this.eipAt(at) >>> 0}`, ...this.#body, "}");
      this.i++;
      if (kind === END) return this.i;
    }
    if (this.i > 0) this.lines.push(`n = ${this.i}; eip = ${this.eipAt(this.pos)};`);
    return this.i;
  }
}
