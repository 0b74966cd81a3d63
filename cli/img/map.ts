// `img map`: where each guest extent lives, through the backing chain

import type { BlockNode } from "../../core/block/driver.ts";
import { type ChainStatus, chainStatus } from "../../core/block/status.ts";
import { UsageError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { writeOut } from "../output.ts";
import {
  closeQuietly,
  cvtnum,
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
  outputFormat,
  STANDARD_LONG,
} from "./common.ts";

/** One extent of the map, as qemu-img's MapEntry. */
export type MapEntry = ChainStatus;

function mergeable(a: MapEntry, b: MapEntry): boolean {
  return a.depth === b.depth && a.present === b.present && a.zero === b.zero &&
    a.data === b.data && a.compressed === b.compressed && a.filename === b.filename &&
    (a.offset === undefined) === (b.offset === undefined) &&
    (a.offset === undefined || a.offset + a.length === b.offset);
}

/** Walks `[start, end)` and yields merged extents. */
export async function* mapExtents(
  node: BlockNode,
  start: number,
  end: number,
): AsyncGenerator<MapEntry> {
  let pending: MapEntry | undefined;
  let offset = start;
  while (offset < end) {
    const e = await chainStatus(node, offset, Math.min(end - offset, 1 << 30));
    if (e.length <= 0) throw new Error(`block status made no progress at ${offset}`);
    offset += e.length;
    if (pending && mergeable(pending, e)) {
      pending.length += e.length;
      continue;
    }
    if (pending) yield pending;
    pending = e;
  }
  if (pending) yield pending;
}

function hex(n: number): string {
  return n === 0 ? "0" : `0x${n.toString(16)}`;
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "f:hUs:l:", [
    ...STANDARD_LONG,
    { name: "output", hasArg: true },
    { name: "start-offset", hasArg: true, short: "s" },
    { name: "max-length", hasArg: true, short: "l" },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const output = outputFormat(opts);
  if (positional.length !== 1) throw new ErrorExit("Expecting one image file name");
  const startText = lastOpt(opts, "s");
  const lengthText = lastOpt(opts, "l");
  const start = startText ? cvtnum(ctx, "start offset", startText) : 0;
  const node = await openImage(ctx, positional[0], {
    format: lastOpt(opts, "f"),
    imageOpts: hasOpt(opts, "image-opts"),
    readOnly: true,
    forceShare: hasOpt(opts, "U"),
  });
  try {
    const size = node.size();
    const end = lengthText
      ? Math.min(
        size,
        start +
          cvtnum(ctx, "max length", lengthText),
      )
      : size;
    let first = true;
    if (output === "human") {
      writeOut(`${"Offset".padEnd(16)}${"Length".padEnd(16)}${"Mapped to".padEnd(16)}File\n`);
    } else writeOut("[");
    for await (const e of mapExtents(node, Math.min(start, size), end)) {
      if (output === "human") {
        if (e.data && e.offset === undefined) {
          throw new UsageError("File contains external, encrypted or compressed clusters.");
        }
        if (e.data && !e.zero) {
          writeOut(
            `${hex(e.start).padEnd(16)}${hex(e.length).padEnd(16)}${
              hex(e.offset!).padEnd(16)
            }${e.filename}\n`,
          );
        }
        continue;
      }
      let line =
        `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, ` +
        `"zero": ${e.zero}, "data": ${e.data}`;
      if (e.offset !== undefined) line += `, "offset": ${e.offset}`;
      line += "}";
      writeOut((first ? "" : ",\n") + line);
      first = false;
    }
    if (output === "json" && first) {
      // Nothing to map (an empty image): qemu-img prints its initial, empty entry.
      writeOut(
        `{ "start": ${start}, "length": 0, "depth": 0, "present": false, ` +
          `"zero": false, "data": false}`,
      );
    }
    if (output === "json") writeOut("]\n");
  } finally {
    await closeQuietly(node);
  }
  return 0;
}

/** The `map` subcommand. */
export const mapCommand: ImgCommand = {
  name: "map",
  synopsis: "map [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename",
  run,
};
