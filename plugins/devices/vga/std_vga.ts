// The standard VGA (`-vga std`, `-device VGA`): PCI 1234:1111 with Bochs VBE, a linear framebuffer and vgabios-stdvga.bin

import {
  type Device,
  type DeviceContext,
  type DeviceState,
  PCI_BUS,
  type PciBus,
} from "../../../core/device.ts";
import { displayRegistry } from "../../../core/display.ts";
import { UsageError } from "../../../core/errors.ts";
import type { AddressSpace } from "../../../core/memory/address_space.ts";
import { optBool, optNumber, optString } from "../../../core/options.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { PciConfig } from "../../../core/pci.ts";
import {
  adapterRom,
  addVgaRomBar,
  claimLegacyWindow,
  placeRegion,
  registerBytePorts,
  VGA_BAR_REGION,
} from "./_pci_display.ts";
import { BochsDispi, VBE_DISPI_IOPORT_INDEX } from "./vbe.ts";
import { VgaCore } from "./vga_core.ts";
import { VgaConsole } from "./vga_render.ts";

/** QEMU's PCI IDs for its VGA (PCI_VENDOR_ID_QEMU, PCI_DEVICE_ID_QEMU_VGA). */
export const PCI_VENDOR_ID_QEMU = 0x1234;
export const PCI_DEVICE_ID_QEMU_VGA = 0x1111;
/** PCI class "display controller, VGA compatible". */
export const PCI_CLASS_DISPLAY_VGA = 0x030000;
/** Subsystem IDs QEMU gives every PCI device it does not give others. */
const PCI_SUBVENDOR_ID_REDHAT_QUMRANET = 0x1af4;
const PCI_SUBDEVICE_ID_QEMU = 0x1100;

/** The BIOS QEMU loads into the std VGA's expansion ROM. */
export const STDVGA_ROM = "vgabios-stdvga.bin";

/** Layout of the 4 KiB MMIO BAR 2 (QEMU docs/specs/standard-vga.rst). */
export const PCI_VGA_MMIO_SIZE = 0x1000;
export const PCI_VGA_IOPORT_OFFSET = 0x400;
export const PCI_VGA_IOPORT_SIZE = 0x20;
export const PCI_VGA_BOCHS_OFFSET = 0x500;
export const PCI_VGA_BOCHS_SIZE = 0x16;
export const PCI_VGA_QEXT_OFFSET = 0x600;
export const PCI_VGA_QEXT_SIZE = 8;
/** The value of the QEMU extended registers' byte-order register for little endian. */
export const PCI_VGA_QEXT_LITTLE_ENDIAN = 0x1e1e1e1e;

/** What the std VGA is built from. */
export interface StdVgaOptions {
  /** VRAM in MiB (a power of two from 1 to 256; QEMU's `vgamem_mb`, default 16). */
  vgamemMb?: number;
  /** The expansion ROM image, or null for none (`romfile=`). */
  rom?: Uint8Array | null;
  /** Expose BAR 2 (`mmio=on`, the default). */
  mmio?: boolean;
  /** Include the QEMU extended registers in BAR 2 (`qemu-extended-regs=on`). */
  qemuExtendedRegs?: boolean;
}

/**
 * QEMU's `VGA` device: the VGA core at its legacy ports and window, the Bochs VBE
 * registers at 0x1ce/0x1cf, BAR 0 = VRAM (prefetchable, the linear framebuffer),
 * BAR 2 = the MMIO view of the same registers, and the VGA BIOS as expansion ROM.
 */
export class StdVga implements Device {
  readonly model = "VGA";
  readonly config: PciConfig;
  readonly core: VgaCore;
  readonly vbe: BochsDispi;
  /** The screen: VRAM rendered into a display surface. */
  readonly console: VgaConsole;
  /** The padded option ROM (null with `romfile=`). */
  readonly rom: Uint8Array | null;
  #memory: AddressSpace | null;
  #qext: boolean;

