import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import type { FirmwareConfig } from "../../core/device.ts";
import { builtinFirmwareDirs } from "../../core/firmware.ts";
import {
  CAN_USE_HEAP,
  FW_CFG_CMDLINE_ADDR,
  FW_CFG_CMDLINE_DATA,
  FW_CFG_CMDLINE_SIZE,
  FW_CFG_INITRD_ADDR,
  FW_CFG_INITRD_DATA,
  FW_CFG_INITRD_SIZE,
  FW_CFG_KERNEL_ADDR,
  FW_CFG_KERNEL_DATA,
  FW_CFG_KERNEL_SIZE,
  FW_CFG_SETUP_ADDR,
  FW_CFG_SETUP_DATA,
  FW_CFG_SETUP_SIZE,
  LINUXBOOT_ROM_FILE,
  linuxBootItems,
  parseLinuxHeader,
  PC_ACPI_DATA_SIZE,
  planLinuxBoot,
  setupLinuxBoot,
  videoModeFromCmdline,
} from "./linux_boot.ts";

const MIB = 1 << 20;

/** A bzImage-like buffer: boot sector + `setupSects` sectors + `kernelBytes` of payload. */
function bzImage(
  options: {
    protocol?: number;
    setupSects?: number;
    loadflags?: number;
    initrdAddrMax?: number;
    kernelBytes?: number;
    hdrs?: boolean;
  } = {},
): Uint8Array {
  const setupSects = options.setupSects ?? 4;
  const setupBytes = ((setupSects || 4) + 1) * 512;
  const image = new Uint8Array(setupBytes + (options.kernelBytes ?? 4096));
  const view = new DataView(image.buffer);
  image[0x1f1] = setupSects;
  if (options.hdrs !== false) view.setUint32(0x202, 0x53726448, true);
  view.setUint16(0x206, options.protocol ?? 0x20f, true);
  image[0x211] = options.loadflags ?? 0x01;
  view.setUint32(0x22c, options.initrdAddrMax ?? 0x7fffffff, true);
  image.fill(0xcc, setupBytes); // the protected-mode part, recognisable
  return image;
}

function u16(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint16(at, true);
}

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
}

Deno.test("parseLinuxHeader() reads the protocol, setup sectors, loadflags and initrd limit", () => {
  const header = parseLinuxHeader(bzImage({ protocol: 0x20c, setupSects: 30, loadflags: 0x21 }));
  assert.deepEqual(header, {
    protocol: 0x20c,
    setupSects: 30,
    loadflags: 0x21,
    initrdAddrMax: 0x7fffffff,
  });
  // Before 2.03 the limit is implied; without "HdrS" there is no protocol at all.
  assert.equal(parseLinuxHeader(bzImage({ protocol: 0x202 })).initrdAddrMax, 0x37ffffff);
  assert.equal(parseLinuxHeader(bzImage({ hdrs: false })).protocol, 0);
});

Deno.test("planLinuxBoot() places a modern kernel at 1 MiB with setup at 0x10000 and patches the header", () => {
  const image = bzImage({ setupSects: 4, kernelBytes: 8192 });
  const plan = planLinuxBoot({ kernel: image, cmdline: "console=ttyS0" }, 256 * MIB);
  assert.equal(plan.setupAddress, 0x10000);
  assert.equal(plan.cmdlineAddress, 0x20000);
  assert.equal(plan.kernelAddress, 0x100000);
  assert.equal(plan.setup.length, 5 * 512);
  assert.equal(plan.kernel.length, 8192);
  assert.equal(plan.kernel[0], 0xcc);
  assert.equal(plan.setup[0x210], 0xb0, "type_of_loader is QEMU's");
  assert.equal(plan.setup[0x211], 0x01 | CAN_USE_HEAP);
  assert.equal(u16(plan.setup, 0x224), 0x20000 - 0x10000 - 0x200, "heap_end_ptr");
  assert.equal(u32(plan.setup, 0x228), 0x20000, "cmd_line_ptr");
  assert.deepEqual([...plan.cmdline], [...new TextEncoder().encode("console=ttyS0\0")]);
  assert.equal(image[0x210], 0, "the caller's image is left alone");
  assert.equal(plan.initrd, undefined);
});

