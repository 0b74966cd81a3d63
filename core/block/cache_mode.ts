// QEMU's cache modes and what each means: apart from BlockBackend, so a command that
// only opens an image (`img info`) does not load the backend and its scheduler

import { UsageError } from "../errors.ts";

/** QEMU's cache modes (`-t`, `-T`, `-drive cache=`). */
export type CacheMode = "writeback" | "writethrough" | "none" | "directsync" | "unsafe";

/** What a cache mode means, as QEMU's `bdrv_parse_cache_mode` splits it. */
export interface CacheFlags {
  /** Writes complete only once durable (a flush after every write). */
  writethrough: boolean;
  /** Bypass the host page cache. */
  direct: boolean;
  /** Ignore flushes. */
  noFlush: boolean;
}

/**
 * Splits a cache mode name into its flags; an unknown name is QEMU's error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCacheMode } from "./cache_mode.ts";
 *
 * assert.deepEqual(parseCacheMode("directsync"), { writethrough: true, direct: true, noFlush: false });
 * assert.throws(() => parseCacheMode("fast"), /Invalid cache option: fast/);
 * ```
 */
export function parseCacheMode(mode: string): CacheFlags {
  switch (mode) {
    case "writeback":
      return { writethrough: false, direct: false, noFlush: false };
    case "writethrough":
      return { writethrough: true, direct: false, noFlush: false };
    case "none":
    case "off":
      return { writethrough: false, direct: true, noFlush: false };
    case "directsync":
      return { writethrough: true, direct: true, noFlush: false };
    case "unsafe":
      return { writethrough: false, direct: false, noFlush: true };
    default:
      throw new UsageError(`Invalid cache option: ${mode}`);
  }
}
