// vmkit's VNC server with real clients and a real guest: vncsnapshot and an RFB client see the screen QEMU shows; keys reach the guest; a mode change resizes the client

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, type PpmImage } from "../../core/display.ts";
import { decodePng } from "../../core/display_png.ts";
import { TestRfbClient } from "../../cli/system/display/test_client.ts";
import { haveProgram, stopChild, tempDir } from "../test_util.ts";
import { qemuScreendump } from "./qemu_screen.ts";
import {
  channelDistance,
  freeDisplay,
  HAVE_VNCSNAPSHOT,
  NO_ECHO_FIRMWARE,
  qemuDiskGuestArgs,
  spawnEchoGuest,
  vncsnapshot,
  waitForText,
} from "./vnc_util.ts";

const SKIP = NO_ECHO_FIRMWARE ||
  (haveProgram("qemu-system-x86_64") ? "" : " (ignored: qemu-system-x86_64 is not installed)");
const SNAPSHOT_NOTE = HAVE_VNCSNAPSHOT
  ? ""
  : " (vncsnapshot part ignored: apt-get install vncsnapshot libjpeg-turbo-progs)";

/**
 * A loopback proxy in front of port `to` that records what its client sends: the
 * encodings vncsnapshot asks for are read from its SetEncodings message.
 */
