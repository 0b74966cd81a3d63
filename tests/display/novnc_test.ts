// noVNC (Debian's novnc, the HTML5 VNC client) in headless chromium against vmkit's server: the text screen as vmkit's screendump, a key it sends changes the guest's mode, and the new size reaches it as a DesktopSize with the new picture

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, type PpmImage } from "../../core/display.ts";
import { decodePng } from "../../core/display_png.ts";
import { stopChild, tempDir } from "../test_util.ts";
import { BROWSER, DevTools, freePort, startBrowser } from "./devtools.ts";
import { NO_ECHO_FIRMWARE, spawnEchoGuest, waitForText } from "./vnc_util.ts";

const NOVNC = "/usr/share/novnc";
const HAVE_NOVNC = (() => {
  try {
    return Deno.statSync(`${NOVNC}/core/rfb.js`).isFile;
  } catch {
    return false;
  }
})();
const SKIP = NO_ECHO_FIRMWARE ||
  (!BROWSER
    ? " (ignored: no chromium; apt-get install chromium)"
    : !HAVE_NOVNC
    ? " (ignored: noVNC is missing; apt-get install novnc)"
    : "");

/** The page: noVNC's RFB client on vmkit's WebSocket, its canvas and its events for the test. */
function page(wsUrl: string): string {
  return `<!doctype html><html><body style="margin:0"><div id="screen"></div>
<script type="module">
import RFB from "./core/rfb.js";
window.events = [];
const rfb = new RFB(document.getElementById("screen"), ${
    JSON.stringify(wsUrl)
  }, { wsProtocols: [] });
rfb.addEventListener("connect", () => window.events.push("connect"));
rfb.addEventListener("disconnect", (e) => window.events.push("disconnect " + e.detail.clean));
rfb.addEventListener("desktopname", (e) => (window.desktopName = e.detail.name));
window.rfb = rfb;
</script></body></html>`;
}

/** Serves noVNC's files and the page on loopback. */
function serveNoVnc(port: number, html: string): Deno.HttpServer {
  return Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/") {
      return new Response(html, { headers: { "content-type": "text/html" } });
    }
    const file = path.join(NOVNC, path.normalize(url.pathname));
    if (!file.startsWith(`${NOVNC}/`)) return new Response("no", { status: 404 });
    try {
      const body = await Deno.readFile(file);
      const type = file.endsWith(".js") ? "text/javascript" : "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

/** noVNC's canvas, read back as PNG. */
async function canvasPicture(devtools: DevTools): Promise<PpmImage> {
  const dataUrl = String(
    await devtools.eval("document.querySelector('#screen canvas').toDataURL('image/png')"),
  );
  return await decodePng(
    Uint8Array.from(atob(dataUrl.slice(dataUrl.indexOf(",") + 1)), (c) => c.charCodeAt(0)),
  );
}

/** Waits until noVNC's canvas is `width`x`height` and holds `want`'s pixels (but a cursor cell). */
async function waitForPicture(
  devtools: DevTools,
  want: PpmImage,
  cursorCell: boolean,
): Promise<PpmImage> {
  const deadline = Date.now() + 60_000;
  let last: PpmImage | undefined;
  let box = "";
  while (Date.now() < deadline) {
    const size = await devtools.eval(
      "(() => { const c = document.querySelector('#screen canvas'); return c ? [c.width, c.height] : [0, 0]; })()",
    ) as number[];
    if (size[0] === want.width && size[1] === want.height) {
      last = await canvasPicture(devtools);
      let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
      for (let i = 0; i < want.pixels.length; i++) {
        if (last.pixels[i] === want.pixels[i]) continue;
        const x = i % want.width;
        const y = Math.floor(i / want.width);
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
      box = x1 < 0 ? "" : JSON.stringify({ x0, y0, x1, y1 });
      // The text cursor blinks: the two may differ inside one 9x16 cell.
      if (x1 < 0 || (cursorCell && x1 - x0 < 9 && y1 - y0 < 16)) return last;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `noVNC's canvas is not the screendump (${want.width}x${want.height}): ${
      last ? `${last.width}x${last.height}, differing in ${box}` : "no canvas of that size"
    }`,
  );
}

Deno.test({
  name: `noVNC in headless chromium: vmkit's screen pixel for pixel, a key it sends reaches the ` +
    `guest, and the guest's mode change reaches it as a new desktop size${SKIP}`,
  ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, cleanup } = await tempDir();
    const webPort = freePort();
    const { serialLog, monitorSock, child: vmkit, stderr } = await spawnEchoGuest(
      dir,
      "novnc-test",
      { web: webPort },
    );
    const pagePort = freePort();
    const http = serveNoVnc(pagePort, page(`ws://127.0.0.1:${webPort}/websockify`));
    let browser: Deno.ChildProcess | undefined;
    let devtools: DevTools | undefined;
    let monitor: Deno.UnixConn | undefined;
    try {
      await waitForText(serialLog, /READY/, "the guest to get ready");
      monitor = await Deno.connect({ transport: "unix", path: monitorSock });
      const screendump = async (name: string, width: number, height: number) => {
        const file = path.join(dir, name);
        await monitor!.write(new TextEncoder().encode(`screendump ${file}\n`));
        while ((await Deno.stat(file).then((s) => s.size, () => 0)) < width * height * 3) {
          await new Promise((r) => setTimeout(r, 100));
        }
        return decodePpm(await Deno.readFile(file));
      };
      const text = await screendump("text.ppm", 720, 400);
      assert.deepEqual([text.width, text.height], [720, 400]);

      const debugPort = freePort();
      browser = startBrowser(`http://127.0.0.1:${pagePort}/`, debugPort, path.join(dir, "chr"));
      devtools = await DevTools.open(debugPort);
      await waitForPicture(devtools, text, true);
      assert.deepEqual(await devtools.eval("window.events"), ["connect"]);
      assert.equal(await devtools.eval("window.desktopName"), "QEMU (novnc-test)");

      // noVNC sends `m` (QEMU's extended key event: keysym and XT keycode); the guest
      // sets VBE 640x480x32 and fills its first bank.
      await devtools.eval('window.rfb.sendKey(0x6d, "KeyM")');
      await waitForText(serialLog, /MODE/, "the mode change typed through noVNC");
      const vbe = await screendump("vbe.ppm", 640, 480);
      assert.deepEqual([vbe.width, vbe.height], [640, 480]);
      const shown = await waitForPicture(devtools, vbe, false);
      assert.deepEqual([shown.width, shown.height], [640, 480]);
      assert.deepEqual(
        await devtools.eval("[window.rfb._fbWidth, window.rfb._fbHeight]"),
        [640, 480],
        "noVNC's framebuffer took the new desktop size",
      );
      assert.deepEqual(await devtools.eval("window.events"), ["connect"], "still connected");
    } finally {
      monitor?.close();
      devtools?.close();
      if (browser) {
        browser.kill("SIGKILL");
        await browser.status;
      }
      await http.shutdown();
      await stopChild(vmkit);
      const err = await stderr;
      if (err.trim() !== "") console.error(err);
      await cleanup();
    }
  },
});
