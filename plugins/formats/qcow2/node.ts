// The qcow2 block node: the BlockNode methods on top of the mapping and I/O code (open.ts opens)

import type {
  AmendOptions,
  BlockNode,
  BlockStatus,
  CheckResult,
  FormatSpecificInfo,
  RepairMode,
  SnapshotCreateOptions,
  SnapshotInfo,
  TruncateOptions,
} from "../../../core/block/driver.ts";
import { InvariantError, IoError } from "../../../core/errors.ts";
import type { OptionSpec, ParsedOptions } from "../../../core/options.ts";
import { QCOW2_AMEND_OPTIONS } from "./options.ts";
import type { CacheSizes } from "./cache_options.ts";
import { newMapping } from "./cluster.ts";
import {
  compressionTypeName,
  QCOW2_COMPAT_LAZY_REFCOUNTS,
  QCOW2_INCOMPAT_CORRUPT,
  QCOW2_INCOMPAT_DIRTY,
} from "./header.ts";
import { detectMetadataPreallocation, markClean, type Qcow2Image, writeHeader } from "./image.ts";
import {
  QCOW2_SUBCLUSTER_COMPRESSED,
  QCOW2_SUBCLUSTER_NORMAL,
  QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC,
  QCOW2_SUBCLUSTER_ZERO_ALLOC,
  QCOW2_SUBCLUSTER_ZERO_PLAIN,
} from "./layout.ts";
import { snapshotInfos } from "./snapshot.ts";
import type { DirtyBitmapHost } from "../../../core/block/dirty_bitmap.ts";
import type { Qcow2Bitmaps } from "./bitmaps_store.ts";
import { bitmapHost } from "./bitmap_host.ts";
// A cycle by design: open.ts builds a Qcow2Node, and #reload opens the file again.
import { openQcow2 } from "./open.ts";

const RESOLVED = Promise.resolve();

/**
 * The guest I/O code (io.ts, 25 KB): loaded by the open of a writable image, and by
 * the first guest read of a read-only one, so `img info`, which reads no guest data,
 * never loads it. Every write path runs on a writable image, where it is loaded.
 */
type GuestIo = typeof import("./io.ts");
let guestIo: GuestIo | undefined;

export async function loadGuestIo(): Promise<GuestIo> {
  // A string literal, so `deno compile` embeds the module.
  return guestIo ??= await import("./io.ts");
}

/** The guest I/O code of a writable image (loaded by its open). */
function writeIo(): GuestIo {
  if (guestIo === undefined) throw new InvariantError("qcow2 guest I/O used before it loaded");
  return guestIo;
}
/** The largest VM state savevm may store in an image (1 TiB). */
const QCOW2_MAX_VMSTATE_BYTES = 2 ** 40;

/** An opened qcow2 image. */
export class Qcow2Node implements BlockNode {
  readonly driver = "qcow2";
  #img: Qcow2Image;
  #caches: CacheSizes;
  #dataNode: BlockNode | null;
  #tail: Promise<unknown> = RESOLVED;
  #busy = 0;
  #closed = false;
  #cleanTimer: ReturnType<typeof setInterval> | undefined;

  #opts: ParsedOptions;
  /** Loaded with the image when it has bitmaps, else with the first bitmap added. */
  #bitmaps: Qcow2Bitmaps | undefined;
  #bitmapHost: DirtyBitmapHost | undefined;

  constructor(
    img: Qcow2Image,
    caches: CacheSizes,
    dataNode: BlockNode | null,
    opts: ParsedOptions,
    bitmaps: Qcow2Bitmaps | undefined,
  ) {
    this.#img = img;
    this.#bitmaps = bitmaps;
    this.#opts = opts;
    this.#caches = caches;
    this.#dataNode = dataNode;
    if (caches.cleanIntervalSec > 0 && !img.readOnly) {
      const timer = setInterval(() => {
        if (this.#busy === 0) {
          this.#img.map.cache.cleanUnused();
          this.#img.refcounts.cache.cleanUnused();
        }
      }, caches.cleanIntervalSec * 1000);
      Deno.unrefTimer(timer as unknown as number);
      this.#cleanTimer = timer;
    }
  }

