// Opening a VMDK image: a sparse file with an embedded descriptor, or a descriptor file and its extents

import type { BlockNode, OpenContext } from "../../../core/block/driver.ts";
import { requireSyncIo, type SyncIo } from "../../../core/block/sync_io.ts";
import { ImageFormatError, NotSupportedError } from "../../../core/errors.ts";
import {
  createTypeOf,
  DESCRIPTOR_CREATE_TYPES,
  descriptorText,
  type ExtentLine,
  parentFileNameHint,
  parseExtentLines,
  readCid,
} from "./descriptor.ts";
import { type Extent, flatExtent, SparseExtent } from "./extent.ts";
import {
  DESC_SIZE,
  magicOf,
  MARKER_END_OF_STREAM,
  MARKER_FOOTER,
  parseMarker,
  parseVmdk3Header,
  parseVmdk4Header,
  SECTOR_SIZE,
  VMDK3_MAGIC,
  VMDK4_COMPRESSION_DEFLATE,
  VMDK4_FLAG_MARKER,
  VMDK4_FLAG_RGD,
  VMDK4_FLAG_ZERO_GRAIN,
  VMDK4_GD_AT_END,
  VMDK4_HEADER_BYTES,
  VMDK4_MAGIC,
} from "./header.ts";
import { VmdkNode } from "./node.ts";

/** QEMU reads at most this much of a file looking for a descriptor (1 MiB - 1). */
const MAX_DESC_READ = (1 << 20) - 1;
/** Entries per grain table of an ESX COWD extent. */
const VMDK3_L2_SIZE = 4096;
/** Where QEMU looks for the CID of a sparse file: the descriptor right after the header. */
const SPARSE_DESC_OFFSET = 0x200;

/** The first bytes of a file, as QEMU's vmdk_read_desc reads them. */
function readHead(io: SyncIo, file: BlockNode, offset = 0): Uint8Array {
  const size = file.size();
  if (size < 4) throw new ImageFormatError("File is too small, not a valid image");
  const buf = new Uint8Array(Math.min(size, MAX_DESC_READ));
  io.readSync(offset, buf);
  return buf;
}

/** A sparse extent's header says where its tables are; this reads them. */
function openSparse(
  file: BlockNode,
  io: SyncIo,
  head: Uint8Array,
  typeName: string,
  readOnly: boolean,
): SparseExtent {
  const magic = magicOf(head);
  if (magic === VMDK3_MAGIC) {
    const h = parseVmdk3Header(head);
    if (h.granularity === 0) {
      throw new ImageFormatError("Invalid granularity, image may be corrupt");
    }
    return new SparseExtent(file, io, {
      sectors: h.diskSectors,
      l1OffsetBytes: h.l1dirOffset * SECTOR_SIZE,
      l1BackupOffsetBytes: 0,
      l1Size: h.l1dirSize,
      l2Size: VMDK3_L2_SIZE,
      clusterSectors: h.granularity,
      compressed: false,
      hasMarker: false,
      hasZeroGrain: false,
      version: 0,
    }, typeName);
  }
  if (magic !== VMDK4_MAGIC) throw new ImageFormatError("Image not in VMDK format");
  let h = parseVmdk4Header(head);
  if (h.gdOffset === VMDK4_GD_AT_END) {
    // A stream keeps its real header in the footer: a footer marker, the header sector,
    // then the end-of-stream marker (VMDK 5.0 spec, "Stream-Optimized Compressed Sparse Extents").
    const footer = new Uint8Array(3 * SECTOR_SIZE);
    const fileEnd = Math.ceil(file.size() / SECTOR_SIZE) * SECTOR_SIZE;
    if (fileEnd < footer.length) throw new ImageFormatError("Invalid footer");
    io.readSync(fileEnd - footer.length, footer);
    const footerMarker = parseMarker(footer);
    const eos = parseMarker(footer.subarray(2 * SECTOR_SIZE));
    const inner = footer.subarray(SECTOR_SIZE, SECTOR_SIZE + VMDK4_HEADER_BYTES);
    if (
      magicOf(inner) !== VMDK4_MAGIC || footerMarker.size !== 0 ||
      footerMarker.type !== MARKER_FOOTER || eos.value !== 0n || eos.size !== 0 ||
      eos.type !== MARKER_END_OF_STREAM
    ) {
      throw new ImageFormatError("Invalid footer");
    }
    h = parseVmdk4Header(inner);
  }
  const compressed = h.compressAlgorithm === VMDK4_COMPRESSION_DEFLATE;
  if (h.version > 3) throw new ImageFormatError(`Unsupported VMDK version ${h.version}`);
  if (h.version === 3 && !readOnly && !compressed) {
    // Version 3 added changed block tracking; reading it as version 1 is safe, writing is not.
    throw new ImageFormatError("VMDK version 3 must be read only");
  }
  if (h.numGtesPerGt > 512) throw new ImageFormatError("L2 table size too big");
  // QEMU keeps the product in 32 bits; a product that wraps to 0 is refused as it is.
  const l1EntrySectors = (BigInt(h.numGtesPerGt) * h.granularity) & 0xffffffffn;
  if (l1EntrySectors === 0n) throw new ImageFormatError("L1 entry size is invalid");
  if (h.capacity * BigInt(SECTOR_SIZE) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ImageFormatError(`Image capacity of ${h.capacity} sectors is too large`);
  }
  if (h.granularity > 0x200000n) {
    throw new ImageFormatError("Invalid granularity, image may be corrupt");
  }
  const l1Size = Number((h.capacity + l1EntrySectors - 1n) / l1EntrySectors);
  const fileSectors = Math.ceil(file.size() / SECTOR_SIZE);
  if (BigInt(fileSectors) < h.grainOffset) {
    throw new ImageFormatError(
      `File truncated, expecting at least ${h.grainOffset * BigInt(SECTOR_SIZE)} bytes`,
    );
  }
  const tableEnd = (h.gdOffset + BigInt(Math.ceil(l1Size * 4 / SECTOR_SIZE))) *
    BigInt(SECTOR_SIZE);
  if (tableEnd > BigInt(Number.MAX_SAFE_INTEGER) || h.rgdOffset > 2n ** 40n) {
    throw new ImageFormatError("Grain directory offset is out of range");
  }
  return new SparseExtent(file, io, {
    sectors: Number(h.capacity),
    l1OffsetBytes: Number(h.gdOffset) * SECTOR_SIZE,
    l1BackupOffsetBytes: h.flags & VMDK4_FLAG_RGD ? Number(h.rgdOffset) * SECTOR_SIZE : 0,
    l1Size,
    l2Size: h.numGtesPerGt,
    clusterSectors: Number(h.granularity),
    compressed,
    hasMarker: (h.flags & VMDK4_FLAG_MARKER) !== 0,
    hasZeroGrain: (h.flags & VMDK4_FLAG_ZERO_GRAIN) !== 0,
    version: h.version,
  }, typeName);
}

