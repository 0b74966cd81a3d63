// `img commit`: copy what an image holds into a backing file of its chain, then empty it

import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { parseCacheMode } from "../../core/block/backend.ts";
import { UsageError, VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { writeOut } from "../output.ts";
import { closeQuietly, hasOpt, type ImgCommand, type ImgContext, lastOpt } from "./common.ts";
import { Progress } from "./progress.ts";

/** Bytes copied per request. */
const COMMIT_CHUNK_BYTES = 1 << 20;

function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return Deno.realPathSync(a) === Deno.realPathSync(b);
  } catch {
    return false;
  }
}

/**
 * Copies every range that a node above `base` defines into `target` (a read-write
 * node of the base image), reading through `top` so the uppermost layer wins.
 */
export async function commitRanges(
  top: BlockNode,
  above: readonly BlockNode[],
  target: BlockNode,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const size = top.size();
  if (target.size() < size) await target.truncate(size);
  const buf = blockAlignedBuffer(COMMIT_CHUNK_BYTES);
  for (let pos = 0; pos < size;) {
    let run = Math.min(COMMIT_CHUNK_BYTES, size - pos);
    let defined: { zero: boolean; data: boolean } | undefined;
    for (const node of above) {
      if (pos >= node.size()) continue;
      const st = await node.blockStatus(pos, Math.min(run, node.size() - pos));
      run = Math.min(run, st.bytes);
      if (defined === undefined && st.allocated) defined = st;
    }
    if (defined !== undefined) {
      if (defined.zero && !defined.data) {
        await target.writeZeroes(pos, run);
      } else {
        const part = buf.subarray(0, run);
        await top.read(pos, part);
        await target.write(pos, part);
      }
    }
    pos += run;
    onProgress?.(pos, size);
  }
  await target.flush();
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "f:ht:b:dpqr:", [
    { name: "help", hasArg: false, short: "h" },
    { name: "object", hasArg: true },
    { name: "image-opts", hasArg: false },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  if (positional.length !== 1) {
    throw new UsageError(
      `Expecting one image file name\nTry '${ctx.program} --help' for more information`,
    );
  }
  const filename = positional[0];
  const baseName = lastOpt(opts, "b");
  // An explicit base keeps the top image as it is (-b implies -d).
  const drop = hasOpt(opts, "d") || baseName !== undefined;
  const quiet = hasOpt(opts, "q");
  const cache = parseCacheMode(lastOpt(opts, "t") ?? "writeback");
  let top: BlockNode | undefined;
  let baseRw: BlockNode | undefined;
  try {
    top = await ctx.graph.openImage(filename, {
      format: lastOpt(opts, "f"),
      readOnly: false,
      direct: cache.direct,
      noFlush: cache.noFlush,
      backingReadWrite: true,
    });
    if (top.backing === null) throw new VmkitError("Image does not have a backing file");
    const above: BlockNode[] = [top];
    let base: BlockNode | null = top.backing;
    if (baseName !== undefined) {
      while (base !== null && !sameFile(base.filename, baseName)) {
        above.push(base);
        base = base.backing;
      }
      if (base === null) {
        throw new VmkitError(`Did not find '${baseName}' in the backing chain of '${filename}'`);
      }
    }
    let target = base;
    if (above.length > 1) {
      // Only the immediate backing node is opened read-write; a deeper base is
      // opened on its own for writing (the chain's view of it is never read here).
      baseRw = await ctx.graph.openImage(base.filename, {
        format: base.driver,
        readOnly: false,
        direct: cache.direct,
        noFlush: cache.noFlush,
        // The chain above already holds this file's locks (read, writers denied to others);
        // a second set here would refuse this very process.
        protocolOptions: { locking: "off" },
      });
      target = baseRw;
    }
    const progress = hasOpt(opts, "p") && !quiet ? new Progress() : undefined;
    await commitRanges(top, above, target, (done, total) => progress?.update(done, total));
    if (!drop) {
      if (!top.makeEmpty) throw new VmkitError(`Cannot empty '${filename}'`);
      await top.makeEmpty();
    }
    await top.flush();
    progress?.finish();
  } catch (e) {
    await closeQuietly(baseRw, top);
    throw e;
  }
  await baseRw?.close();
  await top.close();
  if (!quiet) writeOut("Image committed.\n");
  return 0;
}

/** The `commit` subcommand. */
export const commitCommand: ImgCommand = {
  name: "commit",
  synopsis:
    "commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename",
  run,
};
