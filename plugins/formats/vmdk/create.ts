// Creating VMDK images in every subformat qemu-img 7.2 writes, laid out byte for byte as it does

import type { BlockNode, CreateContext } from "../../../core/block/driver.ts";
import { UsageError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { formatDescriptor } from "./descriptor.ts";
import {
  encodeVmdk4Header,
  SECTOR_SIZE,
  VMDK4_COMPRESSION_DEFLATE,
  VMDK4_FLAG_COMPRESS,
  VMDK4_FLAG_MARKER,
  VMDK4_FLAG_NL_DETECT,
  VMDK4_FLAG_RGD,
  VMDK4_FLAG_ZERO_GRAIN,
} from "./header.ts";
import type { VmdkNode } from "./node.ts";
import { VMDK_CREATE_OPTIONS } from "./options.ts";

export { VMDK_CREATE_OPTIONS };

/** The subformats `subformat=` takes. */
export const VMDK_SUBFORMATS = [
  "monolithicSparse",
  "monolithicFlat",
  "twoGbMaxExtentSparse",
  "twoGbMaxExtentFlat",
  "streamOptimized",
] as const;

/** The adapter types `adapter_type=` takes. */
export const VMDK_ADAPTER_TYPES = ["ide", "buslogic", "lsilogic", "legacyESX"] as const;

/** Split subformats put at most 2 GiB in each extent file. */
const SPLIT_BYTES = 0x80000000;
/** QEMU's new sparse extents: 64 KiB grains, 512 entries per grain table. */
const GRANULARITY_SECTORS = 128;
const GTES_PER_GT = 512;
/** The embedded descriptor: sector 1, 20 sectors long. */
const DESC_OFFSET_SECTORS = 1;
const DESC_SIZE_SECTORS = 20;
const PARENT_CID_NONE = 0xffffffff;

/** Writes a new sparse extent's header, redundant and primary grain directories and tables. */
export async function initSparseExtent(
  file: BlockNode,
  sizeBytes: number,
  compress: boolean,
  zeroedGrain: boolean,
): Promise<void> {
  const capacity = Math.floor(sizeBytes / SECTOR_SIZE);
  const grains = Math.ceil(capacity / GRANULARITY_SECTORS);
  const gtSectors = Math.ceil((GTES_PER_GT * 4) / SECTOR_SIZE);
  const gtCount = Math.ceil(grains / GTES_PER_GT);
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR_SIZE);
  const rgdOffset = DESC_OFFSET_SECTORS + DESC_SIZE_SECTORS;
  const gdOffset = rgdOffset + gdSectors + gtSectors * gtCount;
  const grainOffset =
    Math.ceil((gdOffset + gdSectors + gtSectors * gtCount) / GRANULARITY_SECTORS) *
    GRANULARITY_SECTORS;
  const header = encodeVmdk4Header({
    version: compress ? 3 : zeroedGrain ? 2 : 1,
    flags: VMDK4_FLAG_RGD | VMDK4_FLAG_NL_DETECT |
      (compress ? VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER : 0) |
      (zeroedGrain ? VMDK4_FLAG_ZERO_GRAIN : 0),
    capacity: BigInt(capacity),
    granularity: BigInt(GRANULARITY_SECTORS),
    descOffset: BigInt(DESC_OFFSET_SECTORS),
    descSize: BigInt(DESC_SIZE_SECTORS),
    numGtesPerGt: GTES_PER_GT,
    rgdOffset: BigInt(rgdOffset),
    gdOffset: BigInt(gdOffset),
    grainOffset: BigInt(grainOffset),
    compressAlgorithm: compress ? VMDK4_COMPRESSION_DEFLATE : 0,
  });
  await file.write(0, header);
  await file.truncate(grainOffset * SECTOR_SIZE);
  // Each directory lists its own copy of the grain tables, which follow it.
  const directory = (at: number) => {
    const gd = new Uint8Array(gdSectors * SECTOR_SIZE);
    const v = new DataView(gd.buffer);
    for (let i = 0; i < gtCount; i++) v.setUint32(i * 4, at + gdSectors + i * gtSectors, true);
    return gd;
  };
  await file.write(rgdOffset * SECTOR_SIZE, directory(rgdOffset));
  await file.write(gdOffset * SECTOR_SIZE, directory(gdOffset));
}

/** Splits a file name into directory (with its slash), stem and extension (with its dot). */
export function decomposeFilename(filename: string): { dir: string; stem: string; ext: string } {
  const slash = filename.lastIndexOf("/");
  const dir = filename.slice(0, slash + 1);
  const base = filename.slice(slash + 1);
  const dot = base.lastIndexOf(".");
  if (dot < 0) return { dir, stem: base, ext: "" };
  return { dir, stem: base.slice(0, dot), ext: base.slice(dot) };
}

