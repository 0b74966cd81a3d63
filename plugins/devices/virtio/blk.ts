// The virtio block device (virtio 1.2 §5.2): requests from one queue to a BlockBackend

import type { BlockIo } from "../../../core/block/backend.ts";
import type { DeviceState } from "../../../core/device.ts";
import { VIRTIO_ID_BLOCK } from "./constants.ts";
import type { VirtioDeviceModel, VirtioHost } from "./pci.ts";
import type { DescChain, VirtQueue } from "./queue.ts";

/** Feature bits (virtio 1.2 §5.2.3). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Request types (virtio 1.2 §5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
/** Request status byte values. */
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
/** The GET_ID answer is at most this long (not NUL-terminated when full). */
export const VIRTIO_BLK_ID_BYTES = 20;
/** discard / write zeroes segment flag: the device may unmap. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** Offsets in struct virtio_blk_config (virtio 1.2 §5.2.4). */
export const BLK_CFG_CAPACITY = 0;
export const BLK_CFG_SIZE_MAX = 8;
export const BLK_CFG_SEG_MAX = 12;
export const BLK_CFG_CYLINDERS = 16;
export const BLK_CFG_HEADS = 18;
export const BLK_CFG_SECTORS = 19;
export const BLK_CFG_BLK_SIZE = 20;
export const BLK_CFG_WRITEBACK = 32;
export const BLK_CFG_NUM_QUEUES = 34;
export const BLK_CFG_MAX_DISCARD_SECTORS = 36;
export const BLK_CFG_MAX_DISCARD_SEG = 40;
export const BLK_CFG_DISCARD_ALIGNMENT = 44;
export const BLK_CFG_MAX_WRITE_ZEROES_SECTORS = 48;
export const BLK_CFG_MAX_WRITE_ZEROES_SEG = 52;
export const BLK_CFG_WRITE_ZEROES_MAY_UNMAP = 56;
/** The config structure up to write_zeroes_may_unmap and its padding. */
export const BLK_CONFIG_BYTES = 60;

const SECTOR = 512;
/** The request header: u32 type, u32 reserved (ioprio), u64 sector. */
const HEADER_BYTES = 16;
/** One discard / write zeroes segment: u64 sector, u32 num_sectors, u32 flags. */
const SEGMENT_BYTES = 16;
/** QEMU's BDRV_REQUEST_MAX_SECTORS: the largest discard / write zeroes it advertises. */
const MAX_ZERO_SECTORS = 0x3fffff;
/**
 * The largest data transfer vmkit takes in one request; a larger one (a guest bug or an
 * attack on host memory) completes with IOERR.
 */
export const MAX_REQUEST_BYTES = 64 << 20;
/**
 * The data bytes vmkit holds for requests in flight at once. vmkit copies guest buffers
 * instead of mapping them, so without a bound one notify of 256 requests of 64 MiB
 * would ask the host for 16 GiB; past it, the queue waits for completions.
 */
export const MAX_BYTES_IN_FLIGHT = 64 << 20;

/** The disk a virtio-blk device drives: BlockIo plus what a BlockBackend adds when present. */
export type VirtioBlkDisk = BlockIo & {
  writeZeroes?(offset: number, bytes: number, options?: { unmap?: boolean }): Promise<void>;
  readonly cache?: { readonly writethrough: boolean };
};

/** How the device is set up. */
export interface VirtioBlkOptions {
  readOnly: boolean;
  /** `serial=` of the drive, answered to GET_ID. */
  serial?: string;
  /** Queue size (QEMU 7.2's default is 256). */
  queueSize?: number;
}

/** Request counters, for tests and the monitor. */
export interface VirtioBlkStats {
  [key: string]: number;
  reads: number;
  writes: number;
  flushes: number;
  /** Requests answered IOERR (bad sector range, memory, host I/O error, ...). */
  ioErrors: number;
  /** Requests answered UNSUPP. */
  unsupported: number;
  /** Chains with no room for a status byte (completed with nothing written). */
  malformed: number;
}

/** The data bytes a request holds while in flight: its buffers, at most MAX_REQUEST_BYTES. */
function dataBytes(chain: DescChain): number {
  return Math.min(Math.max(chain.readableBytes, chain.writableBytes), MAX_REQUEST_BYTES);
}

