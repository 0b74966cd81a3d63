// Loads external plugins (`--plugin PATH|URL`, `VMKIT_PLUGINS`): modules, and bundles made by
// `vmkit plugin build`, which a compiled vmkit runs without importing a module

import { createRequire } from "node:module";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { errorChainMessage } from "../core/errors.ts";
import { apiVersionProblem, type PluginDescriptor, type Registry } from "../core/plugin.ts";

/**
 * The first line of every bundle `vmkit plugin build` writes. A file that starts with it
 * is evaluated as a bundle; any other file is imported as a module.
 */
export const BUNDLE_MARKER = "// vmkit plugin bundle 1";

/** The module name a bundle's imports of vmkit's API are rewritten to. */
export const BUNDLE_API_MODULE = "vmkit";

/**
 * The `VMKIT_PLUGINS` list: entries separated by `:`. A URL's own colon (`file:///x`,
 * `https://h/p.js`) does not split it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitPluginList } from "./plugin_loader.ts";
 *
 * assert.deepEqual(splitPluginList("a.ts:/b/c.js::https://h/p.js"), ["a.ts", "/b/c.js", "https://h/p.js"]);
 * ```
 */
export function splitPluginList(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(":")) {
    const last = out.length - 1;
    if (part.startsWith("//") && last >= 0 && /^(file|https?)$/.test(out[last])) {
      out[last] += `:${part}`;
    } else if (part !== "") {
      out.push(part);
    }
  }
  return out;
}

/** The URL a `--plugin` argument names: a URL as given, a path resolved from the cwd. */
export function pluginUrl(spec: string): URL {
  if (/^(file|https?):/.test(spec)) return new URL(spec);
  return pathToFileURL(path.resolve(spec));
}

async function readText(url: URL): Promise<string> {
  if (url.protocol === "file:") return await Deno.readTextFile(url);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  return await response.text();
}

/**
 * Runs a bundle's text and returns its default export. The bundle is CommonJS whose only
 * `require`s are vmkit's API (the running vmkit's own `mod.ts`, so a plugin shares its
 * classes and registry, never a second copy) and Node's built-ins.
 */
export async function evaluateBundle(text: string, name: string): Promise<unknown> {
  const api = await import("../mod.ts");
  const nodeRequire = createRequire(import.meta.url);
  const require = (id: string): unknown => {
    if (id === BUNDLE_API_MODULE) return api;
    if (id.startsWith("node:")) return nodeRequire(id);
    throw new Error(`a plugin bundle may require only vmkit and node: modules, not '${id}'`);
  };
  const module = { exports: {} as Record<string, unknown> };
  // The bundle runs as a function body: no module import is involved, which is what lets
  // a compiled vmkit load it (deno compile cannot import a module it did not embed).
  const run = new Function("require", "module", "exports", `${text}\n//# sourceURL=${name}`);
  run(require, module, module.exports);
  return "default" in module.exports ? module.exports.default : module.exports;
}

/** Loads one plugin's descriptors from a path or URL (module or bundle). */
export async function loadPluginDescriptors(spec: string): Promise<PluginDescriptor[]> {
  const url = pluginUrl(spec);
  let exported: unknown;
  let text: string | undefined;
  try {
    text = await readText(url);
  } catch (e) {
    if (url.protocol === "file:") throw e;
    // A remote module that is not text we can read is left to import().
  }
  if (text !== undefined && text.startsWith(BUNDLE_MARKER)) {
    exported = await evaluateBundle(text, url.href);
  } else {
    const mod = await import(url.href) as { default?: unknown };
    exported = mod.default;
  }
  if (exported === undefined || exported === null) throw new Error("it has no default export");
  const list = Array.isArray(exported) ? exported : [exported];
  for (const d of list) {
    if (!d || typeof d !== "object") throw new Error("its default export is not a descriptor");
    const problem = apiVersionProblem(d as PluginDescriptor);
    if (problem) throw new Error(problem);
  }
  return list as PluginDescriptor[];
}

/**
 * Loads every plugin of `specs` into `registry`. A plugin that fails to load, declares
 * another API version or registers a name already taken is refused with one line to
 * `warn`, and the others still load.
 *
 * @returns the specs that loaded
 */
export async function loadPlugins(
  registry: Registry,
  specs: readonly string[],
  warn: (line: string) => void,
): Promise<string[]> {
  const loaded: string[] = [];
  for (const spec of specs) {
    try {
      registry.addGroup(await loadPluginDescriptors(spec), spec);
      loaded.push(spec);
    } catch (e) {
      const message = errorChainMessage(e).split("\n")[0];
      warn(`plugin '${spec}' refused: ${message}`);
    }
  }
  return loaded;
}
