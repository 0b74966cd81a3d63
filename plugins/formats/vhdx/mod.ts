// The vhdx format plugin: Hyper-V VHDX images, dynamic and fixed, with log replay

import type { BlockNode, CreateContext } from "../../../core/block/driver.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import { probeVhdx, VHDX_CREATE_OPTIONS } from "./probe.ts";

export type { VhdxNode } from "./node.ts";
export { VHDX_CREATE_OPTIONS } from "./probe.ts";

/** Runtime options: only the check mode `img check` sets. */
export const VHDX_OPEN_OPTIONS: readonly OptionSpec[] = [
  {
    name: "x-check",
    type: "bool",
    help: "Open for check (qemu-img check): BAT entries past the end of the file are reported, " +
      "not refused",
    hidden: true,
  },
];

/** The vhdx image format (Hyper-V). */
export default {
  kind: "format",
  name: "vhdx",
  summary: "Hyper-V VHDX image format",
  options: VHDX_CREATE_OPTIONS,
  openOptions: VHDX_OPEN_OPTIONS,
  probe: probeVhdx,
  // The header and create code load with the first create or open: probing skips them.
  create: async (filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) =>
    (await import("./create.ts")).createVhdx(filename, sizeBytes, opts, ctx),
  // The node code loads with the first open: probing and `img info` on other formats skip it.
  open: async (file: BlockNode, opts: ParsedOptions) =>
    (await import("./node.ts")).openVhdx(file, opts),
} satisfies FormatDescriptor;
