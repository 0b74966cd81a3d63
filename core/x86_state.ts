// The x86 architectural state as one fixed byte layout: registers a guest can see, 64-bit wide

/**
 * Byte offsets of the fields of {@linkcode X86State} in its buffer. The layout is fixed
 * and little-endian so that the state can sit inside a `WebAssembly.Memory` beside guest
 * RAM: translated code then reads a register with one `i64.load offset=X86_GPR + 8*r`, a
 * KVM backend copies it to and from `struct kvm_regs`/`kvm_sregs`, and savevm stores the
 * bytes as they are. Every field is as wide as x86-64 makes it (sixteen 64-bit GPRs,
 * 64-bit RIP, RFLAGS, segment bases, control and debug registers); a 32-bit CPU leaves
 * the upper halves zero.
 */
export const X86_GPR = 0x000; // 16 x u64: RAX RCX RDX RBX RSP RBP RSI RDI R8..R15
export const X86_RIP = 0x080; // u64
export const X86_RFLAGS = 0x088; // u64
export const X86_CR0 = 0x090; // u64 each: CR0, CR2, CR3, CR4, CR8
export const X86_CR2 = 0x098;
export const X86_CR3 = 0x0a0;
export const X86_CR4 = 0x0a8;
export const X86_CR8 = 0x0b0;
export const X86_EFER = 0x0b8; // u64
export const X86_DR = 0x0c0; // 8 x u64: DR0..DR7 (DR4 and DR5 kept, unused)
export const X86_GDTR_BASE = 0x100; // u64, then the limit as u32 at +8
export const X86_GDTR_LIMIT = 0x108;
export const X86_IDTR_BASE = 0x110;
export const X86_IDTR_LIMIT = 0x118;
/** Current privilege level (u8) and the event bits {@linkcode X86_EV_HALTED}... (u8, u16). */
export const X86_CPL = 0x11c;
export const X86_EVENTS = 0x11e;
/**
 * 8 segment registers of {@linkcode X86_SEG_SIZE} bytes in the order ES CS SS DS FS GS
 * LDTR TR: selector u16 at +0, attributes u16 at +2, limit u32 at +4 (in bytes, already
 * scaled by G), base u64 at +8. The attributes are bits 8..23 of a descriptor's high
 * dword: type, S, DPL, P in bits 0..7, AVL, L, D/B, G in bits 12..15 (bits 8..11, the
 * limit's top nibble in a descriptor, are ignored).
 */
export const X86_SEG = 0x120;
export const X86_SEG_SIZE = 16;
/** Architectural MSRs with a fixed place (u64 each), in the order of {@linkcode X86_MSR_INDEX}. */
export const X86_MSR = 0x1a0;
/** The x87 control, status and tag words, last opcode (u16 each), then FIP and FDP (u64). */
export const X86_FCW = 0x220;
export const X86_FSW = 0x222;
/** Full tag word, two bits per physical register R0..R7 (00 valid, 01 zero, 10 special, 11 empty). */
export const X86_FTW = 0x224;
export const X86_FOP = 0x226;
export const X86_FIP = 0x228;
export const X86_FDP = 0x230;
export const X86_FCS = 0x238; // u16
export const X86_FDS = 0x23a; // u16
export const X86_MXCSR = 0x23c; // u32
/** ST(0)..ST(7) (relative to TOP, as FXSAVE stores them): 80-bit extended values in 16 bytes each. */
export const X86_ST = 0x240;
/** XMM0..XMM15, 16 bytes each. */
export const X86_XMM = 0x2c0;
/** Count (u32) of the further MSRs that follow at {@linkcode X86_MSR_TABLE}. */
export const X86_MSR_COUNT = 0x3c0;
/** Further MSRs: {@linkcode X86_MSR_TABLE_MAX} entries of index u32, pad u32, value u64. */
export const X86_MSR_TABLE = 0x400;
export const X86_MSR_TABLE_MAX = 64;
/** Bytes of the whole layout (a multiple of 64, so consecutive CPUs keep alignment). */
export const X86_STATE_BYTES = X86_MSR_TABLE + 16 * X86_MSR_TABLE_MAX;

