// Multiboot v1 direct kernel boot (`-kernel`): header, a.out kludge and ELF32 loading, the info structure, a boot ROM

import type { Device, DeviceState } from "../../core/device.ts";
import { NotSupportedError, UsageError } from "../../core/errors.ts";
import type { KernelConfig } from "../../core/machine.ts";
import type { AddressSpace } from "../../core/memory/address_space.ts";
import {
  AL,
  Assembler,
  AX,
  CR0,
  CS,
  DS,
  dword,
  EAX,
  EBP,
  EBX,
  ECX,
  EDI,
  EDX,
  ES,
  ESI,
  ESP,
  FS,
  GS,
  mem,
  SS,
} from "./x86_asm.ts";

// Multiboot Specification 0.6.96 §3.1.1: the header sits 32-bit aligned in the first 8192 bytes.
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** EAX on entry (§3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
export const MULTIBOOT_SEARCH = 8192;
// Header flags (§3.1.2).
export const MULTIBOOT_PAGE_ALIGN = 0x00000001;
export const MULTIBOOT_MEMORY_INFO = 0x00000002;
export const MULTIBOOT_VIDEO_MODE = 0x00000004;
export const MULTIBOOT_AOUT_KLUDGE = 0x00010000;
// Multiboot information flags (§3.3).
export const MULTIBOOT_INFO_MEMORY = 0x00000001;
export const MULTIBOOT_INFO_BOOTDEV = 0x00000002;
export const MULTIBOOT_INFO_CMDLINE = 0x00000004;
export const MULTIBOOT_INFO_MODS = 0x00000008;
export const MULTIBOOT_INFO_MEM_MAP = 0x00000040;
export const MULTIBOOT_INFO_BOOT_LOADER_NAME = 0x00000200;
/** Memory map entry types (§3.3). */
export const MULTIBOOT_MEMORY_AVAILABLE = 1;
export const MULTIBOOT_MEMORY_RESERVED = 2;
/** Size of the fixed part of the information structure (up to the VBE fields). */
export const MULTIBOOT_INFO_SIZE = 88;

/** Linux's boot protocol signature "HdrS" at offset 0x202 of a bzImage. */
const LINUX_HDRS_MAGIC = 0x53726448;
const ELF_MAGIC = 0x464c457f;
const PT_LOAD = 1;
/** QEMU reports this for the boot device: BIOS drive 0x80, no partition (QEMU hw/i386/multiboot.c). */
const QEMU_BOOT_DEVICE = 0x8000ffff;
/** The boot loader name QEMU gives multiboot kernels. */
export const MULTIBOOT_BOOT_LOADER_NAME = "qemu";

/** Where the generated boot ROM sits: the top 64 KiB below 4 GiB, where a BIOS would be. */
export const MULTIBOOT_ROM_BASE = 0xffff0000;
export const MULTIBOOT_ROM_SIZE = 0x10000;
/** The legacy VGA/ROM hole that is not RAM on a PC. */
const LOW_RAM_END = 0xa0000;
const HIGH_RAM_START = 0x100000;
const PAGE = 4096;
/** Start of the EBDA SeaBIOS reserves below 640 KiB. */
const EBDA_START = 0x9fc00;
/** What SeaBIOS reserves at the top of RAM below 4 GiB for its tables on QEMU's pc. */
const HIGH_TABLES_SIZE = 0x20000;
/** Where QEMU's multiboot option ROM leaves the memory map and the information structure. */
export const MULTIBOOT_MMAP_ADDRESS = 0x9000;
export const MULTIBOOT_INFO_ADDRESS = 0x9500;

/** The fields of a Multiboot header (§3.1). Addresses are 0 unless the a.out kludge is set. */
export interface MultibootHeader {
  /** Byte offset of the magic in the image. */
  offset: number;
  flags: number;
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

/** Bytes to place at a physical address; `memBytes` beyond `bytes.length` are zeroed (bss). */
export interface LoadSegment {
  address: number;
  bytes: Uint8Array;
  memBytes: number;
}

/** A kernel image as the loader places it. */
export interface MultibootKernel {
  segments: LoadSegment[];
  /** The physical entry point. */
  entry: number;
  /** First physical address after everything the kernel occupies (including bss). */
  end: number;
}

/** One boot module (`-initrd "file args,file2"`): contents and its command line. */
export interface MultibootModule {
  bytes: Uint8Array;
  cmdline: string;
}

/** Everything a boot needs: what to write where, the entry point and the MBI address. */
export interface MultibootPlan {
  segments: LoadSegment[];
  entry: number;
  mbiAddress: number;
}

function u32(view: DataView, offset: number): number {
  return view.getUint32(offset, true);
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** True when the image carries Linux's x86 boot protocol header (a bzImage). */
export function isLinuxKernel(image: Uint8Array): boolean {
  if (image.length < 0x206) return false;
  return new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(0x202, true) ===
    LINUX_HDRS_MAGIC;
}

/**
 * Finds the Multiboot header: magic at a 4-byte aligned offset in the first 8192
 * bytes whose magic + flags + checksum is zero (mod 2^32). Returns null when absent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findMultibootHeader } from "./multiboot.ts";
 *
 * const image = new Uint8Array(64);
 * const view = new DataView(image.buffer);
 * view.setUint32(16, 0x1badb002, true);
 * view.setUint32(20, 0, true);
 * view.setUint32(24, -0x1badb002 >>> 0, true);
 * assert.equal(findMultibootHeader(image)?.offset, 16);
 * ```
 */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | null {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const limit = Math.min(MULTIBOOT_SEARCH, image.length) - 12;
  for (let offset = 0; offset <= limit; offset += 4) {
    if (u32(view, offset) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32(view, offset + 4);
    if (((MULTIBOOT_HEADER_MAGIC + flags + u32(view, offset + 8)) >>> 0) !== 0) continue;
    const field = (n: number) =>
      offset + 12 + 4 * n + 4 <= image.length ? u32(view, offset + 12 + 4 * n) : 0;
    return {
      offset,
      flags,
      headerAddr: field(0),
      loadAddr: field(1),
      loadEndAddr: field(2),
      bssEndAddr: field(3),
      entryAddr: field(4),
    };
  }
  return null;
}

/**
 * Works out where a Multiboot kernel goes: the a.out kludge addresses when header
 * flag bit 16 is set (§3.1.3), else the PT_LOAD segments of an ELF32 image.
 */
export function loadMultibootKernel(image: Uint8Array, header: MultibootHeader): MultibootKernel {
  if (header.flags & MULTIBOOT_AOUT_KLUDGE) return loadAout(image, header);
  return loadElf32(image);
}

function loadAout(image: Uint8Array, h: MultibootHeader): MultibootKernel {
  // header_addr is where the header's magic lands, so the file offset of load_addr is:
  const fileStart = h.offset - (h.headerAddr - h.loadAddr);
  if (h.headerAddr < h.loadAddr || fileStart < 0) {
    throw new UsageError("invalid multiboot image: header_addr lies before load_addr");
  }
  const loadBytes = h.loadEndAddr === 0 ? image.length - fileStart : h.loadEndAddr - h.loadAddr;
  if (loadBytes < 0 || fileStart + loadBytes > image.length) {
    throw new UsageError("invalid multiboot image: load_end_addr lies beyond the file");
  }
  const loadEnd = h.loadAddr + loadBytes;
  const memBytes = h.bssEndAddr === 0 ? loadBytes : Math.max(loadBytes, h.bssEndAddr - h.loadAddr);
  return {
    segments: [{
      address: h.loadAddr,
      bytes: image.subarray(fileStart, fileStart + loadBytes),
      memBytes,
    }],
    entry: h.entryAddr,
    end: Math.max(loadEnd, h.loadAddr + memBytes),
  };
}

function loadElf32(image: Uint8Array): MultibootKernel {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < 52 || u32(view, 0) !== ELF_MAGIC) {
    throw new UsageError("invalid multiboot image: no a.out kludge and not an ELF file");
  }
  if (image[4] === 2) throw new NotSupportedError("Cannot load x86-64 image, give a 32bit one.");
  if (image[4] !== 1 || image[5] !== 1 || view.getUint16(18, true) !== 3) {
    throw new UsageError("invalid multiboot image: not a little-endian i386 ELF32 file");
  }
  const entry = u32(view, 24);
  const phoff = u32(view, 28);
  const phentsize = view.getUint16(42, true);
  const phnum = view.getUint16(44, true);
  const segments: LoadSegment[] = [];
  let physEntry = entry;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 32 > image.length) {
      throw new UsageError("invalid multiboot image: truncated ELF program headers");
    }
    if (u32(view, p) !== PT_LOAD) continue;
    const offset = u32(view, p + 4);
    const vaddr = u32(view, p + 8);
    const paddr = u32(view, p + 12);
    const filesz = u32(view, p + 16);
    const memsz = u32(view, p + 20);
    if (offset + filesz > image.length) {
      throw new UsageError("invalid multiboot image: ELF segment beyond the file");
    }
    segments.push({
      address: paddr,
      bytes: image.subarray(offset, offset + filesz),
      memBytes: Math.max(memsz, filesz),
    });
    // A kernel linked at a virtual address gives a virtual e_entry; it runs at the physical copy.
    if (vaddr !== paddr && entry >= vaddr && entry < vaddr + memsz) {
      physEntry = entry - vaddr + paddr;
    }
  }
  if (segments.length === 0) {
    throw new UsageError("invalid multiboot image: the ELF file has no loadable segment");
  }
  const end = Math.max(...segments.map((s) => s.address + s.memBytes));
  return { segments, entry: physEntry, end };
}

/**
 * The memory map the kernel sees: what SeaBIOS's e820 reports on QEMU's pc board
 * (the EBDA below 640 KiB, the BIOS area, 128 KiB of high tables at the top of RAM and
 * the 256 KiB BIOS ROM below 4 GiB), so a kernel prints the same map on both.
 */
export function multibootMemoryMap(
  ramBelow4g: number,
): { address: number; length: number; type: number }[] {
  return [
    { address: 0, length: EBDA_START, type: MULTIBOOT_MEMORY_AVAILABLE },
    { address: EBDA_START, length: LOW_RAM_END - EBDA_START, type: MULTIBOOT_MEMORY_RESERVED },
    { address: 0xf0000, length: 0x10000, type: MULTIBOOT_MEMORY_RESERVED },
    {
      address: HIGH_RAM_START,
      length: ramBelow4g - HIGH_TABLES_SIZE - HIGH_RAM_START,
      type: MULTIBOOT_MEMORY_AVAILABLE,
    },
    {
      address: ramBelow4g - HIGH_TABLES_SIZE,
      length: HIGH_TABLES_SIZE,
      type: MULTIBOOT_MEMORY_RESERVED,
    },
    { address: 0xfffc0000, length: 0x40000, type: MULTIBOOT_MEMORY_RESERVED },
  ];
}

/**
 * Lays out a Multiboot boot the way QEMU does: the kernel; on the next page the module
 * list and the strings (command lines, boot loader name); then each module page
 * aligned; the memory map at 0x9000 and the information structure at 0x9500.
 *
 * @param image the kernel file
 * @param options `cmdline` is the full kernel command line (QEMU passes
 *   `"<kernel file name> <-append text>"`), `ramBelow4g` the RAM size below 4 GiB
 */
export function planMultibootBoot(
  image: Uint8Array,
  options: { cmdline: string; modules?: MultibootModule[]; ramBelow4g: number },
): MultibootPlan {
  const header = findMultibootHeader(image);
  if (!header) {
    throw new UsageError("invalid multiboot image: no Multiboot header in the first 8192 bytes");
  }
  const kernel = loadMultibootKernel(image, header);
  const modules = options.modules ?? [];
  const segments = [...kernel.segments];

  // The module list, then NUL-terminated strings.
  const infoBase = alignUp(Math.max(kernel.end, HIGH_RAM_START), PAGE);
  const encoder = new TextEncoder();
  const strings: Uint8Array[] = [];
  let infoBytes = 16 * modules.length;
  const addString = (text: string): number => {
    const bytes = encoder.encode(`${text}\0`);
    strings.push(bytes);
    infoBytes += bytes.length;
    return infoBase + infoBytes - bytes.length;
  };
  const moduleCmdlines = modules.map((m) => addString(m.cmdline));
  const cmdline = addString(options.cmdline);
  const loaderName = addString(MULTIBOOT_BOOT_LOADER_NAME);
  const info = new Uint8Array(infoBytes);
  const infoView = new DataView(info.buffer);
  let o = 16 * modules.length;
  for (const s of strings) {
    info.set(s, o);
    o += s.length;
  }
  let next = alignUp(infoBase + infoBytes, PAGE);
  modules.forEach((m, i) => {
    segments.push({ address: next, bytes: m.bytes, memBytes: m.bytes.length });
    infoView.setUint32(16 * i, next, true);
    infoView.setUint32(16 * i + 4, next + m.bytes.length, true);
    infoView.setUint32(16 * i + 8, moduleCmdlines[i], true);
    next = alignUp(next + m.bytes.length, PAGE);
  });
  segments.push({ address: infoBase, bytes: info, memBytes: info.length });

  const map = multibootMemoryMap(options.ramBelow4g);
  const mmap = new Uint8Array(24 * map.length);
  const mmapView = new DataView(mmap.buffer);
  map.forEach((e, i) => {
    mmapView.setUint32(24 * i, 20, true); // size of the entry without this field (§3.3)
    mmapView.setBigUint64(24 * i + 4, BigInt(e.address), true);
    mmapView.setBigUint64(24 * i + 12, BigInt(e.length), true);
    mmapView.setUint32(24 * i + 20, e.type, true);
  });
  segments.push({ address: MULTIBOOT_MMAP_ADDRESS, bytes: mmap, memBytes: mmap.length });

  const mbi = new Uint8Array(MULTIBOOT_INFO_SIZE);
  const view = new DataView(mbi.buffer);
  view.setUint32(
    0,
    MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_BOOTDEV | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS |
      MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_BOOT_LOADER_NAME,
    true,
  );
  // mem_lower and mem_upper in KiB: the available RAM below 640 KiB and from 1 MiB on.
  view.setUint32(4, map[0].length / 1024, true);
  view.setUint32(8, map[3].length / 1024, true);
  view.setUint32(12, QEMU_BOOT_DEVICE, true);
  view.setUint32(16, cmdline, true);
  view.setUint32(20, modules.length, true);
  view.setUint32(24, infoBase, true);
  view.setUint32(44, mmap.length, true);
  view.setUint32(48, MULTIBOOT_MMAP_ADDRESS, true);
  view.setUint32(64, loaderName, true);
  segments.push({ address: MULTIBOOT_INFO_ADDRESS, bytes: mbi, memBytes: mbi.length });

  for (const s of segments) checkFits(s, options.ramBelow4g);
  checkOverlaps(segments);
  return { segments, entry: kernel.entry, mbiAddress: MULTIBOOT_INFO_ADDRESS };
}

function checkOverlaps(segments: LoadSegment[]): void {
  const sorted = [...segments].sort((a, b) => a.address - b.address);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.address + prev.memBytes > sorted[i].address) {
      throw new UsageError(
        `multiboot kernel overlaps the boot information at 0x${sorted[i].address.toString(16)}`,
      );
    }
  }
}

