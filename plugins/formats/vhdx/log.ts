// The VHDX metadata log: finding the active sequence, replaying it, and writing entries (MS-VHDX §2.3)

import type { SyncIo } from "../../../core/block/sync_io.ts";
import { ImageFormatError } from "../../../core/errors.ts";
import { setVhdxChecksum, vhdxChecksumValid } from "./crc32c.ts";
import { guidEqual, guidIsZero, MiB, type VhdxHeader } from "./header.ts";

/** Every log structure is laid out in 4 KiB log sectors. */
export const VHDX_LOG_SECTOR_SIZE = 4096;
export const VHDX_LOG_HDR_SIZE = 64;
export const VHDX_LOG_DESC_SIZE = 32;
export const VHDX_LOG_SIGNATURE = "loge";
export const VHDX_LOG_DESC_SIGNATURE = "desc";
export const VHDX_LOG_ZERO_SIGNATURE = "zero";
export const VHDX_LOG_DATA_SIGNATURE = "data";

/** One 4 KiB write a log entry carries. */
export interface LogSector {
  /** Where the sector goes in the file (4 KiB aligned). */
  fileOffset: number;
  data: Uint8Array;
}

/** A zero descriptor: `length` bytes at `fileOffset` become zeroes. */
export interface LogZeroRange {
  fileOffset: number;
  length: number;
}

/** A decoded, checksum-valid log entry. */
export interface LogEntry {
  /** Position of the entry in the log (bytes from the log start). */
  position: number;
  entryLength: number;
  tail: number;
  sequenceNumber: number;
  flushedFileOffset: number;
  lastFileOffset: number;
  /** Writes in descriptor order: data sectors and zero ranges. */
  writes: (LogSector | LogZeroRange)[];
}

function ascii(buf: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...buf.subarray(at, at + len));
}

function putAscii(buf: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) buf[at + i] = text.charCodeAt(i);
}

function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

function putU64(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

/** Log sectors holding the entry header and `count` descriptors (126 fit in the first). */
export function descriptorSectors(count: number): number {
  return Math.ceil((count + 2) / 128);
}

/** Reads `length` bytes of the circular log from `position`, wrapping at its end. */
function readCircular(
  io: SyncIo,
  header: VhdxHeader,
  position: number,
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const at = (position + done) % header.logLength;
    const n = Math.min(length - done, header.logLength - at);
    io.readSync(header.logOffset + at, out.subarray(done, done + n));
    done += n;
  }
  return out;
}

