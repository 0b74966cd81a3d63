// `img resize`: grow or shrink an image's virtual size

import { UsageError } from "../../core/errors.ts";
import { parseSignedSize } from "../../core/options.ts";
import type { Preallocation } from "../../core/block/driver.ts";
import { getopt } from "../getopt.ts";
import { writeErr, writeOut } from "../output.ts";
import {
  closeQuietly,
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
} from "./common.ts";

async function run(argv: string[], ctx: ImgContext): Promise<number> {
  // qemu-img takes the size off the end first, so `-1G` is never read as an option.
  if (argv.length < 2 && !argv.some((a) => a === "-h" || a === "--help")) {
    throw new ErrorExit("Not enough arguments");
  }
  const sizeText = argv[argv.length - 1];
  const { opts, positional } = getopt(argv.slice(0, -1), "f:hqU", [
    { name: "help", hasArg: false, short: "h" },
    { name: "preallocation", hasArg: true },
    { name: "shrink", hasArg: false },
    { name: "image-opts", hasArg: false },
    { name: "object", hasArg: true },
  ]);
  if (hasOpt(opts, "h") || sizeText === "-h" || sizeText === "--help") return ctx.printHelp();
  if (positional.length !== 1) throw new ErrorExit("Expecting image file name and size");
  let size: { relative: boolean; bytes: number };
  try {
    size = parseSignedSize(sizeText);
  } catch {
    throw new UsageError("Invalid size specified");
  }
  const prealloc = (lastOpt(opts, "preallocation") ?? "off") as Preallocation;
  if (!["off", "metadata", "falloc", "full"].includes(prealloc)) {
    throw new UsageError(`Invalid preallocation mode '${prealloc}'`);
  }
  const node = await openImage(ctx, positional[0], {
    format: lastOpt(opts, "f"),
    imageOpts: hasOpt(opts, "image-opts"),
    readOnly: false,
    access: { resize: true },
  });
  try {
    const current = node.size();
    const target = size.relative ? current + size.bytes : size.bytes;
    if (target < 0) throw new UsageError("New image size must be positive");
    if (target < current && !hasOpt(opts, "shrink")) {
      writeErr(`${ctx.errorPrefix}: Use the --shrink option to perform a shrink operation.\n`);
      writeErr(
        `${ctx.errorPrefix}: warning: Shrinking an image will delete all data beyond the shrunken image's end. ` +
          "Before performing such an operation, make sure there is no important data there.\n",
      );
      return 1;
    }
    if (target < current && prealloc !== "off") {
      throw new UsageError("Preallocation can only be used for growing images");
    }
    await node.truncate(target, { shrink: true, preallocation: prealloc });
    await node.flush();
  } finally {
    await closeQuietly(node);
  }
  if (!hasOpt(opts, "q")) writeOut("Image resized.\n");
  return 0;
}

/** The `resize` subcommand. */
export const resizeCommand: ImgCommand = {
  name: "resize",
  synopsis: "resize [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size",
  run,
};
