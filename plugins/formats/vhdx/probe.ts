// What the vhdx descriptor needs before any image is opened: the probe and the create options

import type { OptionSpec } from "../../../core/options.ts";

/** The signature that opens the file type identifier, at offset 0 (MS-VHDX §2.2.1). */
export const VHDX_FILE_SIGNATURE = "vhdxfile";

/** Scores a file header: 100 when it starts with the `vhdxfile` signature. */
export function probeVhdx(header: Uint8Array): number {
  if (header.length < 8) return 0;
  for (let i = 0; i < 8; i++) {
    if (header[i] !== VHDX_FILE_SIGNATURE.charCodeAt(i)) return 0;
  }
  return 100;
}

/** Create options, as `qemu-img create -f vhdx -o help` lists them (QEMU's declaration order). */
export const VHDX_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size; max of 64TB." },
  { name: "log_size", type: "size", help: "Log size; min 1MB.", default: 1048576 },
  {
    name: "block_size",
    type: "size",
    help: "Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size.",
    default: 0,
  },
  {
    name: "subformat",
    type: "string",
    help: "VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'.",
  },
  {
    name: "block_state_zero",
    type: "bool",
    help: "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  " +
      "Do not set to 'off' when using 'qemu-img convert' with subformat=dynamic.",
  },
];
