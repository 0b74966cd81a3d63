// The virtio PCI transport (virtio 1.2 §4.1): legacy I/O BAR0, modern capabilities in BAR4, INTx

import type { Device, DeviceState, PciBus, PciFunction } from "../../../core/device.ts";
import type { IrqLine } from "../../../core/irq.ts";
import type { AddressSpace, MmioHandler } from "../../../core/memory/address_space.ts";
import type { PortIoSpace } from "../../../core/memory/port_io.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_STATUS, PciConfig } from "../../../core/pci.ts";
import {
  PCI_DEVICE_ID_VIRTIO_MODERN_BASE,
  PCI_DEVICE_ID_VIRTIO_TRANSITIONAL,
  PCI_VENDOR_ID_REDHAT_QUMRANET,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_RING_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_PCI_CONFIG_OFF,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
} from "./constants.ts";
import {
  BAR4_OFFSET,
  VIRTIO_CAP_PCI_CFG,
  VIRTIO_DEVICE_OFFSET,
  VIRTIO_ISR_OFFSET,
  VIRTIO_MODERN_BAR,
  VIRTIO_MODERN_BAR_SIZE,
  VIRTIO_NOTIFY_OFF_MULTIPLIER,
  VIRTIO_NOTIFY_OFFSET,
  writeVirtioCapabilities,
} from "./pci_layout.ts";
import {
  readCommon,
  readLegacy,
  type RegisterTarget,
  type TransportState,
  writeCommon,
  writeLegacy,
} from "./pci_regs.ts";
import { VirtQueue, VirtQueueError, type VirtQueueState } from "./queue.ts";

export {
  VIRTIO_DEVICE_OFFSET,
  VIRTIO_ISR_OFFSET,
  VIRTIO_MODERN_BAR,
  VIRTIO_NOTIFY_OFF_MULTIPLIER,
  VIRTIO_NOTIFY_OFFSET,
} from "./pci_layout.ts";

const PCI_STATUS_INTERRUPT = 0x08;
const PCI_COMMAND_INTX_DISABLE = 0x400;

/** What a virtio device (blk, net, balloon) gives the transport. */
export interface VirtioDeviceModel {
  /** The virtio device type (VIRTIO_ID_BLOCK...), the PCI subsystem ID. */
  readonly deviceType: number;
  /** The PCI class code (0xCCSSPP). */
  readonly classCode: number;
  /** The largest size of each queue, index order. */
  readonly queueSizes: readonly number[];
  /** Device-specific feature bits offered (bit numbers). */
  readonly featureBits: readonly number[];
  /** The device configuration space (kept current by the device). */
  readonly config: Uint8Array;
  /** Attaches the model to its transport (called once by the transport). */
  attach(host: VirtioHost): void;
  /** A driver write into device config at `offset` (the device stores what is writable). */
  configWrite?(offset: number, size: number, value: number): void;
  /** The driver notified queue `index`. A VirtQueueError thrown here breaks the device. */
  queueNotify(index: number): void;
  /** The driver set DRIVER_OK. */
  driverOk?(): void;
  /** The device is reset (status 0 or a system reset): drop in-flight work. */
  reset(): void;
  /** Finishes setup once the board exists. */
  realize?(): void | Promise<void>;
  saveState(): DeviceState;
  loadState(state: DeviceState): void;
  /** Why the device cannot be saved now (savevm), if it cannot. */
  migrationBlocker?(): string | null;
}

/** What the transport offers a device model. */
export interface VirtioHost {
  readonly memory: AddressSpace;
  /** Queue `index`. */
  queue(index: number): VirtQueue;
  /** True when the driver accepted feature `bit`. */
  negotiated(bit: number): boolean;
  /** True when the driver set DRIVER_OK (and the device is not broken). */
  readonly driverOk: boolean;
  /** Incremented at every reset: async work started before it is dropped when it ends. */
  readonly generation: number;
  /** Raises the queue interrupt for `index` if the driver wants one now. */
  notifyQueue(index: number): void;
  /** The device changed its config (config_generation and a config interrupt). */
  configChanged(): void;
  /** A ring error: the device stops and sets NEEDS_RESET. */
  fail(error: unknown): void;
  /** Tracks async host I/O with the event loop. */
  track<T>(promise: Promise<T>): Promise<T>;
}

/** Where the transport plugs in; parts may be null in tests. */
export interface VirtioPciHost {
  memory: AddressSpace;
  io: PortIoSpace | null;
  pci: PciBus | null;
  /** PCI devfn (`addr=`); the first free slot when absent. */
  devfn?: number;
  track?<T>(promise: Promise<T>): Promise<T>;
  /** Wakes the CPUs after an interrupt change made outside a slice (async completions). */
  kick?(): void;
}

