// The qcow2 format plugin: QEMU copy-on-write images, versions 2 and 3

import type { CreateContext } from "../../../core/block/driver.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import { QCOW2_OPEN_OPTIONS } from "./cache_options.ts";
import { probe } from "./header.ts";
import { measureQcow2 } from "./measure.ts";
import { openQcow2 } from "./open.ts";
import { QCOW2_AMEND_OPTIONS, QCOW2_CREATE_OPTIONS } from "./options.ts";

export { Qcow2Node } from "./node.ts";

/** The qcow2 image format, versions 2 (compat=0.10) and 3 (compat=1.1). */
export default {
  kind: "format",
  name: "qcow2",
  summary: "QEMU copy-on-write image",
  options: QCOW2_CREATE_OPTIONS,
  openOptions: QCOW2_OPEN_OPTIONS,
  amendOptions: QCOW2_AMEND_OPTIONS,
  supportsBacking: true,
  probe,
  // Creating loads with the first create: `img info` and the guest's disk never need it.
  create: async (filename: string, sizeBytes: number, opts: ParsedOptions, ctx: CreateContext) =>
    (await import("./create.ts")).createQcow2(filename, sizeBytes, opts, ctx),
  open: openQcow2,
  measure: measureQcow2,
} satisfies FormatDescriptor;
