// The Cirrus Logic GD5446 (`-vga cirrus`, `-device cirrus-vga`): extended registers, banks, linear window

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
import { VgaCore } from "./vga_core.ts";
import { VgaConsole } from "./vga_render.ts";

/** PCI IDs: Cirrus Logic, CL-GD5446. */
export const PCI_VENDOR_ID_CIRRUS = 0x1013;
export const PCI_DEVICE_ID_CIRRUS_5446 = 0x00b8;
/** The chip ID CR27 reports: GD5446 (0x2e << 2, the low bits are the revision). */
export const CIRRUS_ID_CLGD5446 = 0xb8;
/** The BIOS QEMU loads into the Cirrus expansion ROM. */
export const CIRRUS_ROM = "vgabios-cirrus.bin";

/** SR06: writing 0x12 unlocks the extensions and reads back 0x12; anything else locks (0x0f). */
export const CIRRUS_SR6_UNLOCK = 0x12;
const CIRRUS_SR6_LOCKED = 0x0f;
/** SR07 bit 0: extended (SVGA) modes, where the window uses the Cirrus banks. */
export const CIRRUS_SR7_BPP_SVGA = 0x01;
/** SR12 bit 1: DAC accesses reach the 16 hidden cursor colours. */
const CIRRUS_CURSOR_HIDDENPEL = 0x02;
/** SR17 bits 2 and 6: memory-mapped BitBLT registers on, and where (0xb8000 or linear). */
const CIRRUS_MMIO_ENABLE = 0x04;
const CIRRUS_MMIO_USE_PCIADDR = 0x40;
/** GR0B bits: dual banks, 16 KiB bank granularity, and the address shifts of extended writes. */
const CIRRUS_BANKING_DUAL = 0x01;
const CIRRUS_BANKING_GRANULARITY_16K = 0x20;
/** GR31 BitBLT start and reset bits. */
const CIRRUS_BLT_START = 0x02;
const CIRRUS_BLT_RESET = 0x04;

/** Sizes of the PCI BARs: the 32 MiB linear aperture (VRAM, then BitBLT) and the MMIO block. */
export const CIRRUS_LINEAR_SIZE = 0x2000000;
export const CIRRUS_PNPMMIO_SIZE = 0x1000;

/**
 * The BitBLT registers in memory-mapped order (offset in the block -> graphics
 * register), so MMIO and port accesses land in the same place.
 */
const BLT_MMIO_TO_GR: Record<number, number> = {
  0x00: 0x00,
  0x01: 0x10,
  0x02: 0x12,
  0x03: 0x14,
  0x04: 0x01,
  0x05: 0x11,
  0x06: 0x13,
  0x07: 0x15,
  0x08: 0x20,
  0x09: 0x21,
  0x0a: 0x22,
  0x0b: 0x23,
  0x0c: 0x24,
  0x0d: 0x25,
  0x0e: 0x26,
  0x0f: 0x27,
  0x10: 0x28,
  0x11: 0x29,
  0x12: 0x2a,
  0x14: 0x2c,
  0x15: 0x2d,
  0x16: 0x2e,
  0x17: 0x2f,
  0x18: 0x30,
  0x1a: 0x32,
  0x1b: 0x33,
  0x1c: 0x34,
  0x1d: 0x35,
  0x20: 0x38,
  0x21: 0x39,
  0x40: 0x31,
};

/**
 * The VGA core with the GD5446's extensions: the extended sequencer (SR06 unlock,
 * SR07 mode, SR0F/SR17 memory and bus configuration, SR1F clocks), the graphics
 * controller's bank registers (GR09/GR0A/GR0B) and BitBLT register file, CR1A-CR1D
 * and the CR27 chip ID, and the hidden DAC register behind four reads of 0x3c6.
 */
