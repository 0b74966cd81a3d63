// The built-in plugins, imported statically so `deno compile` embeds every one

import type { PluginDescriptor } from "../core/plugin.ts";
import { BLOCK_PLUGINS } from "./block.ts";
import x86 from "./cpus/x86/mod.ts";
import kvm from "./cpus/kvm/mod.ts";
import { DEVICE_PLUGINS } from "./devices/mod.ts";
import pcMachine from "./machines/pc.ts";
import { NETDEV_PLUGINS } from "./netdevs/mod.ts";

/** Every built-in plugin descriptor, in the order help listings show them. */
export const BUILTIN_PLUGINS: readonly PluginDescriptor[] = [
  ...BLOCK_PLUGINS,
  x86,
  kvm,
  ...DEVICE_PLUGINS,
  pcMachine,
  ...NETDEV_PLUGINS,
];
