// What changed between a client's copy of the screen and the screen: tiles, a vertical scroll, rectangles to send

import type { PixelRect } from "./rfb_encodings.ts";

/** Tile size of the change detection (ZRLE's tile, so a changed tile encodes as one). */
export const TILE = 64;

function rowHash(px: Uint32Array, at: number, width: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < width; i++) h = Math.imul(h ^ px[at + i], 0x01000193);
  return h;
}

function rowsEqual(a: Uint32Array, at: number, b: Uint32Array, bt: number, width: number): boolean {
  for (let i = 0; i < width; i++) if (a[at + i] !== b[bt + i]) return false;
  return true;
}

/** Changed tiles as rectangles: runs of tiles along a tile row, joined with equal runs below. */
export function tileRects(
  tiles: Uint8Array,
  tilesX: number,
  width: number,
  height: number,
): PixelRect[] {
  const rects: PixelRect[] = [];
  let open = new Map<string, PixelRect>();
  for (let ty = 0; ty * TILE < height; ty++) {
    const next = new Map<string, PixelRect>();
    let tx = 0;
    while (tx < tilesX) {
      if (!tiles[ty * tilesX + tx]) {
        tx++;
        continue;
      }
      const start = tx;
      while (tx < tilesX && tiles[ty * tilesX + tx]) tx++;
      const x = start * TILE;
      const w = Math.min(width, tx * TILE) - x;
      const y = ty * TILE;
      const h = Math.min(height, y + TILE) - y;
      if (w <= 0) continue;
      const key = `${x},${w}`;
      const above = open.get(key);
      if (above && above.y + above.height === y) {
        above.height += h;
        next.set(key, above);
      } else {
        const r = { x, y, width: w, height: h };
        rects.push(r);
        next.set(key, r);
      }
    }
    open = next;
  }
  return rects;
}

/**
 * A vertical scroll of the screen against the client's copy: the longest band of rows
 * that equals the client's rows `dy` further down (or up), found by voting with row
 * hashes. Null when no band of at least a quarter of the screen matches.
 */
export function findScroll(
  px: Uint32Array,
  stride: number,
  shadow: Uint32Array,
  shadowStride: number,
  width: number,
  height: number,
): { y: number; height: number; dy: number } | null {
  const hashNew = new Int32Array(height);
  const hashOld = new Int32Array(height);
  for (let y = 0; y < height; y++) {
    hashNew[y] = rowHash(px, y * stride, width);
    hashOld[y] = rowHash(shadow, y * shadowStride, width);
  }
  // Rows that occur often (blank lines) say nothing about the offset.
  const where = new Map<number, number[]>();
  for (let y = 0; y < height; y++) {
    const list = where.get(hashOld[y]);
    if (!list) where.set(hashOld[y], [y]);
    else if (list.length < 4) list.push(y);
  }
  const votes = new Map<number, number>();
  for (let y = 0; y < height; y++) {
    const list = where.get(hashNew[y]);
    if (!list || list.length > 2) continue;
    for (const src of list) {
      const dy = src - y;
      if (dy !== 0) votes.set(dy, (votes.get(dy) ?? 0) + 1);
    }
  }
  let dy = 0;
  let best = 0;
  for (const [d, n] of votes) if (n > best) [dy, best] = [d, n];
  if (best * 4 < height) return null;
  // The longest band of rows that really equal the shifted old rows.
  let bandStart = 0;
  let bandLength = 0;
  let start = -1;
  for (let y = 0; y <= height; y++) {
    const src = y + dy;
    const same = y < height && src >= 0 && src < height && hashNew[y] === hashOld[src] &&
      rowsEqual(px, y * stride, shadow, src * shadowStride, width);
    if (same && start < 0) start = y;
    if (!same && start >= 0) {
      if (y - start > bandLength) [bandStart, bandLength] = [start, y - start];
      start = -1;
    }
  }
  if (bandLength * 4 < height) return null;
  return { y: bandStart, height: bandLength, dy };
}
