// The `-M pc` board (i440FX + PIIX3, QEMU 7.2 layout): memory map, devices, IRQ wiring and fw_cfg contents

import type { CpuBackend, InterruptSource } from "../../core/cpu.ts";
import {
  CPU_IRQ,
  cpuIrqKey,
  type FirmwareConfig,
  FLOPPY_DRIVES,
  GUEST_RAM,
  ISA_BIOS,
  ISA_BUS,
  type IsaBus,
  RTC_CMOS,
} from "../../core/device.ts";
import { hostIoError, NotSupportedError, UsageError } from "../../core/errors.ts";
import { fanOut, type IrqController, IrqLine } from "../../core/irq.ts";
import type { Device, DeviceState, QtreeNode } from "../../core/device.ts";
import { Machine, type MachineConfig } from "../../core/machine.ts";
import type { MachineDescriptor } from "../../core/plugin.ts";
import { findFirmware, loadFirmware, recordRom } from "../../core/firmware.ts";
import { LINUXBOOT_DMA_ROM, setupLinuxBoot } from "./linux_boot.ts";
import { isLinuxKernel, MultibootLoader, prepareMultibootBoot } from "./multiboot.ts";

/** CPUs an i440FX board takes (xAPIC IDs below the 0xff broadcast), as QEMU's `max_cpus`. */
export const PC_MAX_CPUS = 255;
/** The firmware `-M pc` loads when no `-bios` is given. */
export const PC_DEFAULT_BIOS = "bios-256k.bin";
/** Largest RAM below 4 GiB on i440FX when RAM does not fit (QEMU's gigabyte alignment). */
const PC_LOWMEM_LIMIT = 0xe0000000;
const PC_LOWMEM_ALIGNED = 0xc0000000;
/** The ISA BIOS window: the last 128 KiB of the BIOS image shows at 0xe0000-0xfffff. */
const ISA_BIOS_SIZE = 0x20000;

/** fw_cfg legacy keys the board fills (QEMU docs/specs/fw_cfg.rst). */
const FW_CFG_UUID = 0x02;
const FW_CFG_RAM_SIZE = 0x03;
const FW_CFG_NOGRAPHIC = 0x04;
const FW_CFG_NB_CPUS = 0x05;
const FW_CFG_BOOT_MENU = 0x0e;
const FW_CFG_MAX_CPUS = 0x0f;
const FW_CFG_IRQ0_OVERRIDE = 0x8002;

const E820_RAM = 1;

/** RTC CMOS bytes the BIOS reads, as QEMU's pc board sets them. */
interface CmosMemory {
  readonly cmos: Uint8Array;
}

/** The boot device codes of CMOS 0x3d/0x38: floppy 1, hard disk 2, CD-ROM 3, network 4. */
function bootDeviceCode(letter: string): number {
  switch (letter) {
    case "a":
    case "b":
      return 1;
    case "c":
      return 2;
    case "d":
      return 3;
    case "n":
      return 4;
    default:
      throw new UsageError(`Invalid boot device for PC: '${letter}'`);
  }
}

function le(bytes: number, value: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  if (bytes === 2) view.setUint16(0, value, true);
  else if (bytes === 4) view.setUint32(0, value >>> 0, true);
  else view.setBigUint64(0, BigInt(value), true);
  return out;
}

/** Splits RAM into the parts below and above 4 GiB as QEMU's i440FX board does. */
export function pcRamSplit(ramBytes: number): { below4g: number; above4g: number } {
  if (ramBytes < PC_LOWMEM_LIMIT) return { below4g: ramBytes, above4g: 0 };
  return { below4g: PC_LOWMEM_ALIGNED, above4g: ramBytes - PC_LOWMEM_ALIGNED };
}

/** The `etc/e820` fw_cfg file: packed { u64 address, u64 length, u32 type } entries. */
export function e820Table(
  entries: { address: number; length: number; type: number }[],
): Uint8Array {
  const out = new Uint8Array(20 * entries.length);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    view.setBigUint64(20 * i, BigInt(e.address), true);
    view.setBigUint64(20 * i + 8, BigInt(e.length), true);
    view.setUint32(20 * i + 16, e.type, true);
  });
  return out;
}

