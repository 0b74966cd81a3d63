// Drive indexes, QEMU's default drive ids, and the default CD-ROM of `-M pc`

import { UsageError } from "../../core/errors.ts";
import type { DriveConfig } from "../../core/machine.ts";

/** Units per bus by interface (QEMU's if_max_devs); interfaces not listed number units flat. */
const MAX_DEVS: Partial<Record<DriveConfig["interface"], number>> = { ide: 2, scsi: 7 };

/** QEMU's name for a drive without `id=`: `ide0-hd0`, `ide1-cd0`, `virtio0`, `none0`. */
export function defaultDriveId(drive: DriveConfig, index: number): string {
  const maxDevs = MAX_DEVS[drive.interface] ?? 0;
  const media = maxDevs ? (drive.media === "cdrom" ? "-cd" : "-hd") : "";
  return maxDevs
    ? `${drive.interface}${Math.floor(index / maxDevs)}${media}${index % maxDevs}`
    : `${drive.interface}${media}${index}`;
}

/**
 * Gives every drive its index (the first free one on its interface when `index=` was
 * left out, in command-line order as QEMU's drive_new does), an id when it has none,
 * and adds `-M pc`'s empty IDE CD-ROM at index 2 (ide1 master) unless that unit is
 * taken or `defaultCdrom` is false (`-nodefaults`), then, with `defaultFloppy`, its empty
 * floppy0 unless a floppy took unit 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { finishDrives } from "./drives.ts";
 *
 * const disk = { id: "", node: null, interface: "ide" as const, media: "disk" as const, readOnly: false };
 * const drives = finishDrives([disk], { defaultCdrom: true });
 * assert.deepEqual(drives.map((d) => [d.id, d.index]), [["ide0-hd0", 0], ["ide1-cd0", 2]]);
 * ```
 */
export function finishDrives(
  drives: DriveConfig[],
  options: { defaultCdrom: boolean; defaultFloppy?: boolean },
): DriveConfig[] {
  const used = new Map<string, Set<number>>();
  const ids = new Set<string>();
  const out: DriveConfig[] = [];
  const place = (drive: DriveConfig) => {
    let taken = used.get(drive.interface);
    if (!taken) used.set(drive.interface, taken = new Set());
    let index = drive.index;
    if (index === undefined) {
      index = 0;
      while (taken.has(index)) index++;
    } else if (taken.has(index)) {
      const maxDevs = MAX_DEVS[drive.interface] ?? 0;
      const bus = maxDevs ? Math.floor(index / maxDevs) : 0;
      const unit = maxDevs ? index % maxDevs : index;
      throw new UsageError(`drive with bus=${bus}, unit=${unit} (index=${index}) exists`);
    }
    taken.add(index);
    const id = drive.id || defaultDriveId(drive, index);
    if (ids.has(id)) throw new UsageError(`Duplicate ID '${id}' for drive`);
    ids.add(id);
    out.push({ ...drive, id, index });
  };
  for (const d of drives) place(d);
  if (options.defaultCdrom && !used.get("ide")?.has(2)) {
    place({ id: "", node: null, interface: "ide", index: 2, media: "cdrom", readOnly: true });
  }
  // QEMU's pc also gets an empty floppy0 (drive A) unless a floppy takes that unit.
  if (options.defaultFloppy && !used.get("floppy")?.has(0)) {
    place({ id: "", node: null, interface: "floppy", index: 0, media: "disk", readOnly: false });
  }
  return out;
}

/** The index `bus=` and `unit=` stand for (QEMU: bus * units per bus + unit). */
export function indexFromBusUnit(
  iface: DriveConfig["interface"],
  bus: number | undefined,
  unit: number | undefined,
): number | undefined {
  if (bus === undefined && unit === undefined) return undefined;
  const maxDevs = MAX_DEVS[iface] ?? 0;
  return maxDevs ? (bus ?? 0) * maxDevs + (unit ?? 0) : (unit ?? 0);
}