/** Bits of the event word at {@linkcode X86_EVENTS}: what `KVM_GET_VCPU_EVENTS` also carries. */
export const X86_EV_HALTED = 0x1, X86_EV_NMI_PENDING = 0x2, X86_EV_NMI_BLOCKED = 0x4;
/** Interrupts inhibited for one instruction (after STI, MOV SS). */
export const X86_EV_SHADOW = 0x8;
/** An application processor waits for a STARTUP IPI. */
export const X86_EV_WAIT_SIPI = 0x10;

/** The MSRs with a fixed slot at {@linkcode X86_MSR}, by slot. */
export const X86_MSR_INDEX: readonly number[] = [
  0x174, // IA32_SYSENTER_CS
  0x175, // IA32_SYSENTER_ESP
  0x176, // IA32_SYSENTER_EIP
  0xc0000081, // STAR
  0xc0000082, // LSTAR
  0xc0000083, // CSTAR
  0xc0000084, // SFMASK (FMASK)
  0xc0000102, // KERNEL_GS_BASE
  0x10, // IA32_TSC
  0x1b, // IA32_APIC_BASE
  0x277, // IA32_PAT
  0xc0000103, // TSC_AUX
];

/** Segment register numbers in the layout (ModRM `reg` order, then LDTR and TR). */
export const X86_ES = 0, X86_CS = 1, X86_SS = 2, X86_DS = 3, X86_FS = 4, X86_GS = 5;
export const X86_LDTR = 6, X86_TR = 7;

/** One segment register as {@linkcode X86State.segment} returns it. */
export interface X86Segment {
  selector: number;
  /** Descriptor bits 8..23 (see {@linkcode X86_SEG}). */
  attributes: number;
  /** The limit in bytes (0..0xffffffff). */
  limit: number;
  /** The base (a linear address, up to 64 bits; exact as a number up to 2^53). */
  base: number;
}

/**
 * The architectural state of one x86 CPU: what a guest can observe and what moves
 * between backends (interpreter, translator, KVM), the monitor and savevm. It is a view
 * over {@linkcode X86_STATE_BYTES} bytes of a buffer, which may be an `ArrayBuffer`,
 * a `SharedArrayBuffer` or a `WebAssembly.Memory`'s buffer (where guest RAM lives too),
 * at any 64-byte aligned offset. Nothing of an executor's scratch (decoder state, lazy
 * flags, TLBs, translation caches) is in it: `getState` materialises such things first.
 *
 * 64-bit fields are read and written as numbers through the `…64` accessors, exact up to
 * 2^53 (addresses and most values); `bigint` accessors give the full width.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { X86_CS, X86State } from "./x86_state.ts";
 *
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const state = new X86State(memory.buffer, 4096 - 2048);
 * state.setGpr(0, 0x1234_5678_9abc_def0n);
 * state.rip = 0xfff0;
 * state.setSegment(X86_CS, { selector: 0xf000, attributes: 0x93, limit: 0xffff, base: 0xffff0000 });
 * assert.equal(state.gpr32(0), 0x9abcdef0);
 * assert.equal(state.segment(X86_CS).base, 0xffff0000);
 * assert.equal(new X86State(memory.buffer, 2048).rip, 0xfff0); // the bytes live in the memory
 * ```
 */
export class X86State {
  /** The state's bytes (a view of the buffer it was made over). */
  readonly bytes: Uint8Array;
  readonly #view: DataView;

