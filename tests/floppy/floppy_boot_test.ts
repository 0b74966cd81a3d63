// A 1.44 MB floppy guest booted with -boot a under vmkit and real qemu-system-i386 7.2: its boot
// sector (floppy_boot.asm) loads sectors through INT 13h (SeaBIOS -> FDC -> DMA channel 2),
// across a track, both heads and the last cylinder, and prints a sum of each load on debugcon

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand, runVmkit, tempDir } from "../test_util.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const FLOPPY_BYTES = 1474560;
const SPT = 18, HEADS = 2;

/** Byte `i` of the test image past the boot sector: a hash, so a misplaced sector changes the sums. */
function patternByte(i: number): number {
  return Number((BigInt(i) * 2654435761n) >> 13n) & 0xff;
}

/** The image: the nasm-built boot sector `asm`, then the pattern, `bytes` long. */
async function buildImage(
  dir: string,
  asm = "floppy_boot.asm",
  bytes = FLOPPY_BYTES,
): Promise<string> {
  const boot = path.join(dir, "boot.bin");
  const out = await runCommand("nasm", [
    "-f",
    "bin",
    "-I",
    `${HERE}/`,
    "-o",
    boot,
    path.join(HERE, asm),
  ]);
  assert.equal(out.code, 0, out.stderr);
  const image = new Uint8Array(bytes);
  for (let i = 512; i < bytes; i++) image[i] = patternByte(i);
  image.set(Deno.readFileSync(boot));
  const file = path.join(dir, `floppy-${bytes}.img`);
  Deno.writeFileSync(file, image);
  return file;
}

/** The line the guest prints for a load of `count` sectors from (c, h, s), computed here. */
function expectedLine(count: number, c: number, h: number, s: number): string {
  // What a 1.44 MB drive gives: sectors in (cylinder, head, sector) order, heads switching at
  // the end of a track (the multi-track read SeaBIOS asks for).
  const first = (c * HEADS + h) * SPT + s - 1;
  return lineFor(Array.from({ length: count }, (_, n) => first + n));
}

/** The guest's line for a successful load of the sectors `lbas`, in order. */
function lineFor(lbas: readonly number[]): string {
  const count = lbas.length;
  let a = 0, b = 0;
  for (const lba of lbas) {
    for (let i = 0; i < 512; i++) {
      // Past the image the controller reads zeroes, as QEMU's does.
      const at = lba * 512 + i;
      a = (a + (at < FLOPPY_BYTES ? patternByte(at) : 0)) & 0xffff;
      b = (b + a) & 0xffff;
    }
  }
  const hex = (v: number, w: number) => v.toString(16).toUpperCase().padStart(w, "0");
  return `R 00 ${hex(count, 2)} 00 ${hex(a, 4)} ${hex(b, 4)}`;
}

/**
 * No display or NIC, `image` as drive A and booted from; a floppy that does not boot ends
 * the run (SeaBIOS reboots at once, -no-reboot exits) instead of leaving SeaBIOS waiting.
 */
function floppyBootArgs(image: string, drive = ""): string[] {
  return [
    "-display",
    "none",
    "-net",
    "none",
    "-drive",
    `file=${image},if=floppy,format=raw${drive}`,
    "-boot",
    "a,reboot-timeout=0",
    "-no-reboot",
  ];
}

async function run(
  program: "qemu" | "vmkit",
  image: string,
  dir: string,
  prefix = "R ",
  more: { drive?: string; args?: string[] } = {},
): Promise<string[]> {
  const log = path.join(dir, `${program}.log`);
  const args = [
    "-M",
    "pc",
    // 8 MiB: an ISA DMA address (24 bits) can point past the end of RAM.
    "-m",
    "8",
    ...floppyBootArgs(image, more.drive),
    ...more.args ?? [],
    "-debugcon",
    `file:${log}`,
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
  ];
  const result = program === "qemu"
    ? await runCommand("qemu-system-i386", ["-accel", "tcg", ...args])
    : await runVmkit(["system-i386", ...args]);
  // isa-debug-exit with 0: exit status (0 << 1) | 1.
  assert.equal(result.code, 1, `${program}: ${result.stderr}`);
  return Deno.readTextFileSync(log).split("\n").filter((l) => l.startsWith(prefix));
}

