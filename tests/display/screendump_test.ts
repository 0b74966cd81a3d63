// vmkit's screendump of SeaBIOS's text screen against real QEMU's screendump of the same guest in the same state

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import { decodePpm, DISPLAY, encodePpm, type PpmImage } from "../../core/display.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import x86 from "../../plugins/cpus/x86/mod.ts";
import type { VgaConsole, VgaCore } from "../../plugins/devices/vga/mod.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";
import { haveProgram, tempDir } from "../test_util.ts";
import { qemuScreendump } from "./qemu_screen.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const HAVE_FIRMWARE = [
  BIOS,
  ...["stdvga", "cirrus"].map((v) => `/usr/share/seabios/vgabios-${v}.bin`),
].every((f) => {
  try {
    return Deno.statSync(f).isFile;
  } catch {
    return false;
  }
});
const HAVE_QEMU = haveProgram("qemu-system-x86_64");
const SKIP = !HAVE_FIRMWARE
  ? " (ignored: SeaBIOS is missing; apt-get install seabios)"
  : !HAVE_QEMU
  ? " (ignored: qemu-system-x86_64 is not installed)"
  : "";

/** SeaBIOS's last words when nothing boots (no retry: the screen holds still after them). */
const NO_BOOT = /No bootable device\./;

/** The 80x25 screen as text, read from a picture with the font vmkit rendered. */
function screenText(image: PpmImage, glyphs: Map<string, string>, cw = 9, ch = 16): string[] {
  const rows: string[] = [];
  for (let row = 0; row < Math.floor(image.height / ch); row++) {
    let line = "";
    for (let col = 0; col < Math.floor(image.width / cw); col++) {
      line += glyphs.get(cellKey(image, col * cw, row * ch, cw, ch)) ?? "?";
    }
    rows.push(line.trimEnd());
  }
  return rows;
}

/** A cell's pixels reduced to foreground/background bits (the top-left pixel is background). */
function cellKey(image: PpmImage, x: number, y: number, cw: number, ch: number): string {
  let key = "";
  for (let l = 0; l < ch; l++) {
    for (let c = 0; c < cw; c++) {
      key += image.pixels[(y + l) * image.width + x + c] === image.pixels[y * image.width + x]
        ? "."
        : "#";
    }
  }
  return key;
}

/** Boots SeaBIOS with no disk in vmkit (in-process) to its "No bootable device" screen. */
async function vmkitScreen(
  type: string,
  dumpFile: string,
): Promise<{ core: VgaCore; console: VgaConsole }> {
  const cpu = x86 as CpuDescriptor;
  const serial = new MemoryChardev("serial0");
  const machine = createPcMachine(testConfig({
    ramBytes: 64 << 20,
    firmware: Deno.readFileSync(BIOS),
    serial: [serial],
    vga: type,
    createCpu: (m, index) => cpu.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  }));
  serial.onOutput(() => {
    if (NO_BOOT.test(serial.text())) machine.requestExit(0);
  });
  const exit = await machine.run({ maxInstructions: 600_000_000 });
  assert.equal(exit.reason, "exit", `SeaBIOS did not give up booting:\n${serial.text()}`);
  const display = machine.findService(DISPLAY);
  assert.ok(display, "the VGA publishes the display service");
  await display.screendump(dumpFile);
  const model = type === "std" ? "VGA" : "cirrus-vga";
  const vga = machine.devices.find((d) => d.model === model) as unknown as {
    core: VgaCore;
    console: VgaConsole;
  };
  return vga;
}

for (const type of ["std", "cirrus"]) {
  Deno.test({
    name: `screendump of SeaBIOS's "No bootable device" text screen (-vga ${type}) is QEMU 7.2's ` +
      `screendump byte for byte${SKIP}`,
    ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const oursFile = path.join(dir, "vmkit.ppm");
        const theirsFile = path.join(dir, "qemu.ppm");
        const vga = await vmkitScreen(type, oursFile);
        const log = path.join(dir, "seabios.log");
        await qemuScreendump({
          args: [
            "-nodefaults",
            "-accel",
            "tcg",
            "-m",
            "64",
            "-vga",
            type,
            // QEMU loads kvmvapic.bin, a legacy option ROM that SeaBIOS counts as a hard disk
            // boot entry, ahead of the floppy; vmkit has no VAPIC ROM, so turn it off here.
            "-global",
            "apic-common.vapic=off",
            "-chardev",
            `file,id=seabios,path=${log}`,
            "-device",
            "isa-debugcon,iobase=0x402,chardev=seabios",
          ],
          dir,
          readyFile: log,
          ready: NO_BOOT,
          dumpFile: theirsFile,
          width: 720,
          height: 400,
        });
        const oursBytes = await Deno.readFile(oursFile);
        const theirsBytes = await Deno.readFile(theirsFile);
        const ours = decodePpm(oursBytes);
        const theirs = decodePpm(theirsBytes);
        assert.deepEqual([ours.width, ours.height], [720, 400], "mode 3: 80x25 of 9x16 cells");
        assert.deepEqual([theirs.width, theirs.height], [ours.width, ours.height]);

        // Every cell's picture in vmkit, with the cursor drawn and without it, names its character.
        const lines = vga.core.textLines();
        assert.ok(lines.some((l) => l.startsWith("No bootable device.")), lines.join("\n"));
        const glyphs = new Map<string, string>();
        const dumps: Uint8Array[] = [];
        for (const visible of [true, false]) {
          vga.console.cursorVisible = visible;
          vga.console.invalidate();
          const frame = { width: 720, height: 400, pixels: vga.console.update().pixels.slice() };
          dumps.push(encodePpm(vga.console.surface));
          for (let row = 0; row < 25; row++) {
            for (let col = 0; col < 80; col++) {
              glyphs.set(cellKey(frame, col * 9, row * 16, 9, 16), lines[row][col] ?? " ");
            }
          }
        }

        // QEMU's screen, read with vmkit's glyphs, holds the same lines of text.
        const text = screenText(theirs, glyphs);
        assert.deepEqual(text, [...lines, ...Array(25 - lines.length).fill("")]);

        // The file the display service wrote is the frame with the cursor drawn.
        assert.deepEqual(oursBytes, dumps[0]);
        // QEMU blinks the cursor on its own clock: its dump is vmkit's, byte for byte, with the
        // cursor drawn or without it.
        const differing = dumps.map((ppm) => {
          let diff = Math.abs(ppm.length - theirsBytes.length);
          for (let i = 0; i < Math.min(ppm.length, theirsBytes.length); i++) {
            if (ppm[i] !== theirsBytes[i]) diff++;
          }
          return diff;
        });
        assert.ok(
          differing.includes(0),
          `bytes differing from QEMU's screendump (cursor on, off): ${differing}`,
        );
      } finally {
        await cleanup();
      }
    },
  });
}