  constructor(
    readonly id: string,
    host: { memory: AddressSpace | null; io: DeviceContext["io"] | null; pci: PciBus | null },
    options: StdVgaOptions = {},
  ) {
    const mb = options.vgamemMb ?? 16;
    if (!Number.isInteger(mb) || mb < 1 || mb > 256 || (mb & (mb - 1)) !== 0) {
      throw new UsageError(`Invalid VGA memory size '${mb}': vgamem_mb must be a power of two`);
    }
    this.core = new VgaCore(mb << 20);
    this.vbe = new BochsDispi(this.core);
    this.console = new VgaConsole(id, this.core, this.vbe);
    this.core.onDirtyTaken = () => this.#memory?.protectClean(`${id}.vram`);
    this.rom = options.rom ?? null;
    this.#memory = host.memory;
    this.#qext = options.qemuExtendedRegs ?? true;
    this.config = new PciConfig({
      vendorId: PCI_VENDOR_ID_QEMU,
      deviceId: PCI_DEVICE_ID_QEMU_VGA,
      // QEMU marks the function revision 2 when the extended registers are there.
      revision: this.#qext ? 2 : 0,
      classCode: PCI_CLASS_DISPLAY_VGA,
      subsystemVendorId: PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
      subsystemId: PCI_SUBDEVICE_ID_QEMU,
    });
    this.config.addBar(0, {
      size: this.core.vram.length,
      io: false,
      prefetchable: true,
      map: (base) => this.#place(`${id}.vram`, base, (b) => this.#addVram(b)),
    });
    if (options.mmio ?? true) {
      this.config.addBar(2, {
        size: PCI_VGA_MMIO_SIZE,
        io: false,
        map: (base) => this.#place(`${id}.mmio`, base, (b) => this.#addMmio(b)),
      });
    }
    addVgaRomBar(this.config, host.memory, id, this.rom);
    this.reset();
    claimLegacyWindow(host.memory, id, this.core, () => {
      if (host.io) this.#registerPorts(host.io);
    });
    host.pci?.plug(this.config);
  }

