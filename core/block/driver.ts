// The BlockDriver contract: what an opened image or protocol node offers the block layer

import type { OptionSpec, ParsedOptions } from "../options.ts";
import type { DirtyBitmapHost } from "./dirty_bitmap.ts";
import type { ImageAccess } from "./perm.ts";

/** The allocation status of a run of bytes, as QEMU's `bdrv_block_status` reports it. */
export interface BlockStatus {
  /** How many bytes from the queried offset share this status (> 0). */
  bytes: number;
  /** The bytes are defined by this node (not passed through to its backing node). */
  allocated: boolean;
  /** The bytes hold data in this node's storage (QEMU's BDRV_BLOCK_DATA). */
  data: boolean;
  /** The bytes read as zeroes (QEMU's BDRV_BLOCK_ZERO). */
  zero: boolean;
  /** Where the bytes sit unchanged in `file` (QEMU's BDRV_BLOCK_OFFSET_VALID), if they do. */
  hostOffset?: number;
  /** The node `hostOffset` refers to (the format's file or data-file node). */
  file?: BlockNode;
  /** The bytes are stored compressed. */
  compressed?: boolean;
  /**
   * Ask `file` too (QEMU's BDRV_BLOCK_RECURSE): a hole there under this data reads as
   * zero. Formats set it where the file's holes mean something: metadata-preallocated
   * qcow2, flat vmdk extents.
   */
  recurse?: boolean;
  /**
   * The bytes read as zeroes though the status says data: a format whose QEMU driver
   * has no block status (vhdx) keeps reporting data, which `map` prints as qemu-img
   * does, and marks its unallocated blocks and the file's holes under allocated ones
   * here, so `convert` skips what its zero scan would only find after reading.
   */
  readsAsZero?: boolean;
}

/** A problem count and report from {@linkcode BlockNode.check}. */
export interface CheckResult {
  /** Errors that mean the image is corrupt (refcount too low, bad L2 entries...). */
  corruptions: number;
  /** Clusters allocated but unused. */
  leaks: number;
  /** Errors that could not be checked (I/O errors). */
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  /** Image end offset in bytes, when the format knows it. */
  imageEndOffset?: number;
  /** Clusters allocated / total and fragmentation, as `qemu-img check` reports them. */
  allocatedClusters?: number;
  totalClusters?: number;
  fragmentedClusters?: number;
  compressedClusters?: number;
  /** One line per problem found, as qemu-img prints them (`Leaked cluster 5 refcount=1 reference=0`). */
  messages: string[];
  /**
   * Set when the check could not finish (qemu-img then prints `Check failed: <failed>`
   * after the messages and exits 1), e.g. `Input/output error` when `-r leaks` meets
   * damage only a refcount rebuild (`-r all`) can fix.
   */
  failed?: string;
}

/** What `repair` asks of {@linkcode BlockNode.check}. */
export type RepairMode = "none" | "leaks" | "all";

/** Preallocation modes, as qemu-img spells them. */
export type Preallocation = "off" | "metadata" | "falloc" | "full";

/** The format-specific part of `qemu-img info` (json `format-specific`). */
export interface FormatSpecificInfo {
  /** `type` in json (`qcow2`, `vmdk`...). */
  type: string;
  /** The `data` object, already in QEMU's json field names and order. */
  data: Record<string, unknown>;
  /**
   * Lines for the human `Format specific information:` block, already indented
   * one level, in QEMU's order (`compat: 1.1`, `compression type: zlib`...).
   */
  humanLines: string[];
}

/** An internal snapshot as `qemu-img snapshot -l` and `info` list them. */
export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNs: number;
  icount?: number;
}

/** What {@linkcode BlockNode.snapshotCreate} may record besides the name (qemu-img leaves them 0). */
export interface SnapshotCreateOptions {
  /** The id to give the snapshot; one more than the largest numeric id when absent. */
  id?: string;
  /** Wall clock time of the snapshot; now when absent. */
  dateSec?: number;
  dateNsec?: number;
  /** Guest clock at the snapshot, in ns. */
  vmClockNs?: number;
  /** Bytes of saved VM state (0 for a disk-only snapshot). */
  vmStateSize?: number;
  /** Guest instructions executed (record/replay), if counted; -1 records "none" as savevm does. */
  icount?: number;
}

/**
 * An opened node in the block graph: a protocol node (a host file) or a format
 * node (qcow2, raw...) sitting on one. Every method may be called concurrently;
 * the scheduler above serialises what must be.
 *
 * Offsets and lengths are bytes as `number` (exact to 2^53).
 */
