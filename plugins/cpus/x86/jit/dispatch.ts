// The translation cache and the run loop that enters translated blocks between interpreted steps

import { fetch8, mapFetchWindow } from "../memory.ts";
import { type CpuCore, TLB_SIZE } from "../state.ts";
import { type Block, blockMode, MODE_FLAT32, sameCode, translateBlock } from "./translate.ts";
import { DEMOTED, ENTERED, STALE, type WasmTier } from "../wasm/runtime.ts";

/** Slots of the block table (indexed by the code's offset in its region). */
const TABLE_BITS = 17;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
/**
 * Interpreted visits to an address before it is translated. Translation costs a
 * `new Function` and a V8 compile, so only code that repeats earns one.
 */
export const HOT_THRESHOLD = 40;
/**
 * The same with the wasm tier on, where a JavaScript block is only the step before a
 * region: V8 runs a new block in its bytecode interpreter for its first hundreds of
 * calls, so cold kernel code ran slower in blocks than interpreted, and translating it
 * cost more than it ever saved (docs/cpu-performance.md: 2.9x on a window of early
 * kernel init; 30 000 rather than 10 000 took a fifth off a whole boot's CPU time, as
 * fewer blocks lead to fewer regions). A visit reached by a backward jump inside 4 KiB
 * (a loop) counts {@linkcode LOOP_WEIGHT} times, so loops still get a block after
 * about 2 000 turns. At most 65 535 (the visit counters are 16-bit).
 */
const HOT_THRESHOLD_WASM = 30_000, LOOP_WEIGHT = 16;
/**
 * Instructions a translated block retires before the wasm tier compiles the region
 * entered there (a block that loops in place counts every pass).
 */
export const WASM_HOT_THRESHOLD = 2000;

/**
 * Translated blocks of one CPU, keyed by the place of their first byte in guest memory
 * (region bytes and offset): the key is physical, so paging, segment bases and A20 only
 * change which key the current CS:EIP reaches, and nothing needs flushing when they
 * change. A block's guest bytes are compared with its copy on its first entry in each
 * code epoch (`codeEpoch` moves with each slice, port I/O, store that reaches the bus,
 * MMIO read and page-table A/D update), since DMA and loaders write RAM behind the
 * CPU's back only at such moments. The check stays out of the generated code: there it
 * cost a third of the time of hot blocks (docs/cpu-performance.md). CPU stores to a page
 * holding translated code take the TLB's slow path (see `codePages`), which raises
 * `attention` so a running block stops at once, and starts a new epoch.
 *
 * With several CPUs each has its own cache, and `codePages` protects only its owner's
 * stores. Another CPU's store to translated code is still seen: CPUs take turns on one
 * thread, so such a store lands between the owner's turns (each turn a new epoch), and
 * the owner's next entry into the block fails the byte check and translates again.
 */
export class BlockCache {
  readonly table: (Block | undefined)[] = new Array(1 << TABLE_BITS).fill(undefined);
  readonly hot: Uint16Array = new Uint16Array(1 << TABLE_BITS);
  /** Blocks translated so far (statistics and tests). */
  translated = 0;
  /** Translations dropped because their guest bytes changed. */
  invalidated = 0;
  /** Instructions retired inside translated blocks, and block entries (statistics). */
  blockRetired = 0;
  blockEntries = 0;
  /** Host milliseconds spent translating (statistics). */
  compileMs = 0;
  /** Blocks that retired this many instructions get a wasm region (when {@linkcode wasm} is on). */
  wasmHot = WASM_HOT_THRESHOLD;
  /** Interpreted visits to an address before it gets a JavaScript block. */
  jsHot: number;
  /** What a visit counts when a backward jump inside 4 KiB led there (a loop). */
  loopWeight: number;

  /** @param wasm the wasm tier of the same CPU, or null for JavaScript blocks only. */
  constructor(readonly wasm: WasmTier | null = null) {
    this.jsHot = wasm === null ? HOT_THRESHOLD : HOT_THRESHOLD_WASM;
    this.loopWeight = wasm === null ? 1 : LOOP_WEIGHT;
  }

  /** Forgets every translation. */
  clear(): void {
    for (const b of this.table) if (b !== undefined) this.drop(b);
    this.table.fill(undefined);
    this.hot.fill(0);
  }

  /** Releases the wasm region of block `b`, which is being dropped. */
  drop(b: Block): void {
    if (b.region) this.wasm?.release(b.region);
  }

  /** Translates the code at the current EIP, `o` bytes into the fetch window. */
  compile(c: CpuCore, o: number): Block {
    const t0 = performance.now();
    const block = translateBlock(c, o);
    this.compileMs += performance.now() - t0;
    if (block.run !== null) {
      this.translated++;
      protectCode(c, block.bytes, block.lo, block.hi - block.lo);
    }
    return block;
  }
}

/**
 * Marks the physical pages under `bytes[off, off + len)` as holding code and drops the
 * TLB's direct-write entries for them, so later CPU stores there take the slow path.
 */
