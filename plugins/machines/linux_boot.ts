// Linux direct kernel boot (`-kernel bzImage`): the setup header, placement and the fw_cfg items linuxboot_dma.bin reads

import { UsageError } from "../../core/errors.ts";
import type { FirmwareConfig } from "../../core/device.ts";
import type { KernelConfig } from "../../core/machine.ts";
import { loadFirmware } from "../../core/firmware.ts";

// fw_cfg keys of direct kernel boot (QEMU docs/specs/fw_cfg.rst, include/standard-headers
// fw_cfg_keys): the option ROM selects each of these through DMA.
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;

/** The option ROM that loads the kernel through fw_cfg DMA (Debian: qemu-system-data). */
export const LINUXBOOT_DMA_ROM = "linuxboot_dma.bin";
/** SeaBIOS runs every fw_cfg file under `genroms/` as an option ROM. */
export const LINUXBOOT_ROM_FILE = `genroms/${LINUXBOOT_DMA_ROM}`;

// Linux boot protocol (Documentation/arch/x86/boot.rst), offsets into the setup header.
const HDR_SETUP_SECTS = 0x1f1;
const HDR_VID_MODE = 0x1fa;
const HDR_HEADER = 0x202;
const HDR_VERSION = 0x206;
const HDR_TYPE_OF_LOADER = 0x210;
const HDR_LOADFLAGS = 0x211;
const HDR_RAMDISK_IMAGE = 0x218;
const HDR_RAMDISK_SIZE = 0x21c;
const HDR_HEAP_END_PTR = 0x224;
const HDR_CMD_LINE_PTR = 0x228;
const HDR_INITRD_ADDR_MAX = 0x22c;
/** Protocol < 2.02: the command line is found through these two words at 0x20. */
const OLD_CMD_LINE_MAGIC_OFFSET = 0x20;
const OLD_CMD_LINE_OFFSET_OFFSET = 0x22;
const OLD_CMD_LINE_MAGIC = 0xa33f;
const LINUX_HDRS_MAGIC = 0x53726448; // "HdrS"
/** loadflags bits. */
export const LOADED_HIGH = 0x01;
export const CAN_USE_HEAP = 0x80;
/** type_of_loader: high nibble 0xB is QEMU's loader ID, low nibble its revision 0. */
export const QEMU_LOADER_TYPE = 0xb0;
/** The initrd limit the boot protocol implies before version 2.03. */
const DEFAULT_INITRD_ADDR_MAX = 0x37ffffff;
/**
 * What QEMU's pc board keeps free at the top of RAM below 4 GiB for firmware tables
 * (its `acpi_data_size`, 0x20000 + 0x8000 since pc-i440fx-2.1); the initrd ends below.
 */
export const PC_ACPI_DATA_SIZE = 0x28000;

/** The fields of a bzImage's setup header that direct boot needs. */
export interface LinuxSetupHeader {
  /** Boot protocol version, e.g. 0x20f for 2.15 (0 when the image has no "HdrS"). */
  protocol: number;
  /** 512-byte sectors of real-mode setup code after the boot sector (0 means 4). */
  setupSects: number;
  loadflags: number;
  /** Highest address the initrd may occupy (protocol 2.03+), else 0x37ffffff. */
  initrdAddrMax: number;
}

/** Where QEMU places the parts of a Linux kernel, and the bytes fw_cfg serves. */
export interface LinuxBootPlan {
  protocol: number;
  /** Where the real-mode setup (boot sector + setup sectors) goes: `real_addr`. */
  setupAddress: number;
  /** The setup code with the header patched as a boot loader must. */
  setup: Uint8Array;
  /** Where the protected-mode kernel goes: `prot_addr`. */
  kernelAddress: number;
  kernel: Uint8Array;
  cmdlineAddress: number;
  /** The command line with its terminating NUL. */
  cmdline: Uint8Array;
  /** The initrd and its address, when `-initrd` was given. */
  initrd?: { address: number; bytes: Uint8Array };
}

/** Reads the setup header of a bzImage (protocol 0 when it carries no "HdrS"). */
export function parseLinuxHeader(image: Uint8Array): LinuxSetupHeader {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const hasHdrS = image.length >= HDR_VERSION + 2 &&
    view.getUint32(HDR_HEADER, true) === LINUX_HDRS_MAGIC;
  const protocol = hasHdrS ? view.getUint16(HDR_VERSION, true) : 0;
  return {
    protocol,
    setupSects: image.length > HDR_SETUP_SECTS ? image[HDR_SETUP_SECTS] : 0,
    loadflags: image.length > HDR_LOADFLAGS ? image[HDR_LOADFLAGS] : 0,
    initrdAddrMax: protocol >= 0x203 && image.length >= HDR_INITRD_ADDR_MAX + 4
      ? view.getUint32(HDR_INITRD_ADDR_MAX, true)
      : DEFAULT_INITRD_ADDR_MAX,
  };
}

