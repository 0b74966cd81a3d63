// The compressed RFB encodings: ZRLE (RFC 6143 §7.7.6) and Tight's basic compression, over zlib streams that live as long as the connection

import { zlibSync } from "../../../core/zlib.ts";
import type { PixelConverter } from "./rfb_pixels.ts";

/** A rectangle of the surface, in pixels. */
export interface PixelRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A byte buffer that grows as it is written. */
export class ByteWriter {
  #buf = new Uint8Array(4096);
  length = 0;

  /** Makes room for `n` more bytes and returns the buffer to write them into at `length`. */
  reserve(n: number): Uint8Array {
    if (this.length + n > this.#buf.length) {
      let size = this.#buf.length * 2;
      while (size < this.length + n) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#buf.subarray(0, this.length));
      this.#buf = grown;
    }
    return this.#buf;
  }

  byte(v: number): void {
    this.reserve(1)[this.length++] = v;
  }

  u16(v: number): void {
    const b = this.reserve(2);
    b[this.length++] = (v >>> 8) & 0xff;
    b[this.length++] = v & 0xff;
  }

  u32(v: number): void {
    const b = this.reserve(4);
    b[this.length++] = (v >>> 24) & 0xff;
    b[this.length++] = (v >>> 16) & 0xff;
    b[this.length++] = (v >>> 8) & 0xff;
    b[this.length++] = v & 0xff;
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length).set(data, this.length);
    this.length += data.length;
  }

  /** The bytes written so far (a view: copy before writing more). */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/**
 * One zlib stream that the client inflates for the whole connection. Each piece is a
 * raw deflate run ended with a sync flush (byte-aligned, not final), so consecutive
 * pieces continue one valid stream; the first carries the zlib header. Pieces do not
 * refer back to earlier ones: a little ratio is traded for synchronous, bounded work.
 */
export class ZlibStream {
  #started = false;
  constructor(readonly level = 6) {}

