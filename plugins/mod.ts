// The built-in plugins, imported statically so `deno compile` embeds every one

import type { PluginDescriptor } from "../core/plugin.ts";
import raw from "./formats/raw.ts";
import file from "./protocols/file.ts";

/** Every built-in plugin descriptor, in the order help listings show them. */
export const BUILTIN_PLUGINS: readonly PluginDescriptor[] = [
  file,
  raw,
];
