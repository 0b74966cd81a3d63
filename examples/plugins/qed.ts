// The qed format (QEMU Enhanced Disk) as an external plugin: load it with `--plugin examples/plugins/qed.ts`
//
// Layout (docs/interop/qed_spec.txt in QEMU): a header cluster, then an L1 table, L2 tables
// and data clusters, all cluster-aligned. Every field is little-endian. An L2 entry is 0
// (unallocated: the backing file or zeroes), 1 (a zero cluster) or a data cluster's offset.

import {
  type BlockNode,
  type BlockStatus,
  type CheckResult,
  type CreateContext,
  type FormatDescriptor,
  ImageFormatError,
  IoError,
  NotSupportedError,
  type OpenContext,
  type OptionSpec,
  type ParsedOptions,
  PLUGIN_API_VERSION,
  type RepairMode,
  type TruncateOptions,
  UsageError,
} from "../../mod.ts";

/** "QED\0" read as a little-endian u32. */
export const QED_MAGIC = 0x00444551;
/** The image has a backing file (the name sits in the header cluster). */
export const QED_F_BACKING_FILE = 0x01;
/** Metadata may be inconsistent (set around allocating writes): check before use. */
export const QED_F_NEED_CHECK = 0x02;
/** The backing file is raw: never probe it. */
export const QED_F_BACKING_FORMAT_NO_PROBE = 0x04;
const QED_FEATURE_MASK = QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE;

/** L2 entry of a cluster that reads as zeroes without storage. */
export const QED_CLUSTER_ZERO = 1;
const QED_MIN_CLUSTER_SIZE = 4096;
const QED_MAX_CLUSTER_SIZE = 64 << 20;
const QED_DEFAULT_CLUSTER_SIZE = 64 << 10;
const QED_MIN_TABLE_SIZE = 1;
const QED_MAX_TABLE_SIZE = 16;
const QED_DEFAULT_TABLE_SIZE = 4;
/** Bytes of the fixed header; the backing file name follows it. */
const QED_HEADER_BYTES = 64;
/** L2 tables kept in memory at most (each is table_size clusters). */
const L2_CACHE_BYTES = 32 << 20;

/** Create options, in the order qemu-img 7.2 prints them in `Formatting ...`. */
export const QED_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  { name: "backing_file", type: "string", help: "File name of a base image" },
  { name: "backing_fmt", type: "string", help: "Image format of the base image" },
  {
    name: "cluster_size",
    type: "size",
    help: "Cluster size (in bytes)",
    default: QED_DEFAULT_CLUSTER_SIZE,
  },
  { name: "table_size", type: "size", help: "L1/L2 table size (in clusters)" },
];

/** The decoded header. */
export interface QedHeader {
  clusterSize: number;
  tableSize: number;
  headerSize: number;
  features: number;
  compatFeatures: number;
  autoclearFeatures: number;
  l1TableOffset: number;
  imageSize: number;
  backingFilenameOffset: number;
  backingFilenameSize: number;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isSafeInteger(n) && (n & (n - 1)) === 0 && n <= 2 ** 31;
}

/** Entries in one table of `h`. */
function tableEntries(h: QedHeader): number {
  return (h.tableSize * h.clusterSize) / 8;
}

/** The largest image size `h`'s tables can map (QEMU's qed_max_image_size). */
function maxImageSize(clusterSize: number, tableSize: number): number {
  const n = (tableSize * clusterSize) / 8;
  return n * n * clusterSize;
}

function u64(v: DataView, at: number): number {
  const big = v.getBigUint64(at, true);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageFormatError("Image is corrupt");
  return Number(big);
}

/** Scores a file header: 100 when it starts with the QED magic. */
export function probeQed(header: Uint8Array): number {
  if (header.length < QED_HEADER_BYTES) return 0;
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return v.getUint32(0, true) === QED_MAGIC ? 100 : 0;
}

