// QEMU's firmware configuration device (fw_cfg) on I/O ports 0x510-0x51b, with the DMA interface

import type { AddressSpace } from "../../core/memory/address_space.ts";
import {
  type Device,
  type DeviceContext,
  type DeviceState,
  type FirmwareConfig,
  FW_CFG,
  type QtreeNode,
} from "../../core/device.ts";
import type { DeviceDescriptor } from "../../core/plugin.ts";

/** Legacy item keys (QEMU docs/specs/fw_cfg.rst, SeaBIOS src/fw/paravirt.c). */
export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MACHINE_ID = 0x06;
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_KERNEL_CMDLINE = 0x09;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_BOOT_DEVICE = 0x0c;
export const FW_CFG_NUMA = 0x0d;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_KERNEL_ENTRY = 0x10;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;
export const FW_CFG_FILE_DIR = 0x19;
export const FW_CFG_FILE_FIRST = 0x20;
export const FW_CFG_WRITE_CHANNEL = 0x4000;
export const FW_CFG_ARCH_LOCAL = 0x8000;
export const FW_CFG_ACPI_TABLES = FW_CFG_ARCH_LOCAL + 0;
export const FW_CFG_SMBIOS_ENTRIES = FW_CFG_ARCH_LOCAL + 1;
export const FW_CFG_IRQ0_OVERRIDE = FW_CFG_ARCH_LOCAL + 2;
export const FW_CFG_E820_TABLE = FW_CFG_ARCH_LOCAL + 3;

/** FW_CFG_ID bits: the traditional interface and the DMA interface. */
export const FW_CFG_VERSION = 0x01;
export const FW_CFG_VERSION_DMA = 0x02;

/** DMA control bits. */
export const FW_CFG_DMA_CTL_ERROR = 0x01;
export const FW_CFG_DMA_CTL_READ = 0x02;
export const FW_CFG_DMA_CTL_SKIP = 0x04;
export const FW_CFG_DMA_CTL_SELECT = 0x08;
export const FW_CFG_DMA_CTL_WRITE = 0x10;

/** The longest file name in the directory, with its NUL. */
export const FW_CFG_MAX_FILE_PATH = 56;

/** Zeros written for the part of a DMA read past the end of the item. */
const FW_CFG_ZERO_CHUNK = new Uint8Array(64 << 10);

/** "QEMU CFG", what a read of the DMA address register returns (big-endian). */
const DMA_SIGNATURE = [0x51454d55, 0x20434647];

interface FileEntry {
  name: string;
  key: number;
  data: Uint8Array;
}

/**
 * The fw_cfg device: numbered items and a directory of named files the firmware
 * reads, byte by byte through the data port or in bulk through DMA.
 */
export class FwCfg implements Device, FirmwareConfig {
  readonly model = "fw_cfg_io";
  #items = new Map<number, Uint8Array>();
  #files: FileEntry[] = [];
  #selector = 0;
  #offset = 0;
  #dmaHigh = 0;
  #memory: AddressSpace | null;
  /** DMA transfers completed (for tests and statistics). */
  dmaTransfers = 0;

  constructor(
    readonly id: string,
    memory: AddressSpace | null,
    machine: DeviceContext | null,
    options: { iobase?: number; dma?: boolean } = {},
  ) {
    this.#memory = memory;
    const dma = options.dma ?? true;
    this.setItem(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.setItem(FW_CFG_ID, le32(FW_CFG_VERSION | (dma ? FW_CFG_VERSION_DMA : 0)));
    if (machine) {
      const base = options.iobase ?? 0x510;
      machine.io.register(id, base, 2, {
        read: (port, size) => (port === base + 1 ? this.readData(size) : 0),
        write: (port, size, value) => {
          if (port === base) this.select(size === 1 ? value & 0xff : value & 0xffff);
        },
      });
      if (dma) {
        machine.io.register(`${id}-dma`, base + 4, 8, {
          read: (port) => this.readDmaRegister(port - base - 4),
          write: (port, size, value) => this.writeDmaRegister(port - base - 4, size, value),
        });
      }
    }
  }

  /** Sets a numbered item. */
  setItem(key: number, data: Uint8Array): void {
    this.#items.set(key, data);
  }

  /** Adds or replaces a named file; files get keys from 0x20 in the order added. */
  addFile(name: string, data: Uint8Array): void {
    if (name.length >= FW_CFG_MAX_FILE_PATH) {
      throw new RangeError(`fw_cfg file name too long: ${name}`);
    }
    const existing = this.#files.find((f) => f.name === name);
    if (existing) {
      existing.data = data;
      return;
    }
    this.#files.push({ name, key: FW_CFG_FILE_FIRST + this.#files.length, data });
  }

  /** The names of the files in the directory, sorted as the directory lists them. */
  fileNames(): string[] {
    return this.#sortedFiles().map((f) => f.name);
  }

  #sortedFiles(): FileEntry[] {
    return this.#files.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The directory item: be32 count, then per file be32 size, be16 key, be16 0, name[56]. */
  #fileDir(): Uint8Array {
    const files = this.#sortedFiles();
    const out = new Uint8Array(4 + 64 * files.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, files.length);
    files.forEach((f, i) => {
      const at = 4 + 64 * i;
      view.setUint32(at, f.data.length);
      view.setUint16(at + 4, f.key);
      for (let c = 0; c < f.name.length; c++) out[at + 8 + c] = f.name.charCodeAt(c);
    });
    return out;
  }