  #registerPorts(io: DeviceContext["io"]): void {
    const read = (port: number) => this.core.ioRead(port);
    const write = (port: number, value: number) => this.core.ioWrite(port, value);
    // The same ports QEMU's std VGA claims; the rest of 0x3b0-0x3df stays unassigned.
    registerBytePorts(io, `${this.id}.3b4`, 0x3b4, 2, read, write);
    registerBytePorts(io, `${this.id}.3ba`, 0x3ba, 1, read, write);
    registerBytePorts(io, `${this.id}.3c0`, 0x3c0, 16, read, write);
    registerBytePorts(io, `${this.id}.3d4`, 0x3d4, 2, read, write);
    registerBytePorts(io, `${this.id}.3da`, 0x3da, 1, read, write);
    io.register(`${this.id}.vbe`, VBE_DISPI_IOPORT_INDEX, 4, {
      read: (port, size) => {
        const value = port === VBE_DISPI_IOPORT_INDEX
          ? this.vbe.index
          : this.vbe.read(this.vbe.index);
        return size === 1 ? value & 0xff : value;
      },
      write: (port, _size, value) => {
        if (port === VBE_DISPI_IOPORT_INDEX) this.vbe.index = value & 0xffff;
        else this.vbe.write(this.vbe.index, value);
      },
    });
  }

  #place(name: string, base: number | null, add: (base: number) => void): void {
    if (this.#memory) placeRegion(this.#memory, name, base, add);
  }

  #addVram(base: number): void {
    // Write-tracked: the CPU's framebuffer writes flag their pages for the renderer.
    this.#memory?.addRamAlias(`${this.id}.vram`, base, this.core.vram, {
      ...VGA_BAR_REGION,
      dirtyPages: this.core.dirtyPages,
    });
  }

  #addMmio(base: number): void {
    this.#memory?.addMmio(`${this.id}.mmio`, base, PCI_VGA_MMIO_SIZE, {
      read: (offset, size) => this.readMmio(offset, size),
      write: (offset, size, value) => this.writeMmio(offset, size, value),
    }, VGA_BAR_REGION);
  }

  /** A read of BAR 2: VGA ports at 0x400, VBE registers at 0x500, QEMU extensions at 0x600. */
  readMmio(offset: number, size: 1 | 2 | 4): number {
    if (offset >= PCI_VGA_IOPORT_OFFSET && offset < PCI_VGA_IOPORT_OFFSET + PCI_VGA_IOPORT_SIZE) {
      let value = 0;
      for (let i = 0; i < size; i++) {
        value |= this.core.ioRead(0x3c0 + offset - PCI_VGA_IOPORT_OFFSET + i) << (8 * i);
      }
      return value >>> 0;
    }
    if (offset >= PCI_VGA_BOCHS_OFFSET && offset < PCI_VGA_BOCHS_OFFSET + PCI_VGA_BOCHS_SIZE) {
      const value = this.vbe.read((offset - PCI_VGA_BOCHS_OFFSET) >> 1);
      return size === 1 ? (value >> (8 * (offset & 1))) & 0xff : value;
    }
    if (this.#qext && offset >= PCI_VGA_QEXT_OFFSET) {
      if (offset === PCI_VGA_QEXT_OFFSET) return PCI_VGA_QEXT_SIZE;
      if (offset === PCI_VGA_QEXT_OFFSET + 4) return PCI_VGA_QEXT_LITTLE_ENDIAN;
    }
    return 0;
  }

  /** A write of BAR 2. */
  writeMmio(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= PCI_VGA_IOPORT_OFFSET && offset < PCI_VGA_IOPORT_OFFSET + PCI_VGA_IOPORT_SIZE) {
      for (let i = 0; i < size; i++) {
        this.core.ioWrite(0x3c0 + offset - PCI_VGA_IOPORT_OFFSET + i, (value >>> (8 * i)) & 0xff);
      }
      return;
    }
    if (offset >= PCI_VGA_BOCHS_OFFSET && offset < PCI_VGA_BOCHS_OFFSET + PCI_VGA_BOCHS_SIZE) {
      if (size >= 2) this.vbe.write((offset - PCI_VGA_BOCHS_OFFSET) >> 1, value & 0xffff);
    }
    // The extended registers' byte-order switch stays little endian (x86 guests only).
  }

  reset(): void {
    this.core.reset();
    this.vbe.reset();
    this.config.reset();
  }

  saveState(): DeviceState {
    return { config: this.config.save(), core: this.core.save(), vbe: this.vbe.save() };
  }

  loadState(state: DeviceState): void {
    this.core.load(state.core as Record<string, unknown>);
    this.vbe.load(state.vbe as Record<string, unknown>);
    this.config.load(state.config as Uint8Array);
  }
}

/** `-vga std` and `-device VGA[,vgamem_mb=16][,romfile=...]`. */
export default {
  kind: "device",
  name: "VGA",
  summary: "Standard VGA with Bochs VBE extensions (PCI 1234:1111)",
  bus: "PCI",
  category: "Display",
  userCreatable: true,
  options: [
    { name: "vgamem_mb", type: "number", help: "video memory in MiB (default 16)", default: 16 },
    { name: "mmio", type: "bool", help: "expose the MMIO BAR (default on)", default: true },
    {
      name: "qemu-extended-regs",
      type: "bool",
      help: "QEMU extended registers in the MMIO BAR (default on)",
      default: true,
    },
    { name: "romfile", type: "string", help: "VGA BIOS image (empty for none)" },
  ],
  create(machine: DeviceContext, opts): StdVga {
    const m = machine;
    const vga = new StdVga(m.freeId("vga"), {
      memory: m.memory,
      io: m.io,
      pci: m.findService(PCI_BUS) ?? null,
    }, {
      vgamemMb: optNumber(opts, "vgamem_mb"),
      mmio: optBool(opts, "mmio"),
      qemuExtendedRegs: optBool(opts, "qemu-extended-regs"),
      rom: adapterRom(m, optString(opts, "romfile"), STDVGA_ROM),
    });
    displayRegistry(m).addConsole(vga.console);
    return vga;
  },
} satisfies DeviceDescriptor;