/** Opens the extent files a descriptor lists, relative to the descriptor's directory. */
async function openExtents(
  lines: ExtentLine[],
  readOnly: boolean,
  ctx: OpenContext,
  opened: BlockNode[],
): Promise<Extent[]> {
  const extents: Extent[] = [];
  for (const line of lines) {
    if (line.type === "SESPARSE") {
      throw new NotSupportedError("seSparse extents are not supported");
    }
    const file = await ctx.openFile(line.filename, { readOnly, mustExist: true });
    opened.push(file);
    const io = requireSyncIo(file, "vmdk");
    if (line.type === "FLAT" || line.type === "VMFS") {
      extents.push(
        flatExtent(file, io, line.sectors, line.flatOffsetSectors * SECTOR_SIZE, line.type),
      );
    } else {
      // A sparse extent's size comes from its own header, not from the descriptor line.
      extents.push(openSparse(file, io, readHead(io, file), line.type, readOnly));
    }
  }
  return extents;
}

/** Opens a VMDK image that sits on `file`. */
export async function openVmdk(file: BlockNode, ctx: OpenContext): Promise<VmdkNode> {
  const io = requireSyncIo(file, "vmdk");
  const readOnly = file.readOnly;
  const head = readHead(io, file);
  const magic = magicOf(head);
  const opened: BlockNode[] = [];
  try {
    let extents: Extent[];
    let createType: string;
    let descOffset: number;
    if (magic === VMDK4_MAGIC || magic === VMDK3_MAGIC) {
      const h = magic === VMDK4_MAGIC ? parseVmdk4Header(head) : undefined;
      if (h && h.capacity === 0n && h.descOffset !== 0n) {
        // A header with no data of its own that points at a descriptor: extents are elsewhere.
        const desc = descriptorText(readHead(io, file, Number(h.descOffset) * SECTOR_SIZE));
        ({ extents, createType } = await descriptorExtents(desc, readOnly, ctx, opened));
      } else {
        extents = [openSparse(file, io, head, "", readOnly)];
        createType = "monolithicSparse";
      }
      descOffset = SPARSE_DESC_OFFSET;
    } else {
      const desc = descriptorText(head);
      ({ extents, createType } = await descriptorExtents(desc, readOnly, ctx, opened));
      descOffset = 0;
    }
    if (extents.some((e) => !e.flat && e.layout.compressed)) createType = "streamOptimized";
    const descBytes = new Uint8Array(DESC_SIZE);
    io.readSync(descOffset, descBytes);
    const desc = descriptorText(descBytes);
    const parentFileName = parentFileNameHint(desc);
    const cid = readCid(desc, false);
    const parentCid = readCid(desc, true);
    let backing: BlockNode | null = null;
    if (parentFileName !== undefined && !ctx.options.noBacking) {
      backing = await ctx.openBacking(parentFileName, "vmdk");
    }
    return new VmdkNode({
      file,
      io,
      extents,
      extraFiles: opened.filter((f) => f !== file),
      createType,
      descOffset,
      cid,
      parentCid,
      parentFileName,
      backing,
    });
  } catch (e) {
    for (const f of opened) await f.close().catch(() => {});
    throw e;
  }
}

async function descriptorExtents(
  desc: string,
  readOnly: boolean,
  ctx: OpenContext,
  opened: BlockNode[],
): Promise<{ extents: Extent[]; createType: string }> {
  const createType = createTypeOf(desc);
  if (!DESCRIPTOR_CREATE_TYPES.includes(createType)) {
    throw new NotSupportedError(`Unsupported image type '${createType}'`);
  }
  const extents = await openExtents(parseExtentLines(desc), readOnly, ctx, opened);
  return { extents, createType };
}