function recordingProxy(to: number): { display: number; sent: () => Uint8Array; close(): void } {
  const display = freeDisplay();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 5900 + display });
  const chunks: Uint8Array[] = [];
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port: to });
      conns.push(client, server);
      const pipe = async (from: Deno.Conn, into: Deno.Conn, record: boolean) => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await from.read(buf);
            if (n === null) break;
            if (record) chunks.push(buf.slice(0, n));
            let at = 0;
            while (at < n) at += await into.write(buf.subarray(at, n));
          }
        } catch { /* closed */ }
        try {
          into.close();
        } catch { /* closed */ }
      };
      pipe(client, server, true);
      pipe(server, client, false);
    }
  })().catch(() => {});
  return {
    display,
    sent: () => {
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let o = 0;
      for (const c of chunks) {
        all.set(c, o);
        o += c.length;
      }
      return all;
    },
    close: () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

/** The encodings in a client's SetEncodings, read from everything it sent. */
function clientEncodings(sent: Uint8Array): number[] {
  const view = new DataView(sent.buffer);
  const version = new TextDecoder().decode(sent.subarray(0, 12));
  let at = 12 + (version === "RFB 003.003\n" ? 1 : 2); // security choice (3.7+), ClientInit
  while (at < sent.length) {
    const type = sent[at];
    if (type === 0) at += 20;
    else if (type === 3) at += 10;
    else if (type === 2) {
      const count = view.getUint16(at + 2);
      return Array.from({ length: count }, (_, i) => view.getInt32(at + 4 + 4 * i));
    } else break;
  }
  return [];
}

/** The bounding box of the pixels where two same-size pictures differ (null when none). */
function diffBox(a: { width: number; pixels: Uint32Array }, b: { pixels: Uint32Array }) {
  let box: { x0: number; y0: number; x1: number; y1: number } | null = null;
  for (let i = 0; i < a.pixels.length; i++) {
    if (a.pixels[i] === b.pixels[i]) continue;
    const x = i % a.width;
    const y = Math.floor(i / a.width);
    box ??= { x0: x, y0: y, x1: x, y1: y };
    box.x0 = Math.min(box.x0, x);
    box.y0 = Math.min(box.y0, y);
    box.x1 = Math.max(box.x1, x);
    box.y1 = Math.max(box.y1, y);
  }
  return box;
}

/** The text cursor's blink: pictures may differ inside one 9x16 cell and nowhere else. */
function assertSameButCursor(
  ours: { width: number; height: number; pixels: Uint32Array },
  theirs: PpmImage,
  what: string,
): void {
  assert.deepEqual([theirs.width, theirs.height], [ours.width, ours.height], what);
  const box = diffBox(ours, theirs);
  if (box) {
    assert.ok(
      box.x1 - box.x0 < 9 && box.y1 - box.y0 < 16,
      `${what}: pixels differ beyond the cursor cell: ${JSON.stringify(box)}`,
    );
  }
}

Deno.test({
  name: `-vnc: vncsnapshot and an RFB client see SeaBIOS's text screen as vmkit's and QEMU's ` +
    `screendumps do; typed keys reach the guest; a mode change resizes the client${SKIP}` +
    SNAPSHOT_NOTE,
  ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, cleanup } = await tempDir();
    const display = freeDisplay();
    const { disk, serialLog, monitorSock, child: vmkit, stderr } = await spawnEchoGuest(
      dir,
      "vnc-test",
      { vnc: display },
    );
    try {
      await waitForText(serialLog, /READY/, "vmkit's guest to get ready");
      // vmkit's own screendump, PPM and PNG, through the monitor.
      const monitor = await Deno.connect({ transport: "unix", path: monitorSock });
      const ppmFile = path.join(dir, "vmkit.ppm");
      const pngFile = path.join(dir, "vmkit.png");
      await monitor.write(
        new TextEncoder().encode(`screendump ${ppmFile}\nscreendump ${pngFile} -f png\n`),
      );
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const sizes = await Promise.all(
          [ppmFile, pngFile].map((f) => Deno.stat(f).then((s) => s.size, () => 0)),
        );
        if (sizes[0] >= 720 * 400 * 3 && sizes[1] > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 300)); // the PNG is written in one call
      const dump = decodePpm(await Deno.readFile(ppmFile));
      assert.deepEqual([dump.width, dump.height], [720, 400], "text mode 80x25 of 9x16 cells");
      const png = await decodePng(await Deno.readFile(pngFile));
      assert.deepEqual(png, dump, "screendump -f png holds the same pixels as the PPM");

      // An RFB client taking ZRLE: pixel for pixel the screendump.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: 5900 + display });
      const client = new TestRfbClient(conn);
      assert.equal(await client.handshake(), "QEMU (vnc-test)");
      await client.setEncodings([16, 1, -223]);
      await client.request(false);
      const frame = await client.update();
      assert.deepEqual([frame.width, frame.height], [720, 400]);
      assert.equal(diffBox(frame, dump), null, "the VNC frame is the screendump");

      // vncsnapshot (TightVNC's client: Tight, CopyRect, raw) writes a JPEG: within JPEG's error.
      if (HAVE_VNCSNAPSHOT) {
        const proxy = recordingProxy(5900 + display);
        let shot: PpmImage | null;
        try {
          // Tight (lossless, no JPEG) is what it asks of vmkit's server.
          shot = await vncsnapshot(proxy.display, dir, "snap");
        } finally {
          proxy.close();
        }
        assert.ok(shot);
        // The server answers in the first of Tight (7), ZRLE (16) and raw (0) the client lists.
        const asked = clientEncodings(proxy.sent());
        assert.equal(
          asked.find((e) => e === 0 || e === 7 || e === 16),
          7,
          `vncsnapshot's encodings: ${asked}`,
        );
        assert.deepEqual([shot.width, shot.height], [720, 400]);
        let worst = 0;
        let wrongClass = 0;
        for (let i = 0; i < dump.pixels.length; i++) {
          const a = dump.pixels[i];
          const b = shot.pixels[i];
          worst = Math.max(worst, channelDistance(a, b));
          // Grey text on black: each JPEG pixel is nearer the right one of the two.
          if ((a === 0) !== (((b >> 8) & 255) < 0x54)) wrongClass++;
        }
        if (Deno.env.get("VNC_TEST_DEBUG")) console.log("vncsnapshot", { worst, wrongClass });
        assert.ok(worst <= 8, `vncsnapshot's picture is off by up to ${worst} in a channel`);
        assert.ok(
          wrongClass < dump.pixels.length / 1000,
          `vncsnapshot's picture: ${wrongClass} pixels on the wrong side (worst error ${worst})`,
        );
      }

      // QEMU, same guest, same moment: its screendump is vmkit's VNC frame (but the blinking
      // cursor). It boots a copy of the disk: the running vmkit holds the disk's image locks,
      // and QEMU would refuse it as it refuses a disk another QEMU uses.
      const qemuLog = path.join(dir, "qemu-serial.log");
      const qemuDump = path.join(dir, "qemu.ppm");
      const qemuDisk = path.join(dir, "qemu-disk.img");
      await Deno.copyFile(disk, qemuDisk);
      await qemuScreendump({
        args: [
          ...qemuDiskGuestArgs("std", qemuDisk, qemuLog),
          "-global",
          "apic-common.vapic=off",
        ],
        dir,
        readyFile: qemuLog,
        ready: /READY/,
        dumpFile: qemuDump,
        pngFile: `${qemuDump}.png`,
        width: 720,
        height: 400,
      });
      const qemuFrame = decodePpm(await Deno.readFile(qemuDump));
      if (Deno.env.get("VNC_TEST_DEBUG")) console.log("qemu diff", diffBox(frame, qemuFrame));
      assertSameButCursor(frame, qemuFrame, "QEMU's screendump");
      // QEMU's `screendump -f png` (libpng, its own filters) holds its PPM's pixels: the PNG
      // reader agrees with libpng, and vmkit's PNG (checked above) with QEMU's.
      const qemuPng = await decodePng(await Deno.readFile(`${qemuDump}.png`));
      assert.deepEqual(qemuPng, qemuFrame, "QEMU's PNG and PPM screendumps");

      // Keys typed through the client reach the guest, which echoes them to COM1.
      const typed = "hello";
      for (const c of typed) {
        await client.key(c.charCodeAt(0), true);
        await client.key(c.charCodeAt(0), false);
      }
      await waitForText(serialLog, /READY\r\nhello/, "the typed keys in the guest's echo");
      // Shift+1 is '!' to the guest.
      await client.key(0xffe1, true);
      await client.key(0x21, true);
      await client.key(0x21, false);
      await client.key(0xffe1, false);
      await waitForText(serialLog, /hello!/, "a shifted key");

      // `m`: the guest sets VBE 640x480x32; the client is told the new size and gets the picture.
      await client.key(0x6d, true);
      await client.key(0x6d, false);
      await waitForText(serialLog, /MODE/, "the mode change");
      client.frame.encodings = [];
      for (let i = 0; i < 20 && client.frame.width !== 640; i++) {
        await client.request(true);
        await client.update();
      }
      assert.ok(client.frame.encodings.includes(-223), "a DesktopSize rectangle arrived");
      assert.deepEqual([client.frame.width, client.frame.height], [640, 480]);
      await client.request(false);
      await client.update();
      await monitor.write(new TextEncoder().encode(`screendump ${ppmFile}.2\n`));
      while ((await Deno.stat(`${ppmFile}.2`).then((s) => s.size, () => 0)) < 640 * 480 * 3) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const dump2 = decodePpm(await Deno.readFile(`${ppmFile}.2`));
      assert.equal(diffBox(client.frame, dump2), null, "the VBE picture through VNC");
      conn.close();
      monitor.close();
    } finally {
      await stopChild(vmkit);
      const err = await stderr;
      if (err.trim() !== "") console.error(err);
      await cleanup();
    }
  },
});
