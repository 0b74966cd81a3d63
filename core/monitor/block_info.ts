// query-block, query-blockstats and `info blockstats`: the drives, their images and the
// block scheduler's counters, in QEMU 7.2's field names

import { BlockBackend } from "../block/backend.ts";
import type { BlockNode } from "../block/driver.ts";
import { REMOVABLE_MEDIA } from "../device.ts";
import type { DriveConfig, Machine } from "../machine.ts";
import type { SchedulerStats } from "../block/scheduler.ts";
import type { CommandTable, MonitorContext } from "./commands.ts";

/**
 * The QOM-style path of the device a drive is attached to. vmkit has no QOM tree: the
 * path names the controller and the drive (QEMU numbers its unattached devices
 * instead); QEMU's events carry it where the device has no id of its own.
 */
export function drivePath(ctx: MonitorContext, drive: DriveConfig): string {
  if (drive.interface === "ide") {
    const ide = ctx.machine.devices.find((d) => d.model === "piix3-ide");
    return `/machine/unattached/${ide?.id ?? "ide"}/${drive.id}`;
  }
  if (drive.interface === "virtio") return `/machine/peripheral-anon/${drive.id}/virtio-backend`;
  return `/machine/unattached/${drive.id}`;
}

/** The node name of drive `index`'s image (QEMU generates `#blockNNN` names too). */
export function nodeName(index: number): string {
  return `#block${String(index).padStart(3, "0")}`;
}

function backingDepth(node: BlockNode): number {
  let depth = 0;
  for (let b = node.backing; b; b = b.backing) depth++;
  return depth;
}

// QEMU's ImageInfo: the fields `qemu-img info --output=json` shows, the backing chain nested.
function imageInfo(node: BlockNode): Record<string, unknown> {
  const info: Record<string, unknown> = {
    "virtual-size": node.size(),
    filename: node.filename,
    format: node.driver,
    "actual-size": node.allocatedBytes(),
    "dirty-flag": false,
  };
  if (node.clusterSize !== undefined && node.driver !== "raw") {
    info["cluster-size"] = node.clusterSize;
  }
  const specific = node.formatInfo?.();
  if (specific) info["format-specific"] = { type: specific.type, data: specific.data };
  if (node.backing) {
    info["backing-filename"] = node.backingFilename ?? node.backing.filename;
    if (node.backingFormat) info["backing-filename-format"] = node.backingFormat;
    info["full-backing-filename"] = node.backing.filename;
    info["backing-image"] = imageInfo(node.backing);
  }
  return info;
}

/** query-block: one entry per drive, as QEMU's qmp_query_block. */
export function queryBlock(ctx: MonitorContext): Record<string, unknown>[] {
  const media = ctx.machine.findService(REMOVABLE_MEDIA);
  return ctx.machine.config.drives.map((d, index) => {
    const m = media?.get(d.id);
    const removable = d.media === "cdrom" || d.interface === "floppy";
    const entry: Record<string, unknown> = {
      device: d.id,
      locked: m?.locked ?? false,
      removable,
    };
    if (removable && m?.hasTray !== false) entry.tray_open = m?.trayOpen ?? false;
    // QEMU reports io-status only for devices that keep one (not its floppy drives).
    if (d.interface !== "floppy") entry["io-status"] = "ok";
    const backend = d.node instanceof BlockBackend ? d.node : null;
    if (backend) {
      const node = backend.root;
      const inserted: Record<string, unknown> = {
        file: node.filename,
        "node-name": nodeName(index),
        ro: d.readOnly || node.readOnly,
        drv: node.driver,
        encrypted: false,
        detect_zeroes: "off",
        bps: 0,
        bps_rd: 0,
        bps_wr: 0,
        iops: 0,
        iops_rd: 0,
        iops_wr: 0,
        write_threshold: 0,
        backing_file_depth: backingDepth(node),
        cache: {
          writeback: !backend.cache.writethrough,
          direct: backend.cache.direct,
          "no-flush": backend.cache.noFlush,
        },
        image: imageInfo(node),
      };
      if (node.backing) inserted.backing_file = node.backing.filename;
      entry.inserted = inserted;
    }
    entry.qdev = drivePath(ctx, d);
    entry.type = "unknown";
    return entry;
  });
}

/**
 * The scheduler's counters when the monitor started, per backend: what vmkit read
 * before the guest ran (the geometry guess reads sector 0) is not the guest's I/O, which
 * is all QEMU's devices account.
 */
const baselines = new WeakMap<BlockBackend, SchedulerStats>();

/** Takes the current counters of every drive as the zero of its statistics. */
export function markBlockStatsBaseline(machine: Machine): void {
  for (const d of machine.config.drives) {
    if (d.node instanceof BlockBackend) baselines.set(d.node, { ...d.node.scheduler.stats });
  }
}

