// A Linux framebuffer console on vmkit's screen: Debian's i386 kernel with vesafb (`vga=0x311`) on -vga cirrus and -vga std, compared with QEMU 7.2's screendump and, through vncsnapshot, with what QEMU's VNC server shows

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MemoryChardev } from "../../core/chardev.ts";
import type { CpuBackend } from "../../core/cpu.ts";
import { decodePpm, DISPLAY, type PpmImage } from "../../core/display.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import x86 from "../../plugins/cpus/x86/mod.ts";
import { createPcMachine } from "../../plugins/machines/pc.ts";
import { testConfig } from "../../plugins/machines/test_util.ts";
import { BOOT_TIMEOUT_MS, INITRD, KERNEL, missingFiles } from "../boot/guest_util.ts";
import { haveProgram, stopChild, tempDir } from "../test_util.ts";
import { RfbServer } from "../../cli/system/display/rfb_server.ts";
import { channelDistance, freeDisplay, HAVE_VNCSNAPSHOT, vncsnapshot } from "./vnc_util.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const whyNot = missingFiles([KERNEL, INITRD]) ||
  (haveProgram("qemu-system-x86_64") ? "" : " (ignored: qemu-system-x86_64 is not installed)");
const SNAPSHOT_NOTE = HAVE_VNCSNAPSHOT
  ? ""
  : " (vncsnapshot part ignored: apt-get install vncsnapshot libjpeg-turbo-progs)";

/** The largest difference in one channel between two same-size pictures, and how many pixels are off by more than 4. */
function worstChannel(a: PpmImage, b: PpmImage): { worst: number; over4: number } {
  let worst = 0;
  let over4 = 0;
  for (let i = 0; i < a.pixels.length; i++) {
    const d = channelDistance(a.pixels[i], b.pixels[i]);
    if (d > worst) worst = d;
    if (d > 4) over4++;
  }
  return { worst, over4 };
}

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

/**
 * Boots the guest on vmkit, types the commands, and writes the screendump to `dump`;
 * then serves the same screen with vmkit's VNC server and takes it with vncsnapshot.
 */
async function vmkitScreen(
  vga: "cirrus" | "std",
  dir: string,
  dump: string,
): Promise<{ log: string; snapshot: PpmImage | null }> {
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
  const display = machine.findService(DISPLAY)!;
  await display.screendump(dump);
  // The guest stands still now: vmkit's VNC server shows this same screen to vncsnapshot.
  const server = new RfbServer(display, { name: "QEMU" });
  const number = freeDisplay();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 5900 + number });
  const accepting = server.accept(listener);
  try {
    return { log: serial.text(), snapshot: await vncsnapshot(number, dir, "vmkit") };
  } finally {
    listener.close();
    server.close();
    await accepting;
  }
}

/**
 * The same guest on QEMU (TCG), typed into through a unix socket, with an HMP screendump
 * and vncsnapshot's picture from QEMU's own VNC server.
 */
async function qemuScreen(
  vga: string,
  dir: string,
  dump: string,
): Promise<{ log: string; snapshot: PpmImage | null }> {
  const serialSock = path.join(dir, "serial.sock");
  const monitorSock = path.join(dir, "monitor.sock");
  const vncDisplay = freeDisplay();
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
      "-vnc",
      `127.0.0.1:${vncDisplay}`,
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
  let snapshot: PpmImage | null = null;
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
    snapshot = await vncsnapshot(vncDisplay, dir, "qemu");
  } finally {
    await stopChild(child);
    await stderr;
  }
  return { log: text, snapshot };
}

for (const vga of ["cirrus", "std"] as const) {
  Deno.test({
    name:
      `Linux's fb console (vesafb, 640x480x16) on -vga ${vga}: vmkit's screendump is QEMU 7.2's; ` +
      `vncsnapshot sees it through vmkit's VNC server as through QEMU's${whyNot}${SNAPSHOT_NOTE}`,
    ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const ours = path.join(dir, "vmkit.ppm");
        const theirs = path.join(dir, "qemu.ppm");
        const qemu = await qemuScreen(vga, dir, theirs);
        const vmkit = await vmkitScreen(vga, dir, ours);
        assert.match(vmkit.log, /FB-640,480-TYPED/, vmkit.log.slice(-2000));
        assert.match(qemu.log, /FB-640,480-TYPED/);
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
        if (vmkit.snapshot && qemu.snapshot) {
          const ours = vmkit.snapshot;
          const theirs = qemu.snapshot;
          assert.deepEqual([ours.width, ours.height], [640, 480]);
          assert.deepEqual([theirs.width, theirs.height], [640, 480]);
          // The same pixels in the same client through the same JPEG encoder: the same
          // picture. This is the lossless check of what the client received.
          let differ = 0;
          for (let i = 0; i < ours.pixels.length; i++) {
            if (ours.pixels[i] !== theirs.pixels[i]) differ++;
          }
          // Against the screendump, JPEG's loss: at quality 100 every DCT coefficient is
          // kept to within 1 unit, so what remains is the RGB->YCbCr->RGB rounding and the
          // 2x2 chroma subsampling, which the console's grey-on-black text hardly feels.
          const against = worstChannel(a, ours);
          if (Deno.env.get("VNC_TEST_DEBUG")) console.log(vga, { differ, ...against });
          assert.equal(differ, 0, "vncsnapshot's pictures from vmkit's and QEMU's VNC servers");
          assert.ok(
            against.worst <= 8 && against.over4 < a.pixels.length / 1000,
            `vncsnapshot's picture against the screendump: ${JSON.stringify(against)}`,
          );
        }
      } finally {
        await cleanup();
      }
    },
  });
}