/** Fills the CMOS memory-size, CPU-count, equipment and boot-order bytes. */
export function fillPcCmos(
  cmos: Uint8Array,
  options: {
    ramBytes: number;
    below4g: number;
    above4g: number;
    smp: number;
    bootOrder: string;
    /** The CMOS types of floppy drives A and B (0: none), from the floppy controller. */
    floppyTypes?: readonly [number, number];
  },
): void {
  cmos[0x15] = 640 & 0xff; // base memory in KiB
  cmos[0x16] = 640 >> 8;
  const ext = Math.min(Math.floor(options.ramBytes / 1024) - 1024, 65535);
  cmos[0x17] = cmos[0x30] = ext & 0xff;
  cmos[0x18] = cmos[0x31] = (ext >> 8) & 0xff;
  const above16m = options.ramBytes >= 16 << 20
    ? Math.min(Math.floor(options.below4g / 65536) - (16 << 20) / 65536, 65535)
    : 0;
  cmos[0x34] = above16m & 0xff;
  cmos[0x35] = (above16m >> 8) & 0xff;
  const high = Math.floor(options.above4g / 65536);
  cmos[0x5b] = high & 0xff;
  cmos[0x5c] = (high >> 8) & 0xff;
  cmos[0x5d] = (high >> 16) & 0xff;
  cmos[0x5f] = options.smp - 1;
  const [fdA, fdB] = options.floppyTypes ?? [0, 0];
  cmos[0x10] = fdA << 4 | fdB;
  const floppies = (fdA ? 1 : 0) + (fdB ? 1 : 0);
  // FPU present, PS/2 mouse present, VGA; bit 0 and bits 6-7: floppies present, count - 1.
  cmos[0x14] = 0x02 | 0x04 | (floppies ? 0x01 | (floppies - 1) << 6 : 0);
  const codes = [...options.bootOrder.slice(0, 3)].map(bootDeviceCode);
  while (codes.length < 3) codes.push(0);
  cmos[0x3d] = (codes[1] << 4) | codes[0];
  // Bit 0 clear: the BIOS checks a floppy's 0xaa55 boot signature (QEMU's fd-bootchk=on).
  cmos[0x38] = codes[2] << 4;
}

/**
 * Builds the pc board: RAM with the PCI hole, the BIOS at the top of 4 GiB and its last
 * 128 KiB in the ISA window (through the i440FX PAM), the PIC/IOAPIC/LAPIC, PIT, RTC,
 * i8042, PIIX3 and PIIX4 PM, serial ports, debug ports and fw_cfg.
 */