  #current(): Uint8Array | undefined {
    const key = this.#selector & ~FW_CFG_WRITE_CHANNEL;
    if (key === FW_CFG_FILE_DIR) return this.#fileDir();
    if (key >= FW_CFG_FILE_FIRST && key < FW_CFG_ARCH_LOCAL) {
      return this.#files.find((f) => f.key === key)?.data;
    }
    return this.#items.get(key);
  }

  /** Selects an item (a write to the selector port); the read offset restarts at 0. */
  select(key: number): void {
    this.#selector = key;
    this.#offset = 0;
  }

  /** Reads the next bytes of the selected item (0 past its end), little-endian packed. */
  readData(size: 1 | 2 | 4): number {
    const data = this.#current();
    let value = 0;
    for (let i = 0; i < size; i++) {
      const b = data && this.#offset < data.length ? data[this.#offset] : 0;
      if (data && this.#offset < data.length) this.#offset++;
      value |= b << (8 * i);
    }
    return value >>> 0;
  }

  /** Reads a DMA register byte lane: the "QEMU CFG" signature. */
  readDmaRegister(offset: number): number {
    // A 32-bit read at 0 or 4 returns that half big-endian.
    const word = DMA_SIGNATURE[offset >> 2] ?? 0;
    return bswap32(word);
  }

  /** Writes the DMA address (big-endian, high half at 0, low half at 4 starts the transfer). */
  writeDmaRegister(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    if (offset === 0) {
      this.#dmaHigh = bswap32(value);
    } else if (offset === 4) {
      const address = this.#dmaHigh * 2 ** 32 + bswap32(value);
      this.#dmaHigh = 0;
      this.runDma(address);
    }
  }

  /** Processes the DMA access structure at guest address `address`. */
  runDma(address: number): void {
    const mem = this.#memory;
    if (!mem) return;
    const head = new Uint8Array(16);
    const view = new DataView(head.buffer);
    try {
      mem.dmaRead(address, head);
    } catch {
      return; // nowhere to report an error
    }
    const control = view.getUint32(0);
    const length = view.getUint32(4);
    const target = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
    let error = false;
    if (control & FW_CFG_DMA_CTL_SELECT) this.select(control >>> 16);
    const data = this.#current();
    try {
      if (control & FW_CFG_DMA_CTL_READ) {
        // The guest's length is up to 4 GiB: copy the item's part straight from the
        // item, and write the rest as zeros (QEMU's dma_memory_set) from a small buffer.
        if (!mem.isDmaAddressable(target, length)) throw new RangeError("DMA target not RAM");
        let n = 0;
        if (data && this.#offset < data.length) {
          n = Math.min(length, data.length - this.#offset);
          mem.dmaWrite(target, data.subarray(this.#offset, this.#offset + n));
          this.#offset += n;
        }
        for (let done = n; done < length; done += FW_CFG_ZERO_CHUNK.length) {
          const step = Math.min(FW_CFG_ZERO_CHUNK.length, length - done);
          mem.dmaWrite(target + done, FW_CFG_ZERO_CHUNK.subarray(0, step));
        }
      } else if (control & FW_CFG_DMA_CTL_SKIP) {
        if (data) this.#offset = Math.min(data.length, this.#offset + length);
      } else if (control & FW_CFG_DMA_CTL_WRITE) {
        // No item is writable here (QEMU allows it only for a few files).
        error = true;
      }
    } catch {
      error = true;
    }
    this.dmaTransfers++;
    view.setUint32(0, error ? FW_CFG_DMA_CTL_ERROR : 0);
    try {
      mem.dmaWrite(address, head.subarray(0, 4));
    } catch {
      // the access structure vanished: nothing to report to
    }
  }

  /** What QEMU's `info qtree` lists for this device. */
  qtree(): { bus: "system"; nodes: QtreeNode[] } {
    return {
      bus: "system",
      nodes: [{
        model: "fw_cfg_io",
        properties: [["dma_enabled", true], ["x-file-slots", 32], ["acpi-mr-restore", true]],
      }],
    };
  }

  reset(): void {
    this.#selector = 0;
    this.#offset = 0;
    this.#dmaHigh = 0;
  }

  saveState(): DeviceState {
    return { selector: this.#selector, offset: this.#offset, dmaHigh: this.#dmaHigh };
  }

  loadState(state: DeviceState): void {
    this.#selector = state.selector as number;
    this.#offset = state.offset as number;
    this.#dmaHigh = state.dmaHigh as number;
  }
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** A little-endian u16. */
export function le16(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >> 8) & 0xff]);
}

/** A little-endian u32. */
export function le32(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0, true);
  return out;
}

/** A little-endian u64 (exact to 2^53). */
export function le64(v: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(v), true);
  return out;
}

/** The fw_cfg device of a PC (`fw_cfg_io`): ports 0x510/0x511, DMA at 0x514. */
export default {
  kind: "device",
  name: "fw_cfg_io",
  summary: "QEMU firmware configuration device (I/O ports)",
  bus: "System",
  category: "Misc",
  userCreatable: false,
  options: [{ name: "dma_enabled", type: "bool", help: "Enable the DMA interface", default: true }],
  create(machine: DeviceContext, opts): FwCfg {
    const m = machine;
    const fw = new FwCfg("fw_cfg", m.memory, m, { dma: opts.dma_enabled !== false });
    m.provide(FW_CFG, fw);
    return fw;
  },
} satisfies DeviceDescriptor;