function checkFits(s: LoadSegment, ramBelow4g: number): void {
  const end = s.address + s.memBytes;
  const low = end <= LOW_RAM_END;
  const high = s.address >= HIGH_RAM_START && end <= ramBelow4g;
  if (!low && !high) {
    throw new UsageError(
      `multiboot kernel does not fit in RAM: 0x${s.address.toString(16)}-0x${end.toString(16)} ` +
        `is not below 0x${LOW_RAM_END.toString(16)} or within 0x${HIGH_RAM_START.toString(16)}-0x${
          ramBelow4g.toString(16)
        }`,
    );
  }
}

/** Writes a plan's segments into guest memory (zeroing each bss tail). */
export function writeMultibootPlan(plan: MultibootPlan, memory: AddressSpace): void {
  for (const s of plan.segments) {
    memory.dmaWrite(s.address, s.bytes);
    if (s.memBytes > s.bytes.length) {
      memory.dmaWrite(s.address + s.bytes.length, new Uint8Array(s.memBytes - s.bytes.length));
    }
  }
}

/** CR0's cache-disable (bit 30) and not-write-through (bit 29) bits, set at reset. */
const CR0_CD_NW = 0x60000000;

/** The local APIC's register window (its reset address). */
const LAPIC_BASE = 0xfee00000;

