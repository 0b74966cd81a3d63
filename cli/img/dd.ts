// `img dd`: copy blocks between images, dd style (bs, count, skip, if, of)

import { IoError, ioErrorText, UsageError, VmkitError } from "../../core/errors.ts";
import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { getopt } from "../getopt.ts";
import { writeErr } from "../output.ts";
import {
  closeQuietly,
  createOrSay,
  cvtnum,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openImage,
  STANDARD_LONG,
} from "./common.ts";

/** The parsed `key=value` operands of dd. */
export interface DdOperands {
  bs: number;
  count?: number;
  skip: number;
  input?: string;
  output?: string;
}

/** Parses dd's operands with qemu-img's messages. */
export function parseDdOperands(
  operands: readonly string[],
  ctx: Pick<ImgContext, "errorPrefix">,
): DdOperands {
  const r: DdOperands = { bs: 512, skip: 0 };
  for (const op of operands) {
    const eq = op.indexOf("=");
    // qemu-img names the operand by its key alone.
    if (eq < 0) throw new UsageError(`unrecognized operand ${op}`);
    const key = op.slice(0, eq);
    const value = op.slice(eq + 1);
    switch (key) {
      case "bs":
        r.bs = cvtnum(ctx, "bs", value, 1, 2 ** 31 - 1);
        break;
      case "count":
        r.count = cvtnum(ctx, "count", value);
        break;
      case "skip":
        r.skip = cvtnum(ctx, "skip", value);
        break;
      case "if":
        r.input = value;
        break;
      case "of":
        r.output = value;
        break;
      default:
        throw new UsageError(`unrecognized operand ${key}`);
    }
  }
  return r;
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hf:O:U", [
    ...STANDARD_LONG,
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const dd = parseDdOperands(positional, ctx);
  if (!dd.input || !dd.output) throw new UsageError("Must specify both input and output files");
  const outFormat = lastOpt(opts, "O") ?? "raw";
  let input: BlockNode | undefined;
  let output: BlockNode | undefined;
  try {
    input = await openImage(ctx, dd.input, {
      format: lastOpt(opts, "f"),
      imageOpts: hasOpt(opts, "image-opts"),
      readOnly: true,
      forceShare: hasOpt(opts, "U"),
    });
    // `count` counts input blocks from the start of the input, `skip` blocks are left out.
    // The last block may be partial: it is copied as far as the input goes, as qemu-img does.
    let end = input.size();
    if (dd.count !== undefined && end > dd.count * dd.bs) end = dd.count * dd.bs;
    const start = dd.skip * dd.bs;
    const outSize = start > end ? 0 : end - start;
    const format = ctx.graph.format(outFormat);
    const createOpts = { size: outSize };
    await createOrSay(
      `${dd.output}: error while creating output image`,
      () => format.create(dd.output!, outSize, createOpts, ctx.graph.createContext()),
    );
    output = await openImage(ctx, dd.output, { format: outFormat, readOnly: false });
    if (start > end) {
      // qemu-img creates an empty output, says why and still exits 0.
      writeErr(`${ctx.errorPrefix}: ${dd.input}: cannot skip to specified offset\n`);
    }
    const buf = blockAlignedBuffer(Math.min(dd.bs, 1 << 24));
    for (let at = start; at < end;) {
      const n = Math.min(buf.length, end - at);
      try {
        await input.read(at, buf.subarray(0, n));
      } catch (e) {
        if (!(e instanceof VmkitError)) throw e;
        throw new IoError(`error while reading from input image file: ${ioErrorText(e)}`);
      }
      await output.write(at - start, buf.subarray(0, n));
      at += n;
    }
    await output.flush();
  } finally {
    await closeQuietly(input, output);
  }
  return 0;
}

/** The `dd` subcommand. */
export const ddCommand: ImgCommand = {
  name: "dd",
  synopsis:
    "dd [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output",
  run,
};
