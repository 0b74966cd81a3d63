// `img rebase`: change an image's backing file, copying what differs (safe) or only the header (-u)

import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { parseCacheMode } from "../../core/block/backend.ts";
import { resolveBackingName } from "../../core/block/graph.ts";
import { ImageOpenError, UsageError, VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { closeQuietly, hasOpt, type ImgCommand, type ImgContext, lastOpt } from "./common.ts";
import { Progress } from "./progress.ts";

/** Bytes compared per step: qemu-img's IO_BUF_SIZE. */
const REBASE_CHUNK_BYTES = 2 << 20;
const SECTOR = 512;

async function readClamped(node: BlockNode | null, offset: number, out: Uint8Array) {
  const have = node === null ? 0 : Math.max(0, Math.min(out.length, node.size() - offset));
  if (have > 0) await node!.read(offset, out.subarray(0, have));
  out.fill(0, have);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Makes `top` keep its guest-visible content when its backing changes to `next`:
 * every unit `top` does not define and whose old and new backing bytes differ
 * is written into `top` (reading `top` yields the old backing's bytes there).
 */
export async function copyDifferences(
  top: BlockNode,
  next: BlockNode | null,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const size = top.size();
  const oldBuf = blockAlignedBuffer(REBASE_CHUNK_BYTES);
  const newBuf = blockAlignedBuffer(REBASE_CHUNK_BYTES);
  for (let pos = 0; pos < size;) {
    const st = await top.blockStatus(pos, Math.min(REBASE_CHUNK_BYTES, size - pos));
    const n = st.bytes;
    if (!st.allocated) {
      const o = oldBuf.subarray(0, n);
      const w = newBuf.subarray(0, n);
      await top.read(pos, o);
      await readClamped(next, pos, w);
      // As qemu-img's compare_buffers: runs of 512-byte sectors that differ (or not)
      // alike, each differing run one write, so a run allocates its clusters at once.
      for (let at = 0; at < n;) {
        const differs = !equalBytes(o.subarray(at, at + SECTOR), w.subarray(at, at + SECTOR));
        let end = Math.min(at + SECTOR, n);
        while (end < n) {
          const next = Math.min(end + SECTOR, n);
          if (!equalBytes(o.subarray(end, next), w.subarray(end, next)) !== differs) break;
          end = next;
        }
        if (differs) await top.write(pos + at, o.subarray(at, end));
        at = end;
      }
    }
    pos += n;
    onProgress?.(pos, size);
  }
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hf:F:b:upt:T:qU", [
    { name: "help", hasArg: false, short: "h" },
    { name: "object", hasArg: true },
    { name: "image-opts", hasArg: false },
    { name: "force-share", hasArg: false, short: "U" },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const unsafe = hasOpt(opts, "u");
  const backingName = lastOpt(opts, "b");
  if (!unsafe && backingName === undefined) {
    throw new UsageError(
      `Must specify backing file (-b) or use unsafe mode (-u)\nTry '${ctx.program} --help' for more information`,
    );
  }
  if (positional.length !== 1) {
    throw new UsageError(
      `Expecting one image file name\nTry '${ctx.program} --help' for more information`,
    );
  }
  const filename = positional[0];
  const newName = backingName ?? "";
  const backingFormat = lastOpt(opts, "F");
  const cache = parseCacheMode(lastOpt(opts, "t") ?? "writeback");
  const srcCache = parseCacheMode(lastOpt(opts, "T") ?? "writeback");
  const quiet = hasOpt(opts, "q");
  let top: BlockNode | undefined;
  let next: BlockNode | undefined;
  try {
    top = await ctx.graph.openImage(filename, {
      format: lastOpt(opts, "f"),
      readOnly: false,
      direct: cache.direct,
      noFlush: cache.noFlush,
      noBacking: unsafe,
      forceShare: hasOpt(opts, "U"),
    });
    if (!unsafe && newName !== "") {
      try {
        next = await ctx.graph.openImage(resolveBackingName(filename, newName), {
          format: backingFormat,
          readOnly: true,
          direct: srcCache.direct,
          forceShare: hasOpt(opts, "U"),
        });
      } catch (e) {
        // qemu-img names the file once here: drop the graph's outer "Could not open".
        const inner = e instanceof ImageOpenError && e.cause instanceof Error ? e.cause : e;
        throw new VmkitError(`Could not open new backing file '${newName}'`, { cause: inner });
      }
    }
    // qemu-img 7.2 refuses to record a backing file without its format.
    if (newName !== "" && backingFormat === undefined) {
      throw new VmkitError(
        `Could not change the backing file to '${newName}': backing format must be specified`,
      );
    }
    if (!top.changeBackingFile) {
      throw new VmkitError(
        `Could not change the backing file to '${newName}': Operation not supported`,
      );
    }
    const progress = hasOpt(opts, "p") && !quiet ? new Progress() : undefined;
    if (!unsafe) {
      await copyDifferences(top, next ?? null, (done, total) => progress?.update(done, total));
    }
    await top.flush();
    await top.changeBackingFile(newName === "" ? undefined : newName, backingFormat);
    progress?.finish();
  } catch (e) {
    await closeQuietly(next, top);
    throw e;
  }
  await next?.close();
  await top.close();
  return 0;
}

/** The `rebase` subcommand. */
export const rebaseCommand: ImgCommand = {
  name: "rebase",
  synopsis:
    "rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename",
  run,
};
