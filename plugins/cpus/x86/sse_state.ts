// The SIMD register file: XMM0..XMM15 and MXCSR, in one ArrayBuffer seen through typed views

/** MXCSR after reset: every SIMD exception masked, round to nearest (SDM vol. 1 §10.2.3). */
export const MXCSR_RESET = 0x1f80;
/** The MXCSR bits software may set, DAZ included (FXSAVE's MXCSR_MASK, 0xFFFF as QEMU's). */
export const MXCSR_MASK = 0xffff;

/** MXCSR flag bits (the masks are these shifted left by 7). */
export const MX_IE = 0x1, MX_DE = 0x2, MX_ZE = 0x4, MX_OE = 0x8, MX_UE = 0x10, MX_PE = 0x20;
export const MX_DAZ = 0x40, MX_FTZ = 0x8000;
/** Rounding control, MXCSR bits 13..14. */
/**
 * Whether a denormal operand raises DE (without DAZ), as the SDM says. QEMU 7.2 TCG never
 * sets DE from an SSE instruction (checked with tests/cpu_diff), and vmkit follows QEMU:
 * see docs/x86-simd.md.
 */
export const DENORMAL_FLAG = false;
export const RC_NEAREST = 0, RC_DOWN = 1, RC_UP = 2, RC_ZERO = 3;

/** Registers in the file: 16 architectural (XMM8..15 for long mode), then scratch slots. */
export const XMM_COUNT = 16;
/** A scratch slot for a memory source operand. */
export const XMM_SRC = 16;
/** A scratch slot for a result computed before any unmasked exception is known. */
export const XMM_TMP = 17;
/** Two scratch slots for the MMX forms: the destination and the source, in their low 8 bytes. */
export const MMX_D = 18, MMX_S = 19;
/** Bytes of the file: 20 slots of 16 bytes. */
export const SSE_BYTES = 20 * 16;

/**
 * XMM registers and MXCSR. The sixteen registers and two scratch slots live in one
 * ArrayBuffer (which the wasm tier can later place in its WebAssembly.Memory); every
 * view covers the whole buffer, so register `r` is `u8[16r..]`, `i32[4r..]`, `f64[2r..]`.
 * NaN payloads are read and written through the integer views only: a float view may
 * quiet a signalling NaN on the way through a JavaScript number.
 */
export class SseState {
  readonly buffer: ArrayBufferLike;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly u64: BigUint64Array;
  mxcsr = MXCSR_RESET;

  /**
   * @param buffer where the file lives (a WebAssembly.Memory's buffer, say)
   * @param offset its byte offset there, a multiple of 16
   */
  constructor(buffer: ArrayBufferLike = new ArrayBuffer(SSE_BYTES), offset = 0) {
    if (offset % 16 !== 0 || offset + SSE_BYTES > buffer.byteLength) {
      throw new RangeError(`SseState needs ${SSE_BYTES} bytes at a 16-byte aligned offset`);
    }
    this.buffer = buffer;
    this.u8 = new Uint8Array(buffer, offset, SSE_BYTES);
    this.i8 = new Int8Array(buffer, offset, SSE_BYTES);
    this.u16 = new Uint16Array(buffer, offset, SSE_BYTES / 2);
    this.i16 = new Int16Array(buffer, offset, SSE_BYTES / 2);
    this.i32 = new Int32Array(buffer, offset, SSE_BYTES / 4);
    this.u32 = new Uint32Array(buffer, offset, SSE_BYTES / 4);
    this.f32 = new Float32Array(buffer, offset, SSE_BYTES / 4);
    this.f64 = new Float64Array(buffer, offset, SSE_BYTES / 8);
    this.u64 = new BigUint64Array(buffer, offset, SSE_BYTES / 8);
  }

  /** RESET/INIT: XMM registers zero, MXCSR 0x1F80 (SDM vol. 3 table 9-1). */
  reset(): void {
    this.u8.fill(0);
    this.mxcsr = MXCSR_RESET;
  }

  /** Copies 16 bytes from slot `s` to slot `d`. */
  copy(d: number, s: number): void {
    const v = this.i32;
    v[4 * d] = v[4 * s];
    v[4 * d + 1] = v[4 * s + 1];
    v[4 * d + 2] = v[4 * s + 2];
    v[4 * d + 3] = v[4 * s + 3];
  }
}
