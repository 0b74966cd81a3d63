// The virtio memory balloon (virtio 1.2 §5.5): inflate, deflate and statistics queues

import type { DeviceState, MemoryBalloon } from "../../../core/device.ts";
import { VIRTIO_ID_BALLOON } from "./constants.ts";
import type { VirtioDeviceModel, VirtioHost } from "./pci.ts";
import type { DescChain, VirtQueue } from "./queue.ts";

/** Feature bits (virtio 1.2 §5.5.3). */
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
/** Queue indexes. */
export const VIRTIO_BALLOON_INFLATE = 0;
export const VIRTIO_BALLOON_DEFLATE = 1;
export const VIRTIO_BALLOON_STATS = 2;
/** Balloon page frames are always 4 KiB, whatever the guest's page size. */
export const VIRTIO_BALLOON_PFN_SHIFT = 12;
/** Offsets in struct virtio_balloon_config. */
export const BALLOON_CFG_NUM_PAGES = 0;
export const BALLOON_CFG_ACTUAL = 4;
/** One statistic: u16 tag, u64 value (packed). */
const STAT_BYTES = 10;
/** The most PFNs vmkit reads from one inflate or deflate buffer (QEMU's driver sends 256). */
const MAX_PFNS_PER_BUFFER = 1 << 16;

/** Statistic tag names (virtio 1.2 §5.5.6.3), as QEMU's `guest-stats` names them. */
export const BALLOON_STAT_NAMES: Readonly<Record<number, string>> = {
  0: "stat-swap-in",
  1: "stat-swap-out",
  2: "stat-major-faults",
  3: "stat-minor-faults",
  4: "stat-free-memory",
  5: "stat-total-memory",
  6: "stat-available-memory",
  7: "stat-disk-caches",
  8: "stat-htlb-pgalloc",
  9: "stat-htlb-pgfail",
};

/**
 * virtio-balloon: the host sets a target number of 4 KiB pages in config; the driver
 * gives pages back through the inflate queue (vmkit zeroes them, as QEMU's discard makes
 * them read back), takes them again through the deflate queue and reports `actual`.
 * The last statistics the driver sent are kept; {@linkcode requestStats} asks for more.
 */
export class VirtioBalloon implements VirtioDeviceModel, MemoryBalloon {
  readonly deviceType = VIRTIO_ID_BALLOON;
  readonly classCode = 0x00ff00;
  readonly queueSizes = [128, 128, 128];
  readonly featureBits = [VIRTIO_BALLOON_F_STATS_VQ];
  readonly config = new Uint8Array(8);
  /** Page frame numbers the guest has given up. */
  readonly inflated = new Set<number>();
  /** Pages zeroed by inflate so far (each page once while it stays in the balloon). */
  pagesZeroed = 0;
  /** The last statistics, by tag. */
  stats: Record<number, number> = {};
  #host!: VirtioHost;
  #view = new DataView(this.config.buffer);
  /** The stats buffer the device holds until it wants fresh numbers. */
  #statsChain: DescChain | null = null;
  #actualListeners: (() => void)[] = [];

  attach(host: VirtioHost): void {
    this.#host = host;
  }

  /** The target size of the balloon in 4 KiB pages (config num_pages). */
  get targetPages(): number {
    return this.#view.getUint32(BALLOON_CFG_NUM_PAGES, true);
  }

  /** The pages the driver says it holds (config actual). */
  get actualPages(): number {
    return this.#view.getUint32(BALLOON_CFG_ACTUAL, true);
  }

  /** Asks the guest for a balloon of `pages` 4 KiB pages (the monitor's `balloon`). */
  setTargetPages(pages: number): void {
    this.#view.setUint32(BALLOON_CFG_NUM_PAGES, pages >>> 0, true);
    this.#host.configChanged();
  }

  /** Calls `listener` when the driver writes a new `actual` (QEMU's BALLOON_CHANGE). */
  onActualChange(listener: () => void): void {
    this.#actualListeners.push(listener);
  }

