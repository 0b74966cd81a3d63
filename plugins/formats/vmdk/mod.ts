// The vmdk format plugin: VMware disks, sparse, flat, split and streamOptimized

import type { BlockNode, CreateContext, OpenContext } from "../../../core/block/driver.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import { probeVmdk } from "./header.ts";
import { VMDK_CREATE_OPTIONS } from "./options.ts";

export { VMDK_CREATE_OPTIONS } from "./options.ts";
export type { VmdkNode } from "./node.ts";

/** The vmdk image format (VMware Virtual Disk). */
export default {
  kind: "format",
  name: "vmdk",
  summary: "VMware virtual disk image",
  options: VMDK_CREATE_OPTIONS,
  probe: probeVmdk,
  // The create code loads with the first create: probing and opening skip it.
  create: async (filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) =>
    (await import("./create.ts")).createVmdk(filename, sizeBytes, opts, ctx),
  // The node code loads with the first open: probing and `img info` on other formats skip it.
  open: async (file: BlockNode, _opts: ParsedOptions, ctx: OpenContext) =>
    (await import("./open.ts")).openVmdk(file, ctx),
  supportsBacking: true,
  supportsCompression: true,
} satisfies FormatDescriptor;