/** CHS geometry as QEMU's hd_geometry_guess picks it for a non-IDE disk. */
export function virtioBlkGeometry(
  sectorCount: number,
  bootSector: Uint8Array | null,
): { cylinders: number; heads: number; sectors: number } {
  const bySize = () => ({
    cylinders: Math.min(Math.max(Math.floor(sectorCount / (16 * 63)), 2), 16383),
    heads: 16,
    sectors: 63,
  });
  if (!bootSector || bootSector[510] !== 0x55 || bootSector[511] !== 0xaa) return bySize();
  const view = new DataView(bootSector.buffer, bootSector.byteOffset, bootSector.length);
  // An MBR partition that ends on a cylinder boundary tells the BIOS geometry.
  for (let i = 0; i < 4; i++) {
    const p = 0x1be + 16 * i;
    const endHead = bootSector[p + 5];
    const nrSects = view.getUint32(p + 12, true);
    if (!nrSects || !endHead) continue;
    const heads = endHead + 1;
    const sectors = bootSector[p + 6] & 63;
    if (sectors === 0) continue;
    const cylinders = Math.floor(sectorCount / (heads * sectors));
    if (cylinders < 1 || cylinders > 16383) continue;
    // More than 16 heads means the BIOS translated: use the physical default instead.
    return heads > 16 ? bySize() : { cylinders, heads, sectors };
  }
  return bySize();
}

/**
 * virtio-blk: reads, writes, flushes, GET_ID, discard and write zeroes on one queue,
 * through the same BlockBackend (scheduler, cache mode, format graph) as an IDE disk. A
 * bad request gets IOERR or UNSUPP in its status byte and the device keeps running.
 */
