// Helpers the PCI VGA adapters share: option ROM choice, region (re)mapping and byte-split handlers

import { UsageError } from "../../../core/errors.ts";
import { findFirmware, loadOptionRom } from "../../../core/firmware.ts";
import type { DeviceContext } from "../../../core/device.ts";
import type { AddressSpace, MmioHandler } from "../../../core/memory/address_space.ts";
import type { PortHandler, PortIoSpace } from "../../../core/memory/port_io.ts";
import type { PciConfig } from "../../../core/pci.ts";
import type { VgaCore } from "./vga_core.ts";

/** The base of the legacy VGA memory window and its size. */
export const VGA_WINDOW_BASE = 0xa0000;
export const VGA_WINDOW_SIZE = 0x20000;

/** PCI BARs and the VGA window sit above RAM (priority 0), as QEMU overlaps them at priority 1. */
export const VGA_REGION_PRIORITY = 1;
/** A BAR window: guest-programmed, so it may land on anything and covers it (QEMU's overlap). */
export const VGA_BAR_REGION = { priority: VGA_REGION_PRIORITY, overlap: true };

/**
 * The option ROM of a VGA adapter being created. `romfile=` given names a ROM the user
 * asked for: it must exist, as in QEMU (an empty value means none). Without `romfile=`
 * the adapter's own VGA BIOS is a default nobody asked for: when it is missing (SeaBIOS
 * not installed) the adapter works without it, after one warning, since the
 * adapter's registers and framebuffer do not depend on it.
 */
export function adapterRom(
  machine: DeviceContext,
  romfile: string | undefined,
  defaultRom: string,
): Uint8Array | null {
  const dataDirs = machine.config.dataDirs ?? [];
  if (romfile === undefined && findFirmware(defaultRom, dataDirs).path === null) {
    machine.config.warn?.(
      `VGA BIOS "${defaultRom}" not found (Debian package seabios, or -L DIR): ` +
        `the VGA runs without its option ROM, so the BIOS shows no video`,
    );
    return null;
  }
  return loadOptionRom(romfile, defaultRom, { dataDirs });
}

/**
 * Moves a named region: removes it, then adds it at `base` unless `base` is null. The
 * windows are added with `overlap`, so a base on top of another region covers it (the
 * address space's priority rule); a base the address space cannot hold at all (past
 * 4 GiB, not page aligned) leaves the BAR unmapped.
 */
export function placeRegion(
  memory: AddressSpace,
  name: string,
  base: number | null,
  add: (base: number) => void,
): void {
  memory.remove(name);
  if (base === null) return;
  try {
    add(base);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
}

/**
 * Runs the registration of the legacy VGA window and ports, turning a clash with an
 * adapter that already holds them into a clear error.
 */
export function claimLegacyVga(register: () => void): void {
  try {
    register();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(
      "Only one VGA adapter can use the legacy VGA resources (0xa0000 and ports 0x3b0-0x3df)",
    );
  }
}

/** Wraps a byte-wide MMIO reader and writer so 16- and 32-bit accesses split into bytes. */
export function byteMmio(
  read: (offset: number) => number,
  write: (offset: number, value: number) => void,
): MmioHandler {
  return {
    read(offset, size) {
      if (size === 1) return read(offset);
      let value = 0;
      for (let i = 0; i < size; i++) value |= read(offset + i) << (8 * i);
      return value >>> 0;
    },
    write(offset, size, value) {
      if (size === 1) {
        write(offset, value & 0xff);
        return;
      }
      for (let i = 0; i < size; i++) write(offset + i, (value >>> (8 * i)) & 0xff);
    },
  };
}

/** Registers ports whose byte handlers also answer 16- and 32-bit accesses (low byte first). */
export function registerBytePorts(
  io: PortIoSpace,
  name: string,
  base: number,
  count: number,
  read: (port: number) => number,
  write: (port: number, value: number) => void,
): void {
  const handler: PortHandler = {
    read(port, size) {
      if (size === 1) return read(port);
      let value = 0;
      for (let i = 0; i < size; i++) value |= read(port + i) << (8 * i);
      return value >>> 0;
    },
    write(port, size, value) {
      if (size === 1) {
        write(port, value & 0xff);
        return;
      }
      for (let i = 0; i < size; i++) write(port + i, (value >>> (8 * i)) & 0xff);
    },
  };
  io.register(name, base, count, handler);
}

/** Gives an adapter its VGA BIOS as the PCI expansion ROM, mapped read-only where the BIOS puts it. */
export function addVgaRomBar(
  config: PciConfig,
  memory: AddressSpace | null | undefined,
  id: string,
  rom: Uint8Array | null,
): void {
  if (!rom) return;
  config.addRomBar({
    size: rom.length,
    map: (base) => {
      if (!memory) return;
      placeRegion(memory, `${id}.rom`, base, (b) => {
        memory.addRom(`${id}.rom`, b, rom, VGA_BAR_REGION);
      });
    },
  });
}

/**
 * Claims the legacy VGA resources for `core`: the 0xa0000 window, then whatever ports
 * `registerPorts` adds; a second adapter gets a clear error.
 */
export function claimLegacyWindow(
  memory: AddressSpace | null | undefined,
  id: string,
  core: VgaCore,
  registerPorts: () => void,
): void {
  claimLegacyVga(() => {
    memory?.addMmio(
      `${id}.lowmem`,
      VGA_WINDOW_BASE,
      VGA_WINDOW_SIZE,
      byteMmio((o) => core.readWindow(o), (o, v) => core.writeWindow(o, v)),
      VGA_REGION_PRIORITY,
    );
    registerPorts();
  });
}
