// Block permissions: what a node does to its file and what it lets others do, as QEMU's image locks say it

/** Reads that must see a consistent image (QEMU's `BLK_PERM_CONSISTENT_READ`). */
export const BLK_PERM_CONSISTENT_READ = 0x01;
/** Writes that change what a reader sees. */
export const BLK_PERM_WRITE = 0x02;
/** Writes that store the data already there (copy-on-read). */
export const BLK_PERM_WRITE_UNCHANGED = 0x04;
/** Changing the length of the file. */
export const BLK_PERM_RESIZE = 0x08;
/** Every permission QEMU 7.2 knows: one lock byte each. */
export const BLK_PERM_ALL = 0x0f;
/** How many permissions there are (lock bytes per base). */
export const BLK_PERM_COUNT = 4;

/** The names QEMU prints for the permissions, in bit order. */
export const BLK_PERM_NAMES: readonly string[] = [
  "consistent read",
  "write",
  "write unchanged",
  "resize",
];

/**
 * What a guest disk lets other users of its image do: read, and resize; never write
 * (QEMU's `blkconf_apply_backend_options` without `share-rw=on`).
 */
export const GUEST_DISK_SHARED = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED |
  BLK_PERM_RESIZE;

/** What a node holds on its file and what it shares with other users of the file. */
export interface BlockPerm {
  /** `BLK_PERM_*` bits this node uses. */
  perm: number;
  /** `BLK_PERM_*` bits others may use at the same time. */
  shared: number;
}

/**
 * What the user of an image (a qemu-img command, a guest device) asks of the top node.
 * Absent fields are qemu-img's reader or writer: consistent read, write when read-write,
 * everything shared.
 */
export interface ImageAccess {
  /** The image is opened only to describe it (`info`): no data is read. */
  noIo?: boolean;
  /** The user changes the image's length (`resize`). */
  resize?: boolean;
  /** What others may do meanwhile (default all; `convert`'s source and a guest disk share less). */
  shared?: number;
}

/**
 * How a format uses its file, which decides what it asks of the file node (QEMU's
 * child roles): `filtered` passes its user's permissions through (raw without an
 * offset), `metadata` keeps its own structures in the file (qcow2, vmdk...), so it
 * reads it whenever it does I/O, may write and grow it when writable, and never lets
 * another writer or resizer in. `data` is a file holding only guest data beside the
 * image's own (a vmdk's extent, a qcow2's `data_file`): its user's permissions pass
 * through, writing it may grow it, and nobody else may resize it.
 */
export type FileRole = "filtered" | "metadata" | "data";

/**
 * The permissions the top node of an image holds for its user.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BLK_PERM_ALL, userPerm } from "./perm.ts";
 *
 * assert.deepEqual(userPerm(true, {}), { perm: 1, shared: BLK_PERM_ALL });
 * assert.deepEqual(userPerm(false, { resize: true }), { perm: 11, shared: BLK_PERM_ALL });
 * assert.deepEqual(userPerm(true, { noIo: true }), { perm: 0, shared: BLK_PERM_ALL });
 * ```
 */
export function userPerm(readOnly: boolean, access: ImageAccess): BlockPerm {
  let perm = 0;
  if (!access.noIo) {
    perm |= BLK_PERM_CONSISTENT_READ;
    if (!readOnly) perm |= BLK_PERM_WRITE;
  }
  if (access.resize) perm |= BLK_PERM_RESIZE;
  return { perm, shared: access.shared ?? BLK_PERM_ALL };
}

/**
 * What a format node asks of its file, from what its own users ask of it (QEMU's
 * `bdrv_default_perms` for a filtered or a metadata child). `forceShare` (`-U`) shares
 * everything whatever the format would keep.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { filePerm, userPerm } from "./perm.ts";
 *
 * // qcow2 read by qemu-img: lock bytes 100, 201 and 203.
 * const p = filePerm("metadata", userPerm(true, {}), { writable: false });
 * assert.deepEqual(p, { perm: 0b0001, shared: 0b0101 });
 * // Its data_file, read-write: bytes 100, 101, 103 and 203.
 * const d = filePerm("data", userPerm(false, {}), { writable: true });
 * assert.deepEqual(d, { perm: 0b1011, shared: 0b0111 });
 * ```
 */
export function filePerm(
  role: FileRole,
  parent: BlockPerm,
  options: { writable: boolean; noIo?: boolean; forceShare?: boolean },
): BlockPerm {
  let perm = parent.perm & BLK_PERM_ALL;
  let shared = (parent.shared & BLK_PERM_ALL) | BLK_PERM_WRITE_UNCHANGED;
  if (role === "metadata") {
    // The format may write metadata even when its user does not, and grows the file.
    if (options.writable) perm |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    if (!options.noIo) perm |= BLK_PERM_CONSISTENT_READ;
    shared &= ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
  } else if (role === "data") {
    // QEMU's data child: a write through the format may land past the end of the file,
    // and a copy the format makes is a real write; another resizer would cut the data.
    if (perm & BLK_PERM_WRITE_UNCHANGED) perm |= BLK_PERM_WRITE;
    if (perm & BLK_PERM_WRITE) perm |= BLK_PERM_RESIZE;
    shared &= ~BLK_PERM_RESIZE;
  }
  if (options.forceShare) shared = BLK_PERM_ALL;
  return { perm, shared };
}

/**
 * What a backing image's top node is asked by the image above it (QEMU's
 * `bdrv_default_perms_for_cow`): consistent reads when the parent reads, and the backing
 * file may change under it only when the parent's users let the parent change.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backingPerm, BLK_PERM_ALL } from "./perm.ts";
 *
 * assert.deepEqual(backingPerm({ perm: 3, shared: BLK_PERM_ALL }), { perm: 1, shared: 15 });
 * assert.deepEqual(backingPerm({ perm: 1, shared: 5 }), { perm: 1, shared: 5 });
 * ```
 */
export function backingPerm(parent: BlockPerm): BlockPerm {
  const perm = parent.perm & BLK_PERM_CONSISTENT_READ;
  let shared = parent.shared & BLK_PERM_WRITE ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0;
  shared |= BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
  return { perm, shared };
}
