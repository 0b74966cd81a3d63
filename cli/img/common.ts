// Shared pieces of the `img` subcommands: context, image opening, option helpers

import type { BlockBackend } from "../../core/block/backend.ts";
import { type CacheMode, parseCacheMode } from "../../core/block/cache_mode.ts";
import type { BlockNode } from "../../core/block/driver.ts";
import type { ImageAccess } from "../../core/block/perm.ts";
import { BlockGraph } from "../../core/block/graph.ts";
import { ImageOpenError, UsageError, VmkitError } from "../../core/errors.ts";
import {
  type ParsedOptions,
  parseKeyValueList,
  parseOptions,
  parseSize,
} from "../../core/options.ts";
import type { Registry } from "../../core/plugin.ts";
import type { LongOption, ParsedOpt } from "../getopt.ts";
import { writeErr } from "../output.ts";

/** What every `img` subcommand gets. */
export interface ImgContext {
  readonly registry: Registry;
  readonly graph: BlockGraph;
  /** `qemu-img` or `vmkit img`, for messages such as `Try 'qemu-img --help'`. */
  readonly program: string;
  /** The prefix of error and warning lines: `vmkit` or `qemu-img`. */
  readonly errorPrefix: string;
  /** Prints the `--help` text and returns exit code 0 (`-h` in any subcommand). */
  printHelp(): Promise<number>;
}

/**
 * The long options every subcommand takes: `--help`, `--object` (accepted; secrets
 * and other objects are not used yet), `--image-opts` and `--force-share` (`-U`).
 */
export const STANDARD_LONG: readonly LongOption[] = [
  { name: "help", hasArg: false, short: "h" },
  { name: "object", hasArg: true },
  { name: "image-opts", hasArg: false },
  { name: "force-share", hasArg: false, short: "U" },
];

/** One `img` subcommand: its name, synopsis line for `--help`, and its runner. */
export interface ImgCommand {
  readonly name: string;
  readonly synopsis: string;
  /** Runs the command; resolves to the process exit code. */
  run(args: string[], ctx: ImgContext): Promise<number>;
}

/**
 * A usage error qemu-img reports through `error_exit`: the message, then the
 * `Try '<program> --help' for more information` line (runImg adds it).
 */
export class ErrorExit extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = "ErrorExit";
  }
}

/** A failure whose message qemu-img prints and whose exit code is not 1. */
export class ExitError extends VmkitError {}

/** Options every command that opens an image shares. */
export interface OpenImageOptions {
  format?: string;
  readOnly: boolean;
  forceShare?: boolean;
  cache?: string;
  noBacking?: boolean;
  /** `-o`-style runtime options for the format (`l2-cache-size=...`). */
  formatOptionsText?: string;
  /** Typed runtime options added by the command itself (`x-check` for `check -r`). */
  formatOptions?: ParsedOptions;
  /** `--image-opts`: the file name is an option string (`driver=qcow2,file.filename=x`). */
  imageOpts?: boolean;
  /** What the command does with the image, for its locks (default: read, or read and write). */
  access?: ImageAccess;
  /** `file.NAME=` options of `--image-opts` (`file.locking=off`), as text. */
  protocolOptionsText?: string;
}

/**
 * Splits an `--image-opts` string into the file name, the format and the format's
 * runtime options, as qemu-img reads `driver=qcow2,file.filename=a.qcow2,l2-cache-size=1M`.
 */
export function parseImageOpts(
  text: string,
): { filename: string; format?: string; rest: string; file: string; forceShare?: string } {
  let filename: string | undefined;
  let format: string | undefined;
  let forceShare: string | undefined;
  const rest: string[] = [];
  const file: string[] = [];
  for (const item of parseKeyValueList(text)) {
    const value = item.value.replaceAll(",", ",,");
    if (item.key === "file.filename" || item.key === "filename") filename = item.value;
    else if (item.key === "driver") format = item.value;
    else if (item.key === "file.driver" && item.value !== "file") {
      throw new UsageError(`Unknown protocol '${item.value}'`);
    } else if (item.key === "file.driver") continue;
    else if (item.key === "force-share") forceShare = item.value;
    else if (item.key.startsWith("file.")) file.push(`${item.key.slice(5)}=${value}`);
    else rest.push(`${item.key}=${value}`);
  }
  if (filename === undefined) throw new UsageError('A block device must be specified for "file"');
  return { filename, format, rest: rest.join(","), file: file.join(","), forceShare };
}

