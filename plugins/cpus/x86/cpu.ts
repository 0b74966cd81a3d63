// The x86 interpreter backend: reset state, the run loop, interrupts and the A20 gate

import {
  type CpuBackend,
  type CpuContext,
  type InterruptSource,
  RunExit,
} from "../../../core/cpu.ts";
import { x86RegisterValues, X86State } from "../../../core/x86_state.ts";
import { loadArchState, saveArchState } from "./arch_state.ts";
import { resetPrefixes } from "./decode.ts";
import { deliverException, deliverInterrupt, INT_EXCEPTION, INT_EXTERNAL } from "./interrupts.ts";
import { BlockCache, executeWithBlocks } from "./jit/dispatch.ts";
import { WasmTier } from "./wasm/runtime.ts";
import { fetch8 } from "./memory.ts";
import type { CpuModel } from "./models.ts";
import { flushTlb } from "./paging.ts";
import { setWindow } from "./paging_long.ts";
import { setCpl, setSegCache } from "./segmentation.ts";
import { CpuCore, CS, EDX, EFER_LMA, FAULT, IF, LDTR, TF, TR } from "./state.ts";
import { CpuStats, statsFromEnvironment } from "./stats.ts";
import { opTables } from "./tables.ts";
import "./fpu_core.ts";

/**
 * Runs instructions until the budget ends or something needs the boundary handler.
 * Kept free of try/catch so the engine optimises it as a plain loop.
 */
function execute(c: CpuCore, end: number): void {
  while (c.retired < end && !c.attention) {
    c.instrStart = c.eip;
    c.table[fetch8(c)](c);
    c.retired++;
  }
}

/** The boundary asks for one instruction followed by a single-step trap. */
const SINGLE_STEP = -2;

/**
 * The boundary asks for exactly one instruction with interrupts held off (the STI and
 * MOV SS shadow), then another look at the boundary.
 */
const SHADOWED = -3;

/** Executes one instruction, outside the run loops that stop at `attention`. */
function stepOne(c: CpuCore): void {
  c.instrStart = c.eip;
  c.table[fetch8(c)](c);
  c.retired++;
}

/** Executes one instruction with EFLAGS.TF set, then raises the #DB trap (DR6.BS). */
function singleStep(c: CpuCore): void {
  stepOne(c);
  c.dr[6] |= 0x4000;
  c.instrStart = c.eip;
  deliverInterrupt(c, 1, INT_EXCEPTION, -1);
}

/** Options of {@linkcode X86Cpu}. */
export interface X86CpuOptions {
  /**
   * Translate hot 32-bit code into JavaScript functions (the block translator). The
   * default comes from the environment: `VMKIT_JIT=0` turns it off, `VMKIT_JIT=1` on.
   */
  jit?: boolean;
  /**
   * Compile hot code further into WebAssembly (wasm/), on top of the block translator,
   * when guest RAM lives in a WebAssembly.Memory (the plugin's `allocateRam`). The
   * default comes from `VMKIT_WASM` (`1` on, `0` off), else {@linkcode WASM_DEFAULT}.
   */
  wasm?: boolean;
  /**
   * Compile wasm regions in the background (`WebAssembly.compile`), entering them from
   * the first slice after they are ready; off by default, where a caller runs slices
   * back to back without an event loop (tests). The plugin's `create` turns it on;
   * `VMKIT_WASM_ASYNC=0` turns it off there.
   */
  wasmAsync?: boolean;
}

/** A switch from the environment variable `name`, else `fallback`. */
export function switchFromEnvironment(name: string, fallback: boolean): boolean {
  let v: string | undefined;
  try {
    v = Deno.env.get(name);
  } catch {
    v = undefined; // no --allow-env: keep the default
  }
  if (v === undefined || v === "") return fallback;
  return v !== "0" && v !== "off" && v !== "false";
}

/** Whether the wasm tier is on when neither the option nor `VMKIT_WASM` says. */
export const WASM_DEFAULT = true;