  /** The stream bytes that carry `data`. */
  compress(data: Uint8Array): Uint8Array {
    const zlib = zlibSync();
    const body = zlib.deflateRawSync(data, {
      level: this.level,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      // One output chunk (deflate's worst case is the input plus ~0.1%): node:zlib's
      // default 16 KiB chunks cost more than the compression itself on a full screen of
      // detail (3 MiB: 240 ms at level 6 with 16 KiB chunks; see docs/display.md).
      chunkSize: Math.max(64 << 10, data.length + (data.length >> 3) + 1024),
    });
    if (this.#started) return new Uint8Array(body.buffer, body.byteOffset, body.length);
    this.#started = true;
    const out = new Uint8Array(2 + body.length);
    out[0] = 0x78; // deflate, 32 KiB window
    out[1] = 0x9c; // default level; (0x78 << 8 | 0x9c) % 31 === 0
    out.set(body, 2);
    return out;
  }
}

const ZRLE_TILE = 64;

/**
 * ZRLE (RFC 6143 §7.7.6): 64x64 tiles, each solid, packed-palette, palette-RLE, plain
 * RLE or raw (whichever is smallest), all through the connection's zlib stream. The
 * result is the rectangle's data: the u32 length, then the zlib bytes.
 */
export function encodeZrle(
  pixels: Uint32Array,
  stride: number,
  rect: PixelRect,
  conv: PixelConverter,
  stream: ZlibStream,
): Uint8Array {
  const out = new ByteWriter();
  const tile = new Uint32Array(ZRLE_TILE * ZRLE_TILE);
  // Each pixel's palette index, valid while the tile has at most 127 colours.
  const index = new Uint8Array(ZRLE_TILE * ZRLE_TILE);
  const palette = new Map<number, number>();
  const colours: number[] = [];
  const cp = conv.compactBytes;
  // The surface's own format: a CPIXEL is the value's three low bytes, low first.
  const fast = conv.identity;
  for (let ty = rect.y; ty < rect.y + rect.height; ty += ZRLE_TILE) {
    const th = Math.min(ZRLE_TILE, rect.y + rect.height - ty);
    for (let tx = rect.x; tx < rect.x + rect.width; tx += ZRLE_TILE) {
      const tw = Math.min(ZRLE_TILE, rect.x + rect.width - tx);
      const n = tw * th;
      palette.clear();
      colours.length = 0;
      let overflow = false;
      let runs = 0;
      let runBytes = 0; // length bytes of runs longer than 1
      let runLength = 0;
      let last = -1;
      let lastIndex = 0;
      for (let y = 0, i = 0; y < th; y++) {
        const row = (ty + y) * stride + tx;
        for (let x = 0; x < tw; x++, i++) {
          const v = fast ? pixels[row + x] & 0xffffff : conv.value(pixels[row + x]);
          tile[i] = v;
          if (v === last) {
            runLength++;
            index[i] = lastIndex;
            continue;
          }
          if (runLength > 1) runBytes += Math.floor((runLength - 1) / 255) + 1;
          runs++;
          runLength = 1;
          last = v;
          if (overflow) continue;
          // The palette is looked up only where a run starts.
          let k = palette.get(v);
          if (k === undefined) {
            if (palette.size === 127) {
              overflow = true;
              continue;
            }
            k = palette.size;
            palette.set(v, k);
            colours.push(v);
          }
          index[i] = lastIndex = k;
        }
      }
      if (runLength > 1) runBytes += Math.floor((runLength - 1) / 255) + 1;
      const size = overflow ? 128 : palette.size;
      if (size === 1) {
        out.byte(1);
        out.length = conv.putCompact(out.reserve(cp), out.length, tile[0]);
        continue;
      }
      const raw = n * cp;
      const plainRle = runs * cp + runBytes;
      const bits = size <= 2 ? 1 : size <= 4 ? 2 : size <= 16 ? 4 : 0;
      const packed = bits ? size * cp + th * Math.ceil((tw * bits) / 8) : Infinity;
      const paletteRle = size <= 127 ? size * cp + runs + runBytes : Infinity;
      const best = Math.min(raw, plainRle, packed, paletteRle);
      if (best === packed) {
        out.byte(size);
        for (const c of colours) out.length = conv.putCompact(out.reserve(cp), out.length, c);
        for (let y = 0; y < th; y++) {
          let acc = 0;
          let nbits = 0;
          for (let x = 0; x < tw; x++) {
            acc = (acc << bits) | index[y * tw + x];
            nbits += bits;
            if (nbits === 8) {
              out.byte(acc);
              acc = 0;
              nbits = 0;
            }
          }
          if (nbits > 0) out.byte((acc << (8 - nbits)) & 0xff);
        }
      } else if (best === paletteRle || best === plainRle) {
        const usePalette = best === paletteRle;
        out.byte(usePalette ? 128 + size : 128);
        if (usePalette) {
          for (const c of colours) out.length = conv.putCompact(out.reserve(cp), out.length, c);
        }
        let i = 0;
        while (i < n) {
          const v = tile[i];
          let j = i + 1;
          while (j < n && tile[j] === v) j++;
          const length = j - i;
          if (usePalette) {
            const k = index[i];
            if (length === 1) {
              out.byte(k);
              i = j;
              continue;
            }
            out.byte(k | 0x80);
          } else {
            out.length = conv.putCompact(out.reserve(cp), out.length, v);
          }
          let rest = length - 1;
          while (rest >= 255) {
            out.byte(255);
            rest -= 255;
          }
          out.byte(rest);
          i = j;
        }
      } else {
        out.byte(0);
        const b = out.reserve(raw);
        let at = out.length;
        if (fast) {
          for (let i = 0; i < n; i++) {
            const v = tile[i];
            b[at] = v & 0xff;
            b[at + 1] = (v >>> 8) & 0xff;
            b[at + 2] = v >>> 16;
            at += 3;
          }
        } else {
          for (let i = 0; i < n; i++) at = conv.putCompact(b, at, tile[i]);
        }
        out.length = at;
      }
    }
  }
  const compressed = stream.compress(out.view());
  const data = new Uint8Array(4 + compressed.length);
  new DataView(data.buffer).setUint32(0, compressed.length);
  data.set(compressed, 4);
  return data;
}

/** Tight's limits on one rectangle (TightVNC's highest compression levels). */
export const TIGHT_MAX_RECT_PIXELS = 65536;
export const TIGHT_MAX_RECT_WIDTH = 2048;
/** Data shorter than this is sent as it is, never through zlib (the Tight protocol's rule). */
const TIGHT_MIN_TO_COMPRESS = 12;

/** Splits a rectangle into pieces Tight allows (at most 2048 wide and 65536 pixels). */
export function tightPieces(rect: PixelRect): PixelRect[] {
  const pieces: PixelRect[] = [];
  for (let x = rect.x; x < rect.x + rect.width; x += TIGHT_MAX_RECT_WIDTH) {
    const w = Math.min(TIGHT_MAX_RECT_WIDTH, rect.x + rect.width - x);
    const rows = Math.max(1, Math.floor(TIGHT_MAX_RECT_PIXELS / w));
    for (let y = rect.y; y < rect.y + rect.height; y += rows) {
      pieces.push({ x, y, width: w, height: Math.min(rows, rect.y + rect.height - y) });
    }
  }
  return pieces;
}

/**
 * Tight (TightVNC's encoding 7), basic compression only: a one-colour piece is a fill,
 * anything else goes through zlib stream 0 with the copy filter. Pixels are TPIXELs:
 * red, green, blue bytes for a 32 bpp depth-24 8-8-8 client, else the client's pixel.
 * `rect` must be one of {@linkcode tightPieces}.
 */
export function encodeTight(
  pixels: Uint32Array,
  stride: number,
  rect: PixelRect,
  conv: PixelConverter,
  stream: ZlibStream,
  rgb24: boolean,
): Uint8Array {
  const pixelBytes = rgb24 ? 3 : conv.bytes;
  const first = pixels[rect.y * stride + rect.x];
  let solid = true;
  for (let y = rect.y; y < rect.y + rect.height && solid; y++) {
    for (let x = rect.x, i = y * stride + rect.x; x < rect.x + rect.width; x++, i++) {
      if (pixels[i] !== first) {
        solid = false;
        break;
      }
    }
  }
  const putPixel = (out: Uint8Array, at: number, p: number): number => {
    if (!rgb24) return conv.put(out, at, conv.value(p));
    out[at] = (p >>> 16) & 0xff;
    out[at + 1] = (p >>> 8) & 0xff;
    out[at + 2] = p & 0xff;
    return at + 3;
  };
  if (solid) {
    const out = new Uint8Array(1 + pixelBytes);
    out[0] = 0x80; // fill
    putPixel(out, 1, first);
    return out;
  }
  const data = new Uint8Array(rect.width * rect.height * pixelBytes);
  let at = 0;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    for (let x = rect.x, i = y * stride + rect.x; x < rect.x + rect.width; x++, i++) {
      at = putPixel(data, at, pixels[i]);
    }
  }
  if (data.length < TIGHT_MIN_TO_COMPRESS) {
    const out = new Uint8Array(1 + data.length);
    out[0] = 0x00; // basic, stream 0, copy filter
    out.set(data, 1);
    return out;
  }
  const compressed = stream.compress(data);
  const out = new ByteWriter();
  out.byte(0x00);
  // The compact length: 7 bits a byte, low bits first, the top bit says another follows.
  let length = compressed.length;
  for (let i = 0; i < 3; i++) {
    if (i === 2) {
      out.byte(length & 0xff); // the third byte carries 8 bits
      break;
    }
    const more = length > 0x7f;
    out.byte((length & 0x7f) | (more ? 0x80 : 0));
    length >>>= 7;
    if (!more) break;
  }
  out.bytes(compressed);
  return out.view().slice();
}
