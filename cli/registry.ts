// Builds the process's plugin registry: the built-ins plus any `--plugin FILE`

import { UsageError } from "../core/errors.ts";
import { type PluginDescriptor, Registry } from "../core/plugin.ts";

/**
 * A registry with the built-in plugins and the external plugin files given. `builtins`
 * "block" loads only the protocols and formats (all the `img` face uses), so `img`
 * starts without loading the CPU, devices and machines.
 */
export async function buildRegistry(
  pluginFiles: readonly string[] = [],
  builtins: "all" | "block" = "all",
): Promise<Registry> {
  // String literals, so `deno compile` embeds both and `deno info` lists every plugin.
  const plugins = builtins === "block"
    ? (await import("../plugins/block.ts")).BLOCK_PLUGINS
    : (await import("../plugins/mod.ts")).BUILTIN_PLUGINS;
  const registry = new Registry().addAll(plugins);
  for (const file of pluginFiles) {
    // Imported here, not at the top: node: modules cost more start-up time than vmkit's own.
    const { resolve } = await import("node:path");
    const { pathToFileURL } = await import("node:url");
    let mod: { default?: PluginDescriptor | PluginDescriptor[] };
    try {
      mod = await import(pathToFileURL(resolve(file)).href);
    } catch (e) {
      throw new UsageError(`Could not load plugin '${file}'`, { cause: e });
    }
    const exported = mod.default;
    if (!exported) throw new UsageError(`Plugin '${file}' has no default export`);
    try {
      for (const d of Array.isArray(exported) ? exported : [exported]) registry.add(d);
    } catch (e) {
      throw new UsageError(`Could not register plugin '${file}'`, { cause: e });
    }
  }
  return registry;
}