/** Transitional (both), legacy-only or modern-only, as `disable-legacy`/`disable-modern` pick. */
export interface VirtioPciOptions {
  legacy?: boolean;
  modern?: boolean;
}

function u32Pow2Ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * A virtio device on PCI: the transport part (feature negotiation, status, queues,
 * ISR and INTx) shared by virtio-blk-pci, virtio-net-pci and virtio-balloon-pci. Like
 * QEMU 7.2's default on a PCI bus it is transitional: the legacy 0.9.5 registers in I/O
 * BAR0 and the virtio 1.x structures in the 64-bit prefetchable memory BAR4. There is no
 * MSI-X: drivers use INTx, routed by the PIIX3.
 */
export class VirtioPciDevice implements Device, PciFunction {
  readonly config: PciConfig;
  readonly queues: VirtQueue[];
  readonly legacy: boolean;
  readonly modern: boolean;
  /** The devfn the device sits at (when plugged). */
  readonly devfn: number;
  /** Ring errors seen (the device was marked NEEDS_RESET). */
  errors = 0;
  #model: VirtioDeviceModel;
  #host: VirtioPciHost;
  #irq: IrqLine | null = null;
  #legacyBase: number | null = null;
  #modernBase: number | null = null;
  #offered: [number, number];
  #t: TransportState = {
    status: 0,
    isr: 0,
    deviceFeatureSelect: 0,
    driverFeatureSelect: 0,
    driverFeaturesLo: 0,
    driverFeaturesHi: 0,
    queueSelect: 0,
    configGeneration: 0,
    generation: 0,
  };
  /** The register files' view of this transport (pci_regs.ts). */
  #regs: RegisterTarget;

  readonly model: string;

  constructor(
    readonly id: string,
    modelName: string,
    model: VirtioDeviceModel,
    host: VirtioPciHost,
    options: VirtioPciOptions = {},
  ) {
    this.model = modelName;
    this.#model = model;
    this.#host = host;
    this.legacy = options.legacy ?? true;
    this.modern = options.modern ?? true;
    if (!this.legacy && !this.modern) {
      throw new RangeError("A virtio device needs the legacy or the modern interface");
    }
    this.queues = model.queueSizes.map((size, i) => new VirtQueue(host.memory, i, size));
    let lo = (1 << VIRTIO_F_NOTIFY_ON_EMPTY) | (1 << VIRTIO_F_ANY_LAYOUT) |
      (1 << VIRTIO_F_RING_INDIRECT_DESC) | (1 << VIRTIO_F_RING_EVENT_IDX);
    let hi = this.modern ? 1 << (VIRTIO_F_VERSION_1 - 32) : 0;
    for (const bit of model.featureBits) {
      if (bit < 32) lo |= 1 << bit;
      else hi |= 1 << (bit - 32);
    }
    this.#offered = [lo >>> 0, hi >>> 0];
    this.#regs = {
      t: this.#t,
      queues: this.queues,
      offered: this.#offered,
      setStatus: (value) => this.#setStatus(value),
      resetDevice: () => this.#resetDevice(),
      notify: (index) => this.#notify(index),
      readIsr: () => this.#readIsr(),
      applyFeatures: () => this.#applyFeatures(),
      readDeviceConfig: (offset, size) => this.#readDeviceConfig(offset, size),
      writeDeviceConfig: (offset, size, value) => this.#writeDeviceConfig(offset, size, value),
    };
    const type = model.deviceType;
    this.config = new PciConfig({
      vendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      deviceId: this.legacy
        ? PCI_DEVICE_ID_VIRTIO_TRANSITIONAL[type]
        : PCI_DEVICE_ID_VIRTIO_MODERN_BASE + type,
      revision: this.legacy ? 0 : 1,
      classCode: model.classCode,
      subsystemVendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      subsystemId: this.legacy ? type : 0x1100,
      interruptPin: 1,
    }, { onWrite: (offset, size) => this.#configWritten(offset, size) });
    if (this.legacy) {
      this.config.addBar(0, {
        size: u32Pow2Ceil(VIRTIO_PCI_CONFIG_OFF + model.config.length),
        io: true,
        map: (base) => this.#mapLegacy(base),
      });
    }
    if (this.modern) {
      // BAR4/BAR5 as one 64-bit BAR: the address bits above the size are writable.
      const mask = (~(VIRTIO_MODERN_BAR_SIZE - 1)) >>> 0 & 0xfffffff0;
      this.config.setWritable(BAR4_OFFSET, [
        mask & 0xff,
        (mask >>> 8) & 0xff,
        (mask >>> 16) & 0xff,
        mask >>> 24,
        0xff,
        0xff,
        0xff,
        0xff,
      ]);
      // The VIRTIO_PCI_CAP_PCI_CFG window: bar, offset, length and data are the driver's.
      const cap = VIRTIO_CAP_PCI_CFG;
      this.config.setWritable(cap + 4, [0xff]);
      this.config.setWritable(cap + 8, new Array(12).fill(0xff));
    }
    this.#resetConfig();
    this.devfn = host.pci?.plug(this, host.devfn) ?? host.devfn ?? 0;
    this.#irq = host.pci?.intx(this.devfn, 1) ?? null;
    model.attach(this.#modelHost());
  }

  // --- PCI configuration space ---

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (this.modern && offset >= VIRTIO_CAP_PCI_CFG + 16 && offset < VIRTIO_CAP_PCI_CFG + 20) {
      this.#pciCfgRead();
    }
    return this.config.configRead(offset, size);
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.config.configWrite(offset, size, value);
    if (
      this.modern && offset < VIRTIO_CAP_PCI_CFG + 20 && offset + size > VIRTIO_CAP_PCI_CFG + 16
    ) {
      this.#pciCfgWrite();
    }
  }

  #configWritten(offset: number, size: number): void {
    const touches = (at: number, len: number) => offset < at + len && offset + size > at;
    if (touches(PCI_COMMAND, 2)) {
      this.#remapModern();
      this.#updateIrq();
    }
    if (touches(BAR4_OFFSET, 8)) this.#remapModern();
  }

  #resetConfig(): void {
    this.config.reset();
    if (!this.modern) return;
    writeVirtioCapabilities(this.config);
    this.#remapModern();
  }

  /** virtio 1.2 §4.1.4.9: an access through pci_cfg_data reaches BAR `bar` at `offset`. */
  #pciCfgWindow(): { offset: number; length: number } | null {
    const c = this.config;
    const bar = c.get8(VIRTIO_CAP_PCI_CFG + 4);
    const offset = c.get32(VIRTIO_CAP_PCI_CFG + 8);
    const length = c.get32(VIRTIO_CAP_PCI_CFG + 12);
    if (bar !== VIRTIO_MODERN_BAR || ![1, 2, 4].includes(length)) return null;
    if (offset % length !== 0 || offset + length > VIRTIO_MODERN_BAR_SIZE) return null;
    return { offset, length };
  }

  #pciCfgRead(): void {
    const w = this.#pciCfgWindow();
    if (!w) return;
    const v = this.readModern(w.offset, w.length as 1 | 2 | 4);
    this.config.set32(VIRTIO_CAP_PCI_CFG + 16, v);
  }

  #pciCfgWrite(): void {
    const w = this.#pciCfgWindow();
    if (!w) return;
    const raw = this.config.get32(VIRTIO_CAP_PCI_CFG + 16);
    const mask = w.length === 4 ? 0xffffffff : (1 << (8 * w.length)) - 1;
    this.writeModern(w.offset, w.length as 1 | 2 | 4, (raw & mask) >>> 0);
  }

  /** The programmed base of the modern BAR, or null while it is not decoded. */
  modernBarBase(): number | null {
    if (!this.modern) return null;
    const c = this.config;
    if (!(c.get16(PCI_COMMAND) & PCI_COMMAND_MEMORY)) return null;
    const lo = (c.get32(BAR4_OFFSET) & 0xfffffff0) >>> 0;
    const hi = c.get32(BAR4_OFFSET + 4);
    // vmkit's address space is 32 bits: a BAR above 4 GiB is not reachable by MMIO
    // (the driver then uses the PCI configuration access capability, as SeaBIOS does).
    if (hi !== 0 || lo === 0) return null;
    if (lo === ((~(VIRTIO_MODERN_BAR_SIZE - 1)) >>> 0 & 0xfffffff0)) return null; // sizing
    return lo;
  }

  #remapModern(): void {
    const base = this.modernBarBase();
    if (base === this.#modernBase) return;
    const name = `${this.id}-modern`;
    this.#host.memory.remove(name);
    this.#modernBase = null;
    if (base === null) return;
    const handler: MmioHandler = {
      read: (offset, size) => this.readModern(offset, size),
      write: (offset, size, value) => this.writeModern(offset, size, value),
    };
    // A guest-programmed BAR: over RAM or another window it covers them (priority 1,
    // as QEMU maps BARs) until it moves away.
    this.#host.memory.addMmio(name, base, VIRTIO_MODERN_BAR_SIZE, handler, {
      priority: 1,
      overlap: true,
    });
    this.#modernBase = base;
  }

  #mapLegacy(base: number | null): void {
    const io = this.#host.io;
    if (!io) return;
    const name = `${this.id}-legacy`;
    io.unregister(name);
    this.#legacyBase = null;
    if (base === null) return;
    const size = u32Pow2Ceil(VIRTIO_PCI_CONFIG_OFF + this.#model.config.length);
    io.register(name, base, size, {
      read: (port, sz) => this.readLegacy(port - base, sz),
      write: (port, sz, value) => this.writeLegacy(port - base, sz, value),
    }, { priority: 1, overlap: true });
    this.#legacyBase = base;
  }

  /** The device model behind the transport (VirtioBlk, VirtioNet, VirtioBalloon). */
  get device(): VirtioDeviceModel {
    return this.#model;
  }

  /** The I/O base of the legacy BAR0 while it is decoded. */
  get legacyBase(): number | null {
    return this.#legacyBase;
  }

  // --- interrupts ---

  #updateIrq(): void {
    const pending = (this.#t.isr & (VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG)) !== 0;
    const c = this.config;
    const status = c.get16(PCI_STATUS);
    c.set16(PCI_STATUS, pending ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT);
    const level = pending && !(c.get16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
    const before = this.#irq?.level;
    this.#irq?.set(level);
    if (level && !before) this.#host.kick?.();
  }

  /** The ISR byte (for tests); reading it through a BAR clears it. */
  get isr(): number {
    return this.#t.isr;
  }

  #readIsr(): number {
    const v = this.#t.isr;
    this.#t.isr = 0;
    this.#updateIrq();
    return v;
  }

  // --- common state ---

  /** The device status byte. */
  get status(): number {
    return this.#t.status;
  }

  /** True when the driver negotiated `bit`. */
  negotiated(bit: number): boolean {
    return bit < 32
      ? ((this.#t.driverFeaturesLo >>> bit) & 1) === 1
      : ((this.#t.driverFeaturesHi >>> (bit - 32)) & 1) === 1;
  }

  /** The offered feature bits as [low, high] 32-bit words. */
  get offeredFeatures(): readonly [number, number] {
    return this.#offered;
  }

  #setStatus(value: number): void {
    if (value === 0) {
      this.#resetDevice();
      return;
    }
    const before = this.#t.status;
    let status = value & 0xff;
    if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(before & VIRTIO_CONFIG_S_FEATURES_OK)) {
      // virtio 1.2 §3.1.1: the device refuses a feature set it did not offer.
      const [lo, hi] = this.#offered;
      if ((this.#t.driverFeaturesLo & ~lo) || (this.#t.driverFeaturesHi & ~hi)) {
        status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
      } else {
        this.#applyFeatures();
      }
    }
    this.#t.status = status | (before & VIRTIO_CONFIG_S_NEEDS_RESET);
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(before & VIRTIO_CONFIG_S_DRIVER_OK)) {
      this.#model.driverOk?.();
    }
  }

  #applyFeatures(): void {
    const eventIdx = this.negotiated(VIRTIO_F_RING_EVENT_IDX);
    for (const q of this.queues) q.eventIdx = eventIdx;
  }

  #resetDevice(): void {
    const t = this.#t;
    t.status = 0;
    t.isr = 0;
    t.deviceFeatureSelect = 0;
    t.driverFeatureSelect = 0;
    t.driverFeaturesLo = 0;
    t.driverFeaturesHi = 0;
    t.queueSelect = 0;
    t.generation++;
    for (const q of this.queues) q.reset();
    this.#model.reset();
    this.#updateIrq();
  }

  #notify(index: number): void {
    const q = this.queues[index];
    if (!q || !q.s.ready || (this.#t.status & VIRTIO_CONFIG_S_NEEDS_RESET)) return;
    try {
      this.#model.queueNotify(index);
    } catch (e) {
      this.#fail(e);
    }
  }

  #fail(error: unknown): void {
    if (!(error instanceof VirtQueueError) && !(error instanceof RangeError)) throw error;
    this.errors++;
    // virtio 1.2 §2.1.2: the device sets DEVICE_NEEDS_RESET and, if DRIVER_OK, tells the
    // driver through a configuration change interrupt.
    this.#t.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.#t.status & VIRTIO_CONFIG_S_DRIVER_OK) {
      this.#t.isr |= VIRTIO_PCI_ISR_CONFIG;
      this.#updateIrq();
    }
  }

  #modelHost(): VirtioHost {
    const host: Omit<VirtioHost, "driverOk" | "generation"> = {
      memory: this.#host.memory,
      queue: (index) => this.queues[index],
      negotiated: (bit) => this.negotiated(bit),
      notifyQueue: (index) => {
        const q = this.queues[index];
        try {
          if (q.needsInterrupt(this.negotiated(VIRTIO_F_NOTIFY_ON_EMPTY))) {
            this.#t.isr |= VIRTIO_PCI_ISR_QUEUE;
            this.#updateIrq();
          }
        } catch (e) {
          this.#fail(e);
        }
      },
      configChanged: () => {
        this.#t.configGeneration = (this.#t.configGeneration + 1) & 0xff;
        if (this.#t.status & VIRTIO_CONFIG_S_DRIVER_OK) {
          this.#t.isr |= VIRTIO_PCI_ISR_CONFIG;
          this.#updateIrq();
        }
      },
      fail: (error) => this.#fail(error),
      track: <T>(promise: Promise<T>) => this.#host.track ? this.#host.track(promise) : promise,
    };
    return Object.defineProperties(host, {
      driverOk: {
        get: () => {
          const s = this.#t.status;
          return (s & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && !(s & VIRTIO_CONFIG_S_NEEDS_RESET);
        },
      },
      generation: { get: () => this.#t.generation },
    }) as VirtioHost;
  }

  // --- device configuration ---

  #readDeviceConfig(offset: number, size: number): number {
    const cfg = this.#model.config;
    if (offset < 0 || offset + size > cfg.length) {
      return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + cfg[offset + i];
    return v >>> 0;
  }

  #writeDeviceConfig(offset: number, size: number, value: number): void {
    const cfg = this.#model.config;
    if (offset < 0 || offset + size > cfg.length) return;
    this.#model.configWrite?.(offset, size, value);
  }

  // --- the legacy interface (BAR0) and the modern one (BAR4) ---

  /** A read of the legacy I/O BAR at `offset`. */
  readLegacy(offset: number, size: 1 | 2 | 4): number {
    return readLegacy(this.#regs, offset, size);
  }

  /** A write of the legacy I/O BAR at `offset`. */
  writeLegacy(offset: number, size: 1 | 2 | 4, value: number): void {
    writeLegacy(this.#regs, offset, size, value);
  }

  /** A read of the modern BAR at `offset`. */
  readModern(offset: number, size: 1 | 2 | 4): number {
    if (offset < VIRTIO_ISR_OFFSET) return readCommon(this.#regs, offset);
    if (offset < VIRTIO_DEVICE_OFFSET) return offset === VIRTIO_ISR_OFFSET ? this.#readIsr() : 0;
    if (offset < VIRTIO_NOTIFY_OFFSET) {
      return this.#readDeviceConfig(offset - VIRTIO_DEVICE_OFFSET, size);
    }
    return 0;
  }

  /** A write of the modern BAR at `offset`. */
  writeModern(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < VIRTIO_ISR_OFFSET) writeCommon(this.#regs, offset, value);
    else if (offset < VIRTIO_DEVICE_OFFSET) return;
    else if (offset < VIRTIO_NOTIFY_OFFSET) {
      this.#writeDeviceConfig(offset - VIRTIO_DEVICE_OFFSET, size, value);
    } else {
      this.#notify((offset - VIRTIO_NOTIFY_OFFSET) / VIRTIO_NOTIFY_OFF_MULTIPLIER | 0);
    }
  }

  // --- Device ---

  realize(): void | Promise<void> {
    return this.#model.realize?.();
  }

  reset(): void {
    this.#resetDevice();
    this.#t.configGeneration = 0;
    this.#resetConfig();
    this.#updateIrq();
  }

  migrationBlocker(): string | null {
    return this.#model.migrationBlocker?.() ?? null;
  }

  saveState(): DeviceState {
    return {
      config: this.config.save(),
      transport: { ...this.#t },
      queues: this.queues.map((q) => q.saveState()),
      device: this.#model.saveState(),
    };
  }

  loadState(state: DeviceState): void {
    this.config.load(state.config as Uint8Array);
    Object.assign(this.#t, state.transport as Record<string, number>);
    (state.queues as VirtQueueState[]).forEach((s, i) => this.queues[i]?.loadState(s));
    this.#applyFeatures();
    this.#model.loadState(state.device as DeviceState);
    this.#remapModern();
    this.#updateIrq();
  }
}
