// The virtio PCI register files (virtio 1.2 §4.1.4.3 common configuration, §4.1.4.8 legacy
// interface): how each register offset reads and writes the transport's state. The transport
// (pci.ts) owns the state and the actions with side effects; this file only decodes offsets.

import {
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_AVAILHI,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCHI,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
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
} from "./constants.ts";
import type { VirtQueue } from "./queue.ts";

/** The transport's own registers, saved with the device. */
export interface TransportState {
  status: number;
  isr: number;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeaturesLo: number;
  driverFeaturesHi: number;
  queueSelect: number;
  configGeneration: number;
  /** Incremented at every device reset (async work started before it is dropped). */
  generation: number;
}

/** What the register files read and change: the state, and the actions with side effects. */
export interface RegisterTarget {
  readonly t: TransportState;
  readonly queues: readonly VirtQueue[];
  /** The offered feature bits as [low, high] 32-bit words. */
  readonly offered: readonly [number, number];
  setStatus(value: number): void;
  resetDevice(): void;
  notify(index: number): void;
  /** Reads the ISR byte and clears it. */
  readIsr(): number;
  applyFeatures(): void;
  readDeviceConfig(offset: number, size: number): number;
  writeDeviceConfig(offset: number, size: number, value: number): void;
}

/** A read of the legacy I/O BAR at `offset`. */
export function readLegacy(d: RegisterTarget, offset: number, size: 1 | 2 | 4): number {
  const t = d.t;
  if (offset >= VIRTIO_PCI_CONFIG_OFF) {
    return d.readDeviceConfig(offset - VIRTIO_PCI_CONFIG_OFF, size);
  }
  switch (offset) {
    case VIRTIO_PCI_HOST_FEATURES:
      return d.offered[0];
    case VIRTIO_PCI_GUEST_FEATURES:
      return t.driverFeaturesLo;
    case VIRTIO_PCI_QUEUE_PFN:
      return d.queues[t.queueSelect]?.pfn ?? 0;
    case VIRTIO_PCI_QUEUE_NUM:
      return d.queues[t.queueSelect]?.s.size ?? 0;
    case VIRTIO_PCI_QUEUE_SEL:
      return t.queueSelect;
    case VIRTIO_PCI_STATUS:
      return t.status;
    case VIRTIO_PCI_ISR:
      return d.readIsr();
    default:
      return 0;
  }
}

/** A write of the legacy I/O BAR at `offset`. */
export function writeLegacy(
  d: RegisterTarget,
  offset: number,
  size: 1 | 2 | 4,
  value: number,
): void {
  const t = d.t;
  if (offset >= VIRTIO_PCI_CONFIG_OFF) {
    d.writeDeviceConfig(offset - VIRTIO_PCI_CONFIG_OFF, size, value);
    return;
  }
  switch (offset) {
    case VIRTIO_PCI_GUEST_FEATURES:
      // A legacy driver sees 32 feature bits and negotiates by writing them.
      t.driverFeaturesLo = (value & d.offered[0]) >>> 0;
      t.driverFeaturesHi = 0;
      d.applyFeatures();
      break;
    case VIRTIO_PCI_QUEUE_PFN: {
      const q = d.queues[t.queueSelect];
      // As QEMU: writing 0 resets the whole device.
      if (value === 0) d.resetDevice();
      else q?.setLegacyPfn(value >>> 0);
      break;
    }
    case VIRTIO_PCI_QUEUE_SEL:
      t.queueSelect = value & 0xffff;
      break;
    case VIRTIO_PCI_QUEUE_NOTIFY:
      d.notify(value & 0xffff);
      break;
    case VIRTIO_PCI_STATUS:
      d.setStatus(value & 0xff);
      break;
  }
}

/** One 32-bit half of a 64-bit ring address. */
function half(n: number, high: boolean): number {
  return high ? Math.floor(n / 2 ** 32) : n >>> 0;
}

/** `n` with one 32-bit half replaced by `value`. */
function setHalf(n: number, high: boolean, value: number): number {
  const lo = n % 2 ** 32;
  const hi = Math.floor(n / 2 ** 32);
  return high ? (value >>> 0) * 2 ** 32 + lo : hi * 2 ** 32 + (value >>> 0);
}

