// `img convert`: copy images between formats, sparse, compressed, in parallel

import { BLK_PERM_CONSISTENT_READ, BLK_PERM_WRITE_UNCHANGED } from "../../core/block/perm.ts";
import { blockAlignedBuffer } from "../../core/block/buffer.ts";
import { BlockBackend, type CacheMode } from "../../core/block/backend.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import { findBlock, isZero } from "../../core/block/zero.ts";
import {
  IoError,
  ioErrorText,
  NotSupportedError,
  UsageError,
  VmkitError,
} from "../../core/errors.ts";
import { isHelpRequest } from "../../core/options.ts";
import { getopt } from "../getopt.ts";
import { writeErr, writeOut } from "../output.ts";
import {
  closeQuietly,
  createOrSay,
  cvtnum,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  joinedOpt,
  lastOpt,
  openImage,
  STANDARD_LONG,
} from "./common.ts";
import { createOptionsHelp, parseCreateOptions } from "./create.ts";
import { chainStatus } from "../../core/block/status.ts";
import { Progress } from "./progress.ts";
import { loadSnapshotParam, parseSnapshotParam } from "./snapshot_param.ts";

/** Bytes a convert worker reads at once (QEMU's default buffer is 2 MiB). */
const CHUNK_BYTES = 2 << 20;

/**
 * The largest write convert issues (unless the target's cluster is larger). QEMU's
 * requests follow the source's clusters and blocks (64 KiB for vmdk, 1 MiB for vdi).
 * Writes of 2 MiB into a fresh raw file here often crawled at 30-170 ms each (strace),
 * the whole conversion then taking 1-3 s instead of 0.2 s, while 1 MiB writes did not:
 * a 2 MiB write takes a 2 MiB page-cache folio, and on this VM (virtio-balloon free
 * page reporting) free 2 MiB blocks are the ones handed back to the host, so the copy
 * into them takes a host fault per page. Measured, 256 MiB -> raw, same run, net wall
 * (medians of 5-7, load 7-10): vdi 0.78 s in 2 MiB reads and writes, 0.10 s in 1 MiB
 * ones, 0.08 s in 2 MiB reads and 1 MiB writes (qemu-img 0.09 s); 1 GiB vdi: 0.49 s in
 * 1 MiB reads and writes, 0.39 s in 2 MiB reads and 1 MiB writes (qemu-img 0.37 s).
 */
const WRITE_BYTES = 1 << 20;

/** Settings of one conversion. */
export interface ConvertOptions {
  /** Write every cluster compressed. */
  compress: boolean;
  /** Zero runs at least this long are left unwritten (0: write everything). */
  sparseBytes: number;
  /** The target reads as zero before we write (fresh image, or `--target-is-zero`). */
  targetIsZero: boolean;
  /** The target has a backing file: regions unallocated in the source's top layer are skipped. */
  targetHasBacking: boolean;
  /** Parallel workers (`-m`). */
  workers: number;
  /** Allow out-of-order writes (`-W`). */
  outOfOrder: boolean;
  /**
   * `--salvage`: a source read that fails is read again sector by sector, and each
   * sector that still fails reads as zeroes after a warning (given to `warn`).
   */
  salvage?: boolean;
  /** Prints a warning line (without qemu-img's `prefix: warning: `). */
  warn?: (line: string) => void;
  progress?: Progress;
}

/** The buffer of an extent that reads nothing. */
const NO_BUFFER = new Uint8Array(0);

interface Extent {
  /** Offset in the concatenated source space. */
  offset: number;
  length: number;
  source: BlockNode;
  sourceOffset: number;
}

