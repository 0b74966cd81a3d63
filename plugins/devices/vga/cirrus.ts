// The Cirrus Logic GD5446 (`-vga cirrus`, `-device cirrus-vga`): PCI function, linear aperture, MMIO BAR and VGA BIOS

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
import { optNumber, optString } from "../../../core/options.ts";
import type { DeviceDescriptor } from "../../../core/plugin.ts";
import { PciConfig } from "../../../core/pci.ts";
import {
  adapterRom,
  addVgaRomBar,
  byteMmio,
  claimLegacyWindow,
  placeRegion,
  registerBytePorts,
  VGA_BAR_REGION,
  VGA_REGION_PRIORITY,
} from "./_pci_display.ts";
import { CirrusCore } from "./cirrus_core.ts";
import { VgaConsole } from "./vga_render.ts";

export {
  CIRRUS_ID_CLGD5446,
  CIRRUS_SR6_UNLOCK,
  CIRRUS_SR7_BPP_SVGA,
  CirrusCore,
} from "./cirrus_core.ts";

/** PCI IDs: Cirrus Logic, CL-GD5446. */
export const PCI_VENDOR_ID_CIRRUS = 0x1013;
export const PCI_DEVICE_ID_CIRRUS_5446 = 0x00b8;
/** The BIOS QEMU loads into the Cirrus expansion ROM. */
export const CIRRUS_ROM = "vgabios-cirrus.bin";
/** Sizes of the PCI BARs: the 32 MiB linear aperture (VRAM, then BitBLT) and the MMIO block. */
export const CIRRUS_LINEAR_SIZE = 0x2000000;
export const CIRRUS_PNPMMIO_SIZE = 0x1000;
/** Where in the aperture the system-to-screen BitBLT source window starts, and its size. */
const CIRRUS_BITBLT_WINDOW = 0x1000000;
const CIRRUS_BITBLT_WINDOW_SIZE = 0x400000;
/**
 * QEMU's `cirrus-vga`: the GD5446 core at ports 0x3b0-0x3df and the VGA window,
 * BAR 0 = the 32 MiB linear aperture (VRAM at its start), BAR 1 = 4 KiB of MMIO
 * (VGA ports from 0x000, BitBLT registers from 0x100), and vgabios-cirrus.bin.
 */
export class CirrusVga implements Device {
  readonly model = "cirrus-vga";
  readonly config: PciConfig;
  readonly core: CirrusCore;
  /** The screen: VGA modes and the Cirrus SVGA modes with the hardware cursor. */
  readonly console: VgaConsole;
  readonly rom: Uint8Array | null;
  #memory: AddressSpace | null;
  /** Where BAR 0 is mapped (null: not mapped), and whether VRAM sits there as plain memory. */
  #linearBase: number | null = null;
  #linearDirect = false;

