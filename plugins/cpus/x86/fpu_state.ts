// x87 FPU registers: a double-precision stack with real tag, control and status words

/** Tag values (two bits per physical register). */
export const TAG_VALID = 0, TAG_ZERO = 1, TAG_SPECIAL = 2, TAG_EMPTY = 3;

/**
 * The x87 register file. Values are held as doubles (53-bit mantissa); the stack,
 * tags, control word and status word behave as on the hardware, which is what
 * FNINIT/FNSTSW/FNSTCW probes and the kernel's FPU handling look at.
 */
export class FpuState {
  /** Physical registers R0..R7; ST(i) is R[(top + i) & 7]. */
  readonly regs: Float64Array = new Float64Array(8);
  /**
   * Physical registers whose 80-bit contents a double cannot hold (exponent all ones: NaN
   * payloads, pseudo-infinities, later MMX values): bit p set means {@linkcode rawWords}
   * (significand low, high) and {@linkcode rawSe} hold register p exactly, and regs[p] is its
   * double reading. An x87 write clears the bit.
   */
  raw = 0;
  readonly rawWords: Int32Array = new Int32Array(16);
  readonly rawSe: Uint16Array = new Uint16Array(8);
  /** Tag word, two bits per physical register. */
  tag = 0xffff;
  top = 0;
  /** Control word (FNINIT value 0x037F). */
  cw = 0x037f;
  /** Status word without TOP (bits 11..13 come from {@linkcode top}). */
  sw = 0;
  /** Last instruction and operand pointers (FNSTENV). */
  fip = 0;
  fcs = 0;
  fdp = 0;
  fds = 0;
  fop = 0;

  /** FNINIT. */
  init(): void {
    this.cw = 0x037f;
    this.sw = 0;
    this.top = 0;
    this.tag = 0xffff;
    this.fip =
      this.fcs =
      this.fdp =
      this.fds =
      this.fop =
        0;
  }

  /** The status word with TOP merged in. */
  statusWord(): number {
    return (this.sw & ~0x3800) | (this.top << 11);
  }
}
