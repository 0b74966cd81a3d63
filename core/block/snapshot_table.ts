// The snapshot list as QEMU prints it (bdrv_snapshot_dump): both faces use it

import { sizeToStr } from "../size_text.ts";
import type { SnapshotInfo } from "./driver.ts";

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * The snapshot table as `qemu-img info`, `qemu-img snapshot -l` and the monitor's
 * `info snapshots` print it.
 */
export function snapshotTable(snapshots: readonly SnapshotInfo[]): string {
  // QEMU 7.2's bdrv_snapshot_dump: "%-9s %-16s %8s%20s%13s%11s" (the header: "%-10s%-17s%8s...");
  // a tag of 16 characters or more is followed by at least one space and the size's column.
  const row = (
    id: string,
    tag: string,
    size: string,
    date: string,
    clock: string,
    icount: string,
  ) =>
    `${id.padEnd(9)} ${tag.padEnd(16)} ${size.padStart(8)}${date.padStart(20)}${
      clock.padStart(13)
    }${icount.padStart(11)}`;
  const lines = [
    `${"ID".padEnd(10)}${"TAG".padEnd(17)}${"VM SIZE".padStart(8)}${"DATE".padStart(20)}${
      "VM CLOCK".padStart(13)
    }${"ICOUNT".padStart(11)}`,
  ];
  for (const s of snapshots) {
    const d = new Date(s.dateSec * 1000);
    const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${
      pad2(d.getHours())
    }:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    const ms = Math.floor(s.vmClockNs / 1e6);
    const clock = `${pad2(Math.floor(ms / 3600000))}:${pad2(Math.floor(ms / 60000) % 60)}:${
      pad2(Math.floor(ms / 1000) % 60)
    }.${String(ms % 1000).padStart(3, "0")}`;
    lines.push(
      row(
        s.id,
        s.name,
        sizeToStr(s.vmStateSize),
        date,
        clock,
        s.icount === undefined ? "" : String(s.icount),
      ),
    );
  }
  return lines.join("\n");
}
