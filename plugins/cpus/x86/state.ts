// The x86 register file and interpreter working state shared by the modules of this folder

import type { AddressSpace } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import type { CpuTopology, InterruptSource } from "../../../core/cpu.ts";
import type { CpuModel } from "./models.ts";
import { FpuState } from "./fpu_state.ts";
import { SseState } from "./sse_state.ts";

/** General register numbers (REX extends them to 15 later). */
export const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;

/** Segment register numbers, in ModRM `reg` order; LDTR and TR share the caches. */
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5, LDTR = 6, TR = 7;
/**
 * The pseudo segment of 64-bit mode's memory operands: base 0, limits open while the
 * operand's upper address half (`eaHi`) is the TLB's window (`linHi`), else closed so the
 * access takes the slow path, which moves the window (see paging_long.ts).
 */
export const SEG_LIN = 8;

/** EFLAGS bits (Intel SDM vol. 1 §3.4.3). */
export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, IF = 0x200;
export const DF = 0x400, OF = 0x800, IOPL = 0x3000, NT = 0x4000, RF = 0x10000, VM = 0x20000;
export const AC = 0x40000, VIF = 0x80000, VIP = 0x100000, ID = 0x200000;
/** The six arithmetic status flags. */
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;

/** CR0 bits. */
export const CR0_PE = 0x1, CR0_MP = 0x2, CR0_EM = 0x4, CR0_TS = 0x8, CR0_ET = 0x10;
export const CR0_NE = 0x20, CR0_WP = 0x10000, CR0_AM = 0x40000, CR0_NW = 0x20000000;
export const CR0_CD = 0x40000000, CR0_PG = 0x80000000 | 0;
/** CR4 bits. */
export const CR4_VME = 0x1, CR4_PVI = 0x2, CR4_TSD = 0x4, CR4_DE = 0x8, CR4_PSE = 0x10;
export const CR4_PAE = 0x20, CR4_MCE = 0x40, CR4_PGE = 0x80, CR4_PCE = 0x100;
export const CR4_OSFXSR = 0x200, CR4_OSXMMEXCPT = 0x400;
/** EFER bits. */
export const EFER_SCE = 0x1, EFER_LME = 0x100, EFER_LMA = 0x400, EFER_NXE = 0x800;

/** Exception vectors. */
export const EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5;
export const EXC_UD = 6, EXC_NM = 7, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12;
export const EXC_GP = 13, EXC_PF = 14, EXC_MF = 16, EXC_AC = 17, EXC_MC = 18, EXC_XM = 19;

/**
 * Lazy flag producers: how to derive the status flags from the last result. For the
 * shifts `lzSrc` holds the (non-zero, masked) count.
 */
export const LZ_ADD = 0, LZ_SUB = 1, LZ_LOGIC = 2, LZ_SHL = 3, LZ_SHR = 4, LZ_SAR = 5;

/** Entries per privilege half of the software TLB. */
export const TLB_BITS = 10;
export const TLB_SIZE = 1 << TLB_BITS;
export const TLB_MASK = TLB_SIZE - 1;

/** One window's TLB arrays (see {@linkcode CpuCore.tlbSets}). */
export interface TlbArrays {
  hi: number;
  used: number;
  tagR: Int32Array;
  tagW: Int32Array;
  off: Int32Array;
  bytes: Uint8Array[];
  u16: Uint16Array[];
  i32: Int32Array[];
  itag: Int32Array;
  iphys: Int32Array;
}

/** An opcode handler: executes one decoded instruction. */
export type OpHandler = (c: CpuCore) => void;

/** Thrown (one preallocated object) to unwind an instruction that faults. */
export const FAULT: Error = new Error("x86 exception");

const EMPTY_BYTES = new Uint8Array(0);

/**
 * The whole state of one x86 CPU plus the decoder's per-instruction scratch. Fields
 * are public because the interpreter modules of this folder share them on the hot
 * path; code outside the folder uses {@linkcode X86Cpu}.
 */