/**
 * The `vga=` value of a command line as a boot loader stores it in `vid_mode`:
 * `normal`, `ext` and `ask` are 0xffff, 0xfffe and 0xfffd; a number is read as C's
 * `strtol(s, NULL, 0)` reads it (0x hex, leading-0 octal, else decimal; 0 if none).
 * Returns undefined when the command line has no `vga=`.
 */
export function videoModeFromCmdline(cmdline: string): number | undefined {
  const at = cmdline.indexOf("vga=");
  if (at < 0) return undefined;
  const text = cmdline.slice(at + 4);
  if (text.startsWith("normal")) return 0xffff;
  if (text.startsWith("ext")) return 0xfffe;
  if (text.startsWith("ask")) return 0xfffd;
  const match = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(text);
  if (!match) return 0;
  const digits = match[2];
  const value = /^0[xX]/.test(digits)
    ? Number.parseInt(digits.slice(2), 16)
    : digits.startsWith("0")
    ? Number.parseInt(digits, 8) || 0
    : Number.parseInt(digits, 10);
  return (match[1] === "-" ? -value : value) & 0xffff;
}

/**
 * Places a bzImage, its command line and initrd as QEMU 7.2's `x86_load_linux` does
 * and patches the setup header the way a boot loader must (boot.rst "Details of
 * header fields"): type_of_loader, CAN_USE_HEAP with heap_end_ptr, cmd_line_ptr (or
 * the old 0xA33F command line protocol), ramdisk_image/ramdisk_size, vid_mode.
 *
 * A kernel with protocol < 2.00 or without LOADED_HIGH loads low (setup at 0x90000,
 * kernel at 0x10000); 2.00-2.01 loads the kernel at 1 MiB; 2.02+ puts setup at
 * 0x10000 and the command line at 0x20000. The initrd ends page-aligned below both
 * `initrd_addr_max` and the top of RAM less {@linkcode PC_ACPI_DATA_SIZE}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planLinuxBoot } from "./linux_boot.ts";
 *
 * const image = new Uint8Array(8 * 512);
 * const view = new DataView(image.buffer);
 * image[0x1f1] = 4; // setup sectors
 * view.setUint32(0x202, 0x53726448, true); // "HdrS"
 * view.setUint16(0x206, 0x20f, true);
 * image[0x211] = 0x01; // LOADED_HIGH
 * const plan = planLinuxBoot({ kernel: image, cmdline: "console=ttyS0" }, 64 << 20);
 * assert.equal(plan.setupAddress, 0x10000);
 * assert.equal(plan.kernelAddress, 0x100000);
 * assert.equal(plan.kernel.length, 3 * 512);
 * ```
 */
export function planLinuxBoot(
  config: Pick<KernelConfig, "kernel" | "initrd" | "cmdline">,
  ramBelow4g: number,
  options: { acpiDataSize?: number } = {},
): LinuxBootPlan {
  const image = config.kernel;
  const header = parseLinuxHeader(image);
  const { protocol } = header;
  const cmdlineText = new TextEncoder().encode(config.cmdline);
  // QEMU reserves the command line's length rounded up to 16 with room for the NUL.
  const cmdlineSlot = (cmdlineText.length + 16) & ~15;

  let setupAddress: number, cmdlineAddress: number, kernelAddress: number;
  if (protocol < 0x200 || !(header.loadflags & LOADED_HIGH)) {
    setupAddress = 0x90000;
    cmdlineAddress = 0x9a000 - cmdlineSlot;
    kernelAddress = 0x10000;
  } else if (protocol < 0x202) {
    setupAddress = 0x90000;
    cmdlineAddress = 0x9a000 - cmdlineSlot;
    kernelAddress = 0x100000;
  } else {
    setupAddress = 0x10000;
    cmdlineAddress = 0x20000;
    kernelAddress = 0x100000;
  }

  const acpiDataSize = options.acpiDataSize ?? PC_ACPI_DATA_SIZE;
  let initrdMax = header.initrdAddrMax;
  if (initrdMax >= ramBelow4g - acpiDataSize) initrdMax = ramBelow4g - acpiDataSize - 1;

  let setupSize = header.setupSects === 0 ? 4 : header.setupSects;
  setupSize = (setupSize + 1) * 512;
  if (setupSize > image.length) throw new UsageError("qemu: invalid kernel header");
  const setup = image.slice(0, setupSize);
  const kernel = image.subarray(setupSize);
  const view = new DataView(setup.buffer);

  if (protocol >= 0x202) {
    view.setUint32(HDR_CMD_LINE_PTR, cmdlineAddress, true);
  } else {
    view.setUint16(OLD_CMD_LINE_MAGIC_OFFSET, OLD_CMD_LINE_MAGIC, true);
    view.setUint16(OLD_CMD_LINE_OFFSET_OFFSET, cmdlineAddress - setupAddress, true);
  }
  const videoMode = videoModeFromCmdline(config.cmdline);
  if (videoMode !== undefined) view.setUint16(HDR_VID_MODE, videoMode, true);
  if (protocol >= 0x200) setup[HDR_TYPE_OF_LOADER] = QEMU_LOADER_TYPE;
  if (protocol >= 0x201) {
    setup[HDR_LOADFLAGS] |= CAN_USE_HEAP;
    view.setUint16(HDR_HEAP_END_PTR, cmdlineAddress - setupAddress - 0x200, true);
  }

  let initrd: LinuxBootPlan["initrd"];
  if (config.initrd) {
    if (protocol < 0x200) throw new UsageError("qemu: linux kernel too old to load a ram disk");
    const size = config.initrd.length;
    if (size >= initrdMax) {
      throw new UsageError(
        `qemu: initrd is too large, cannot support.(max: ${initrdMax}, need ${size})`,
      );
    }
    const address = Math.floor((initrdMax - size) / 4096) * 4096;
    view.setUint32(HDR_RAMDISK_IMAGE, address, true);
    view.setUint32(HDR_RAMDISK_SIZE, size, true);
    initrd = { address, bytes: config.initrd };
  }

  const cmdline = new Uint8Array(cmdlineText.length + 1);
  cmdline.set(cmdlineText);
  return { protocol, setupAddress, setup, kernelAddress, kernel, cmdlineAddress, cmdline, initrd };
}