/** Copies `sources` (concatenated) into `target` by the rules of {@linkcode ConvertOptions}. */
export async function convertImages(
  sources: BlockNode[],
  target: BlockBackend,
  options: ConvertOptions,
): Promise<void> {
  const total = sources.reduce((n, s) => n + s.size(), 0);
  const clusterSize = target.root.clusterSize ?? 65536;
  // Compressed writes go one whole cluster at a time.
  const chunk = options.compress ? clusterSize : Math.max(CHUNK_BYTES, clusterSize);
  const extents: Extent[] = [];
  let base = 0;
  for (const source of sources) {
    for (let o = 0; o < source.size(); o += chunk) {
      extents.push({
        offset: base + o,
        length: Math.min(chunk, source.size() - o),
        source,
        sourceOffset: o,
      });
    }
    base += source.size();
  }
  // Where every source reads and the target writes on this thread (raw, vdi, vpc and
  // vhdx over host files), one worker copies through synchronous calls, whatever -m
  // says: an asynchronous transfer costs a trip to Deno's blocking thread pool, a
  // wake-up of this thread and a promise (~40 us of CPU) where qemu-img's costs a
  // coroutine switch; synchronous reads with asynchronous writes measured slower still
  // (docs/img-performance.md, fifth pass). One transfer buffer is touched instead of 4-8.
  const writeSync = options.compress ? undefined : target.syncWriter();
  const sync = writeSync !== undefined && sources.every((s) => s.readSync !== undefined);
  const write: Writer = sync
    ? { write: (at, data) => writeSync(at, data), target }
    : { write: (at, data) => target.write(at, data), target };
  let next = 0;
  let done = 0;
  let writeTurn = 0;
  const turnWaiters = new Map<number, () => void>();
  // Transfer buffers are taken only by extents that read, the most recently freed one
  // first: extents of zeroes touch no buffer, and fewer buffers are ever touched (the
  // first touch of each page is a page fault), the one reused still warm in the cache.
  const free: Uint8Array[] = [];
  const worker = async () => {
    while (next < extents.length) {
      const index = next++;
      const e = extents[index];
      const plan = await planExtent(e, options);
      const buf = plan.read ? free.pop() ?? blockAlignedBuffer(chunk) : NO_BUFFER;
      // A compressed cluster is written whole: zero runs inside it are part of its data.
      if (options.compress && plan.read) plan.runs = [[0, e.length, "copy"]];
      // Only the runs to copy are read, as qemu-img reads only its data extents: a raw
      // source's holes inside an 8 MiB vhdx-sized extent cost the kernel a zero-fill
      // each (measured: raw -> vhdx read 256 MiB for 128 MiB of data).
      if (plan.read) {
        for (const [start, length, kind] of plan.runs) {
          if (kind !== "copy") continue;
          try {
            const part = buf.subarray(start, start + length);
            if (sync) e.source.readSync!(e.sourceOffset + start, part);
            else await e.source.read(e.sourceOffset + start, part);
          } catch (err) {
            // A bug stays a bug; a read that failed is reported as qemu-img reports it.
            if (!(err instanceof VmkitError)) throw err;
            if (options.salvage) await salvage(e, start, length, buf, options);
            else throw await readFailure(e, start, length, buf, err, options.compress);
          }
        }
      }
      // Without -W, writes land in order: wait for the previous extent's writes.
      if (!options.outOfOrder && writeTurn !== index) {
        await new Promise<void>((resolve) => turnWaiters.set(index, resolve));
      }
      let compressing: Promise<void> | undefined;
      try {
        compressing = (await writeExtent(write, e, buf, plan, options, clusterSize))?.queued;
      } finally {
        if (buf !== NO_BUFFER && compressing === undefined) free.push(buf);
        writeTurn = index + 1;
        turnWaiters.get(index + 1)?.();
        turnWaiters.delete(index + 1);
      }
      // A compressed write is in the target's queue, in order, and compresses while the
      // next extents take their turns; its buffer is reused once it has settled.
      if (compressing !== undefined) {
        try {
          await compressing;
        } catch (err) {
          if (!(err instanceof VmkitError)) throw err;
          throw new IoError(
            `error while writing at byte ${e.offset}: ${ioErrorText(err.cause ?? err)}`,
          );
        } finally {
          free.push(buf);
        }
      }
      done += e.length;
      options.progress?.update(done, total);
    }
  };
  await Promise.all(Array.from({ length: sync ? 1 : Math.max(1, options.workers) }, worker));
  // qemu-img signals the end of a compressed stream with an empty compressed write.
  if (options.compress && target.root.writeCompressed) {
    await target.writeCompressed(0, new Uint8Array(0));
  }
  await target.flush();
}

/**
 * The error qemu-img reports when a source read fails: `error while reading at byte N`
 * with the strerror text, N the start of qemu-img's request. With -c that request is
 * one target cluster (an extent here); otherwise it follows the source's block status,
 * which gives each compressed cluster (the usual failure: one that does not inflate)
 * on its own, so the run is read again cluster by cluster to find the one that fails.
 */