/** Decodes a header and checks it as QEMU's open does; `fileSize` bounds the tables. */
export function parseQedHeader(buf: Uint8Array, fileSize: number): QedHeader {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0, true) !== QED_MAGIC) throw new ImageFormatError("Image not in QED format");
  const h: QedHeader = {
    clusterSize: v.getUint32(4, true),
    tableSize: v.getUint32(8, true),
    headerSize: v.getUint32(12, true),
    features: u64(v, 16),
    compatFeatures: u64(v, 24),
    autoclearFeatures: u64(v, 32),
    l1TableOffset: u64(v, 40),
    imageSize: u64(v, 48),
    backingFilenameOffset: v.getUint32(56, true),
    backingFilenameSize: v.getUint32(60, true),
  };
  if (h.features & ~QED_FEATURE_MASK) {
    throw new NotSupportedError(
      `Unsupported QED features: 0x${(h.features & ~QED_FEATURE_MASK).toString(16)}`,
    );
  }
  const { clusterSize: cs, tableSize: ts } = h;
  if (!isPowerOfTwo(cs) || cs < QED_MIN_CLUSTER_SIZE || cs > QED_MAX_CLUSTER_SIZE) {
    throw new ImageFormatError(`Invalid QED cluster size ${cs}`);
  }
  if (!isPowerOfTwo(ts) || ts < QED_MIN_TABLE_SIZE || ts > QED_MAX_TABLE_SIZE) {
    throw new ImageFormatError(`Invalid QED table size ${ts}`);
  }
  if (h.imageSize % 512 || h.imageSize > maxImageSize(cs, ts)) {
    throw new ImageFormatError(`Invalid QED image size ${h.imageSize}`);
  }
  if (h.headerSize === 0 || h.headerSize * cs > fileSize) {
    throw new ImageFormatError("Invalid QED header size");
  }
  // The whole L1 table must lie in the file: a hostile header cannot make us allocate
  // more than the file holds.
  if (
    h.l1TableOffset % cs || h.l1TableOffset < h.headerSize * cs ||
    h.l1TableOffset + ts * cs > fileSize
  ) {
    throw new ImageFormatError("Invalid QED L1 table offset");
  }
  if (h.features & QED_F_BACKING_FILE) {
    const end = h.backingFilenameOffset + h.backingFilenameSize;
    if (end > h.headerSize * cs || h.backingFilenameSize > 4096) {
      throw new ImageFormatError("Invalid QED backing file name");
    }
  }
  return h;
}

/** Encodes the 64-byte header. */
export function encodeQedHeader(h: QedHeader): Uint8Array {
  const buf = new Uint8Array(QED_HEADER_BYTES);
  const v = new DataView(buf.buffer);
  v.setUint32(0, QED_MAGIC, true);
  v.setUint32(4, h.clusterSize, true);
  v.setUint32(8, h.tableSize, true);
  v.setUint32(12, h.headerSize, true);
  v.setBigUint64(16, BigInt(h.features), true);
  v.setBigUint64(24, BigInt(h.compatFeatures), true);
  v.setBigUint64(32, BigInt(h.autoclearFeatures), true);
  v.setBigUint64(40, BigInt(h.l1TableOffset), true);
  v.setBigUint64(48, BigInt(h.imageSize), true);
  v.setUint32(56, h.backingFilenameOffset, true);
  v.setUint32(60, h.backingFilenameSize, true);
  return buf;
}

/** Reads a table of `count` u64 entries. */
function decodeTable(bytes: Uint8Array): Float64Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const t = new Float64Array(bytes.length / 8);
  for (let i = 0; i < t.length; i++) {
    t[i] = v.getUint32(i * 8, true) + v.getUint32(i * 8 + 4, true) * 2 ** 32;
  }
  return t;
}

function encodeEntry(value: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, value % 2 ** 32, true);
  v.setUint32(4, Math.floor(value / 2 ** 32), true);
  return b;
}

/** One mapped piece of a request: where guest bytes `[offset, offset+bytes)` live. */
interface Extent {
  /** 0 unallocated, 1 zero cluster, else the data cluster's file offset. */
  entry: number;
  /** Offset inside the cluster. */
  inCluster: number;
  bytes: number;
}

/** A simple FIFO lock: allocating operations run one at a time. */
class Lock {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(() => {}, () => {});
    return result;
  }
}

/** An opened QED image. */
export class QedNode implements BlockNode {
  readonly driver = "qed";
  readonly clusterSize: number;
  readonly backingFilename?: string;
  readonly backingFormat?: string;
  #h: QedHeader;
  #l1: Float64Array;
  #l2 = new Map<number, Float64Array>();
  #fileEnd: number;
  #lock = new Lock();
  #needCheckSet = false;

