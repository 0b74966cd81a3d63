// vmkit's entry point: one executable, two faces (img and system-x86_64)

import { errorChainMessage, InvariantError, VmkitError } from "../core/errors.ts";
import type { MachineExit } from "../core/machine.ts";
import { writeErr, writeOut } from "./output.ts";
import { buildRegistry, type BuildRegistryOptions } from "./registry.ts";
import { versionLine } from "./version.ts";

/** The faces, by the name the executable may be started under. */
const PERSONALITIES: Record<string, "img" | "system"> = {
  "qemu-img": "img",
  "qemu-system-x86_64": "system",
  "qemu-system-i386": "system",
};

const USAGE = `usage: vmkit [--plugin PATH|URL]... <command> [arguments]

vmkit is QEMU as one TypeScript program.

Commands:
  img ...              the disk image utility (qemu-img); 'vmkit img --help'
  system-x86_64 ...    the PC emulator (qemu-system-x86_64); 'vmkit system-x86_64 -help'
  system-i386 ...      the same emulator under its 32-bit name
  plugin list          the plugins loaded, and where from
  plugin build F.ts -o F.js
                       bundle a plugin into one file a compiled vmkit can load

Options:
  --plugin PATH|URL    load an extra plugin (a module or bundle whose default export is a
                       descriptor); also before the arguments of qemu-img and qemu-system-*
                       VMKIT_PLUGINS=a.ts:b.js loads plugins under every name
  -h, --help           show this help
  -V, --version        show the version

Started under the name qemu-img or qemu-system-x86_64 (a symlink), vmkit behaves as that tool.
Set VMKIT_DEBUG=1 to see stack traces.
`;

/** Options of {@linkcode main}. */
export interface MainOptions {
  /** The name the executable was started under (argv[0]). */
  argv0?: string;
  /** Called with how the guest's run ended, when the system face ran a machine. */
  onGuestExit?: (exit: MachineExit) => void;
}

/**
 * Runs vmkit with a command line and resolves to the exit code. Errors are printed
 * as `<program>: <message>` and never escape.
 */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  const base = (options.argv0 ?? "vmkit").split("/").pop() ?? "vmkit";
  let face = PERSONALITIES[base];
  let program = face === "img" ? "qemu-img" : face === "system" ? base : "vmkit";
  // qemu-system-i386 and qemu-system-x86_64 differ in the names their messages quote.
  let target: "x86_64" | "i386" = base === "qemu-system-i386" ? "i386" : "x86_64";
  const pluginFiles: string[] = [];
  let rest = args;
  try {
    // Leading --plugin options, under every name vmkit answers to.
    let i = 0;
    while (i < rest.length && rest[i] === "--plugin") {
      if (i + 1 >= rest.length) throw new VmkitError("--plugin needs a path or URL");
      pluginFiles.push(rest[i + 1]);
      i += 2;
    }
    rest = rest.slice(i);
    if (!face) {
      const command = rest[0];
      if (command === undefined || command === "-h" || command === "--help" || command === "help") {
        writeOut(USAGE);
        return command === undefined ? 1 : 0;
      }
      if (command === "-V" || command === "--version") {
        writeOut(`${versionLine("vmkit")}\n`);
        return 0;
      }
      if (command === "plugin") {
        const registry = await buildRegistry(pluginFiles, registryOptions("vmkit"));
        const { runPluginCommand } = await import("./plugin_command.ts");
        return await runPluginCommand(rest.slice(1), registry);
      }
      if (command === "img") face = "img";
      else if (command === "system-x86_64" || command === "system-i386") {
        face = "system";
        if (command === "system-i386") target = "i386";
      } else throw new VmkitError(`Unknown command '${command}'; try 'vmkit --help'`);
      rest = rest.slice(1);
      program = "vmkit";
    }
    // Each face loads only its own modules (img needs no CPU, devices or machines): the
    // module count is most of vmkit's start-up time.
    const registry = await buildRegistry(pluginFiles, {
      ...registryOptions(program),
      builtins: face === "img" ? "block" : "all",
    });
    if (face === "img") {
      const [{ runImg }, { BlockGraph }] = await Promise.all([
        import("./img/mod.ts"),
        import("../core/block/graph.ts"),
      ]);
      return await runImg(rest, {
        registry,
        // A format's warning gets qemu-img's `prefix: ` and carries its own line ends
        // (QEMU's warn_report, then a hint printed without one).
        graph: new BlockGraph(
          registry,
          (line) => writeErr(line.startsWith("warning: ") ? `${program}: ${line}` : `${line}\n`),
        ),
        program: program === "vmkit" ? "vmkit img" : program,
        errorPrefix: program,
      });
    }
    const { runSystem } = await import("./system/mod.ts");
    return await runSystem(rest, { registry, program, target, onExit: options.onGuestExit });
  } catch (e) {
    return reportError(e, program);
  }
}

/** Where plugins come from besides --plugin, and how a refused one is reported. */
function registryOptions(program: string): BuildRegistryOptions {
  return {
    envPlugins: Deno.env.get("VMKIT_PLUGINS"),
    warn: (line) => writeErr(`${program}: warning: ${line}\n`),
  };
}

/** Prints an error the way a user should see it and returns its exit code. */
export function reportError(error: unknown, program: string): number {
  const debug = Deno.env.get("VMKIT_DEBUG") === "1";
  const name = program === "vmkit img" ? "vmkit" : program;
  if (error instanceof VmkitError) {
    writeErr(`${name}: ${errorChainMessage(error)}\n`);
    if (debug) writeErr(`${error.stack}\n`);
    return error.exitCode;
  }
  const what = error instanceof InvariantError ? "an internal check failed" : "unexpected error";
  writeErr(
    `${name}: bug in vmkit: ${what}: ${errorChainMessage(error)}\n` +
      (debug ? `${(error as Error)?.stack ?? ""}\n` : "(set VMKIT_DEBUG=1 for the stack trace)\n"),
  );
  return 1;
}

/**
 * argv[0] as the system gave it (the name of a `qemu-img` symlink), read from
 * /proc/self/cmdline: node:process has it too, but loading Node's compatibility layer
 * would cost more than the rest of vmkit's start-up.
 */
async function processArgv0(): Promise<string> {
  try {
    const cmdline = Deno.readTextFileSync("/proc/self/cmdline");
    return cmdline.slice(0, cmdline.indexOf("\0"));
  } catch {
    return (await import("node:process")).default.argv0;
  }
}

if (import.meta.main) {
  const code = await main(Deno.args, { argv0: await processArgv0() });
  Deno.exit(code);
}