export class CirrusCore extends VgaCore {
  /** GR00/GR01 as written (the standard registers keep 4 bits; BitBLT colours use 8). */
  shadowGr0 = 0;
  shadowGr1 = 0;
  /** Reads of 0x3c6 since the last other DAC access; the fifth read shows the hidden DAC. */
  hiddenDacLock = 0;
  hiddenDac = 0;
  readonly hiddenPalette = new Uint8Array(48);
  /** Base and size of the two 32 KiB bank windows at 0xa0000 and 0xa8000. */
  readonly bankBase = new Int32Array(2);
  readonly bankLimit = new Int32Array(2);

  constructor(vramBytes: number) {
    super(vramBytes);
    this.srIndexMask = 0xff;
    this.grIndexMask = 0xff;
  }

  override reset(): void {
    super.reset();
    this.sr[0x06] = CIRRUS_SR6_LOCKED;
    // QEMU's GD5446 power-on values: 4 MiB of 64-bit DRAM on PCI.
    this.sr[0x1f] = 0x2d;
    this.gr[0x18] = 0x0f;
    this.sr[0x0f] = 0x98;
    this.sr[0x17] = 0x20;
    this.sr[0x15] = 0x04;
    this.cr[0x27] = CIRRUS_ID_CLGD5446;
    this.shadowGr0 = this.shadowGr1 = 0;
    this.hiddenDacLock = 0;
    this.hiddenDac = 0;
    this.hiddenPalette.fill(0);
    this.updateBanks();
  }

  protected override readSeq(index: number): number {
    if (index <= 0x04) return super.readSeq(index);
    // The cursor position registers answer at every index whose low 5 bits are 0x10/0x11.
    if ((index & 0x1f) === 0x10) return this.sr[0x10];
    if ((index & 0x1f) === 0x11) return this.sr[0x11];
    return index <= 0x1f ? this.sr[index] : 0xff;
  }

  protected override writeSeq(index: number, value: number): void {
    if (index <= 0x04) {
      super.writeSeq(index, value);
    } else if (index === 0x06) {
      this.sr[0x06] = (value & 0x17) === CIRRUS_SR6_UNLOCK ? CIRRUS_SR6_UNLOCK : CIRRUS_SR6_LOCKED;
    } else if ((index & 0x1f) === 0x10 || (index & 0x1f) === 0x11) {
      // Bits 7-5 of the index are the low bits of the cursor coordinate.
      this.sr[index & 0x1f] = value;
    } else if (index === 0x17) {
      // Bits 3-5 report the bus type and memory size: read-only.
      this.sr[0x17] = (this.sr[0x17] & 0x38) | (value & 0xc7);
    } else if (index <= 0x1f) {
      this.sr[index] = value;
    }
  }

  protected override readGfx(index: number): number {
    if (index === 0x00) return this.shadowGr0;
    if (index === 0x01) return this.shadowGr1;
    return index < 0x3a ? this.gr[index] : 0xff;
  }

  protected override writeGfx(index: number, value: number): void {
    switch (index) {
      case 0x00:
        this.shadowGr0 = value;
        super.writeGfx(index, value);
        break;
      case 0x01:
        this.shadowGr1 = value;
        super.writeGfx(index, value);
        break;
      case 0x05:
        // Bits 2 and 6 select the Cirrus extended write modes 4 and 5.
        this.gr[index] = value & 0x7f;
        this.updateWritePath();
        break;
      case 0x09:
      case 0x0a:
      case 0x0b:
        this.gr[index] = value;
        this.updateBanks();
        break;
      case 0x21:
      case 0x23:
      case 0x25:
      case 0x27:
        this.gr[index] = value & 0x1f;
        break;
      case 0x2a:
      case 0x2e:
        this.gr[index] = value & 0x3f;
        break;
      case 0x31:
        // BitBLT is not emulated: a started or reset blit completes at once with no effect,
        // so a driver polling the busy bit moves on.
        this.gr[index] = value & ~(CIRRUS_BLT_START | CIRRUS_BLT_RESET | 0x01);
        break;
      default:
        if (index <= 0x08) super.writeGfx(index, value);
        else if (index >= 0x10 && index < 0x3a) this.gr[index] = value;
    }
  }

