// Opening a qcow2 image: header, data file, tables, backing, bitmaps, as QEMU's qcow2_do_open

import type { BlockNode, OpenContext } from "../../../core/block/driver.ts";
import { ImageFormatError, IoError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import { cacheSizes } from "./cache_options.ts";
import { ClusterMap, newMapping } from "./cluster.ts";
import {
  QCOW2_AUTOCLEAR_DATA_FILE_RAW,
  QCOW2_AUTOCLEAR_MASK,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_INCOMPAT_DATA_FILE,
  QCOW2_INCOMPAT_DIRTY,
} from "./header.ts";
import {
  markClean,
  type Qcow2Image,
  writeHeader,
  writeL1Location,
  writeReftableLocation,
} from "./image.ts";
import { syncFile } from "./layout.ts";
import { Refcounts } from "./refcount.ts";
import { readCheckedHeader } from "./open_header.ts";
import { readSnapshots } from "./snapshot.ts";
import type { Qcow2Bitmaps } from "./bitmaps_store.ts";
import { loadGuestIo, Qcow2Node } from "./node.ts";

/** Opens the qcow2 image on protocol node `file`, as QEMU's `qcow2_do_open`. */
export async function openQcow2(
  file: BlockNode,
  opts: ParsedOptions,
  ctx: OpenContext,
  reuse?: { backing: BlockNode | null; dataNode: BlockNode | null; bitmaps?: Qcow2Bitmaps },
): Promise<BlockNode> {
  const io = syncFile(file);
  const readOnly = file.readOnly;
  if (!readOnly) await loadGuestIo();
  const forCheck = opts["x-check"] === true;
  const { header: h, layout } = readCheckedHeader(io, readOnly, forCheck);
  const cs = layout.clusterSize;
  const snapshots = readSnapshots(io, h.snapshotsOffset, h.nbSnapshots, cs);

  const opened: BlockNode[] = [];
  try {
    let dataNode: BlockNode | null = null;
    const hasDataFile = (h.incompatibleFeatures & QCOW2_INCOMPAT_DATA_FILE) !== 0n;
    const dataOption = typeof opts["data-file"] === "string"
      ? opts["data-file"] as string
      : undefined;
    if (hasDataFile && reuse) {
      if (!reuse.dataNode) throw new ImageFormatError("'data-file' is required for this image");
      dataNode = reuse.dataNode;
    } else if (hasDataFile) {
      const name = dataOption ?? h.dataFile;
      if (name === undefined) throw new ImageFormatError("'data-file' is required for this image");
      dataNode = await ctx.openFile(name, { readOnly, mustExist: true });
      opened.push(dataNode);
    } else if (dataOption !== undefined) {
      throw new ImageFormatError(
        "'data-file' can only be set for images with an external data file",
      );
    }
    const dataFileRaw = (h.autoclearFeatures & QCOW2_AUTOCLEAR_DATA_FILE_RAW) !== 0n;
    if (dataFileRaw && !hasDataFile) {
      throw new ImageFormatError("data-file-raw requires a data file");
    }

    const caches = cacheSizes(layout, h.size, opts);
    const headerRef = { file: io, header: h };
    const refcounts = new Refcounts(layout, io, {
      cacheEntries: caches.refcountEntries,
      location: { offset: h.refcountTableOffset, clusters: h.refcountTableClusters },
      onTableMoved: (loc) => writeReftableLocation(headerRef, loc.offset, loc.clusters),
    });
    const map = new ClusterMap(layout, io, {
      l1: { offset: h.l1TableOffset, size: h.l1Size },
      cacheEntries: caches.l2Entries,
      sliceBytes: caches.l2EntryBytes,
      hasDataFile,
      onL1Moved: (loc) => writeL1Location(headerRef, loc.offset, loc.size),
    });
    refcounts.onFreed = (offset) => {
      // A freed cluster may have held a cached table: never write it back there.
      map.cache.discard(offset);
      for (let s = map.cache.entryBytes; s < cs; s += map.cache.entryBytes) {
        map.cache.discard(offset + s);
      }
      refcounts.cache.discard(offset);
    };
    let backing: BlockNode | null = null;
    if (reuse) {
      backing = reuse.backing;
    } else if (h.backingFile !== undefined && !ctx.options.noBacking) {
      backing = await ctx.openBacking(h.backingFile, h.backingFormat);
      opened.push(backing);
    }
    const lazyOption = opts["lazy-refcounts"];
    const img: Qcow2Image = {
      layout,
      header: h,
      file: io,
      data: dataNode ? syncFile(dataNode) : io,
      hasDataFile,
      dataFileRaw,
      map,
      refcounts,
      backing,
      readOnly,
      lazy: typeof lazyOption === "boolean"
        ? lazyOption
        : (h.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) !== 0n,
      scratch: newMapping(),
      snapshots,
      decompressed: null,
    };
    if (img.lazy && h.version < 3) {
      throw new ImageFormatError(
        "Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level",
      );
    }
    // The bitmaps are read and checked before anything is written: a bad directory
    // leaves the file as it was. An extension that a program without bitmap support
    // may have made stale is ignored (with QEMU's warning), and dropped from the header
    // when the image is written.
    let bitmaps = reuse?.bitmaps;
    let staleBitmaps = false;
    if (!reuse && h.bitmapsExtension !== undefined) {
      const { bitmapsExtensionOf, Qcow2Bitmaps } = await import("./bitmaps_store.ts");
      const ext = bitmapsExtensionOf(img, ctx.report);
      staleBitmaps = ext === undefined;
      if (ext) bitmaps = Qcow2Bitmaps.load(img, ext);
    }
    if (!readOnly) {
      if ((h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) !== 0n && !forCheck) {
        const { checkImage } = await import("./check.ts");
        const result = await checkImage(img, "all");
        for (const line of result.messages) ctx.report?.(line);
        if (result.corruptions > 0 || result.checkErrors > 0 || result.failed) {
          throw new IoError("Could not repair dirty image");
        }
        markClean(img);
      }
      if ((h.autoclearFeatures & ~QCOW2_AUTOCLEAR_MASK) !== 0n || staleBitmaps) {
        // Bits for features vmkit does not know must be cleared before writing.
        h.autoclearFeatures &= QCOW2_AUTOCLEAR_MASK;
        if (staleBitmaps) h.bitmapsExtension = undefined;
        writeHeader(img);
      }
      // While the image is open for writing, its bitmaps are marked in use on disk.
      if (!reuse) bitmaps?.markInUse();
    }
    return new Qcow2Node(img, caches, dataNode, opts, bitmaps);
  } catch (e) {
    for (const n of opened) await n.close().catch(() => {});
    throw e;
  }
}