export function createPcMachine(config: MachineConfig): Machine {
  if (config.smp < 1 || config.smp > PC_MAX_CPUS || (config.maxCpus ?? 1) > PC_MAX_CPUS) {
    throw new UsageError(
      `Invalid SMP CPUs ${
        Math.max(config.smp, config.maxCpus ?? 0)
      }. The max CPUs supported by machine 'pc-i440fx-7.2' is ${PC_MAX_CPUS}`,
    );
  }
  const { below4g, above4g } = pcRamSplit(config.ramBytes);
  if (above4g > 0) {
    throw new NotSupportedError(
      `RAM above 4 GiB is not supported yet: -m must be below ${PC_LOWMEM_LIMIT / 2 ** 20}M`,
    );
  }
  if (below4g < 1 << 20 || below4g % 4096 !== 0) {
    throw new UsageError(`RAM size must be a multiple of 4 KiB and at least 1M`);
  }
  // -kernel with a Multiboot kernel: a generated boot ROM takes the BIOS's place. A Linux
  // bzImage keeps SeaBIOS, which runs QEMU's linuxboot_dma.bin (set up with fw_cfg below).
  const linux = config.kernel && isLinuxKernel(config.kernel.kernel) ? config.kernel : undefined;
  const multiboot = config.kernel && !linux
    ? prepareMultibootBoot(config.kernel, below4g)
    : undefined;
  const bios = multiboot?.rom ?? config.firmware ??
    loadFirmware(config.biosPath ?? PC_DEFAULT_BIOS, config.dataDirs ?? []).bytes;
  if (bios.length === 0 || bios.length % 65536 !== 0 || bios.length > 16 << 20) {
    throw new UsageError(`qemu: could not load PC BIOS '${config.biosPath ?? PC_DEFAULT_BIOS}'`);
  }

  const machine = new Machine(config);
  const mem = machine.memory;

  // RAM: one array for everything below 4 GiB; the VGA window 0xa0000-0xbffff is a hole
  // (the VGA adapter maps it) and 0xc0000-0xfffff is the PAM-controlled shadow area.
  const ram = machine.allocateRam(below4g);
  mem.addRamAlias("pc.ram-low", 0, ram.subarray(0, 0xa0000));
  mem.addRamAlias("pc.ram-shadow", 0xc0000, ram.subarray(0xc0000, 0x100000));
  if (below4g > 0x100000) mem.addRamAlias("pc.ram", 0x100000, ram.subarray(0x100000));
  mem.addRom("pc.bios", 2 ** 32 - bios.length, bios);
  // `info roms` names the file (QEMU's rom list); a BIOS given as bytes keeps the region's.
  const biosName = multiboot?.rom || config.firmware
    ? "pc.bios"
    : (config.biosPath ?? PC_DEFAULT_BIOS).split("/").pop()!;
  recordRom(machine, {
    addr: 2 ** 32 - bios.length,
    size: bios.length,
    isRom: true,
    name: biosName,
  });
  machine.provide(GUEST_RAM, ram);
  if (multiboot) machine.addDevice(new MultibootLoader(multiboot.plan, mem));
  machine.provide(ISA_BIOS, bios.subarray(Math.max(0, bios.length - ISA_BIOS_SIZE)));

  // Interrupt controllers, then the ISA bus whose lines reach both the PIC and the IOAPIC.
  const pic = machine.createDevice("i8259") as unknown as IrqController & InterruptSource;
  machine.createDevice("apic");
  const ioapic = machine.createDevice("ioapic") as unknown as IrqController;
  const isaLines: IrqLine[] = [];
  for (let n = 0; n < 16; n++) {
    isaLines.push(
      new IrqLine(`isa-irq${n}`, fanOut((l) => pic.setIrq(n, l), (l) => ioapic.setIrq(n, l))),
    );
  }
  const isa: IsaBus = {
    irq: (n) => {
      if (n < 0 || n > 15) throw new RangeError(`ISA IRQ ${n} does not exist`);
      return isaLines[n];
    },
  };
  machine.provide(ISA_BUS, isa);
  machine.addDevice(new IsaIrqLevels(isaLines));

  machine.createDevice("i440FX-pcihost");
  machine.createDevice("PIIX3");
  machine.createDevice("PIIX4_PM");
  machine.createDevice("isa-pit");
  machine.createDevice("mc146818rtc");
  machine.createDevice("i8042");
  // The PC's ISA DMA controllers and its floppy controller (0x3f0, IRQ 6, DMA 2), as QEMU's
  // pc board always has them; -fda/-fdb/-drive if=floppy give the drives.
  const registry = machine.config.registry;
  if (registry?.get("device", "i8257")) machine.createDevice("i8257");
  if (registry?.get("device", "isa-fdc")) machine.createDevice("isa-fdc");
  config.serial.forEach((chardev, index) => {
    if (index > 3) throw new UsageError("Maximum number of serial devices is 4");
    machine.createDevice("isa-serial", { chardev: chardev.id, index });
  });
  if (config.debugcon) machine.createDevice("isa-debugcon", { chardev: config.debugcon.id });
  const ideDrives = config.drives.filter((d) => d.interface === "ide");
  if (machine.config.registry?.get("device", "piix3-ide")) {
    machine.createDevice("piix3-ide");
  } else if (ideDrives.length > 0) {
    throw new NotSupportedError("IDE drives are not supported yet");
  }
  // The display adapter takes slot 2 as on QEMU's pc: std VGA unless -vga says otherwise.
  // A Multiboot kernel starts from vmkit's generated boot ROM, which runs no option ROMs:
  // the adapter then goes without its VGA BIOS instead of reading one nothing executes.
  const vgaModel = { std: "VGA", cirrus: "cirrus-vga" }[config.vga ?? "std"];
  if (vgaModel && (config.vga || machine.config.registry?.get("device", vgaModel))) {
    machine.createDevice(vgaModel, multiboot ? { romfile: "" } : {});
  }
  const fwcfg = machine.createDevice("fw_cfg_io") as unknown as FirmwareConfig;
  // NICs of -net nic / -nic take the next PCI slots, before -device ones (QEMU's pc_nic_init).
  for (const nic of config.nics ?? []) {
    // -net nic,model=M names a NIC plugin by QEMU's short name or its device name.
    const device = nic.model === "virtio" ? "virtio-net-pci" : nic.model;
    const plugin = machine.config.registry?.get("device", device);
    if (!plugin || (plugin as { category?: string }).category !== "Network") {
      throw new NotSupportedError(
        `NIC model '${nic.model}' is not supported by vmkit yet: use model=virtio or model=e1000`,
      );
    }
    const opts: Record<string, string> = {};
    if (nic.mac !== undefined) opts.mac = nic.mac;
    if (nic.netdev !== undefined) opts.netdev = nic.netdev;
    if (nic.id !== undefined) opts.id = nic.id;
    machine.createDevice(plugin.name, opts);
  }

  const bootOrder = config.bootOrder ?? "cad";
  const rtc = machine.service(RTC_CMOS);
  const floppyTypes = machine.findService(FLOPPY_DRIVES)?.cmosTypes();
  const cmos = {
    ramBytes: config.ramBytes,
    below4g,
    above4g,
    smp: config.smp,
    bootOrder,
    floppyTypes,
  };
  fillPcCmos(rtc.cmos, { ...cmos, bootOrder: config.bootOnce ?? bootOrder });
  if (config.bootOnce) {
    // QEMU's restore_boot_order: the start-up reset keeps once=, any later reset restores.
    let resets = 0;
    machine.addDevice({
      id: "boot-once",
      model: "boot-once",
      reset: () => {
        if (resets++ > 0) fillPcCmos(rtc.cmos, cmos);
      },
      saveState: () => ({ resets }),
      loadState: (state) => void (resets = state.resets as number),
    });
  }

  fwcfg.setItem(FW_CFG_RAM_SIZE, le(8, config.ramBytes));
  fwcfg.setItem(FW_CFG_NOGRAPHIC, le(2, config.nographic ? 1 : 0));
  fwcfg.setItem(FW_CFG_NB_CPUS, le(2, config.smp));
  fwcfg.setItem(FW_CFG_MAX_CPUS, le(2, config.maxCpus ?? config.smp));
  fwcfg.setItem(FW_CFG_BOOT_MENU, le(2, config.bootMenu ? 1 : 0));
  fwcfg.setItem(FW_CFG_IRQ0_OVERRIDE, le(4, 1));
  fwcfg.setItem(FW_CFG_UUID, uuidBytes(config.uuid));
  fwcfg.addFile("etc/e820", e820Table([{ address: 0, length: below4g, type: E820_RAM }]));
  fwcfg.addFile("etc/boot-fail-wait", le(4, config.bootRebootTimeoutMs ?? -1));
  if (config.bootMenu && config.bootSplashTimeMs !== undefined) {
    fwcfg.addFile("etc/boot-menu-wait", le(2, config.bootSplashTimeMs));
  }
  let linuxRomSize = 0;
  if (linux) {
    setupLinuxBoot(linux, fwcfg, {
      ramBelow4g: below4g,
      dataDirs: config.dataDirs,
      onRom: (size) => void (linuxRomSize = size),
    });
  }
  addOptionRoms(fwcfg, config, machine);
  // QEMU adds the Linux loader's ROM after the -option-rom ones.
  if (linux) {
    const name = LINUXBOOT_DMA_ROM;
    recordRom(machine, { fwDir: "genroms", fwFile: name, name, size: linuxRomSize });
  }

  machine.createCpus();
  const irqSource = machine.service(CPU_IRQ);
  // Each CPU polls its own local APIC (`cpu-irqN`).
  machine.cpus.forEach((cpu: CpuBackend, i) =>
    cpu.setInterruptSource(machine.findService(cpuIrqKey(i)) ?? irqSource)
  );
  return machine;
}