function le32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

/** The numbered fw_cfg items of a plan, as QEMU's `x86_load_linux` sets them. */
export function linuxBootItems(plan: LinuxBootPlan): Map<number, Uint8Array> {
  const items = new Map<number, Uint8Array>([
    [FW_CFG_CMDLINE_ADDR, le32(plan.cmdlineAddress)],
    [FW_CFG_CMDLINE_SIZE, le32(plan.cmdline.length)],
    [FW_CFG_CMDLINE_DATA, plan.cmdline],
    [FW_CFG_KERNEL_ADDR, le32(plan.kernelAddress)],
    [FW_CFG_KERNEL_SIZE, le32(plan.kernel.length)],
    [FW_CFG_KERNEL_DATA, plan.kernel],
    [FW_CFG_SETUP_ADDR, le32(plan.setupAddress)],
    [FW_CFG_SETUP_SIZE, le32(plan.setup.length)],
    [FW_CFG_SETUP_DATA, plan.setup],
  ]);
  if (plan.initrd) {
    items.set(FW_CFG_INITRD_ADDR, le32(plan.initrd.address));
    items.set(FW_CFG_INITRD_SIZE, le32(plan.initrd.bytes.length));
    items.set(FW_CFG_INITRD_DATA, plan.initrd.bytes);
  }
  return items;
}

/**
 * The `bootorder` file QEMU writes when the Linux loader ROM is the only device with
 * a bootindex (it gets bootindex 0): one OpenFirmware-style path, NUL-terminated.
 */
export function linuxBootOrder(): Uint8Array {
  return new TextEncoder().encode(`/rom@${LINUXBOOT_ROM_FILE}\0`);
}

/**
 * Sets up `-kernel` with a Linux bzImage on a PC whose firmware (SeaBIOS) stays in
 * place: fills the kernel, setup, command line and initrd items and adds the option
 * ROM `genroms/linuxboot_dma.bin` (found like other firmware: `-L` dirs, then
 * /usr/share/seabios and /usr/share/qemu) and a `bootorder` that boots it first.
 * SeaBIOS runs the ROM, which copies everything into place through fw_cfg DMA and
 * jumps to the real-mode setup code.
 *
 * @param options.optionRom the ROM's bytes, to skip the lookup (tests)
 * @returns the plan, for logging and tests
 */
export function setupLinuxBoot(
  kernel: Pick<KernelConfig, "kernel" | "initrd" | "cmdline">,
  fwcfg: FirmwareConfig,
  options: {
    ramBelow4g: number;
    dataDirs?: readonly string[];
    optionRom?: Uint8Array;
    /** Told the option ROM's size (`info roms`). */
    onRom?: (size: number) => void;
  },
): LinuxBootPlan {
  const plan = planLinuxBoot(kernel, options.ramBelow4g);
  let rom = options.optionRom;
  if (!rom) {
    try {
      rom = loadFirmware(LINUXBOOT_DMA_ROM, options.dataDirs ?? []).bytes;
    } catch (error) {
      throw new UsageError(
        "Cannot boot a Linux kernel: the option ROM linuxboot_dma.bin is missing " +
          "(Debian package qemu-system-data installs it; or give -L DIR)",
        { cause: error },
      );
    }
  }
  for (const [key, data] of linuxBootItems(plan)) fwcfg.setItem(key, data);
  fwcfg.addFile(LINUXBOOT_ROM_FILE, rom);
  options.onRom?.(rom.length);
  fwcfg.addFile("bootorder", linuxBootOrder());
  return plan;
}