async function readFailure(
  e: Extent,
  start: number,
  length: number,
  buf: Uint8Array,
  err: unknown,
  compress: boolean,
): Promise<IoError> {
  let at = e.offset + start;
  if (!compress) {
    const cluster = Math.max(512, e.source.clusterSize ?? 65536);
    for (let o = start; o < start + length;) {
      const end = Math.min(
        start + length,
        (Math.floor((e.sourceOffset + o) / cluster) + 1) * cluster - e.sourceOffset,
      );
      try {
        await e.source.read(e.sourceOffset + o, buf.subarray(o, end));
      } catch {
        at = e.offset + o;
        break;
      }
      o = end;
    }
  }
  return new IoError(`error while reading at byte ${at}: ${ioErrorText(err)}`);
}

/**
 * qemu-img's `--salvage`: the failed request is read again one 512-byte sector at a
 * time; a sector that fails again is zeroes, with `error while reading offset N: ...`
 * (N within its source image) unless -q.
 */
async function salvage(
  e: Extent,
  start: number,
  length: number,
  buf: Uint8Array,
  options: ConvertOptions,
): Promise<void> {
  for (let o = start; o < start + length; o += SECTOR) {
    const end = Math.min(o + SECTOR, start + length);
    try {
      await e.source.read(e.sourceOffset + o, buf.subarray(o, end));
    } catch (err) {
      if (!(err instanceof VmkitError)) throw err;
      options.warn?.(
        `error while reading offset ${e.sourceOffset + o}: ${ioErrorText(err)}`,
      );
      buf.fill(0, o, end);
    }
  }
}

/**
 * What becomes of a run of an extent: `copy` is read and written (its zeroes found by
 * qemu-img's sparse rules), `fill` is data the source says reads as zeroes (a vhdx
 * hole), which goes the same way as `copy` but is zero-filled instead of read;
 * `zero` is written as zeroes, `skip` not at all.
 */
type RunKind = "copy" | "fill" | "zero" | "skip";

interface Plan {
  /** A buffer is needed (data to copy or to scan for zeroes). */
  read: boolean;
  /** Runs of `[offset, length, kind]` relative to the extent. */
  runs: [number, number, RunKind][];
}

async function planExtent(e: Extent, options: ConvertOptions): Promise<Plan> {
  const runs: Plan["runs"] = [];
  let read = false;
  const add = (at: number, n: number, kind: RunKind) => {
    // Zeroes are only ever put in the buffer next to data, or when -S 0 writes them.
    if (kind === "copy" || (kind === "fill" && options.sparseBytes <= 0)) read = true;
    const last = runs[runs.length - 1];
    if (last && last[2] === kind) last[1] += n;
    else runs.push([at, n, kind]);
  };
  const s = options.sparseBytes;
  const zeroKind = options.targetIsZero ? "skip" : "zero";
  let o = 0;
  while (o < e.length) {
    const st = options.targetHasBacking
      ? await topStatus(e.source, e.sourceOffset + o, e.length - o)
      : await chainStatus(e.source, e.sourceOffset + o, e.length - o);
    const n = Math.min(st.length, e.length - o);
    if (options.targetHasBacking && !st.present) add(o, n, "skip");
    else if (st.zero && s > 0) add(o, n, zeroKind);
    else if ("readsAsZero" in st && st.readsAsZero) {
      // Data that reads as zeroes (a vhdx hole): qemu-img reads it and scans it like any
      // data; zero-filling the buffer gives the same bytes without the read.
      add(o, n, "fill");
    } else add(o, n, "copy");
    o += n;
  }
  return { read, runs };
}

async function topStatus(node: BlockNode, offset: number, bytes: number) {
  const s = await node.blockStatus(offset, bytes);
  return { length: s.bytes, present: s.allocated, zero: s.zero };
}

/**
 * Where data goes: `write` (a synchronous one returns nothing), and the backend for
 * zeroes and compressed clusters.
 */
interface Writer {
  write(offset: number, data: Uint8Array): Promise<void> | void;
  target: BlockBackend;
}

/**
 * Writes one extent's runs. A compressed cluster is only queued: `queued` settles when
 * it is written (the target keeps the order in which writes were queued).
 */