/** Whether the block translator is on when neither the option nor the environment says. */
export const JIT_DEFAULT = true;

/**
 * One x86 CPU run by the table-driven interpreter (QEMU's `accel=tcg` role). Hot flat
 * 32-bit code is translated into JavaScript functions (jit/), unless
 * {@linkcode X86CpuOptions.jit} or `VMKIT_JIT=0` turns that off; the interpreter stays
 * the reference and runs everything the translator leaves out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressSpace, PortIoSpace } from "../../../core/memory/mod.ts";
 * import { RunExit } from "../../../core/cpu.ts";
 * import { X86Cpu } from "./cpu.ts";
 * import { findModel } from "./models.ts";
 *
 * const memory = new AddressSpace();
 * const ram = memory.addRam("ram", 0, 1 << 20);
 * ram.set([0xb8, 0x34, 0x12, 0xf4], 0x7c00); // mov ax, 0x1234; hlt
 * const cpu = new X86Cpu({ memory, io: new PortIoSpace() }, findModel("qemu32")!);
 * cpu.jumpReal(0, 0x7c00);
 * assert.equal(cpu.run(100), RunExit.HaltNoInterrupts);
 * assert.equal(cpu.registers().eax & 0xffff, 0x1234);
 * ```
 */
export class X86Cpu implements CpuBackend {
  readonly arch = "x86";
  #c: CpuCore;
  #blocks: BlockCache | null;
  #stats: CpuStats | null;
  /** One of several CPUs: PAUSE may offer the turn (see {@linkcode setPauseYield}). */
  #multi = false;

  constructor(context: CpuContext, model: CpuModel, options: X86CpuOptions = {}) {
    const c = new CpuCore(context.memory, context.io, model);
    c.apicId = context.apicId ?? context.index ?? 0;
    c.bsp = (context.index ?? 0) === 0;
    if (context.topology) c.topology = { ...context.topology };
    if ((context.cpuCount ?? 1) > 1) c.yieldOnPause = this.#multi = true;
    c.tscClock = context.clock ?? null;
    const tables = opTables();
    c.table16 = tables.t16;
    c.table32 = tables.t32;
    c.table64 = tables.t64;
    c.table = tables.t16;
    this.#c = c;
    const jit = options.jit ?? switchFromEnvironment("VMKIT_JIT", JIT_DEFAULT);
    const wasm = jit && (options.wasm ?? switchFromEnvironment("VMKIT_WASM", WASM_DEFAULT));
    const background = options.wasmAsync ?? false;
    this.#blocks = jit ? new BlockCache(wasm ? new WasmTier(c, background) : null) : null;
    this.#stats = statsFromEnvironment() ? new CpuStats(context.index ?? 0) : null;
    this.reset();
  }

  /** The interpreter state (for tests, debuggers and state save). */
  get core(): CpuCore {
    return this.#c;
  }

  get model(): string {
    return this.#c.model.name;
  }

  get instructionsRetired(): number {
    return this.#c.retired;
  }

  /** The block translator's cache, or null when it is off. */
  get blocks(): BlockCache | null {
    return this.#blocks;
  }

  get halted(): boolean {
    const c = this.#c;
    return (c.halted || c.waitSipi) && !c.initPending && c.sipiVector < 0;
  }

  reset(): void {
    const c = this.#c;
    this.#initState();
    c.apicBase = c.bsp ? 0xfee00900 : 0xfee00800; // BSP flag on CPU 0
    c.msrs.clear();
    c.fpu.init();
    c.sse.reset();
    c.initPending = false;
    c.sipiVector = -1;
  }