/** A read of the modern common configuration structure at `offset`. */
export function readCommon(d: RegisterTarget, offset: number): number {
  const t = d.t;
  const q = d.queues[t.queueSelect];
  switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
      return t.deviceFeatureSelect;
    case VIRTIO_PCI_COMMON_DF:
      return t.deviceFeatureSelect < 2 ? d.offered[t.deviceFeatureSelect] : 0;
    case VIRTIO_PCI_COMMON_GFSELECT:
      return t.driverFeatureSelect;
    case VIRTIO_PCI_COMMON_GF:
      return t.driverFeatureSelect === 0
        ? t.driverFeaturesLo
        : t.driverFeatureSelect === 1
        ? t.driverFeaturesHi
        : 0;
    case VIRTIO_PCI_COMMON_MSIX:
    case VIRTIO_PCI_COMMON_Q_MSIX:
      return VIRTIO_MSI_NO_VECTOR;
    case VIRTIO_PCI_COMMON_NUMQ:
      return d.queues.length;
    case VIRTIO_PCI_COMMON_STATUS:
      return t.status;
    case VIRTIO_PCI_COMMON_CFGGENERATION:
      return t.configGeneration;
    case VIRTIO_PCI_COMMON_Q_SELECT:
      return t.queueSelect;
    case VIRTIO_PCI_COMMON_Q_SIZE:
      return q ? q.s.size : 0;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
      return q?.s.ready ? 1 : 0;
    case VIRTIO_PCI_COMMON_Q_NOFF:
      return q ? q.index : 0;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
      return q ? half(q.s.desc, offset === VIRTIO_PCI_COMMON_Q_DESCHI) : 0;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
      return q ? half(q.s.avail, offset === VIRTIO_PCI_COMMON_Q_AVAILHI) : 0;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
      return q ? half(q.s.used, offset === VIRTIO_PCI_COMMON_Q_USEDHI) : 0;
    default:
      return 0;
  }
}

/** A write of the modern common configuration structure at `offset`. */
export function writeCommon(d: RegisterTarget, offset: number, value: number): void {
  const t = d.t;
  const q = d.queues[t.queueSelect];
  switch (offset) {
    case VIRTIO_PCI_COMMON_DFSELECT:
      t.deviceFeatureSelect = value >>> 0;
      break;
    case VIRTIO_PCI_COMMON_GFSELECT:
      t.driverFeatureSelect = value >>> 0;
      break;
    case VIRTIO_PCI_COMMON_GF:
      if (t.status & VIRTIO_CONFIG_S_FEATURES_OK) break;
      if (t.driverFeatureSelect === 0) t.driverFeaturesLo = value >>> 0;
      else if (t.driverFeatureSelect === 1) t.driverFeaturesHi = value >>> 0;
      break;
    case VIRTIO_PCI_COMMON_STATUS:
      d.setStatus(value & 0xff);
      break;
    case VIRTIO_PCI_COMMON_Q_SELECT:
      t.queueSelect = value & 0xffff;
      break;
    case VIRTIO_PCI_COMMON_Q_SIZE:
      // The driver may shrink a queue before enabling it (virtio 1.2 §4.1.4.3).
      if (q && !q.s.ready && value >= 1 && value <= q.maxSize) q.s.size = value & 0xffff;
      break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
      if (q && value === 1 && !q.s.ready) q.enable();
      break;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
      if (q && !q.s.ready) {
        q.s.desc = setHalf(q.s.desc, offset === VIRTIO_PCI_COMMON_Q_DESCHI, value);
      }
      break;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
      if (q && !q.s.ready) {
        q.s.avail = setHalf(q.s.avail, offset === VIRTIO_PCI_COMMON_Q_AVAILHI, value);
      }
      break;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
      if (q && !q.s.ready) {
        q.s.used = setHalf(q.s.used, offset === VIRTIO_PCI_COMMON_Q_USEDHI, value);
      }
      break;
  }
}
