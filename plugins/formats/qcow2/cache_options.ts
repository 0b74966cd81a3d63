// qcow2 runtime options: L2 and refcount cache sizes with QEMU 7.2's defaults and rules

import { OptionError } from "../../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import type { Layout } from "./layout.ts";

/** QEMU's default upper bound of the L2 cache on Linux (qcow2.h DEFAULT_L2_CACHE_MAX_SIZE). */
export const DEFAULT_L2_CACHE_MAX_SIZE = 32 * 1024 * 1024;
/** Default `cache-clean-interval` in seconds. */
export const DEFAULT_CACHE_CLEAN_INTERVAL = 600;
/** Minimum L2 cache entries. */
export const MIN_L2_CACHE_SIZE = 2;
/** Minimum (and default) refcount cache size, in clusters. */
export const MIN_REFCOUNT_CACHE_SIZE = 4;

/** The open options of qcow2, as `-o help` on an open lists them. */
export const QCOW2_OPEN_OPTIONS: readonly OptionSpec[] = [
  {
    name: "cache-size",
    type: "size",
    help: "Maximum combined metadata (L2 tables and refcount blocks) cache size",
  },
  { name: "l2-cache-size", type: "size", help: "Maximum L2 table cache size" },
  { name: "l2-cache-entry-size", type: "size", help: "Size of each entry in the L2 cache" },
  { name: "refcount-cache-size", type: "size", help: "Maximum refcount block cache size" },
  {
    name: "cache-clean-interval",
    type: "number",
    help: "Clean unused cache entries after this time (in seconds)",
  },
  { name: "lazy-refcounts", type: "bool", help: "Postpone refcount updates" },
  { name: "data-file", type: "string", help: "File name of an external data file", hidden: true },
  {
    name: "x-check",
    type: "bool",
    help:
      "Open for check/repair (qemu-img check): a corrupt image opens read/write, a dirty one is not repaired",
    hidden: true,
  },
];

/** The cache geometry an open uses. */
export interface CacheSizes {
  /** L2 cache entries (slices). */
  l2Entries: number;
  /** Bytes per L2 cache entry. */
  l2EntryBytes: number;
  /** Refcount cache entries (clusters). */
  refcountEntries: number;
  /** L2 cache bytes that would map the whole disk. */
  l2FullCoverageBytes: number;
  /** Seconds between drops of unused entries (0: never). */
  cleanIntervalSec: number;
}

/** The L2 cache bytes that map the whole virtual disk, rounded up to a cluster. */
export function fullL2CacheBytes(layout: Layout, virtualSize: number): number {
  const entries = Math.ceil(virtualSize / layout.clusterSize);
  const bytes = entries * layout.l2EntryBytes;
  return Math.ceil(bytes / layout.clusterSize) * layout.clusterSize;
}

/**
 * Works out the cache sizes from the open options as QEMU 7.2's
 * `read_cache_sizes` does: by default the L2 cache covers the whole disk up to
 * 32 MiB, the refcount cache is 4 clusters, and `cache-size` alone gives the L2
 * cache what it can use and the rest to refcounts.
 */
export function cacheSizes(layout: Layout, virtualSize: number, opts: ParsedOptions): CacheSizes {
  const cs = layout.clusterSize;
  const minRefcountCache = MIN_REFCOUNT_CACHE_SIZE * cs;
  const maxL2Cache = fullL2CacheBytes(layout, virtualSize);
  const combinedSet = opts["cache-size"] !== undefined;
  const l2Set = opts["l2-cache-size"] !== undefined;
  const refcountSet = opts["refcount-cache-size"] !== undefined;
  const entrySizeSet = opts["l2-cache-entry-size"] !== undefined;
  const combined = num(opts["cache-size"], 0);
  const l2Max = num(opts["l2-cache-size"], DEFAULT_L2_CACHE_MAX_SIZE);
  let refcountCache = num(opts["refcount-cache-size"], 0);
  let entryBytes = num(opts["l2-cache-entry-size"], cs);
  let l2Cache = Math.min(maxL2Cache, l2Max);

  if (combinedSet) {
    if (l2Set && refcountSet) {
      throw new OptionError(
        "cache-size, l2-cache-size and refcount-cache-size may not be set at the same time",
      );
    } else if (l2Set && l2Max > combined) {
      throw new OptionError("l2-cache-size may not exceed cache-size");
    } else if (refcountCache > combined) {
      throw new OptionError("refcount-cache-size may not exceed cache-size");
    }
    if (l2Set) {
      refcountCache = combined - l2Cache;
    } else if (refcountSet) {
      l2Cache = combined - refcountCache;
    } else if (combined >= maxL2Cache + minRefcountCache) {
      // As much as possible to the L2 cache, the remainder to refcounts.
      l2Cache = maxL2Cache;
      refcountCache = combined - l2Cache;
    } else {
      refcountCache = Math.min(combined, minRefcountCache);
      l2Cache = combined - refcountCache;
    }
  }
  // A cache too small to cover the disk uses 4 KiB slices: cheaper loads and evictions.
  if (l2Cache < maxL2Cache && !entrySizeSet) entryBytes = Math.min(cs, 4096);
  if (entryBytes < 512 || entryBytes > cs || (entryBytes & (entryBytes - 1)) !== 0) {
    throw new OptionError(
      `L2 cache entry size must be a power of two between 512 and the cluster size (${cs})`,
    );
  }
  let l2Entries = Math.floor(l2Cache / entryBytes);
  if (l2Entries < MIN_L2_CACHE_SIZE) l2Entries = MIN_L2_CACHE_SIZE;
  if (l2Entries > 0x7fffffff) throw new OptionError("L2 cache size too big");
  let refcountEntries = Math.floor(refcountCache / cs);
  if (refcountEntries < MIN_REFCOUNT_CACHE_SIZE) refcountEntries = MIN_REFCOUNT_CACHE_SIZE;
  if (refcountEntries > 0x7fffffff) throw new OptionError("Refcount cache size too big");
  const cleanIntervalSec = num(opts["cache-clean-interval"], DEFAULT_CACHE_CLEAN_INTERVAL);
  if (cleanIntervalSec > 0xffffffff) throw new OptionError("Cache clean interval too big");
  return {
    l2Entries,
    l2EntryBytes: entryBytes,
    refcountEntries,
    l2FullCoverageBytes: maxL2Cache,
    cleanIntervalSec,
  };
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}
