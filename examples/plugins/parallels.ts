// The parallels format (Parallels/Virtuozzo "expanding" disks) as an external plugin: `--plugin examples/plugins/parallels.ts`
//
// Layout (docs/interop/parallels.txt in QEMU): a 64-byte header, the block allocation table
// (BAT: one u32 per cluster, 0 = unallocated) right after it, then data clusters from
// `data_off` (in sectors). With the "WithoutFreeSpace" magic a BAT entry counts sectors;
// with "WithouFreSpacExt" (what QEMU creates) it counts clusters. Fields are little-endian.

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
  UsageError,
} from "../../mod.ts";

/** The original magic: BAT entries are sector offsets. */
export const HEADER_MAGIC = "WithoutFreeSpace";
/** The newer magic QEMU writes: BAT entries are cluster offsets. */
export const HEADER_MAGIC2 = "WithouFreSpacExt";
export const HEADER_VERSION = 2;
/** `inuse` while an image is open read-write. */
export const HEADER_INUSE_MAGIC = 0x746f6e59;
const HEADER_BYTES = 64;
const SECTOR = 512;
const DEFAULT_CLUSTER_SIZE = 1 << 20;
/** QEMU's geometry for new images (not used on the image level). */
const HEADS_NUMBER = 16;
const SEC_IN_CYL = 32;

/** Create options, in the order qemu-img 7.2 prints them. */
export const PARALLELS_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: "size", type: "size", help: "Virtual disk size" },
  {
    name: "cluster_size",
    type: "size",
    help: "Parallels image cluster size",
    default: DEFAULT_CLUSTER_SIZE,
  },
];

/** The decoded header. */
export interface ParallelsHeader {
  magic: string;
  heads: number;
  cylinders: number;
  /** Sectors per cluster. */
  tracks: number;
  batEntries: number;
  nbSectors: number;
  inuse: number;
  /** First data sector. */
  dataOff: number;
  flags: number;
  extOff: number;
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

/** Scores a file header: 100 for either magic with version 2. */
export function probeParallels(header: Uint8Array): number {
  if (header.length < HEADER_BYTES) return 0;
  const magic = latin1(header.subarray(0, 16));
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (magic !== HEADER_MAGIC && magic !== HEADER_MAGIC2) return 0;
  return v.getUint32(16, true) === HEADER_VERSION ? 100 : 0;
}

/** Decodes the header and checks it against the file's size. */
export function parseParallelsHeader(buf: Uint8Array, fileSize: number): ParallelsHeader {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = latin1(buf.subarray(0, 16));
  if ((magic !== HEADER_MAGIC && magic !== HEADER_MAGIC2) || v.getUint32(16, true) !== 2) {
    throw new ImageFormatError("Image not in Parallels format");
  }
  const nb = v.getBigUint64(36, true);
  const h: ParallelsHeader = {
    magic,
    heads: v.getUint32(20, true),
    cylinders: v.getUint32(24, true),
    tracks: v.getUint32(28, true),
    batEntries: v.getUint32(32, true),
    // The old format keeps only 32 bits of the sector count.
    nbSectors: magic === HEADER_MAGIC ? Number(nb & 0xffffffffn) : Number(nb),
    inuse: v.getUint32(44, true),
    dataOff: v.getUint32(48, true),
    flags: v.getUint32(52, true),
    extOff: Number(v.getBigUint64(56, true)),
  };
  if (h.tracks === 0) throw new ImageFormatError("Invalid image: Zero sectors per track");
  if (h.tracks > 0x7fffffff / 513) throw new ImageFormatError("Invalid image: Too big cluster");
  if (!Number.isSafeInteger(h.nbSectors * SECTOR)) {
    throw new ImageFormatError("Invalid image: virtual size too large");
  }
  // The BAT must lie inside the file, so a header cannot ask for more memory than it holds.
  if (HEADER_BYTES + h.batEntries * 4 > Math.max(fileSize, HEADER_BYTES)) {
    throw new ImageFormatError("Invalid image: Catalog past the end of the file");
  }
  if (h.batEntries * h.tracks < h.nbSectors) {
    throw new ImageFormatError("Invalid image: Catalog smaller than the disk");
  }
  const batEnd = Math.ceil((HEADER_BYTES + h.batEntries * 4) / SECTOR);
  if (h.dataOff === 0) h.dataOff = batEnd;
  if (h.dataOff < batEnd) throw new ImageFormatError("Invalid image: incorrect data offset");
  return h;
}

/** Encodes the 64-byte header. */
export function encodeParallelsHeader(h: ParallelsHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES);
  const v = new DataView(buf.buffer);
  for (let i = 0; i < 16; i++) buf[i] = h.magic.charCodeAt(i);
  v.setUint32(16, HEADER_VERSION, true);
  v.setUint32(20, h.heads, true);
  v.setUint32(24, h.cylinders, true);
  v.setUint32(28, h.tracks, true);
  v.setUint32(32, h.batEntries, true);
  v.setBigUint64(36, BigInt(h.nbSectors), true);
  v.setUint32(44, h.inuse, true);
  v.setUint32(48, h.dataOff, true);
  v.setUint32(52, h.flags, true);
  v.setBigUint64(56, BigInt(h.extOff), true);
  return buf;
}

