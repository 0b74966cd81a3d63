// Block translator: turns a run of 32-bit guest code into one JavaScript function for V8

import { condition, getCF, PARITY } from "../flags.ts";
import { read16, read32, read8, write16, write32, write8 } from "../memory.ts";
import { type CpuCore, fault } from "../state.ts";
import { Emitter, N_MARK, WB_MARK } from "./emitter.ts";
import { shiftCf, writeBackFlags } from "./flag_expr.ts";
import type { Region } from "../wasm/runtime.ts";

/** A translated block: runs its instructions from `c.eip`. */
export type BlockFn = (c: CpuCore, end: number) => void;

/** One translation, found by where its first byte lives in a RAM or ROM region. */
export interface Block {
  /** The backing bytes of the region holding the code. */
  readonly bytes: Uint8Array;
  /** Offset of the first instruction in `bytes`. */
  readonly off: number;
  /** EIP of the first instruction (targets inside the block are absolute EIPs). */
  readonly eip: number;
  /** The range of `bytes` the translation decoded (the fetch window must cover it). */
  readonly lo: number;
  readonly hi: number;
  /** Most instructions one pass through the block retires (the budget it needs). */
  readonly n: number;
  /** The CPU mode it was made for (see {@linkcode blockMode}). */
  readonly mode: number;
  /** The compiled code, or null where the first instruction is left to the interpreter. */
  readonly run: BlockFn | null;
  /**
   * A copy of the guest bytes as translated, as the aligned dwords covering
   * `bytes[lo, hi)` from index `words` of `view` (all of `bytes.buffer`), to tell when
   * the guest changed them.
   */
  readonly code: Int32Array;
  readonly view: Int32Array;
  readonly words: number;
  /** The CPU's `codeEpoch` in which `code` last matched the guest bytes. */
  epoch: number;
  /** Instructions retired in this block so far (the wasm tier compiles hot blocks). */
  hits: number;
  /** The wasm region entered here: undefined not tried yet, null not compilable. */
  region: Region | null | undefined;
}

/**
 * True while the guest bytes under `b` are still those it was translated from. The
 * dispatcher asks once per code epoch, so the check stays out of the block's own code
 * (where V8 would pay for it on every entry).
 */
export function sameCode(b: Block): boolean {
  const view = b.view, code = b.code, w = b.words;
  for (let i = 0; i < code.length; i++) {
    if (view[w + i] !== code[i]) return false;
  }
  return true;
}

const DWORD_VIEWS = new WeakMap<ArrayBufferLike, Int32Array>();

/** All of `buffer` as dwords (one view per buffer). */
export function dwordView(buffer: ArrayBufferLike): Int32Array {
  let v = DWORD_VIEWS.get(buffer);
  if (v === undefined) {
    v = new Int32Array(buffer, 0, buffer.byteLength >> 2);
    DWORD_VIEWS.set(buffer, v);
  }
  return v;
}

/** Mode bits a translation depends on: CS.D and SS.B (both set for flat 32-bit code). */
export function blockMode(c: CpuCore): number {
  return (c.code32 ? 1 : 0) | (c.stack32 ? 2 : 0);
}

/** The only mode translated so far: 32-bit code with a 32-bit stack. */
export const MODE_FLAT32 = 3;

const NO_CODE = new Int32Array(0);

const HELPERS = {
  R8: read8,
  R16: read16,
  R32: read32,
  W8: write8,
  W16: write16,
  W32: write32,
  fault,
  condition,
  getCF,
  PARITY,
  shiftCf,
  writeBackFlags,
};

/**
 * Translates the code at the current EIP of `c`, which lies `o` bytes into the fetch
 * window. Returns a block whose `run` is null when the first instruction is not one
 * the translator handles (or the mode is not flat 32-bit).
 */
export function translateBlock(c: CpuCore, o: number): Block {
  const bytes = c.fetchBytes, base = c.fetchOff, eip = c.eip | 0, mode = blockMode(c);
  const e = new Emitter(bytes, base, c.fetchLen, c.fetchBase | 0, o);
  const n = mode === MODE_FLAT32 ? e.run() : 0;
  const off = base + o;
  if (n === 0) {
    return {
      bytes,
      off,
      eip,
      lo: off,
      hi: off,
      n: 0,
      mode,
      run: null,
      code: NO_CODE,
      view: NO_CODE,
      words: 0,
      epoch: -1,
      hits: 0,
      region: undefined,
    };
  }
  const lo = base + e.lo, hi = base + e.hi;
  const regs = [...Array(8).keys()];
  const load = regs.filter((r) => (e.used >> r) & 1).map((r) => `r${r} = R[${r}]`);
  const store = regs.filter((r) => (e.written >> r) & 1).map((r) => `R[${r}] = r${r};`).join(" ");
  const wb = e.readsEntryFlags
    ? "writeBackFlags(c, fst, fd, fs, fr, fcf, pd, ps, pr); fst = -1; "
    : "";
  const body = e.lines.join("\n").replaceAll(N_MARK, String(n)).replaceAll(WB_MARK, wb);
  const src = `"use strict";
const { R8, R16, R32, W8, W16, W32, fault, condition, getCF, PARITY, shiftCf, writeBackFlags } = H;
const EIPS = H.eips;
return function block_${(eip >>> 0).toString(16)}(c, end) {
  const R = c.regs, lim = c.segLimit[1], tu = c.tlbUser;
  const TR = c.tlbTagR, TW = c.tlbTagW, TO = c.tlbOff, TB = c.tlbBytes, TI = c.tlbI32;
  const SB = c.segBase, RL = c.rdLo, RH = c.rdHi, WL = c.wrLo, WH = c.wrHi;
  // DS and SS flat (base 0, readable and writable 0..4 GiB): the inline TLB paths apply.
  const flat = SB[3] === 0 && SB[2] === 0 && RL[3] === 0 && RL[2] === 0 && WL[3] === 0 &&
    WL[2] === 0 && RH[3] === 4294967295 && RH[2] === 4294967295 && WH[3] === 4294967295 &&
    WH[2] === 4294967295;
  ${load.length ? `let ${load.join(", ")};` : ""}
  let fd = 0, fs = 0, fr = 0, fcf = 0, pd = 0, ps = 0, pr = 0, fst = -1;
  let rb = c.retired, k = 0, n = 0, eip = 0;
  try {
    for (;;) {
${body}
      break;
    }
  } catch (err) {
    ${store}
    writeBackFlags(c, fst, fd, fs, fr, fcf, pd, ps, pr);
    c.retired = rb + k;
    c.instrStart = EIPS[k];
    throw err;
  }
  ${store}
  writeBackFlags(c, fst, fd, fs, fr, fcf, pd, ps, pr);
  c.retired = rb + n;
  c.instrStart = EIPS[n - 1];
  c.eip = eip;
};`;
  const factory = new Function("H", src) as (h: unknown) => BlockFn;
  const view = dwordView(bytes.buffer), words = (bytes.byteOffset + lo) >> 2;
  const run = factory({ ...HELPERS, eips: e.eips });
  return {
    bytes,
    off,
    eip,
    lo,
    hi,
    n,
    mode,
    run,
    code: view.slice(words, (bytes.byteOffset + hi + 3) >> 2),
    view,
    words,
    epoch: c.codeEpoch,
    hits: 0,
    region: undefined,
  };
}
