// Helpers the VNC tests and bench share: finding programs and free displays, and a disk from a boot sector

import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, type PpmImage } from "../../core/display.ts";
import { MAIN } from "../test_util.ts";
import { AL, Assembler, AX, BX, CX, DX, EAX, EDI, ES } from "../../plugins/machines/x86_asm.ts";

/** True when `program` is on PATH (vncsnapshot has no --version that succeeds). */
export function onPath(program: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(path.join(dir, program)).isFile;
    } catch {
      return false;
    }
  });
}

/** SeaBIOS and its std VGA BIOS, which the echo guest ({@linkcode spawnEchoGuest}) boots with. */
export const ECHO_GUEST_FIRMWARE = ["bios-256k.bin", "vgabios-stdvga.bin"].map((f) =>
  `/usr/share/seabios/${f}`
);

/** A test name's note when the echo guest's firmware is missing ("" when it is there). */
export const NO_ECHO_FIRMWARE = ECHO_GUEST_FIRMWARE.every((f) => {
    try {
      return Deno.statSync(f).isFile;
    } catch {
      return false;
    }
  })
  ? ""
  : " (ignored: SeaBIOS is missing; apt-get install seabios)";

/** The largest difference in one of the red, green and blue bytes of two x8r8g8b8 pixels. */
export function channelDistance(p: number, q: number): number {
  return Math.max(
    Math.abs(((p >> 16) & 255) - ((q >> 16) & 255)),
    Math.abs(((p >> 8) & 255) - ((q >> 8) & 255)),
    Math.abs((p & 255) - (q & 255)),
  );
}

/** A VNC display number (port 5900 + N) free on loopback, searched from a random start. */
export function freeDisplay(from = 40): number {
  for (let n = from + Math.floor(Math.random() * 50); n < from + 200; n++) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port: 5900 + n }).close();
      return n;
    } catch {
      // taken
    }
  }
  throw new Error("no free VNC display");
}

/** A 1 MiB raw disk whose first sector is `code` with the 0x55 0xAA boot signature. */
export function bootSectorDisk(code: Uint8Array): Uint8Array {
  if (code.length > 510) throw new RangeError(`boot sector code is ${code.length} bytes`);
  const disk = new Uint8Array(1 << 20);
  disk.set(code);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/** QEMU's arguments for a disk guest as the display tests run it (TCG, 64 MiB, COM1 to a file). */
export function qemuDiskGuestArgs(vga: string, disk: string, serialLog: string): string[] {
  return [
    "-nodefaults",
    "-accel",
    "tcg",
    "-m",
    "64",
    "-vga",
    vga,
    "-drive",
    `file=${disk},format=raw,if=ide`,
    "-serial",
    `file:${serialLog}`,
  ];
}

/**
 * A boot sector that says READY on COM1, then echoes each key the BIOS reads (int 16h)
 * to COM1; `m` switches to VBE mode 0x142 (640x480x32), fills the first bank and says MODE.
 */
export function echoGuestDisk(): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  a.mov(DX, 0x3f8);
  for (const c of "READY\r\n") {
    a.mov(AL, c.charCodeAt(0));
    a.out(DX, AL);
  }
  a.label("key");
  a.mov(AX, 0);
  a.db(0xcd, 0x16); // int 16h: wait for a key, AL = its character
  a.cmp(AL, 0x6d);
  a.jcc("z", "mode");
  a.mov(DX, 0x3f8);
  a.out(DX, AL);
  a.jmp("key");
  a.label("mode");
  a.mov(AX, 0x4f02);
  a.mov(BX, 0x142);
  a.db(0xcd, 0x10);
  a.mov(AX, 0xa000);
  a.mov(ES, AX);
  a.xor(EDI, EDI);
  a.mov(CX, 0x4000);
  a.label("fill");
  a.mov(EAX, EDI);
  a.shl(EAX, 5);
  a.stosd();
  a.loop("fill");
  a.mov(DX, 0x3f8);
  for (const c of "MODE\r\n") {
    a.mov(AL, c.charCodeAt(0));
    a.out(DX, AL);
  }
  a.label("halt");
  a.hlt();
  a.jmp("halt");
  return bootSectorDisk(a.assemble());
}

export async function waitForText(file: string, pattern: RegExp, what: string): Promise<void> {
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(file).catch(() => "");
    if (pattern.test(text)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** An echo guest {@linkcode spawnEchoGuest} started: its files, the vmkit child and its stderr. */
export interface EchoGuest {
  /** The boot disk, `boot.img` ({@linkcode echoGuestDisk}). */
  disk: string;
  /** COM1's file: READY, then the keys the guest read. */
  serialLog: string;
  /** HMP's unix socket. */
  monitorSock: string;
  child: Deno.ChildProcess;
  /** All the child writes to stderr, once it has ended. */
  stderr: Promise<string>;
}

/**
 * Writes {@linkcode echoGuestDisk} as `boot.img` in `dir` and starts vmkit on it: std VGA,
 * 64 MiB, COM1 to `serial.log`, HMP on `monitor.sock`, the VM named `name`, its screen
 * out through `-display web=127.0.0.1:PORT` (`{ web: PORT }`) or a VNC server on loopback
 * with no local display (`{ vnc: DISPLAY }`).
 */
export async function spawnEchoGuest(
  dir: string,
  name: string,
  screen: { web: number } | { vnc: number },
): Promise<EchoGuest> {
  const disk = path.join(dir, "boot.img");
  await Deno.writeFile(disk, echoGuestDisk());
  const serialLog = path.join(dir, "serial.log");
  const monitorSock = path.join(dir, "monitor.sock");
  const display = "web" in screen
    ? ["-display", `web=127.0.0.1:${screen.web}`]
    : ["-display", "none", "-vnc", `127.0.0.1:${screen.vnc}`];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "system-x86_64",
      "-nodefaults",
      "-m",
      "64",
      "-vga",
      "std",
      "-name",
      name,
      ...display,
      "-drive",
      `file=${disk},format=raw,if=ide`,
      "-serial",
      `file:${serialLog}`,
      "-monitor",
      `unix:${monitorSock},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { disk, serialLog, monitorSock, child, stderr: new Response(child.stderr).text() };
}

/** vncsnapshot and djpeg (to read the JPEG it writes) are both installed. */
export const HAVE_VNCSNAPSHOT = onPath("vncsnapshot") && onPath("djpeg");

/**
 * vncsnapshot (TightVNC's client) takes the screen of the VNC server at `display` on
 * loopback, asking for lossless Tight (no JPEG on the wire); it can only write a JPEG
 * file, which djpeg decodes. Null when the tools are missing.
 */
export async function vncsnapshot(
  display: number,
  dir: string,
  name: string,
): Promise<PpmImage | null> {
  if (!HAVE_VNCSNAPSHOT) return null;
  const jpeg = path.join(dir, `${name}.jpg`);
  const snap = await new Deno.Command("vncsnapshot", {
    args: [
      "-quiet",
      "-nojpeg",
      "-encodings",
      "tight copyrect",
      "-quality",
      "100",
      `127.0.0.1:${display}`,
      jpeg,
    ],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.equal(snap.code, 0, `vncsnapshot: ${new TextDecoder().decode(snap.stderr)}`);
  const ppm = await new Deno.Command("djpeg", { args: ["-pnm", jpeg], stdout: "piped" }).output();
  assert.equal(ppm.code, 0, "djpeg");
  return decodePpm(ppm.stdout);
}