export class CpuCore {
  /**
   * General registers as int32. The wasm tier replaces the array with a view of its
   * state area in guest RAM's memory (between instructions, values kept).
   */
  regs: Int32Array = new Int32Array(16);
  /**
   * The upper halves of the 64-bit registers. Only 64-bit code reads or writes them
   * (a 32-bit write zeroes its register's upper half in 64-bit mode only), so 32-bit
   * code pays nothing for them.
   */
  readonly regsHi: Int32Array = new Int32Array(16);
  /** Offset of the next instruction byte in CS (int32 bit pattern); RIP's low half. */
  eip = 0;
  /** RIP's upper half (64-bit mode). */
  ripHi = 0;
  /** EIP of the instruction being executed (faults restart from here). */
  instrStart = 0;

  /** EFLAGS, except bits named in {@linkcode lzMask}, which come from the last result. */
  flags = 2;
  lzMask = 0;
  lzOp = 0;
  lzDst = 0;
  lzSrc = 0;
  lzRes = 0;
  /** Operand width of the last flag-producing result in bits (8, 16, 32). */
  lzSize = 8;

  /** Segment caches: selector, base, limit, descriptor attribute bits 8..23 of dword 2. */
  readonly segSel: Uint16Array = new Uint16Array(9);
  readonly segBase: Int32Array = new Int32Array(9);
  /** Upper halves of the bases (FS, GS, LDTR and TR in long mode). */
  readonly segBaseHi: Int32Array = new Int32Array(9);
  readonly segLimit: Float64Array = new Float64Array(9);
  readonly segAttr: Uint16Array = new Uint16Array(9);
  /** Valid offset ranges for reads and writes (derived from the caches; 8 is SEG_LIN). */
  readonly rdLo: Float64Array = new Float64Array(9);
  readonly rdHi: Float64Array = new Float64Array(9);
  readonly wrLo: Float64Array = new Float64Array(9);
  readonly wrHi: Float64Array = new Float64Array(9);
  cpl = 0;
  /** CS.D: default operand and address size 32. */
  code32 = false;
  /** SS.B: the stack pointer is ESP rather than SP. */
  stack32 = false;

  /** CS.L with EFER.LMA: 64-bit mode (the decoder uses `table64`). */
  code64 = false;
  /** The upper 32 bits of every linear address the TLB holds (64-bit mode's window). */
  linHi = 0;
  /** The upper half of the memory operand's linear address (64-bit mode, SEG_LIN). */
  eaHi = 0;
  /**
   * 0 outside 64-bit mode; in it 0x100 | the REX prefix of the instruction in flight
   * (0x40..0x4F, or 0 without one). ModRM decoding tests it once for all of long mode.
   */
  rex = 0;
  /** Bytes of immediate after a ModRM operand (RIP-relative addresses end there). */
  immLen = 0;
  /** The memory operand is a stack reference (#SS rather than #GP when non-canonical). */
  eaStack = false;
  /** Scratch: the upper half of a 64-bit value a helper returns. */
  tHi = 0;

  cr0 = 0x60000010;
  cr2 = 0;
  cr2Hi = 0;
  cr8 = 0;
  cr3 = 0;
  cr4 = 0;
  efer = 0;
  readonly dr: Int32Array = new Int32Array(8);
  gdtBase = 0;
  gdtBaseHi = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtBaseHi = 0;
  idtLimit = 0x3ff;

  // Decoder scratch for the instruction in flight.
  /** The opcode table in force (changes with 66h). */
  table: OpHandler[] = [];
  table16: OpHandler[] = [];
  table32: OpHandler[] = [];
  /** 64-bit mode's table (operand size from REX.W and 66h at run time). */
  table64: OpHandler[] = [];
  op32 = false;
  addr32 = false;
  /** 64-bit mode: 67h makes addresses 32-bit (`addr32` stays true there). */
  addrOvr = false;
  /** Segment override or -1. */
  segOvr = -1;
  /** 0, 0xF2 (REPNE) or 0xF3 (REP/REPE). */
  rep = 0;
  lock = false;
  /** A prefix was seen: reset the prefix state before the next instruction. */
  prefixed = false;
  prefixCount = 0;
  modMod = 0;
  modReg = 0;
  modRm = 0;
  eaSeg = DS;
  /**
   * The memory operand's offset as an int32 bit pattern (`>>> 0` gives it): a uint32 above
   * 2^31 (every kernel address) would be a double field, boxed whenever it is passed to a
   * call V8 did not inline. The accessors below take either form.
   */
  eaOff = 0;

