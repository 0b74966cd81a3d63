import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import type { CpuBackend } from "../../core/cpu.ts";
import { AddressSpace } from "../../core/memory/address_space.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import {
  findMultibootHeader,
  MULTIBOOT_AOUT_KLUDGE,
  MULTIBOOT_BOOTLOADER_MAGIC,
  MULTIBOOT_HEADER_MAGIC,
  MULTIBOOT_INFO_ADDRESS,
  MULTIBOOT_MMAP_ADDRESS,
  MULTIBOOT_ROM_BASE,
  MULTIBOOT_ROM_SIZE,
  multibootBootRom,
  planMultibootBoot,
  prepareMultibootBoot,
  writeMultibootPlan,
} from "./multiboot.ts";
import { createPcMachine } from "./pc.ts";
import { DEVICE_PLUGINS } from "../devices/mod.ts";
import { Registry } from "../../core/plugin.ts";
import { Assembler, EAX } from "./x86_asm.ts";

const RAM_128M = 128 << 20;

/** A flat a.out-kludge kernel at 0x100000: header, `mov eax, 0x1234; hlt`, `bssBytes` of bss. */
function aoutKernel(options: { headerOffset?: number; bssBytes?: number } = {}): Uint8Array {
  const a = new Assembler({ origin: 0x100000 });
  a.fill(options.headerOffset ?? 0, 0x90);
  const flags = MULTIBOOT_AOUT_KLUDGE;
  a.label("header").dd(MULTIBOOT_HEADER_MAGIC, flags, -(MULTIBOOT_HEADER_MAGIC + flags) >>> 0);
  a.dd("header", 0x100000, "end", options.bssBytes ? at("end", options.bssBytes) : 0, "entry");
  a.label("entry").mov(EAX, 0x1234).hlt();
  a.label("end");
  return a.assemble();
}

function at(label: string, addend: number) {
  return { label, addend };
}

/** A minimal ELF32 executable linked at 0xc0100000 and loaded at 0x100000. */
function elfKernel(machine = 3, elfClass = 1): Uint8Array {
  const code = new Uint8Array([0xb8, 0x78, 0x56, 0x34, 0x12, 0xf4]);
  const header = new Uint8Array(12);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, MULTIBOOT_HEADER_MAGIC, true);
  hv.setUint32(8, -MULTIBOOT_HEADER_MAGIC >>> 0, true);
  const image = new Uint8Array(0x1000 + 0x100);
  const v = new DataView(image.buffer);
  v.setUint32(0, 0x464c457f, true);
  image[4] = elfClass;
  image[5] = 1; // little endian
  image[6] = 1;
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, machine, true); // EM_386
  v.setUint32(24, 0xc0100010, true); // e_entry (virtual)
  v.setUint32(28, 52, true); // e_phoff
  v.setUint16(42, 32, true);
  v.setUint16(44, 1, true);
  const p = 52;
  v.setUint32(p, 1, true); // PT_LOAD
  v.setUint32(p + 4, 0x1000, true); // p_offset
  v.setUint32(p + 8, 0xc0100000, true); // p_vaddr
  v.setUint32(p + 12, 0x100000, true); // p_paddr
  v.setUint32(p + 16, 0x100, true); // p_filesz
  v.setUint32(p + 20, 0x2000, true); // p_memsz
  image.set(header, 0x1000);
  image.set(code, 0x1010);
  image.fill(0xee, 0x1020, 0x1100);
  return image;
}

function ram(bytes = RAM_128M): AddressSpace {
  const space = new AddressSpace();
  space.addRam("ram", 0, bytes);
  return space;
}

function cString(space: AddressSpace, address: number): string {
  let out = "";
  for (let c = space.read8(address); c !== 0; c = space.read8(++address)) {
    out += String.fromCharCode(c);
  }
  return out;
}

Deno.test("findMultibootHeader() finds the header and checks its checksum", () => {
  const image = aoutKernel({ headerOffset: 0x40 });
  const header = findMultibootHeader(image);
  assert.equal(header?.offset, 0x40);
  assert.equal(header?.flags, MULTIBOOT_AOUT_KLUDGE);
  assert.equal(header?.headerAddr, 0x100040);
  assert.equal(header?.loadAddr, 0x100000);
  const bad = image.slice();
  bad[0x48] ^= 1; // checksum
  assert.equal(findMultibootHeader(bad), null);
  const late = new Uint8Array(8192 + 64);
  late.set(image.subarray(0x40, 0x60), 8192); // beyond the search window
  assert.equal(findMultibootHeader(late), null);
});