/** Decodes the entry at `position`, or null when it is not a valid entry of this log. */
function readEntry(io: SyncIo, header: VhdxHeader, position: number): LogEntry | null {
  const head = readCircular(io, header, position, VHDX_LOG_HDR_SIZE);
  const hv = new DataView(head.buffer);
  if (ascii(head, 0, 4) !== VHDX_LOG_SIGNATURE) return null;
  const entryLength = hv.getUint32(8, true);
  const sequenceNumber = u64(hv, 16);
  const count = hv.getUint32(24, true);
  if (entryLength === 0 || entryLength > header.logLength) return null;
  if (entryLength % VHDX_LOG_SECTOR_SIZE !== 0 || sequenceNumber === 0) return null;
  if (!guidEqual(head.subarray(32, 48), header.logGuid)) return null;
  const descBytes = descriptorSectors(count) * VHDX_LOG_SECTOR_SIZE;
  if (descBytes > entryLength) return null;
  const entry = readCircular(io, header, position, entryLength);
  if (!vhdxChecksumValid(entry, 4)) return null;
  const v = new DataView(entry.buffer);
  const writes: (LogSector | LogZeroRange)[] = [];
  let dataAt = descBytes;
  for (let i = 0; i < count; i++) {
    const d = VHDX_LOG_HDR_SIZE + i * VHDX_LOG_DESC_SIZE;
    const signature = ascii(entry, d, 4);
    const fileOffset = u64(v, d + 16);
    if (u64(v, d + 24) !== sequenceNumber || fileOffset % VHDX_LOG_SECTOR_SIZE !== 0) return null;
    if (signature === VHDX_LOG_ZERO_SIGNATURE) {
      const length = u64(v, d + 8);
      if (length % VHDX_LOG_SECTOR_SIZE !== 0) return null;
      writes.push({ fileOffset, length });
    } else if (signature === VHDX_LOG_DESC_SIGNATURE) {
      if (dataAt + VHDX_LOG_SECTOR_SIZE > entryLength) return null;
      const sector = entry.subarray(dataAt, dataAt + VHDX_LOG_SECTOR_SIZE);
      const sv = new DataView(entry.buffer, entry.byteOffset + dataAt, VHDX_LOG_SECTOR_SIZE);
      const dataSeq = sv.getUint32(4, true) * 2 ** 32 + sv.getUint32(4092, true);
      if (dataSeq !== sequenceNumber) return null;
      // The first 8 and the last 4 bytes of the sector live in the descriptor.
      const data = new Uint8Array(VHDX_LOG_SECTOR_SIZE);
      data.set(entry.subarray(d + 8, d + 16), 0);
      data.set(sector.subarray(8, 4092), 8);
      data.set(entry.subarray(d + 4, d + 8), 4092);
      writes.push({ fileOffset, data });
      dataAt += VHDX_LOG_SECTOR_SIZE;
    } else {
      return null;
    }
  }
  return {
    position,
    entryLength,
    tail: hv.getUint32(12, true),
    sequenceNumber,
    flushedFileOffset: u64(hv, 48),
    lastFileOffset: u64(hv, 56),
    writes,
  };
}

/**
 * The active log sequence of an image: the run of valid entries with consecutive
 * sequence numbers that ends with the highest one (the longest such run on a tie).
 * Empty when the header has no log GUID or the log holds no valid entry.
 */
export function findActiveSequence(io: SyncIo, header: VhdxHeader): LogEntry[] {
  if (header.logOffset < MiB || header.logOffset % MiB !== 0) {
    throw new ImageFormatError(`Invalid VHDX log offset ${header.logOffset}`);
  }
  if (header.logVersion !== 0) {
    throw new ImageFormatError(`Unsupported VHDX log version ${header.logVersion}`);
  }
  if (guidIsZero(header.logGuid) || header.logLength === 0) return [];
  if (header.logLength % MiB !== 0) {
    throw new ImageFormatError(`Invalid VHDX log length ${header.logLength}`);
  }
  let best: LogEntry[] = [];
  const sectors = header.logLength / VHDX_LOG_SECTOR_SIZE;
  for (let position = 0; position < header.logLength;) {
    const first = readEntry(io, header, position);
    if (!first) {
      position += VHDX_LOG_SECTOR_SIZE;
      continue;
    }
    const chain = [first];
    let used = first.entryLength / VHDX_LOG_SECTOR_SIZE;
    for (;;) {
      const prev = chain[chain.length - 1];
      const next = readEntry(io, header, (prev.position + prev.entryLength) % header.logLength);
      if (!next || next.sequenceNumber !== prev.sequenceNumber + 1) break;
      used += next.entryLength / VHDX_LOG_SECTOR_SIZE;
      if (used > sectors) break;
      chain.push(next);
    }
    const last = chain[chain.length - 1].sequenceNumber;
    const bestLast = best.length ? best[best.length - 1].sequenceNumber : 0;
    if (last > bestLast || (last === bestLast && chain.length > best.length)) best = chain;
    // Resume after the run, so its later entries do not count as runs of their own.
    const end = first.position + chain.reduce((n, e) => n + e.entryLength, 0);
    if (end >= header.logLength) break;
    position = end;
  }
  return best;
}

/**
 * Applies a log sequence to the file: every data sector and zero range, in order,
 * then grows the file to the entries' last file offset (rounded up to 1 MiB).
 * Refuses a log whose entries saw a longer file than there is now (a truncated image).
 */
