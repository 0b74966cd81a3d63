// Guest RAM in one WebAssembly.Memory, with a state area per CPU that compiled code reads

/** Bytes reserved at the start of the memory for CPU state areas. */
export const STATE_AREA = 4 << 20;
/** Bytes of one CPU's state area (so up to 32 CPUs get one). */
export const CPU_AREA = 128 << 10;

/**
 * Layout of a CPU's state area, in bytes from its start. The general registers are the
 * interpreter's own `regs` array (a view of this memory once the CPU is attached); the
 * lazy flags and EIP are copied in and out around a call into compiled code.
 */
export const ST_REGS = 0, ST_EIP = 64, ST_FLAGS = 68, ST_LZMASK = 72, ST_LZOP = 76;
export const ST_LZSIZE = 80, ST_LZDST = 84, ST_LZSRC = 88, ST_LZRES = 92;
/** `tlbUser` times the TLB entry size (selects the user half). */
export const ST_TLBUSER = 96;
/** Set by the slow-path helpers: 1 something needs the boundary, 2 the access faulted. */
export const ST_STATUS = 100;
/** The lazy-flag fields in the order flags, mask, op, size, dst, src, res. */
export const ST_LAZY = [
  ST_FLAGS,
  ST_LZMASK,
  ST_LZOP,
  ST_LZSIZE,
  ST_LZDST,
  ST_LZSRC,
  ST_LZRES,
] as const;
/** Calls of the condition helper (statistics, counted by the helper itself). */
export const ST_CONDCALLS = 104;
/**
 * The wasm TLB: 2 x 1024 entries of 32 bytes: the linear page number that may be read
 * (i64, -1 none) at +0, that may be written at +8, and the memory address of the page at
 * +16. The key is the whole linear page number as an i64, not a 32-bit tag, so the same
 * layout serves 48-bit linear addresses.
 */
export const ST_TLB = 4096;
export const TLB_ENTRY = 32;
/**
 * Chaining (wasm/trampoline.ts): the generation a chain entry must carry to be used,
 * the instructions the trampoline retired before the region now running (the slow-path
 * helpers count from it), and chained calls made (statistics).
 */
export const ST_CHAINGEN = 108, ST_CHAINBASE = 112, ST_CHAINHOPS = 116;
/**
 * The chain table, after the TLB: {@linkcode CHAIN_ENTRIES} entries of 16 bytes keyed by
 * a hash of EIP ({@linkcode chainIndex}): EIP, the region's table slot, the generation it
 * was entered in, and the instructions of its entry block.
 */
export const ST_CHAIN = 72 << 10;
export const CHAIN_ENTRIES = 2048;

/** The chain table entry of `eip` (0 .. CHAIN_ENTRIES - 1). */
export function chainIndex(eip: number): number {
  return (eip ^ (eip >>> 12)) & (CHAIN_ENTRIES - 1);
}

/** A WebAssembly.Memory holding guest RAM past {@linkcode STATE_AREA}. */
export class WasmRam {
  readonly buffer: ArrayBuffer;
  #nextArea = 0;

  constructor(readonly memory: WebAssembly.Memory) {
    this.buffer = memory.buffer as ArrayBuffer;
  }

  /** A state area for one more CPU (its byte offset), or -1 when all are taken. */
  allocateCpuArea(): number {
    if (this.#nextArea + CPU_AREA > STATE_AREA) return -1;
    const at = this.#nextArea;
    this.#nextArea += CPU_AREA;
    return at;
  }
}

const RAMS = new WeakMap<ArrayBuffer, WasmRam>();

/** The {@linkcode WasmRam} whose memory backs `bytes`, if any. */
export function wasmRamOf(bytes: Uint8Array): WasmRam | undefined {
  return RAMS.get(bytes.buffer as ArrayBuffer);
}

/**
 * Allocates `bytes` of zeroed guest RAM inside a new WebAssembly.Memory (the x86
 * backend's `allocateRam`), so translated code reaches it with plain loads and stores.
 * Falls back to an ordinary array when the memory cannot be had (past 4 GiB in all).
 */
export function allocateWasmRam(bytes: number): Uint8Array {
  const pages = Math.ceil((STATE_AREA + bytes) / 65536);
  if (pages > 65536) return new Uint8Array(bytes);
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  } catch {
    return new Uint8Array(bytes);
  }
  const ram = new WasmRam(memory);
  RAMS.set(ram.buffer, ram);
  return new Uint8Array(ram.buffer, STATE_AREA, bytes);
}