Deno.test("planMultibootBoot() loads an a.out kludge kernel and zeroes its bss", () => {
  const image = aoutKernel({ headerOffset: 0x20, bssBytes: 0x3000 });
  const plan = planMultibootBoot(image, { cmdline: "k", ramBelow4g: RAM_128M });
  const space = ram();
  space.write32(0x100000 + image.length + 8, 0xdeadbeef); // stale bss content
  writeMultibootPlan(plan, space);
  assert.equal(plan.entry, 0x100000 + image.length - 6);
  assert.equal(space.read8(plan.entry), 0xb8);
  assert.equal(space.read32(0x100000 + image.length + 8), 0);
  assert.deepEqual(
    Array.from({ length: image.length }, (_, i) => space.read8(0x100000 + i)),
    [...image],
  );
});

Deno.test("planMultibootBoot() loads ELF32 PT_LOAD segments at their physical address", () => {
  const plan = planMultibootBoot(elfKernel(), { cmdline: "", ramBelow4g: RAM_128M });
  const space = ram();
  space.write8(0x100100, 0x55); // inside p_memsz beyond p_filesz: must be zeroed
  writeMultibootPlan(plan, space);
  assert.equal(plan.entry, 0x100010); // e_entry translated from virtual to physical
  assert.equal(space.read32(0x100010), 0x345678b8);
  assert.equal(space.read8(0x1000ff), 0xee);
  assert.equal(space.read8(0x100100), 0);
  // The module list and strings start on the page after the 8 KiB memory image.
  assert.equal(space.read32(MULTIBOOT_INFO_ADDRESS + 24), 0x102000);
});

Deno.test("planMultibootBoot() builds the information structure QEMU gives a 128M pc guest", () => {
  const image = aoutKernel();
  const plan = planMultibootBoot(image, {
    cmdline: "/tmp/probe.bin console=ttyS0",
    modules: [
      { bytes: new TextEncoder().encode("modA\n"), cmdline: "/tmp/modA arg1 arg2" },
      { bytes: new TextEncoder().encode("modBB\n"), cmdline: "/tmp/modB" },
    ],
    ramBelow4g: RAM_128M,
  });
  const space = ram();
  writeMultibootPlan(plan, space);
  const mbi = plan.mbiAddress;
  // These values were read back from qemu-system-i386 7.2 with SeaBIOS by a probe guest.
  assert.equal(mbi, 0x9500);
  assert.equal(space.read32(mbi), 0x24f); // memory, boot device, cmdline, mods, mmap, name
  assert.equal(space.read32(mbi + 4), 639);
  assert.equal(space.read32(mbi + 8), 129920);
  assert.equal(space.read32(mbi + 12), 0x8000ffff);
  assert.equal(cString(space, space.read32(mbi + 16)), "/tmp/probe.bin console=ttyS0");
  assert.equal(cString(space, space.read32(mbi + 64)), "qemu");
  assert.equal(space.read32(mbi + 20), 2);
  const mods = space.read32(mbi + 24);
  assert.equal(mods, 0x101000);
  assert.deepEqual([space.read32(mods), space.read32(mods + 4)], [0x102000, 0x102005]);
  assert.deepEqual([space.read32(mods + 16), space.read32(mods + 20)], [0x103000, 0x103006]);
  assert.equal(cString(space, space.read32(mods + 8)), "/tmp/modA arg1 arg2");
  assert.equal(cString(space, space.read32(mods + 24)), "/tmp/modB");
  assert.equal(space.read8(0x102000), 0x6d); // "m"
  assert.equal(space.read32(mbi + 44), 144);
  assert.equal(space.read32(mbi + 48), MULTIBOOT_MMAP_ADDRESS);
  const entries = [];
  for (let e = MULTIBOOT_MMAP_ADDRESS; e < MULTIBOOT_MMAP_ADDRESS + 144; e += 24) {
    assert.equal(space.read32(e), 20);
    entries.push([space.read32(e + 4), space.read32(e + 12), space.read32(e + 20)]);
  }
  assert.deepEqual(entries, [
    [0, 654336, 1],
    [654336, 1024, 2],
    [983040, 65536, 2],
    [1048576, 133038080, 1],
    [134086656, 131072, 2],
    [4294705152, 262144, 2],
  ]);
});

