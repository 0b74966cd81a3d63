// RFB pixel formats (RFC 6143 §7.4): the client's choice of pixel layout and the conversion of surface pixels to it

/** An RFB PIXEL_FORMAT: how a client wants its pixel values laid out. */
export interface RfbPixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** The server's own format, as QEMU announces it: 32 bpp, depth 24, little-endian x8r8g8b8. */
export const SERVER_PIXEL_FORMAT: RfbPixelFormat = {
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  trueColour: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
};

/** The 16 bytes of a PIXEL_FORMAT (RFC 6143 §7.4). */
export function writePixelFormat(pf: RfbPixelFormat, out: Uint8Array, at: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[at] = pf.bitsPerPixel;
  out[at + 1] = pf.depth;
  out[at + 2] = pf.bigEndian ? 1 : 0;
  out[at + 3] = pf.trueColour ? 1 : 0;
  view.setUint16(at + 4, pf.redMax);
  view.setUint16(at + 6, pf.greenMax);
  view.setUint16(at + 8, pf.blueMax);
  out[at + 10] = pf.redShift;
  out[at + 11] = pf.greenShift;
  out[at + 12] = pf.blueShift;
  out.fill(0, at + 13, at + 16);
}

/**
 * Reads a client's PIXEL_FORMAT; undefined for one the server cannot produce (QEMU
 * closes the connection on those): bpp other than 8/16/32, a max that is not 2^n - 1,
 * a shift that puts a channel outside the pixel.
 */
export function readPixelFormat(bytes: Uint8Array, at: number): RfbPixelFormat | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pf: RfbPixelFormat = {
    bitsPerPixel: bytes[at],
    depth: bytes[at + 1],
    bigEndian: bytes[at + 2] !== 0,
    trueColour: bytes[at + 3] !== 0,
    redMax: view.getUint16(at + 4),
    greenMax: view.getUint16(at + 6),
    blueMax: view.getUint16(at + 8),
    redShift: bytes[at + 10],
    greenShift: bytes[at + 11],
    blueShift: bytes[at + 12],
  };
  if (![8, 16, 32].includes(pf.bitsPerPixel)) return undefined;
  if (!pf.trueColour) return pf; // a colour map: the server sets its own 3-3-2 map
  for (
    const [max, shift] of [
      [pf.redMax, pf.redShift],
      [pf.greenMax, pf.greenShift],
      [pf.blueMax, pf.blueShift],
    ]
  ) {
    if (max === 0 || (max & (max + 1)) !== 0 || max > 255) return undefined;
    if (shift + Math.log2(max + 1) > pf.bitsPerPixel) return undefined;
  }
  return pf;
}

/** The colour map a palette client gets (SetColourMapEntries): red 3, green 3, blue 2 bits. */
export const COLOUR_MAP_332: RfbPixelFormat = {
  bitsPerPixel: 8,
  depth: 8,
  bigEndian: false,
  trueColour: true,
  redMax: 7,
  greenMax: 7,
  blueMax: 3,
  redShift: 5,
  greenShift: 2,
  blueShift: 0,
};

/** A converter from surface pixels (`0x00RRGGBB`) to a client's pixel values. */
export class PixelConverter {
  /** Bytes per pixel on the wire. */
  readonly bytes: number;
  readonly #pf: RfbPixelFormat;
  readonly #identity: boolean;
  readonly #rBits: number;
  readonly #gBits: number;
  readonly #bBits: number;
  readonly #compactBytes: number;
  readonly #compactLow: boolean;

  constructor(pf: RfbPixelFormat) {
    // A palette client is sent indexes into the 3-3-2 map the server gave it.
    this.#pf = pf.trueColour ? pf : { ...COLOUR_MAP_332, bigEndian: pf.bigEndian };
    this.bytes = pf.bitsPerPixel / 8;
    const p = this.#pf;
    this.#rBits = Math.log2(p.redMax + 1);
    this.#gBits = Math.log2(p.greenMax + 1);
    this.#bBits = Math.log2(p.blueMax + 1);
    this.#identity = p.bitsPerPixel === 32 && p.redMax === 255 && p.greenMax === 255 &&
      p.blueMax === 255 && p.redShift === 16 && p.greenShift === 8 && p.blueShift === 0;
    const mask = this.#mask();
    this.#compactLow = (mask & 0xff000000) === 0;
    this.#compactBytes = p.bitsPerPixel !== 32 || p.depth > 24
      ? this.bytes
      : this.#compactLow || (mask & 0xff) === 0
      ? 3
      : 4;
  }