  protected override readCrtc(index: number): number {
    if (index <= 0x18) return super.readCrtc(index);
    switch (index) {
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x25:
      case 0x27:
        return this.cr[index];
      case 0x22: // graphics data latch selected by GR04
        return (this.latch >>> ((this.gr[0x04] & 3) << 3)) & 0xff;
      case 0x24: // attribute controller toggle readback
        return this.arFlipFlop << 7;
      case 0x26: // attribute controller index readback
        return this.arIndex & 0x3f;
      default:
        return 0xff;
    }
  }

  protected override writeCrtc(index: number, value: number): void {
    if (index <= 0x18) super.writeCrtc(index, value);
    else if (index >= 0x19 && index <= 0x1d) this.cr[index] = value;
  }

  /** 0x3c6: the PEL mask, except that the fifth read in a row returns the hidden DAC. */
  protected override readPelMask(): number {
    if (++this.hiddenDacLock === 5) {
      this.hiddenDacLock = 0;
      return this.hiddenDac;
    }
    return this.dacMask;
  }

  /** A write after four reads of 0x3c6 goes to the hidden DAC (its colour mode). */
  protected override writePelMask(value: number): void {
    if (this.hiddenDacLock === 4) this.hiddenDac = value;
    else this.dacMask = value;
    this.hiddenDacLock = 0;
  }

  protected override readPelWriteIndex(): number {
    this.hiddenDacLock = 0;
    return this.dacWriteIndex;
  }

  protected override readPalette(): number {
    if (!(this.sr[0x12] & CIRRUS_CURSOR_HIDDENPEL)) return super.readPalette();
    const value = this.hiddenPalette[(this.dacReadIndex & 0x0f) * 3 + this.dacSubIndex];
    if (++this.dacSubIndex === 3) {
      this.dacSubIndex = 0;
      this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
    }
    return value;
  }

  protected override writePalette(value: number): void {
    if (!(this.sr[0x12] & CIRRUS_CURSOR_HIDDENPEL)) {
      super.writePalette(value);
      return;
    }
    this.dacCache[this.dacSubIndex] = value & 0x3f;
    if (++this.dacSubIndex === 3) {
      this.hiddenPalette.set(this.dacCache, (this.dacWriteIndex & 0x0f) * 3);
      this.dacSubIndex = 0;
      this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
    }
  }

  /**
   * Recomputes the bank windows from GR09/GR0A/GR0B: one 64 KiB bank (GR09) or two
   * 32 KiB banks (GR09 at 0xa0000, GR0A at 0xa8000), in 4 KiB or 16 KiB steps.
   */
  updateBanks(): void {
    const gr = this.gr;
    const size = this.vram.length;
    for (let bank = 0; bank < 2; bank++) {
      let offset = gr[0x0b] & CIRRUS_BANKING_DUAL ? gr[0x09 + bank] : gr[0x09];
      offset *= gr[0x0b] & CIRRUS_BANKING_GRANULARITY_16K ? 0x4000 : 0x1000;
      let limit = size > offset ? size - offset : 0;
      if (!(gr[0x0b] & CIRRUS_BANKING_DUAL) && bank === 1) {
        // A single bank spans both halves: the second continues where the first ends.
        if (limit > 0x8000) {
          offset += 0x8000;
          limit -= 0x8000;
        } else {
          limit = 0;
        }
      }
      this.bankBase[bank] = limit > 0 ? offset : 0;
      this.bankLimit[bank] = limit;
    }
  }

  /** True in the extended (SVGA) modes, where the window is banked linear VRAM. */
  get extendedMode(): boolean {
    return (this.sr[0x07] & CIRRUS_SR7_BPP_SVGA) !== 0;
  }

  override readWindow(offset: number): number {
    if (!this.extendedMode) return super.readWindow(offset);
    if (offset < 0x10000) {
      const address = this.#bankAddress(offset);
      return address < 0 ? 0xff : this.vram[address];
    }
    if (offset >= 0x18000 && offset < 0x18100 && this.#mmioAtB8000()) {
      return this.readBlt(offset & 0xff);
    }
    return 0xff;
  }

