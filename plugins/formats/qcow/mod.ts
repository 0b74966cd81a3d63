// The qcow format plugin: QEMU's original copy-on-write image (version 1): read, write, create

import type { BlockNode, CreateContext, OpenContext } from "../../../core/block/driver.ts";
import { NotSupportedError } from "../../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import { encodeQcowHeader, probeQcow, QCOW_CRYPT_NONE, QCOW_HEADER_SIZE } from "./header.ts";

export type { QcowNode } from "./node.ts";

/** Create options, in QEMU's declaration order (`-o help` sorts them). */
export const QCOW_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Format of the backing image" },
  {
    name: "encryption",
    type: "bool",
    help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)",
  },
  { name: "encrypt.format", type: "string", help: "Encrypt the image, format choices: 'aes'" },
  {
    name: "encrypt.key-secret",
    type: "string",
    help: "ID of the secret that provides the AES encryption key",
  },
];

/**
 * Creates an empty qcow image as `qemu-img create -f qcow` does: the header, the
 * backing file name after it, and a zeroed L1 table written in whole sectors.
 * Clusters are 4 KiB (512 bytes with a backing file, which QEMU picks to keep
 * copy-on-write small); the backing format is not stored, qcow has no field for it.
 */
export async function createQcow(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  if (opts.encryption === true || opts["encrypt.format"] !== undefined) {
    throw new NotSupportedError("Encrypted qcow images are not supported");
  }
  const size = Math.ceil(sizeBytes / 512) * 512;
  const backing = opts.backing_file === undefined ? "" : String(opts.backing_file);
  const name = new TextEncoder().encode(backing);
  const [clusterBits, l2Bits] = backing ? [9, 12] : [12, 9];
  const l1TableOffset = Math.ceil((QCOW_HEADER_SIZE + name.length) / 8) * 8;
  const l1Bytes = Math.ceil(size / 2 ** (clusterBits + l2Bits)) * 8;
  const header = encodeQcowHeader({
    backingFileOffset: backing ? QCOW_HEADER_SIZE : 0,
    backingFileSize: name.length,
    mtime: 0,
    sizeBytes: size,
    clusterBits,
    l2Bits,
    cryptMethod: QCOW_CRYPT_NONE,
    l1TableOffset,
  });
  const fileOpts = { ...opts };
  for (const o of QCOW_CREATE_OPTIONS) delete fileOpts[o.name];
  await ctx.createFile(filename, 0, fileOpts);
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    await file.write(0, header);
    if (backing) await file.write(QCOW_HEADER_SIZE, name);
    const l1 = new Uint8Array(Math.ceil(l1Bytes / 512) * 512);
    if (l1.length) await file.write(l1TableOffset, l1);
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The qcow image format (version 1). */
export default {
  kind: "format",
  name: "qcow",
  summary: "QEMU copy-on-write image, version 1",
  options: QCOW_CREATE_OPTIONS,
  supportsBacking: true,
  probe: probeQcow,
  create: createQcow,
  // The node code loads with the first open: probing and `img info` on other formats skip it.
  open: async (file: BlockNode, _opts: ParsedOptions, ctx: OpenContext) =>
    (await import("./node.ts")).openQcow(file, ctx),
} satisfies FormatDescriptor;
