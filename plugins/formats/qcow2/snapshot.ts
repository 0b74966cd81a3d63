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
