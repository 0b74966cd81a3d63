// The vpc format plugin: Virtual PC / Hyper-V VHD images, dynamic and fixed

import type { BlockNode, CreateContext } from "../../../core/block/driver.ts";
import { UsageError } from "../../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import type { FormatDescriptor } from "../../../core/plugin.ts";
import {
  createGeometry,
  encodeDynamicHeader,
  encodeFooter,
  FOOTER_SIZE,
  probeVpc,
  VHD_BAT_UNUSED,
  VHD_DEFAULT_BLOCK_SIZE,
  VHD_DYNAMIC,
  VHD_FIXED,
  VHD_MAX_SECTORS,
  VHD_NO_OFFSET,
  VHD_TIMESTAMP_BASE,
} from "./footer.ts";

export type { VpcNode } from "./node.ts";

/** Create options, in the order `qemu-img create` prints them (none has a printed default). */
export const VPC_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  {
    name: "subformat",
    type: "enum",
    values: ["dynamic", "fixed"],
    help: "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ",
  },
  {
    name: "force_size",
    type: "bool",
    help:
      "Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation",
  },
];

/** Where QEMU puts the dynamic header and the BAT in a new dynamic disk. */
const DYNAMIC_HEADER_OFFSET = 512;
const BAT_OFFSET = 1536;

/** Creates a VHD image as `qemu-img create -f vpc` does. */
export async function createVpc(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const fixed = opts.subformat === "fixed";
  const { geometry, sizeBytes: diskBytes } = createGeometry(sizeBytes, opts.force_size === true);
  if (diskBytes / 512 > VHD_MAX_SECTORS) {
    throw new UsageError("The image size is too large for file format 'vpc'");
  }
  const footer = encodeFooter({
    dataOffset: fixed ? VHD_NO_OFFSET : BigInt(DYNAMIC_HEADER_OFFSET),
    timestamp: (Math.floor(Date.now() / 1000) - VHD_TIMESTAMP_BASE) >>> 0,
    // "qem2" tells readers to size the disk by Current Size, not by the (maximum) geometry.
    creatorApp: opts.force_size === true ? "qem2" : "qemu",
    originalSizeBytes: diskBytes,
    currentSizeBytes: diskBytes,
    ...geometry,
    diskType: fixed ? VHD_FIXED : VHD_DYNAMIC,
  });
  const fileOpts = { ...opts };
  delete fileOpts.size;
  delete fileOpts.subformat;
  delete fileOpts.force_size;
  if (fixed) {
    // The file protocol allocates the data area as asked (preallocation=...).
    await ctx.createFile(filename, diskBytes + FOOTER_SIZE, fileOpts);
  } else {
    await ctx.createFile(filename, 0, fileOpts);
  }
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    if (fixed) {
      await file.write(diskBytes, footer);
    } else {
      const entries = Math.ceil(diskBytes / VHD_DEFAULT_BLOCK_SIZE);
      const batBytes = Math.ceil((entries * 4) / 512) * 512;
      const header = encodeDynamicHeader({
        tableOffset: BAT_OFFSET,
        maxTableEntries: entries,
        blockSize: VHD_DEFAULT_BLOCK_SIZE,
      });
      // The BAT's padding to a sector boundary is 0xff too, as QEMU writes it.
      const bat = new Uint8Array(batBytes).fill(VHD_BAT_UNUSED & 0xff);
      await file.write(0, footer);
      await file.write(DYNAMIC_HEADER_OFFSET, header);
      await file.write(BAT_OFFSET, bat);
      await file.write(BAT_OFFSET + batBytes, footer);
    }
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The vpc image format (VHD). */
export default {
  kind: "format",
  name: "vpc",
  summary: "Virtual PC image format",
  options: VPC_CREATE_OPTIONS,
  probe: probeVpc,
  create: createVpc,
  // The node code loads with the first open: probing and `img info` on other formats skip it.
  open: async (file: BlockNode) => (await import("./node.ts")).openVpc(file),
} satisfies FormatDescriptor;