export function replaySequence(
  io: SyncIo,
  entries: readonly LogEntry[],
  fileSize: () => number,
): void {
  for (const e of entries) {
    if (e.flushedFileOffset > fileSize()) {
      throw new ImageFormatError(
        `VHDX log entry ${e.sequenceNumber} expects a file of ${e.flushedFileOffset} bytes, ` +
          `but it has ${fileSize()}: the image has probably been truncated`,
      );
    }
    for (const w of e.writes) {
      if ("data" in w) io.writeSync(w.fileOffset, w.data);
      else {
        const zero = new Uint8Array(Math.min(w.length, MiB));
        for (let done = 0; done < w.length; done += zero.length) {
          io.writeSync(
            w.fileOffset + done,
            zero.subarray(0, Math.min(zero.length, w.length - done)),
          );
        }
      }
    }
    const last = Math.ceil(e.lastFileOffset / MiB) * MiB;
    if (fileSize() < last) io.writeSync(last - 1, new Uint8Array(1));
  }
  io.flushSync();
}

/** What a new log entry records besides its writes. */
export interface LogEntryFields {
  logGuid: Uint8Array;
  sequenceNumber: number;
  /** Log position of the first entry of the sequence this entry ends. */
  tail: number;
  /** The file size when the entry is written. */
  flushedFileOffset: number;
  /** The size every allocated structure fits in. */
  lastFileOffset: number;
}

/**
 * Encodes one log entry carrying full-sector writes (`sectors`) and zero ranges:
 * the header and descriptors, then one data sector per written sector, checksummed
 * with CRC-32C over the whole entry.
 */
export function encodeLogEntry(
  fields: LogEntryFields,
  sectors: readonly LogSector[],
  zeros: readonly LogZeroRange[] = [],
): Uint8Array {
  const count = sectors.length + zeros.length;
  const descBytes = descriptorSectors(count) * VHDX_LOG_SECTOR_SIZE;
  const length = descBytes + sectors.length * VHDX_LOG_SECTOR_SIZE;
  const buf = new Uint8Array(length);
  const v = new DataView(buf.buffer);
  const seq = fields.sequenceNumber;
  putAscii(buf, 0, VHDX_LOG_SIGNATURE);
  v.setUint32(8, length, true);
  v.setUint32(12, fields.tail, true);
  putU64(v, 16, seq);
  v.setUint32(24, count, true);
  buf.set(fields.logGuid, 32);
  putU64(v, 48, fields.flushedFileOffset);
  putU64(v, 56, fields.lastFileOffset);
  let d = VHDX_LOG_HDR_SIZE;
  for (const [i, s] of sectors.entries()) {
    if (s.data.length !== VHDX_LOG_SECTOR_SIZE || s.fileOffset % VHDX_LOG_SECTOR_SIZE !== 0) {
      throw new RangeError("A log data sector is 4 KiB at a 4 KiB aligned offset");
    }
    putAscii(buf, d, VHDX_LOG_DESC_SIGNATURE);
    buf.set(s.data.subarray(4092, 4096), d + 4);
    buf.set(s.data.subarray(0, 8), d + 8);
    putU64(v, d + 16, s.fileOffset);
    putU64(v, d + 24, seq);
    const at = descBytes + i * VHDX_LOG_SECTOR_SIZE;
    putAscii(buf, at, VHDX_LOG_DATA_SIGNATURE);
    v.setUint32(at + 4, Math.floor(seq / 2 ** 32), true);
    buf.set(s.data.subarray(8, 4092), at + 8);
    v.setUint32(at + 4092, seq % 2 ** 32, true);
    d += VHDX_LOG_DESC_SIZE;
  }
  for (const z of zeros) {
    putAscii(buf, d, VHDX_LOG_ZERO_SIGNATURE);
    putU64(v, d + 8, z.length);
    putU64(v, d + 16, z.fileOffset);
    putU64(v, d + 24, seq);
    d += VHDX_LOG_DESC_SIZE;
  }
  setVhdxChecksum(buf, 4);
  return buf;
}
