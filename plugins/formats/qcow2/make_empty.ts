// Emptying a whole qcow2 image after a commit, as QEMU's make_completely_empty: the file
// shrinks to the header, a one-cluster refcount table, one refcount block and an empty L1

import { encodeU64 } from "./header.ts";
import {
  markClean,
  markDirty,
  type Qcow2Image,
  writeL1Location,
  writeReftableLocation,
} from "./image.ts";
import { writeRefcount } from "./refcount.ts";

/** Clusters the active L1 table takes. */
function l1Clusters(img: Qcow2Image): number {
  return Math.ceil((img.header.l1Size * 8) / img.layout.clusterSize);
}

/**
 * True when {@linkcode makeCompletelyEmpty} applies (QEMU's test in qcow2_make_empty):
 * a version 3 image (the dirty bit covers the rewrite) without snapshots or an external
 * data file, whose header, refcount table, refcount block and L1 table fit in one
 * refcount block. Other images have each cluster discarded instead.
 */
export function canEmptyCompletely(img: Qcow2Image): boolean {
  return img.header.version >= 3 && img.snapshots.length === 0 && !img.hasDataFile &&
    3 + l1Clusters(img) <= img.layout.refcountBlockEntries;
}

/**
 * Rewrites the image as empty, in QEMU's order: the dirty bit first, then the old L1
 * table and the clusters after the header zeroed, the refcount table at cluster 1 with
 * its one block at cluster 2 and the L1 table from cluster 3, the refcounts of those
 * clusters, the dirty bit cleared and the file cut after the L1 table. The caller's
 * in-memory state is stale afterwards and must be read again from the file; its
 * caches must hold nothing unwritten.
 */
export async function makeCompletelyEmpty(img: Qcow2Image): Promise<void> {
  const cs = img.layout.clusterSize;
  const l1c = l1Clusters(img);
  markDirty(img);
  img.file.writeSync(img.header.l1TableOffset, new Uint8Array(l1c * cs));
  img.file.writeSync(cs, new Uint8Array((2 + l1c) * cs));
  img.file.syncSync();
  writeL1Location(img, 3 * cs, img.header.l1Size);
  writeReftableLocation(img, cs, 1);
  img.file.writeSync(cs, encodeU64(2 * cs));
  img.file.syncSync();
  const block = new Uint8Array(cs);
  const view = new DataView(block.buffer);
  for (let i = 0; i < 3 + l1c; i++) writeRefcount(view, i, img.layout.refcountOrder, 1);
  img.file.writeSync(2 * cs, block);
  markClean(img);
  await img.file.node.truncate((3 + l1c) * cs, { shrink: true });
}
