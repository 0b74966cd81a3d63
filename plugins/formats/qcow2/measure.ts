// qcow2 size estimates for `qemu-img measure`, as QEMU's qcow2_measure computes them

import { OptionError } from "../../../core/errors.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import type { MeasureResult } from "../../../core/plugin.ts";
import { QCOW_MAX_L1_SIZE } from "./header.ts";
import { refcountMetadata } from "./refcount.ts";

/**
 * Bytes of refcount table and blocks needed to count `clusters` clusters plus
 * the refcount structures themselves (the fixed point QEMU iterates to).
 */
export function refcountMetadataBytes(
  clusters: number,
  clusterSize: number,
  refcountOrder: number,
): number {
  const { blocks, tableClusters } = refcountMetadata(clusters, clusterSize, refcountOrder, false);
  return (blocks + tableClusters) * clusterSize;
}

/** The file size of a fully allocated image: header, L1, L2, refcounts and data. */
export function fullyAllocatedBytes(
  sizeBytes: number,
  clusterSize: number,
  refcountOrder: number,
  extendedL2: boolean,
): number {
  const l2EntryBytes = extendedL2 ? 16 : 8;
  const alignedSize = Math.ceil(sizeBytes / clusterSize) * clusterSize;
  let meta = clusterSize; // header
  const perL2 = clusterSize / l2EntryBytes;
  const l2Entries = Math.ceil(alignedSize / clusterSize / perL2) * perL2;
  meta += l2Entries * l2EntryBytes;
  const perL1Cluster = clusterSize / 8;
  const l1Entries = Math.ceil((l2Entries * l2EntryBytes) / clusterSize / perL1Cluster) *
    perL1Cluster;
  meta += l1Entries * 8;
  meta += refcountMetadataBytes((meta + alignedSize) / clusterSize, clusterSize, refcountOrder);
  return meta + alignedSize;
}

/**
 * `qemu-img measure -O qcow2`: `allocatedBytes` is the guest data that will be
 * allocated, summed over the source's allocated extents each rounded out to
 * whole clusters of the new image (0 for `--size`, which measures an empty image).
 */
export function measureQcow2(
  sizeBytes: number,
  allocatedBytes: number,
  opts: ParsedOptions,
): MeasureResult {
  const clusterSize = typeof opts.cluster_size === "number" ? opts.cluster_size : 65536;
  if (
    clusterSize < 512 || clusterSize > 2 * 1024 * 1024 || (clusterSize & (clusterSize - 1)) !== 0
  ) {
    throw new OptionError("Cluster size must be a power of two between 512 and 2048k");
  }
  const extendedL2 = opts.extended_l2 === true;
  const refcountBits = typeof opts.refcount_bits === "number" ? opts.refcount_bits : 16;
  if (refcountBits < 1 || refcountBits > 64 || (refcountBits & (refcountBits - 1)) !== 0) {
    throw new OptionError("Refcount width must be a power of two and may not exceed 64 bits");
  }
  const virtualSize = Math.ceil(sizeBytes / clusterSize) * clusterSize;
  const l2Tables = Math.ceil(virtualSize / clusterSize / (clusterSize / (extendedL2 ? 16 : 8)));
  if (l2Tables * 8 > QCOW_MAX_L1_SIZE) {
    throw new OptionError("The image size is too large (try using a larger cluster size)");
  }
  const fullyAllocated = fullyAllocatedBytes(
    virtualSize,
    clusterSize,
    Math.log2(refcountBits),
    extendedL2,
  );
  // preallocation=falloc|full writes every data cluster, so the whole disk is required
  // (qcow2_measure counts the full virtual size for them, the source's allocation otherwise).
  const prealloc = opts.preallocation;
  const dataBytes = prealloc === "full" || prealloc === "falloc"
    ? virtualSize
    : Math.ceil(allocatedBytes / clusterSize) * clusterSize;
  const required = fullyAllocated - virtualSize + dataBytes;
  return { required, fullyAllocated };
}