  constructor(
    readonly id: string,
    host: { memory: AddressSpace | null; io: DeviceContext["io"] | null; pci: PciBus | null },
    options: { vgamemMb?: number; rom?: Uint8Array | null } = {},
  ) {
    const mb = options.vgamemMb ?? 4;
    if (mb !== 4 && mb !== 8 && mb !== 16) {
      throw new UsageError(`Invalid cirrus_vga ram size '${mb}'`);
    }
    this.core = new CirrusCore(mb << 20);
    this.console = new VgaConsole(id, this.core, null, this.core);
    this.core.onMemoryAccessChange = () => this.#updateLinearVram();
    this.core.onDirtyTaken = () => this.#memory?.protectClean(`${id}.vram`);
    this.rom = options.rom ?? null;
    this.#memory = host.memory;
    this.config = new PciConfig({
      vendorId: PCI_VENDOR_ID_CIRRUS,
      deviceId: PCI_DEVICE_ID_CIRRUS_5446,
      classCode: 0x030000,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
    });
    this.config.addBar(0, {
      size: CIRRUS_LINEAR_SIZE,
      io: false,
      prefetchable: true,
      map: (base) => this.#mapLinear(base),
    });
    this.config.addBar(1, {
      size: CIRRUS_PNPMMIO_SIZE,
      io: false,
      map: (base) =>
        this.#place(`${id}.mmio`, base, (b) =>
          host.memory?.addMmio(
            `${id}.mmio`,
            b,
            CIRRUS_PNPMMIO_SIZE,
            byteMmio((o) => this.readMmio(o), (o, v) => this.writeMmio(o, v)),
            VGA_BAR_REGION,
          )),
    });
    addVgaRomBar(this.config, host.memory, id, this.rom);
    this.reset();
    claimLegacyWindow(host.memory, id, this.core, () => {
      if (host.io) {
        registerBytePorts(
          host.io,
          `${id}.io`,
          0x3b0,
          0x30,
          (port) => this.core.ioRead(port),
          (port, value) => this.core.ioWrite(port, value),
        );
      }
    });
    host.pci?.plug(this.config);
  }

  #place(name: string, base: number | null, add: (base: number) => void): void {
    if (this.#memory) placeRegion(this.#memory, name, base, add);
  }

  /**
   * BAR 0: an MMIO region for the whole aperture (VRAM through the Cirrus address
   * shifts, write modes and memory-mapped registers; the BitBLT source window at
   * 16 MiB; all ones elsewhere), with VRAM as plain memory over its start while the
   * chip is in none of those states, so ordinary framebuffer access costs nothing.
   */
  #mapLinear(base: number | null): void {
    const memory = this.#memory;
    if (!memory) return;
    this.#linearBase = base;
    const vramBytes = this.core.vram.length;
    placeRegion(
      memory,
      `${this.id}.lfb`,
      base,
      (b) =>
        memory.addMmio(
          `${this.id}.lfb`,
          b,
          CIRRUS_LINEAR_SIZE,
          byteMmio((o) => {
            if (o < vramBytes) return this.core.readLinear(o);
            return 0xff;
          }, (o, v) => {
            if (o < vramBytes) this.core.writeLinear(o, v);
            else if (
              o >= CIRRUS_BITBLT_WINDOW && o < CIRRUS_BITBLT_WINDOW + CIRRUS_BITBLT_WINDOW_SIZE
            ) {
              this.core.writeBltSource(v);
            }
          }),
          VGA_BAR_REGION,
        ),
    );
    this.#linearDirect = false;
    this.#updateLinearVram();
  }

  /** Puts VRAM over the aperture as memory, or takes it away, as the chip's state asks. */
  #updateLinearVram(): void {
    const memory = this.#memory;
    const direct = this.#linearBase !== null && this.core.linearDirect;
    if (!memory || direct === this.#linearDirect) return;
    this.#linearDirect = direct;
    placeRegion(
      memory,
      `${this.id}.vram`,
      direct ? this.#linearBase : null,
      (b) =>
        memory.addRamAlias(`${this.id}.vram`, b, this.core.vram, {
          priority: VGA_REGION_PRIORITY + 1,
          overlap: true,
          // Write-tracked: the CPU's framebuffer writes flag their pages for the renderer.
          dirtyPages: this.core.dirtyPages,
        }),
    );
  }

  /** BAR 1: offsets 0x00-0xff are ports 0x3c0-0x3ff, 0x100 on the BitBLT registers. */
  readMmio(offset: number): number {
    if (offset >= 0x100) return this.core.readBlt(offset - 0x100);
    return this.core.ioRead(0x3c0 + offset);
  }

  writeMmio(offset: number, value: number): void {
    if (offset >= 0x100) this.core.writeBlt(offset - 0x100, value);
    else this.core.ioWrite(0x3c0 + offset, value);
  }

  reset(): void {
    this.core.reset();
    this.config.reset();
  }

  saveState(): DeviceState {
    return { config: this.config.save(), core: this.core.save() };
  }

  loadState(state: DeviceState): void {
    this.core.load(state.core as Record<string, unknown>);
    this.config.load(state.config as Uint8Array);
  }
}

/** `-vga cirrus` and `-device cirrus-vga[,vgamem_mb=4][,romfile=...]`. */
export default {
  kind: "device",
  name: "cirrus-vga",
  summary: "Cirrus CLGD 54xx VGA",
  bus: "PCI",
  category: "Display",
  userCreatable: true,
  options: [
    { name: "vgamem_mb", type: "number", help: "video memory in MiB: 4, 8 or 16", default: 4 },
    { name: "romfile", type: "string", help: "VGA BIOS image (empty for none)" },
  ],
  create(machine: DeviceContext, opts): CirrusVga {
    const m = machine;
    const vga = new CirrusVga(m.freeId("vga"), {
      memory: m.memory,
      io: m.io,
      pci: m.findService(PCI_BUS) ?? null,
    }, {
      vgamemMb: optNumber(opts, "vgamem_mb"),
      rom: adapterRom(m, optString(opts, "romfile"), CIRRUS_ROM),
    });
    displayRegistry(m).addConsole(vga.console);
    return vga;
  },
} satisfies DeviceDescriptor;
