// `vmkit plugin list` and `vmkit plugin build`: what is loaded, and bundling a plugin into one file

import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError, VmkitError } from "../core/errors.ts";
import { PLUGIN_KINDS, type Registry } from "../core/plugin.ts";
import { writeOut } from "./output.ts";
import { BUNDLE_API_MODULE, BUNDLE_MARKER } from "./plugin_loader.ts";

const PLUGIN_USAGE = `usage: vmkit plugin list
       vmkit plugin build PLUGIN.ts [-o PLUGIN.js]

list    every plugin vmkit has (built in, or loaded with --plugin / VMKIT_PLUGINS), and where from
build   bundles PLUGIN.ts and everything it imports into one file that any vmkit, the
        compiled binary included, loads with --plugin; vmkit's API (mod.ts) is not copied
        in: the bundle gets it from the vmkit that loads it
`;

/** Runs `vmkit plugin ...`; resolves to the exit code. */
export async function runPluginCommand(args: string[], registry: Registry): Promise<number> {
  const sub = args[0];
  if (sub === "list") {
    writeOut(pluginList(registry));
    return 0;
  }
  if (sub === "build") {
    let input: string | undefined;
    let output: string | undefined;
    for (let i = 1; i < args.length; i++) {
      if (args[i] === "-o") {
        output = args[++i];
        if (output === undefined) throw new UsageError("plugin build: -o needs a file name");
      } else if (input === undefined) {
        input = args[i];
      } else {
        throw new UsageError(`plugin build: unexpected argument '${args[i]}'`);
      }
    }
    if (input === undefined) throw new UsageError("plugin build: which plugin? (PLUGIN.ts)");
    output ??= input.replace(/\.[cm]?[jt]sx?$/, "") + ".js";
    await buildPluginBundle(input, output);
    return 0;
  }
  if (sub === undefined || sub === "help" || sub === "--help" || sub === "-h") {
    writeOut(PLUGIN_USAGE);
    return sub === undefined ? 1 : 0;
  }
  throw new UsageError(`Unknown plugin command '${sub}'; try 'vmkit plugin help'`);
}

/** `vmkit plugin list`: kind, name and source of every plugin, kinds in a fixed order. */
export function pluginList(registry: Registry): string {
  const rows = [["KIND", "NAME", "SOURCE"]];
  for (const kind of PLUGIN_KINDS) {
    for (const d of registry.list(kind)) {
      rows.push([kind, d.name, registry.sourceOf(d) ?? "built-in"]);
    }
  }
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`).join("\n") + "\n";
}

/** The vmkit checkout this module runs from (its mod.ts, core/, plugins/, cli/). */
const VMKIT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/**
 * The vmkit checkout a file lies in (a folder with mod.ts and core/plugin.ts), if any: a
 * plugin may name the API by the path of any checkout, not only the running one's.
 */
function vmkitRootOf(file: string): string | undefined {
  for (let dir = path.dirname(file);; dir = path.dirname(dir)) {
    if (isFile(path.join(dir, "mod.ts")) && isFile(path.join(dir, "core", "plugin.ts"))) {
      return dir;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * What an import inside a plugin becomes in its bundle: vmkit's API (`mod.ts`, or the bare
 * name `vmkit`) and `node:` built-ins stay outside; a file inside vmkit other than mod.ts
 * is refused, since its copy would not be the running vmkit's.
 *
 * @returns `external` for the API and built-ins, an error line, or undefined to bundle it
 */
export function classifyPluginImport(
  specifier: string,
  resolveDir: string,
): { external: string } | { error: string } | undefined {
  if (specifier === BUNDLE_API_MODULE) return { external: BUNDLE_API_MODULE };
  if (specifier.startsWith("node:")) return { external: specifier };
  if (/^(https?|jsr|npm):/.test(specifier)) {
    return { error: `cannot bundle '${specifier}': a plugin bundles local files only` };
  }
  if (!specifier.startsWith(".") && !path.isAbsolute(specifier)) return undefined;
  const abs = path.resolve(resolveDir, specifier);
  const root = vmkitRootOf(abs) ?? VMKIT_ROOT;
  if (abs === path.join(root, "mod.ts")) return { external: BUNDLE_API_MODULE };
  for (const dir of ["core", "plugins", "cli"]) {
    if (abs.startsWith(path.join(root, dir) + path.sep)) {
      return {
        error: `'${specifier}' is inside vmkit (${dir}/): import vmkit's API from its mod.ts`,
      };
    }
  }
  return undefined;
}

// The bundler is an npm package that only `plugin build` needs: named through a variable
// so neither start-up nor `deno compile` pulls it in.
const ESBUILD = "esbuild";

interface EsbuildResolveArgs {
  path: string;
  resolveDir: string;
  kind: string;
}

interface EsbuildLike {
  build(options: Record<string, unknown>): Promise<{ outputFiles?: { text: string }[] }>;
  stop?(): void | Promise<void>;
}

/**
 * Bundles the plugin `input` and everything it imports into `output` with esbuild:
 * CommonJS text behind {@linkcode BUNDLE_MARKER} whose imports of vmkit's API become
 * `require("vmkit")`, answered at load time by the running vmkit.
 */
export async function buildPluginBundle(input: string, output: string): Promise<void> {
  let esbuild: EsbuildLike;
  try {
    esbuild = await import(ESBUILD) as EsbuildLike;
  } catch (e) {
    throw new VmkitError(
      "plugin build needs esbuild from npm: run it from a vmkit checkout after 'npm ci'",
      { cause: e },
    );
  }
  try {
    await Deno.stat(input);
  } catch (e) {
    throw new UsageError(`plugin build: cannot read '${input}'`, { cause: e });
  }
  const vmkitApi = {
    name: "vmkit-api",
    setup(
      build: { onResolve(o: { filter: RegExp }, cb: (a: EsbuildResolveArgs) => unknown): void },
    ) {
      build.onResolve({ filter: /.*/ }, (a) => {
        if (a.kind === "entry-point") return undefined;
        const c = classifyPluginImport(a.path, a.resolveDir);
        if (!c) return undefined;
        if ("error" in c) return { errors: [{ text: c.error }] };
        return { path: c.external, external: true };
      });
    },
  };
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [path.resolve(input)],
      bundle: true,
      write: false,
      format: "cjs",
      platform: "neutral",
      mainFields: ["module", "main"],
      target: "es2022",
      logLevel: "silent",
      plugins: [vmkitApi],
    });
  } catch (e) {
    const errors = (e as { errors?: { text: string; location?: { file: string } }[] }).errors;
    const first = errors?.[0];
    const where = first?.location ? ` (${first.location.file})` : "";
    throw new UsageError(
      `plugin build: cannot bundle '${input}': ${first?.text ?? (e as Error).message}${where}`,
    );
  } finally {
    await esbuild.stop?.();
  }
  const text = result.outputFiles?.[0]?.text ?? "";
  await Deno.writeTextFile(output, `${BUNDLE_MARKER}\n${text}`);
}