function basename(filename: string): string {
  return filename.slice(filename.lastIndexOf("/") + 1);
}

function enumOption<T extends string>(
  value: unknown,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new UsageError(`invalid parameter value: ${value}`);
  }
  return value as T;
}

/** Creates a VMDK image as `qemu-img create -f vmdk` does. */
export async function createVmdk(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const backingFmt = opts.backing_fmt as string | undefined;
  if (backingFmt !== undefined && backingFmt !== "vmdk") {
    throw new UsageError("backing_file must be a vmdk image");
  }
  if (filename === "") throw new UsageError("No filename provided");
  const size = Math.ceil(sizeBytes / SECTOR_SIZE) * SECTOR_SIZE;
  const adapterType = enumOption(opts.adapter_type, VMDK_ADAPTER_TYPES, "ide");
  const subformat = enumOption(opts.subformat, VMDK_SUBFORMATS, "monolithicSparse");
  let hwVersion = opts.hwversion as string | undefined;
  if (hwVersion === "undefined") hwVersion = undefined;
  const compat6 = opts.compat6 === true;
  const zeroedGrain = opts.zeroed_grain === true;
  const backingFile = opts.backing_file as string | undefined;
  if (compat6) {
    if (hwVersion !== undefined) {
      throw new UsageError("compat6 cannot be enabled with hwversion set");
    }
    hwVersion = "6";
  }
  const split = subformat === "twoGbMaxExtentFlat" || subformat === "twoGbMaxExtentSparse";
  const flat = subformat === "monolithicFlat" || subformat === "twoGbMaxExtentFlat";
  const compress = subformat === "streamOptimized";
  if (flat && backingFile !== undefined) throw new UsageError("Flat image can't have backing file");
  if (flat && zeroedGrain) throw new UsageError("Flat image can't enable zeroed grain");

  let parentCid = PARENT_CID_NONE;
  if (backingFile !== undefined) {
    const backing = await ctx.openImage(ctx.resolveBacking(filename, backingFile), {
      readOnly: true,
      noBacking: true,
      forceShare: true,
    });
    try {
      if (backing.driver !== "vmdk") {
        throw new UsageError(`Invalid backing file format: ${backing.driver}. Must be vmdk`);
      }
      parentCid = (backing as VmdkNode).cid;
    } finally {
      await backing.close();
    }
  }

  // The protocol's own options (nocow, extent_size_hint) apply to every file; the files
  // start empty, so preallocation has nothing to allocate, as in QEMU.
  const fileOpts: ParsedOptions = {};
  for (const key of ["nocow", "extent_size_hint"]) {
    if (opts[key] !== undefined) fileOpts[key] = opts[key];
  }
  const { dir, stem, ext } = decomposeFilename(filename);
  const extentLines: string[] = [];
  const lineFor = (bytes: number, name: string) =>
    flat
      ? `RW ${Math.ceil(bytes / SECTOR_SIZE)} FLAT "${basename(name)}" 0`
      : `RW ${Math.ceil(bytes / SECTOR_SIZE)} SPARSE "${basename(name)}"`;
  const makeExtent = async (name: string, bytes: number) => {
    await ctx.createFile(name, 0, fileOpts);
    const f = await ctx.openFile(name, { readOnly: false });
    try {
      if (flat) await f.truncate(bytes);
      else await initSparseExtent(f, bytes, compress, zeroedGrain);
      await f.flush();
    } finally {
      await f.close();
    }
  };

  const monolithicSparse = !split && !flat;
  if (monolithicSparse) {
    await makeExtent(filename, size);
    extentLines.push(lineFor(size, filename));
  } else {
    await ctx.createFile(filename, 0, fileOpts);
    for (let created = 0, index = 1; created < size; index++) {
      const bytes = split ? Math.min(size - created, SPLIT_BYTES) : size;
      const name = split
        ? `${dir}${stem}-${flat ? "f" : "s"}${String(index).padStart(3, "0")}${ext}`
        : `${dir}${stem}-flat${ext}`;
      await makeExtent(name, bytes);
      extentLines.push(lineFor(bytes, name));
      created += bytes;
    }
  }

  const text = formatDescriptor({
    cid: crypto.getRandomValues(new Uint32Array(1))[0],
    parentCid,
    createType: subformat,
    parentFileName: backingFile,
    extentLines,
    hwVersion: hwVersion ?? "4",
    sizeBytes: size,
    adapterType,
    toolsVersion: (opts.toolsversion as string | undefined) ?? "2147483647",
  });
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    await file.write(
      monolithicSparse ? DESC_OFFSET_SECTORS * SECTOR_SIZE : 0,
      new TextEncoder().encode(text),
    );
    await file.flush();
  } finally {
    await file.close();
  }
}
