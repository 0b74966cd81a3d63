// The vmdk create options: what the descriptor declares without loading the create code

import type { OptionSpec } from "../../../core/options.ts";

/**
 * Create options, in the order QEMU declares them (that is the order of the
 * `Formatting ...` line; `-o help` sorts them by name).
 */
export const VMDK_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  {
    name: "adapter_type",
    type: "string",
    help: "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX",
  },
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Must be 'vmdk' if present" },
  { name: "compat6", type: "bool", help: "VMDK version 6 image", default: false },
  { name: "hwversion", type: "string", help: "VMDK hardware version", default: "undefined" },
  { name: "toolsversion", type: "string", help: "VMware guest tools version" },
  {
    name: "subformat",
    type: "string",
    help:
      "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} ",
  },
  {
    name: "zeroed_grain",
    type: "bool",
    help: "Enable efficient zero writes using the zeroed-grain GTE feature",
  },
];
