// The VGA adapters: `VGA` (std, with Bochs VBE) and `cirrus-vga`, and the pieces they share

import type { DeviceDescriptor } from "../../../core/plugin.ts";
import cirrusVga from "./cirrus.ts";
import stdVga from "./std_vga.ts";

export { BochsDispi } from "./vbe.ts";
export { CIRRUS_ROM, CirrusCore, CirrusVga } from "./cirrus.ts";
export { StdVga, STDVGA_ROM } from "./std_vga.ts";
export { VgaCore } from "./vga_core.ts";
export { VgaConsole, type VgaScreenMode } from "./vga_render.ts";

/** The VGA device descriptors, for plugins/devices/mod.ts. */
export const VGA_PLUGINS: readonly DeviceDescriptor[] = [stdVga, cirrusVga];