  /** The client's value for one surface pixel (the top bits of each channel, as QEMU keeps). */
  value(p: number): number {
    if (this.#identity) return p & 0xffffff;
    const pf = this.#pf;
    const r = ((p >>> 16) & 0xff) >>> (8 - this.#rBits);
    const g = ((p >>> 8) & 0xff) >>> (8 - this.#gBits);
    const b = (p & 0xff) >>> (8 - this.#bBits);
    return ((r << pf.redShift) | (g << pf.greenShift) | (b << pf.blueShift)) >>> 0;
  }

  /** Writes one client value of `this.bytes` bytes in the client's byte order. */
  put(out: Uint8Array, at: number, v: number): number {
    const n = this.bytes;
    if (this.#pf.bigEndian) {
      for (let i = n - 1; i >= 0; i--) out[at++] = (v >>> (i * 8)) & 0xff;
    } else {
      for (let i = 0; i < n; i++) out[at++] = (v >>> (i * 8)) & 0xff;
    }
    return at;
  }

  /**
   * ZRLE's CPIXEL size (RFC 6143 §7.7.6): 3 bytes when a 32 bpp true-colour pixel of
   * depth 24 or less fits in its three low or three high bytes, else the full pixel.
   */
  get compactBytes(): number {
    return this.#compactBytes;
  }

  /** True when the client's pixels are x8r8g8b8 little-endian: the surface's own bytes. */
  get identity(): boolean {
    return this.#identity && !this.#pf.bigEndian;
  }

  /** Whether 3-byte CPIXELs are the low bytes of the value (else the high ones). */
  get compactLow(): boolean {
    return this.#compactLow;
  }

  /** Writes a ZRLE CPIXEL. */
  putCompact(out: Uint8Array, at: number, v: number): number {
    if (this.#compactBytes !== 3) return this.put(out, at, v);
    const w = this.#compactLow ? v : v >>> 8;
    if (this.#pf.bigEndian) {
      out[at] = (w >>> 16) & 0xff;
      out[at + 1] = (w >>> 8) & 0xff;
      out[at + 2] = w & 0xff;
    } else {
      out[at] = w & 0xff;
      out[at + 1] = (w >>> 8) & 0xff;
      out[at + 2] = (w >>> 16) & 0xff;
    }
    return at + 3;
  }

  #mask(): number {
    const pf = this.#pf;
    return ((pf.redMax << pf.redShift) | (pf.greenMax << pf.greenShift) |
      (pf.blueMax << pf.blueShift)) >>> 0;
  }
}

/**
 * Raw encoding (RFC 6143 §7.7.1): the rectangle's pixels in the client's format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRaw, PixelConverter, SERVER_PIXEL_FORMAT } from "./rfb_pixels.ts";
 *
 * const out = encodeRaw(new Uint32Array([0x112233]), 1, { x: 0, y: 0, width: 1, height: 1 },
 *   new PixelConverter(SERVER_PIXEL_FORMAT));
 * assert.deepEqual([...out], [0x33, 0x22, 0x11, 0x00]);
 * ```
 */
export function encodeRaw(
  pixels: Uint32Array,
  stride: number,
  rect: { x: number; y: number; width: number; height: number },
  conv: PixelConverter,
): Uint8Array {
  const out = new Uint8Array(rect.width * rect.height * conv.bytes);
  if (conv.identity) {
    // The surface's words are the client's bytes already (the top byte is always 0).
    const bytes = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
    for (let y = 0; y < rect.height; y++) {
      const from = ((rect.y + y) * stride + rect.x) * 4;
      out.set(bytes.subarray(from, from + rect.width * 4), y * rect.width * 4);
    }
    return out;
  }
  let at = 0;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    const row = y * stride;
    for (let x = rect.x; x < rect.x + rect.width; x++) {
      at = conv.put(out, at, conv.value(pixels[row + x]));
    }
  }
  return out;
}
