// vmkit's screendump of graphics a guest drew (Bochs VBE 32 bpp, VGA mode 13h) against real QEMU's of the same guest

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, DISPLAY } from "../../core/display.ts";
import type { StdVga } from "../../plugins/devices/vga/mod.ts";
import {
  AH,
  AL,
  AX,
  BH,
  BX,
  CX,
  DI,
  DX,
  EAX,
  EDI,
  ES,
  mem,
} from "../../plugins/machines/x86_asm.ts";
import { tempDir } from "../test_util.ts";
import { bootSector } from "../boot/boot_util.ts";
import { MemoryDisk } from "../fuzz/device_machine.ts";
import { runDiskGuest, skipWithoutQemuAndFirmware } from "./disk_guest.ts";
import { qemuScreendump } from "./qemu_screen.ts";
import { qemuDiskGuestArgs } from "./vnc_util.ts";

const SKIP = skipWithoutQemuAndFirmware("vgabios-stdvga.bin");

/** SeaBIOS's VGA BIOS (Bochs VBE) mode 0x142: 640x480 at 32 bits per pixel. */
const MODE = 0x142;
const DONE = /VBE-DONE/;

/**
 * A boot sector that sets VBE mode 0x142 (banked) and fills the first 64 KiB bank with
 * a pattern of 32-bit pixels, or sets VGA mode 13h and fills its 64000 pixels; then it
 * says VBE-DONE on COM1.
 */
function modeBootSector(mode: "vbe" | "13h" | "12h"): Uint8Array {
  return bootSector("VBE-DONE", (a) => {
    a.mov(ES, AX);
    if (mode === "vbe") {
      a.mov(AX, 0x4f02);
      a.mov(BX, MODE);
    } else {
      a.mov(AX, mode === "13h" ? 0x0013 : 0x0012);
    }
    a.db(0xcd, 0x10); // int 10h: set the mode
    a.mov(mem(null, 0x7e00, { bits: 16 }), AX);
    a.mov(AX, 0xa000);
    a.mov(ES, AX);
    a.xor(EDI, EDI);
    if (mode === "vbe") {
      a.mov(CX, 0x4000); // 16384 pixels: the first 64 KiB bank
      a.label("fill");
      a.mov(EAX, EDI);
      a.shl(EAX, 5);
      a.xor(EAX, EDI);
      a.stosd();
      a.loop("fill");
    } else if (mode === "12h") {
      // Each of the 4 planes in turn through the map mask (SR02), with its own pattern.
      a.mov(BX, 0x0102);
      a.label("plane");
      a.mov(DX, 0x3c4);
      a.mov(AX, BX);
      a.out(DX, AX);
      a.xor(DI, DI);
      a.mov(CX, 38400);
      a.label("fill");
      a.mov(AX, DI);
      a.xor(AL, AH);
      a.xor(AL, BH);
      a.stosb();
      a.loop("fill");
      a.shl(BH, 1);
      a.cmp(BH, 0x10);
      a.jcc("nz", "plane");
    } else {
      a.mov(CX, 64000);
      a.label("fill");
      a.mov(AX, DI);
      a.xor(AL, AH);
      a.stosb();
      a.loop("fill");
    }
  });
}

const CASES = [
  { mode: "vbe", what: "a VBE 640x480x32 picture", width: 640, height: 480 },
  { mode: "13h", what: "a mode 13h (320x200, 256 colours) picture", width: 640, height: 400 },
  { mode: "12h", what: "a mode 12h (640x480, 16 colours planar) picture", width: 640, height: 480 },
] as const;

for (const { mode, what, width, height } of CASES) {
  Deno.test({
    name: `screendump of ${what} a guest drew is QEMU 7.2's byte for byte${SKIP}`,
    ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const image = new MemoryDisk(1 << 20);
        image.bytes.set(modeBootSector(mode));
        const disk = path.join(dir, "disk.img");
        await Deno.writeFile(disk, image.bytes);

        const { machine } = await runDiskGuest(image.bytes, "std", DONE);
        const vga = machine.devices.find((d) => d.model === "VGA") as StdVga;
        if (mode === "vbe") {
          assert.equal(machine.memory.read16(0x7e00), 0x004f, "the VGA BIOS set the mode");
          assert.deepEqual([1, 2, 3].map((i) => vga.vbe.read(i)), [640, 480, 32]);
        }
        const oursFile = path.join(dir, "vmkit.ppm");
        await machine.findService(DISPLAY)!.screendump(oursFile);
        assert.equal(vga.console.mode, { vbe: "vbe", "13h": "vga256", "12h": "vga16" }[mode]);

        const theirsFile = path.join(dir, "qemu.ppm");
        const serialLog = path.join(dir, "serial.log");
        await qemuScreendump({
          args: qemuDiskGuestArgs("std", disk, serialLog),
          dir,
          readyFile: serialLog,
          ready: DONE,
          dumpFile: theirsFile,
          width,
          height,
        });
        const ours = await Deno.readFile(oursFile);
        const theirs = await Deno.readFile(theirsFile);
        const a = decodePpm(ours);
        const b = decodePpm(theirs);
        assert.deepEqual([a.width, a.height], [width, height]);
        assert.deepEqual([b.width, b.height], [width, height]);
        // The pattern is there (not a black screen on both sides).
        assert.ok(
          new Set(a.pixels).size >= (mode === "12h" ? 8 : 100),
          "the guest's pattern is drawn",
        );
        let diff = 0;
        for (let i = 0; i < a.pixels.length; i++) if (a.pixels[i] !== b.pixels[i]) diff++;
        assert.equal(diff, 0, "pixels that differ from QEMU's screendump");
        assert.deepEqual(ours, theirs);
      } finally {
        await cleanup();
      }
    },
  });
}