/**
 * The 64 KiB boot ROM mapped where the BIOS would be. The reset vector jumps to
 * 16-bit code that loads a flat GDT (code 0x08, data 0x10, base 0, limit 4 GiB), sets
 * CR0.PE and far-jumps to 32-bit code, which loads the data segments, sets
 * EAX = 0x2BADB002 and EBX = the MBI address, sets up the local APIC as SeaBIOS does,
 * clears the other registers and
 * far-jumps to the kernel entry: the machine state of Multiboot 0.6.96 §3.2.
 */
export function multibootBootRom(entry: number, mbiAddress: number): Uint8Array {
  const a = new Assembler({ bits: 16, origin: MULTIBOOT_ROM_BASE });
  // The descriptors come with their accessed bit set: the CPU would otherwise write it
  // back into this read-only GDT when loading them (KVM cannot complete that write to a
  // read-only memory slot).
  a.label("gdt").dd(0, 0); // null descriptor
  a.dd(0x0000ffff, 0x00cf9b00); // 0x08: code, base 0, limit 4 GiB, 32-bit, execute/read
  a.dd(0x0000ffff, 0x00cf9300); // 0x10: data, base 0, limit 4 GiB, read/write
  a.label("gdtr").dw(0x17).dd("gdt");
  a.align(16);

  // Real mode after reset: CS base is 0xffff0000, so CS-relative offsets reach this ROM.
  a.label("start16").cli().cld();
  a.lgdt(mem(null, a.address("gdtr") - MULTIBOOT_ROM_BASE, { seg: CS }), { o32: true });
  // Caches on (CD and NW clear) as SeaBIOS leaves them before QEMU's multiboot option ROM
  // runs: a guest of QEMU's -kernel sees CR0 = 0x11 at the entry, not the reset's CD|NW.
  a.mov(EAX, CR0).and(EAX, ~CR0_CD_NW).or(AL, 1).mov(CR0, EAX);
  a.jmpFar(0x08, "start32", { bits: 32 });

  a.bits(32).align(16).label("start32");
  a.mov(EAX, 0x10);
  for (const s of [DS, ES, FS, GS, SS]) a.mov(s, AX);
  // The boot CPU's local APIC as SeaBIOS leaves it for QEMU's multiboot loader: software
  // enabled, LINT0 ExtINT (the PIC's interrupts reach the CPU), LINT1 NMI, both level.
  a.mov(dword(null, LAPIC_BASE + 0xf0), 0x1ff);
  a.mov(dword(null, LAPIC_BASE + 0x350), 0x8700);
  a.mov(dword(null, LAPIC_BASE + 0x360), 0x8400);
  for (const r of [ECX, EDX, ESI, EDI, EBP, ESP]) a.xor(r, r);
  a.mov(EAX, MULTIBOOT_BOOTLOADER_MAGIC).mov(EBX, mbiAddress);
  a.jmpFar(0x08, entry);

  // The reset vector at 0xfffffff0 (F000:FFF0): a near jump within the ROM's segment.
  a.bits(16).fill(MULTIBOOT_ROM_SIZE - 16 - a.length, 0xff);
  a.jmp("start16");
  a.fill(MULTIBOOT_ROM_SIZE - a.length, 0xff);
  return a.assemble();
}

