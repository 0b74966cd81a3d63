// A virtio driver written for tests: PCI config, legacy and modern registers, rings laid out by hand

import type { PciBus, PciFunction } from "../../../core/device.ts";
import { IrqLine } from "../../../core/irq.ts";
import { AddressSpace } from "../../../core/memory/address_space.ts";
import { PortIoSpace } from "../../../core/memory/port_io.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDHI,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_PCI_CONFIG_OFF,
  VIRTIO_PCI_GUEST_FEATURES,
  VIRTIO_PCI_HOST_FEATURES,
  VIRTIO_PCI_ISR,
  VIRTIO_PCI_QUEUE_NOTIFY,
  VIRTIO_PCI_QUEUE_NUM,
  VIRTIO_PCI_QUEUE_PFN,
  VIRTIO_PCI_QUEUE_SEL,
  VIRTIO_PCI_STATUS,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "./constants.ts";
import {
  VIRTIO_DEVICE_OFFSET,
  VIRTIO_ISR_OFFSET,
  VIRTIO_NOTIFY_OFF_MULTIPLIER,
  VIRTIO_NOTIFY_OFFSET,
  type VirtioDeviceModel,
  VirtioPciDevice,
  type VirtioPciOptions,
} from "./pci.ts";

/** Where the test places things in its 4 MiB of guest RAM. */
export const RAM_BYTES = 4 << 20;
export const LEGACY_IO_BASE = 0xc000;
export const MODERN_BAR_BASE = 0x00f00000;
const RINGS_BASE = 0x10000;
const RING_STRIDE = 0x10000;
const DATA_BASE = 0x100000;

/** A PCI bus with one slot: it records the function and gives an INTx line. */
export class OneSlotBus implements PciBus {
  fn: PciFunction | null = null;
  readonly levels: boolean[] = [];
  readonly line = new IrqLine("test-intx", (level) => this.levels.push(level));
  plug(fn: PciFunction, devfn?: number): number {
    this.fn = fn;
    return devfn ?? 0x18;
  }
  intx(): IrqLine {
    return this.line;
  }
}

/** One buffer of a chain the test makes available. */
export interface TestBuffer {
  /** Bytes the device reads (a readable buffer) or the length the device may write. */
  data?: Uint8Array;
  writeLength?: number;
}

/** The used ring entry the device returned. */
export interface UsedEntry {
  id: number;
  len: number;
}

/**
 * A minimal virtio driver: it programs the BARs through configuration space, negotiates
 * features through the legacy or modern registers, lays queues out in guest RAM and
 * submits descriptor chains, the way virtio-queue's `mock.rs` drives a device in tests.
 */
export class TestDriver {
  readonly memory = new AddressSpace();
  readonly io = new PortIoSpace();
  readonly bus = new OneSlotBus();
  readonly device: VirtioPciDevice;
  readonly ram: Uint8Array;
  #next = DATA_BASE;
  #sizes = new Map<number, number>();
  #availIdx = new Map<number, number>();
  #usedSeen = new Map<number, number>();
  #pending: Promise<unknown>[] = [];

  constructor(
    model: VirtioDeviceModel,
    readonly mode: "legacy" | "modern",
    options: VirtioPciOptions = {},
  ) {
    this.ram = this.memory.addRam("ram", 0, RAM_BYTES);
    this.device = new VirtioPciDevice("virtio-test", "virtio-test", model, {
      memory: this.memory,
      io: this.io,
      pci: this.bus,
      track: <T>(p: Promise<T>) => {
        this.#pending.push(p);
        return p;
      },
    }, options);
    this.device.reset();
    this.cfgWrite(0x10, 4, LEGACY_IO_BASE | 1);
    this.cfgWrite(0x20, 4, MODERN_BAR_BASE);
    this.cfgWrite(0x24, 4, 0);
    this.cfgWrite(0x04, 2, 0x7); // I/O, memory, bus master
  }

  cfgRead(offset: number, size: 1 | 2 | 4): number {
    return this.device.configRead(offset, size);
  }

  cfgWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.device.configWrite(offset, size, value);
  }

  #common(offset: number, size: 1 | 2 | 4, value?: number): number {
    const a = MODERN_BAR_BASE + offset;
    if (value === undefined) {
      return size === 1
        ? this.memory.read8(a)
        : size === 2
        ? this.memory.read16(a)
        : this.memory.read32(a);
    }
    if (size === 1) this.memory.write8(a, value);
    else if (size === 2) this.memory.write16(a, value);
    else this.memory.write32(a, value);
    return 0;
  }

  /** Writes the status register through the chosen interface. */
  setStatus(value: number): void {
    if (this.mode === "legacy") this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_STATUS, 1, value);
    else this.#common(VIRTIO_PCI_COMMON_STATUS, 1, value);
  }

  status(): number {
    return this.mode === "legacy"
      ? this.io.in(LEGACY_IO_BASE + VIRTIO_PCI_STATUS, 1)
      : this.#common(VIRTIO_PCI_COMMON_STATUS, 1);
  }

  /** The offered features as [low, high] words (high is 0 on the legacy interface). */
  deviceFeatures(): [number, number] {
    if (this.mode === "legacy") {
      return [this.io.in(LEGACY_IO_BASE + VIRTIO_PCI_HOST_FEATURES, 4), 0];
    }
    const words: number[] = [];
    for (const sel of [0, 1]) {
      this.#common(VIRTIO_PCI_COMMON_DFSELECT, 4, sel);
      words.push(this.#common(VIRTIO_PCI_COMMON_DF, 4));
    }
    return words as [number, number];
  }

  /**
   * Resets, negotiates `[lo, hi]` (default: everything offered) and sets up `queues`
   * queues; FEATURES_OK is skipped on the legacy interface. Returns the final status.
   */
  init(queues: number, features?: [number, number], queueSize?: number): number {
    this.setStatus(0);
    this.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const [lo, hi] = features ?? this.deviceFeatures();
    let status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    if (this.mode === "legacy") {
      this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_GUEST_FEATURES, 4, lo);
    } else {
      this.#common(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
      this.#common(VIRTIO_PCI_COMMON_GF, 4, lo);
      this.#common(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
      this.#common(VIRTIO_PCI_COMMON_GF, 4, hi);
      status |= VIRTIO_CONFIG_S_FEATURES_OK;
      this.setStatus(status);
      if (!(this.status() & VIRTIO_CONFIG_S_FEATURES_OK)) return this.status();
    }
    for (let q = 0; q < queues; q++) this.setupQueue(q, queueSize);
    this.setStatus(status | VIRTIO_CONFIG_S_DRIVER_OK);
    return this.status();
  }

  /** The rings of queue `q`: descriptor table, avail ring and used ring addresses. */
  rings(q: number): { desc: number; avail: number; used: number; size: number } {
    const size = this.#sizes.get(q)!;
    const desc = RINGS_BASE + q * RING_STRIDE;
    const avail = desc + 16 * size;
    const used = Math.ceil((avail + 6 + 2 * size) / 4096) * 4096;
    return { desc, avail, used, size };
  }

  setupQueue(q: number, size?: number): void {
    if (this.mode === "legacy") {
      this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_QUEUE_SEL, 2, q);
      this.#sizes.set(q, this.io.in(LEGACY_IO_BASE + VIRTIO_PCI_QUEUE_NUM, 2));
      const { desc } = this.rings(q);
      this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_QUEUE_PFN, 4, desc / 4096);
    } else {
      this.#common(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      if (size !== undefined) this.#common(VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
      this.#sizes.set(q, this.#common(VIRTIO_PCI_COMMON_Q_SIZE, 2));
      const r = this.rings(q);
      this.#common(VIRTIO_PCI_COMMON_Q_DESCLO, 4, r.desc);
      this.#common(VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
      this.#common(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, r.avail);
      this.#common(VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
      this.#common(VIRTIO_PCI_COMMON_Q_USEDLO, 4, r.used);
      this.#common(VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
      this.#common(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    }
    this.#availIdx.set(q, 0);
    this.#usedSeen.set(q, 0);
  }

  /** Allocates guest memory for a buffer (8-byte aligned) and returns its address. */
  alloc(bytes: number, data?: Uint8Array): number {
    const addr = this.#next;
    this.#next += Math.ceil(Math.max(bytes, 1) / 8) * 8;
    if (data) this.ram.set(data, addr);
    return addr;
  }

  /** Writes descriptor `i` of a table at `table`. */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next = 0): void {
    const at = table + 16 * i;
    this.memory.write32(at, addr >>> 0);
    this.memory.write32(at + 4, Math.floor(addr / 2 ** 32));
    this.memory.write32(at + 8, len);
    this.memory.write16(at + 12, flags);
    this.memory.write16(at + 14, next);
  }

  /** Puts `head` in the avail ring of queue `q` and bumps avail.idx. */
  publish(q: number, head: number): void {
    const r = this.rings(q);
    const idx = this.#availIdx.get(q)!;
    this.memory.write16(r.avail + 4 + 2 * (idx % r.size), head);
    this.#availIdx.set(q, (idx + 1) & 0xffff);
    this.memory.write16(r.avail + 2, (idx + 1) & 0xffff);
  }

  /**
   * Lays out a chain of `buffers` starting at descriptor `head` (direct, consecutive
   * descriptors) or through one indirect table, publishes it and returns the addresses
   * of its buffers in order.
   */
  submit(q: number, head: number, buffers: TestBuffer[], options: { indirect?: boolean } = {}) {
    const addrs = buffers.map((b) => this.alloc(b.data?.length ?? b.writeLength!, b.data));
    const r = this.rings(q);
    const table = options.indirect ? this.alloc(16 * buffers.length) : r.desc;
    const first = options.indirect ? 0 : head;
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      const flags = (b.data ? 0 : VIRTQ_DESC_F_WRITE) | (last ? 0 : VIRTQ_DESC_F_NEXT);
      this.writeDesc(
        table,
        first + i,
        addrs[i],
        b.data?.length ?? b.writeLength!,
        flags,
        first + i + 1,
      );
    });
    if (options.indirect) {
      this.writeDesc(r.desc, head, table, 16 * buffers.length, VIRTQ_DESC_F_INDIRECT);
    }
    this.publish(q, head);
    return addrs;
  }

  /** Tells the device about queue `q` through the chosen interface. */
  notify(q: number): void {
    if (this.mode === "legacy") {
      this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_QUEUE_NOTIFY, 2, q);
      return;
    }
    this.#common(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    const off = this.#common(VIRTIO_PCI_COMMON_Q_NOFF, 2);
    this.memory.write16(
      MODERN_BAR_BASE + VIRTIO_NOTIFY_OFFSET + off * VIRTIO_NOTIFY_OFF_MULTIPLIER,
      q,
    );
  }

  /** Used ring entries of queue `q` the test has not looked at yet. */
  takeUsed(q: number): UsedEntry[] {
    const r = this.rings(q);
    const idx = this.memory.read16(r.used + 2);
    const out: UsedEntry[] = [];
    let seen = this.#usedSeen.get(q)!;
    while (seen !== idx) {
      const at = r.used + 4 + 8 * (seen % r.size);
      out.push({ id: this.memory.read32(at), len: this.memory.read32(at + 4) });
      seen = (seen + 1) & 0xffff;
    }
    this.#usedSeen.set(q, seen);
    return out;
  }

  /** Reads (and so clears) the ISR. */
  readIsr(): number {
    return this.mode === "legacy"
      ? this.io.in(LEGACY_IO_BASE + VIRTIO_PCI_ISR, 1)
      : this.memory.read8(MODERN_BAR_BASE + VIRTIO_ISR_OFFSET);
  }

  /** Reads device config at `offset`. */
  config(offset: number, size: 1 | 2 | 4): number {
    if (this.mode === "legacy") {
      return this.io.in(LEGACY_IO_BASE + VIRTIO_PCI_CONFIG_OFF + offset, size);
    }
    const a = MODERN_BAR_BASE + VIRTIO_DEVICE_OFFSET + offset;
    return size === 1
      ? this.memory.read8(a)
      : size === 2
      ? this.memory.read16(a)
      : this.memory.read32(a);
  }

  /** Writes device config at `offset`. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    if (this.mode === "legacy") {
      this.io.out(LEGACY_IO_BASE + VIRTIO_PCI_CONFIG_OFF + offset, size, value);
      return;
    }
    const a = MODERN_BAR_BASE + VIRTIO_DEVICE_OFFSET + offset;
    if (size === 1) this.memory.write8(a, value);
    else if (size === 2) this.memory.write16(a, value);
    else this.memory.write32(a, value);
  }

  /** Waits for every async operation the device started. */
  async settle(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0);
      await Promise.allSettled(batch);
    }
  }
}
