// The vmdk format plugin: VMware disks, sparse, flat, split and streamOptimized

import type { BlockNode, OpenContext } from "../../../core/block/driver.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import { createVmdk, VMDK_CREATE_OPTIONS } from "./create.ts";
import { probeVmdk } from "./header.ts";
import { openVmdk } from "./open.ts";

export { createVmdk, VMDK_CREATE_OPTIONS } from "./create.ts";
export { VmdkNode } from "./node.ts";
export { openVmdk } from "./open.ts";

/** The vmdk image format (VMware Virtual Disk). */
export default {
  kind: "format",
  name: "vmdk",
  summary: "VMware virtual disk image",
  options: VMDK_CREATE_OPTIONS,
  probe: probeVmdk,
  create: createVmdk,
  open: (file: BlockNode, _opts: ParsedOptions, ctx: OpenContext) => openVmdk(file, ctx),
  supportsBacking: true,
  supportsCompression: true,
} satisfies FormatDescriptor;
