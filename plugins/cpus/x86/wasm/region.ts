// Region compiler: the code reachable from one entry inside one fetch window, as a wasm function

import { ARITH_FLAGS, CF, DS, LZ_ADD, LZ_LOGIC, LZ_SUB, SS } from "../state.ts";
import { Code, I32, I64, OP } from "./encoder.ts";
import { bit, cf, cond, type Flags } from "./flag_emit.ts";
import { translateInsn } from "./insns.ts";
import {
  IMP_RD,
  IMP_WR,
  L_A,
  L_B,
  L_BUDGET,
  L_CNT,
  L_D,
  L_E,
  L_EIP,
  L_F,
  L_LIN,
  L_M,
  L_N,
  L_NEXT,
  L_OP,
  L_R,
  L_REG,
  L_S,
  L_ST,
  L_SZ,
  L_T,
  L_TU,
  L_V,
} from "./locals.ts";
import {
  ST_EIP,
  ST_FLAGS,
  ST_LZDST,
  ST_LZMASK,
  ST_LZOP,
  ST_LZRES,
  ST_LZSIZE,
  ST_LZSRC,
  ST_REGS,
  ST_STATUS,
  ST_TLB,
  ST_TLBUSER,
} from "./ram.ts";

/** Function types: the region, then the helpers in import order. */
export const TYPES = [
  { params: [I32], results: [I32] },
  { params: [I32, I32, I32, I32], results: [I32] },
  { params: [I32, I32, I32, I32, I32], results: [] },
  { params: [I32], results: [I32] },
];
export const IMPORTS = [
  { name: "rd", type: 1 },
  { name: "wr", type: 2 },
  { name: "cond", type: 3 },
];

/** Most basic blocks and instructions in one region, and instructions per basic block. */
const MAX_BLOCKS = 48, MAX_REGION_INSNS = 600, MAX_BLOCK_INSNS = 64;

const N_LOCALS = 27;

/** What the compiler knows of the flags: null when they are only in the locals' run-time state. */

const TRUNCATED = new Error("instruction crosses the fetch window");
export const NEXT = 1, END = 2;
export { CONCRETE } from "./flag_emit.ts";
export * from "./locals.ts";

export interface ModRm {
  mod: number;
  reg: number;
  rm: number;
  base: number;
  index: number;
  scale: number;
  disp: number;
  seg: number;
}

/** The result: the function body and what the dispatcher needs to know about it. */
export interface RegionCode {
  body: Code;
  locals: number[];
  /** Window positions of the lowest and past the highest byte decoded. */
  lo: number;
  hi: number;
  /** Instructions of the entry block (a call needs at least this budget). */
  firstLen: number;
  instructions: number;
  blocks: number;
}

/**
 * Compiles the code reachable from window position `startPos` (direct jumps, branches,
 * calls and returns to those calls that stay in the window) into one function: guest
 * registers in locals, a `br_table` loop over the basic blocks, lazy flags whose
 * conditions are computed from the last producer's operands, and guest memory through
 * an inline TLB. Returns null when the first instruction is not translatable.
 *
 * The function takes the instruction budget and returns the instructions retired; it
 * leaves EIP, the registers and the lazy flags in the CPU's state area at `stateBase`.
 */
export function compileRegion(
  bytes: Uint8Array,
  base: number,
  avail: number,
  winEip: number,
  startPos: number,
  stateBase: number,
): RegionCode | null {
  const rc = new RegionCompiler(bytes, base, avail, winEip, stateBase);
  return rc.compile(startPos);
}