Deno.test("planLinuxBoot() treats setup_sects 0 as 4", () => {
  const plan = planLinuxBoot({ kernel: bzImage({ setupSects: 0 }), cmdline: "" }, 64 * MIB);
  assert.equal(plan.setup.length, 5 * 512);
});

Deno.test("planLinuxBoot() loads an old or low kernel at 0x90000 with the 0xA33F command line", () => {
  const cmdline = "root=/dev/hda"; // 13 bytes: a 16-byte slot below 0x9a000
  const low = planLinuxBoot({ kernel: bzImage({ loadflags: 0 }), cmdline }, 64 * MIB);
  assert.equal(low.setupAddress, 0x90000);
  assert.equal(low.kernelAddress, 0x10000);
  assert.equal(low.cmdlineAddress, 0x9a000 - 16);
  assert.equal(u32(low.setup, 0x228), 0x9a000 - 16, "2.02+ still gets cmd_line_ptr");

  const ancient = planLinuxBoot({ kernel: bzImage({ protocol: 0x201 }), cmdline }, 64 * MIB);
  assert.equal(ancient.kernelAddress, 0x100000);
  assert.equal(u16(ancient.setup, 0x20), 0xa33f);
  assert.equal(u16(ancient.setup, 0x22), 0x9a000 - 16 - 0x90000);
  assert.equal(ancient.setup[0x211] & CAN_USE_HEAP, CAN_USE_HEAP);
  assert.equal(u32(ancient.setup, 0x228), 0, "no cmd_line_ptr before 2.02");
});

Deno.test("planLinuxBoot() ends the initrd page-aligned below RAM top less the ACPI area", () => {
  const initrd = new Uint8Array(10_000);
  const plan = planLinuxBoot({ kernel: bzImage(), initrd, cmdline: "" }, 256 * MIB);
  const initrdMax = 256 * MIB - PC_ACPI_DATA_SIZE - 1;
  assert.equal(plan.initrd?.address, Math.floor((initrdMax - 10_000) / 4096) * 4096);
  assert.equal(plan.initrd!.address % 4096, 0);
  assert.equal(u32(plan.setup, 0x218), plan.initrd!.address, "ramdisk_image");
  assert.equal(u32(plan.setup, 0x21c), 10_000, "ramdisk_size");
});

Deno.test("planLinuxBoot() keeps the initrd below initrd_addr_max when that is lower", () => {
  const initrd = new Uint8Array(4096);
  const kernel = bzImage({ initrdAddrMax: 0x00ffffff });
  const plan = planLinuxBoot({ kernel, initrd, cmdline: "" }, 256 * MIB);
  assert.equal(plan.initrd?.address, 0x00fff000 - 4096);
});

Deno.test("planLinuxBoot() refuses what QEMU refuses, with QEMU's words", () => {
  assert.throws(
    () =>
      planLinuxBoot({
        kernel: bzImage({ protocol: 0x100 }),
        initrd: new Uint8Array(1),
        cmdline: "",
      }, 64 * MIB),
    /linux kernel too old to load a ram disk/,
  );
  assert.throws(
    () =>
      planLinuxBoot({ kernel: bzImage(), initrd: new Uint8Array(8 * MIB), cmdline: "" }, 8 * MIB),
    /initrd is too large, cannot support\.\(max: \d+, need 8388608\)/,
  );
  const truncated = bzImage({ setupSects: 30 }).subarray(0, 2048);
  assert.throws(
    () => planLinuxBoot({ kernel: truncated, cmdline: "" }, 64 * MIB),
    /invalid kernel header/,
  );
});

Deno.test("videoModeFromCmdline() reads vga= as QEMU does", () => {
  assert.equal(videoModeFromCmdline("console=ttyS0"), undefined);
  assert.equal(videoModeFromCmdline("vga=normal"), 0xffff);
  assert.equal(videoModeFromCmdline("quiet vga=ext"), 0xfffe);
  assert.equal(videoModeFromCmdline("vga=ask"), 0xfffd);
  assert.equal(videoModeFromCmdline("vga=0x317 quiet"), 0x317);
  assert.equal(videoModeFromCmdline("vga=791"), 791);
  assert.equal(videoModeFromCmdline("vga=017"), 0o17);
  assert.equal(videoModeFromCmdline("vga=foo"), 0);
  const plan = planLinuxBoot({ kernel: bzImage(), cmdline: "vga=0x318" }, 64 * MIB);
  assert.equal(u16(plan.setup, 0x1fa), 0x318);
});

