// PNG images of a display surface (`screendump FILE format=png`) and the decoder tests read them back with

import { loadZlib } from "./zlib.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let crcTable: Uint32Array | undefined;

/** CRC-32 as PNG (ISO 3309, polynomial 0xedb88320) computes it over a chunk's type and data. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes `width`x`height` pixels (`0x00RRGGBB`, stride = width) as a PNG of 8-bit RGB,
 * the kind QEMU 7.2's `screendump -f png` writes (colour type 2, no interlace).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePng, encodePng } from "./display_png.ts";
 *
 * const png = await encodePng(2, 1, new Uint32Array([0x112233, 0xaabbcc]));
 * const image = await decodePng(png);
 * assert.deepEqual([image.width, image.height, ...image.pixels], [2, 1, 0x112233, 0xaabbcc]);
 * ```
 */
export async function encodePng(
  width: number,
  height: number,
  pixels: Uint32Array,
): Promise<Uint8Array> {
  const zlib = await loadZlib();
  // Each row: filter type 0 (None), then red, green, blue.
  const raw = new Uint8Array(height * (1 + width * 3));
  let at = 0;
  for (let y = 0; y < height; y++) {
    raw[at++] = 0;
    for (let x = 0, i = y * width; x < width; x++, i++) {
      const p = pixels[i];
      raw[at++] = (p >>> 16) & 0xff;
      raw[at++] = (p >>> 8) & 0xff;
      raw[at++] = p & 0xff;
    }
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // depth 8, RGB, deflate, adaptive filtering, no interlace
  const idat = new Uint8Array(zlib.deflateSync(raw, { level: 6 }));
  const parts = [
    new Uint8Array(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A decoded PNG: size and pixels as `0x00RRGGBB`. */
export interface PngImage {
  width: number;
  height: number;
  pixels: Uint32Array;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decodes a non-interlaced 8-bit RGB or RGBA PNG (what QEMU and vmkit write), undoing
 * every row filter (libpng chooses them adaptively).
 *
 * @throws RangeError for any other PNG or a damaged one
 */
export async function decodePng(bytes: Uint8Array): Promise<PngImage> {
  const zlib = await loadZlib();
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new RangeError("Not a PNG file");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Uint8Array[] = [];
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) throw new RangeError("PNG chunk is truncated");
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      const [depth, colour, , , interlace] = data.subarray(8, 13);
      channels = colour === 2 ? 3 : colour === 6 ? 4 : 0;
      if (depth !== 8 || channels === 0 || interlace !== 0) {
        throw new RangeError("Only 8-bit RGB(A) non-interlaced PNGs are read");
      }
      if (width < 1 || height < 1 || width * height > 8192 * 8192) {
        throw new RangeError("PNG size out of range");
      }
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    at += 12 + length;
  }
  if (channels === 0) throw new RangeError("PNG has no IHDR");
  const joined = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  let o = 0;
  for (const d of idat) {
    joined.set(d, o);
    o += d.length;
  }
  const stride = width * channels;
  const raw = new Uint8Array(zlib.inflateSync(joined));
  if (raw.length < height * (stride + 1)) throw new RangeError("PNG image data is truncated");
  const pixels = new Uint32Array(width * height);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      const add = filter === 0
        ? 0
        : filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : filter === 4
        ? paeth(a, b, c)
        : -1;
      if (add < 0) throw new RangeError(`PNG row filter ${filter} is unknown`);
      row[i] = (row[i] + add) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const p = x * channels;
      pixels[y * width + x] = (row[p] << 16) | (row[p + 1] << 8) | row[p + 2];
    }
    prev = row;
  }
  return { width, height, pixels };
}
