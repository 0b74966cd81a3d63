// Builds the process's plugin registry: the built-ins plus external plugins (`--plugin`,
// `VMKIT_PLUGINS`), each refused with one line when it cannot load

import { Registry } from "../core/plugin.ts";

/** Options of {@linkcode buildRegistry}. */
export interface BuildRegistryOptions {
  /** Prints a refused plugin's line (`plugin 'x.ts' refused: ...`); silent when absent. */
  warn?: (line: string) => void;
  /** The `VMKIT_PLUGINS` value (paths separated by `:`), loaded before `pluginSpecs`. */
  envPlugins?: string;
  /**
   * Which built-ins: "block" loads only the protocols and formats (all the `img` face
   * uses), so `img` starts without loading the CPU, devices and machines.
   */
  builtins?: "all" | "block";
}

/** A registry with the built-in plugins and the external plugins given (paths or URLs). */
export async function buildRegistry(
  pluginSpecs: readonly string[] = [],
  options: BuildRegistryOptions = {},
): Promise<Registry> {
  // String literals, so `deno compile` embeds both and `deno info` lists every plugin.
  const plugins = options.builtins === "block"
    ? (await import("../plugins/block.ts")).BLOCK_PLUGINS
    : (await import("../plugins/mod.ts")).BUILTIN_PLUGINS;
  const registry = new Registry().addAll(plugins);
  if (pluginSpecs.length === 0 && !options.envPlugins) return registry;
  // Loaded only when there is a plugin to load: its node: modules cost start-up time.
  const { loadPlugins, splitPluginList } = await import("./plugin_loader.ts");
  const specs = [...splitPluginList(options.envPlugins ?? ""), ...pluginSpecs];
  if (specs.length > 0) await loadPlugins(registry, specs, options.warn ?? (() => {}));
  return registry;
}
