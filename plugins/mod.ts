// The built-in plugins, imported statically so `deno compile` embeds every one

import type { PluginDescriptor } from "../core/plugin.ts";

/** Every built-in plugin descriptor, in the order help listings show them. */
export const BUILTIN_PLUGINS: readonly PluginDescriptor[] = [];