  /** A state over `buffer` at `byteOffset` (64-byte aligned), or over fresh zeroed memory. */
  constructor(buffer?: ArrayBufferLike, byteOffset = 0) {
    if ((byteOffset & 63) !== 0) {
      throw new RangeError(`X86State offset must be 64-byte aligned: got ${byteOffset}`);
    }
    const buf = buffer ?? new ArrayBuffer(X86_STATE_BYTES);
    if (byteOffset + X86_STATE_BYTES > buf.byteLength) {
      throw new RangeError(`X86State needs ${X86_STATE_BYTES} bytes at offset ${byteOffset}`);
    }
    this.bytes = new Uint8Array(buf, byteOffset, X86_STATE_BYTES);
    this.#view = new DataView(buf, byteOffset, X86_STATE_BYTES);
  }

  /** Copies every field of `other` into this state. */
  copyFrom(other: X86State): void {
    this.bytes.set(other.bytes);
  }

  /** Zeroes every field. */
  clear(): void {
    this.bytes.fill(0);
  }

  /** The unsigned 64-bit field at byte `offset` as a number (exact up to 2^53). */
  u64(offset: number): number {
    return this.#view.getUint32(offset + 4, true) * 4294967296 +
      this.#view.getUint32(offset, true);
  }
  /** Writes a non-negative number (or a negative int32, sign-extended) as 64 bits. */
  setU64(offset: number, value: number): void {
    if (value < 0 && value >= -2147483648) {
      this.#view.setInt32(offset, value, true);
      this.#view.setInt32(offset + 4, -1, true);
      return;
    }
    this.#view.setUint32(offset, value >>> 0, true);
    this.#view.setUint32(offset + 4, Math.floor(value / 4294967296) >>> 0, true);
  }
  u32(offset: number): number {
    return this.#view.getUint32(offset, true);
  }
  setU32(offset: number, value: number): void {
    this.#view.setUint32(offset, value >>> 0, true);
  }
  u16(offset: number): number {
    return this.#view.getUint16(offset, true);
  }
  setU16(offset: number, value: number): void {
    this.#view.setUint16(offset, value & 0xffff, true);
  }

  /** General register `r` (0..15) as a full 64-bit value. */
  gpr(r: number): bigint {
    return this.#view.getBigUint64(X86_GPR + 8 * r, true);
  }
  setGpr(r: number, value: bigint): void {
    this.#view.setBigUint64(X86_GPR + 8 * r, BigInt.asUintN(64, value), true);
  }
  /** The low 32 bits of general register `r` (unsigned). */
  gpr32(r: number): number {
    return this.#view.getUint32(X86_GPR + 8 * r, true);
  }
  /** Writes the low 32 bits of register `r` and zeroes the upper half (as a 32-bit write in long mode). */
  setGpr32(r: number, value: number): void {
    this.#view.setUint32(X86_GPR + 8 * r, value >>> 0, true);
    this.#view.setUint32(X86_GPR + 8 * r + 4, 0, true);
  }

  get rip(): number {
    return this.u64(X86_RIP);
  }
  set rip(v: number) {
    this.setU64(X86_RIP, v);
  }
  get rflags(): number {
    return this.u64(X86_RFLAGS);
  }
  set rflags(v: number) {
    this.setU64(X86_RFLAGS, v);
  }
  get cpl(): number {
    return this.bytes[X86_CPL];
  }
  set cpl(v: number) {
    this.bytes[X86_CPL] = v & 3;
  }
  /** The {@linkcode X86_EV_HALTED}... bits. */
  get events(): number {
    return this.u16(X86_EVENTS);
  }
  set events(v: number) {
    this.setU16(X86_EVENTS, v);
  }

  /** Segment register `s` ({@linkcode X86_ES}..{@linkcode X86_TR}). */
  segment(s: number): X86Segment {
    const at = X86_SEG + X86_SEG_SIZE * s;
    return {
      selector: this.u16(at),
      attributes: this.u16(at + 2),
      limit: this.u32(at + 4),
      base: this.u64(at + 8),
    };
  }
  setSegment(s: number, seg: X86Segment): void {
    const at = X86_SEG + X86_SEG_SIZE * s;
    this.setU16(at, seg.selector);
    this.setU16(at + 2, seg.attributes);
    this.setU32(at + 4, seg.limit);
    this.setU64(at + 8, seg.base);
  }