Deno.test("linuxBootItems() gives the option ROM every address, size and data item", () => {
  const initrd = new Uint8Array([1, 2, 3]);
  const plan = planLinuxBoot({ kernel: bzImage(), initrd, cmdline: "a b" }, 64 * MIB);
  const items = linuxBootItems(plan);
  assert.deepEqual([...items.get(FW_CFG_KERNEL_ADDR)!], [0, 0, 0x10, 0]);
  assert.equal(u32(items.get(FW_CFG_KERNEL_SIZE)!, 0), plan.kernel.length);
  assert.equal(items.get(FW_CFG_KERNEL_DATA), plan.kernel);
  assert.equal(u32(items.get(FW_CFG_SETUP_ADDR)!, 0), 0x10000);
  assert.equal(u32(items.get(FW_CFG_SETUP_SIZE)!, 0), plan.setup.length);
  assert.equal(items.get(FW_CFG_SETUP_DATA), plan.setup);
  assert.equal(u32(items.get(FW_CFG_CMDLINE_ADDR)!, 0), 0x20000);
  assert.equal(u32(items.get(FW_CFG_CMDLINE_SIZE)!, 0), 4, "the NUL counts");
  assert.deepEqual([...items.get(FW_CFG_CMDLINE_DATA)!], [0x61, 0x20, 0x62, 0]);
  assert.equal(u32(items.get(FW_CFG_INITRD_ADDR)!, 0), plan.initrd!.address);
  assert.equal(u32(items.get(FW_CFG_INITRD_SIZE)!, 0), 3);
  assert.equal(items.get(FW_CFG_INITRD_DATA), initrd);
  const noInitrd = linuxBootItems(planLinuxBoot({ kernel: bzImage(), cmdline: "" }, 64 * MIB));
  assert.equal(noInitrd.has(FW_CFG_INITRD_ADDR), false);
});

Deno.test("setupLinuxBoot() fills fw_cfg and adds the option ROM first in the boot order", () => {
  const items = new Map<number, Uint8Array>();
  const files = new Map<string, Uint8Array>();
  const fwcfg: FirmwareConfig = {
    setItem: (key, data) => void items.set(key, data),
    addFile: (name, data) => void files.set(name, data),
  };
  const rom = new Uint8Array([0x55, 0xaa, 1]);
  setupLinuxBoot({ kernel: bzImage(), cmdline: "x" }, fwcfg, {
    ramBelow4g: 64 * MIB,
    optionRom: rom,
  });
  assert.equal(files.get(LINUXBOOT_ROM_FILE), rom);
  assert.equal(LINUXBOOT_ROM_FILE, "genroms/linuxboot_dma.bin");
  assert.equal(
    new TextDecoder().decode(files.get("bootorder")),
    "/rom@genroms/linuxboot_dma.bin\0",
  );
  assert.equal(u32(items.get(FW_CFG_KERNEL_ADDR)!, 0), 0x100000);
});

const HOST_HAS_ROM = builtinFirmwareDirs().some((dir) => {
  try {
    return Deno.statSync(`${dir}/linuxboot_dma.bin`).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name: "setupLinuxBoot() names the package to install when the option ROM is missing" +
    (HOST_HAS_ROM
      ? " (ignored: the host has linuxboot_dma.bin in a built-in directory; VMKIT_FIRMWARE_PATH= hides it)"
      : ""),
  ignore: skipUnless(import.meta, {
    ok: !HOST_HAS_ROM,
    missing: "the host has linuxboot_dma.bin in a built-in directory; this test needs it missing",
  }),
  fn() {
    const fwcfg: FirmwareConfig = { setItem() {}, addFile() {} };
    const empty = Deno.makeTempDirSync();
    try {
      assert.throws(
        () =>
          setupLinuxBoot({ kernel: bzImage(), cmdline: "" }, fwcfg, {
            ramBelow4g: 64 * MIB,
            dataDirs: [empty],
          }),
        /linuxboot_dma\.bin is missing \(Debian package qemu-system-data/,
      );
    } finally {
      Deno.removeSync(empty);
    }
  },
});
