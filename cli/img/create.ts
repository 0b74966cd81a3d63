// `img create`: a new image of any format, with backing files and -o options

import { errorChainMessage, UsageError, VmkitError } from "../../core/errors.ts";
import {
  formatOptionHelp,
  isHelpRequest,
  type OptionSpec,
  type ParsedOptions,
  parseSize,
} from "../../core/options.ts";
import { getopt } from "../getopt.ts";
import { writeErr, writeOut } from "../output.ts";
import {
  ErrorExit,
  hasOpt,
  type ImgCommand,
  type ImgContext,
  joinedOpt,
  lastOpt,
} from "./common.ts";

/** Reads the size argument of create, with qemu-img's two-line error. */
export function parseImageSize(text: string, ctx: Pick<ImgContext, "errorPrefix">): number {
  try {
    // qemu-img ignores a trailing 'b' and refuses negative sizes.
    if (text.startsWith("-")) throw new Error("negative");
    return parseSize(text);
  } catch {
    throw new UsageError(
      "Invalid image size specified. You may use k, M, G, T, P or E suffixes for\n" +
        `${ctx.errorPrefix}: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.`,
    );
  }
}

/** The create option list of a format merged with the file protocol's, in QEMU's print order. */
export function createOptionList(ctx: ImgContext, format: string): OptionSpec[] {
  const specs = [...ctx.graph.format(format).options];
  for (const s of ctx.registry.require("protocol", "file").options) {
    if (!specs.some((f) => f.name === s.name)) specs.push(s);
  }
  return specs;
}

/** The `-o help` text for a format, as qemu-img prints it with or without a file name. */
export function createOptionsHelp(ctx: ImgContext, format: string, withFile: boolean): string {
  if (withFile) return `Supported options:\n${formatOptionHelp(createOptionList(ctx, format))}\n`;
  return `Supported ${format} options:\n${formatOptionHelp(ctx.graph.format(format).options)}\n\n` +
    "The protocol level may support further options.\n" +
    "Specify the target filename to include those options.\n";
}

/** `fmt=qcow2 cluster_size=65536 ...`: set options and defaults in the format's declared order. */
export function describeCreateOptions(specs: readonly OptionSpec[], opts: ParsedOptions): string {
  const parts: string[] = [];
  for (const spec of specs) {
    const value = opts[spec.name] ?? spec.default;
    if (value === undefined) continue;
    parts.push(`${spec.name}=${typeof value === "boolean" ? (value ? "on" : "off") : value}`);
  }
  return parts.join(" ");
}

/** Parses `-o` text for a format plus protocol; a typo names the option. */
export function parseCreateOptions(ctx: ImgContext, format: string, text: string): ParsedOptions {
  return ctx.graph.parseCreateOptions(format, text);
}

async function run(args: string[], ctx: ImgContext): Promise<number> {
  const { opts, positional } = getopt(args, "F:b:f:ho:qu", [
    { name: "help", hasArg: false, short: "h" },
    { name: "object", hasArg: true },
  ]);
  if (hasOpt(opts, "h")) return ctx.printHelp();
  const format = lastOpt(opts, "f") ?? "raw";
  const optionText = joinedOpt(opts, "o");
  const filename = positional[0];
  if (optionText !== undefined && isHelpRequest(optionText)) {
    ctx.graph.format(format);
    writeOut(createOptionsHelp(ctx, format, filename !== undefined));
    return 0;
  }
  if (filename === undefined) throw new ErrorExit("Expecting image file name");
  if (positional.length > 2) throw new UsageError("Expecting one image file name");
  const quiet = hasOpt(opts, "q");
  const unsafe = hasOpt(opts, "u");
  // The size argument is read before the image is named in messages, as img_create does.
  const sizeArg = positional[1] === undefined ? undefined : parseImageSize(positional[1], ctx);
  try {
    const descriptor = ctx.graph.format(format);
    const specs = createOptionList(ctx, format);
    const parsed = parseCreateOptions(ctx, format, optionText ?? "");
    const b = lastOpt(opts, "b");
    const bf = lastOpt(opts, "F");
    if (b !== undefined) parsed.backing_file = b;
    if (bf !== undefined) parsed.backing_fmt = bf;
    if (sizeArg !== undefined) {
      if (parsed.size !== undefined) {
        throw new UsageError("The image size must be specified only once");
      }
      parsed.size = sizeArg;
    }
    const backing = parsed.backing_file as string | undefined;
    if (backing !== undefined && !specs.some((s) => s.name === "backing_file")) {
      throw new UsageError(`Format '${format}' does not support backing files`);
    }
    if (backing !== undefined && parsed.backing_fmt === undefined) {
      let detected = "";
      if (!unsafe) {
        try {
          const node = await ctx.graph.openImage(
            ctx.graph.createContext().resolveBacking(filename, backing),
            {
              readOnly: true,
              noBacking: true,
              forceShare: true,
            },
          );
          detected = `\nDetected format of ${node.driver}.`;
          await node.close();
        } catch {
          // Could not open it either: the missing format is the first thing to fix.
        }
      }
      // qemu-img prints the detected-format variant without a final newline.
      writeErr(
        `${ctx.errorPrefix}: ${filename}: Backing file specified without backing format${
          detected || "\n"
        }`,
      );
      return 1;
    }
    if (parsed.size === undefined && (backing === undefined || unsafe)) {
      throw new UsageError("Image creation needs a size parameter");
    }
    if (backing !== undefined && !unsafe) {
      const backingSize = await probeBackingSize(
        ctx,
        filename,
        backing,
        parsed.backing_fmt as string,
      );
      parsed.size ??= backingSize;
    }
    if (!quiet) {
      writeOut(`Formatting '${filename}', fmt=${format} ${describeCreateOptions(specs, parsed)}\n`);
    }
    await descriptor.create(filename, parsed.size as number, parsed, ctx.graph.createContext());
  } catch (e) {
    if (e instanceof VmkitError) {
      throw new (e.constructor as typeof VmkitError)(`${filename}: ${e.message}`, {
        cause: e.cause,
        exitCode: e.exitCode,
      });
    }
    throw e;
  }
  return 0;
}

/** Opens the backing file a new image will name, for its size; QEMU's two-line error if it can't. */
async function probeBackingSize(
  ctx: ImgContext,
  filename: string,
  backing: string,
  backingFormat: string,
): Promise<number> {
  const path = ctx.graph.createContext().resolveBacking(filename, backing);
  try {
    const node = await ctx.graph.openImage(path, {
      format: backingFormat,
      readOnly: true,
      forceShare: true,
    });
    const size = node.size();
    await node.close();
    return size;
  } catch (e) {
    const inner = e instanceof VmkitError && e.cause instanceof Error ? e.cause : e;
    const detail = errorChainMessage(inner).replace(/^Could not open '[^']*': /, "");
    throw new UsageError(`Could not open '${backing}': ${detail}\nCould not open backing image.`);
  }
}

/** The `create` subcommand. */
export const createCommand: ImgCommand = {
  name: "create",
  synopsis:
    "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
  run,
};
