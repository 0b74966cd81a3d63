// SeaBIOS runs the VGA BIOS of `-vga std` and `-vga cirrus` as it does under QEMU, and its text lands in VRAM

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import type { BlockIo } from "../../core/block/backend.ts";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";
import type { VgaCore } from "../../plugins/devices/vga/mod.ts";
import x86 from "../../plugins/cpus/x86/mod.ts";
import { AX, BX, CX, DI, ES, mem } from "../../plugins/machines/x86_asm.ts";
import { haveProgram, MAIN, tempDir } from "../test_util.ts";
import { bootSector } from "./boot_util.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const ROMS = ["vgabios-stdvga.bin", "vgabios-cirrus.bin"].map((r) => `/usr/share/seabios/${r}`);

function exists(file: string): boolean {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}

const missingFirmware = [BIOS, ...ROMS].filter((f) => !exists(f));
const NEEDS_FIRMWARE = missingFirmware.length === 0
  ? ""
  : ` (ignored: ${missingFirmware.join(", ")} missing; apt-get install seabios)`;
const HAVE_QEMU = haveProgram("qemu-system-x86_64");
const NEEDS_QEMU = HAVE_QEMU ? "" : " (ignored: qemu-system-x86_64 is not installed)";

/**
 * The SeaBIOS debug log lines about the VGA: its PCI placement and everything from
 * the option ROM scan to the VGA BIOS setting mode 3.
 */
function vgaLines(log: string): string[] {
  const lines = log.split("\n").map((l) => l.trimEnd());
  const start = lines.indexOf("Scan for VGA option rom");
  const end = lines.indexOf("set VGA mode 3");
  const pci = lines.filter((l) => /bdf=00:02\.0|primary VGA/.test(l));
  return start < 0 || end < start ? pci : [...pci, ...lines.slice(start, end + 1)];
}

/**
 * Waits until `file` holds `marker`, `stopped()` says the writer is gone, or
 * `timeoutMs` passes; returns the file's text.
 */
async function waitForFile(
  file: string,
  marker: RegExp,
  options: { timeoutMs: number; stopped: () => boolean },
): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  let text = "";
  while (Date.now() < deadline) {
    try {
      text = await Deno.readTextFile(file);
    } catch {
      // not created yet
    }
    if (marker.test(text) || options.stopped()) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return text;
}

const BOOT_ATTEMPT = /Booting from|No bootable device/;

/** Runs a program until its SeaBIOS log (port 0x402) reaches the boot attempts, then stops it. */
async function seabiosLog(program: string, args: string[], log: string): Promise<string> {
  const child = new Deno.Command(program, {
    args: [
      ...args,
      "-nographic",
      "-net",
      "none",
      "-chardev",
      `file,id=seabios,path=${log}`,
      "-device",
      "isa-debugcon,iobase=0x402,chardev=seabios",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then(() => (exited = true));
  const text = await waitForFile(log, BOOT_ATTEMPT, {
    timeoutMs: 90_000,
    stopped: () => exited,
  });
  try {
    child.kill("SIGKILL");
  } catch {
    // exited already
  }
  await status;
  const stderr = await errors;
  if (!BOOT_ATTEMPT.test(text)) {
    throw new Error(`${program} stopped before a boot attempt: ${stderr}\n${text}`);
  }
  return text;
}

for (const type of ["std", "cirrus"]) {
  Deno.test({
    name: `vmkit system-x86_64 -vga ${type}: SeaBIOS runs the VGA option ROM with the ` +
      `same debug log lines as qemu-system-x86_64${NEEDS_FIRMWARE}${NEEDS_QEMU}`,
    ignore: NEEDS_FIRMWARE !== "" || skipUnless(import.meta, "qemu-system-x86_64"),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const ours = await seabiosLog(
          Deno.execPath(),
          ["run", "-A", "--quiet", MAIN, "system-x86_64", "-vga", type],
          path.join(dir, "vmkit.log"),
        );
        const theirs = await seabiosLog(
          "qemu-system-x86_64",
          ["-accel", "tcg", "-vga", type, "-monitor", "none", "-serial", "null"],
          path.join(dir, "qemu.log"),
        );
        const expected = vgaLines(theirs);
        assert.ok(expected.includes("Running option rom at c000:0003"), theirs);
        assert.deepEqual(vgaLines(ours), expected, `--- vmkit ---\n${ours}`);
      } finally {
        await cleanup();
      }
    },
  });
}

/** Boots SeaBIOS in-process with `-vga type` until it tries to boot; returns the adapter's core. */
async function bootToText(type: string): Promise<{ core: VgaCore; serial: string }> {
  const cpu = x86 as CpuDescriptor;
  const serial = new MemoryChardev("serial0");
  const machine = createPcMachine(testConfig({
    ramBytes: 64 << 20,
    firmware: Deno.readFileSync(BIOS),
    serial: [serial],
    vga: type,
    createCpu: (m, index) => cpu.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  }));
  serial.onOutput((text) => {
    if (/No bootable device|Booting from/.test(text)) machine.requestExit(0);
  });
  const exit = await machine.run({ maxInstructions: 400_000_000 });
  assert.equal(exit.reason, "exit", `SeaBIOS did not reach a boot attempt:\n${serial.text()}`);
  const adapter = machine.devices.find((d) => d.model === (type === "std" ? "VGA" : "cirrus-vga"));
  assert.ok(adapter, `no ${type} adapter on the board`);
  return { core: (adapter as unknown as { core: VgaCore }).core, serial: serial.text() };
}

for (const type of ["std", "cirrus"]) {
  Deno.test({
    name: `createPcMachine() with vga ${type}: the SeaBIOS banner is in VRAM plane 0 ` +
      `where the text mode CRTC reads it${NEEDS_FIRMWARE}`,
    ignore: skipUnless(import.meta, { ok: NEEDS_FIRMWARE === "", missing: NEEDS_FIRMWARE }),
    async fn() {
      const { core, serial } = await bootToText(type);
      const lines = core.textLines();
      assert.equal(lines.length, 25, "mode 3 is 80x25");
      assert.ok(
        lines.some((l) => /^SeaBIOS \(version [^)]+\)/.test(l)),
        `text screen:\n${lines.join("\n")}\n--- serial ---\n${serial}`,
      );
      // Mode 3 as the VGA BIOS leaves it: colour ports, 0xb8000 odd/even, 80 columns.
      assert.equal(core.misc & 1, 1);
      assert.equal(core.gr[6] & 0x0c, 0x0c);
      assert.equal(core.cr[1], 79);
    },
  });
}