  override writeWindow(offset: number, value: number): void {
    if (!this.extendedMode) {
      super.writeWindow(offset, value);
      return;
    }
    if (offset < 0x10000) {
      const address = this.#bankAddress(offset);
      if (address >= 0) this.vram[address] = value;
    } else if (offset >= 0x18000 && offset < 0x18100 && this.#mmioAtB8000()) {
      this.writeBlt(offset & 0xff, value);
    }
  }

  #bankAddress(offset: number): number {
    const bank = offset >> 15;
    const within = offset & 0x7fff;
    if (within >= this.bankLimit[bank]) return -1;
    return (this.bankBase[bank] + within) & (this.vram.length - 1);
  }

  #mmioAtB8000(): boolean {
    return (this.sr[0x17] & (CIRRUS_MMIO_ENABLE | CIRRUS_MMIO_USE_PCIADDR)) === CIRRUS_MMIO_ENABLE;
  }

  /** A read of the memory-mapped BitBLT registers. */
  readBlt(offset: number): number {
    const index = BLT_MMIO_TO_GR[offset];
    return index === undefined ? 0xff : this.readGfx(index);
  }

  /** A write of the memory-mapped BitBLT registers. */
  writeBlt(offset: number, value: number): void {
    const index = BLT_MMIO_TO_GR[offset];
    if (index !== undefined) this.writeGfx(index, value);
  }

  override save(): Record<string, number | Uint8Array> {
    return {
      ...super.save(),
      cirrus: Uint8Array.from([this.shadowGr0, this.shadowGr1, this.hiddenDacLock, this.hiddenDac]),
      hiddenPalette: this.hiddenPalette.slice(),
    };
  }

  override load(state: Record<string, unknown>): void {
    super.load(state);
    const c = state.cirrus as Uint8Array;
    [this.shadowGr0, this.shadowGr1, this.hiddenDacLock, this.hiddenDac] = c;
    this.hiddenPalette.set(state.hiddenPalette as Uint8Array);
    this.updateBanks();
  }
}

/**
 * QEMU's `cirrus-vga`: the GD5446 core at ports 0x3b0-0x3df and the VGA window,
 * BAR 0 = the 32 MiB linear aperture (VRAM at its start), BAR 1 = 4 KiB of MMIO
 * (VGA ports from 0x000, BitBLT registers from 0x100), and vgabios-cirrus.bin.
 */
export class CirrusVga implements Device {
  readonly model = "cirrus-vga";
  readonly config: PciConfig;
  readonly core: CirrusCore;
  /** The screen (VGA text mode; the Cirrus extended modes are not rendered yet). */
  readonly console: VgaConsole;
  readonly rom: Uint8Array | null;
  #memory: AddressSpace | null;

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
    // The Cirrus extended (SVGA) modes are not drawn yet.
    this.console = new VgaConsole(id, this.core, null, () => this.core.extendedMode);
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
   * BAR 0: VRAM as RAM at the start of the aperture (the plain linear framebuffer),
   * over an MMIO region for the rest, which reads all ones and drops writes (the
   * BitBLT system-to-screen window at 16 MiB is not emulated).
   */
  #mapLinear(base: number | null): void {
    const memory = this.#memory;
    if (!memory) return;
    placeRegion(
      memory,
      `${this.id}.lfb`,
      base,
      (b) =>
        memory.addMmio(`${this.id}.lfb`, b, CIRRUS_LINEAR_SIZE, {
          read: (_o, size) => (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1),
          write: () => {},
        }, VGA_BAR_REGION),
    );
    placeRegion(
      memory,
      `${this.id}.vram`,
      base,
      (b) =>
        memory.addRamAlias(`${this.id}.vram`, b, this.core.vram, {
          priority: VGA_REGION_PRIORITY + 1,
          overlap: true,
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
