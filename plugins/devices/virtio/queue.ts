// Split virtqueues (virtio 1.2 §2.7): descriptor chains from the avail ring, completions to the used ring

import type { AddressSpace } from "../../../core/memory/address_space.ts";
import {
  VIRTIO_PCI_QUEUE_ADDR_SHIFT,
  VIRTIO_PCI_VRING_ALIGN,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "./constants.ts";

/** Bytes of one descriptor: u64 addr, u32 len, u16 flags, u16 next. */
const DESC_BYTES = 16;
/**
 * The longest indirect table vmkit walks. The spec bounds it only by the 32-bit length;
 * a guest asking for more than this is refused rather than given a huge allocation.
 */
export const MAX_INDIRECT_DESCRIPTORS = 4096;

/** A guest-side mistake in the rings: the device stops using the queue (NEEDS_RESET). */
export class VirtQueueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VirtQueueError";
  }
}

/** One buffer of a chain in guest memory. */
export interface Segment {
  addr: number;
  len: number;
}

/** A descriptor chain taken from the avail ring: device-readable buffers, then writable ones. */
export interface DescChain {
  /** The head descriptor index, returned in the used ring. */
  head: number;
  readable: Segment[];
  writable: Segment[];
  readableBytes: number;
  writableBytes: number;
  /**
   * True when some buffer does not lie in RAM or ROM of the flattened view (checked when
   * the chain is popped, so a device refuses the request before it allocates anything).
   */
  unmapped?: boolean;
}

/** The RAM bytes behind `len` bytes at guest address `addr`, or a RangeError. */
function ram(memory: AddressSpace, addr: number, len: number): { bytes: Uint8Array; at: number } {
  if (!Number.isSafeInteger(addr) || addr < 0 || addr + len > 2 ** memory.addressBits) {
    throw new RangeError(`Guest address 0x${addr.toString(16)} is outside the address space`);
  }
  const r = memory.regionAt(addr);
  if (
    !r || r.kind !== "ram" || addr + len > r.base + r.size || memory.regionAt(addr + len - 1) !== r
  ) {
    throw new RangeError(`Guest address 0x${addr.toString(16)} is not RAM`);
  }
  return { bytes: r.bytes!, at: addr - r.base };
}

function read16(memory: AddressSpace, addr: number): number {
  const { bytes, at } = ram(memory, addr, 2);
  return bytes[at] | (bytes[at + 1] << 8);
}

