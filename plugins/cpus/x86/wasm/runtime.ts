// The wasm tier of one CPU: attaching to guest RAM's memory, compiling regions, entering them

import { read16, read32, read8, write16, write32, write8 } from "../memory.ts";
import { flushTlb } from "../paging.ts";
import { type CpuCore, CS, DS, FAULT, SS, TLB_SIZE } from "../state.ts";
import { assembleModule } from "./encoder.ts";
import { conditionHelper } from "./flag_rt.ts";
import {
  chainIndex,
  CPU_AREA,
  ST_CHAIN,
  ST_CHAINBASE,
  ST_CHAINGEN,
  ST_CHAINHOPS,
  ST_CONDCALLS,
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
  TLB_ENTRY,
  type WasmRam,
  wasmRamOf,
} from "./ram.ts";
import { compileRegion, IMPORTS, TYPES } from "./region.ts";
import { dwordView } from "../jit/translate.ts";
import { trampolineModule } from "./trampoline.ts";

/** A compiled region: entered at one EIP, covering `bytes[lo, hi)`. */
export interface Region {
  /** Its slot in the CPU's table of regions (-1 before its module is ready and once released). */
  slot: number;
  /** Compiled and in the table (a background compile sets it when done). */
  ready: boolean;
  /** Released: a background compile that ends later leaves it out of the table. */
  released: boolean;
  readonly bytes: Uint8Array;
  readonly lo: number;
  readonly hi: number;
  /** Instructions of the entry block: the least budget worth a call. */
  readonly firstLen: number;
  /**
   * The guest bytes as compiled, as dwords from the aligned `words` index: `view` sees
   * the same memory as `bytes`.
   */
  readonly code: Int32Array;
  readonly view: Int32Array;
  readonly words: number;
  epoch: number;
  /** Entries and instructions retired (a region that leaves at once is not worth it). */
  entries: number;
  retired: number;
}

/** What {@linkcode WasmTier.enter} did. */
export const ENTERED = 0, NOT_NOW = 1, STALE = 2, DEMOTED = 3;
/**
 * A region that retires fewer than DEMOTE_PER_ENTRY instructions per entry over its
 * first DEMOTE_ENTRIES entries costs more to enter (state copies, the byte check after
 * port I/O) than it saves: the JavaScript block runs instead.
 */
const DEMOTE_ENTRIES = 256, DEMOTE_PER_ENTRY = 12;

/**
 * Most instructions one call into a region may retire. V8 runs a new module in its
 * baseline compiler (Liftoff) and moves a function to optimised code in the background;
 * the optimised code is used from the next call on (wasm has no on-stack replacement),
 * so a loop that stays inside one call for a whole slice would never leave the baseline
 * code (the alu loop ran at a third of its speed).
 */
const CALL_BUDGET = 50_000;
/** Most instructions one entry (a chain of calls) may retire: an int32 for the trampoline. */
const MAX_CALL = 1 << 30;

const F = ST_FLAGS >> 2, M = ST_LZMASK >> 2, OPI = ST_LZOP >> 2, SZ = ST_LZSIZE >> 2;
const D = ST_LZDST >> 2, S = ST_LZSRC >> 2, R = ST_LZRES >> 2, EIP = ST_EIP >> 2;
const TU = ST_TLBUSER >> 2, STATUS = ST_STATUS >> 2;
const GEN = ST_CHAINGEN >> 2, BASE = ST_CHAINBASE >> 2, HOPS = ST_CHAINHOPS >> 2;
const CHAIN = ST_CHAIN >> 2;

/** Loads the lazy flags compiled code left in state area `s` into the interpreter's fields. */
function flagsFromState(c: CpuCore, s: Int32Array): void {
  c.flags = s[F];
  c.lzMask = s[M];
  c.lzOp = s[OPI];
  c.lzSize = s[SZ];
  c.lzDst = s[D];
  c.lzSrc = s[S];
  c.lzRes = s[R];
}

/**
 * Compiles hot code of one CPU into WebAssembly and runs it. Guest RAM must live in a
 * {@linkcode WasmRam} (the backend's `allocateRam`); on first use the CPU takes a state
 * area there: its `regs` become a view of it and the TLB is mirrored into it.
 */
export class WasmTier {
  #ram: WasmRam | null = null;
  #area = -1;
  #s: Int32Array = new Int32Array(0);
  #rb = 0;
  #imports: WebAssembly.Imports | null = null;
  #table: WebAssembly.Table | null = null;
  #call: (slot: number, budget: number) => number = () => 0;
  #free: number[] = [];
  #slots = 0;
  /**
   * The chain generation and what it was made under: a chain entry (see
   * wasm/trampoline.ts) is used only in its generation, which moves when the code epoch,
   * the TLB (a flush or INVLPG), the privilege, CS's base or the stack size changed since
   * the last entry, and when a region is released (its slot may be reused).
   */
  #gen = 1;
  #ctxEpoch = -1;
  #ctxTlb = -1;
  #ctxUser = -1;
  #ctxCs = -1;
  #ctxStack = false;
  /** Statistics: regions compiled, failures, host ms compiling, instructions and entries. */
  regions = 0;
  failed = 0;
  compileMs = 0;
  retired = 0;
  entries = 0;
  bytes = 0;
  /** Calls from compiled code into the memory slow path. */
  slowCalls = 0;

