// `img measure`: how big a new image would be, for a size or for an existing image

import { persistentBitmapsSize } from "../../core/block/dirty_bitmap.ts";
import { UsageError } from "../../core/errors.ts";
import { isHelpRequest, optNumber } from "../../core/options.ts";
import { getopt, GetoptError, type GetoptResult } from "../getopt.ts";
import { qemuJson, writeErr, writeOut } from "../output.ts";
import {
  closeQuietly,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  joinedOpt,
  lastOpt,
  openImage,
  outputFormat,
  STANDARD_LONG,
} from "./common.ts";
import { createOptionsHelp, parseCreateOptions, parseImageSize } from "./create.ts";
import { chainStatus } from "../../core/block/status.ts";
import { loadSnapshotParam, parseSnapshotParam } from "./snapshot_param.ts";

async function run(args: string[], ctx: ImgContext): Promise<number> {
  let parsed: GetoptResult;
  try {
    parsed = getopt(args, "hf:o:O:l:U", [
      ...STANDARD_LONG,
      { name: "output", hasArg: true },
      { name: "size", hasArg: true },
    ]);
  } catch (e) {
    // qemu-img 7.2's measure alone leaves a bad option to getopt (no leading ':' in its
    // option string): glibc prints its own line under the name "measure", then the
    // command prints the full help and exits 0.
    if (!(e instanceof GetoptError)) throw e;
    writeErr(`measure: ${e.glibcMessage}\n`);
    return ctx.printHelp();
  }
  const { opts, positional } = parsed;
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const output = outputFormat(opts);
  const outFormat = lastOpt(opts, "O") ?? "raw";
  const optionText = joinedOpt(opts, "o");
  if (optionText !== undefined && isHelpRequest(optionText)) {
    writeOut(createOptionsHelp(ctx, outFormat, false));
    return 0;
  }
  const sizeText = lastOpt(opts, "size");
  if (sizeText !== undefined && positional.length > 0) {
    throw new UsageError("--size N cannot be used together with a filename.");
  }
  if (sizeText === undefined && positional.length === 0) {
    throw new UsageError("Either --size N or one filename must be specified.");
  }
  const snapshotText = lastOpt(opts, "l");
  const snapshot = snapshotText === undefined ? undefined : parseSnapshotParam(snapshotText, ctx);
  if (
    positional.length === 0 &&
    (hasOpt(opts, "image-opts") || hasOpt(opts, "f") || snapshot !== undefined)
  ) {
    throw new UsageError("--image-opts, -f, and -l require a filename argument.");
  }
  if (positional.length > 1) throw new UsageError("At most one filename argument is allowed.");
  const format = ctx.graph.format(outFormat);
  if (!format.measure) {
    throw new UsageError(`Block driver '${outFormat}' does not support size measurement`);
  }
  const createOpts = parseCreateOptions(ctx, outFormat, optionText ?? "");
  let virtualSize: number;
  let allocated: number;
  // qemu-img adds the size of persistent bitmaps when both sides are qcow2.
  let bitmaps: number | undefined;
  if (sizeText !== undefined) {
    virtualSize = parseImageSize(sizeText, ctx);
    allocated = 0;
  } else {
    const node = await openImage(ctx, positional[0], {
      format: lastOpt(opts, "f"),
      imageOpts: hasOpt(opts, "image-opts"),
      readOnly: true,
      forceShare: hasOpt(opts, "U"),
    });
    try {
      if (snapshot) await loadSnapshotParam(node, snapshot);
      if (node.driver === "qcow2" && outFormat === "qcow2") {
        const cs = optNumber(createOpts, "cluster_size") ?? 65536;
        bitmaps = persistentBitmapsSize(node.dirtyBitmaps?.bitmaps() ?? [], cs);
      }
      virtualSize = node.size();
      // Count whole target clusters that would hold data, as QEMU's measure walks block status.
      const cluster = optNumber(createOpts, "cluster_size") ?? 65536;
      allocated = 0;
      let lastCounted = -1;
      for (let offset = 0; offset < virtualSize;) {
        const e = await chainStatus(node, offset, Math.min(virtualSize - offset, 1 << 30));
        if (e.data && !e.zero) {
          const first = Math.max(Math.floor(offset / cluster), lastCounted + 1);
          const last = Math.floor((offset + e.length - 1) / cluster);
          if (last >= first) {
            allocated += (last - first + 1) * cluster;
            lastCounted = last;
          }
        }
        offset += e.length;
      }
    } finally {
      await closeQuietly(node);
    }
  }
  const r = format.measure(virtualSize, allocated, createOpts);
  if (output === "json") {
    writeOut(
      qemuJson({
        "bitmaps": bitmaps,
        "required": r.required,
        "fully-allocated": r.fullyAllocated,
      }) +
        "\n",
    );
  } else {
    writeOut(`required size: ${r.required}\nfully allocated size: ${r.fullyAllocated}\n`);
    if (bitmaps !== undefined) writeOut(`bitmaps size: ${bitmaps}\n`);
  }
  return 0;
}

/** The `measure` subcommand. */
export const measureCommand: ImgCommand = {
  name: "measure",
  synopsis: "measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [-f fmt] filename]",
  run,
};
