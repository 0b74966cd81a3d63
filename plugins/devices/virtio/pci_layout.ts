// Where the virtio PCI transport puts things: the modern BAR's layout and the capability chain

import { PCI_STATUS, type PciConfig } from "../../../core/pci.ts";
import {
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_PCI_CFG,
} from "./constants.ts";

/** The BAR QEMU puts the modern structures in, and their layout inside it (16 KiB). */
export const VIRTIO_MODERN_BAR = 4;
export const VIRTIO_MODERN_BAR_SIZE = 0x4000;
export const VIRTIO_COMMON_OFFSET = 0x0000;
export const VIRTIO_ISR_OFFSET = 0x1000;
export const VIRTIO_DEVICE_OFFSET = 0x2000;
export const VIRTIO_NOTIFY_OFFSET = 0x3000;
/** Each queue's notify address is this many bytes apart (queue_notify_off = queue index). */
export const VIRTIO_NOTIFY_OFF_MULTIPLIER = 4;
/** Where QEMU places the vendor capabilities in configuration space, in the order added. */
export const VIRTIO_CAP_COMMON = 0x40;
export const VIRTIO_CAP_ISR = 0x50;
export const VIRTIO_CAP_DEVICE = 0x60;
export const VIRTIO_CAP_NOTIFY = 0x70;
export const VIRTIO_CAP_PCI_CFG = 0x84;

const PCI_CAPABILITY_LIST = 0x34;
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_CAP_ID_VNDR = 0x09;
/** The modern BAR's two dwords: BAR4 and BAR5 (the high half of the 64-bit address). */
export const BAR4_OFFSET = 0x20;
/** Memory BAR type bits: 64-bit (0x4) and prefetchable (0x8). */
const BAR_MEM_64_PREFETCH = 0x0c;

/**
 * Writes QEMU's modern-transport configuration: BAR4 as a 64-bit prefetchable memory BAR
 * and the vendor capabilities (common, ISR, device, notify, pci_cfg) linked as QEMU links
 * them (virtio 1.2 §4.1.4).
 */
export function writeVirtioCapabilities(c: PciConfig): void {
  c.set32(BAR4_OFFSET, BAR_MEM_64_PREFETCH);
  c.set32(BAR4_OFFSET + 4, 0);
  c.set16(PCI_STATUS, c.get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
  const caps: [number, number, number, number, number][] = [
    // [position, next, type, offset in BAR4, length]
    [VIRTIO_CAP_COMMON, 0, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_COMMON_OFFSET, 0x1000],
    [VIRTIO_CAP_ISR, VIRTIO_CAP_COMMON, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_ISR_OFFSET, 0x1000],
    [VIRTIO_CAP_DEVICE, VIRTIO_CAP_ISR, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_DEVICE_OFFSET, 0x1000],
    [
      VIRTIO_CAP_NOTIFY,
      VIRTIO_CAP_DEVICE,
      VIRTIO_PCI_CAP_NOTIFY_CFG,
      VIRTIO_NOTIFY_OFFSET,
      0x1000,
    ],
  ];
  for (const [at, next, type, off, len] of caps) {
    c.set8(at, PCI_CAP_ID_VNDR);
    c.set8(at + 1, next);
    c.set8(at + 2, type === VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16);
    c.set8(at + 3, type);
    c.set8(at + 4, VIRTIO_MODERN_BAR);
    c.set32(at + 8, off);
    c.set32(at + 12, len);
  }
  c.set32(VIRTIO_CAP_NOTIFY + 16, VIRTIO_NOTIFY_OFF_MULTIPLIER);
  // The PCI configuration access capability: bar/offset/length pick a window into a BAR.
  c.set8(VIRTIO_CAP_PCI_CFG, PCI_CAP_ID_VNDR);
  c.set8(VIRTIO_CAP_PCI_CFG + 1, VIRTIO_CAP_NOTIFY);
  c.set8(VIRTIO_CAP_PCI_CFG + 2, 20);
  c.set8(VIRTIO_CAP_PCI_CFG + 3, VIRTIO_PCI_CAP_PCI_CFG);
  // The list starts at the capability added last, as QEMU's pci_add_capability links them.
  c.set8(PCI_CAPABILITY_LIST, VIRTIO_CAP_PCI_CFG);
}