async function writeExtent(
  writer: Writer,
  e: Extent,
  buf: Uint8Array,
  plan: Plan,
  options: ConvertOptions,
  clusterSize: number,
): Promise<{ queued: Promise<void> } | undefined> {
  const isData = (r: number) =>
    r < plan.runs.length && (plan.runs[r][2] === "copy" || plan.runs[r][2] === "fill");
  for (let r = 0; r < plan.runs.length; r++) {
    const start = plan.runs[r][0];
    let [, length, kind] = plan.runs[r];
    if (isData(r)) {
      // Data read and data that reads as zeroes next to it are one request, as qemu-img
      // reads them: the zero-filled part is scanned with the rest. A request of nothing
      // but such zeroes is all one hole under any -S, unscanned.
      const first = r;
      while (isData(r + 1)) length += plan.runs[++r][1];
      const group = plan.runs.slice(first, r + 1);
      if (options.sparseBytes > 0 && group.every(([, , k]) => k === "fill")) {
        kind = options.targetIsZero ? "skip" : "zero";
      } else {
        for (const [from, n, k] of group) if (k === "fill") buf.fill(0, from, from + n);
      }
    }
    const at = e.offset + start;
    const target = writer.target;
    if (kind === "skip") continue;
    if (kind === "zero") {
      await target.writeZeroes(at, length, { unmap: true });
      continue;
    }
    if (options.compress) {
      // One cluster per extent: all-zero clusters stay unallocated, unless -S 0 asked
      // for no zero detection (qemu-img then compresses zero clusters too). A short
      // cluster goes as a compressed write too: the format compresses it zero-padded
      // when it ends the image, as QEMU's qcow2 does.
      const data = buf.subarray(start, start + length);
      if (options.sparseBytes > 0 && isZero(data)) {
        if (!options.targetIsZero) await target.writeZeroes(at, length, { unmap: true });
      } else {
        // Wrapped: an async function would otherwise wait for a promise it returns.
        const queued = target.writeCompressed(at, data);
        queued.catch(() => {});
        return { queued };
      }
      continue;
    }
    await writeSparse(writer, at, buf.subarray(start, start + length), options, clusterSize);
  }
}

/**
 * Writes one request's `data` as qemu-img's convert_co_write does with `-S`: its sparse
 * rules (is_allocated_sectors_min) decide, 512-byte sector by sector, what is written
 * as data and what is left unwritten (or zeroed) as a hole.
 */
async function writeSparse(
  writer: Writer,
  offset: number,
  data: Uint8Array,
  options: ConvertOptions,
  clusterSize: number,
): Promise<void> {
  // A cluster is never split: a partial write to a fresh one may cost a copy-on-write.
  const most = Math.max(WRITE_BYTES, clusterSize);
  const minSectors = Math.floor(options.sparseBytes / SECTOR);
  if (minSectors <= 0) {
    await writeInPieces(writer, offset, data, most);
    return;
  }
  // qemu-img aligns the ends of runs to the largest power of two within -S (its
  // s.alignment; every vmkit target takes requests of any alignment).
  const alignment = 2 ** Math.floor(Math.log2(minSectors));
  const sectors = Math.ceil(data.length / SECTOR);
  const first = Math.floor(offset / SECTOR);
  for (let at = 0; at < sectors;) {
    const [used, n] = sparseRun(data, at, sectors - at, minSectors, first + at, alignment);
    const from = at * SECTOR;
    const to = Math.min((at + n) * SECTOR, data.length);
    if (used) await writeInPieces(writer, offset + from, data.subarray(from, to), most);
    else if (!options.targetIsZero) {
      await writer.target.writeZeroes(offset + from, to - from, { unmap: true });
    }
    at += n;
  }
}

const SECTOR = 512;

/**
 * The sectors from `at` (of `n`) that are all zero or all data, as qemu-img's
 * is_allocated_sectors counts them: `[data, count]`. A run that ends before `n` off the
 * alignment has its end moved: a data run's up to the next boundary, a zero run's down
 * to the previous one, and a zero run no longer than that tail counts as data.
 */
