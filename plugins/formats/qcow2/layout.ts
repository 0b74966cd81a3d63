// qcow2 geometry and entry encodings: cluster/L2/refcount sizes, L1/L2 entry bit fields, sync file I/O

import { requireSyncIo } from "../../../core/block/sync_io.ts";
import type { BlockNode } from "../../../core/block/driver.ts";
import type { MetadataStore } from "../../../core/block/metadata_cache.ts";

/** L1/L2 entry bit 63 (in the high 32-bit half): refcount is exactly one. */
export const QCOW_OFLAG_COPIED_HI = 0x80000000;
/** L2 entry bit 62 (high half): compressed cluster. */
export const QCOW_OFLAG_COMPRESSED_HI = 0x40000000;
/** L2 entry bit 0 (low half): the cluster reads as zeroes (v3, standard L2 entries). */
export const QCOW_OFLAG_ZERO = 1;
/** Bits 9-55 of an L1 or L2 entry: the host offset, split into the high and low halves. */
export const L1E_OFFSET_MASK_HI = 0x00ffffff;
export const L1E_OFFSET_MASK_LO = 0xfffffe00;
export const L2E_OFFSET_MASK_HI = 0x00ffffff;
export const L2E_OFFSET_MASK_LO = 0xfffffe00;
/** Reserved bits of a standard L2 entry (1-8 and 56-61), split into halves. */
export const L2E_STD_RESERVED_HI = 0x3f000000;
export const L2E_STD_RESERVED_LO = 0x000001fe;
/** Reserved bits of an L1 entry (0-8 and 56-62). */
export const L1E_RESERVED_HI = 0x7f000000;
export const L1E_RESERVED_LO = 0x000001ff;
/** Reserved bits of a refcount table entry (0-8). */
export const REFT_RESERVED_MASK = 0x1ff;
/** Subclusters per cluster with extended L2 entries. */
export const QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER = 32;

/** Cluster types as QEMU's `QCow2ClusterType` (whole clusters). */
export const QCOW2_CLUSTER_UNALLOCATED = 0;
export const QCOW2_CLUSTER_ZERO_PLAIN = 1;
export const QCOW2_CLUSTER_ZERO_ALLOC = 2;
export const QCOW2_CLUSTER_NORMAL = 3;
export const QCOW2_CLUSTER_COMPRESSED = 4;

/** Subcluster types as QEMU's `QCow2SubclusterType`. */
export const QCOW2_SUBCLUSTER_UNALLOCATED_PLAIN = 0;
export const QCOW2_SUBCLUSTER_ZERO_PLAIN = 1;
export const QCOW2_SUBCLUSTER_ZERO_ALLOC = 2;
export const QCOW2_SUBCLUSTER_NORMAL = 3;
export const QCOW2_SUBCLUSTER_COMPRESSED = 4;
export const QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC = 5;
export const QCOW2_SUBCLUSTER_INVALID = 6;

const TWO32 = 0x100000000;

/** The fixed geometry of an opened image. */
export class Layout {
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly extendedL2: boolean;
  /** Bytes per L2 entry: 8, or 16 with extended L2 entries. */
  readonly l2EntryBytes: number;
  /** Entries per L2 table (one cluster). */
  readonly l2Entries: number;
  readonly subclusterBits: number;
  readonly subclusterSize: number;
  readonly subclustersPerCluster: number;
  readonly refcountOrder: number;
  readonly refcountBits: number;
  /** Entries per refcount block (one cluster). */
  readonly refcountBlockEntries: number;
  /** Bit position of the sector count in a compressed cluster descriptor (62 - (cluster_bits - 8)). */
  readonly csizeShift: number;
  /** Mask of the sector count field (after shifting down). */
  readonly csizeMask: number;

  constructor(clusterBits: number, refcountOrder: number, extendedL2: boolean) {
    this.clusterBits = clusterBits;
    this.clusterSize = 2 ** clusterBits;
    this.extendedL2 = extendedL2;
    this.l2EntryBytes = extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.l2EntryBytes;
    this.subclustersPerCluster = extendedL2 ? QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER : 1;
    this.subclusterBits = clusterBits - (extendedL2 ? 5 : 0);
    this.subclusterSize = 2 ** this.subclusterBits;
    this.refcountOrder = refcountOrder;
    this.refcountBits = 2 ** refcountOrder;
    this.refcountBlockEntries = (this.clusterSize * 8) / this.refcountBits;
    this.csizeShift = 62 - (clusterBits - 8);
    this.csizeMask = (1 << (clusterBits - 8)) - 1;
  }

  /** Guest bytes one L2 table maps. */
  get l2Coverage(): number {
    return this.l2Entries * this.clusterSize;
  }

  /** L1 entries needed for a virtual size (QEMU's `size_to_l1`). */
  l1EntriesFor(sizeBytes: number): number {
    return Math.ceil(sizeBytes / this.l2Coverage);
  }

  /** Rounds a byte count up to whole clusters. */
  clustersFor(bytes: number): number {
    return Math.ceil(bytes / this.clusterSize);
  }

  /** The host offset of a compressed cluster descriptor (bits 0..x-1). */
  compressedOffset(hi: number, lo: number): number {
    const hiBits = this.csizeShift - 32;
    return (hi & ((1 << hiBits) - 1)) * TWO32 + lo;
  }

  /** Host bytes a compressed descriptor covers from its offset (to the end of its last sector). */
  compressedBytes(hi: number, lo: number): number {
    const sectors = (((hi & 0x3fffffff) >>> (this.csizeShift - 32)) & this.csizeMask) + 1;
    return sectors * 512 - (lo & 511);
  }

  /** Encodes a compressed descriptor's high and low halves. */
  encodeCompressed(hostOffset: number, bytes: number): [number, number] {
    const sectors = Math.floor((hostOffset + bytes - 1) / 512) - Math.floor(hostOffset / 512);
    const hiBits = this.csizeShift - 32;
    const hi = QCOW_OFLAG_COMPRESSED_HI | (sectors << hiBits) |
      Math.floor(hostOffset / TWO32);
    return [hi >>> 0, hostOffset >>> 0];
  }
}

/** The host offset in bits 9-55 of an L1/L2/refcount table entry's halves. */
export function entryOffset(hi: number, lo: number): number {
  return (hi & L2E_OFFSET_MASK_HI) * TWO32 + ((lo & L2E_OFFSET_MASK_LO) >>> 0);
}

/** Splits a host offset into an entry's high and low halves (flags not set). */
export function offsetHi(offset: number): number {
  return Math.floor(offset / TWO32);
}

/** The low half of a host offset. */
export function offsetLo(offset: number): number {
  return offset >>> 0;
}

/** Hex of a 64-bit entry given as halves, as QEMU prints `%lx`. */
export function hex64(hi: number, lo: number): string {
  if (hi === 0) return (lo >>> 0).toString(16);
  return (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, "0");
}

/** The synchronous positional I/O qcow2 needs from its file (and data file) node. */
export interface SyncFile extends MetadataStore {
  /** The node underneath. */
  readonly node: BlockNode;
  /** Current file length. */
  size(): number;
}

/**
 * Wraps a protocol node that offers synchronous positional I/O (core's
 * {@linkcode requireSyncIo}); qcow2 metadata lookups run synchronously.
 */
export function syncFile(node: BlockNode): SyncFile {
  const io = requireSyncIo(node, "qcow2");
  // The metadata cache's ordering point is the protocol's flush (nothing with cache=unsafe).
  return {
    node,
    readSync: io.readSync,
    writeSync: io.writeSync,
    syncSync: io.flushSync,
    size: () => node.size(),
  };
}
