// Creating a VHDX image with the layout qemu-img 7.2 writes

import type { CreateContext } from "../../../core/block/driver.ts";
import { UsageError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import {
  batGeometry,
  batIndex,
  encodeFileIdentifier,
  encodeHeader,
  encodeMetadata,
  encodeRegionTable,
  MiB,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_ZERO,
  randomGuid,
  VHDX_BLOCK_SIZE_MAX,
  VHDX_FILE_ID_OFFSET,
  VHDX_HEADER1_OFFSET,
  VHDX_HEADER2_OFFSET,
  VHDX_HEADER_FIELDS_SIZE,
  VHDX_HEADER_SECTION_END,
  VHDX_MAX_IMAGE_SIZE,
  VHDX_METADATA_ITEMS_OFFSET,
  VHDX_REGION_TABLE2_OFFSET,
  VHDX_REGION_TABLE_OFFSET,
} from "./header.ts";
import { VHDX_CREATE_OPTIONS } from "./probe.ts";

export { VHDX_CREATE_OPTIONS };

/** The creator string in the file identifier (diagnostic only). */
const VHDX_CREATOR = "vmkit";
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** The block size QEMU picks when `block_size` is 0: larger disks get larger blocks. */
function autoBlockSize(sizeBytes: number): number {
  if (sizeBytes > 32 * TiB) return 64 * MiB;
  if (sizeBytes > 100 * GiB) return 32 * MiB;
  if (sizeBytes > GiB) return 16 * MiB;
  return 8 * MiB;
}

/** The validated create parameters. */
export interface VhdxCreateParams {
  sizeBytes: number;
  logSize: number;
  blockSize: number;
  fixed: boolean;
  zeroBlocks: boolean;
}

/** Checks and completes the create options with QEMU's rounding and messages. */
export function vhdxCreateParams(sizeBytes: number, opts: ParsedOptions): VhdxCreateParams {
  const size = Math.ceil(sizeBytes / 512) * 512;
  if (size > VHDX_MAX_IMAGE_SIZE) throw new UsageError("Image size too large; max of 64TB");
  const subformat = (opts.subformat as string | undefined) ?? "dynamic";
  if (subformat !== "dynamic" && subformat !== "fixed") {
    throw new UsageError(`Parameter 'subformat' does not accept value '${subformat}'`);
  }
  const logSize = Math.ceil(((opts.log_size as number | undefined) ?? MiB) / MiB) * MiB;
  if (logSize >= 4 * GiB) throw new UsageError("Log size must be smaller than 4 GB");
  if (logSize === 0) throw new UsageError("Log size must be a multiple of 1 MB");
  let blockSize = (opts.block_size as number | undefined) ?? 0;
  if (blockSize === 0) blockSize = autoBlockSize(size);
  blockSize = Math.min(Math.ceil(blockSize / MiB) * MiB, VHDX_BLOCK_SIZE_MAX);
  if ((blockSize & (blockSize - 1)) !== 0) {
    throw new UsageError("Block size must be a power of two");
  }
  return {
    sizeBytes: size,
    logSize,
    blockSize,
    fixed: subformat === "fixed",
    zeroBlocks: opts.block_state_zero !== false,
  };
}

/**
 * Creates a VHDX image as `qemu-img create -f vhdx` does:
 *
 * ```
 * 0      file identifier   64K header 1   128K header 2   192K region table   256K its copy
 * 1M     log (log_size)    then BAT, metadata (1M), 4 MiB to spare, payload blocks
 * ```
 *
 * A dynamic image's BAT marks every block ZERO (or leaves it NOT_PRESENT with
 * `block_state_zero=off`); a fixed one maps every block to the data area after the
 * metadata, unless `block_state_zero` marks them ZERO, as QEMU's does by default.
 */
export async function createVhdx(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const p = vhdxCreateParams(sizeBytes, opts);
  const g = batGeometry(p.sizeBytes, p.blockSize, 512);
  const batOffset = Math.ceil((VHDX_HEADER_SECTION_END + p.logSize) / MiB) * MiB;
  const batLength = Math.ceil((g.batEntries * 8) / MiB) * MiB;
  const metadataOffset = batOffset + batLength;
  const dataOffset = batOffset + batLength + 5 * MiB;

  const fileOpts = { ...opts };
  for (const o of VHDX_CREATE_OPTIONS) delete fileOpts[o.name];
  await ctx.createFile(filename, 0, fileOpts);
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    await file.truncate(p.fixed ? dataOffset + p.sizeBytes : dataOffset);
    await file.write(VHDX_FILE_ID_OFFSET, encodeFileIdentifier(VHDX_CREATOR));
    // Two headers, the second current; QEMU starts the sequence at a random 32-bit number.
    const sequenceNumber = crypto.getRandomValues(new Uint32Array(1))[0];
    const header = {
      sequenceNumber,
      fileWriteGuid: randomGuid(),
      dataWriteGuid: randomGuid(),
      logGuid: new Uint8Array(16),
      logVersion: 0,
      version: 1,
      logLength: p.logSize,
      logOffset: VHDX_HEADER_SECTION_END,
    };
    await file.write(
      VHDX_HEADER1_OFFSET,
      encodeHeader(header).subarray(0, VHDX_HEADER_FIELDS_SIZE),
    );
    await file.write(
      VHDX_HEADER2_OFFSET,
      encodeHeader({ ...header, sequenceNumber: sequenceNumber + 1 }).subarray(
        0,
        VHDX_HEADER_FIELDS_SIZE,
      ),
    );
    const table = encodeRegionTable({
      bat: { offset: batOffset, length: batLength },
      metadata: { offset: metadataOffset, length: MiB },
    });
    if (p.fixed || p.zeroBlocks) {
      const bat = new Uint8Array(batLength);
      const v = new DataView(bat.buffer);
      for (let block = 0; block < g.dataBlocks; block++) {
        const i = batIndex(g, block);
        if (p.zeroBlocks) {
          // A ZERO entry's offset field is reserved: Hyper-V refuses a non-zero one.
          v.setUint32(i * 8, PAYLOAD_BLOCK_ZERO, true);
        } else {
          const at = dataOffset + block * p.blockSize;
          v.setUint32(i * 8, ((at % 2 ** 32) | PAYLOAD_BLOCK_FULLY_PRESENT) >>> 0, true);
          v.setUint32(i * 8 + 4, Math.floor(at / 2 ** 32), true);
        }
      }
      await file.write(batOffset, bat);
    }
    await file.write(VHDX_REGION_TABLE_OFFSET, table);
    await file.write(VHDX_REGION_TABLE2_OFFSET, table);
    const md = encodeMetadata({
      blockSize: p.blockSize,
      fixed: p.fixed,
      hasParent: false,
      virtualDiskSize: p.sizeBytes,
      logicalSectorSize: 512,
      physicalSectorSize: 512,
      page83: randomGuid(),
    });
    await file.write(metadataOffset, md.table);
    await file.write(metadataOffset + VHDX_METADATA_ITEMS_OFFSET, md.items);
    await file.flush();
  } finally {
    await file.close();
  }
}