function sectorRun(
  data: Uint8Array,
  at: number,
  n: number,
  sectorNum: number,
  alignment: number,
): [boolean, number] {
  const bytes = Math.min(n * SECTOR, data.length - at * SECTOR);
  let zero = isZero(data, at * SECTOR, Math.min(SECTOR, bytes));
  const rest = findBlock(data, (at + 1) * SECTOR, Math.max(0, bytes - SECTOR), SECTOR, !zero);
  let i = Math.min(n, 1 + Math.ceil(rest / SECTOR));
  if (i === n) return [!zero, n];
  const tail = (sectorNum + i) & (alignment - 1);
  if (tail) {
    if (zero && i <= tail) zero = false;
    i = zero ? i - tail : Math.min(i + alignment - tail, n);
  }
  return [!zero, i];
}

/**
 * qemu-img's is_allocated_sectors_min: from `at`, a zero run (`[false, count]`), or a
 * data run (`[true, count]`) that takes in zero runs shorter than `min` sectors between
 * its data, so small holes do not break up a write.
 */
function sparseRun(
  data: Uint8Array,
  at: number,
  n: number,
  min: number,
  sectorNum: number,
  alignment: number,
): [boolean, number] {
  const least = Math.min(min, n);
  const [used, count] = sectorRun(data, at, n, sectorNum, alignment);
  if (!used) return [false, count];
  let taken = count;
  for (let checked = count; checked < n;) {
    const [more, c] = sectorRun(data, at + checked, n - checked, sectorNum + checked, alignment);
    checked += c;
    if (more) taken = checked;
    else if (c >= least) break;
  }
  return [true, taken];
}

/**
 * Writes `data` at `offset` in requests that end on multiples of `most` (see
 * WRITE_BYTES), so no piece boundary falls inside a target cluster.
 */