  // Memory and I/O.
  mem: AddressSpace;
  io: PortIoSpace;
  memGeneration = -1;
  a20Mask = -1;
  /** Software TLB: tags per (user half, index), page offset into the backing bytes. */
  tlbTagR: Int32Array = new Int32Array(2 * TLB_SIZE).fill(-1);
  tlbTagW: Int32Array = new Int32Array(2 * TLB_SIZE).fill(-1);
  tlbOff: Int32Array = new Int32Array(2 * TLB_SIZE);
  tlbBytes: Uint8Array[] = new Array(2 * TLB_SIZE).fill(EMPTY_BYTES);
  /** Word and dword views of the same backing memory, for aligned accesses. */
  tlbU16: Uint16Array[] = new Array(2 * TLB_SIZE).fill(new Uint16Array(0));
  tlbI32: Int32Array[] = new Array(2 * TLB_SIZE).fill(new Int32Array(0));
  /**
   * The wasm tier's mirror of the TLB (see wasm/ram.ts: eight int32 per entry, page
   * numbers as i64) and the memory whose addresses it holds; null until attached.
   */
  /**
   * Instruction fetch translations (linear page to physical page), one half per
   * privilege as the data TLB: a jump or fall-through to another page maps the fetch
   * window without a page walk. Flushed with the data TLB.
   */
  itlbTag: Int32Array = new Int32Array(2 * TLB_SIZE).fill(-1);
  itlbPhys: Int32Array = new Int32Array(2 * TLB_SIZE);
  /**
   * Long mode's other TLB windows (paging_long.ts): the arrays above belong to the window
   * `linHi`; these hold the others' (the first, for window 0, is the arrays the CPU was
   * built with, which the translators may hold). Empty until 64-bit code leaves window 0.
   */
  tlbSets: TlbArrays[] = [];
  /** Counts TLB flushes (whole or one page): chained wasm regions depend on the mappings. */
  tlbGen = 0;
  wtlb: Int32Array | null = null;
  wtlbBuffer: ArrayBufferLike | null = null;
  /** TLB_SIZE when accesses are user-mode (CPL 3), else 0. */
  tlbUser = 0;
  /** Set by the page walker: the translated page may be written without a walk. */
  xlWritable = false;
  /** Fetch window: bytes [fetchOff, fetchOff+fetchLen) hold CS offsets from fetchBase. */
  fetchBytes: Uint8Array = EMPTY_BYTES;
  fetchOff = 0;
  fetchBase = 0;
  fetchLen = 0;
  /**
   * One byte per 4 KiB physical page: 1 where the block translator holds code from the
   * page. The TLB never maps such a page for direct writes, so stores take the slow path.
   */
  readonly codePages: Uint8Array = new Uint8Array(1 << 20);
  /**
   * Counts the moments at which guest RAM may have changed behind the translated code's
   * back: a new `run` (devices, timers and other CPUs ran in between), port I/O, every
   * store that went to the bus rather than through the TLB (stores to pages holding code
   * take that path), MMIO reads (a device may DMA) and page-table A/D updates. A
   * translated block checks its guest bytes only on its first entry in an epoch.
   */
  codeEpoch = 0;
  /** Force every fetch through the slow path (instruction length check). */
  lenCheck = false;

