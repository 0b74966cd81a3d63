// `-monitor vc` through a real RFB client: Ctrl-Alt-2 shows the monitor's text console, typed commands are answered on it, Ctrl-Alt-1 gives the guest its screen and keys back; QEMU 7.2 run on the same keys for the layout

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { COLOUR_BLUE, COLOUR_WHITE, TextConsole } from "../../core/text_console.ts";
import { vcFont } from "../../cli/system/monitor.ts";
import { QEMU_VERSION } from "../../cli/version.ts";
import { ENCODING_DESKTOP_SIZE, ENCODING_RAW } from "../../cli/system/display/rfb_server.ts";
import { type ClientFrame, TestRfbClient } from "../../cli/system/display/test_client.ts";
import { haveProgram, MAIN, stopChild, tempDir } from "../test_util.ts";
import {
  echoGuestDisk,
  freeDisplay,
  HAVE_VNCSNAPSHOT,
  NO_ECHO_FIRMWARE,
  vncsnapshot,
  waitForText,
} from "./vnc_util.ts";

const HAVE_QEMU = haveProgram("qemu-system-x86_64");
const SKIP = NO_ECHO_FIRMWARE;
const CONTROL_L = 0xffe3;
const ALT_L = 0xffe9;

async function tap(client: TestRfbClient, keysyms: number[]): Promise<void> {
  for (const k of keysyms) await client.key(k, true);
  for (const k of [...keysyms].reverse()) await client.key(k, false);
}

/** Whole-screen updates until `done` says the frame is right (30 s at most). */
async function frameUntil(
  client: TestRfbClient,
  done: (frame: ClientFrame) => boolean,
  what: string,
): Promise<ClientFrame> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await client.request(false);
    const frame = await client.update();
    // A copy: the client's frame goes on changing with later updates.
    if (done(frame)) return { ...frame, pixels: frame.pixels.slice(), encodings: [] };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Which 8x16 cells of an 80x30 screen hold anything but black (the layout, whatever the font). */
function inkedCells(frame: ClientFrame): string[] {
  const rows: string[] = [];
  for (let r = 0; r < 30; r++) {
    let line = "";
    for (let c = 0; c < 80; c++) {
      let ink = false;
      for (let y = 0; y < 16 && !ink; y++) {
        for (let x = 0; x < 8 && !ink; x++) {
          ink = (frame.pixels[(r * 16 + y) * frame.width + c * 8 + x] & 0xffffff) !== 0;
        }
      }
      line += ink ? "#" : ".";
    }
    rows.push(line.replace(/\.+$/, ""));
  }
  return rows;
}

const COMMAND = "info status";

/**
 * Runs `program` on the echo guest with `-monitor vc -vnc`, switches to console 2,
 * types COMMAND and Return, and returns that screen; then checks Ctrl-Alt-1 gives the
 * guest back its screen and keys, and the keys typed on the monitor never reached it.
 */