/** Opens an image as `img` commands do, with typed format options and the cache mode. */
export async function openImage(
  ctx: ImgContext,
  filename: string,
  options: OpenImageOptions,
): Promise<BlockNode> {
  if (options.imageOpts) {
    const parsed = parseImageOpts(filename);
    const text = filename;
    // qemu-img's img_open_opts: -U sets force-share=on, and a force-share=off beside it conflicts.
    if (options.forceShare && parsed.forceShare !== undefined && parsed.forceShare !== "on") {
      throw new UsageError("--force-share/-U conflicts with image options");
    }
    if (parsed.forceShare === "on" && !options.readOnly) {
      throw new ImageOpenError(
        `Could not open '${text}': force-share=on can only be used with read-only images`,
      );
    }
    try {
      return await openImage(ctx, parsed.filename, {
        ...options,
        imageOpts: false,
        forceShare: options.forceShare || parsed.forceShare === "on",
        format: parsed.format ?? options.format,
        formatOptionsText: [parsed.rest, options.formatOptionsText].filter(Boolean).join(","),
        protocolOptionsText: parsed.file || undefined,
      });
    } catch (e) {
      // qemu-img names the option string in the outer message, the file in the inner one.
      if (e instanceof VmkitError && e.message === `Could not open '${parsed.filename}'`) {
        throw new VmkitError(`Could not open '${text}'`, { cause: e.cause, exitCode: e.exitCode });
      }
      throw e;
    }
  }
  // QEMU's bdrv_open_common: sharing every permission is for readers only.
  if (options.forceShare && !options.readOnly) {
    throw new ImageOpenError(
      `Could not open '${filename}': force-share=on can only be used with read-only images`,
    );
  }
  const cache = options.cache ? parseCacheMode(options.cache) : undefined;
  let formatOptions: ParsedOptions | undefined = options.formatOptions;
  if (options.formatOptionsText) {
    if (!options.format) throw new UsageError("Image options need an explicit format (driver=)");
    const fmt = ctx.graph.format(options.format);
    formatOptions = parseOptions(options.formatOptionsText, fmt.openOptions ?? [], {
      into: { ...formatOptions },
    });
  }
  let protocolOptions: ParsedOptions | undefined;
  if (options.protocolOptionsText) {
    const file = ctx.registry.require("protocol", "file");
    protocolOptions = parseOptions(options.protocolOptionsText, file.openOptions ?? []);
  }
  const node = await ctx.graph.openImage(filename, {
    format: options.format,
    readOnly: options.readOnly,
    forceShare: options.forceShare,
    access: options.access,
    direct: cache?.direct,
    noFlush: cache?.noFlush,
    noBacking: options.noBacking,
    formatOptions,
    protocolOptions,
  });
  if (!options.readOnly && !options.format && node.driver === "raw") {
    writeErr(
      `WARNING: Image format was not specified for '${filename}' and probing guessed raw.\n` +
        "         Automatically detecting the format is dangerous for raw images, " +
        "write operations on block 0 will be restricted.\n" +
        "         Specify the 'raw' format explicitly to remove the restrictions.\n",
    );
  }
  return node;
}

/** Opens an image and wraps it in a backend with the cache mode. */
export async function openBackend(
  ctx: ImgContext,
  filename: string,
  options: OpenImageOptions & { maxQueueDepth?: number },
): Promise<BlockBackend> {
  const node = await openImage(ctx, filename, options);
  // Loaded here: `img info` and other commands that only open an image never need it.
  const { BlockBackend } = await import("../../core/block/backend.ts");
  return new BlockBackend(node, {
    cache: (options.cache ?? "writeback") as CacheMode,
    maxQueueDepth: options.maxQueueDepth,
  });
}

/**
 * A number with an optional size suffix, read as qemu-img's `cvtnum_full`: a bad or
 * negative value gets the two-line suffix hint, an out-of-range one the bounds.
 */
export function cvtnum(
  ctx: Pick<ImgContext, "errorPrefix">,
  name: string,
  text: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  let n = -1;
  try {
    if (!text.trimStart().startsWith("-")) n = parseSize(text);
  } catch {
    // Reported below.
  }
  if (n < 0) {
    throw new UsageError(
      `Invalid ${name} specified. You may use k, M, G, T, P or E suffixes for\n` +
        `${ctx.errorPrefix}: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.`,
    );
  }
  if (n < min || n > max) {
    throw new UsageError(`Invalid ${name} specified. Must be between ${min} and ${max}.`);
  }
  return n;
}

/** The last value of option `name`, or undefined. */
export function lastOpt(opts: readonly ParsedOpt[], name: string): string | undefined {
  let v: string | undefined;
  for (const o of opts) if (o.name === name) v = o.value;
  return v;
}

/** True when flag `name` was given. */
export function hasOpt(opts: readonly ParsedOpt[], name: string): boolean {
  return opts.some((o) => o.name === name);
}

/** Every `-o` value joined with commas, as qemu-img accumulates them. */
export function joinedOpt(opts: readonly ParsedOpt[], name: string): string | undefined {
  const values = opts.filter((o) => o.name === name).map((o) => o.value);
  return values.length ? values.join(",") : undefined;
}

/** Reads `--output=human|json`. */
export function outputFormat(opts: readonly ParsedOpt[]): "human" | "json" {
  const v = lastOpt(opts, "output") ?? "human";
  if (v !== "human" && v !== "json") {
    throw new UsageError("--output must be used with human or json as argument.");
  }
  return v;
}

/** Requires exactly `count` positional arguments, with qemu-img's wording. */
export function expectArgs(positional: string[], min: number, max = min): void {
  if (positional.length < min || positional.length > max) {
    throw new ErrorExit("Expecting one image file name");
  }
}

/**
 * Awaits an image's creation; a failure reads as qemu-img's `OUT: error while converting
 * qcow2: WHY` (`context` is the part before the colon), with the failure's exit code.
 */
export async function createOrSay(context: string, create: () => Promise<void>): Promise<void> {
  try {
    await create();
  } catch (e) {
    if (!(e instanceof VmkitError)) throw e;
    throw new VmkitError(`${context}: ${e.message}`, { cause: e.cause, exitCode: e.exitCode });
  }
}

/** Closes nodes, ignoring errors of the already-failed path. */
export async function closeQuietly(
  ...nodes: (BlockNode | BlockBackend | undefined)[]
): Promise<void> {
  for (const n of nodes) {
    try {
      await n?.close();
    } catch {
      // The command already failed; its first error is the one the user needs.
    }
  }
}