function read32(memory: AddressSpace, addr: number): number {
  const { bytes, at } = ram(memory, addr, 4);
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function write16(memory: AddressSpace, addr: number, value: number): void {
  const { bytes, at } = ram(memory, addr, 2);
  bytes[at] = value;
  bytes[at + 1] = value >> 8;
}

function write32(memory: AddressSpace, addr: number, value: number): void {
  const { bytes, at } = ram(memory, addr, 4);
  bytes[at] = value;
  bytes[at + 1] = value >> 8;
  bytes[at + 2] = value >> 16;
  bytes[at + 3] = value >> 24;
}

/** The queue registers a transport programs, as plain numbers for save state. */
export interface VirtQueueState {
  [key: string]: number | boolean;
  size: number;
  ready: boolean;
  desc: number;
  avail: number;
  used: number;
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  signalledValid: boolean;
}

/**
 * One split virtqueue. The transport sets its size and ring addresses; the device
 * pops descriptor chains and pushes completions. Every guest address is checked to be
 * RAM: a bad ring or descriptor throws {@linkcode VirtQueueError}, a bad data buffer
 * throws RangeError when the device copies it (the device answers that request with an
 * error status).
 */
export class VirtQueue {
  readonly s: VirtQueueState;
  /** True when VIRTIO_F_RING_EVENT_IDX was negotiated. */
  eventIdx = false;
  /** True when VIRTIO_F_RING_INDIRECT_DESC was offered (indirect tables are accepted). */
  indirect = true;
  /** Chains popped and not yet pushed back (QEMU's `inuse`). */
  inUse = 0;
  #memory: AddressSpace;

  constructor(memory: AddressSpace, readonly index: number, readonly maxSize: number) {
    this.#memory = memory;
    this.s = {
      size: maxSize,
      ready: false,
      desc: 0,
      avail: 0,
      used: 0,
      lastAvail: 0,
      usedIdx: 0,
      signalledUsed: 0,
      signalledValid: false,
    };
  }

  /** Power-on values: disabled, addresses zero, full size. */
  reset(): void {
    Object.assign(this.s, {
      size: this.maxSize,
      ready: false,
      desc: 0,
      avail: 0,
      used: 0,
      lastAvail: 0,
      usedIdx: 0,
      signalledUsed: 0,
      signalledValid: false,
    });
    this.eventIdx = false;
    this.inUse = 0;
  }

  /** The legacy interface's page frame number of the ring (0 when the queue is off). */
  get pfn(): number {
    return this.s.ready ? Math.floor(this.s.desc / 2 ** VIRTIO_PCI_QUEUE_ADDR_SHIFT) : 0;
  }

  /**
   * Sets up the legacy layout at page `pfn` (virtio 1.2 §2.7.2 "Legacy Interfaces"): the
   * descriptor table, the avail ring right after it, the used ring on the next 4 KiB
   * boundary. `pfn` 0 turns the queue off.
   */
  setLegacyPfn(pfn: number): void {
    if (pfn === 0) {
      const size = this.s.size;
      this.reset();
      this.s.size = size;
      return;
    }
    const size = this.s.size;
    const desc = pfn * 2 ** VIRTIO_PCI_QUEUE_ADDR_SHIFT;
    const avail = desc + DESC_BYTES * size;
    // flags, idx, ring[size], used_event
    const availEnd = avail + 4 + 2 * size + 2;
    const used = Math.ceil(availEnd / VIRTIO_PCI_VRING_ALIGN) * VIRTIO_PCI_VRING_ALIGN;
    Object.assign(this.s, { desc, avail, used, ready: true, lastAvail: 0, usedIdx: 0 });
    this.s.signalledValid = false;
    this.inUse = 0;
  }

  /** Enables the queue with the addresses a modern driver wrote; the indexes start at 0. */
  enable(): void {
    this.s.ready = true;
    this.s.lastAvail = 0;
    this.s.usedIdx = 0;
    this.s.signalledValid = false;
    this.inUse = 0;
  }

  /** The driver's avail.idx. */
  availIdx(): number {
    return read16(this.#memory, this.s.avail + 2);
  }

  /** Chains the driver has made available and the device has not taken. */
  pending(): number {
    if (!this.s.ready) return 0;
    let n: number;
    try {
      n = (this.availIdx() - this.s.lastAvail) & 0xffff;
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: avail ring: ${(e as Error).message}`);
    }
    if (n > this.s.size) {
      throw new VirtQueueError(
        `virtqueue ${this.index}: avail index moved ${n} entries for a queue of ${this.s.size}`,
      );
    }
    return n;
  }

  /**
   * Takes the next available chain, or null when there is none. With EVENT_IDX, an
   * emptied queue asks the driver to notify at the next entry (avail_event). A driver
   * that makes more chains available than the queue holds while the device still owns
   * earlier ones breaks the queue, as QEMU's "Virtqueue size exceeded".
   */
  pop(): DescChain | null {
    if (this.pending() === 0) {
      this.#publishAvailEvent();
      return null;
    }
    if (this.inUse >= this.s.size) {
      throw new VirtQueueError(`virtqueue ${this.index}: Virtqueue size exceeded`);
    }
    const slot = this.s.lastAvail % this.s.size;
    let head: number;
    try {
      head = read16(this.#memory, this.s.avail + 4 + 2 * slot);
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: avail ring: ${(e as Error).message}`);
    }
    this.s.lastAvail = (this.s.lastAvail + 1) & 0xffff;
    const chain = this.#walk(head);
    this.inUse++;
    this.#publishAvailEvent();
    return chain;
  }

  /** Puts a taken chain back (the device could not use it yet: a NIC with a too-short buffer). */
  unpop(): void {
    this.s.lastAvail = (this.s.lastAvail - 1) & 0xffff;
    if (this.inUse > 0) this.inUse--;
  }

  #publishAvailEvent(): void {
    if (!this.eventIdx || !this.s.ready) return;
    try {
      // used->ring[size] is avail_event (virtio 1.2 §2.7.10).
      write16(this.#memory, this.s.used + 4 + 8 * this.s.size, this.s.lastAvail);
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: used ring: ${(e as Error).message}`);
    }
  }

  #readDesc(table: number, i: number): { addr: number; len: number; flags: number; next: number } {
    const at = table + DESC_BYTES * i;
    try {
      const lo = read32(this.#memory, at);
      const hi = read32(this.#memory, at + 4);
      return {
        addr: hi * 2 ** 32 + lo,
        len: read32(this.#memory, at + 8),
        flags: read16(this.#memory, at + 12),
        next: read16(this.#memory, at + 14),
      };
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: descriptor ${i}: ${(e as Error).message}`);
    }
  }

  // virtio 1.2 §2.7.5 and §2.7.5.3: follow `next` through the table, or through one
  // indirect table; writable buffers must come after the readable ones.
  #walk(head: number): DescChain {
    const chain: DescChain = {
      head,
      readable: [],
      writable: [],
      readableBytes: 0,
      writableBytes: 0,
      unmapped: false,
    };
    const size = this.s.size;
    if (head >= size) {
      throw new VirtQueueError(`virtqueue ${this.index}: head descriptor ${head} >= size ${size}`);
    }
    let table = this.s.desc;
    let limit = size;
    let i = head;
    let seen = 0;
    let inIndirect = false;
    for (;;) {
      if (++seen > limit) {
        throw new VirtQueueError(`virtqueue ${this.index}: descriptor chain loops`);
      }
      const d = this.#readDesc(table, i);
      if (d.flags & VIRTQ_DESC_F_INDIRECT) {
        if (inIndirect) {
          throw new VirtQueueError(`virtqueue ${this.index}: nested indirect descriptor`);
        }
        if (!this.indirect) {
          throw new VirtQueueError(`virtqueue ${this.index}: indirect descriptor not negotiated`);
        }
        if (d.flags & VIRTQ_DESC_F_NEXT) {
          throw new VirtQueueError(`virtqueue ${this.index}: indirect descriptor with NEXT`);
        }
        const count = d.len / DESC_BYTES;
        if (d.len === 0 || !Number.isInteger(count) || count > MAX_INDIRECT_DESCRIPTORS) {
          throw new VirtQueueError(
            `virtqueue ${this.index}: bad indirect table length ${d.len}`,
          );
        }
        inIndirect = true;
        table = d.addr;
        limit = count;
        i = 0;
        seen = 0;
        continue;
      }
      const seg = { addr: d.addr, len: d.len };
      if (!this.#memory.isDmaAddressable(d.addr, d.len)) chain.unmapped = true;
      if (d.flags & VIRTQ_DESC_F_WRITE) {
        chain.writable.push(seg);
        chain.writableBytes += d.len;
      } else {
        if (chain.writable.length > 0) {
          throw new VirtQueueError(
            `virtqueue ${this.index}: readable descriptor after a writable one`,
          );
        }
        chain.readable.push(seg);
        chain.readableBytes += d.len;
      }
      if (!(d.flags & VIRTQ_DESC_F_NEXT)) return chain;
      i = d.next;
      if (i >= limit) {
        throw new VirtQueueError(`virtqueue ${this.index}: next descriptor ${i} >= ${limit}`);
      }
    }
  }

  /** Returns chain `head` to the driver with `len` bytes written into its writable buffers. */
  push(head: number, len: number): void {
    const s = this.s;
    if (!s.ready) return;
    const slot = s.usedIdx % s.size;
    try {
      write32(this.#memory, s.used + 4 + 8 * slot, head);
      write32(this.#memory, s.used + 4 + 8 * slot + 4, len);
      s.usedIdx = (s.usedIdx + 1) & 0xffff;
      if (this.inUse > 0) this.inUse--;
      // The element is written before the index that publishes it.
      write16(this.#memory, s.used + 2, s.usedIdx);
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: used ring: ${(e as Error).message}`);
    }
  }

  /**
   * True when the driver wants an interrupt for what was pushed since the last time this
   * answered true: the avail ring's NO_INTERRUPT flag, or with EVENT_IDX used_event
   * (virtio 1.2 §2.7.10). `notifyOnEmpty` (legacy NOTIFY_ON_EMPTY) interrupts anyway
   * once the device has used every available buffer.
   */
  needsInterrupt(notifyOnEmpty = false): boolean {
    const s = this.s;
    if (!s.ready) return false;
    try {
      if (notifyOnEmpty && this.pending() === 0 && s.usedIdx === s.lastAvail) return true;
      if (!this.eventIdx) {
        return !(read16(this.#memory, s.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
      }
      const usedEvent = read16(this.#memory, s.avail + 4 + 2 * s.size);
      const old = s.signalledUsed;
      const valid = s.signalledValid;
      s.signalledUsed = s.usedIdx;
      s.signalledValid = true;
      return !valid || needEvent(usedEvent, s.usedIdx, old);
    } catch (e) {
      throw new VirtQueueError(`virtqueue ${this.index}: avail ring: ${(e as Error).message}`);
    }
  }

  /** Copies the chain's readable bytes from `offset` into `out`; RangeError on bad memory. */
  readFrom(chain: DescChain, offset: number, out: Uint8Array): number {
    return copySegments(this.#memory, chain.readable, offset, out, false);
  }

  /** Copies `data` into the chain's writable bytes from `offset`; RangeError on bad memory. */
  writeTo(chain: DescChain, offset: number, data: Uint8Array): number {
    return copySegments(this.#memory, chain.writable, offset, data, true);
  }

  saveState(): VirtQueueState {
    return { ...this.s };
  }

  loadState(state: VirtQueueState): void {
    Object.assign(this.s, state);
  }
}

/** vring_need_event (virtio 1.2 §2.7.10): did `newIdx` step over `event` since `old`? */
export function needEvent(event: number, newIdx: number, old: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/** Moves bytes between a buffer and a list of guest segments, starting `offset` into them. */
function copySegments(
  memory: AddressSpace,
  segments: Segment[],
  offset: number,
  buf: Uint8Array,
  toGuest: boolean,
): number {
  let skip = offset;
  let done = 0;
  for (const seg of segments) {
    if (done >= buf.length) break;
    if (skip >= seg.len) {
      skip -= seg.len;
      continue;
    }
    const n = Math.min(seg.len - skip, buf.length - done);
    const addr = seg.addr + skip;
    if (addr + n > 2 ** memory.addressBits) {
      throw new RangeError(`Guest buffer 0x${addr.toString(16)} is outside the address space`);
    }
    if (toGuest) memory.dmaWrite(addr, buf.subarray(done, done + n));
    else memory.dmaRead(addr, buf.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  return done;
}
