// `img amend`: change format options (compat, lazy_refcounts, refcount_bits...) of an existing image

import type { BlockNode } from "../../core/block/driver.ts";
import { UsageError, VmkitError } from "../../core/errors.ts";
import {
  formatOptionHelp,
  isHelpRequest,
  type OptionSpec,
  type ParsedOptions,
  parseOptions,
} from "../../core/options.ts";
import { getopt } from "../getopt.ts";
import { writeOut } from "../output.ts";
import {
  closeQuietly,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  joinedOpt,
  lastOpt,
  openImage,
} from "./common.ts";
import { Progress } from "./progress.ts";

function notSupported(driver: string): VmkitError {
  return new VmkitError(`Format driver '${driver}' does not support option amendment`);
}

/** The `-o help` text of `amend`, as qemu-img prints it for a format. */
export function amendOptionsHelp(format: string, specs: readonly OptionSpec[]): string {
  return `Amend options for '${format}':\n${formatOptionHelp(specs)}\n`;
}

/**
 * Types `-o` text against a node's amend options; an option only `create` knows
 * gets qemu-img's hint (only when the text would parse as create options).
 */
export function parseAmendOptions(
  ctx: ImgContext,
  node: BlockNode,
  text: string,
): ParsedOptions {
  try {
    return parseOptions(text, node.amendOptions ?? []);
  } catch (e) {
    if (!(e instanceof VmkitError) || !e.message.startsWith("Invalid parameter")) throw e;
    try {
      parseOptions(text, ctx.graph.format(node.driver).options);
    } catch {
      throw e;
    }
    throw new VmkitError(`${e.message}\nThis option is only supported for image creation`);
  }
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "ho:f:t:pq", [
    { name: "help", hasArg: false, short: "h" },
    { name: "object", hasArg: true },
    { name: "image-opts", hasArg: false },
    { name: "force", hasArg: false },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  // qemu-img refuses an empty -o while reading the command line.
  for (const o of opts) {
    if (o.name === "o" && (o.value === "" || o.value.endsWith(",") && !o.value.endsWith(",,"))) {
      throw new UsageError(`Invalid option list: ${o.value}`);
    }
  }
  const optionText = joinedOpt(opts, "o");
  if (optionText === undefined) {
    throw new UsageError(
      `Must specify options (-o)\nTry '${ctx.program} --help' for more information`,
    );
  }
  const format = lastOpt(opts, "f");
  const help = isHelpRequest(optionText);
  if (format !== undefined && help) {
    // As qemu-img: with -f, the help comes from the format alone; no image is opened.
    const descriptor = ctx.graph.format(format);
    if (!descriptor.amendOptions) throw notSupported(descriptor.name);
    writeOut(amendOptionsHelp(descriptor.name, descriptor.amendOptions));
    return 0;
  }
  if (positional.length !== 1) throw new UsageError("Expecting one image file name");
  const quiet = hasOpt(opts, "q");
  let node: BlockNode | undefined;
  try {
    // Without -f, qemu-img opens the image for writing before it prints the help, too.
    node = await openImage(ctx, positional[0], {
      format,
      readOnly: false,
      cache: lastOpt(opts, "t") ?? "writeback",
      imageOpts: hasOpt(opts, "image-opts"),
    });
    if (!node.amend || !node.amendOptions) throw notSupported(node.driver);
    if (help) {
      writeOut(amendOptionsHelp(node.driver, node.amendOptions));
    } else {
      const parsed = parseAmendOptions(ctx, node, optionText);
      const progress = hasOpt(opts, "p") && !quiet ? new Progress() : undefined;
      await node.amend(parsed, {
        force: hasOpt(opts, "force"),
        progress: (done, total) => progress?.update(done, total),
      });
      progress?.finish();
    }
  } catch (e) {
    await closeQuietly(node);
    throw e;
  }
  await node.close();
  return 0;
}

/** The `amend` subcommand. */
export const amendCommand: ImgCommand = {
  name: "amend",
  synopsis:
    "amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename",
  run,
};