/** An opened parallels image. */
export class ParallelsNode implements BlockNode {
  readonly driver = "parallels";
  readonly backing = null;
  #h: ParallelsHeader;
  #bat: Uint32Array;
  /** Sectors per BAT unit: 1 for the old magic, a cluster for the new one. */
  #offMultiplier: number;
  /** The first sector past every cluster in use: where the next cluster goes. */
  #dataEnd: number;
  // Allocations run one at a time: two writes must not take the same cluster.
  #tail: Promise<void> = Promise.resolve();

  constructor(readonly file: BlockNode, header: ParallelsHeader, bat: Uint32Array) {
    this.#h = header;
    this.#bat = bat;
    this.#offMultiplier = header.magic === HEADER_MAGIC ? 1 : header.tracks;
    this.#dataEnd = header.dataOff;
    for (let i = 0; i < bat.length; i++) {
      const sector = bat[i] * this.#offMultiplier;
      if (bat[i] && sector >= this.#dataEnd) this.#dataEnd = sector + header.tracks;
    }
  }

  get filename(): string {
    return this.file.filename;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  get #clusterBytes(): number {
    return this.#h.tracks * SECTOR;
  }

  size(): number {
    return this.#h.nbSectors * SECTOR;
  }

  /** The file offset of BAT entry `index`'s cluster, or 0 when unallocated. */
  #hostOffset(index: number): number {
    const e = this.#bat[index];
    if (e === 0) return 0;
    const at = e * this.#offMultiplier * SECTOR;
    if (
      at % SECTOR || at + this.#clusterBytes > Math.max(this.file.size(), this.#dataEnd * SECTOR)
    ) {
      throw new IoError(`Corrupt parallels image: BAT entry ${index} points past the end`);
    }
    return at;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.#checkRange(offset, buf.length);
    const cs = this.#clusterBytes;
    for (let done = 0; done < buf.length;) {
      const at = offset + done;
      const inCluster = at % cs;
      const n = Math.min(buf.length - done, cs - inCluster);
      const part = buf.subarray(done, done + n);
      const host = this.#hostOffset(Math.floor(at / cs));
      if (host === 0) part.fill(0);
      else await this.file.read(host + inCluster, part);
      done += n;
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, data.length);
    return this.#locked(async () => {
      const cs = this.#clusterBytes;
      for (let done = 0; done < data.length;) {
        const at = offset + done;
        const inCluster = at % cs;
        const n = Math.min(data.length - done, cs - inCluster);
        const part = data.subarray(done, done + n);
        const index = Math.floor(at / cs);
        const host = this.#hostOffset(index);
        if (host !== 0) {
          await this.file.write(host + inCluster, part);
        } else {
          // A new cluster at the end, zeroes around the data; the BAT entry after the data.
          const whole = new Uint8Array(cs);
          whole.set(part, inCluster);
          const sector = this.#dataEnd;
          await this.file.write(sector * SECTOR, whole);
          this.#dataEnd += this.#h.tracks;
          this.#bat[index] = sector / this.#offMultiplier;
          const entry = new Uint8Array(4);
          new DataView(entry.buffer).setUint32(0, this.#bat[index], true);
          await this.file.write(HEADER_BYTES + index * 4, entry);
        }
        done += n;
      }
    });
  }

  writeZeroes(offset: number, bytes: number): Promise<void> {
    this.#checkWritable();
    this.#checkRange(offset, bytes);
    return this.#locked(async () => {
      const cs = this.#clusterBytes;
      for (let done = 0; done < bytes;) {
        const at = offset + done;
        const inCluster = at % cs;
        const n = Math.min(bytes - done, cs - inCluster);
        // An unallocated cluster already reads as zeroes (parallels has no backing file).
        const host = this.#hostOffset(Math.floor(at / cs));
        if (host !== 0) await this.file.write(host + inCluster, new Uint8Array(n));
        done += n;
      }
    });
  }

  discard(): Promise<void> {
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return this.file.flush();
  }

  blockStatus(offset: number, bytes: number): Promise<BlockStatus> {
    const cs = this.#clusterBytes;
    const limit = Math.min(bytes, this.size() - offset);
    const first = Math.floor(offset / cs);
    const host = this.#hostOffset(first);
    let n = Math.min(limit, cs - (offset % cs));
    for (let i = first + 1; n < limit; i++) {
      const next = this.#hostOffset(i);
      if ((next !== 0) !== (host !== 0)) break;
      if (host !== 0 && next !== host + (i - first) * cs) break;
      n = Math.min(limit, n + cs);
    }
    if (host === 0) return Promise.resolve({ bytes: n, allocated: false, data: false, zero: true });
    return Promise.resolve({
      bytes: n,
      allocated: true,
      data: true,
      zero: false,
      hostOffset: host + (offset % cs),
      file: this.file,
    });
  }

  truncate(): Promise<void> {
    return Promise.reject(new NotSupportedError("Image format driver does not support resize"));
  }

  allocatedBytes(): number {
    return this.file.allocatedBytes();
  }

  async close(): Promise<void> {
    try {
      if (!this.readOnly) {
        await this.#locked(async () => {
          // Closed cleanly: clear `inuse` and drop preallocated space past the last cluster.
          this.#h.inuse = 0;
          await this.file.write(0, encodeParallelsHeader(this.#h));
          if (this.file.size() > this.#dataEnd * SECTOR) {
            await this.file.truncate(this.#dataEnd * SECTOR, { shrink: true });
          }
          await this.file.flush();
        });
      }
    } finally {
      await this.file.close();
    }
  }

  /** Marks the image in use on disk (done when it is opened read-write). */
  async markInUse(): Promise<void> {
    this.#h.inuse = HEADER_INUSE_MAGIC;
    await this.file.write(0, encodeParallelsHeader(this.#h));
    await this.file.flush();
  }

  /**
   * BAT entries past the end of the file are corruptions; file space past the last
   * cluster is a leak. With repair, bad entries are cleared and the file is cut.
   */
  async check(repair: RepairMode): Promise<CheckResult> {
    const cs = this.#clusterBytes;
    const fix = repair !== "none" && !this.readOnly;
    const fileSize = this.file.size();
    const messages: string[] = [];
    let corruptions = 0;
    let corruptionsFixed = 0;
    let allocated = 0;
    let fragmented = 0;
    let prev = 0;
    let high = 0;
    for (let i = 0; i < this.#bat.length; i++) {
      // As QEMU counts fragmentation: a hole in the BAT restarts the run.
      if (this.#bat[i] === 0) {
        prev = 0;
        continue;
      }
      const at = this.#bat[i] * this.#offMultiplier * SECTOR;
      if (at + cs > fileSize) {
        messages.push(`${fix ? "Repairing" : "ERROR"} out of range offset in BAT entry ${i}`);
        corruptions++;
        if (fix) {
          this.#bat[i] = 0;
          await this.file.write(HEADER_BYTES + i * 4, new Uint8Array(4));
          corruptionsFixed++;
        }
        continue;
      }
      allocated++;
      if (prev !== 0 && prev + cs !== at) fragmented++;
      prev = at;
      high = Math.max(high, at);
    }
    // QEMU's image end: one cluster past the highest cluster (a cluster even when there is
    // none, so qemu-img reports the BAT of an empty small-cluster image as leaked space).
    const imageEnd = high + cs;
    let leaks = 0;
    let leaksFixed = 0;
    if (fileSize > imageEnd) {
      const extra = fileSize - imageEnd;
      messages.push(`${fix ? "Repairing" : "ERROR"} space leaked at the end of the image ${extra}`);
      leaks = Math.ceil(extra / cs);
      if (fix) {
        // Never cut into the header and BAT, whatever the count above says.
        await this.file.truncate(Math.max(imageEnd, this.#h.dataOff * SECTOR), { shrink: true });
        leaksFixed = leaks;
      }
    }
    return {
      corruptions,
      leaks,
      checkErrors: 0,
      corruptionsFixed,
      leaksFixed,
      imageEndOffset: imageEnd,
      allocatedClusters: allocated,
      totalClusters: this.#bat.length,
      fragmentedClusters: fragmented,
      compressedClusters: 0,
      messages,
    };
  }

  #locked(fn: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
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

/** Opens a parallels image on `file`. */
export async function openParallels(
  file: BlockNode,
  _opts: ParsedOptions,
  _ctx: OpenContext,
): Promise<ParallelsNode> {
  if (file.size() < HEADER_BYTES) throw new ImageFormatError("Image not in Parallels format");
  const first = new Uint8Array(HEADER_BYTES);
  await file.read(0, first);
  const h = parseParallelsHeader(first, file.size());
  if (h.inuse === HEADER_INUSE_MAGIC && !file.readOnly) {
    throw new ImageFormatError(
      "parallels: Image was not closed correctly; cannot be opened read/write",
    );
  }
  const raw = new Uint8Array(h.batEntries * 4);
  await file.read(HEADER_BYTES, raw);
  const v = new DataView(raw.buffer);
  const bat = new Uint32Array(h.batEntries);
  for (let i = 0; i < bat.length; i++) bat[i] = v.getUint32(i * 4, true);
  const node = new ParallelsNode(file, h, bat);
  if (!file.readOnly) await node.markInUse();
  return node;
}

/** Creates a parallels image as `qemu-img create -f parallels` does. */
export async function createParallels(
  filename: string,
  sizeBytes: number,
  opts: ParsedOptions,
  ctx: CreateContext,
): Promise<void> {
  const clusterSize = (opts.cluster_size as number | undefined) ?? DEFAULT_CLUSTER_SIZE;
  if (clusterSize < SECTOR || clusterSize % SECTOR || clusterSize > 0x7fffffff / 513 * SECTOR) {
    throw new UsageError("Cluster size must be a multiple of 512 bytes");
  }
  const totalSize = Math.ceil(sizeBytes / SECTOR) * SECTOR;
  const batEntries = Math.ceil(totalSize / clusterSize);
  if (batEntries > 0x7fffffff / 4) throw new UsageError("Image size is too large for this format");
  const batBytes = Math.ceil((HEADER_BYTES + batEntries * 4) / clusterSize) * clusterSize;
  const header: ParallelsHeader = {
    magic: HEADER_MAGIC2,
    heads: HEADS_NUMBER,
    cylinders: Math.floor(totalSize / SECTOR / HEADS_NUMBER / SEC_IN_CYL),
    tracks: clusterSize / SECTOR,
    batEntries,
    nbSectors: totalSize / SECTOR,
    inuse: 0,
    dataOff: batBytes / SECTOR,
    flags: 0,
    extOff: 0,
  };
  const fileOpts = { ...opts };
  delete fileOpts.size;
  delete fileOpts.cluster_size;
  await ctx.createFile(filename, 0, fileOpts);
  const file = await ctx.openFile(filename, { readOnly: false });
  try {
    // The BAT is zeroes (every cluster unallocated): extending the file makes it so.
    await file.truncate(batBytes);
    await file.write(0, encodeParallelsHeader(header));
    await file.flush();
  } finally {
    await file.close();
  }
}

/** The parallels image format plugin. */
export default {
  apiVersion: PLUGIN_API_VERSION,
  kind: "format",
  name: "parallels",
  summary: "Parallels disk image (example plugin)",
  options: PARALLELS_CREATE_OPTIONS,
  probe: probeParallels,
  create: createParallels,
  open: openParallels,
} satisfies FormatDescriptor;