  get filename(): string {
    return this.#img.file.node.filename;
  }
  get readOnly(): boolean {
    return this.#img.readOnly;
  }
  get file(): BlockNode {
    return this.#img.file.node;
  }
  get backing(): BlockNode | null {
    return this.#img.backing;
  }
  get backingFilename(): string | undefined {
    return this.#img.header.backingFile;
  }
  get backingFormat(): string | undefined {
    return this.#img.header.backingFormat;
  }
  get clusterSize(): number {
    return this.#img.layout.clusterSize;
  }
  /** The image's persistent dirty bitmaps (the code for them loads with the first one). */
  get dirtyBitmaps(): DirtyBitmapHost {
    // deno-lint-ignore no-this-alias
    const node = this;
    return this.#bitmapHost ??= bitmapHost({
      // Getters: a snapshot apply or cache invalidation replaces the image state.
      get img() {
        return node.#img;
      },
      get bitmaps() {
        return node.#bitmaps;
      },
      set bitmaps(loaded) {
        node.#bitmaps = loaded;
      },
    });
  }
  /** The external data file node, if the image has one. */
  get dataFile(): BlockNode | null {
    return this.#dataNode;
  }

  size(): number {
    return this.#img.header.size;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    if (offset < 0 || offset + buf.length > this.#img.header.size) {
      return Promise.reject(this.#rangeError(offset, buf.length));
    }
    try {
      if (guestIo === undefined) {
        return loadGuestIo().then((io) => io.readGuest(this.#img, offset, buf));
      }
      return guestIo.readGuest(this.#img, offset, buf) ?? RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWrite(offset, data.length);
    this.#bitmaps?.markDirty(offset, data.length);
    return this.#serialize(() => writeIo().writeGuest(this.#img, offset, data));
  }

  writeZeroes(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void> {
    this.#checkWrite(offset, bytes);
    this.#bitmaps?.markDirty(offset, bytes);
    return this.#serialize(() =>
      writeIo().zeroGuest(this.#img, offset, bytes, options?.unmap ?? false)
    );
  }

  discard(offset: number, bytes: number): Promise<void> {
    this.#checkWrite(offset, bytes);
    this.#bitmaps?.markDirty(offset, bytes);
    return this.#serialize(() => writeIo().discardGuest(this.#img, offset, bytes));
  }

  writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWrite(offset, data.length);
    this.#bitmaps?.markDirty(offset, data.length);
    if (data.length === 0) {
      // No data: the end of a compressed stream. Like qcow2_co_pwritev_compressed_part,
      // round the file up to a whole sector to ease sector-based readers.
      return this.#serialize(() => {
        const file = this.#img.file.node;
        const end = file.size();
        if (end % 512 !== 0) return file.truncate(Math.ceil(end / 512) * 512);
      });
    }
    // Compression starts now, on the host library's threads; the allocation and the
    // write keep the order of the calls.
    return writeIo().queueCompressedWrite(this.#img, offset, data, (work) => this.#serialize(work));
  }

  flush(): Promise<void> {
    if (this.#img.readOnly || this.#closed) return RESOLVED;
    return this.#serialize(async () => {
      this.#flushMetadata();
      await this.#img.file.node.flush();
      if (this.#dataNode) await this.#dataNode.flush();
    });
  }

  #flushMetadata(): void {
    const img = this.#img;
    img.map.cache.flush();
    img.refcounts.flush();
  }

  /** Whether the image looks metadata-preallocated; decided at the first block status. */
  #metadataPreallocation: boolean | undefined;

  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const img = this.#img;
    const n = Math.min(bytes, img.header.size - offset);
    if (n <= 0) throw this.#rangeError(offset, bytes);
    const m = newMapping();
    img.map.lookup(offset, n, m);
    const s: BlockStatus = { bytes: m.bytes, allocated: false, data: false, zero: false };
    switch (m.type) {
      case QCOW2_SUBCLUSTER_NORMAL:
        s.allocated = true;
        s.data = true;
        break;
      case QCOW2_SUBCLUSTER_ZERO_PLAIN:
      case QCOW2_SUBCLUSTER_ZERO_ALLOC:
        s.allocated = true;
        s.zero = true;
        break;
      case QCOW2_SUBCLUSTER_COMPRESSED:
        s.allocated = true;
        s.data = true;
        s.compressed = true;
        break;
      default:
        if (img.backing === null) s.zero = true;
    }
    // qcow2_co_block_status: every cluster with a host cluster has a known offset, zeroed or not.
    if (
      m.type === QCOW2_SUBCLUSTER_NORMAL || m.type === QCOW2_SUBCLUSTER_ZERO_ALLOC ||
      m.type === QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC
    ) {
      s.hostOffset = m.hostOffset;
      s.file = img.data.node;
      if (m.type === QCOW2_SUBCLUSTER_NORMAL) {
        this.#metadataPreallocation ??= detectMetadataPreallocation(img);
        s.recurse = this.#metadataPreallocation;
      }
    }
    return await Promise.resolve(s);
  }

  truncate(sizeBytes: number, options: TruncateOptions = {}): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(async () => {
      // Bitmaps follow the disk's size; one in use cannot (qcow2_truncate_bitmaps_check).
      this.#bitmaps?.checkResizable();
      await (await import("./truncate.ts")).truncateImage(this.#img, sizeBytes, options);
      this.#bitmaps?.resize(this.#img.header.size);
    });
  }

  allocatedBytes(): number {
    // qemu-img's "disk size" counts the image file only, not an external data file.
    return this.#img.file.node.allocatedBytes();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#cleanTimer !== undefined) clearInterval(this.#cleanTimer);
    await this.#tail.catch(() => {});
    const img = this.#img;
    try {
      if (!img.readOnly) {
        // Bitmaps go back to the image first, as QEMU's qcow2_inactivate.
        await this.#bitmaps?.store();
        this.#flushMetadata();
        img.file.syncSync();
        // A lazy-refcount image is consistent again once everything is on disk.
        if (img.lazy) markClean(img);
      }
    } finally {
      this.#closed = true;
      await img.file.node.close();
      if (this.#dataNode) await this.#dataNode.close();
      if (img.backing) await img.backing.close();
    }
  }

  formatInfo(): FormatSpecificInfo {
    const h = this.#img.header;
    const data: Record<string, unknown> = {};
    const human: string[] = [];
    const add = (key: string, label: string, value: unknown) => {
      data[key] = value;
      human.push(`    ${label}: ${value}`);
    };
    add("compat", "compat", h.version >= 3 ? "1.1" : "0.10");
    add("compression-type", "compression type", compressionTypeName(h.compressionType));
    if (h.version >= 3) {
      add(
        "lazy-refcounts",
        "lazy refcounts",
        (h.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) !== 0n,
      );
      this.#bitmaps?.describe(data, human);
    }
    add("refcount-bits", "refcount bits", this.#img.layout.refcountBits);
    if (h.version >= 3) {
      if (this.#img.hasDataFile && h.dataFile !== undefined) {
        add("data-file", "data file", h.dataFile);
      }
      if (this.#img.hasDataFile) add("data-file-raw", "data file raw", this.#img.dataFileRaw);
      add("corrupt", "corrupt", (h.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) !== 0n);
      add("extended-l2", "extended l2", this.#img.layout.extendedL2);
    }
    return { type: "qcow2", data, humanLines: human };
  }

  snapshots(): SnapshotInfo[] {
    return snapshotInfos(this.#img.snapshots);
  }

  snapshotCreate(name: string, options?: SnapshotCreateOptions): Promise<SnapshotInfo> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(async () => {
      const { createSnapshot } = await import("./snapshot_ops.ts");
      const info = await this.#discardingFreed(() => createSnapshot(this.#img, name, options));
      // The snapshot keeps the VM state; the active table lets go of it, as QEMU's
      // qcow2_snapshot_create does (else the next savevm would copy it on write).
      const vmBytes = options?.vmStateSize ?? 0;
      if (vmBytes > 0) {
        const cs = this.#img.layout.clusterSize;
        await writeIo().discardGuest(
          this.#img,
          this.#vmStateOffset(),
          Math.ceil(vmBytes / cs) * cs,
        );
      }
      return info;
    });
  }

  // --- the VM state area of savevm (QEMU's qcow2_save_vmstate/qcow2_load_vmstate) ---

  /** Where the VM state lives: the first L1 entry past the disk (qcow2_vm_state_offset). */
  #vmStateOffset(): number {
    const L = this.#img.layout;
    return L.l1EntriesFor(this.#img.header.size) * L.l2Entries * L.clusterSize;
  }

  #checkVmState(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > QCOW2_MAX_VMSTATE_BYTES) {
      throw new IoError(`VM state request out of range: offset ${offset} length ${bytes}`);
    }
  }

  writeVmState(offset: number, data: Uint8Array): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    this.#checkVmState(offset, data.length);
    return this.#serialize(() =>
      writeIo().writeGuest(this.#img, this.#vmStateOffset() + offset, data)
    );
  }

  readVmState(offset: number, buf: Uint8Array): Promise<void> {
    try {
      this.#checkVmState(offset, buf.length);
      const at = this.#vmStateOffset() + offset;
      if (guestIo === undefined) {
        return loadGuestIo().then((io) => io.readGuest(this.#img, at, buf));
      }
      return guestIo.readGuest(this.#img, at, buf) ?? RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  snapshotApply(idOrName: string): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    if ((this.#bitmaps?.size ?? 0) > 0) {
      return Promise.reject(new IoError("Device has active dirty bitmaps"));
    }
    return this.#serialize(async () => {
      const { applySnapshot } = await import("./snapshot_ops.ts");
      return this.#discardingFreed(() => applySnapshot(this.#img, idOrName));
    });
  }

  snapshotLoadTmp(id: string | undefined, name: string | undefined): Promise<boolean> {
    if (!this.#img.readOnly) return Promise.reject(new IoError("Device is not readonly"));
    return this.#serialize(async () =>
      (await import("./snapshot_ops.ts")).loadSnapshotTmp(this.#img, id, name)
    );
  }

  snapshotDelete(idOrName: string): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(async () => {
      const { deleteSnapshot } = await import("./snapshot_ops.ts");
      return this.#discardingFreed(() => deleteSnapshot(this.#img, idOrName));
    });
  }

  changeBackingFile(name: string | undefined, format: string | undefined): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(() => {
      const h = this.#img.header;
      const old = { file: h.backingFile, format: h.backingFormat };
      h.backingFile = name === "" ? undefined : name;
      h.backingFormat = h.backingFile === undefined ? undefined : format;
      try {
        writeHeader(this.#img);
      } catch (e) {
        h.backingFile = old.file;
        h.backingFormat = old.format;
        throw e;
      }
    });
  }

  /**
   * Reads the header, L1 table and snapshot table again and forgets every cached table,
   * after another node of the same file wrote it (HMP `commit` into a backing file the
   * running graph holds read-only), as QEMU's `bdrv_co_invalidate_cache`. The backing
   * and data file nodes stay as they are.
   */
  invalidateCache(): Promise<void> {
    return this.#serialize(async () => {
      if (!this.#img.readOnly) this.#flushMetadata();
      await this.#img.file.node.invalidateCache?.();
      await this.#dataNode?.invalidateCache?.();
      await this.#reload();
    });
  }

  /** Reads the image state from the file again, keeping the backing and data nodes. */
  async #reload(): Promise<void> {
    const img = this.#img;
    const fresh = await openQcow2(img.file.node, this.#opts, {
      options: { readOnly: img.readOnly, noBacking: img.backing === null },
      openBacking: () => Promise.reject(new IoError("backing file changed")),
      openFile: () => Promise.reject(new IoError("data file changed")),
    }, { backing: img.backing, dataNode: this.#dataNode, bitmaps: this.#bitmaps }) as Qcow2Node;
    if (fresh.#cleanTimer !== undefined) clearInterval(fresh.#cleanTimer);
    this.#img = fresh.#img;
    this.#bitmaps?.rebind(this.#img);
    this.#metadataPreallocation = undefined;
  }

  /**
   * Deallocates every cluster so that all data comes from the backing node again, as
   * QEMU's qcow2_make_empty: most images are rewritten as new and the file cut short
   * (make_completely_empty); the others have every cluster discarded.
   */
  makeEmpty(): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(async () => {
      const img = this.#img;
      // Loaded here: only `img commit` and `img rebase` empty an image.
      const { canEmptyCompletely, makeCompletelyEmpty } = await import("./make_empty.ts");
      // QEMU's qcow2_make_empty rewrites the image only when it has no bitmaps.
      if (canEmptyCompletely(img) && img.header.bitmapsExtension === undefined) {
        this.#flushMetadata();
        await makeCompletelyEmpty(img);
        await this.#reload();
        return;
      }
      const cs = img.layout.clusterSize;
      const end = Math.ceil(img.header.size / cs) * cs;
      await writeIo().deallocateGuest(img, 0, end);
    });
  }

  get amendOptions(): readonly OptionSpec[] {
    return QCOW2_AMEND_OPTIONS;
  }

  amend(opts: ParsedOptions, options?: AmendOptions): Promise<void> {
    if (this.#img.readOnly) {
      return Promise.reject(new IoError(`Cannot write to read-only '${this.filename}'`));
    }
    return this.#serialize(async () =>
      (await import("./amend.ts")).amendImage(this.#img, opts, {
        ...options,
        onReplaced: (img) => {
          this.#img = img;
          this.#bitmaps?.rebind(img);
        },
      })
    );
  }

  check(repair: RepairMode): Promise<CheckResult> {
    return this.#serialize(async () => (await import("./check.ts")).checkImage(this.#img, repair));
  }

  isDirty(): boolean {
    return (this.#img.header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) !== 0n;
  }

  stats(): Record<string, number> {
    const img = this.#img;
    return {
      l2CacheHits: img.map.cache.hits,
      l2CacheMisses: img.map.cache.misses,
      l2CacheEntries: this.#caches.l2Entries,
      l2CacheEntryBytes: this.#caches.l2EntryBytes,
      l2CacheBytes: this.#caches.l2Entries * this.#caches.l2EntryBytes,
      l2CacheFullCoverageBytes: this.#caches.l2FullCoverageBytes,
      refcountCacheHits: img.refcounts.cache.hits,
      refcountCacheMisses: img.refcounts.cache.misses,
      refcountCacheEntries: this.#caches.refcountEntries,
    };
  }

  /**
   * Runs a snapshot operation, then punches holes where it freed clusters, as QEMU
   * does with pass-discard-snapshot (on by default). The operation has written its
   * refcounts by then, so a crash never leaves a hole under a counted cluster.
   */
  async #discardingFreed<T>(work: () => T): Promise<T> {
    const img = this.#img;
    const freed: number[] = [];
    const previous = img.refcounts.onFreed;
    img.refcounts.onFreed = (offset, clusters) => {
      previous?.(offset, clusters);
      freed.push(offset);
    };
    let result: T;
    try {
      result = work();
    } finally {
      img.refcounts.onFreed = previous;
    }
    const cs = img.layout.clusterSize;
    for (const offset of freed) {
      if (img.refcounts.get(offset / cs) === 0) await img.file.node.discard(offset, cs);
    }
    return result;
  }

  #serialize<T>(fn: () => Promise<T> | T): Promise<T> {
    this.#busy++;
    const run = this.#tail.then(fn).finally(() => {
      this.#busy--;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  #checkWrite(offset: number, bytes: number): void {
    if (this.#img.readOnly) throw new IoError(`Cannot write to read-only '${this.filename}'`);
    if (offset < 0 || bytes < 0 || offset + bytes > this.#img.header.size) {
      throw this.#rangeError(offset, bytes);
    }
  }

  #rangeError(offset: number, bytes: number): IoError {
    return new IoError(
      `Request out of range: offset ${offset} length ${bytes} in an image of ${this.#img.header.size} bytes`,
    );
  }
}
