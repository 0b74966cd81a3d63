// A `-M pc` board for hostile-guest tests and the device fuzzer: every device model, driven as a guest would

import type { BlockIo } from "../../core/block/backend.ts";
import type { DriveConfig, Machine } from "../../core/machine.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";

/** A disk in memory for the drives the fuzz board attaches (no host file is touched). */
export const FUZZ_DISK_BYTES = 4 << 20;

/** A disk image held in memory: reads and writes are synchronous, the size is fixed. */
export class MemoryDisk implements BlockIo {
  readonly bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 512) this.bytes[i] = (i / 512) & 0xff;
  }
  size(): number {
    return this.bytes.length;
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    buf.set(this.bytes.subarray(offset, offset + buf.length));
    return Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data.subarray(0, Math.max(0, this.bytes.length - offset)), offset);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

function memoryDrive(
  id: string,
  iface: DriveConfig["interface"],
  media: DriveConfig["media"],
  index: number,
): DriveConfig {
  return {
    id,
    node: new MemoryDisk(FUZZ_DISK_BYTES),
    interface: iface,
    index,
    media,
    readOnly: media === "cdrom",
  };
}

/** Options of {@linkcode fuzzMachine}. */
export interface FuzzMachineOptions {
  /** Guest RAM in bytes (default 32 MiB). */
  ramBytes?: number;
  /** `-device` models to add besides the board's own (default: every one vmkit has). */
  devices?: { model: string; options?: Record<string, string> }[];
  /** The display adapter of the board (default std). */
  vga?: "std" | "cirrus";
}

/** Every `-device` model vmkit has that the fuzz board can add without host resources. */
export const FUZZ_DEVICE_MODELS: { model: string; options?: Record<string, string> }[] = [
  { model: "virtio-blk-pci", options: { drive: "vd0" } },
  { model: "virtio-net-pci" },
  { model: "virtio-balloon-pci" },
  { model: "isa-debugcon" },
  { model: "isa-debug-exit" },
];

/**
 * Builds `-M pc` with an IDE disk and CD-ROM and the `-device` models, backed by
 * memory; a CPU stand-in never runs, so the test or the fuzzer is the guest.
 */
export async function fuzzMachine(options: FuzzMachineOptions = {}): Promise<Machine> {
  const machine = createPcMachine(testConfig({
    ramBytes: options.ramBytes ?? 32 << 20,
    firmware: new Uint8Array(256 * 1024),
    vga: options.vga,
    drives: [
      memoryDrive("hd0", "ide", "disk", 0),
      memoryDrive("cd0", "ide", "cdrom", 2),
      memoryDrive("vd0", "none", "disk", 0),
    ],
  }));
  for (const d of options.devices ?? FUZZ_DEVICE_MODELS) machine.createDevice(d.model, d.options);
  await machine.realize();
  machine.reset();
  return machine;
}

/** Writes PCI configuration space through ports 0xcf8/0xcfc, as a guest does. */
export function pciWrite(
  machine: Machine,
  devfn: number,
  offset: number,
  size: 1 | 2 | 4,
  value: number,
): void {
  machine.io.out(0xcf8, 4, (0x80000000 | (devfn << 8) | (offset & 0xfc)) >>> 0);
  machine.io.out(0xcfc + (offset & 3), size, value);
}

/** Reads PCI configuration space through ports 0xcf8/0xcfc. */
export function pciRead(machine: Machine, devfn: number, offset: number, size: 1 | 2 | 4): number {
  machine.io.out(0xcf8, 4, (0x80000000 | (devfn << 8) | (offset & 0xfc)) >>> 0);
  return machine.io.in(0xcfc + (offset & 3), size);
}