function protectCode(c: CpuCore, bytes: Uint8Array, off: number, len: number): void {
  for (const region of c.mem.regions) {
    if (region.bytes !== bytes) continue;
    for (let p = off >>> 12; p <= (off + len - 1) >>> 12; p++) {
      c.codePages[(region.base / 4096 + p) >>> 0] = 1;
    }
  }
  const first = off & ~0xfff, last = (off + len - 1) & ~0xfff;
  for (let i = 0; i < 2 * TLB_SIZE; i++) {
    if (c.tlbTagW[i] !== -1 && c.tlbBytes[i] === bytes) {
      const o = c.tlbOff[i];
      if (o === first || o === last) {
        c.tlbTagW[i] = -1;
        c.wtlb?.fill(-1, (i << 3) + 2, (i << 3) + 4);
      }
    }
  }
}

/**
 * First opcode bytes after which the next instruction may start a block: every jump,
 * call, return, loop and interrupt, the prefixes and the 0x0F and 0xFF groups (which
 * hold branches). After any other interpreted instruction execution falls through to
 * the next byte, which blocks are rarely keyed at, so the dispatcher skips the block
 * table and the visit count there. Missing an address here costs only speed: faults
 * leave the loop, and its next call looks first.
 */
const LOOK_AFTER = new Uint8Array(256);
const LOOK_OPS =
  "0f 26 2e 36 3e 64 65 66 67 9a c2 c3 ca cb cc cd ce cf e0 e1 e2 e3 e8 e9 ea eb f0 f2 f3 ff";
for (const op of LOOK_OPS.split(" ")) LOOK_AFTER[parseInt(op, 16)] = 1;
for (let op = 0x70; op <= 0x7f; op++) LOOK_AFTER[op] = 1;

/**
 * Runs instructions until the budget ends or something needs the boundary handler,
 * entering translated blocks where they exist and interpreting everything else. Same
 * contract as the interpreter's loop: `c.retired` counts every instruction exactly.
 * The block table is looked up where a block can start (see {@linkcode LOOK_AFTER}),
 * after a block ran, and after an instruction the translator stops at.
 */
export function executeWithBlocks(c: CpuCore, end: number, cache: BlockCache): void {
  const table = cache.table, hot = cache.hot, wasm = cache.wasm;
  let look = 1;
  while (c.retired < end && !c.attention) {
    if (look === 0) {
      c.instrStart = c.eip;
      const op = fetch8(c);
      look = LOOK_AFTER[op];
      c.table[op](c);
      c.retired++;
      continue;
    }
    // After a block the next instruction is looked up too: the block may have stopped
    // at an instruction the translator does not handle.
    let o = (c.eip - c.fetchBase) >>> 0, stop = look >> 1;
    look = 1;
    if (o >= c.fetchLen && c.code32) {
      // A jump, call or return to another page: map it now, or its first instruction
      // would be interpreted and its translation (entered at that EIP) never found.
      c.instrStart = c.eip;
      mapFetchWindow(c);
      o = (c.eip - c.fetchBase) >>> 0;
    }
    if (o < c.fetchLen && c.code32) {
      const off = c.fetchOff + o;
      const h = off & TABLE_MASK;
      const b = table[h];
      if (
        b !== undefined && b.off === off && b.bytes === c.fetchBytes && b.eip === c.eip &&
        b.mode === blockMode(c)
      ) {
        stop = 1;
        const run = b.run;
        if (
          run !== null && c.retired + b.n <= end && b.lo >= c.fetchOff &&
          b.hi <= c.fetchOff + c.fetchLen
        ) {
          if (b.epoch === c.codeEpoch || sameCode(b)) {
            b.epoch = c.codeEpoch;
            if (wasm !== null) {
              const rg = b.region;
              if (rg === undefined) {
                if (b.hits >= cache.wasmHot) {
                  const r = wasm.compile(o);
                  b.region = r;
                  if (r !== null) protectCode(c, r.bytes, r.lo, r.hi - r.lo);
                }
              } else if (rg !== null) {
                const k = wasm.enter(rg, end);
                if (k === ENTERED) {
                  look = 2;
                  continue;
                }
                if (k === DEMOTED) {
                  wasm.release(rg);
                  b.region = null;
                } else if (k === STALE) {
                  wasm.release(rg);
                  b.region = undefined;
                  b.hits = 0;
                  cache.invalidated++;
                }
              }
            }
            const before = c.retired;
            run(c, end);
            b.hits += c.retired - before;
            cache.blockRetired += c.retired - before;
            cache.blockEntries++;
            look = 2;
            continue;
          }
          // The guest rewrote this code: translate it again when it is hot again.
          cache.drop(b);
          table[h] = undefined;
          hot[h] = 0;
          cache.invalidated++;
        }
      } else if (
        (hot[h] += ((c.eip - c.instrStart) | 0) < 0 && ((c.eip - c.instrStart) | 0) > -4096
            ? cache.loopWeight
            : 1) >= cache.jsHot && blockMode(c) === MODE_FLAT32
      ) {
        hot[h] = 0;
        stop = 1;
        const nb = cache.compile(c, o);
        if (b !== undefined) cache.drop(b);
        table[h] = nb;
        if (nb.run !== null && c.retired + nb.n <= end) {
          const before = c.retired;
          nb.run(c, end);
          cache.blockRetired += c.retired - before;
          cache.blockEntries++;
          look = 2;
          continue;
        }
      }
    }
    c.instrStart = c.eip;
    const op = fetch8(c);
    look = LOOK_AFTER[op] | stop;
    c.table[op](c);
    c.retired++;
  }
}
