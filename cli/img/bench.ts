// `img bench`: timed read or write requests at a queue depth

import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import type { BlockBackend } from "../../core/block/backend.ts";
import { UsageError } from "../../core/errors.ts";
import { parseSize } from "../../core/options.ts";
import { getopt } from "../getopt.ts";
import { writeErr, writeOut } from "../output.ts";
import {
  closeQuietly,
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  lastOpt,
  openBackend,
  STANDARD_LONG,
} from "./common.ts";

/** Settings of one benchmark run. */
export interface BenchOptions {
  count: number;
  depth: number;
  bufferBytes: number;
  stepBytes: number;
  offset: number;
  write: boolean;
  pattern: number;
  flushInterval: number;
  drain: boolean;
}

/** A request that failed: qemu-img bench reports it and exits at once, closing nothing. */
export class BenchRequestFailed extends Error {
  constructor() {
    super("Failed request: Input/output error");
  }
}

/** Runs the requests; resolves to elapsed seconds. */
export async function runBench(backend: BlockBackend, o: BenchOptions): Promise<number> {
  const size = backend.size();
  let offset = o.offset;
  let issued = 0;
  const nextOffset = () => {
    const at = offset;
    // qemu-img 7.2 wraps modulo the image size, so a wrapped request may run past
    // the end: that one fails (a request past the end of a qcow2 image is EIO).
    offset = size === 0 ? 0 : (offset + o.stepBytes) % size;
    return at;
  };
  // qemu-img submits the first `depth` requests before any completes: one of them past
  // the end fails at once and bench exits before the others' I/O reaches the file.
  for (let i = 0, at = o.offset; i < Math.min(o.depth, o.count); i++) {
    if (at + o.bufferBytes > size) throw new BenchRequestFailed();
    at = size === 0 ? 0 : (at + o.stepBytes) % size;
  }
  const start = performance.now();
  const lane = async () => {
    const buf = blockAlignedBuffer(o.bufferBytes);
    if (o.write) buf.fill(o.pattern);
    while (issued < o.count) {
      issued++;
      const at = nextOffset();
      if (at + o.bufferBytes > size) throw new BenchRequestFailed();
      if (o.write) await backend.write(at, buf);
      else await backend.read(at, buf);
      if (o.flushInterval > 0 && issued % o.flushInterval === 0) {
        if (o.drain) await backend.scheduler.drain();
        await backend.flush();
      }
    }
  };
  await Promise.all(Array.from({ length: o.depth }, lane));
  if (o.write) await backend.flush();
  return (performance.now() - start) / 1000;
}

function intOpt(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`Invalid ${what} specified`);
  return n;
}

function sizeOpt(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  try {
    return parseSize(text);
  } catch {
    throw new UsageError(`Invalid ${what} specified`);
  }
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hc:d:f:ni:o:qs:S:t:wU", [
    ...STANDARD_LONG,
    { name: "flush-interval", hasArg: true },
    { name: "pattern", hasArg: true },
    { name: "no-drain", hasArg: false },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  if (positional.length !== 1) throw new ErrorExit("Expecting one image file name");
  const write = hasOpt(opts, "w");
  const o: BenchOptions = {
    count: intOpt(lastOpt(opts, "c"), 75000, "request count"),
    depth: intOpt(lastOpt(opts, "d"), 64, "queue depth"),
    bufferBytes: sizeOpt(lastOpt(opts, "s"), 4096, "buffer size"),
    stepBytes: 0,
    offset: sizeOpt(lastOpt(opts, "o"), 0, "offset"),
    write,
    pattern: intOpt(lastOpt(opts, "pattern"), 0, "pattern byte"),
    flushInterval: intOpt(lastOpt(opts, "flush-interval"), 0, "flush interval"),
    drain: !hasOpt(opts, "no-drain"),
  };
  o.stepBytes = sizeOpt(lastOpt(opts, "S"), o.bufferBytes, "step size");
  if (o.depth < 1 || o.depth > 4096) throw new UsageError("Invalid queue depth specified");
  if (o.bufferBytes < 1) throw new UsageError("Invalid buffer size specified");
  if (o.flushInterval && !write) {
    throw new UsageError("--flush-interval is only available in write tests");
  }
  const aio = lastOpt(opts, "i");
  if (aio !== undefined && !["threads", "native", "io_uring"].includes(aio)) {
    throw new UsageError(`Invalid aio option: ${aio}`);
  }
  const backend = await openBackend(ctx, positional[0], {
    format: lastOpt(opts, "f"),
    imageOpts: hasOpt(opts, "image-opts"),
    readOnly: !write,
    forceShare: hasOpt(opts, "U"),
    cache: lastOpt(opts, "t") ?? "writeback",
    maxQueueDepth: o.depth,
  });
  const quiet = hasOpt(opts, "q");
  try {
    if (!quiet) {
      writeOut(
        `Sending ${o.count} ${
          write ? "write" : "read"
        } requests, ${o.bufferBytes} bytes each, ${o.depth} in parallel ` +
          `(starting at offset ${o.offset}, step size ${o.stepBytes})\n`,
      );
      if (o.flushInterval) writeOut(`Sending flush every ${o.flushInterval} requests\n`);
    }
    let seconds: number;
    try {
      seconds = await runBench(backend, o);
    } catch (e) {
      if (!(e instanceof BenchRequestFailed)) throw e;
      // As bench_cb's exit(): written data stays, cached metadata is not flushed.
      writeErr(`${ctx.errorPrefix}: ${e.message}\n`);
      Deno.exit(1);
    }
    if (!quiet) {
      writeOut(`Run completed in ${seconds.toFixed(3)} seconds.\n`);
    }
  } finally {
    await closeQuietly(backend);
  }
  return 0;
}

/** The `bench` subcommand. */
export const benchCommand: ImgCommand = {
  name: "bench",
  synopsis:
    "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename",
  run,
};
