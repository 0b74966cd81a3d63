// Block status through a backing chain and down into the file, as qemu-img map and convert see it

import type { BlockNode } from "./driver.ts";

/** The status of one extent of guest data, with the layer that defines it. */
export interface ChainStatus {
  /** Guest offset of the extent. */
  start: number;
  length: number;
  /** How many backing layers below the top the status comes from. */
  depth: number;
  /** Allocated in some layer of the chain. */
  present: boolean;
  /** Reads as zeroes. */
  zero: boolean;
  /** Holds data in some layer's storage. */
  data: boolean;
  compressed: boolean;
  /** Where the bytes sit in `filename`, when they sit there unchanged. */
  offset?: number;
  filename?: string;
  /** Data that reads as zeroes (`BlockStatus.readsAsZero`); only `convert` uses it. */
  readsAsZero?: boolean;
}

/**
 * The status of `[offset, offset+bytes)` through the chain: the first layer that
 * defines it, as QEMU's `bdrv_block_status_above`. Like QEMU, a data extent the format
 * marks `recurse` whose host range is a hole in the file is also reported as zero, and a region past the
 * end of a shorter backing file reads as zero.
 */
export async function chainStatus(
  top: BlockNode,
  offset: number,
  bytes: number,
): Promise<ChainStatus> {
  let node: BlockNode = top;
  let depth = 0;
  let n = bytes;
  for (;;) {
    const s = await node.blockStatus(offset, Math.min(n, node.size() - offset));
    n = Math.min(n, s.bytes);
    if (s.allocated) {
      let zero = s.zero;
      // Data at a known place in a protocol node, where the format says the file's holes
      // matter: ask that node whether it is a hole.
      if (
        s.recurse && s.data && !zero && s.hostOffset !== undefined && s.file && s.file !== node &&
        !s.compressed
      ) {
        const fs = await s.file.blockStatus(s.hostOffset, n);
        // QEMU limits the answer to the run the protocol reported, hole or data.
        n = Math.min(n, fs.bytes);
        if (fs.zero && !fs.data) zero = true;
      }
      return {
        start: offset,
        length: n,
        depth,
        present: true,
        zero,
        data: s.data,
        compressed: s.compressed ?? false,
        offset: s.hostOffset,
        filename: s.file?.filename,
        readsAsZero: s.readsAsZero === true,
      };
    }
    const backing: BlockNode | null = node.backing;
    // qemu-img's get_block_status stops at the first layer that says zero or data,
    // allocated or not: a format without a backing file (or past the end of a shorter
    // one) reads as zero here, and keeps any host offset it gave (an extended-L2
    // cluster whose subclusters are unallocated).
    if (!backing || offset >= backing.size() || s.zero || s.data) {
      const placed = s.hostOffset !== undefined && s.file !== undefined;
      return {
        start: offset,
        length: n,
        depth,
        present: false,
        zero: true,
        data: s.data,
        compressed: false,
        offset: placed ? s.hostOffset : undefined,
        filename: placed ? s.file!.filename : undefined,
      };
    }
    n = Math.min(n, backing.size() - offset);
    node = backing;
    depth++;
  }
}