  /** The value of MSR `index` when it has a fixed slot or a table entry, else undefined. */
  msr(index: number): bigint | undefined {
    const slot = X86_MSR_INDEX.indexOf(index);
    if (slot >= 0) return this.#view.getBigUint64(X86_MSR + 8 * slot, true);
    const n = this.u32(X86_MSR_COUNT);
    for (let i = 0; i < n; i++) {
      const at = X86_MSR_TABLE + 16 * i;
      if (this.u32(at) === index) return this.#view.getBigUint64(at + 8, true);
    }
    return undefined;
  }

  /**
   * Sets MSR `index`: its fixed slot, or its entry in the table (added when new).
   * Throws RangeError when the table is full.
   */
  setMsr(index: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    const slot = X86_MSR_INDEX.indexOf(index);
    if (slot >= 0) {
      this.#view.setBigUint64(X86_MSR + 8 * slot, v, true);
      return;
    }
    const n = this.u32(X86_MSR_COUNT);
    for (let i = 0; i < n; i++) {
      const at = X86_MSR_TABLE + 16 * i;
      if (this.u32(at) === index) {
        this.#view.setBigUint64(at + 8, v, true);
        return;
      }
    }
    if (n >= X86_MSR_TABLE_MAX) throw new RangeError(`X86State holds at most ${n} other MSRs`);
    const at = X86_MSR_TABLE + 16 * n;
    this.setU32(at, index);
    this.setU32(at + 4, 0);
    this.#view.setBigUint64(at + 8, v, true);
    this.setU32(X86_MSR_COUNT, n + 1);
  }

  /** The indices of the MSRs in the table (beyond the fixed slots). */
  tableMsrs(): number[] {
    const out: number[] = [];
    const n = this.u32(X86_MSR_COUNT);
    for (let i = 0; i < n; i++) out.push(this.u32(X86_MSR_TABLE + 16 * i));
    return out;
  }

  /** ST(i) as its 10 bytes (80-bit extended, little-endian). */
  st(i: number): Uint8Array {
    return this.bytes.subarray(X86_ST + 16 * i, X86_ST + 16 * i + 10);
  }
  /** XMM register `i` as its 16 bytes. */
  xmm(i: number): Uint8Array {
    return this.bytes.subarray(X86_XMM + 16 * i, X86_XMM + 16 * i + 16);
  }
}

const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"];
const GPR_NAMES = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];

/**
 * Named register values for the monitor (`info registers`) from a state: the 32-bit
 * names a 32-bit guest knows (eax, eip, eflags, segment selectors with `_base` and
 * `_limit`, control registers, descriptor tables, cpl).
 */
export function x86RegisterValues(s: X86State): Record<string, number> {
  const out: Record<string, number> = {};
  GPR_NAMES.forEach((n, i) => (out[n] = s.gpr32(i)));
  out.eip = s.rip;
  out.eflags = s.rflags;
  SEG_NAMES.forEach((n, i) => {
    const seg = s.segment(i);
    out[n] = seg.selector;
    out[`${n}_base`] = seg.base;
    out[`${n}_limit`] = seg.limit;
  });
  out.cr0 = s.u64(X86_CR0);
  out.cr2 = s.u64(X86_CR2);
  out.cr3 = s.u64(X86_CR3);
  out.cr4 = s.u64(X86_CR4);
  out.gdt_base = s.u64(X86_GDTR_BASE);
  out.gdt_limit = s.u32(X86_GDTR_LIMIT);
  out.idt_base = s.u64(X86_IDTR_BASE);
  out.idt_limit = s.u32(X86_IDTR_LIMIT);
  out.cpl = s.cpl;
  return out;
}
