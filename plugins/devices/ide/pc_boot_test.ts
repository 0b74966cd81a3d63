import { skipUnless } from "../../../tests/skip.ts";
import assert from "node:assert/strict";
import type { BlockNode } from "../../../core/block/driver.ts";
import { MemoryChardev } from "../../../core/chardev.ts";
import type { CpuBackend } from "../../../core/cpu.ts";
import type { DriveConfig } from "../../../core/machine.ts";
import type { CpuDescriptor } from "../../../core/plugin.ts";
import { createPcMachine } from "../../machines/pc.ts";
import { testConfig } from "../../machines/test_util.ts";
import { PatternDisk } from "./test_util.ts";

const BIOS_PATH = "/usr/share/seabios/bios-256k.bin";
const CPU_MODULE = new URL("../../cpus/x86/mod.ts", import.meta.url);

function exists(path: string | URL): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const missing = [
  exists(BIOS_PATH) ? "" : `${BIOS_PATH} is not installed`,
  exists(CPU_MODULE) ? "" : "the x86 CPU plugin does not exist yet",
].filter((s) => s).join(", ");

/** Real-mode code that prints the NUL-terminated string after it to COM1, then halts. */
function printingBootCode(message: string, origin: number): Uint8Array {
  const code = [
    0x31,
    0xc0, // xor ax, ax
    0x8e,
    0xd8, // mov ds, ax
    0xba,
    0xf8,
    0x03, // mov dx, 0x3f8
    0xbe,
    (origin + 22) & 0xff,
    (origin + 22) >> 8, // mov si, message
    0xac, // lodsb
    0x84,
    0xc0, // test al, al
    0x74,
    0x03, // jz halt
    0xee, // out dx, al
    0xeb,
    0xf8, // jmp lodsb
    0xfa, // cli
    0xf4, // halt: hlt
    0xeb,
    0xfd, // jmp halt
  ];
  return new Uint8Array([...code, ...new TextEncoder().encode(`${message}\r\n\0`)]);
}

async function bootAndWait(drives: DriveConfig[], bootOrder: string, expect: RegExp) {
  const cpuPlugin = (await import(CPU_MODULE.href)).default as CpuDescriptor;
  const serial = new MemoryChardev("serial0");
  const machine = createPcMachine(testConfig({
    ramBytes: 64 << 20,
    firmware: Deno.readFileSync(BIOS_PATH),
    serial: [serial],
    drives,
    bootOrder,
    createCpu: (m, index) =>
      cpuPlugin.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  }));
  serial.onOutput(() => {
    if (expect.test(serial.text())) machine.requestExit(0);
  });
  const result = await machine.run({ maxInstructions: 400_000_000 });
  assert.equal(result.reason, "exit", `no boot message:\n${serial.text().slice(-1500)}`);
  return serial.text();
}

Deno.test({
  name: "piix3-ide lets SeaBIOS boot the boot sector of an ATA disk" +
    (missing ? ` (ignored: ${missing})` : ""),
  ignore: skipUnless(import.meta, { ok: missing === "", missing: missing }),
  async fn() {
    const disk = new PatternDisk(4 << 20);
    const sector = new Uint8Array(512);
    sector.set(printingBootCode("Hello from the IDE disk", 0x7c00));
    sector[510] = 0x55;
    sector[511] = 0xaa;
    await disk.write(0, sector);
    const text = await bootAndWait(
      [{ id: "drive0", node: disk, interface: "ide", media: "disk", readOnly: false }],
      "c",
      /Hello from the IDE disk\r\n/,
    );
    assert.match(text, /Booting from Hard Disk/);
  },
});

/** A minimal El Torito CD: boot record at sector 17, catalog at 18, a no-emulation image at 19. */
async function elToritoImage(code: Uint8Array): Promise<BlockNode> {
  const iso = new PatternDisk(64 * 2048, "boot.iso", false);
  const record = new Uint8Array(2048);
  record.set([0, ...new TextEncoder().encode("CD001"), 1]);
  record.set(new TextEncoder().encode("EL TORITO SPECIFICATION"), 7);
  new DataView(record.buffer).setUint32(0x47, 18, true);
  await iso.write(17 * 2048, record);
  const catalog = new Uint8Array(2048);
  catalog[0] = 0x01; // validation entry, platform 80x86
  catalog[30] = 0x55;
  catalog[31] = 0xaa;
  const view = new DataView(catalog.buffer);
  let sum = 0;
  for (let i = 0; i < 32; i += 2) sum += view.getUint16(i, true);
  view.setUint16(28, (0x10000 - (sum & 0xffff)) & 0xffff, true);
  catalog[32] = 0x88; // bootable, no emulation
  view.setUint16(32 + 6, 4, true); // four 512-byte sectors
  view.setUint32(32 + 8, 19, true);
  await iso.write(18 * 2048, catalog);
  const image = new Uint8Array(2048);
  image.set(code);
  await iso.write(19 * 2048, image);
  return iso;
}

Deno.test({
  name: "piix3-ide lets SeaBIOS boot an El Torito CD through ATAPI" +
    (missing ? ` (ignored: ${missing})` : ""),
  ignore: skipUnless(import.meta, { ok: missing === "", missing: missing }),
  async fn() {
    const iso = await elToritoImage(printingBootCode("Hello from the IDE CD-ROM", 0x7c00));
    const text = await bootAndWait(
      [
        { id: "cd0", node: iso, interface: "ide", index: 2, media: "cdrom", readOnly: true },
        { id: "cd1", node: null, interface: "ide", index: 3, media: "cdrom", readOnly: true },
      ],
      "d",
      /Hello from the IDE CD-ROM\r\n/,
    );
    assert.match(text, /Booting from DVD\/CD/);
  },
});