  constructor(
    readonly file: BlockNode,
    header: QedHeader,
    l1: Float64Array,
    readonly backing: BlockNode | null,
    backingName: { name?: string; format?: string },
  ) {
    this.#h = header;
    this.#l1 = l1;
    this.clusterSize = header.clusterSize;
    this.backingFilename = backingName.name;
    this.backingFormat = backingName.format;
    this.#fileEnd = Math.ceil(file.size() / header.clusterSize) * header.clusterSize;
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }

  size(): number {
    return this.#h.imageSize;
  }

  /** The L2 table at `offset`, from the cache or the file. */
  async #table(offset: number): Promise<Float64Array> {
    let t = this.#l2.get(offset);
    if (t) return t;
    this.#checkOffset(offset, this.#h.tableSize * this.#h.clusterSize);
    const bytes = new Uint8Array(this.#h.tableSize * this.#h.clusterSize);
    await this.file.read(offset, bytes);
    t = decodeTable(bytes);
    const perTable = bytes.length;
    while (this.#l2.size > 0 && (this.#l2.size + 1) * perTable > L2_CACHE_BYTES) {
      this.#l2.delete(this.#l2.keys().next().value!);
    }
    this.#l2.set(offset, t);
    return t;
  }

  /** A table or data offset must be aligned and inside the file, or the image is corrupt. */
  #checkOffset(offset: number, bytes: number): void {
    if (offset % this.#h.clusterSize || offset < this.#h.headerSize * this.#h.clusterSize) {
      throw new IoError(`Corrupt QED image: misaligned offset ${offset}`);
    }
    if (offset + bytes > this.#fileEnd) {
      throw new IoError(`Corrupt QED image: offset ${offset} past the end of the file`);
    }
  }

  /** Where guest `offset` lives, for at most `bytes` within its cluster. */
  async #map(offset: number, bytes: number): Promise<Extent> {
    const cs = this.#h.clusterSize;
    const n = tableEntries(this.#h);
    const cluster = Math.floor(offset / cs);
    const inCluster = offset % cs;
    const len = Math.min(bytes, cs - inCluster);
    const l2Offset = this.#l1[Math.floor(cluster / n)];
    if (l2Offset === 0) return { entry: 0, inCluster, bytes: len };
    const entry = (await this.#table(l2Offset))[cluster % n];
    if (entry > QED_CLUSTER_ZERO) this.#checkOffset(entry, cs);
    return { entry, inCluster, bytes: len };
  }

  async #readBacking(offset: number, buf: Uint8Array): Promise<void> {
    buf.fill(0);
    if (!this.backing) return;
    const end = Math.min(this.backing.size(), offset + buf.length);
    if (end > offset) await this.backing.read(offset, buf.subarray(0, end - offset));
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.#checkRange(offset, buf.length);
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const e = await this.#map(at, buf.length - done);
      const part = buf.subarray(done, done + e.bytes);
      if (e.entry === 0) await this.#readBacking(at, part);
      else if (e.entry === QED_CLUSTER_ZERO) part.fill(0);
      else await this.file.read(e.entry + e.inCluster, part);
      done += e.bytes;
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    return this.#lock.run(async () => {
      for (let done = 0; done < data.length;) {
        const at = offset + done;
        const e = await this.#map(at, data.length - done);
        const part = data.subarray(done, done + e.bytes);
        if (e.entry > QED_CLUSTER_ZERO) await this.file.write(e.entry + e.inCluster, part);
        else await this.#allocate(at - e.inCluster, e, part);
        done += e.bytes;
      }
    });
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    return this.#lock.run(async () => {
      for (let done = 0; done < bytes;) {
        const at = offset + done;
        const e = await this.#map(at, bytes - done);
        if (e.entry === QED_CLUSTER_ZERO) {
          // Already zeroes.
        } else if (e.bytes === this.#h.clusterSize) {
          // A whole cluster becomes a zero cluster (its old storage leaks, as in QEMU).
          await this.#setEntry(at, QED_CLUSTER_ZERO);
        } else if (e.entry > QED_CLUSTER_ZERO) {
          await this.file.write(e.entry + e.inCluster, new Uint8Array(e.bytes));
        } else {
          await this.#allocate(at - e.inCluster, e, new Uint8Array(e.bytes));
        }
        done += e.bytes;
      }
    });
  }

  discard(): Promise<void> {
    // QEMU's qed driver has no discard: clusters are never given back.
    return Promise.resolve();
  }

  /**
   * Allocates the cluster at guest `clusterStart` holding `part` at `e.inCluster`, the
   * rest from what the cluster read as before (backing data or zeroes). Data goes to
   * the file before the table entry that points at it.
   */
  async #allocate(clusterStart: number, e: Extent, part: Uint8Array): Promise<void> {
    const cs = this.#h.clusterSize;
    const whole = new Uint8Array(cs);
    const inImage = Math.min(cs, this.size() - clusterStart);
    if (e.entry === 0) await this.#readBacking(clusterStart, whole.subarray(0, inImage));
    whole.set(part, e.inCluster);
    await this.#markNeedCheck();
    const dataOffset = this.#fileEnd;
    this.#fileEnd += cs;
    await this.file.write(dataOffset, whole);
    await this.#setEntry(clusterStart, dataOffset);
  }

  /** Points the L2 entry of guest `clusterStart` at `value`, allocating the L2 table if needed. */
  async #setEntry(clusterStart: number, value: number): Promise<void> {
    const cs = this.#h.clusterSize;
    const n = tableEntries(this.#h);
    const cluster = Math.floor(clusterStart / cs);
    const l1Index = Math.floor(cluster / n);
    await this.#markNeedCheck();
    let l2Offset = this.#l1[l1Index];
    if (l2Offset === 0) {
      const table = new Float64Array(n);
      table[cluster % n] = value;
      l2Offset = this.#fileEnd;
      this.#fileEnd += this.#h.tableSize * cs;
      const bytes = new Uint8Array(this.#h.tableSize * cs);
      bytes.set(encodeEntry(value), (cluster % n) * 8);
      await this.file.write(l2Offset, bytes);
      this.#l2.set(l2Offset, table);
      this.#l1[l1Index] = l2Offset;
      await this.file.write(this.#h.l1TableOffset + l1Index * 8, encodeEntry(l2Offset));
      return;
    }
    const table = await this.#table(l2Offset);
    table[cluster % n] = value;
    await this.file.write(l2Offset + (cluster % n) * 8, encodeEntry(value));
  }

  /** Sets QED_F_NEED_CHECK on disk before the first allocation since the last flush. */
  async #markNeedCheck(): Promise<void> {
    if (this.#needCheckSet) return;
    this.#needCheckSet = true;
    this.#h.features |= QED_F_NEED_CHECK;
    await this.#writeHeader();
    await this.file.flush();
  }

  async #writeHeader(): Promise<void> {
    await this.file.write(0, encodeQedHeader(this.#h));
  }

  flush(): Promise<void> {
    if (this.readOnly) return this.file.flush();
    return this.#lock.run(async () => {
      await this.file.flush();
      if (this.#needCheckSet) {
        // Everything the tables point at is durable: the image is consistent again.
        this.#h.features &= ~QED_F_NEED_CHECK;
        this.#needCheckSet = false;
        await this.#writeHeader();
        await this.file.flush();
      }
    });
  }

  async blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const limit = Math.min(bytes, this.size() - offset);
    const first = await this.#map(offset, limit);
    const kind = (e: Extent) => (e.entry > QED_CLUSTER_ZERO ? 2 : e.entry);
    let n = first.bytes;
    while (n < limit) {
      const next = await this.#map(offset + n, limit - n);
      if (kind(next) !== kind(first)) break;
      if (first.entry > QED_CLUSTER_ZERO && next.entry !== first.entry + first.inCluster + n) break;
      n += next.bytes;
    }
    if (first.entry === 0) {
      return { bytes: n, allocated: false, data: false, zero: this.backing === null };
    }
    if (first.entry === QED_CLUSTER_ZERO) {
      return { bytes: n, allocated: true, data: false, zero: true };
    }
    return {
      bytes: n,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: first.entry + first.inCluster,
      file: this.file,
    };
  }

  truncate(sizeBytes: number, _options?: TruncateOptions): Promise<void> {
    this.#checkWritable();
    if (sizeBytes < this.size()) {
      return Promise.reject(new NotSupportedError("QED does not support shrinking images"));
    }
    if (sizeBytes % 512 || sizeBytes > maxImageSize(this.#h.clusterSize, this.#h.tableSize)) {
      return Promise.reject(new UsageError("Invalid image size specified"));
    }
    return this.#lock.run(async () => {
      this.#h.imageSize = sizeBytes;
      await this.#writeHeader();
    });
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) await this.flush();
    } finally {
      await this.backing?.close();
      await this.file.close();
    }
  }

  isDirty(): boolean {
    return (this.#h.features & QED_F_NEED_CHECK) !== 0;
  }

  /**
   * Checks that every table and data offset is aligned, inside the file and used once,
   * and counts leaked clusters; with repair, bad entries become unallocated.
   */
  async check(repair: RepairMode): Promise<CheckResult> {
    const cs = this.#h.clusterSize;
    const fix = repair !== "none" && !this.readOnly;
    const firstCluster = this.#h.l1TableOffset / cs;
    const clusters = Math.ceil(this.file.size() / cs);
    const used = new Uint8Array(clusters);
    for (let c = firstCluster; c < firstCluster + this.#h.tableSize; c++) used[c] = 1;
    let corruptions = 0;
    let corruptionsFixed = 0;
    let allocated = 0;
    let fragmented = 0;
    const valid = (offset: number, count: number) => {
      if (offset % cs || offset / cs < this.#h.headerSize || offset / cs + count > clusters) {
        return false;
      }
      for (let c = offset / cs; c < offset / cs + count; c++) if (used[c]) return false;
      for (let c = offset / cs; c < offset / cs + count; c++) used[c] = 1;
      return true;
    };
    for (let i = 0; i < this.#l1.length; i++) {
      const l2Offset = this.#l1[i];
      if (l2Offset === 0) continue;
      if (!valid(l2Offset, this.#h.tableSize)) {
        corruptions++;
        if (fix) {
          this.#l1[i] = 0;
          await this.file.write(this.#h.l1TableOffset + i * 8, encodeEntry(0));
          corruptionsFixed++;
        }
        continue;
      }
      const table = await this.#table(l2Offset);
      // Fragmentation as QEMU counts it: a data cluster not right after the previous
      // data cluster of the same L2 table.
      let last = 0;
      for (let j = 0; j < table.length; j++) {
        const e = table[j];
        if (e <= QED_CLUSTER_ZERO) continue;
        if (last !== 0 && e !== last + cs) fragmented++;
        last = e;
        if (!valid(e, 1)) {
          corruptions++;
          if (fix) {
            table[j] = 0;
            await this.file.write(l2Offset + j * 8, encodeEntry(0));
            corruptionsFixed++;
          }
          continue;
        }
        allocated++;
      }
    }
    let leaks = 0;
    for (let c = this.#h.headerSize; c < clusters; c++) if (!used[c]) leaks++;
    if (fix && corruptions === corruptionsFixed && this.isDirty()) {
      this.#h.features &= ~QED_F_NEED_CHECK;
      await this.#writeHeader();
      await this.file.flush();
    }
    return {
      corruptions,
      leaks,
      checkErrors: 0,
      corruptionsFixed,
      leaksFixed: 0,
      allocatedClusters: allocated,
      totalClusters: Math.ceil(this.size() / cs),
      fragmentedClusters: fragmented,
      compressedClusters: 0,
      messages: [],
    };
  }

  #checkWritable(): void {
    if (this.readOnly) throw new IoError("Cannot write to a read-only image");
  }

  #checkRange(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || offset + bytes > this.size()) {
      throw new IoError(
        `Request out of range: offset ${offset} length ${bytes} in an image of ${this.size()} bytes`,
      );
    }
  }
}

/** Opens a QED image on `file`, with its backing file unless `noBacking`. */
export async function openQed(
  file: BlockNode,
  _opts: ParsedOptions,
  ctx: OpenContext,
): Promise<QedNode> {
  if (file.size() < QED_HEADER_BYTES) throw new ImageFormatError("Image not in QED format");
  const first = new Uint8Array(QED_HEADER_BYTES);
  await file.read(0, first);
  const h = parseQedHeader(first, file.size());
  const l1 = decodeTable(await readBytes(file, h.l1TableOffset, h.tableSize * h.clusterSize));
  let name: string | undefined;
  let format: string | undefined;
  if (h.features & QED_F_BACKING_FILE) {
    const bytes = await readBytes(file, h.backingFilenameOffset, h.backingFilenameSize);
    name = new TextDecoder().decode(bytes);
    if (h.features & QED_F_BACKING_FORMAT_NO_PROBE) format = "raw";
  }
  const backing = name !== undefined && !ctx.options.noBacking
    ? await ctx.openBacking(name, format)
    : null;
  const node = new QedNode(file, h, l1, backing, { name, format });
  // QEMU checks (and repairs) an image left with NEED_CHECK before using it read-write.
  if (node.isDirty() && !file.readOnly) {
    const r = await node.check("all");
    if (r.corruptions !== r.corruptionsFixed) {
      await node.close();
      throw new ImageFormatError("Image corrupted");
    }
  }
  return node;
}

async function readBytes(file: BlockNode, offset: number, bytes: number): Promise<Uint8Array> {
  const buf = new Uint8Array(bytes);
  await file.read(offset, buf);
  return buf;
}

/** Creates a QED image as `qemu-img create -f qed` does. */
export async function createQed(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const clusterSize = (opts.cluster_size as number | undefined) ?? QED_DEFAULT_CLUSTER_SIZE;
  const tableSize = (opts.table_size as number | undefined) ?? QED_DEFAULT_TABLE_SIZE;
  if (!isPowerOfTwo(clusterSize) || clusterSize < QED_MIN_CLUSTER_SIZE) {
    throw new UsageError(
      `QED cluster size must be within range [${QED_MIN_CLUSTER_SIZE}, ${QED_MAX_CLUSTER_SIZE}] and power of 2`,
    );
  }
  if (clusterSize > QED_MAX_CLUSTER_SIZE) {
    throw new UsageError(
      `QED cluster size must be within range [${QED_MIN_CLUSTER_SIZE}, ${QED_MAX_CLUSTER_SIZE}] and power of 2`,
    );
  }
  if (!isPowerOfTwo(tableSize) || tableSize > QED_MAX_TABLE_SIZE) {
    throw new UsageError(
      `QED table size must be within range [${QED_MIN_TABLE_SIZE}, ${QED_MAX_TABLE_SIZE}] and power of 2`,
    );
  }
  if (sizeBytes % 512 || sizeBytes > maxImageSize(clusterSize, tableSize)) {
    throw new UsageError(
      `QED image size must be a non-zero multiple of cluster size and less than ${
        maxImageSize(clusterSize, tableSize)
      } bytes`,
    );
  }
  const backing = opts.backing_file as string | undefined;
  const backingBytes = backing === undefined ? new Uint8Array() : new TextEncoder().encode(backing);
  const headerSize = 1;
  if (QED_HEADER_BYTES + backingBytes.length > headerSize * clusterSize) {
    throw new UsageError("Backing file name too long for the QED header");
  }
  let features = 0;
  if (backing !== undefined) {
    features |= QED_F_BACKING_FILE;
    if (opts.backing_fmt === "raw") features |= QED_F_BACKING_FORMAT_NO_PROBE;
  }
  const h: QedHeader = {
    clusterSize,
    tableSize,
    headerSize,
    features,
    compatFeatures: 0,
    autoclearFeatures: 0,
    l1TableOffset: headerSize * clusterSize,
    imageSize: sizeBytes,
    backingFilenameOffset: backing === undefined ? 0 : QED_HEADER_BYTES,
    backingFilenameSize: backingBytes.length,
  };
  const fileOpts = { ...opts };
  for (const k of ["size", "backing_file", "backing_fmt", "cluster_size", "table_size"]) {
    delete fileOpts[k];
  }
  await ctx.createFile(filename, 0, fileOpts);
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    // The L1 table is zeroes: extending the file makes it so.
    await file.truncate(h.l1TableOffset + tableSize * clusterSize);
    await file.write(QED_HEADER_BYTES, backingBytes);
    await file.write(0, encodeQedHeader(h));
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The qed image format plugin. */
export default {
  apiVersion: PLUGIN_API_VERSION,
  kind: "format",
  name: "qed",
  summary: "QEMU Enhanced Disk image (example plugin)",
  options: QED_CREATE_OPTIONS,
  supportsBacking: true,
  probe: probeQed,
  create: createQed,
  open: openQed,
} satisfies FormatDescriptor;