  /** Regions entered by chaining from another region, without returning to JavaScript. */
  get chained(): number {
    return this.#ram === null ? 0 : this.#s[HOPS];
  }

  /** Calls from compiled code into the condition helper (flags not known in the region). */
  get condCalls(): number {
    return this.#ram === null ? 0 : this.#s[ST_CONDCALLS >> 2];
  }

  /**
   * @param background compile modules with `WebAssembly.compile` off the run loop (the
   * region is entered from the first slice after it is done; until then the JavaScript
   * block runs). Needs an event loop that runs between slices, as a machine's does. V8
   * still compiles a function's code at its first call unless the process runs with
   * `--v8-flags=--no-wasm-lazy-compilation` (the flag cannot be set from inside Deno).
   */
  constructor(readonly c: CpuCore, readonly background = false) {}

  #attach(bytes: Uint8Array): boolean {
    if (this.#ram !== null) return wasmRamOf(bytes) === this.#ram;
    const ram = wasmRamOf(bytes);
    if (ram === undefined) return false;
    const area = ram.allocateCpuArea();
    if (area < 0) return false;
    const c = this.c;
    this.#ram = ram;
    this.#area = area;
    this.#s = new Int32Array(ram.buffer, area, CPU_AREA >> 2);
    const regs = new Int32Array(ram.buffer, area + ST_REGS, 16);
    regs.set(c.regs);
    c.regs = regs;
    c.wtlb = new Int32Array(ram.buffer, area + ST_TLB, (2 * TLB_SIZE * TLB_ENTRY) >> 2);
    c.wtlbBuffer = ram.buffer;
    flushTlb(c);
    const s = this.#s;
    s[GEN] = this.#gen;
    const done = (v: number) => {
      s[STATUS] = c.attention ? 1 : 0;
      // A device read may have written RAM (DMA): no more chaining in this call.
      if (c.codeEpoch !== this.#ctxEpoch) s[GEN] = ++this.#gen;
      return v;
    };
    this.#imports = {
      env: {
        memory: ram.memory,
        rd: (size: number, seg: number, off: number, n: number) => {
          this.slowCalls++;
          c.retired = this.#rb + s[BASE] + n;
          try {
            const o = off >>> 0;
            return done(
              size === 8 ? read8(c, seg, o) : size === 16 ? read16(c, seg, o) : read32(c, seg, o),
            );
          } catch (e) {
            if (e !== FAULT) throw e;
            s[STATUS] = 2;
            return 0;
          }
        },
        wr: (size: number, seg: number, off: number, v: number, n: number) => {
          this.slowCalls++;
          c.retired = this.#rb + s[BASE] + n;
          try {
            const o = off >>> 0;
            if (size === 8) write8(c, seg, o, v & 0xff);
            else if (size === 16) write16(c, seg, o, v & 0xffff);
            else write32(c, seg, o, v);
            done(0);
          } catch (e) {
            if (e !== FAULT) throw e;
            s[STATUS] = 2;
          }
        },
        cond: conditionHelper(ram.memory, area),
      },
    };
    const table = new WebAssembly.Table({ element: "anyfunc", initial: 64 });
    this.#table = table;
    const trampoline = trampolineModule(area, CALL_BUDGET) as Uint8Array<ArrayBuffer>;
    this.#call = new WebAssembly.Instance(new WebAssembly.Module(trampoline), {
      env: { memory: ram.memory, t: table },
    }).exports.run as (slot: number, budget: number) => number;
    return true;
  }

  /** A table slot holding `fn`. */
  #slot(fn: (budget: number) => number): number {
    const table = this.#table!;
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#slots++;
      if (slot >= table.length) table.grow(table.length);
    }
    table.set(slot, fn);
    return slot;
  }

  /** Drops region `r` from the table (its code can then be collected). */
  release(r: Region): void {
    r.released = true;
    if (r.slot < 0) return;
    this.#s[GEN] = ++this.#gen; // chain entries may name the slot
    this.#table!.set(r.slot, null);
    this.#free.push(r.slot);
    r.slot = -1;
  }

  /**
   * Compiles the code at the current EIP (`o` bytes into the fetch window), or returns
   * null when it cannot be (not in wasm RAM, first instruction not translatable).
   */
  compile(o: number): Region | null {
    const c = this.c;
    const bytes = c.fetchBytes;
    if (!this.#attach(bytes)) return null;
    const t0 = performance.now();
    try {
      const rc = compileRegion(bytes, c.fetchOff, c.fetchLen, c.fetchBase | 0, o, this.#area);
      if (rc === null) return null;
      const wasm = assembleModule(TYPES, IMPORTS, [{ type: 0, locals: rc.locals, body: rc.body }]);
      this.bytes += wasm.length;
      const lo = c.fetchOff + rc.lo, hi = c.fetchOff + rc.hi;
      const view = dwordView(bytes.buffer);
      const words = (bytes.byteOffset + lo) >> 2;
      this.regions++;
      const region: Region = {
        slot: -1,
        ready: false,
        released: false,
        bytes,
        lo,
        hi,
        firstLen: rc.firstLen,
        code: view.slice(words, (hi + bytes.byteOffset + 3) >> 2),
        view,
        words,
        epoch: c.codeEpoch,
        entries: 0,
        retired: 0,
      };
      const code = wasm as Uint8Array<ArrayBuffer>;
      if (!this.background) {
        this.#install(region, new WebAssembly.Module(code));
        return region;
      }
      WebAssembly.compile(code).then(
        (m) => this.#install(region, m),
        () => {
          this.failed++;
          region.epoch = -2; // the dispatcher drops it
        },
      );
      return region;
    } catch (e) {
      if (e instanceof WebAssembly.CompileError || e instanceof WebAssembly.LinkError) {
        this.failed++;
        return null;
      }
      throw e;
    } finally {
      this.compileMs += performance.now() - t0;
    }
  }

  /** Instantiates the compiled module of region `r` and puts it in the table. */
  #install(r: Region, module: WebAssembly.Module): void {
    if (r.released) return;
    const instance = new WebAssembly.Instance(module, this.#imports!);
    r.slot = this.#slot(instance.exports.f0 as (budget: number) => number);
    r.ready = true;
  }

  /**
   * Runs region `r` from the current EIP when it may: flat DS and SS (the inline TLB
   * path), CS limit 4 GiB, the region inside the fetch window, enough budget, and its
   * guest bytes unchanged (checked once per code epoch).
   */
  enter(r: Region, end: number): number {
    if (!r.ready) return r.epoch === -2 ? DEMOTED : NOT_NOW;
    const c = this.c;
    const budget = end - c.retired;
    if (budget < r.firstLen || r.lo < c.fetchOff || r.hi > c.fetchOff + c.fetchLen) return NOT_NOW;
    const SB = c.segBase, RL = c.rdLo, RH = c.rdHi, WL = c.wrLo, WH = c.wrHi;
    if (
      SB[DS] !== 0 || SB[SS] !== 0 || RL[DS] !== 0 || RL[SS] !== 0 || WL[DS] !== 0 ||
      WL[SS] !== 0 || RH[DS] !== 4294967295 || RH[SS] !== 4294967295 ||
      WH[DS] !== 4294967295 || WH[SS] !== 4294967295 || c.segLimit[1] !== 4294967295
    ) return NOT_NOW;
    if (r.epoch === -2 || r.slot < 0) return DEMOTED;
    if (r.epoch !== c.codeEpoch) {
      const view = r.view, code = r.code, w = r.words;
      for (let i = 0; i < code.length; i++) if (view[w + i] !== code[i]) return STALE;
      r.epoch = c.codeEpoch;
    }
    const s = this.#s;
    if (
      c.codeEpoch !== this.#ctxEpoch || c.tlbGen !== this.#ctxTlb ||
      c.tlbUser !== this.#ctxUser || c.segBase[CS] !== this.#ctxCs || c.stack32 !== this.#ctxStack
    ) {
      this.#ctxEpoch = c.codeEpoch;
      this.#ctxTlb = c.tlbGen;
      this.#ctxUser = c.tlbUser;
      this.#ctxCs = c.segBase[CS];
      this.#ctxStack = c.stack32;
      s[GEN] = ++this.#gen;
    }
    // Its bytes are checked in this epoch: other regions of this generation may chain here.
    const e = CHAIN + (chainIndex(c.eip) << 2);
    s[e] = c.eip;
    s[e + 1] = r.slot;
    s[e + 2] = this.#gen;
    s[e + 3] = r.firstLen;
    s[F] = c.flags;
    s[M] = c.lzMask;
    s[OPI] = c.lzOp;
    s[SZ] = c.lzSize;
    s[D] = c.lzDst;
    s[S] = c.lzSrc;
    s[R] = c.lzRes;
    s[TU] = c.tlbUser * TLB_ENTRY;
    s[STATUS] = 0;
    const rb = (this.#rb = c.retired);
    s[BASE] = 0;
    const n = this.#call(r.slot, Math.min(budget, MAX_CALL));
    c.retired = rb + n;
    this.retired += n;
    this.entries++;
    r.retired += n;
    if (++r.entries === DEMOTE_ENTRIES && r.retired < DEMOTE_ENTRIES * DEMOTE_PER_ENTRY) {
      r.epoch = -2; // from now on the dispatcher runs the JavaScript block instead
    }
    c.eip = s[EIP];
    c.instrStart = c.eip;
    flagsFromState(c, s);
    if (s[STATUS] === 2) throw FAULT;
    return ENTERED;
  }
}