  /**
   * The state RESET and INIT share (SDM vol. 3 table 9-1): registers, segments and
   * control registers; the x87 state, MTRRs, PAT and IA32_APIC_BASE survive an INIT.
   * An application processor then waits for a STARTUP IPI.
   */
  #initState(): void {
    const c = this.#c;
    c.regs.fill(0);
    c.regsHi.fill(0);
    c.ripHi = 0;
    c.cr2Hi = c.cr8 = 0;
    c.gdtBaseHi = c.idtBaseHi = 0;
    setWindow(c, 0); // the TLB's window-0 arrays (long mode may have swapped in others)
    const m = c.model;
    c.regs[EDX] = m.signature;
    c.flags = 2;
    c.lzMask = 0;
    c.cr0 = m.family <= 2 ? 0 : 0x60000010;
    c.cr2 =
      c.cr3 =
      c.cr4 =
      c.efer =
        0;
    c.dr.fill(0);
    c.dr[6] = 0xffff0ff0 | 0;
    c.dr[7] = 0x400;
    c.gdtBase = c.idtBase = 0;
    c.gdtLimit = c.idtLimit = 0xffff;
    for (let s = 0; s < 6; s++) setSegCache(c, s, 0, 0, 0xffff, 0x93);
    setSegCache(c, CS, 0xf000, 0xffff0000, 0xffff, 0x93);
    setSegCache(c, LDTR, 0, 0, 0xffff, 0x82);
    setSegCache(c, TR, 0, 0, 0xffff, 0x8b);
    setCpl(c, 0);
    c.eip = 0xfff0;
    c.halted =
      c.shutdown =
      c.nmiPending =
      c.nmiBlocked =
      c.shadow =
        false;
    c.exitRequested = c.resetRequested = false;
    c.attention = true;
    c.sysenterCs = c.sysenterEsp = c.sysenterEip = 0;
    c.yieldRequested = false;
    c.waitSipi = !c.bsp;
    resetPrefixes(c);
    flushTlb(c);
  }

  init(): void {
    this.#c.initPending = true;
    this.#c.attention = true;
  }

  startup(vector: number): void {
    const c = this.#c;
    // A SIPI reaches only an AP in wait-for-SIPI (or about to be, after a pending INIT).
    if (!c.waitSipi && !(c.initPending && !c.bsp)) return;
    c.sipiVector = vector & 0xff;
    c.attention = true;
  }

  /** Sets CS:IP the real-mode way (loaders, tests). */
  jumpReal(cs: number, ip: number): void {
    const c = this.#c;
    setSegCache(c, CS, cs, cs << 4, 0xffff, 0x93);
    c.eip = ip;
    c.halted = false;
  }

  run(maxInstructions: number): RunExit {
    const stats = this.#stats;
    if (stats === null) return this.#run(maxInstructions);
    const t0 = stats.enter();
    const exit = this.#run(maxInstructions);
    stats.leave(
      t0,
      exit === RunExit.Halt || exit === RunExit.HaltNoInterrupts,
      this.#c,
      this.#blocks,
    );
    return exit;
  }

  #run(maxInstructions: number): RunExit {
    const c = this.#c;
    // Devices, timers and other CPUs ran since the last slice: translated code re-checks
    // its guest bytes.
    c.codeEpoch++;
    const end = c.retired + maxInstructions;
    c.sliceEnd = end;
    c.attention = true;
    for (;;) {
      try {
        for (;;) {
          if (c.attention) {
            const exit = this.#boundary();
            if (exit >= 0) return exit as RunExit;
            if (exit === SHADOWED) {
              // A slice that ends before the shadowed instruction keeps the shadow, or the
              // next slice would deliver an interrupt between `sti` and `hlt` and the
              // handler would return onto the HLT.
              if (c.retired >= end) {
                c.shadow = true;
                return RunExit.Budget;
              }
              stepOne(c);
              continue;
            }
            if (exit === SINGLE_STEP) {
              if (c.retired >= end) return RunExit.Budget;
              singleStep(c);
              continue;
            }
          }
          if (c.retired >= end) return RunExit.Budget;
          // Long mode (64-bit and compatibility) runs in the interpreter: the translators
          // decline it for now (jit/ and wasm/ know 32-bit linear addresses only).
          if (this.#blocks !== null && (c.efer & EFER_LMA) === 0) {
            executeWithBlocks(c, end, this.#blocks);
          } else execute(c, end);
        }
      } catch (e) {
        if (e !== FAULT) throw e;
        c.eip = c.instrStart;
        resetPrefixes(c);
        if (!deliverException(c, FAULT)) {
          c.shutdown = true;
          return RunExit.Shutdown;
        }
      }
    }
  }

  /** The instruction-boundary work: memory map changes, exits, NMI and INTR. */
  #boundary(): number {
    const c = this.#c;
    c.attention = false;
    if (c.memGeneration !== c.mem.generation) flushTlb(c);
    if (c.shutdown) return RunExit.Shutdown;
    if (c.resetRequested) {
      c.resetRequested = false;
      c.attention = true;
      return RunExit.Reset;
    }
    if (c.initPending || c.waitSipi) {
      if (c.initPending) {
        c.initPending = false;
        this.#initState();
        if (!c.waitSipi) c.sipiVector = -1;
      }
      if (c.waitSipi) {
        c.attention = true;
        if (c.sipiVector < 0) return RunExit.HaltNoInterrupts;
        // SDM vol. 3 §8.4.4.1: the AP starts in real mode at vector << 12.
        this.jumpReal(c.sipiVector << 8, 0);
        c.sipiVector = -1;
        c.waitSipi = false;
      }
    }
    if (c.exitRequested) {
      c.exitRequested = false;
      c.attention = true;
      return RunExit.Exit;
    }
    if (c.yieldRequested) {
      c.yieldRequested = false;
      c.attention = true;
      return RunExit.Yield;
    }
    if (c.shadow) {
      c.shadow = false;
      c.attention = true;
      return SHADOWED;
    }
    if (c.nmiPending && !c.nmiBlocked) {
      c.nmiPending = false;
      c.nmiBlocked = true;
      c.instrStart = c.eip;
      deliverInterrupt(c, 2, INT_EXTERNAL, -1);
    } else if ((c.flags & IF) !== 0 && c.intSource !== null && c.intSource.hasPending()) {
      c.instrStart = c.eip;
      const vector = c.intSource.acknowledge();
      deliverInterrupt(c, vector & 0xff, INT_EXTERNAL, -1);
    }
    if (c.halted) {
      c.attention = true;
      return (c.flags & IF) !== 0 ? RunExit.Halt : RunExit.HaltNoInterrupts;
    }
    if ((c.flags & TF) !== 0) {
      c.attention = true;
      return SINGLE_STEP;
    }
    return -1;
  }

  setInterruptSource(source: InterruptSource | null): void {
    this.#c.intSource = source;
    this.#c.attention = true;
  }

  raiseNmi(): void {
    this.#c.nmiPending = true;
    this.#c.attention = true;
  }

  requestExit(): void {
    this.#c.exitRequested = true;
    this.#c.attention = true;
  }

  setPauseYield(yields: boolean): void {
    this.#c.yieldOnPause = yields && this.#multi;
  }

  requestReset(): void {
    this.#c.resetRequested = true;
    this.#c.attention = true;
  }

  /** Drives the A20 gate (keyboard controller or port 92h): off masks address bit 20. */
  setA20(enabled: boolean): void {
    const mask = enabled ? -1 : ~(1 << 20);
    if (mask !== this.#c.a20Mask) {
      this.#c.a20Mask = mask;
      flushTlb(this.#c);
    }
  }

  registers(): Record<string, number> {
    const state = new X86State();
    this.getState(state);
    return x86RegisterValues(state);
  }

  getState(state: X86State): void {
    saveArchState(this.#c, state);
  }

  setState(state: X86State): void {
    loadArchState(this.#c, state);
    this.#blocks?.clear();
  }
}