export class VirtioBlk implements VirtioDeviceModel {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly classCode = 0x010000;
  readonly queueSizes: readonly number[];
  readonly featureBits: readonly number[];
  readonly config = new Uint8Array(BLK_CONFIG_BYTES);
  readonly stats: VirtioBlkStats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    ioErrors: 0,
    unsupported: 0,
    malformed: 0,
  };
  #disk: VirtioBlkDisk;
  #options: VirtioBlkOptions;
  #host!: VirtioHost;
  #view: DataView;
  #inFlight = new Set<Promise<void>>();
  #bytesInFlight = 0;
  /** True while a queue waits for bytes in flight to drain before popping more. */
  #throttled = false;
  #geometry = { cylinders: 2, heads: 16, sectors: 63 };

  constructor(disk: VirtioBlkDisk, options: VirtioBlkOptions) {
    this.#disk = disk;
    this.#options = options;
    const queueSize = options.queueSize ?? 256;
    this.queueSizes = [queueSize];
    const bits = [
      VIRTIO_BLK_F_SEG_MAX,
      VIRTIO_BLK_F_GEOMETRY,
      VIRTIO_BLK_F_BLK_SIZE,
      VIRTIO_BLK_F_FLUSH,
      VIRTIO_BLK_F_TOPOLOGY,
      VIRTIO_BLK_F_CONFIG_WCE,
      VIRTIO_BLK_F_DISCARD,
      VIRTIO_BLK_F_WRITE_ZEROES,
    ];
    if (options.readOnly) bits.push(VIRTIO_BLK_F_RO);
    this.featureBits = bits;
    this.#view = new DataView(this.config.buffer);
    this.#geometry = virtioBlkGeometry(Math.floor(disk.size() / SECTOR), null);
    this.#fillConfig();
  }

  attach(host: VirtioHost): void {
    this.#host = host;
  }

  /** Reads the boot sector for the geometry, as QEMU does when the device is realized. */
  async realize(): Promise<void> {
    const sector = new Uint8Array(SECTOR);
    try {
      if (this.#disk.size() >= SECTOR) await this.#disk.read(0, sector);
      this.#geometry = virtioBlkGeometry(Math.floor(this.#disk.size() / SECTOR), sector);
    } catch {
      // An unreadable first sector leaves the size-based geometry.
    }
    this.#fillConfig();
  }

  #writebackDefault(): boolean {
    return !(this.#disk.cache?.writethrough ?? false);
  }

  #fillConfig(): void {
    const v = this.#view;
    const capacity = Math.floor(this.#disk.size() / SECTOR);
    v.setUint32(BLK_CFG_CAPACITY, capacity >>> 0, true);
    v.setUint32(BLK_CFG_CAPACITY + 4, Math.floor(capacity / 2 ** 32), true);
    v.setUint32(BLK_CFG_SIZE_MAX, 0, true);
    v.setUint32(BLK_CFG_SEG_MAX, this.queueSizes[0] - 2, true);
    v.setUint16(BLK_CFG_CYLINDERS, this.#geometry.cylinders, true);
    v.setUint8(BLK_CFG_HEADS, this.#geometry.heads);
    v.setUint8(BLK_CFG_SECTORS, this.#geometry.sectors);
    v.setUint32(BLK_CFG_BLK_SIZE, SECTOR, true);
    v.setUint8(BLK_CFG_WRITEBACK, this.#writebackDefault() ? 1 : 0);
    v.setUint16(BLK_CFG_NUM_QUEUES, 1, true);
    v.setUint32(BLK_CFG_MAX_DISCARD_SECTORS, MAX_ZERO_SECTORS, true);
    v.setUint32(BLK_CFG_MAX_DISCARD_SEG, 1, true);
    v.setUint32(BLK_CFG_DISCARD_ALIGNMENT, 1, true);
    v.setUint32(BLK_CFG_MAX_WRITE_ZEROES_SECTORS, MAX_ZERO_SECTORS, true);
    v.setUint32(BLK_CFG_MAX_WRITE_ZEROES_SEG, 1, true);
    v.setUint8(BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 0);
  }

  configWrite(offset: number, size: number, value: number): void {
    // Only `writeback` is writable (VIRTIO_BLK_F_CONFIG_WCE, virtio 1.2 §5.2.5).
    if (offset === BLK_CFG_WRITEBACK && size === 1) this.config[offset] = value ? 1 : 0;
  }

  /** True while the guest has the write cache on (writes are not flushed one by one). */
  get writeback(): boolean {
    return this.config[BLK_CFG_WRITEBACK] === 1;
  }

  queueNotify(index: number): void {
    const q = this.#host.queue(index);
    this.#throttled = false;
    for (;;) {
      const chain = q.pop();
      if (!chain) break;
      const bytes = dataBytes(chain);
      if (this.#bytesInFlight > 0 && this.#bytesInFlight + bytes > MAX_BYTES_IN_FLIGHT) {
        // Taken again when a completion frees room (see #complete).
        q.unpop();
        this.#throttled = true;
        break;
      }
      this.#start(q, chain, bytes);
    }
  }

  /** Bytes currently held for requests in flight (for tests). */
  get bytesInFlight(): number {
    return this.#bytesInFlight;
  }

  #start(q: VirtQueue, chain: DescChain, bytes: number): void {
    const generation = this.#host.generation;
    if (chain.writableBytes < 1) {
      // No status byte: nothing can be said to the driver; hand the chain back empty.
      this.stats.malformed++;
      q.push(chain.head, 0);
      this.#host.notifyQueue(q.index);
      return;
    }
    this.#bytesInFlight += bytes;
    const release = () => {
      this.#bytesInFlight -= bytes;
    };
    const work = this.#handle(q, chain).then(
      (r) => {
        release();
        this.#complete(q, chain, generation, r.status, r.written);
      },
      () => {
        release();
        this.#complete(q, chain, generation, VIRTIO_BLK_S_IOERR, 0);
      },
    );
    const tracked = this.#host.track(work);
    this.#inFlight.add(tracked);
    tracked.finally(() => this.#inFlight.delete(tracked));
  }

  #complete(q: VirtQueue, chain: DescChain, gen: number, status: number, written: number): void {
    if (gen !== this.#host.generation) return; // the device was reset meanwhile
    if (status === VIRTIO_BLK_S_IOERR) this.stats.ioErrors++;
    if (status === VIRTIO_BLK_S_UNSUPP) this.stats.unsupported++;
    let len = written + 1;
    try {
      q.writeTo(chain, chain.writableBytes - 1, new Uint8Array([status]));
    } catch {
      len = 0;
      this.stats.malformed++;
    }
    try {
      q.push(chain.head, len);
      this.#host.notifyQueue(q.index);
      if (this.#throttled && q.s.ready && this.#host.driverOk) this.queueNotify(q.index);
    } catch (e) {
      this.#host.fail(e);
    }
  }

  async #handle(q: VirtQueue, chain: DescChain): Promise<{ status: number; written: number }> {
    const ioerr = { status: VIRTIO_BLK_S_IOERR, written: 0 };
    // A buffer outside RAM is refused before anything is allocated for it.
    if (chain.readableBytes < HEADER_BYTES || chain.unmapped) return ioerr;
    const header = new Uint8Array(HEADER_BYTES);
    try {
      q.readFrom(chain, 0, header);
    } catch {
      return ioerr;
    }
    const hv = new DataView(header.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getUint32(8, true) + hv.getUint32(12, true) * 2 ** 32;
    const capacity = Math.floor(this.#disk.size() / SECTOR);
    const inRange = (first: number, count: number) =>
      Number.isSafeInteger(first) && first + count <= capacity;
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const bytes = chain.writableBytes - 1;
        if (bytes % SECTOR !== 0 || bytes > MAX_REQUEST_BYTES) return ioerr;
        if (!inRange(sector, bytes / SECTOR)) return ioerr;
        const data = new Uint8Array(bytes);
        this.stats.reads++;
        await this.#disk.read(sector * SECTOR, data);
        q.writeTo(chain, 0, data);
        return { status: VIRTIO_BLK_S_OK, written: bytes };
      }
      case VIRTIO_BLK_T_OUT: {
        const bytes = chain.readableBytes - HEADER_BYTES;
        if (bytes % SECTOR !== 0 || bytes > MAX_REQUEST_BYTES) return ioerr;
        if (this.#options.readOnly || !inRange(sector, bytes / SECTOR)) return ioerr;
        const data = new Uint8Array(bytes);
        q.readFrom(chain, HEADER_BYTES, data);
        this.stats.writes++;
        await this.#disk.write(sector * SECTOR, data);
        // With the guest's write cache off, each write is on disk before it completes.
        if (!this.writeback) await this.#disk.flush();
        return { status: VIRTIO_BLK_S_OK, written: 0 };
      }
      case VIRTIO_BLK_T_FLUSH:
        this.stats.flushes++;
        await this.#disk.flush();
        return { status: VIRTIO_BLK_S_OK, written: 0 };
      case VIRTIO_BLK_T_GET_ID: {
        const id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
        id.set(new TextEncoder().encode(this.#options.serial ?? "").subarray(0, id.length));
        const n = Math.min(id.length, chain.writableBytes - 1);
        q.writeTo(chain, 0, id.subarray(0, n));
        return { status: VIRTIO_BLK_S_OK, written: n };
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        return await this.#zeroOrDiscard(q, chain, type, capacity);
      default:
        return { status: VIRTIO_BLK_S_UNSUPP, written: 0 };
    }
  }

  async #zeroOrDiscard(
    q: VirtQueue,
    chain: DescChain,
    type: number,
    capacity: number,
  ): Promise<{ status: number; written: number }> {
    const ioerr = { status: VIRTIO_BLK_S_IOERR, written: 0 };
    const bytes = chain.readableBytes - HEADER_BYTES;
    // max_discard_seg and max_write_zeroes_seg are 1.
    if (bytes !== SEGMENT_BYTES) return { status: VIRTIO_BLK_S_UNSUPP, written: 0 };
    const seg = new Uint8Array(SEGMENT_BYTES);
    q.readFrom(chain, HEADER_BYTES, seg);
    const sv = new DataView(seg.buffer);
    const sector = sv.getUint32(0, true) + sv.getUint32(4, true) * 2 ** 32;
    const count = sv.getUint32(8, true);
    const flags = sv.getUint32(12, true);
    if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) {
      return { status: VIRTIO_BLK_S_UNSUPP, written: 0 };
    }
    if (type === VIRTIO_BLK_T_DISCARD && flags !== 0) {
      return { status: VIRTIO_BLK_S_UNSUPP, written: 0 };
    }
    if (count > MAX_ZERO_SECTORS || sector + count > capacity) return ioerr;
    if (this.#options.readOnly) return ioerr;
    // As QEMU's default `discard=ignore`, a discard succeeds and leaves the data.
    if (type === VIRTIO_BLK_T_DISCARD) return { status: VIRTIO_BLK_S_OK, written: 0 };
    if (this.#disk.writeZeroes) {
      await this.#disk.writeZeroes(sector * SECTOR, count * SECTOR);
    } else {
      const chunk = new Uint8Array(Math.min(count * SECTOR, 1 << 20));
      for (let done = 0; done < count * SECTOR; done += chunk.length) {
        const n = Math.min(chunk.length, count * SECTOR - done);
        await this.#disk.write(sector * SECTOR + done, chunk.subarray(0, n));
      }
    }
    if (!this.writeback) await this.#disk.flush();
    return { status: VIRTIO_BLK_S_OK, written: 0 };
  }

  /** Resolves when no request is in flight (for tests). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  reset(): void {
    // In-flight requests finish on the host but their completions are dropped.
    this.#throttled = false;
    this.config[BLK_CFG_WRITEBACK] = this.#writebackDefault() ? 1 : 0;
  }

  /** savevm drains disk I/O first; requests still on the host cannot be saved. */
  migrationBlocker(): string | null {
    return this.#inFlight.size > 0 ? `${this.#inFlight.size} disk requests are in flight` : null;
  }

  saveState(): DeviceState {
    return { writeback: this.config[BLK_CFG_WRITEBACK] };
  }

  loadState(state: DeviceState): void {
    this.config[BLK_CFG_WRITEBACK] = state.writeback as number;
  }
}
