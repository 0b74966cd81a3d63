// qcow2 internal snapshot table: read and validate (qcow2.txt "Snapshots")

import type { SnapshotInfo } from "../../../core/block/driver.ts";
import { ImageFormatError } from "../../../core/errors.ts";
import { QCOW_MAX_SNAPSHOTS, QCOW_MAX_SNAPSHOTS_SIZE } from "./header.ts";
import type { SyncFile } from "./layout.ts";

/** Fixed part of a snapshot table entry. */
export const QCOW2_SNAPSHOT_HEADER_BYTES = 40;

/** One snapshot table entry, decoded. */
export interface SnapshotEntry {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNs: number;
  vmStateSize: number;
  /** Virtual disk size at the snapshot (extra data), if recorded. */
  diskSize?: number;
  icount?: number;
  /** Extra data bytes as stored (kept when the table is rewritten). */
  extra: Uint8Array;
}

const decoder = new TextDecoder();

function u64(view: DataView, at: number): number {
  return view.getUint32(at) * 0x100000000 + view.getUint32(at + 4);
}

/**
 * Checks a table's place and size as QEMU's `qcow2_validate_table`: `Snapshot
 * table too large`, `Active L1 table offset invalid`...
 */
export function validateTable(
  offset: number,
  entries: number,
  entryBytes: number,
  maxBytes: number,
  clusterSize: number,
  what: string,
): void {
  if (entries > Math.floor(maxBytes / entryBytes)) {
    throw new ImageFormatError(`${what} too large`);
  }
  if (offset % clusterSize !== 0 || offset + entries * entryBytes > Number.MAX_SAFE_INTEGER) {
    throw new ImageFormatError(`${what} offset invalid`);
  }
}

/** Reads the snapshot table of `count` entries at `offset`. */
export function readSnapshots(
  file: SyncFile,
  offset: number,
  count: number,
  clusterSize: number,
): SnapshotEntry[] {
  if (count === 0) return [];
  validateTable(
    offset,
    count,
    QCOW2_SNAPSHOT_HEADER_BYTES,
    QCOW_MAX_SNAPSHOTS_SIZE,
    clusterSize,
    "Snapshot table",
  );
  if (count > QCOW_MAX_SNAPSHOTS) throw new ImageFormatError("Snapshot table too large");
  const out: SnapshotEntry[] = [];
  let at = offset;
  let total = 0;
  const head = new Uint8Array(QCOW2_SNAPSHOT_HEADER_BYTES);
  const hv = new DataView(head.buffer);
  for (let i = 0; i < count; i++) {
    file.readSync(at, head);
    const idLen = hv.getUint16(12);
    const nameLen = hv.getUint16(14);
    const extraLen = hv.getUint32(36);
    if (extraLen > 1024) {
      throw new ImageFormatError("Too much extra metadata in snapshot table entry");
    }
    const rest = new Uint8Array(extraLen + idLen + nameLen);
    file.readSync(at + QCOW2_SNAPSHOT_HEADER_BYTES, rest);
    const ev = new DataView(rest.buffer);
    const entry: SnapshotEntry = {
      l1TableOffset: u64(hv, 0),
      l1Size: hv.getUint32(8),
      dateSec: hv.getUint32(16),
      dateNsec: hv.getUint32(20),
      vmClockNs: u64(hv, 24),
      vmStateSize: hv.getUint32(32),
      id: decoder.decode(rest.subarray(extraLen, extraLen + idLen)),
      name: decoder.decode(rest.subarray(extraLen + idLen)),
      extra: rest.slice(0, extraLen),
    };
    if (extraLen >= 8) entry.vmStateSize = u64(ev, 0);
    if (extraLen >= 16) entry.diskSize = u64(ev, 8);
    if (extraLen >= 24) entry.icount = u64(ev, 16);
    const len = (QCOW2_SNAPSHOT_HEADER_BYTES + rest.length + 7) & ~7;
    at += len;
    total += len;
    if (total > QCOW_MAX_SNAPSHOTS_SIZE) throw new ImageFormatError("Snapshot table too large");
    out.push(entry);
  }
  return out;
}