export class RegionCompiler {
  code = new Code();
  /** Window position of each basic block's start. */
  starts: number[] = [];
  byPos = new Map<number, number>();
  lens: number[] = [];
  /** Blocks cut at the size limit (they go on in the block at the next instruction). */
  cuts: boolean[] = [];
  cur = 0;
  /** Blocks that begin at the return address of a call inside the region. */
  returnBlocks = new Set<number>();
  discovering = true;
  total = 0;
  lo: number;
  hi: number;
  pos = 0;
  /** Index of the instruction in its basic block, and the block's length. */
  j = 0;
  len = 0;
  insnStart = 0;
  fl: Flags | null = null;
  segOvr = -1;
  /** Operand size of the instruction: 16 after a 66h prefix, else 32. */
  osz = 32;
  usedRegs = 0;
  writtenRegs = 0;
  lExit = 0;
  lLoop = 0;
  /** The instruction touched memory through a helper that may ask for the boundary. */
  slow = false;

  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
    readonly avail: number,
    readonly winEip: number,
    readonly sb: number,
  ) {
    this.lo = avail;
    this.hi = 0;
  }

  compile(startPos: number): RegionCode | null {
    // Pass 1: find the blocks (and their lengths) with a scratch body.
    this.blockAt(startPos);
    for (let i = 0; i < this.starts.length; i++) {
      this.code = new Code();
      this.lens[i] = 0;
      this.translateBlock(i);
    }
    if (this.lens[0] === 0) return null;
    this.discovering = false;
    const c = (this.code = new Code());
    const sb = this.sb;
    // Prologue: registers, flags and the TLB half from the state area.
    for (let r = 0; r < 8; r++) {
      if ((this.usedRegs >> r) & 1) c.i32(0).mem(OP.i32Load, sb + ST_REGS + 4 * r).set(L_REG + r);
    }
    const fl: [number, number][] = [
      [L_F, ST_FLAGS],
      [L_M, ST_LZMASK],
      [L_OP, ST_LZOP],
      [L_SZ, ST_LZSIZE],
      [L_D, ST_LZDST],
      [L_S, ST_LZSRC],
      [L_R, ST_LZRES],
    ];
    for (const [l, o] of fl) c.i32(0).mem(OP.i32Load, sb + o).set(l);
    c.i32(0).mem(OP.i32Load, sb + ST_TLBUSER).set(L_TU);
    this.lExit = c.open(OP.block);
    this.lLoop = c.open(OP.loop);
    const n = this.starts.length;
    const labels: number[] = [];
    for (let i = n - 1; i >= 0; i--) labels[i] = c.open(OP.block);
    c.get(L_NEXT).brTable(labels, labels[0]);
    for (let i = 0; i < n; i++) {
      c.end();
      this.translateBlock(i);
    }
    c.end(); // loop
    c.end(); // exit block
    // Epilogue.
    for (let r = 0; r < 8; r++) {
      if ((this.writtenRegs >> r) & 1) {
        c.i32(0).get(L_REG + r).mem(OP.i32Store, sb + ST_REGS + 4 * r);
      }
    }
    for (const [l, o] of fl) c.i32(0).get(l).mem(OP.i32Store, sb + o);
    c.i32(0).get(L_EIP).mem(OP.i32Store, sb + ST_EIP);
    c.get(L_CNT);
    return {
      body: c,
      locals: [...new Array(N_LOCALS).fill(I32), I64, I64, I32],
      lo: this.lo,
      hi: this.hi,
      firstLen: this.lens[0],
      instructions: this.lens.reduce((a, b) => a + b, 0),
      blocks: n,
    };
  }

  /** The block starting at window position `p`, made in the first pass while room is left. */
  blockAt(p: number): number {
    const i = this.byPos.get(p);
    if (i !== undefined || !this.discovering) return i ?? -1;
    if (this.starts.length >= MAX_BLOCKS || this.total >= MAX_REGION_INSNS) return -1;
    this.starts.push(p);
    this.byPos.set(p, this.starts.length - 1);
    return this.starts.length - 1;
  }

  eipAt(p: number): number {
    return (this.winEip + p) | 0;
  }
  posOf(eip: number): number {
    const p = (eip - this.winEip) >>> 0;
    return p < this.avail ? p : -1;
  }

  // ---- decoding
  u8(): number {
    if (this.pos >= this.avail) throw TRUNCATED;
    if (this.pos < this.lo) this.lo = this.pos;
    if (this.pos >= this.hi) this.hi = this.pos + 1;
    return this.bytes[this.base + this.pos++];
  }
  /** The next byte without consuming it, or -1 past the window. */
  peek(): number {
    return this.pos < this.avail ? this.bytes[this.base + this.pos] : -1;
  }
  s8(): number {
    return (this.u8() << 24) >> 24;
  }
  s32(): number {
    return this.u8() | (this.u8() << 8) | (this.u8() << 16) | (this.u8() << 24);
  }
  /** An immediate of the operand size (zero-extended below 32 bits). */
  imm(size: number): number {
    if (size === 8) return this.u8();
    if (size === 16) return this.u8() | (this.u8() << 8);
    return this.s32();
  }
  modrm(): ModRm {
    const m = this.u8();
    const mod = m >> 6, reg = (m >> 3) & 7, rm = m & 7;
    const r: ModRm = { mod, reg, rm, base: -1, index: -1, scale: 0, disp: 0, seg: DS };
    if (mod === 3) return r;
    if (rm === 4) {
      const sib = this.u8();
      const b = sib & 7, x = (sib >> 3) & 7;
      r.scale = sib >> 6;
      if (x !== 4) r.index = x;
      if (b === 5 && mod === 0) r.disp = this.s32();
      else {
        r.base = b;
        if (b === 4 || b === 5) r.seg = SS;
      }
    } else if (rm === 5 && mod === 0) {
      r.disp = this.s32();
    } else {
      r.base = rm;
      if (rm === 5) r.seg = SS;
    }
    if (mod === 1) r.disp = (r.disp + this.s8()) | 0;
    else if (mod === 2) r.disp = (r.disp + this.s32()) | 0;
    if (this.segOvr >= 0) r.seg = this.segOvr;
    return r;
  }

  // ---- emission helpers
  reg(r: number): void {
    this.usedRegs |= 1 << r;
    this.code.get(L_REG + r);
  }
  /** Pops the stack top into register `r`. */
  setReg(r: number): void {
    this.usedRegs |= 1 << r;
    this.writtenRegs |= 1 << r;
    this.code.set(L_REG + r);
  }
  /** Pushes register operand `r` of `size` bits (zero-extended). */
  getR(r: number, size: number): void {
    const c = this.code;
    if (size === 32) this.reg(r);
    else if (size === 16) {
      this.reg(r);
      c.i32(0xffff).op(OP.i32And);
    } else if (r < 4) {
      this.reg(r);
      c.i32(0xff).op(OP.i32And);
    } else {
      this.reg(r - 4);
      c.i32(8).op(OP.i32ShrU).i32(0xff).op(OP.i32And);
    }
  }
  /** Writes local `l` into register operand `r` of `size` bits. */
  setR(r: number, size: number, l: number): void {
    const c = this.code;
    if (size === 32) {
      c.get(l);
      this.setReg(r);
    } else if (size === 16) {
      this.reg(r);
      c.i32(~0xffff).op(OP.i32And).get(l).i32(0xffff).op(OP.i32And).op(OP.i32Or);
      this.setReg(r);
    } else if (r < 4) {
      this.reg(r);
      c.i32(~0xff).op(OP.i32And).get(l).i32(0xff).op(OP.i32And).op(OP.i32Or);
      this.setReg(r);
    } else {
      this.reg(r - 4);
      c.i32(~0xff00).op(OP.i32And).get(l).i32(0xff).op(OP.i32And).i32(8).op(OP.i32Shl)
        .op(OP.i32Or);
      this.setReg(r - 4);
    }
  }
  /** Computes the effective address of `m` into the LIN local. */
  ea(m: ModRm): void {
    const c = this.code;
    let any = false;
    if (m.base >= 0) {
      this.reg(m.base);
      any = true;
    }
    if (m.index >= 0) {
      this.reg(m.index);
      if (m.scale) c.i32(m.scale).op(OP.i32Shl);
      if (any) c.op(OP.i32Add);
      any = true;
    }
    if (!any) c.i32(m.disp);
    else if (m.disp !== 0) c.i32(m.disp).op(OP.i32Add);
    c.set(L_LIN);
  }
  /** Pushes the count of instructions retired before instruction `j` of the current block. */
  count(j: number): void {
    this.code.get(L_N).i32(j - this.len).op(OP.i32Add);
  }
  /** Leaves the region: `j` instructions of this block done, EIP the constant `eip`. */
  exit(j: number, eip: number): void {
    this.count(j);
    this.code.set(L_CNT).i32(eip).set(L_EIP).br(this.lExit);
  }
  /** Leaves with EIP from local `l`. */
  exitDyn(j: number, l: number): void {
    this.count(j);
    this.code.set(L_CNT).get(l).set(L_EIP).br(this.lExit);
  }
  /** Goes on at `eip` after instruction `j` completes: a block of the region, or leave. */
  jumpTo(eip: number): void {
    const p = this.posOf(eip);
    const b = p < 0 ? -1 : this.blockAt(p);
    if (b < 0) {
      this.exit(this.j + 1, eip);
      return;
    }
    // N counted the whole block on entry: a branch out of its middle takes back the rest.
    const back = this.j + 1 - this.len;
    if (back !== 0) this.code.get(L_N).i32(back).op(OP.i32Add).set(L_N);
    this.code.i32(b).set(L_NEXT).br(this.lLoop);
  }

  /** After a helper call: leave at this instruction when it faulted. */
  faultCheck(): void {
    const c = this.code;
    c.i32(0).mem(OP.i32Load, this.sb + ST_STATUS).tee(L_ST).i32(2).op(OP.i32Eq);
    c.open(OP.if);
    this.exit(this.j, this.eipAt(this.insnStart));
    c.end();
    this.slow = true;
  }
  /**
   * At the end of an instruction that called a helper: leave when the boundary is wanted,
   * for the next instruction or the constant `target` of a jump.
   */
  memEnd(target = this.eipAt(this.pos)): void {
    if (!this.slow) return;
    const c = this.code;
    c.get(L_ST).open(OP.if);
    this.exit(this.j + 1, target);
    c.end();
  }

  /** Pushes the TLB check for an access of `size` bits at LIN (tag at `tagOff`). */
  tlbHit(size: number, tagOff: number): void {
    const c = this.code;
    c.get(L_LIN).i32(12).op(OP.i32ShrU).i32(1023).op(OP.i32And).i32(5).op(OP.i32Shl).get(L_TU)
      .op(OP.i32Add).tee(L_E);
    c.mem(OP.i64Load, this.sb + ST_TLB + tagOff);
    c.get(L_LIN).op(OP.i64ExtendI32U).op(OP.i64Const).sleb(12).op(OP.i64ShrU).op(OP.i64Eq);
    if (size > 8) {
      c.get(L_LIN).i32(0xfff).op(OP.i32And).i32(4096 - size / 8).op(OP.i32LeU).op(OP.i32And);
    }
  }
  /** Pushes the host address of LIN in a TLB hit (entry in E). */
  hostAddr(): void {
    this.code.get(L_E).mem(OP.i32Load, this.sb + ST_TLB + 16).get(L_LIN).i32(0xfff)
      .op(OP.i32And).op(OP.i32Add);
  }
  /** Pushes the `size`-bit value at LIN through segment `seg`. */
  read(seg: number, size: number): void {
    const c = this.code;
    const slow = () => {
      c.i32(size).i32(seg).get(L_LIN);
      this.count(this.j);
      c.call(IMP_RD).set(L_T);
      this.faultCheck();
      c.get(L_T);
    };
    if (seg !== DS && seg !== SS) {
      slow();
      return;
    }
    this.tlbHit(size, 0);
    c.open(OP.if, I32);
    this.hostAddr();
    c.mem(size === 8 ? OP.i32Load8U : size === 16 ? OP.i32Load16U : OP.i32Load, 0);
    c.else();
    slow();
    c.end();
  }
  /** Writes local `l` (`size` bits) at LIN through segment `seg`. */
  write(seg: number, size: number, l: number): void {
    const c = this.code;
    const slow = () => {
      c.i32(size).i32(seg).get(L_LIN).get(l);
      this.count(this.j);
      c.call(IMP_WR);
      this.faultCheck();
    };
    if (seg !== DS && seg !== SS) {
      slow();
      return;
    }
    this.tlbHit(size, 8);
    c.open(OP.if);
    this.hostAddr();
    c.get(l).mem(size === 8 ? OP.i32Store8 : size === 16 ? OP.i32Store16 : OP.i32Store, 0);
    c.else();
    slow();
    c.end();
  }
  /** Pushes operand E of `m` (LIN already computed for memory). */
  readE(m: ModRm, size: number): void {
    if (m.mod === 3) this.getR(m.rm, size);
    else this.read(m.seg, size);
  }
  writeE(m: ModRm, size: number, l: number): void {
    if (m.mod === 3) this.setR(m.rm, size, l);
    else this.write(m.seg, size, l);
  }

  // ---- flags
  /** Records a producer: D, S, R from locals `d` (or constant), `s`, `r`. */
  produce(op: number, size: number, pure: boolean, d: number, s: number | null, sConst = 0) {
    const c = this.code;
    c.get(d).set(L_D);
    if (s === null) c.i32(sConst).set(L_S);
    else c.get(s).set(L_S);
    c.get(L_V).set(L_R);
    c.i32(op).set(L_OP).i32(size).set(L_SZ).i32(ARITH_FLAGS).set(L_M);
    this.fl = { op, size, pure, noCf: false, count: sConst };
  }
  /** Stores the flag locals where the `cond` helper reads them. */
  storeFlags(): void {
    const c = this.code;
    const pairs: [number, number][] = [
      [L_F, ST_FLAGS],
      [L_M, ST_LZMASK],
      [L_OP, ST_LZOP],
      [L_SZ, ST_LZSIZE],
      [L_D, ST_LZDST],
      [L_S, ST_LZSRC],
      [L_R, ST_LZRES],
    ];
    for (const [l, o] of pairs) c.i32(0).get(l).mem(OP.i32Store, this.sb + o);
  }
  /** Pushes (x >>> sh) & 1. */
  bit(sh: number): void {
    bit(this.code, sh);
  }
  /** Pushes CF (0 or 1). */
  cf(): void {
    cf(this.code, this.fl, () => this.storeFlags());
  }
  /** Pushes condition `cc` (0/1). */
  cond(cc: number): void {
    cond(this.code, this.fl, cc, () => this.storeFlags());
  }

  /** Masks the stack top to `size` bits (32: nothing). */
  fix(size: number): void {
    if (size < 32) this.code.i32(size === 8 ? 0xff : 0xffff).op(OP.i32And);
  }

  /**
   * ALU `op` on A and B into V (V unchanged for CMP/TEST's sake too); flags recorded.
   * With `store`, V is written to that operand first: a write that faults leaves the
   * region with the flags as they were before the instruction.
   */
  alu(op: number, size: number, store: ModRm | null = null): void {
    const c = this.code;
    let lz = LZ_LOGIC;
    switch (op) {
      case 0:
        c.get(L_A).get(L_B).op(OP.i32Add);
        lz = LZ_ADD;
        break;
      case 1:
        c.get(L_A).get(L_B).op(OP.i32Or);
        break;
      case 2:
        c.get(L_A).get(L_B).op(OP.i32Add);
        this.cf();
        c.op(OP.i32Add);
        lz = LZ_ADD;
        break;
      case 3:
        c.get(L_A).get(L_B).op(OP.i32Sub);
        this.cf();
        c.op(OP.i32Sub);
        lz = LZ_SUB;
        break;
      case 4:
        c.get(L_A).get(L_B).op(OP.i32And);
        break;
      case 6:
        c.get(L_A).get(L_B).op(OP.i32Xor);
        break;
      default:
        c.get(L_A).get(L_B).op(OP.i32Sub);
        lz = LZ_SUB;
    }
    this.fix(size);
    c.set(L_V);
    if (store !== null) this.writeE(store, size, L_V);
    this.produce(lz, size, op === 5 || op === 7, L_A, L_B);
  }

  // ---- blocks and instructions
  translateBlock(i: number): void {
    const c = this.code;
    this.pos = this.starts[i];
    this.cur = i;
    this.fl = null;
    this.j = 0;
    this.len = this.discovering ? 0 : this.lens[i];
    if (!this.discovering) {
      // Budget: leave before the block when it does not fit.
      c.get(L_BUDGET).get(L_N).op(OP.i32Sub).i32(this.len).op(OP.i32LtS).open(OP.if);
      c.get(L_N).set(L_CNT).i32(this.eipAt(this.pos)).set(L_EIP).br(this.lExit);
      c.end();
      c.get(L_N).i32(this.len).op(OP.i32Add).set(L_N);
    }
    for (;;) {
      const full = this.discovering
        ? this.j >= MAX_BLOCK_INSNS || this.total >= MAX_REGION_INSNS
        : this.cuts[this.cur] && this.j >= this.len;
      if (full) {
        if (this.discovering) this.cuts[this.cur] = true;
        if (this.j === 0) {
          // Nothing fits any more: leave (a jump to itself would loop without retiring).
          this.exit(0, this.eipAt(this.pos));
        } else {
          this.j--;
          this.jumpTo(this.eipAt(this.pos));
          this.j++;
        }
        break;
      }
      const at = this.pos, mark = c.mark(), fl = this.fl;
      const used = this.usedRegs, written = this.writtenRegs, lo = this.lo, hi = this.hi;
      let kind = 0;
      this.insnStart = at;
      this.slow = false;
      try {
        kind = translateInsn(this);
      } catch (e) {
        if (e !== TRUNCATED) throw e;
      }
      if (kind === 0) {
        c.reset(mark);
        this.pos = at;
        this.fl = fl;
        this.usedRegs = used;
        this.writtenRegs = written;
        this.lo = lo;
        this.hi = hi;
        this.exit(this.j, this.eipAt(at));
        break;
      }
      this.j++;
      if (this.discovering) this.total++;
      if (kind === END) break;
    }
    if (this.discovering) this.lens[i] = this.j;
  }

  /**
   * INC/DEC of A into V, with their flags (CF kept from the producer before); with
   * `store`, V is written there before the flags change (see {@linkcode alu}).
   */
  incDec(dec: boolean, size: number, store: ModRm | null = null): void {
    const c = this.code;
    c.get(L_F).i32(~CF).op(OP.i32And);
    this.cf();
    c.op(OP.i32Or).set(L_F);
    c.get(L_A).i32(1).op(dec ? OP.i32Sub : OP.i32Add);
    this.fix(size);
    c.set(L_V);
    if (store !== null) this.writeE(store, size, L_V);
    c.get(L_A).set(L_D).i32(1).set(L_S).get(L_V).set(L_R);
    const lz = dec ? LZ_SUB : LZ_ADD;
    c.i32(lz).set(L_OP).i32(size).set(L_SZ).i32(ARITH_FLAGS & ~CF).set(L_M);
    this.fl = { op: lz, size, pure: false, noCf: true, count: 0 };
  }
}