export interface BlockNode {
  /** The driver name (`file`, `raw`, `qcow2`). */
  readonly driver: string;
  /** The file name this node was opened from, as the user gave it. */
  readonly filename: string;
  /** True when opened read-only: every write path throws. */
  readonly readOnly: boolean;
  /** The protocol child (`file`), or null for a protocol node. */
  readonly file: BlockNode | null;
  /** The backing node, if this format has one and it was opened. */
  readonly backing: BlockNode | null;
  /** The backing file name as stored in the image (unresolved), if any. */
  readonly backingFilename?: string;
  /** The backing format as stored in the image, if any. */
  readonly backingFormat?: string;
  /** Allocation granularity in bytes (qcow2 cluster size), if the format has one. */
  readonly clusterSize?: number;
  /** True when data may only be written compressed, whole clusters in order (vmdk streamOptimized). */
  readonly needsCompressedWrites?: boolean;
  /**
   * True when the format was probed and writes that would make the file probe as
   * another format are refused with EPERM (a probed raw image opened read-write, as
   * QEMU restricts it). The CLI prints `probedRawWarning` for such a node.
   */
  readonly restrictsBlockZero?: boolean;

  /**
   * Holds the `BLK_PERM_*` bits `perm` on the host file and lets others hold `shared`
   * (core/block/perm.ts), taking and checking QEMU's image locks; throws QEMU's
   * `Failed to get "write" lock` when another process (or another open) is in the way.
   * Only protocol nodes that lock have it.
   */
  setPerm?(perm: number, shared: number): void;

  /** The virtual size in bytes. */
  size(): number;
  /** Reads `buf.length` bytes at `offset`; reads past the end are an error. */
  read(offset: number, buf: Uint8Array): Promise<void>;
  /** Writes `data` at `offset`. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Makes `bytes` at `offset` read as zeroes; `unmap` allows deallocation. */
  writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void>;
  /** Tells the node the range is no longer needed (it may read back as anything, usually zero). */
  discard(offset: number, bytes: number): Promise<void>;
  /** Writes cached metadata and asks the host to make everything durable. */
  flush(): Promise<void>;
  /** Allocation status of the run starting at `offset`, at most `bytes` long. */
  blockStatus(offset: number, bytes: number): Promise<BlockStatus>;
  /** Changes the virtual size. */
  truncate(sizeBytes: number, options?: TruncateOptions): Promise<void>;
  /** Bytes the node occupies on the host (`disk size` in `info`), or -1 if unknown. */
  allocatedBytes(): number;
  /** Flushes and releases the node and its children. */
  close(): Promise<void>;

  /**
   * Synchronous positional I/O, offered by protocol nodes that can (the file protocol);
   * formats reach it through `requireSyncIo` in sync_io.ts. Formats whose data path
   * needs nothing but such I/O offer it too (raw, vdi, vpc): `img convert` copies
   * through it on the calling thread, with nothing else waiting on its event loop,
   * instead of paying a thread round trip and a promise for every large transfer.
   * Present only where it works: check for the method, not the format.
   */
  readSync?(offset: number, buf: Uint8Array): void;
  writeSync?(offset: number, data: Uint8Array): void;
  flushSync?(): void;
  /** Writes one compressed cluster (formats with compression only). */
  writeCompressed?(offset: number, data: Uint8Array): Promise<void>;
  /** Format-specific `info` data. */
  formatInfo?(): FormatSpecificInfo | undefined;
  /** Internal snapshots, if the format has them. */
  snapshots?(): SnapshotInfo[];
  /** Creates an internal snapshot named `name` of the current disk state. */
  snapshotCreate?(name: string, options?: SnapshotCreateOptions): Promise<SnapshotInfo>;
  /**
   * Reverts the disk to the snapshot with id `idOrName` (or, failing that, that name).
   * @throws VmkitError `Failed to load snapshot: No such file or directory` when none matches.
   */
  snapshotApply?(idOrName: string): Promise<void>;
  /**
   * Reads the image as snapshot `id` and/or `name` left it from now on, changing
   * nothing on disk (QEMU's `bdrv_snapshot_load_tmp`, behind `convert -l` and
   * `measure -l`); the node must be read-only. With both given, one snapshot must
   * match both.
   * @returns false when no snapshot matches.
   */
  snapshotLoadTmp?(id: string | undefined, name: string | undefined): Promise<boolean>;
  /**
   * Deletes the snapshot with id `idOrName` (or, failing that, that name), freeing
   * the clusters only it used.
   */
  snapshotDelete?(idOrName: string): Promise<void>;
  /**
   * Writes `data` at `offset` of the VM state area, which a snapshot created next with
   * `vmStateSize` keeps (qcow2: past the end of the disk, QEMU's `bdrv_save_vmstate`).
   */
  writeVmState?(offset: number, data: Uint8Array): Promise<void>;
  /** Reads the VM state area (after {@linkcode snapshotApply}: the snapshot's). */
  readVmState?(offset: number, buf: Uint8Array): Promise<void>;
  /**
   * Deallocates every cluster so that all data comes from the backing node again
   * (QEMU's `bdrv_make_empty`, what `commit` does to the committed image).
   */
  makeEmpty?(): Promise<void>;
  /**
   * Forgets what the node keeps of the file in memory (sizes, metadata tables) and reads
   * it again, after another node of the same file wrote it: HMP `commit` writes into a
   * backing file the running graph holds read-only (QEMU's `bdrv_co_invalidate_cache`).
   */
  invalidateCache?(): Promise<void>;
  /**
   * Rewrites the backing file name and format stored in the image (no data moves;
   * `undefined` removes them), as QEMU's `bdrv_change_backing_file`.
   */
  changeBackingFile?(name: string | undefined, format: string | undefined): Promise<void>;
  /** The options {@linkcode BlockNode.amend} accepts, as `qemu-img amend -o help` lists them. */
  readonly amendOptions?: readonly OptionSpec[];
  /**
   * Changes format options of the open image in place (`qemu-img amend`): `opts`
   * are already typed against {@linkcode BlockNode.amendOptions}.
   */
  amend?(opts: ParsedOptions, options?: AmendOptions): Promise<void>;
  /** Checks (and optionally repairs) the image's metadata. */
  check?(repair: RepairMode): Promise<CheckResult>;
  /** True when the image is marked dirty (`lazy_refcounts` left it so). */
  isDirty?(): boolean;
  /** Driver counters for `bench` and benchmarks (`l2CacheHits`...). */
  stats?(): Record<string, number>;
  /** Persistent dirty bitmaps (qcow2 v3): present when the format can keep them. */
  readonly dirtyBitmaps?: DirtyBitmapHost;
}

