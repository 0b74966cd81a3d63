// The state of one opened qcow2 image shared by the read, write, check and snapshot code

import type { BlockNode } from "../../../core/block/driver.ts";
import type { ClusterMap, Mapping } from "./cluster.ts";
import {
  encodeU64,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DIRTY,
  type Qcow2Header,
  serializeHeader,
} from "./header.ts";
import type { Layout, SyncFile } from "./layout.ts";
import type { Refcounts } from "./refcount.ts";
import type { SnapshotEntry } from "./snapshot.ts";

/** Everything the qcow2 modules share about one open image. */
export interface Qcow2Image {
  readonly layout: Layout;
  readonly header: Qcow2Header;
  /** The image file. */
  readonly file: SyncFile;
  /** Where guest data lives: the external data file, or the image file. */
  readonly data: SyncFile;
  /** True with an external data file (host offset = guest offset, no refcounts for data). */
  readonly hasDataFile: boolean;
  /** True with `data_file_raw` (the data file must stay a valid raw image). */
  readonly dataFileRaw: boolean;
  readonly map: ClusterMap;
  readonly refcounts: Refcounts;
  readonly backing: BlockNode | null;
  readonly readOnly: boolean;
  /** Lazy refcounts in use: refcounts may lag, the dirty bit covers it. */
  lazy: boolean;
  /** A mapping reused by lookups that do not await. */
  readonly scratch: Mapping;
  snapshots: SnapshotEntry[];
  /** The last decompressed cluster (host offset and bytes), reused by sequential reads. */
  decompressed: { offset: number; data: Uint8Array } | null;
}

/** Rewrites the whole header cluster (extensions included, zero-padded, as qcow2_update_header) and syncs. */
export function writeHeader(img: Qcow2Image): void {
  const header = serializeHeader(img.header);
  const cluster = new Uint8Array(Math.max(header.length, img.layout.clusterSize));
  cluster.set(header);
  img.file.writeSync(0, cluster);
  img.file.syncSync();
}

/** Sets the dirty bit before the first metadata change of a lazy-refcount image. */
export function markDirty(img: Qcow2Image): void {
  if ((img.header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) !== 0n) return;
  // Everything written so far must be durable before the bit says refcounts may lag.
  img.file.syncSync();
  img.header.incompatibleFeatures |= QCOW2_INCOMPAT_DIRTY;
  writeFeatures(img);
}

/** Clears the dirty bit once the refcounts on disk are exact again. */
export function markClean(img: Qcow2Image): void {
  if ((img.header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) === 0n) return;
  img.file.syncSync();
  img.header.incompatibleFeatures &= ~QCOW2_INCOMPAT_DIRTY;
  writeFeatures(img);
}

/** Sets the corrupt bit (QEMU's `qcow2_mark_corrupt`). */
export function markCorrupt(img: Qcow2Image): void {
  img.header.incompatibleFeatures |= QCOW2_INCOMPAT_CORRUPT;
  writeFeatures(img);
}

function writeFeatures(img: Qcow2Image): void {
  if (img.header.version < 3) return;
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, img.header.incompatibleFeatures);
  img.file.writeSync(72, b);
  img.file.syncSync();
}

/** Writes the virtual size field. */
export function writeSize(img: Qcow2Image, sizeBytes: number): void {
  img.header.size = sizeBytes;
  img.file.writeSync(24, encodeU64(sizeBytes));
  img.file.syncSync();
}

/** Writes `l1_size` and `l1_table_offset` together (bytes 36..47). */
export function writeL1Location(
  img: Pick<Qcow2Image, "file" | "header">,
  offset: number,
  size: number,
): void {
  img.header.l1Size = size;
  img.header.l1TableOffset = offset;
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint32(0, size);
  b.set(encodeU64(offset), 4);
  img.file.writeSync(36, b);
  img.file.syncSync();
}

/** Writes `refcount_table_offset` and `refcount_table_clusters` together (bytes 48..59). */
export function writeReftableLocation(
  img: Pick<Qcow2Image, "file" | "header">,
  offset: number,
  clusters: number,
): void {
  img.header.refcountTableOffset = offset;
  img.header.refcountTableClusters = clusters;
  const b = new Uint8Array(12);
  b.set(encodeU64(offset), 0);
  new DataView(b.buffer).setUint32(8, clusters);
  img.file.writeSync(48, b);
  img.file.syncSync();
}

/**
 * True when more clusters are in use than the file has storage for (by 10%): the image
 * was preallocated with metadata only, so holes in the file under data clusters read as
 * zero. QEMU decides the same way before it lets block status look into the file.
 */
export function detectMetadataPreallocation(img: Qcow2Image): boolean {
  const cs = img.layout.clusterSize;
  const realClusters = Math.floor(img.file.node.allocatedBytes() / cs);
  const threshold = Math.max(Math.floor(realClusters * 10 / 9), realClusters + 2);
  const end = Math.ceil(img.file.size() / cs);
  let inUse = 0;
  for (let i = 0; i < end && inUse < threshold; i++) {
    if (img.refcounts.get(i) !== 0) inUse++;
  }
  return inUse >= threshold;
}