async function monitorScreen(vm: "vmkit" | "qemu", dir: string): Promise<ClientFrame> {
  const disk = path.join(dir, `${vm}.img`);
  const serial = path.join(dir, `${vm}.log`);
  await Deno.writeFile(disk, echoGuestDisk());
  const display = freeDisplay();
  const [program, pre] = vm === "vmkit"
    ? [Deno.execPath(), ["run", "-A", MAIN, "system-x86_64"]]
    : ["qemu-system-x86_64", ["-accel", "tcg"]];
  const child = new Deno.Command(program, {
    args: [
      ...pre,
      "-nodefaults",
      "-m",
      "64",
      "-vga",
      "std",
      "-drive",
      `file=${disk},format=raw,if=ide`,
      "-serial",
      `file:${serial}`,
      "-monitor",
      "vc",
      "-vnc",
      `127.0.0.1:${display}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let conn: Deno.Conn | null = null;
  try {
    await waitForText(serial, /READY/, `${vm}: the guest's READY`);
    conn = await Deno.connect({ hostname: "127.0.0.1", port: 5900 + display });
    const client = new TestRfbClient(conn);
    await client.handshake();
    await client.setEncodings([ENCODING_RAW, ENCODING_DESKTOP_SIZE]);
    // SeaBIOS left the guest in 80x25 text mode: 720x400.
    await frameUntil(
      client,
      (f) => f.width === 720 && f.height === 400,
      `${vm}: the VGA text screen`,
    );
    await tap(client, [CONTROL_L, ALT_L, 0x32]);
    await frameUntil(
      client,
      (f) => f.width === 640 && f.height === 480,
      `${vm}: the vc (DesktopSize)`,
    );
    for (const ch of COMMAND) await tap(client, [ch.charCodeAt(0)]);
    await tap(client, [0xff0d]);
    // The answer is on row 3, the new prompt's cursor block on row 4.
    const screen = await frameUntil(
      client,
      (f) => inkedCells(f)[4]?.length === 8,
      `${vm}: the answer to ${COMMAND}`,
    );
    if (vm === "vmkit" && HAVE_VNCSNAPSHOT) {
      // The console shown is the server's, not the client's (as in QEMU): vncsnapshot,
      // connecting now, sees the monitor too (through JPEG: compared cell by cell).
      const snap = await vncsnapshot(display, dir, "vc");
      assert.deepEqual([snap!.width, snap!.height], [640, 480]);
      const dark = (p: number) => ((p >> 16) & 255) + ((p >> 8) & 255) + (p & 255) < 0x60;
      assert.deepEqual(
        inkedCells({ ...snap!, pixels: snap!.pixels.map((p) => (dark(p) ? 0 : p)), encodings: [] }),
        inkedCells(screen),
        "vncsnapshot's picture of the vc",
      );
    }
    // A client connecting now is given the monitor's size at once; Ctrl-Alt-1 from it
    // brings back the guest's screen.
    conn.close();
    conn = await Deno.connect({ hostname: "127.0.0.1", port: 5900 + display });
    const second = new TestRfbClient(conn);
    await second.handshake();
    assert.deepEqual([second.frame.width, second.frame.height], [640, 480]);
    await second.setEncodings([ENCODING_RAW, ENCODING_DESKTOP_SIZE]);
    await tap(second, [CONTROL_L, ALT_L, 0x31]);
    await frameUntil(second, (f) => f.width === 720 && f.height === 400, `${vm}: the VGA again`);
    await tap(second, [0x7a]); // 'z' for the guest: it echoes it
    await waitForText(serial, /READY\r?\n[^]*z/, `${vm}: the guest's echo of z`);
    const log = await Deno.readTextFile(serial);
    assert.equal(
      log.slice(log.indexOf("READY")).replace(/\s/g, ""),
      "READYz",
      `${vm}: keys typed on the monitor reached the guest`,
    );
    return screen;
  } finally {
    conn?.close();
    await stopChild(child);
    await stderr;
  }
}

Deno.test({
  name: `-monitor vc: Ctrl-Alt-2 in a VNC client shows the monitor, answers typed commands, ` +
    `Ctrl-Alt-1 returns to the guest${SKIP}`,
  ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const screen = await monitorScreen("vmkit", dir);
      // Exactly what vmkit's text console draws for that text, glyph row for glyph row.
      const expected = new TextConsole("compat_monitor0", vcFont([]));
      expected.setColours(COLOUR_WHITE, COLOUR_BLUE);
      expected.write("compat_monitor0 console\r\n");
      expected.resetColours();
      expected.write(
        `QEMU ${QEMU_VERSION} monitor - type 'help' for more information\r\n` +
          `(qemu) ${COMMAND}\r\nVM status: running\r\n(qemu) `,
      );
      const want = expected.update().pixels;
      let differ = 0;
      for (let i = 0; i < want.length; i++) if ((screen.pixels[i] & 0xffffff) !== want[i]) differ++;
      assert.equal(differ, 0, "pixels of the vc differing from the text console's rendering");
      if (!HAVE_QEMU) {
        console.log("QEMU layout part ignored: qemu-system-x86_64 is not installed");
        return;
      }
      // QEMU 7.2's screen of the same keys: the same cells hold text (its font differs
      // from the VGA BIOS's in a few glyphs, so cells are compared, not pixels).
      const theirs = inkedCells(await monitorScreen("qemu", dir));
      // Their banner carries Debian's version (7.2.N), vmkit's 7.2.0: the cells of the
      // version number are taken out of row 1 on both sides.
      const version = new TextDecoder().decode(
        (await new Deno.Command("qemu-system-x86_64", { args: ["--version"] }).output()).stdout,
      ).match(/version (\S+)/)?.[1] ?? QEMU_VERSION;
      const ours = inkedCells(screen);
      const cut = (row: string, v: string) => row.slice(0, 5) + row.slice(5 + v.length);
      ours[1] = cut(ours[1], QEMU_VERSION);
      theirs[1] = cut(theirs[1], version);
      assert.deepEqual(ours, theirs);
    } finally {
      await cleanup();
    }
  },
});
