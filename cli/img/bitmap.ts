// `img bitmap`: add, remove, clear, enable, disable and merge persistent dirty bitmaps, as qemu-img 7.2

import type { BlockNode } from "../../core/block/driver.ts";
import {
  autoNodeName,
  defaultBitmapGranularity,
  type DirtyBitmap,
  type DirtyBitmapHost,
} from "../../core/block/dirty_bitmap.ts";
import { VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { writeErr } from "../output.ts";
import {
  closeQuietly,
  cvtnum,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
} from "./common.ts";

/** One action of the command line, in the order given. */
type Action =
  | { op: "remove" | "clear" | "enable" | "disable" }
  | { op: "add"; granularity: number }
  | { op: "merge"; source: string };

/** A failed action, worded as QEMU's block-dirty-bitmap-* commands. */
class BitmapError extends VmkitError {}

const ACTION_OPTIONS = ["add", "remove", "clear", "enable", "disable"] as const;

/** An automatic node name, for a node that cannot keep bitmaps (QEMU's `#block…`). */
function nodeNameOf(node: BlockNode): string {
  return node.dirtyBitmaps?.nodeName ?? autoNodeName();
}

function find(host: DirtyBitmapHost | undefined, name: string): DirtyBitmap {
  const b = host?.bitmaps().find((x) => x.name === name);
  if (!b) throw new BitmapError(`Dirty bitmap '${name}' not found`);
  return b;
}

/** QEMU's bdrv_dirty_bitmap_check: an in-use bitmap cannot be used; a read-only one not changed. */
function usable(b: DirtyBitmap, modify: boolean): void {
  if (modify && b.readonly) {
    throw new BitmapError(`Bitmap '${b.name}' is readonly and cannot be modified`);
  }
  if (b.inconsistent) {
    throw new BitmapError(
      `Bitmap '${b.name}' is inconsistent and cannot be used\n` +
        "Try block-dirty-bitmap-remove to delete this bitmap from disk",
    );
  }
}

async function add(node: BlockNode, name: string, granularity: number): Promise<void> {
  if (name === "") throw new BitmapError("Bitmap name cannot be empty");
  const g = granularity === 0 ? defaultBitmapGranularity(node.clusterSize) : granularity % 2 ** 32;
  if (g < 512 || (g & (g - 1)) !== 0) {
    throw new BitmapError("Granularity must be power of 2 and at least 512");
  }
  const host = node.dirtyBitmaps;
  if (!host) {
    throw new BitmapError(
      `Can't store persistent bitmaps to ${nodeNameOf(node)}: Operation not supported`,
    );
  }
  await host.addBitmap(name, g);
}

async function runAction(
  action: Action,
  node: BlockNode,
  source: BlockNode,
  name: string,
): Promise<void> {
  const host = node.dirtyBitmaps;
  switch (action.op) {
    case "add":
      await add(node, name, action.granularity);
      return;
    case "remove": {
      const b = find(host, name);
      if (b.readonly) usable(b, true);
      await host!.removeBitmap(name);
      return;
    }
    case "clear": {
      const b = find(host, name);
      usable(b, true);
      b.clear();
      return;
    }
    case "enable":
    case "disable": {
      const b = find(host, name);
      usable(b, false);
      b.enabled = action.op === "enable";
      return;
    }
    case "merge": {
      const target = find(host, name);
      const from = find(source.dirtyBitmaps, action.source);
      usable(from, false);
      if (from.sizeBytes !== target.sizeBytes) {
        throw new BitmapError(
          `Bitmaps are of different sizes (destination size is ${target.sizeBytes}, source size is ${from.sizeBytes}) and can't be merged`,
        );
      }
      usable(target, true);
      target.mergeFrom(from);
      return;
    }
  }
}

async function run(argv: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(argv, ":b:f:F:g:h", [
    { name: "help", hasArg: false, short: "h" },
    { name: "object", hasArg: true },
    { name: "image-opts", hasArg: false },
    ...ACTION_OPTIONS.map((name) => ({ name, hasArg: false })),
    { name: "merge", hasArg: true },
    { name: "granularity", hasArg: true, short: "g" },
    { name: "source-file", hasArg: true, short: "b" },
    { name: "source-format", hasArg: true, short: "F" },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const actions: Action[] = [];
  let granularity = 0;
  for (const o of opts) {
    if (o.name === "g") granularity = cvtnum(ctx, "granularity", o.value);
    else if (o.name === "merge") actions.push({ op: "merge", source: o.value });
    else if (o.name === "add") actions.push({ op: "add", granularity: 0 });
    else if ((ACTION_OPTIONS as readonly string[]).includes(o.name)) {
      actions.push({ op: o.name as "remove" | "clear" | "enable" | "disable" });
    }
  }
  // qemu-img reads `-g` once, for every --add.
  for (const a of actions) if (a.op === "add") a.granularity = granularity;
  const fail = (message: string) => {
    writeErr(`${ctx.errorPrefix}: ${message}\n`);
    return 1;
  };
  if (actions.length === 0) {
    return fail("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
  }
  if (granularity && !actions.some((a) => a.op === "add")) {
    return fail("granularity only supported with --add");
  }
  const sourceFile = lastOpt(opts, "b");
  const sourceFormat = lastOpt(opts, "F");
  if (sourceFormat !== undefined && sourceFile === undefined) {
    return fail("-F only supported with -b");
  }
  if (sourceFile !== undefined && !actions.some((a) => a.op === "merge")) {
    return fail("Merge bitmap source file only supported with --merge");
  }
  if (positional.length !== 2) return fail("Expecting filename and bitmap name");
  const [filename, name] = positional;
  // The bitmaps live in this image: its backing chain is never needed.
  const node = await openImage(ctx, filename, {
    format: lastOpt(opts, "f"),
    imageOpts: hasOpt(opts, "image-opts"),
    readOnly: false,
    noBacking: true,
  });
  let source: BlockNode | undefined;
  try {
    if (sourceFile !== undefined) {
      source = await openImage(ctx, sourceFile, {
        format: sourceFormat,
        readOnly: true,
        noBacking: true,
      });
    }
    for (const action of actions) {
      try {
        await runAction(action, node, source ?? node, name);
      } catch (e) {
        if (!(e instanceof VmkitError)) throw e;
        writeErr(
          `${ctx.errorPrefix}: Operation ${action.op} on bitmap ${name} failed: ${e.message}\n`,
        );
        await closeQuietly(source, node);
        return 1;
      }
    }
  } catch (e) {
    await closeQuietly(source, node);
    throw e;
  }
  await source?.close();
  await node.close();
  return 0;
}

/** `img bitmap`. */
export const bitmapCommand: ImgCommand = {
  name: "bitmap",
  synopsis:
    "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap",
  run,
};

/**
 * `convert --bitmaps`, before anything is written: the source must keep bitmaps and
 * have none in use, unless `--skip-broken-bitmaps` (qemu-img's convert_check_bitmaps).
 * @returns the message lines of a refusal, or undefined
 */
export function convertBitmapsRefusal(source: BlockNode, skipBroken: boolean): string | undefined {
  const host = source.dirtyBitmaps;
  if (!host?.supported) return "Source lacks bitmap support";
  const broken = host.bitmaps().find((b) => b.inconsistent);
  if (broken && !skipBroken) {
    return `Cannot copy inconsistent bitmap '${broken.name}'\n` +
      "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it";
  }
  return undefined;
}

/**
 * `convert --bitmaps`, after the data: every bitmap of the source is added to the
 * target with its granularity and state and filled from the source (qemu-img's
 * convert_copy_bitmaps); the target stores them when it closes.
 */
export async function copyBitmaps(
  source: BlockNode,
  target: BlockNode,
  options: { skipBroken: boolean; warn(line: string): void },
): Promise<void> {
  for (const b of source.dirtyBitmaps?.bitmaps() ?? []) {
    if (options.skipBroken && b.inconsistent) {
      options.warn(`Skipping inconsistent bitmap '${b.name}'`);
      continue;
    }
    const host = target.dirtyBitmaps!;
    try {
      await host.addBitmap(b.name, b.granularity, { disabled: !b.enabled });
    } catch (e) {
      throw new VmkitError(`Failed to create bitmap ${b.name}: ${(e as Error).message}`);
    }
    find(host, b.name).mergeFrom(b);
  }
}