/**
 * `-option-rom FILE`: each ROM goes to fw_cfg as `genroms/<basename>`, which SeaBIOS runs
 * while it initialises, as QEMU's rom_add_option() does. A ROM that cannot be read is
 * reported and left out, and the machine starts anyway, as QEMU's pc board does.
 */
function addOptionRoms(fwcfg: FirmwareConfig, config: MachineConfig, machine: Machine): void {
  for (const name of config.optionRoms ?? []) {
    const path = findFirmware(name, config.dataDirs ?? []).path ?? name;
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch (error) {
      config.warn?.(hostIoError(error, `Could not open option rom '${path}'`).message);
      continue;
    }
    const file = path.split("/").pop()!;
    fwcfg.addFile(`genroms/${file}`, bytes);
    // `info roms` shows the name as given (fw_cfg has the base name).
    recordRom(machine, { fwDir: "genroms", fwFile: name, name, size: bytes.length });
  }
}

/** `-uuid` as 16 bytes in the order QEMU stores it (the text order), zero when absent. */
function uuidBytes(uuid: string | undefined): Uint8Array {
  const out = new Uint8Array(16);
  if (!uuid) return out;
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new UsageError(`Invalid UUID '${uuid}'`);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The i440FX + PIIX3 PC of QEMU 7.2 (`-M pc`). */
export default {
  kind: "machine",
  name: "pc-i440fx-7.2",
  aliases: ["pc"],
  summary: "Standard PC (i440FX + PIIX, 1996)",
  isDefault: true,
  cpuFamily: "x86",
  options: [],
  create(config: MachineConfig): Machine {
    return createPcMachine(config);
  },
} satisfies MachineDescriptor;

/**
 * The levels of the 16 ISA lines, saved with the machine so a restored device's next
 * edge is one its interrupt controllers see (the lines are the board's, not a
 * device's). Created before the ISA devices, so it is restored before they drive them.
 */
class IsaIrqLevels implements Device {
  readonly id = "isa-irq";
  readonly model = "isa-irq-lines";
  constructor(readonly lines: readonly IrqLine[]) {}
  /** Not a device of QEMU's: `info qtree` does not list it. */
  qtree(): { bus: "system"; nodes: QtreeNode[] } {
    return { bus: "system", nodes: [] };
  }
  reset(): void {}
  saveState(): DeviceState {
    return { levels: this.lines.map((l) => l.level) };
  }
  loadState(state: DeviceState): void {
    (state.levels as boolean[]).forEach((level, n) => this.lines[n]?.restoreLevel(level));
  }
}
