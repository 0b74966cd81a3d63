// Floppy media QEMU 7.2 recognises by size, and a drive's head position on them

import type { BlockIo } from "../../../core/block/backend.ts";

/** Bytes per sector (size code 2). */
export const SECTOR_BYTES = 512;

export const RATE_500K = 0, RATE_300K = 1, RATE_250K = 2, RATE_1M = 3;

/** Drive types, with their CMOS 0x10 codes. */
export type DriveType = "144" | "288" | "120";
export const CMOS_DRIVE_TYPE: Record<DriveType, number> = { "144": 4, "288": 5, "120": 2 };

/** A medium QEMU 7.2 recognises by its size: sectors per track, tracks, heads, drive type, rate. */
export interface Format {
  readonly spt: number;
  readonly tracks: number;
  readonly heads: number;
  readonly drive: DriveType;
  readonly rate: number;
}

/** The formats in QEMU's order: the first whose size matches an image wins. */
const FORMATS: readonly Format[] = [
  ...[[18, 80], [20, 80], [21, 80], [21, 82], [21, 83], [22, 80], [23, 80], [24, 80]]
    .map(([spt, tracks]) => ({ spt, tracks, heads: 2, drive: "144" as const, rate: RATE_500K })),
  ...[36, 39, 40, 44, 48]
    .map((spt) => ({ spt, tracks: 80, heads: 2, drive: "288" as const, rate: RATE_1M })),
  ...[[9, 80], [10, 80], [10, 82], [10, 83], [13, 80], [14, 80]]
    .map(([spt, tracks]) => ({ spt, tracks, heads: 2, drive: "144" as const, rate: RATE_250K })),
  ...[[15, 80], [18, 80], [18, 82], [18, 83], [20, 80]]
    .map(([spt, tracks]) => ({ spt, tracks, heads: 2, drive: "120" as const, rate: RATE_500K })),
  { spt: 9, tracks: 80, heads: 2, drive: "120", rate: RATE_250K },
  { spt: 11, tracks: 80, heads: 2, drive: "120", rate: RATE_250K },
  { spt: 9, tracks: 40, heads: 2, drive: "120", rate: RATE_300K },
  { spt: 9, tracks: 40, heads: 1, drive: "120", rate: RATE_300K },
  { spt: 10, tracks: 41, heads: 2, drive: "120", rate: RATE_300K },
  { spt: 10, tracks: 42, heads: 2, drive: "120", rate: RATE_300K },
  { spt: 8, tracks: 40, heads: 2, drive: "120", rate: RATE_250K },
  { spt: 8, tracks: 40, heads: 1, drive: "120", rate: RATE_250K },
  { spt: 9, tracks: 80, heads: 1, drive: "144", rate: RATE_250K },
];

/**
 * The geometry QEMU 7.2 gives a medium of `bytes` in an `auto` drive: the first format of
 * exactly that size, else the fallback drive's (2.88M) first format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { floppyFormat } from "./geometry.ts";
 * assert.equal(floppyFormat(1474560).spt, 18);
 * assert.equal(floppyFormat(737280).rate, 2);
 * assert.equal(floppyFormat(100 * 1024).drive, "288");
 * ```
 */
export function floppyFormat(bytes: number): Format {
  const sectors = Math.floor(bytes / SECTOR_BYTES);
  return FORMATS.find((f) => f.spt * f.tracks * f.heads === sectors) ??
    FORMATS.find((f) => f.drive === "288")!;
}

/** A drive and the medium in it. */
export interface Drive {
  node: BlockIo | null;
  readOnly: boolean;
  /** The CMOS type: the medium's drive, or the fallback (2.88M) for an empty drive. */
  type: DriveType;
  head: number;
  track: number;
  sect: number;
  lastSect: number;
  maxTrack: number;
  heads: number;
  rate: number;
  mediaChanged: boolean;
  perpendicular: number;
}

/**
 * A drive holding `node` (null: empty), its geometry from the medium's size; with `present`
 * false, the slot of a drive the board does not have (QEMU's zeroed drive: no sector fits).
 */
export function newDrive(node: BlockIo | null, readOnly: boolean, present = true): Drive {
  const d: Drive = {
    node,
    readOnly,
    type: "288",
    head: 0,
    track: 0,
    sect: 1,
    lastSect: 0,
    maxTrack: 0,
    heads: 2,
    rate: RATE_500K,
    mediaChanged: true,
    perpendicular: 0,
  };
  if (node) {
    const f = floppyFormat(node.size());
    Object.assign(d, {
      type: f.drive,
      lastSect: f.spt,
      maxTrack: f.tracks,
      heads: f.heads,
      rate: f.rate,
    });
  } else if (present) {
    // QEMU lets an empty drive's head move anywhere (its empty-seek hack).
    Object.assign(d, { lastSect: 0xff, maxTrack: 0xff });
  } else {
    Object.assign(d, { heads: 1 });
  }
  return d;
}

/** QEMU's fd_sector: the linear sector of the drive's position (may be -1 for sector 0). */
export function linearSector(d: Drive): number {
  return (d.track * d.heads + d.head) * d.lastSect + d.sect - 1;
}

/**
 * Moves the drive to (head, track, sect) as QEMU's fd_seek: 2 for a track or head the
 * medium lacks (or no medium), 3 for a sector past the track, 1 when the track changed.
 */
export function seek(d: Drive, head: number, track: number, sect: number): number {
  if (track > d.maxTrack || (head !== 0 && d.heads === 1)) return 2;
  if (sect > d.lastSect) return 3;
  let ret = 0;
  if ((track * d.heads + head) * d.lastSect + sect - 1 !== linearSector(d)) {
    d.head = head;
    if (d.track !== track) {
      if (d.node) d.mediaChanged = false;
      ret = 1;
    }
    d.track = track;
    d.sect = sect;
  }
  return d.node ? ret : 2;
}
