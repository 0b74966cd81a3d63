// `img compare`: do two images read the same (exit 0), differ (1), fail (2), or fail to read (4)

import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { ioErrorText, VmkitError } from "../../core/errors.ts";
import { getopt } from "../getopt.ts";
import { writeOut } from "../output.ts";
import {
  closeQuietly,
  ErrorExit,
  ExitError,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
  STANDARD_LONG,
} from "./common.ts";
import { type ChainStatus, chainStatus } from "../../core/block/status.ts";
import { Progress } from "./progress.ts";

const CHUNK_BYTES = 1 << 20;
const SECTOR = 512;

/** Offset of the first 512-byte sector where `a` and `b` differ, or -1. */
export function firstMismatch(a: Uint8Array, b: Uint8Array, length: number): number {
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i]) return i - (i % SECTOR);
  }
  return -1;
}

function firstNonZero(a: Uint8Array, length: number): number {
  for (let i = 0; i < length; i++) if (a[i] !== 0) return i - (i % SECTOR);
  return -1;
}

/**
 * The flags QEMU's strict compare sees in `bdrv_block_status_above`: data, zero,
 * offset-valid, allocated and end-of-file.
 */
function statusWord(s: ChainStatus, size: number): number {
  return (s.data ? 1 : 0) | (s.zero ? 2 : 0) | (s.offset !== undefined ? 4 : 0) |
    (s.present ? 0x10 : 0) | (s.start + s.length >= size ? 0x20 : 0);
}

/** Compares two opened images; returns the exit code and the message to print. */
export async function compareImages(
  a: BlockNode,
  b: BlockNode,
  options: {
    strict?: boolean;
    progress?: Progress;
    warn?: (line: string) => void;
    /** The names the command line gave, for a read error's message. */
    names?: [string, string];
  } = {},
): Promise<{ code: number; message: string }> {
  const [nameA, nameB] = options.names ?? [a.filename, b.filename];
  // qemu-img names the image and the start of the chunk whose read failed, and exits 4.
  const readOrFail = async (node: BlockNode, name: string, offset: number, buf: Uint8Array) => {
    try {
      await node.read(offset, buf);
    } catch (e) {
      if (!(e instanceof VmkitError)) throw e;
      throw new ExitError(`Error while reading offset ${offset} of ${name}: ${ioErrorText(e)}`, {
        exitCode: 4,
      });
    }
  };
  const sizeA = a.size();
  const sizeB = b.size();
  if (options.strict && sizeA !== sizeB) {
    return { code: 1, message: "Strict mode: Image size mismatch!" };
  }
  const common = Math.min(sizeA, sizeB);
  const bufA = blockAlignedBuffer(CHUNK_BYTES);
  const bufB = blockAlignedBuffer(CHUNK_BYTES);
  const total = Math.max(sizeA, sizeB);
  let offset = 0;
  while (offset < common) {
    // Each image is asked about the rest of itself, as img_compare does, so the end-of-file
    // flag of the status means the same on both sides.
    const sa = await chainStatus(a, offset, sizeA - offset);
    const sb = await chainStatus(b, offset, sizeB - offset);
    const n = Math.min(sa.length, sb.length, common - offset, CHUNK_BYTES);
    if (options.strict && statusWord(sa, sizeA) !== statusWord(sb, sizeB)) {
      return { code: 1, message: `Strict mode: Offset ${offset} block status mismatch!` };
    }
    if (!(sa.zero && sb.zero)) {
      await readOrFail(a, nameA, offset, bufA.subarray(0, n));
      await readOrFail(b, nameB, offset, bufB.subarray(0, n));
      const at = firstMismatch(bufA, bufB, n);
      if (at >= 0) return { code: 1, message: `Content mismatch at offset ${offset + at}!` };
    }
    offset += n;
    options.progress?.update(offset, total);
  }
  // The longer image must read as zeroes past the end of the shorter one.
  if (sizeA !== sizeB) options.warn?.("Warning: Image size mismatch!");
  const longer = sizeA > sizeB ? a : b;
  while (offset < total) {
    const s = await chainStatus(longer, offset, Math.min(total - offset, CHUNK_BYTES));
    if (!s.zero) {
      await readOrFail(longer, longer === a ? nameA : nameB, offset, bufA.subarray(0, s.length));
      const at = firstNonZero(bufA, s.length);
      if (at >= 0) return { code: 1, message: `Content mismatch at offset ${offset + at}!` };
    }
    offset += s.length;
    options.progress?.update(offset, total);
  }
  return { code: 0, message: "Images are identical." };
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hf:F:T:pqsU", [
    ...STANDARD_LONG,
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  // A usage error exits 1 (error_exit); failures after this point exit 2.
  if (positional.length !== 2) throw new ErrorExit("Expecting two image file names");
  let a: BlockNode | undefined;
  let b: BlockNode | undefined;
  try {
    const shared = {
      readOnly: true,
      forceShare: hasOpt(opts, "U"),
      cache: lastOpt(opts, "T"),
      imageOpts: hasOpt(opts, "image-opts"),
    };
    a = await openImage(ctx, positional[0], { ...shared, format: lastOpt(opts, "f") });
    b = await openImage(ctx, positional[1], { ...shared, format: lastOpt(opts, "F") });
    const progress = hasOpt(opts, "p") && !hasOpt(opts, "q") ? new Progress() : undefined;
    const quiet = hasOpt(opts, "q");
    const result = await compareImages(a, b, {
      strict: hasOpt(opts, "s"),
      progress,
      warn: (line) => quiet || writeOut(line + "\n"),
      names: [positional[0], positional[1]],
    });
    progress?.finish();
    if (!quiet) writeOut(result.message + "\n");
    return result.code;
  } catch (e) {
    // compare reports every failure with exit code 2, mismatches with 1.
    if (e instanceof ExitError) throw e;
    if (e instanceof VmkitError) throw new VmkitError(e.message, { cause: e.cause, exitCode: 2 });
    throw e;
  } finally {
    await closeQuietly(a, b);
  }
}

/** The `compare` subcommand. */
export const compareCommand: ImgCommand = {
  name: "compare",
  synopsis: "compare [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2",
  run,
};