/** Counters that are not sums: kept as they are, not counted from the baseline. */
const NOT_SUMS = new Set<keyof SchedulerStats>([
  "maxInFlight",
  "writeHighestOffset",
  "lastAccessMs",
]);

function guestStats(backend: BlockBackend): SchedulerStats {
  const now = backend.scheduler.stats;
  const base = baselines.get(backend);
  if (!base) return now;
  const out = { ...now };
  for (const k of Object.keys(out) as (keyof SchedulerStats)[]) {
    if (!NOT_SUMS.has(k)) out[k] = now[k] - base[k];
  }
  // The last access is the guest's only once the guest made one.
  const guestOps = out.reads + out.writes + out.zeroes + out.discards + out.flushes + out.failed;
  if (guestOps === 0) out.lastAccessMs = 0;
  return out;
}

/**
 * The counters of one drive (zeros for an empty one), as QEMU's block accounting keeps
 * them for the guest's requests: times on the wall clock from submission to completion,
 * write-zeroes counted as writes of no bytes, `idle_time_ns` once the guest made a
 * request. vmkit's devices merge no requests and refuse none before the block layer
 * (merged and invalid counts are zero).
 */
function driveStats(d: DriveConfig): Record<string, unknown> {
  const s = d.node instanceof BlockBackend ? guestStats(d.node) : undefined;
  const out: Record<string, unknown> = {
    rd_bytes: s?.bytesRead ?? 0,
    wr_bytes: s?.bytesWritten ?? 0,
    rd_operations: s?.reads ?? 0,
    wr_operations: (s?.writes ?? 0) + (s?.zeroes ?? 0),
    flush_operations: s?.flushes ?? 0,
    unmap_operations: s?.discards ?? 0,
    unmap_bytes: s?.bytesDiscarded ?? 0,
    failed_rd_operations: s?.failedReads ?? 0,
    failed_wr_operations: s?.failedWrites ?? 0,
    failed_flush_operations: s?.failedFlushes ?? 0,
    failed_unmap_operations: s?.failedDiscards ?? 0,
    invalid_rd_operations: 0,
    invalid_wr_operations: 0,
    invalid_flush_operations: 0,
    invalid_unmap_operations: 0,
    rd_total_time_ns: s?.readNs ?? 0,
    wr_total_time_ns: s?.writeNs ?? 0,
    flush_total_time_ns: s?.flushNs ?? 0,
    unmap_total_time_ns: s?.discardNs ?? 0,
    rd_merged: 0,
    wr_merged: 0,
    unmap_merged: 0,
    wr_highest_offset: s?.writeHighestOffset ?? 0,
    account_invalid: true,
    account_failed: true,
    timed_stats: [],
  };
  if (s?.lastAccessMs) {
    out.idle_time_ns = Math.max(0, Math.round((performance.now() - s.lastAccessMs) * 1e6));
  }
  return out;
}

/** query-blockstats: the counters of each drive. */
export function queryBlockstats(ctx: MonitorContext): Record<string, unknown>[] {
  return ctx.machine.config.drives.map((d, index) => {
    const entry: Record<string, unknown> = { device: d.id, stats: driveStats(d) };
    if (d.node) entry["node-name"] = nodeName(index);
    entry.qdev = drivePath(ctx, d);
    return entry;
  });
}

/** `info blockstats`: QEMU's print_blockstats line for each drive. */
export function blockstatsText(ctx: MonitorContext): string {
  const keys = [
    "rd_bytes",
    "wr_bytes",
    "rd_operations",
    "wr_operations",
    "flush_operations",
    "wr_total_time_ns",
    "rd_total_time_ns",
    "flush_total_time_ns",
    "rd_merged",
    "wr_merged",
  ];
  return ctx.machine.config.drives.map((d) => {
    const s = driveStats(d);
    return `${d.id}: ${keys.map((k) => `${k}=${s[k]}`).join(" ")} idle_time_ns=${
      s.idle_time_ns ?? 0
    }\n`;
  }).join("");
}

/** Adds query-block, query-blockstats and `info blockstats`. */
export function addBlockInfoCommands(table: CommandTable): void {
  table.addQmp({ name: "query-block", args: [], run: (ctx) => queryBlock(ctx) });
  table.addQmp({
    name: "query-blockstats",
    args: [{ name: "query-nodes", type: "bool", optional: true }],
    run: (ctx) => queryBlockstats(ctx),
  });
  table.addInfo({
    name: "blockstats",
    params: "",
    help: "show block device statistics",
    run: (ctx) => blockstatsText(ctx),
  });
}
