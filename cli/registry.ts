// Builds the process's plugin registry: the built-ins plus any `--plugin FILE`

import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { UsageError } from "../core/errors.ts";
import { type PluginDescriptor, Registry } from "../core/plugin.ts";
import { BUILTIN_PLUGINS } from "../plugins/mod.ts";

/** A registry with every built-in plugin and the external plugin files given. */
export async function buildRegistry(pluginFiles: readonly string[] = []): Promise<Registry> {
  const registry = new Registry().addAll(BUILTIN_PLUGINS);
  for (const file of pluginFiles) {
    let mod: { default?: PluginDescriptor | PluginDescriptor[] };
    try {
      mod = await import(pathToFileURL(path.resolve(file)).href);
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
