// The `img` face: qemu-img's subcommands, help and dispatch

import { UsageError } from "../../core/errors.ts";
import { writeOut } from "../output.ts";
import { versionLine } from "../version.ts";
import { GetoptError } from "../getopt.ts";
import { ErrorExit, type ImgCommand, type ImgContext } from "./common.ts";

/**
 * Every `img` subcommand's module by name, in the order `--help` lists them. A command's
 * module loads when it runs, so `img info` loads none of the others: the number of
 * modules is most of vmkit's start-up time. (String literals: `deno compile` embeds them.)
 */
const IMG_COMMAND_LOADERS: Readonly<Record<string, () => Promise<ImgCommand>>> = {
  amend: () => import("./amend.ts").then((m) => m.amendCommand),
  bench: () => import("./bench.ts").then((m) => m.benchCommand),
  bitmap: () => import("./bitmap.ts").then((m) => m.bitmapCommand),
  check: () => import("./check.ts").then((m) => m.checkCommand),
  commit: () => import("./commit.ts").then((m) => m.commitCommand),
  compare: () => import("./compare.ts").then((m) => m.compareCommand),
  convert: () => import("./convert.ts").then((m) => m.convertCommand),
  create: () => import("./create.ts").then((m) => m.createCommand),
  dd: () => import("./dd.ts").then((m) => m.ddCommand),
  info: () => import("./info.ts").then((m) => m.infoCommand),
  map: () => import("./map.ts").then((m) => m.mapCommand),
  measure: () => import("./measure.ts").then((m) => m.measureCommand),
  snapshot: () => import("./snapshot.ts").then((m) => m.snapshotCommand),
  rebase: () => import("./rebase.ts").then((m) => m.rebaseCommand),
  resize: () => import("./resize.ts").then((m) => m.resizeCommand),
};

/** Loads every subcommand, in the order `--help` lists them. */
export function loadImgCommands(): Promise<ImgCommand[]> {
  return Promise.all(Object.values(IMG_COMMAND_LOADERS).map((load) => load()));
}

/** The `--help` text, in qemu-img's layout, listing what vmkit implements. */
export function imgHelp(
  ctx: Pick<ImgContext, "program" | "registry">,
  commands: readonly ImgCommand[],
): string {
  const formats = ctx.registry.list("format").map((f) => f.name)
    .concat(ctx.registry.list("protocol").map((p) => p.name)).sort();
  return `${versionLine(ctx.program)}
usage: ${ctx.program} [standard options] command [command options]
QEMU disk image utility

    '-h', '--help'       display this help and exit
    '-V', '--version'    output version information and exit

Command syntax:
${commands.map((c) => `  ${c.synopsis}`).join("\n")}

Command parameters:
  'filename' is a disk image filename
  'fmt' is the disk image format. It is guessed automatically in most cases
  'cache' is the cache mode used to write the output disk image, the valid
    options are: 'none', 'writeback' (default, except for convert), 'writethrough',
    'directsync' and 'unsafe' (default for convert)
  'src_cache' is the cache mode used to read input disk images, the valid
    options are the same as for the 'cache' option
  'size' is the disk image size in bytes. Optional suffixes
    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),
    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are
    supported. 'b' is ignored.
  'output_filename' is the destination disk image filename
  'output_fmt' is the destination format
  'options' is a comma separated list of format specific options in a
    name=value format. Use -o help for an overview of the options supported by
    the used format
  '-c' indicates that target image must be compressed (qcow format only)
  '-u' allows unsafe backing chains. For image creation, allow creating without
       attempting to open the backing file.
  '-h' with or without a command shows this help and lists the supported formats
  '-p' show progress of command (only certain commands)
  '-q' use Quiet mode - do not print any output (except errors)
  '-S' indicates the consecutive number of bytes (defaults to 4k) that must
       contain only zeros for qemu-img to create a sparse image during
       conversion. If the number of bytes is 0, the source will not be scanned for
       unallocated or zero sectors, and the destination image will always be
       fully allocated
  '--output' takes the format in which the output must be done (human or json)
  '-n' skips the target volume creation (useful if the volume is created
       prior to running qemu-img)

Parameters to bitmap subcommand:
  'bitmap' is the name of the bitmap to manipulate, through one or more
       actions from '--add', '--remove', '--clear', '--enable', '--disable',
       or '--merge source'
  '-g granularity' sets the granularity for '--add' actions
  '-b source' and '-F src_fmt' tell '--merge' actions to find the source
       bitmaps from an alternative file

Parameters to check subcommand:
  '-r' tries to repair any inconsistencies that are found during the check.
       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all
       kinds of errors, with a higher risk of choosing the wrong fix or
       hiding corruption that has already occurred.

Parameters to convert subcommand:
  '--bitmaps' copies all top-level persistent bitmaps to destination
  '-m' specifies how many coroutines work in parallel during the convert
       process (defaults to 8)
  '-W' allow to write to the target out of order rather than sequential

Parameters to snapshot subcommand:
  'snapshot' is the name of the snapshot to create, apply or delete
  '-a' applies a snapshot (revert disk to saved state)
  '-c' creates a snapshot
  '-d' deletes a snapshot
  '-l' lists all snapshots in the given image

Parameters to compare subcommand:
  '-f' first image format
  '-F' second image format
  '-s' run in Strict mode - fail on different image size or sector allocation

Parameters to dd subcommand:
  'bs=BYTES' read and write up to BYTES bytes at a time (default: 512)
  'count=N' copy only N input blocks
  'if=FILE' read from FILE
  'of=FILE' write to FILE
  'skip=N' skip N bs-sized blocks at the start of input

Supported formats: ${formats.join(" ")}
`;
}

/** Runs `img` with its arguments; resolves to the exit code. */
export async function runImg(args: string[], ctx: Omit<ImgContext, "printHelp">): Promise<number> {
  const full: ImgContext = {
    ...ctx,
    // Every command loads only here, for the synopses the help text lists.
    printHelp: async () => {
      writeOut(imgHelp(ctx, await loadImgCommands()));
      return 0;
    },
  };
  // Standard options come before the command, as qemu-img's "+" getopt stops at it.
  let i = 0;
  for (; i < args.length && args[i].startsWith("-"); i++) {
    const a = args[i];
    if (a === "-h" || a === "--help") return full.printHelp();
    if (a === "-V" || a === "--version") {
      writeOut(`${versionLine(ctx.program)}\nCopyright (c) 2026 the vmkit authors\n`);
      return 0;
    }
    if (a === "-T" || a === "--trace") {
      i++;
      continue;
    }
    if (a.startsWith("--trace=")) continue;
    throw new UsageError(
      `invalid option -- '${
        a.replace(/^-+/, "")
      }'\nTry '${ctx.program} --help' for more information`,
    );
  }
  if (i >= args.length) {
    throw new UsageError(`Not enough arguments\nTry '${ctx.program} --help' for more information`);
  }
  const name = args[i];
  const load = Object.hasOwn(IMG_COMMAND_LOADERS, name) ? IMG_COMMAND_LOADERS[name] : undefined;
  if (!load) {
    throw new UsageError(
      `Command not found: ${name}\nTry '${ctx.program} --help' for more information`,
    );
  }
  const command = await load();
  try {
    return await command.run(args.slice(i + 1), full);
  } catch (e) {
    // qemu-img's error_exit, unrecognized_option and missing_argument add this line.
    if (e instanceof GetoptError || e instanceof ErrorExit) {
      throw new UsageError(`${e.message}\nTry '${ctx.program} --help' for more information`);
    }
    throw e;
  }
}