  configWrite(offset: number, size: number, value: number): void {
    const before = this.actualPages;
    // Only `actual` belongs to the driver.
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if (at >= BALLOON_CFG_ACTUAL && at < BALLOON_CFG_ACTUAL + 4) {
        this.config[at] = (value >>> (8 * i)) & 0xff;
      }
    }
    if (this.actualPages !== before) { for (const l of this.#actualListeners) l(); }
  }

  queueNotify(index: number): void {
    const q = this.#host.queue(index);
    if (index === VIRTIO_BALLOON_STATS) {
      const chain = q.pop();
      if (!chain) return;
      this.#readStats(chain);
      // The driver refills stats only when the device returns the buffer: keep it.
      const held = this.#statsChain;
      this.#statsChain = chain;
      if (held) {
        q.push(held.head, 0);
        this.#host.notifyQueue(index);
      }
      return;
    }
    let pushed = false;
    for (;;) {
      const chain = q.pop();
      if (!chain) break;
      this.#pages(q, chain, index === VIRTIO_BALLOON_INFLATE);
      q.push(chain.head, 0);
      pushed = true;
    }
    if (pushed) this.#host.notifyQueue(index);
  }

  #pages(q: VirtQueue, chain: DescChain, inflate: boolean): void {
    const count = Math.min(Math.floor(chain.readableBytes / 4), MAX_PFNS_PER_BUFFER);
    const bytes = new Uint8Array(count * 4);
    try {
      q.readFrom(chain, 0, bytes);
    } catch {
      return;
    }
    const view = new DataView(bytes.buffer);
    const memory = this.#host.memory;
    for (let i = 0; i < count; i++) {
      const pfn = view.getUint32(4 * i, true);
      if (!inflate) {
        this.inflated.delete(pfn);
        continue;
      }
      // A page already in the balloon is not zeroed again: repeating one PFN 8M times
      // in a notify costs a set lookup each, not 32 GiB of writes.
      if (this.inflated.has(pfn)) continue;
      const addr = pfn * 2 ** VIRTIO_BALLOON_PFN_SHIFT;
      const r = addr < 2 ** memory.addressBits ? memory.regionAt(addr) : undefined;
      // Frames that are not RAM are ignored, as QEMU does.
      if (!r || r.kind !== "ram") continue;
      r.bytes!.fill(0, addr - r.base, Math.min(addr - r.base + 4096, r.size));
      this.pagesZeroed++;
      this.inflated.add(pfn);
    }
  }

  #readStats(chain: DescChain): void {
    const count = Math.min(Math.floor(chain.readableBytes / STAT_BYTES), 64);
    const bytes = new Uint8Array(count * STAT_BYTES);
    try {
      this.#host.queue(VIRTIO_BALLOON_STATS).readFrom(chain, 0, bytes);
    } catch {
      return;
    }
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < count; i++) {
      const tag = view.getUint16(STAT_BYTES * i, true);
      const lo = view.getUint32(STAT_BYTES * i + 2, true);
      const hi = view.getUint32(STAT_BYTES * i + 6, true);
      this.stats[tag] = hi * 2 ** 32 + lo;
    }
  }

  /** Returns the held stats buffer so the driver sends fresh statistics. */
  requestStats(): void {
    const chain = this.#statsChain;
    if (!chain) return;
    this.#statsChain = null;
    try {
      this.#host.queue(VIRTIO_BALLOON_STATS).push(chain.head, 0);
      this.#host.notifyQueue(VIRTIO_BALLOON_STATS);
    } catch (e) {
      this.#host.fail(e);
    }
  }

  reset(): void {
    this.#statsChain = null;
    this.inflated.clear();
    this.stats = {};
    this.#view.setUint32(BALLOON_CFG_ACTUAL, 0, true);
  }

  saveState(): DeviceState {
    return { config: this.config.slice(), inflated: [...this.inflated] };
  }

  loadState(state: DeviceState): void {
    this.config.set(state.config as Uint8Array);
    this.inflated.clear();
    for (const pfn of state.inflated as number[]) this.inflated.add(pfn);
    this.#statsChain = null;
  }
}
