// A Linux framebuffer console on vmkit's screen: Debian's i386 kernel with vesafb (`vga=0x311`) on -vga cirrus and -vga std, compared with QEMU 7.2's screendump

import assert from "node:assert/strict";
import * as path from "node:path";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import { decodePpm, DISPLAY } from "../../core/display.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import x86 from "../../plugins/cpus/x86/mod.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";
import { BOOT_TIMEOUT_MS, INITRD, KERNEL, missingFiles } from "../boot/guest_util.ts";
import { haveProgram, tempDir } from "../test_util.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const whyNot = missingFiles([KERNEL, INITRD]) ||
  (haveProgram("qemu-system-x86_64") ? "" : " (ignored: qemu-system-x86_64 is not installed)");

/**
 * The kernel's console on both tty0 (the framebuffer) and ttyS0 (last, so /dev/console
 * and /init's shell are on the serial line the test types into); vesafb takes VBE mode
 * 0x111 (640x480, 16 bpp) that the kernel's setup code asks the VGA BIOS for; no
 * timestamps and no blinking cursor, so the screen depends only on what is written.
 */
const CMDLINE = "console=tty0 console=ttyS0 vga=0x311 guest.shell=1 printk.time=0 " +
  "vt.global_cursor_default=0 quiet panic=-1";

/** What the test types into the guest's shell: a cleared fb console with known text. */
const COMMANDS = "dmesg -n 1; clear >/dev/tty0; " +
  "printf 'vmkit fbcon test\\n\\n' >/dev/tty0; cat /proc/fb >/dev/tty0; ls / >/dev/tty0; " +
  "echo FB-$(cat /sys/class/graphics/fb0/virtual_size)-TYPED\n";
const SHELL = /VMKIT-GUEST-SHELL/;
const TYPED = /FB-(\d+),(\d+)-TYPED/;

/** Boots the guest on vmkit, types the commands, and writes the screendump to `dump`. */
async function vmkitScreen(vga: "cirrus" | "std", dump: string): Promise<string> {
  const serial = new MemoryChardev("serial0");
  const cpu = x86 as CpuDescriptor;
  const machine = createPcMachine(testConfig({
    ramBytes: 256 << 20,
    firmware: Deno.readFileSync(BIOS),
    serial: [serial],
    vga,
    kernel: {
      kernel: Deno.readFileSync(KERNEL),
      initrd: Deno.readFileSync(INITRD),
      cmdline: CMDLINE,
    },
    createCpu: (m, index) => cpu.create({ memory: m.memory, io: m.io, index }, {}) as CpuBackend,
  }));
  let typed = false;
  serial.onOutput((text) => {
    if (!typed && SHELL.test(text)) {
      typed = true;
      // The UART takes the input as the guest drains its FIFO.
      setTimeout(() => serial.input(COMMANDS), 0);
    }
    if (TYPED.test(text)) machine.requestExit(0);
  });
  // Minutes of interpreter on a shared machine; a guest that never gets there stops here.
  const timer = setTimeout(() => machine.requestExit(1), BOOT_TIMEOUT_MS);
  try {
    await machine.run({ maxInstructions: 40_000_000_000 });
  } finally {
    clearTimeout(timer);
  }
  await machine.findService(DISPLAY)!.screendump(dump);
  return serial.text();
}

/** The same guest on QEMU (TCG), typed into through a unix socket, with an HMP screendump. */
async function qemuScreen(vga: string, dir: string, dump: string): Promise<string> {
  const serialSock = path.join(dir, "serial.sock");
  const monitorSock = path.join(dir, "monitor.sock");
  const child = new Deno.Command("qemu-system-x86_64", {
    args: [
      "-nodefaults",
      "-accel",
      "tcg",
      "-m",
      "256",
      "-vga",
      vga,
      "-display",
      "none",
      "-kernel",
      KERNEL,
      "-initrd",
      INITRD,
      "-append",
      CMDLINE,
      "-chardev",
      `socket,id=s0,path=${serialSock},server=on,wait=off`,
      "-serial",
      "chardev:s0",
      "-monitor",
      `unix:${monitorSock},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let text = "";
  try {
    let conn: Deno.UnixConn | undefined;
    for (let i = 0; i < 100 && !conn; i++) {
      conn = await Deno.connect({ transport: "unix", path: serialSock }).catch(() => undefined);
      if (!conn) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(conn, "QEMU's serial socket");
    const deadline = Date.now() + 180_000;
    const buf = new Uint8Array(4096);
    let typed = false;
    while (Date.now() < deadline && !TYPED.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      if (!typed && SHELL.test(text)) {
        typed = true;
        await conn.write(new TextEncoder().encode(COMMANDS));
      }
    }
    conn.close();
    assert.match(text, TYPED, text.slice(-2000));
    const mon = await Deno.connect({ transport: "unix", path: monitorSock });
    await mon.write(new TextEncoder().encode(`screendump ${dump}\n`));
    const want = "P6\n640 480\n255\n".length + 640 * 480 * 3;
    while (Date.now() < deadline) {
      const size = await Deno.stat(dump).then((s) => s.size, () => 0);
      if (size >= want) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    mon.close();
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await stderr;
  }
  return text;
}

for (const vga of ["cirrus", "std"] as const) {
  Deno.test({
    name:
      `Linux's fb console (vesafb, 640x480x16) on -vga ${vga}: vmkit's screendump is QEMU 7.2's${whyNot}`,
    ignore: whyNot !== "",
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const ours = path.join(dir, "vmkit.ppm");
        const theirs = path.join(dir, "qemu.ppm");
        const qemuLog = await qemuScreen(vga, dir, theirs);
        const log = await vmkitScreen(vga, ours);
        assert.match(log, /FB-640,480-TYPED/, log.slice(-2000));
        assert.match(qemuLog, /FB-640,480-TYPED/);
        const keep = Deno.env.get("VMKIT_KEEP_DUMPS");
        if (keep) {
          await Deno.copyFile(ours, `${keep}/fbcon-${vga}-vmkit.ppm`);
          await Deno.copyFile(theirs, `${keep}/fbcon-${vga}-qemu.ppm`);
        }
        const a = decodePpm(await Deno.readFile(ours));
        const b = decodePpm(await Deno.readFile(theirs));
        assert.deepEqual([a.width, a.height], [640, 480]);
        assert.deepEqual([b.width, b.height], [640, 480]);
        assert.ok(new Set(a.pixels).size >= 2, "text is drawn");
        let diff = 0;
        for (let i = 0; i < a.pixels.length; i++) if (a.pixels[i] !== b.pixels[i]) diff++;
        assert.equal(diff, 0, "pixels that differ from QEMU's screendump");
      } finally {
        await cleanup();
      }
    },
  });
}
