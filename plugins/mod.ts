// The built-in plugins, imported statically so `deno compile` embeds every one

import type { PluginDescriptor } from "../core/plugin.ts";
import x86 from "./cpus/x86/mod.ts";
import kvm from "./cpus/kvm/mod.ts";
import { DEVICE_PLUGINS } from "./devices/mod.ts";
import qcow2 from "./formats/qcow2/mod.ts";
import raw from "./formats/raw.ts";
import vdi from "./formats/vdi.ts";
import vpc from "./formats/vpc/mod.ts";
import vmdk from "./formats/vmdk/mod.ts";
import vhdx from "./formats/vhdx/mod.ts";
import qcow from "./formats/qcow/mod.ts";
import pcMachine from "./machines/pc.ts";
import { NETDEV_PLUGINS } from "./netdevs/mod.ts";
import file from "./protocols/file.ts";

/** Every built-in plugin descriptor, in the order help listings show them. */
export const BUILTIN_PLUGINS: readonly PluginDescriptor[] = [
  file,
  raw,
  qcow2,
  vdi,
  vpc,
  vmdk,
  vhdx,
  qcow,
  x86,
  kvm,
  ...DEVICE_PLUGINS,
  pcMachine,
  ...NETDEV_PLUGINS,
];
