// Builds the process's plugin registry: the built-ins plus external plugins (`--plugin`,
// `VMKIT_PLUGINS`), each refused with one line when it cannot load

import { Registry } from "../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";
import { loadPlugins, splitPluginList } from "./plugin_loader.ts";

/** Options of {@linkcode buildRegistry}. */
export interface BuildRegistryOptions {
  /** Prints a refused plugin's line (`plugin 'x.ts' refused: ...`); silent when absent. */
  warn?: (line: string) => void;
  /** The `VMKIT_PLUGINS` value (paths separated by `:`), loaded before `pluginSpecs`. */
  envPlugins?: string;
}

/** A registry with every built-in plugin and the external plugins given (paths or URLs). */
export async function buildRegistry(
  pluginSpecs: readonly string[] = [],
  options: BuildRegistryOptions = {},
): Promise<Registry> {
  const registry = new Registry().addAll(BUILTIN_PLUGINS);
  const specs = [...splitPluginList(options.envPlugins ?? ""), ...pluginSpecs];
  if (specs.length > 0) await loadPlugins(registry, specs, options.warn ?? (() => {}));
  return registry;
}