Deno.test("planMultibootBoot() refuses a kernel that does not fit in RAM", () => {
  assert.throws(
    () => planMultibootBoot(aoutKernel(), { cmdline: "", ramBelow4g: 1 << 20 }),
    /does not fit in RAM/,
  );
});

Deno.test("prepareMultibootBoot() refuses Linux, ELF64 and files without a Multiboot header", () => {
  const linux = new Uint8Array(0x1000);
  new DataView(linux.buffer).setUint32(0x202, 0x53726448, true);
  assert.throws(
    () => prepareMultibootBoot({ kernel: linux, cmdline: "" }, RAM_128M),
    /Booting a Linux kernel with -kernel is not supported yet/,
  );
  assert.throws(
    () => prepareMultibootBoot({ kernel: new Uint8Array(100), cmdline: "" }, RAM_128M),
    /neither a Multiboot kernel nor a Linux kernel/,
  );
  assert.throws(
    () => prepareMultibootBoot({ kernel: elfKernel(62, 2), cmdline: "" }, RAM_128M),
    /Cannot load x86-64 image/,
  );
  const { plan } = prepareMultibootBoot(
    { kernel: aoutKernel(), cmdline: "a=1", kernelName: "k.bin" } as never,
    RAM_128M,
  );
  const space = ram();
  writeMultibootPlan(plan, space);
  assert.equal(cString(space, space.read32(plan.mbiAddress + 16)), "k.bin a=1");
});

Deno.test("multibootBootRom() puts a jump at the reset vector and fills 64 KiB", () => {
  const rom = multibootBootRom(0x100000, 0x9500);
  assert.equal(rom.length, MULTIBOOT_ROM_SIZE);
  assert.equal(rom[0xfff0], 0xe9); // jmp rel16 at F000:FFF0
  const target = (0xfff3 + new DataView(rom.buffer).getInt16(0xfff1, true)) & 0xffff;
  assert.equal(rom[target], 0xfa); // cli
  assert.equal(MULTIBOOT_ROM_BASE + MULTIBOOT_ROM_SIZE, 2 ** 32);
});

const CPU_MODULE = new URL("../cpus/x86/mod.ts", import.meta.url);
const haveCpu = (() => {
  try {
    return Deno.statSync(CPU_MODULE).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "createPcMachine() enters a Multiboot kernel in flat 32-bit protected mode" +
    (haveCpu ? "" : " (ignored: plugins/cpus/x86/mod.ts does not exist yet)"),
  ignore: skipUnless(import.meta, {
    ok: haveCpu,
    missing: "the x86 CPU plugin is not in this tree",
  }),
  async fn() {
    const cpuPlugin = (await import(CPU_MODULE.href)).default as CpuDescriptor;
    const machine = createPcMachine({
      smp: 1,
      drives: [],
      serial: [],
      nographic: true,
      registry: new Registry().addAll(DEVICE_PLUGINS),
      ramBytes: RAM_128M,
      kernel: { kernel: aoutKernel(), cmdline: "" },
      createCpu: (m, index) =>
        cpuPlugin.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
    });
    // The kernel overwrites EAX and halts; stop before that to see the entry state.
    const result = await machine.run({ maxInstructions: 200 });
    const regs = machine.cpus[0].registers();
    assert.notEqual(result.reason, "budget", "the kernel did not reach its hlt");
    assert.equal(regs.eax, 0x1234);
    assert.equal(regs.ebx, MULTIBOOT_INFO_ADDRESS);
    assert.equal(regs.cs, 0x08);
    for (const s of ["ds", "es", "fs", "gs", "ss"]) assert.equal(regs[s], 0x10, s);
    assert.equal(regs.cs_base, 0);
    assert.equal(regs.ds_limit, 0xffffffff);
    assert.equal(regs.cr0 & 0x80000001, 1); // PE on, PG off
    assert.equal(regs.cr0 & 0x60000000, 0); // caches on (CD, NW clear) as after SeaBIOS
    assert.equal(regs.eflags & 0x200, 0); // IF off
    assert.ok(machine.a20);
    assert.equal(MULTIBOOT_BOOTLOADER_MAGIC, 0x2badb002);
  },
});