/**
 * Rewrites the kernel, modules and information structure into RAM at every system
 * reset, as QEMU's option ROM copies them from fw_cfg on each boot.
 */
export class MultibootLoader implements Device {
  readonly id = "multiboot";
  readonly model = "multiboot-loader";
  #plan: MultibootPlan;
  #memory: AddressSpace;

  constructor(plan: MultibootPlan, memory: AddressSpace) {
    this.#plan = plan;
    this.#memory = memory;
  }

  reset(): void {
    writeMultibootPlan(this.#plan, this.#memory);
  }

  saveState(): DeviceState {
    return {};
  }

  loadState(_state: DeviceState): void {}
}

/**
 * What `-kernel` hands the board beyond {@linkcode KernelConfig}: the kernel's file
 * name (QEMU puts it before the `-append` text in the Multiboot command line) and the
 * `-initrd` list split into modules. Both are optional.
 */
export interface MultibootKernelConfig extends KernelConfig {
  kernelName?: string;
  modules?: MultibootModule[];
}

/**
 * Prepares `-kernel` on a PC board: refuses a Linux bzImage (not supported yet) and
 * anything without a Multiboot header, and returns the boot ROM to map in place of
 * the BIOS plus the plan the {@linkcode MultibootLoader} writes at reset.
 *
 * Unlike QEMU, which runs SeaBIOS first and enters the kernel from an option ROM, no
 * firmware runs: the PIC, PIT and other devices are in their power-on state (SeaBIOS
 * would have programmed the PIC to vectors 0x08/0x70 and the PIT to 18.2 Hz), and
 * there is no real-mode IVT or BIOS data area. Multiboot kernels must not rely on any
 * of that, and the specification does not promise it.
 */
export function prepareMultibootBoot(
  kernel: MultibootKernelConfig,
  ramBelow4g: number,
): { rom: Uint8Array; plan: MultibootPlan } {
  if (isLinuxKernel(kernel.kernel)) {
    throw new NotSupportedError(
      "Booting a Linux kernel with -kernel is not supported yet: only Multiboot kernels are",
    );
  }
  if (!findMultibootHeader(kernel.kernel)) {
    throw new NotSupportedError(
      "-kernel: the file is neither a Multiboot kernel nor a Linux kernel (no Multiboot header in the first 8192 bytes)",
    );
  }
  const name = kernel.kernelName ?? "";
  const cmdline = name ? `${name} ${kernel.cmdline}` : kernel.cmdline;
  const modules = kernel.modules ??
    (kernel.initrd ? [{ bytes: kernel.initrd, cmdline: "" }] : []);
  const plan = planMultibootBoot(kernel.kernel, { cmdline, modules, ramBelow4g });
  return { rom: multibootBootRom(plan.entry, plan.mbiAddress), plan };
}