/** A disk in memory for the in-process boots. */
class RamDisk implements BlockIo {
  constructor(readonly bytes: Uint8Array) {}
  size(): number {
    return this.bytes.length;
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    buf.set(this.bytes.subarray(offset, offset + buf.length));
    return Promise.resolve();
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, offset);
    return Promise.resolve();
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** Where the boot sector leaves the results of its two VBE calls and the mode information. */
const RESULT_4F01 = 0x7e00;
const RESULT_4F02 = 0x7e02;
const MODE_INFO = 0x8000;

/**
 * A boot sector that asks the VGA BIOS for VBE mode 0x101 (640x480, 256 colours), sets
 * it with the linear framebuffer bit, stores both AX results and says so on COM1.
 */
function vbeBootSector(): Uint8Array {
  return bootSector("VBE-DONE", (a) => {
    a.mov(ES, AX);
    a.mov(AX, 0x4f01); // return VBE mode information
    a.mov(CX, 0x0101);
    a.mov(DI, MODE_INFO);
    a.db(0xcd, 0x10); // int 10h
    a.mov(mem(null, RESULT_4F01, { bits: 16 }), AX);
    a.mov(AX, 0x4f02); // set VBE mode
    a.mov(BX, 0x4101); // bit 14: use the linear framebuffer
    a.db(0xcd, 0x10);
    a.mov(mem(null, RESULT_4F02, { bits: 16 }), AX);
  });
}

for (const type of ["std", "cirrus"]) {
  Deno.test({
    name: `createPcMachine() with vga ${type}: the VGA BIOS sets VBE mode 0x101 with its ` +
      `linear framebuffer at BAR 0${NEEDS_FIRMWARE}`,
    ignore: skipUnless(import.meta, { ok: NEEDS_FIRMWARE === "", missing: NEEDS_FIRMWARE }),
    async fn() {
      const image = new Uint8Array(1 << 20);
      image.set(vbeBootSector());
      const serial = new MemoryChardev("serial0");
      const cpu = x86 as CpuDescriptor;
      const machine = createPcMachine(testConfig({
        ramBytes: 64 << 20,
        firmware: Deno.readFileSync(BIOS),
        serial: [serial],
        vga: type,
        drives: [{
          id: "ide0-hd0",
          node: new RamDisk(image),
          interface: "ide",
          index: 0,
          media: "disk",
          readOnly: false,
        }],
        createCpu: (m, index) =>
          cpu.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
      }));
      serial.onOutput((text) => {
        if (/VBE-DONE|No bootable device/.test(text)) machine.requestExit(0);
      });
      await machine.run({ maxInstructions: 400_000_000 });
      assert.match(serial.text(), /VBE-DONE/, serial.text());
      const ram = machine.memory;
      assert.equal(ram.read16(RESULT_4F01), 0x004f, "4F01 succeeded");
      assert.equal(ram.read16(RESULT_4F02), 0x004f, "4F02 succeeded");
      assert.ok(ram.read16(MODE_INFO) & 0x80, "mode attributes: linear framebuffer available");
      assert.equal(ram.read16(MODE_INFO + 0x12), 640);
      assert.equal(ram.read16(MODE_INFO + 0x14), 480);
      const adapter = machine.devices.find((d) =>
        d.model === (type === "std" ? "VGA" : "cirrus-vga")
      ) as unknown as {
        core: VgaCore;
        config: { get32(offset: number): number };
      };
      const lfb = (adapter.config.get32(0x10) & ~0xf) >>> 0;
      assert.equal(ram.read32(MODE_INFO + 0x28), lfb, "PhysBasePtr is BAR 0");
      // A pixel written through the framebuffer lands at the start of VRAM.
      ram.write8(lfb + 5, 0x3c);
      assert.equal(adapter.core.vram[5], 0x3c);
      if (type === "std") {
        const vbe = (adapter as unknown as { vbe: { read(i: number): number } }).vbe;
        assert.deepEqual([1, 2, 3].map((i) => vbe.read(i)), [640, 480, 8]);
        assert.equal(vbe.read(4) & 0x41, 0x41, "enabled with the LFB");
      } else {
        assert.equal(adapter.core.sr[7] & 0x0f, 0x01, "SR07: extended mode, 8 bpp");
      }
    },
  });
}