/** The snapshots as `info` and `snapshot -l` list them. */
export function snapshotInfos(entries: readonly SnapshotEntry[]): SnapshotInfo[] {
  return entries.map((s) => {
    const info: SnapshotInfo = {
      id: s.id,
      name: s.name,
      vmStateSize: s.vmStateSize,
      dateSec: s.dateSec,
      dateNsec: s.dateNsec,
      vmClockNs: s.vmClockNs,
    };
    // QEMU stores -1 when no instruction count was recorded.
    if (s.icount !== undefined && s.icount !== 0xffffffffffffffff) info.icount = s.icount;
    return info;
  });
}

/** Bytes of the extra data QEMU writes: vm_state_size_large, disk_size, icount. */
export const QCOW2_SNAPSHOT_EXTRA_BYTES = 24;

const encoder = new TextEncoder();

function putU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / 0x100000000));
  view.setUint32(at + 4, value >>> 0);
}

/** The bytes an entry occupies in the table as it is stored now (without the final padding). */
export function entryBytes(s: SnapshotEntry): number {
  return QCOW2_SNAPSHOT_HEADER_BYTES + s.extra.length + encoder.encode(s.id).length +
    encoder.encode(s.name).length;
}

/** The size of the stored table: entries aligned to 8 bytes, the last one unpadded. */
export function tableBytes(entries: readonly SnapshotEntry[]): number {
  let at = 0;
  for (const s of entries) at = ((at + 7) & ~7) + entryBytes(s);
  return at;
}

/**
 * Gives an entry the extra data QEMU writes (at least 24 bytes: vm_state_size_large,
 * disk_size, icount), keeping bytes past them that a newer writer added.
 */
export function normalizeExtra(s: SnapshotEntry, diskSizeBytes: number): void {
  if (s.extra.length >= QCOW2_SNAPSHOT_EXTRA_BYTES) return;
  const extra = new Uint8Array(QCOW2_SNAPSHOT_EXTRA_BYTES);
  const v = new DataView(extra.buffer);
  putU64(v, 0, s.vmStateSize);
  putU64(v, 8, s.diskSize ?? diskSizeBytes);
  s.diskSize ??= diskSizeBytes;
  // No instruction count recorded: QEMU's -1.
  v.setUint32(16, 0xffffffff);
  v.setUint32(20, 0xffffffff);
  s.extra = extra;
}

/** Encodes the whole snapshot table, as QEMU's `qcow2_write_snapshots` lays it out. */
export function serializeSnapshots(entries: readonly SnapshotEntry[]): Uint8Array {
  const buf = new Uint8Array(tableBytes(entries));
  const view = new DataView(buf.buffer);
  let at = 0;
  for (const s of entries) {
    at = (at + 7) & ~7;
    const id = encoder.encode(s.id);
    const name = encoder.encode(s.name);
    putU64(view, at, s.l1TableOffset);
    view.setUint32(at + 8, s.l1Size);
    view.setUint16(at + 12, id.length);
    view.setUint16(at + 14, name.length);
    view.setUint32(at + 16, s.dateSec);
    view.setUint32(at + 20, s.dateNsec);
    putU64(view, at + 24, s.vmClockNs);
    // The 32-bit field holds the size when it fits; the extra data holds it in full.
    view.setUint32(at + 32, s.vmStateSize > 0xffffffff ? 0 : s.vmStateSize);
    view.setUint32(at + 36, s.extra.length);
    at += QCOW2_SNAPSHOT_HEADER_BYTES;
    buf.set(s.extra, at);
    at += s.extra.length;
    buf.set(id, at);
    at += id.length;
    buf.set(name, at);
    at += name.length;
  }
  return buf;
}