/** What {@linkcode BlockNode.amend} gets besides the options. */
export interface AmendOptions {
  /** `--force`: allow changes that may lose data (QEMU uses it for encryption keyslots). */
  force?: boolean;
  /** Called as the work advances. */
  progress?: (done: number, total: number) => void;
}

/** Options of {@linkcode BlockNode.truncate}. */
export interface TruncateOptions {
  /** Allow making the image smaller (data past the new end is lost). */
  shrink?: boolean;
  /** How to allocate a grown area. */
  preallocation?: Preallocation;
}

/** How an image is opened through the graph. */
export interface ImageOpenOptions {
  /**
   * Format name; probed from the file when absent. A protocol's name (`driver=file`)
   * makes the protocol node itself the image, with no format above it.
   */
  format?: string;
  /**
   * The protocol under the format (`file.driver=host_device`); when absent the graph
   * chooses by the filename (`host_device` for a device, else `file`).
   */
  protocol?: string;
  /** `auto-read-only` (on for `-drive`): open read-only where read-write is refused. */
  autoReadOnly?: boolean;
  readOnly?: boolean;
  /** Do not open the backing chain (`-u`, `info` without `--backing-chain` still opens it). */
  noBacking?: boolean;
  /** Share every permission with other users of the files (`-U`, `force-share=on`). */
  forceShare?: boolean;
  /** What the image's user does with it, for the image locks (default: read, or read and write). */
  access?: ImageAccess;
  /** `cache=none|directsync`: bypass the host page cache. */
  direct?: boolean;
  /** `cache=unsafe`: the protocol ignores flushes, including a format's ordering flushes. */
  noFlush?: boolean;
  /** Open backing files read-write (for `commit`). */
  backingReadWrite?: boolean;
  /** Format runtime options (`l2-cache-size`...), already typed. */
  formatOptions?: ParsedOptions;
  /** The protocol's runtime options for the image's own file (`file.locking`), typed. */
  protocolOptions?: ParsedOptions;
}

/** What a format's `open` gets from the graph: the way to reach other nodes. */
export interface OpenContext {
  /** Open options for this node. */
  readonly options: ImageOpenOptions;
  /**
   * Opens a backing image named as stored in this image, resolved relative to
   * this image's directory as QEMU does; loops and missing files are reported clearly.
   */
  openBacking(backingName: string, format: string | undefined): Promise<BlockNode>;
  /** Opens another file as a protocol node (for `data_file`), resolved as a backing name is. */
  openFile(name: string, options: { readOnly: boolean; mustExist?: boolean }): Promise<BlockNode>;
  /** Prints a line for the user (stderr in the CLI); absent when nobody listens. */
  report?(line: string): void;
  /**
   * True when no format was given and probing chose this one (QEMU's `bs->probed`).
   * A probed raw node must refuse writes that would make the file probe as another
   * format: a guest could otherwise turn its disk into an image naming host files.
   */
  readonly probed?: boolean;
  /**
   * The name of the format a file starting with `header` (graph.ts's `PROBE_BYTES` long,
   * zero-filled past the file's end) probes as, by the same rules the graph used.
   */
  probeFormat?(header: Uint8Array): string | undefined;
}

/** What a format's `create` gets from the graph. */
export interface CreateContext {
  /** Creates the protocol-level file (sparse, with preallocation where asked). */
  createFile(filename: string, sizeBytes: number, opts: ParsedOptions): Promise<void>;
  /** Opens a protocol node read-write (to write the new image's metadata). */
  openFile(filename: string, options: { readOnly: boolean }): Promise<BlockNode>;
  /** Opens an image through the graph (to read a backing file's size). */
  openImage(filename: string, options: ImageOpenOptions): Promise<BlockNode>;
  /** Resolves a backing name relative to the image being created, as QEMU does. */
  resolveBacking(imageFilename: string, backingName: string): string;
}
