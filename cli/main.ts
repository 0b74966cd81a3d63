// vmkit's entry point: one executable, two faces (img and system-x86_64)

import process from "node:process";
import { BlockGraph } from "../core/block/graph.ts";
import { errorChainMessage, InvariantError, VmkitError } from "../core/errors.ts";
import { runImg } from "./img/mod.ts";
import { writeErr, writeOut } from "./output.ts";
import { runPluginCommand } from "./plugin_command.ts";
import { buildRegistry, type BuildRegistryOptions } from "./registry.ts";
import { runSystem } from "./system/mod.ts";
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
}

/**
 * Runs vmkit with a command line and resolves to the exit code. Errors are printed
 * as `<program>: <message>` and never escape.
 */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  const base = (options.argv0 ?? "vmkit").split("/").pop() ?? "vmkit";
  let face = PERSONALITIES[base];
  let program = face === "img" ? "qemu-img" : face === "system" ? base : "vmkit";
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
        return await runPluginCommand(rest.slice(1), registry);
      }
      if (command === "img") face = "img";
      else if (command === "system-x86_64" || command === "system-i386") face = "system";
      else throw new VmkitError(`Unknown command '${command}'; try 'vmkit --help'`);
      rest = rest.slice(1);
      program = "vmkit";
    }
    const registry = await buildRegistry(pluginFiles, registryOptions(program));
    if (face === "img") {
      return await runImg(rest, {
        registry,
        graph: new BlockGraph(registry, (line) => writeErr(line + "\n")),
        program: program === "vmkit" ? "vmkit img" : program,
        errorPrefix: program,
      });
    }
    return await runSystem(rest, { registry, program });
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

if (import.meta.main) {
  const code = await main(Deno.args, { argv0: process.argv0 });
  Deno.exit(code);
}