  // Exceptions and events.
  excVector = 0;
  excCode = 0;
  excHasCode = false;
  /** Nesting of exception delivery (for double and triple faults). */
  excDepth = 0;
  firstExc = -1;
  halted = false;
  shutdown = false;
  nmiPending = false;
  nmiBlocked = false;
  exitRequested = false;
  resetRequested = false;
  /** Something needs a look at the instruction boundary (interrupts, exit, STI shadow). */
  attention = true;
  /** Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS). */
  shadow = false;
  intSource: InterruptSource | null = null;
  retired = 0;
  /**
   * Where the current `run()` slice ends, in `retired` instructions: a REP string
   * instruction retires one instruction per iteration and stops at this bound (it
   * resumes itself), so a long fill cannot outlast the slice.
   */
  sliceEnd = Number.MAX_SAFE_INTEGER;
  tscOffset = 0;
  /**
   * The machine's virtual clock (instruction ticks) its CPUs share as their TSC; null
   * for a CPU outside a machine (unit tests), whose TSC is its own `retired`.
   */
  tscClock: (() => number) | null = null;

  // Multiprocessor state (SDM vol. 3 §8.4, §10.6).
  /** The bootstrap processor (CPU index 0): reset runs it; APs wait for a SIPI. */
  bsp = true;
  /** Wait-for-SIPI: an AP after RESET or INIT, until a STARTUP IPI arrives. */
  waitSipi = false;
  /** An INIT arrived; taken at the next instruction boundary. */
  initPending = false;
  /** The vector of a STARTUP IPI to take at the next boundary, or -1. */
  sipiVector = -1;
  /** PAUSE ends the run with RunExit.Yield (set when the machine has several CPUs). */
  yieldOnPause = false;
  /** A PAUSE asked for the yield. */
  yieldRequested = false;
  /** The machine's `-smp` topology (CPUID leaves 1, 4, 0xB and 0x80000008 describe it). */
  topology: CpuTopology = { sockets: 1, dies: 1, cores: 1, threads: 1 };

  readonly model: CpuModel;
  /** Longest legal instruction in bytes (10 on the 286, 15 later). */
  maxInstrLen: number;
  /** MSRs kept as simple stores, by index (hi and lo halves). */
  readonly msrs: Map<number, [number, number]> = new Map();
  apicBase = 0xfee00900;
  /** Initial APIC ID (CPUID.1:EBX[31:24]); the bootstrap processor is 0. */
  apicId = 0;
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  readonly fpu: FpuState = new FpuState();
  /** The model's SIMD extensions: bit 0 SSE, bit 1 SSE2, bit 2 SSE3 (CPUID.1 EDX/ECX). */
  readonly sseFeat: number;
  /** XMM registers and MXCSR (sse_state.ts). */
  readonly sse: SseState = new SseState();
  /** Called when the A20 gate output of a device changes nothing here; kept for hooks. */
  smmBase = 0x30000;

  constructor(mem: AddressSpace, io: PortIoSpace, model: CpuModel) {
    this.mem = mem;
    this.io = io;
    this.model = model;
    this.maxInstrLen = model.family <= 2 ? 10 : 15;
    const ecx1 = model.config?.features["1_ECX"] ?? 0;
    this.sseFeat = ((model.features >>> 25) & 1) | (((model.features >>> 26) & 1) << 1) |
      ((ecx1 & 1) << 2) | (((model.features >>> 19) & 1) << 3) |
      (((model.features >>> 23) & 1) << 4);
  }
}

/**
 * Raises exception `vector` from inside an instruction: records it and unwinds to the
 * run loop, which restarts from {@linkcode CpuCore.instrStart} and delivers it.
 * `code` is the error code, or -1 for none.
 */
export function fault(c: CpuCore, vector: number, code = -1): never {
  c.excVector = vector;
  c.excHasCode = code >= 0;
  c.excCode = code >= 0 ? code : 0;
  throw FAULT;
}

/** #GP(code). */
export function gp(c: CpuCore, code = 0): never {
  return fault(c, EXC_GP, code);
}

/** #UD. */
export function ud(c: CpuCore): never {
  return fault(c, EXC_UD);
}
