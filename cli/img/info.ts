// `img info`: what an image is, in qemu-img's human layout or its JSON

import type { BlockNode, SnapshotInfo } from "../../core/block/driver.ts";
import { resolveBackingName } from "../../core/block/graph.ts";
import { snapshotTable } from "../../core/block/snapshot_table.ts";
import { ImageOpenError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { type Json, qemuJson, sizeToStr, writeOut } from "../output.ts";
import {
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
  outputFormat,
  parseImageOpts,
  STANDARD_LONG,
} from "./common.ts";

/** Everything `info` reports about one image. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize: number;
  clusterSize?: number;
  dirty: boolean;
  backingFilename?: string;
  fullBackingFilename?: string;
  backingFormat?: string;
  snapshots?: SnapshotInfo[];
  formatSpecific?: { type: string; data: Record<string, unknown>; humanLines: string[] };
}

/** Collects {@linkcode ImageInfo} from an opened node. */
export function collectInfo(node: BlockNode, filename: string): ImageInfo {
  const specific = node.formatInfo?.();
  const info: ImageInfo = {
    filename,
    format: node.driver,
    virtualSize: node.size(),
    actualSize: node.allocatedBytes(),
    clusterSize: node.clusterSize,
    dirty: node.isDirty?.() ?? false,
    snapshots: node.snapshots?.(),
    formatSpecific: specific,
  };
  if (node.backingFilename) {
    info.backingFilename = node.backingFilename;
    info.fullBackingFilename = resolveBackingName(filename, node.backingFilename);
    info.backingFormat = node.backingFormat;
  }
  return info;
}

/** The JSON object qemu-img prints, with its field order. */
export function infoJson(info: ImageInfo): Record<string, Json | undefined> {
  return {
    "snapshots": info.snapshots?.length ? info.snapshots.map(snapshotJson) : undefined,
    "backing-filename-format": info.backingFormat,
    "virtual-size": info.virtualSize,
    "filename": info.filename,
    "cluster-size": info.clusterSize,
    "format": info.format,
    "actual-size": info.actualSize >= 0 ? info.actualSize : undefined,
    "format-specific": info.formatSpecific
      ? { type: info.formatSpecific.type, data: info.formatSpecific.data as Json }
      : undefined,
    "full-backing-filename": info.fullBackingFilename,
    "backing-filename": info.backingFilename,
    "dirty-flag": info.dirty,
  };
}

function snapshotJson(s: SnapshotInfo): Json {
  return {
    "icount": s.icount,
    "vm-clock-nsec": s.vmClockNs % 1e9,
    "name": s.name,
    "date-sec": s.dateSec,
    "date-nsec": s.dateNsec,
    "vm-clock-sec": Math.floor(s.vmClockNs / 1e9),
    "id": s.id,
    "vm-state-size": s.vmStateSize,
  };
}

/** The human `info` text for one image. */
export function infoHuman(info: ImageInfo): string {
  const lines = [
    `image: ${info.filename}`,
    `file format: ${info.format}`,
    `virtual size: ${sizeToStr(info.virtualSize)} (${info.virtualSize} bytes)`,
    `disk size: ${info.actualSize >= 0 ? sizeToStr(info.actualSize) : "unavailable"}`,
  ];
  if (info.clusterSize !== undefined) lines.push(`cluster_size: ${info.clusterSize}`);
  if (info.dirty) lines.push("cleanly shut down: no");
  if (info.backingFilename !== undefined) {
    let line = `backing file: ${info.backingFilename}`;
    if (info.fullBackingFilename !== info.backingFilename) {
      line += ` (actual path: ${info.fullBackingFilename})`;
    }
    lines.push(line);
  }
  if (info.backingFormat !== undefined) lines.push(`backing file format: ${info.backingFormat}`);
  if (info.snapshots?.length) {
    lines.push("Snapshot list:");
    lines.push(snapshotTable(info.snapshots));
  }
  if (info.formatSpecific) {
    lines.push("Format specific information:");
    // One push per line: an image may list tens of thousands (bitmaps), past what a
    // spread's arguments may hold.
    for (const line of info.formatSpecific.humanLines) lines.push(line);
  }
  return lines.join("\n") + "\n";
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "f:hU", [
    ...STANDARD_LONG,
    { name: "output", hasArg: true },
    { name: "backing-chain", hasArg: false },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const output = outputFormat(opts);
  if (positional.length !== 1) throw new ErrorExit("Expecting one image file name");
  const chain = hasOpt(opts, "backing-chain");
  const forceShare = hasOpt(opts, "U");
  const infos: ImageInfo[] = [];
  let filename: string | undefined = positional[0];
  let format = lastOpt(opts, "f");
  const seen = new Set<string>();
  while (filename !== undefined) {
    if (seen.has(filename)) {
      throw new ImageOpenError(`Backing file '${filename}' creates an infinite loop.`);
    }
    seen.add(filename);
    const node = await openImage(ctx, filename, {
      format,
      readOnly: true,
      forceShare,
      noBacking: true,
      // info reads no data (QEMU's BDRV_O_NO_IO): it holds no permission, only denies writers.
      access: { noIo: true },
      // Only the named image comes as an option string; its backing files are names.
      imageOpts: hasOpt(opts, "image-opts") && infos.length === 0,
    });
    try {
      // With --image-opts the image is shown by its file name, as qemu-img does.
      const shown = hasOpt(opts, "image-opts") && infos.length === 0
        ? parseImageOpts(filename).filename
        : filename;
      infos.push(collectInfo(node, shown));
    } finally {
      await node.close();
    }
    const last = infos[infos.length - 1];
    if (!chain) break;
    filename = last.fullBackingFilename;
    format = last.backingFormat;
  }
  if (output === "json") {
    const objs = infos.map(infoJson);
    writeOut(qemuJson(chain ? objs as Json : objs[0] as Json) + "\n");
  } else {
    writeOut(infos.map(infoHuman).join("\n"));
  }
  return 0;
}

/** The `info` subcommand. */
export const infoCommand: ImgCommand = {
  name: "info",
  synopsis: "info [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename",
  run,
};
