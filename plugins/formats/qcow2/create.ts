// qcow2 image creation: create options, validation with QEMU's messages, and the initial layout

import type { CreateContext, OpenContext, Preallocation } from "../../../core/block/driver.ts";
import { ImageFormatError, NotSupportedError, OptionError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import {
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_COMPRESSION_TYPE_ZLIB,
  QCOW2_COMPRESSION_TYPE_ZSTD,
  QCOW2_INCOMPAT_COMPRESSION,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_EXTL2,
  type Qcow2Header,
  QCOW_MAX_L1_SIZE,
  serializeHeader,
} from "./header.ts";
import { Layout } from "./layout.ts";
import { openQcow2 } from "./open.ts";
import { QCOW2_CREATE_OPTIONS } from "./options.ts";

export { QCOW2_CREATE_OPTIONS };

/** The validated settings of a new image. */
export interface CreateSettings {
  version: number;
  clusterBits: number;
  refcountOrder: number;
  extendedL2: boolean;
  lazyRefcounts: boolean;
  compressionType: number;
  preallocation: Preallocation;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  dataFileRaw: boolean;
}

/** Reads and checks create options with QEMU's messages. */
export function createSettings(sizeBytes: number, opts: ParsedOptions): CreateSettings {
  const compat = opts.compat === undefined ? "1.1" : String(opts.compat);
  let version: number;
  if (compat === "0.10" || compat === "v2") version = 2;
  else if (compat === "1.1" || compat === "v3") version = 3;
  else throw new OptionError(`Invalid compatibility level: '${compat}'`);
  const clusterSize = typeof opts.cluster_size === "number" ? opts.cluster_size : 65536;
  if (
    clusterSize < 512 || clusterSize > 2 * 1024 * 1024 || (clusterSize & (clusterSize - 1)) !== 0
  ) {
    throw new OptionError("Cluster size must be a power of two between 512 and 2048k");
  }
  const clusterBits = Math.log2(clusterSize);
  const extendedL2 = opts.extended_l2 === true;
  if (extendedL2) {
    if (version < 3) {
      throw new OptionError(
        "Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)",
      );
    }
    if (clusterSize < 16384) {
      throw new OptionError(
        "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes",
      );
    }
  }
  const backingFile = opts.backing_file === undefined ? undefined : String(opts.backing_file);
  const backingFormat = opts.backing_fmt === undefined ? undefined : String(opts.backing_fmt);
  if (backingFormat !== undefined && backingFile === undefined) {
    throw new OptionError("Backing format cannot be used without backing file");
  }
  const preallocation = (opts.preallocation ?? "off") as Preallocation;
  if (backingFile !== undefined && preallocation !== "off" && !extendedL2) {
    throw new OptionError(
      "Backing file and preallocation can only be used at the same time if extended_l2 is on",
    );
  }
  const lazyRefcounts = opts.lazy_refcounts === true;
  if (lazyRefcounts && version < 3) {
    throw new OptionError(
      "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)",
    );
  }
  const refcountBits = typeof opts.refcount_bits === "number" ? opts.refcount_bits : 16;
  if (refcountBits < 1 || refcountBits > 64 || (refcountBits & (refcountBits - 1)) !== 0) {
    throw new OptionError("Refcount width must be a power of two and may not exceed 64 bits");
  }
  if (version < 3 && refcountBits !== 16) {
    throw new OptionError(
      "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)",
    );
  }
  const dataFile = opts.data_file === undefined ? undefined : String(opts.data_file);
  const dataFileRaw = opts.data_file_raw === true;
  if (dataFileRaw && dataFile === undefined) {
    throw new OptionError("data-file-raw requires data-file");
  }
  if (dataFileRaw && backingFile !== undefined) {
    throw new OptionError("Backing file and data-file-raw cannot be used at the same time");
  }
  if (dataFile !== undefined && version < 3) {
    throw new OptionError(
      "External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)",
    );
  }
  const compressionType = opts.compression_type === "zstd"
    ? QCOW2_COMPRESSION_TYPE_ZSTD
    : QCOW2_COMPRESSION_TYPE_ZLIB;
  if (compressionType !== QCOW2_COMPRESSION_TYPE_ZLIB && version < 3) {
    throw new OptionError(
      "Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)",
    );
  }
  if (opts.encryption === true || opts["encrypt.format"] !== undefined) {
    throw new NotSupportedError("qcow2 encryption is not supported by vmkit");
  }
  const layout = new Layout(clusterBits, Math.log2(refcountBits), extendedL2);
  if (layout.l1EntriesFor(sizeBytes) > QCOW_MAX_L1_SIZE / 8) {
    throw new OptionError(
      "The image size is too large for file format 'qcow2' (try using a larger cluster size)",
    );
  }
  return {
    version,
    clusterBits,
    refcountOrder: Math.log2(refcountBits),
    extendedL2,
    lazyRefcounts,
    compressionType,
    preallocation,
    backingFile,
    backingFormat,
    dataFile,
    dataFileRaw,
  };
}

/**
 * Creates a qcow2 image as QEMU's `qcow2_co_create`: an empty image (header,
 * refcount table and one refcount block in clusters 0-2), then grown to
 * `sizeBytes` through the normal resize path, which places the L1 table.
 */
export async function createQcow2(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const settings = createSettings(Math.max(sizeBytes, 0), opts);
  // A raw external data file must map 1:1 from the start (QEMU forces this too).
  if (settings.dataFileRaw && settings.preallocation === "off") settings.preallocation = "metadata";
  let size = sizeBytes;
  // The backing file is opened only when it must give the size or its format (qemu-img
  // create checks it before, unless -u): an explicit size never needs it.
  const sizeGiven = size > 0 || (size === 0 && opts.size !== undefined);
  if (
    settings.backingFile !== undefined && (!sizeGiven || settings.backingFormat === undefined)
  ) {
    const resolved = ctx.resolveBacking(filename, settings.backingFile);
    const backing = await ctx.openImage(resolved, {
      format: settings.backingFormat,
      readOnly: true,
      noBacking: false,
    });
    try {
      if (settings.backingFormat === undefined) {
        throw new ImageFormatError(
          `Backing file specified without backing format\nDetected format of ${backing.driver}.`,
        );
      }
      if (size < 0 || (size === 0 && opts.size === undefined)) size = backing.size();
    } finally {
      await backing.close();
    }
  }
  // qcow2_co_create_opts rounds the size up to a whole sector (blockdev-create would refuse it).
  size = Math.ceil(Math.max(size, 0) / 512) * 512;
  const fileOpts: ParsedOptions = { ...opts };
  delete fileOpts.preallocation;
  await ctx.createFile(filename, 0, fileOpts);
  if (settings.dataFile !== undefined) {
    await ctx.createFile(ctx.resolveBacking(filename, settings.dataFile), size, {});
  }
  const cs = 2 ** settings.clusterBits;
  const layout = new Layout(settings.clusterBits, settings.refcountOrder, settings.extendedL2);
  let incompatible = 0n;
  if (settings.dataFile !== undefined) incompatible |= QCOW2_INCOMPAT_DATA_FILE;
  if (settings.compressionType !== 0) incompatible |= QCOW2_INCOMPAT_COMPRESSION;
  if (settings.extendedL2) incompatible |= QCOW2_INCOMPAT_EXTL2;
  const header: Qcow2Header = {
    version: settings.version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: settings.clusterBits,
    size: 0,
    cryptMethod: 0,
    l1Size: 0,
    l1TableOffset: 0,
    refcountTableOffset: cs,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: incompatible,
    compatibleFeatures: settings.lazyRefcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0n,
    autoclearFeatures: settings.dataFileRaw ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0n,
    refcountOrder: settings.refcountOrder,
    headerLength: 0,
    compressionType: settings.compressionType,
    unknownHeaderFields: new Uint8Array(0),
    backingFile: settings.backingFile,
    backingFormat: settings.backingFile !== undefined ? settings.backingFormat : undefined,
    dataFile: settings.dataFile,
    featureTable: [],
    unknownExtensions: [],
  };
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    const reftable = new Uint8Array(cs);
    new DataView(reftable.buffer).setUint32(4, 2 * cs);
    const refblock = new Uint8Array(cs);
    const rb = new DataView(refblock.buffer);
    // Clusters 0-2 (header, refcount table, refcount block) are in use.
    for (let i = 0; i < 3; i++) writeOne(rb, i, settings.refcountOrder);
    // The tables first and the header last: a crash in between leaves a file that
    // is not yet a qcow2 image, rather than a header pointing at missing tables.
    await file.write(cs, reftable);
    await file.write(2 * cs, refblock);
    await file.flush();
    await file.write(0, serializeHeader(header));
    await file.flush();
  } catch (e) {
    await file.close();
    throw e;
  }
  void layout;
  const openCtx: OpenContext = {
    options: { noBacking: true },
    openBacking: () => Promise.reject(new ImageFormatError("No backing file while creating")),
    openFile: (name, o) => ctx.openFile(ctx.resolveBacking(filename, name), o),
  };
  const node = await openQcow2(file, { "lazy-refcounts": false }, openCtx);
  try {
    await node.truncate(size, { preallocation: settings.preallocation });
    await node.flush();
  } finally {
    await node.close();
  }
}

function writeOne(view: DataView, index: number, order: number): void {
  const bits = 2 ** order;
  if (bits >= 8) {
    const bytes = bits / 8;
    view.setUint8(index * bytes + bytes - 1, 1);
    return;
  }
  const perByte = 8 / bits;
  const at = Math.floor(index / perByte);
  view.setUint8(at, view.getUint8(at) | (1 << ((index % perByte) * bits)));
}
