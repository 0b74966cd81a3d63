// The built-in block plugins (protocols and image formats): all the `img` face loads

import type { PluginDescriptor } from "../core/plugin.ts";
import qcow2 from "./formats/qcow2/mod.ts";
import raw from "./formats/raw.ts";
import vdi from "./formats/vdi.ts";
import vpc from "./formats/vpc/mod.ts";
import vmdk from "./formats/vmdk/mod.ts";
import vhdx from "./formats/vhdx/mod.ts";
import qcow from "./formats/qcow/mod.ts";
import file from "./protocols/file.ts";
import hostDevice from "./protocols/host_device.ts";

/** The protocol and format plugins, in the order help listings show them. */
export const BLOCK_PLUGINS: readonly PluginDescriptor[] = [
  file,
  hostDevice,
  raw,
  qcow2,
  vdi,
  vpc,
  vmdk,
  vhdx,
  qcow,
];