async function writeInPieces(
  writer: Writer,
  offset: number,
  data: Uint8Array,
  most: number,
): Promise<void> {
  for (let o = 0; o < data.length;) {
    const end = Math.min(data.length, (Math.floor((offset + o) / most) + 1) * most - offset);
    const pending = writer.write(offset + o, data.subarray(o, end));
    if (pending) await pending;
    o = end;
  }
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:", [
    ...STANDARD_LONG,
    { name: "target-image-opts", hasArg: false },
    { name: "target-is-zero", hasArg: false },
    { name: "salvage", hasArg: false },
    { name: "bitmaps", hasArg: false },
    { name: "skip-broken-bitmaps", hasArg: false },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const bitmaps = hasOpt(opts, "bitmaps");
  const skipBroken = hasOpt(opts, "skip-broken-bitmaps");
  if (skipBroken && !bitmaps) {
    throw new UsageError("Use of --skip-broken-bitmaps requires --bitmaps");
  }
  const outFormat = lastOpt(opts, "O") ?? "raw";
  const optionText = joinedOpt(opts, "o");
  if (optionText !== undefined && isHelpRequest(optionText)) {
    ctx.graph.format(outFormat);
    writeOut(createOptionsHelp(ctx, outFormat, positional.length > 0));
    return 0;
  }
  if (positional.length < 2) throw new UsageError("Must specify image file name");
  const outName = positional[positional.length - 1];
  const inNames = positional.slice(0, -1);
  const skipCreate = hasOpt(opts, "n");
  const compress = hasOpt(opts, "c");
  const targetIsZeroFlag = hasOpt(opts, "target-is-zero");
  if (targetIsZeroFlag && !skipCreate) {
    throw new UsageError("--target-is-zero requires use of -n flag");
  }
  // qemu-img's MAX_COROUTINES.
  const workers = Number(lastOpt(opts, "m") ?? "8");
  if (!Number.isInteger(workers) || workers < 1 || workers > 16) {
    throw new UsageError(
      "Invalid number of coroutines. Allowed number of coroutines is between 1 and 16",
    );
  }
  const sparseText = lastOpt(opts, "S");
  let sparseBytes = 4096;
  if (sparseText !== undefined) {
    sparseBytes = cvtnum(ctx, "buffer size for sparse output", sparseText);
    // MAX_BUF_SECTORS: 32768 sectors.
    if (sparseBytes % 512 !== 0 || sparseBytes > 16 << 20) {
      throw new UsageError(
        "Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 " +
          "up to 16777216. Select 0 to disable sparse detection (fully allocates output).",
      );
    }
  }
  if (hasOpt(opts, "C") && compress) {
    throw new UsageError("Cannot enable copy offloading when -c is used");
  }
  const backingName = lastOpt(opts, "B");
  if (backingName !== undefined && skipCreate) {
    throw new UsageError("Specifying backing image makes no sense when not creating target");
  }
  const quiet = hasOpt(opts, "q");
  const forceShare = hasOpt(opts, "U");
  const snapshotText = lastOpt(opts, "l");
  const snapshot = snapshotText === undefined ? undefined : parseSnapshotParam(snapshotText, ctx);
  const sources: BlockNode[] = [];
  let target: BlockBackend | undefined;
  try {
    for (const name of inNames) {
      sources.push(
        await openImage(ctx, name, {
          format: lastOpt(opts, "f"),
          imageOpts: hasOpt(opts, "image-opts"),
          readOnly: true,
          forceShare,
          cache: lastOpt(opts, "T"),
          // qemu-img's convert lets nobody write or resize its sources while it copies.
          access: { shared: BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED },
        }),
      );
    }
    const total = sources.reduce((n, s) => n + s.size(), 0);
    const bitmapTools = bitmaps ? await import("./bitmap.ts") : undefined;
    if (bitmapTools) {
      if (sources.length > 1) {
        throw new UsageError("Copying bitmaps only possible with single source");
      }
      const refusal = bitmapTools.convertBitmapsRefusal(sources[0], skipBroken);
      if (refusal) throw new UsageError(refusal);
    }
    if (snapshot) {
      // Only the first source is read as the snapshot; a bare id-or-name refuses more sources.
      if (snapshot.kind === "idOrName" && sources.length > 1) {
        throw new UsageError("No support for concatenating multiple snapshot");
      }
      await loadSnapshotParam(sources[0], snapshot);
    }
    const format = ctx.graph.format(outFormat);
    if (!skipCreate) {
      const parsed = parseCreateOptions(ctx, outFormat, optionText ?? "");
      if (backingName !== undefined) {
        parsed.backing_file = backingName;
        const bf = lastOpt(opts, "F");
        if (bf !== undefined) parsed.backing_fmt = bf;
      }
      if (
        compress && !format.supportsCompression &&
        !format.options.some((o) => o.name === "compression_type")
      ) {
        throw new NotSupportedError("Compression not supported for this file format");
      }
      parsed.size ??= total;
      await createOrSay(
        `${outName}: error while converting ${format.name}`,
        () => format.create(outName, parsed.size as number, parsed, ctx.graph.createContext()),
      );
    }
    const cache = (lastOpt(opts, "t") ?? "unsafe") as CacheMode;
    const node = await openImage(ctx, outName, {
      format: outFormat,
      imageOpts: hasOpt(opts, "target-image-opts"),
      readOnly: false,
      cache,
      noBacking: false,
    });
    target = new BlockBackend(node, { cache, maxQueueDepth: workers * 4 });
    if (bitmapTools && !node.dirtyBitmaps?.supported) {
      throw new NotSupportedError(`Format driver '${node.driver}' does not support bitmaps`);
    }
    if (compress && !node.writeCompressed) {
      throw new NotSupportedError("Compression not supported for this file format");
    }
    if (skipCreate && node.size() < total) {
      throw new UsageError("output file is smaller than input file");
    }
    const progress = hasOpt(opts, "p") && !quiet ? new Progress() : undefined;
    await convertImages(sources, target, {
      // A streamOptimized vmdk takes compressed grains only, as QEMU's needs_compressed_writes.
      compress: compress || node.needsCompressedWrites === true,
      sparseBytes,
      targetIsZero: !skipCreate ? backingName === undefined : targetIsZeroFlag,
      targetHasBacking: backingName !== undefined,
      workers,
      outOfOrder: hasOpt(opts, "W"),
      salvage: hasOpt(opts, "salvage"),
      warn: quiet ? undefined : (line) => writeErr(`${ctx.errorPrefix}: warning: ${line}\n`),
      progress,
    });
    progress?.finish();
    if (bitmapTools) {
      await bitmapTools.copyBitmaps(sources[0], node, {
        skipBroken,
        warn: (line) => writeErr(`${ctx.errorPrefix}: warning: ${line}\n`),
      });
    }
  } finally {
    await closeQuietly(...sources, target);
  }
  return 0;
}

/** The `convert` subcommand. */
export const convertCommand: ImgCommand = {
  name: "convert",
  synopsis:
    "convert [--target-is-zero] [-U] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-S sparse_size] [-m num_coroutines] [-W] filename [filename2 [...]] output_filename",
  run,
};