Deno.test({
  name: "vmkit -fda boots a floppy whose INT 13h loads match qemu-system-i386 7.2 byte for byte",
  ignore: skipUnless(import.meta, "qemu-system-i386", "nasm"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = await buildImage(dir);
      // Each program writes to its own copy.
      const copies = { qemu: `${dir}/qemu.img`, vmkit: `${dir}/vmkit.img` };
      for (const c of Object.values(copies)) await Deno.copyFile(image, c);
      const qemu = await run("qemu", copies.qemu, dir);
      const vmkit = await run("vmkit", copies.vmkit, dir);
      assert.deepEqual(vmkit, qemu);
      // The loads the boot sector asks for (floppy_boot.asm's table), summed here: the rest of
      // track 0, head 1, a 36-sector multi-track load, one going past the end of a track
      // into head 1, and the last sector of the disk.
      assert.deepEqual(qemu.slice(0, 5), [
        expectedLine(17, 0, 0, 2),
        expectedLine(18, 0, 1, 1),
        expectedLine(36, 1, 0, 1),
        expectedLine(20, 2, 0, 1),
        expectedLine(1, 79, 1, 18),
      ]);
      // Past the last sector of the disk QEMU's controller steps to cylinder 80 (its track
      // limit is the track count) and reads zeroes there: sectors 17, 18, then nothing.
      assert.deepEqual(qemu.slice(5, 6), [lineFor([2878, 2879, 2880])]);
      // Cylinder 1's first three sectors written at C10 H1 S17 (a multi-track write that
      // goes on into cylinder 11), then read back.
      assert.deepEqual(qemu.slice(6), [lineFor([36, 37, 38]), lineFor([36, 37, 38])]);
      const written = (10 * HEADS + 1) * SPT + 16;
      const original = Deno.readFileSync(image);
      for (const c of Object.values(copies)) {
        const after = Deno.readFileSync(c);
        assert.deepEqual(
          after.subarray(written * 512, (written + 3) * 512),
          original.subarray(36 * 512, 39 * 512),
        );
        // Nothing else changed.
        after.set(original.subarray(written * 512, (written + 3) * 512), written * 512);
        assert.deepEqual(after, original, c);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "vmkit's FDC answers a guest's bad cylinder, sector, EOT, DMA count and address, absent drive and short-image write as qemu-system-i386 7.2",
  ignore: skipUnless(import.meta, "qemu-system-i386", "nasm"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // floppy_hostile.asm programs the controller itself (DMA, then programmed I/O after
      // SPECIFY turns DMA off); on a 1.44 MB image, one shorter than
      // any format (100 KiB: the 2.88 MB fallback geometry, zeroes past its end, a write past
      // its end fails) and one longer than a 2.88 MB disk.
      for (const bytes of [FLOPPY_BYTES, 100 * 1024, 3 << 20]) {
        const image = await buildImage(dir, "floppy_hostile.asm", bytes);
        const qemu = await run("qemu", image, dir, "C ");
        const vmkit = await run("vmkit", image, dir, "C ");
        assert.equal(qemu.length, 16, `every case answered (${bytes})`);
        assert.deepEqual(vmkit, qemu, `image of ${bytes} bytes`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "vmkit's FDC runs FORMAT TRACK, VERIFY, the SCANs, READ ID, SAVE/RESTORE and DRIVE SPECIFICATION as qemu-system-i386 7.2, and leaves the same image",
  ignore: skipUnless(import.meta, "qemu-system-i386", "nasm"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // floppy_commands.asm drives the controller itself with DMA and with programmed I/O,
      // on drive A and on an empty drive B: a 1.44 MB medium writable, then read-only, a
      // 720 KB one (9 sectors a track, 250 kbit/s) and a 100 KiB one (the 2.88 MB fallback
      // geometry, most sectors past its end).
      const runs = [
        [FLOPPY_BYTES, ""],
        [FLOPPY_BYTES, ",readonly=on"],
        [737280, ""],
        [100 * 1024, ""],
      ];
      for (const [bytes, drive] of runs as [number, string][]) {
        const image = await buildImage(dir, "floppy_commands.asm", bytes);
        const original = Deno.readFileSync(image);
        const copies = { qemu: `${dir}/qemu.img`, vmkit: `${dir}/vmkit.img` };
        for (const c of Object.values(copies)) await Deno.copyFile(image, c);
        const more = { drive, args: ["-drive", "if=floppy,index=1"] };
        const qemu = await run("qemu", copies.qemu, dir, "C ", more);
        const vmkit = await run("vmkit", copies.vmkit, dir, "C ", more);
        assert.equal(qemu.length, 45, `every case answered (${bytes}${drive})`);
        assert.deepEqual(vmkit, qemu, `drive A of ${bytes} bytes${drive}`);
        // The image each leaves behind, byte for byte.
        assert.deepEqual(Deno.readFileSync(copies.vmkit), Deno.readFileSync(copies.qemu));
        // QEMU 7.2's FORMAT TRACK writes nothing (the track reads back as it was); only the
        // WRITE of C5 H0 S1-S2 changes the image, and not on the read-only medium. It lands
        // where 18 sectors a track put it: the guest's last FORMAT set that count, whatever
        // the medium's size.
        const after = Deno.readFileSync(copies.qemu);
        const written = 5 * HEADS * SPT * 512;
        after.set(original.subarray(written, written + 1024), written);
        assert.deepEqual(after, original);
        const [st0, , st2] = qemu[1].split(" ").slice(1).map((b) => parseInt(b, 16));
        assert.deepEqual([st0, st2], [0, 0x08], "SCAN EQUAL hits on its first sector");
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "vmkit refuses a floppy without the 0xaa55 boot signature as qemu-system-i386 7.2 does",
  ignore: skipUnless(import.meta, "qemu-system-i386", "nasm"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = `${dir}/blank.img`;
      await Deno.writeFile(image, new Uint8Array(FLOPPY_BYTES));
      // graphics=off: SeaBIOS's messages on the serial console.
      const args = ["-M", "pc,graphics=off", "-serial", "stdio", ...floppyBootArgs(image)];
      // SeaBIOS's boot lines, past the terminal escapes it writes first.
      const lines = (text: string) =>
        text.split("\n").filter((l) => l.includes("Boot"))
          .map((l) => l.slice(l.indexOf("Boot")).trim());
      const qemu = await runCommand("qemu-system-i386", ["-accel", "tcg", ...args]);
      const vmkit = await runVmkit(["system-i386", ...args]);
      assert.equal(vmkit.code, 0, vmkit.stderr);
      assert.deepEqual(lines(vmkit.stdout), lines(qemu.stdout));
      assert.deepEqual(lines(qemu.stdout).slice(0, 2), [
        "Booting from Floppy...",
        "Boot failed: not a bootable disk",
      ]);
    } finally {
      await cleanup();
    }
  },
});
