// `-display web` in a real browser: headless chromium shows the guest's screen pixel for pixel as vmkit's screendump, and keys typed on the page reach the guest

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm } from "../../core/display.ts";
import { decodePng } from "../../core/display_png.ts";
import { stopChild, tempDir } from "../test_util.ts";
import { BROWSER, DevTools, freePort, startBrowser } from "./devtools.ts";
import { NO_ECHO_FIRMWARE, spawnEchoGuest, waitForText } from "./vnc_util.ts";

const SKIP = NO_ECHO_FIRMWARE ||
  (BROWSER ? "" : " (ignored: no chromium; apt-get install chromium)");

Deno.test({
  name: `-display web: headless chromium draws the guest's screen as vmkit's screendump and ` +
    `sends typed keys to the guest${SKIP}`,
  ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dir, cleanup } = await tempDir();
    const webPort = freePort();
    const { serialLog, monitorSock, child: vmkit, stderr } = await spawnEchoGuest(
      dir,
      "web-test",
      { web: webPort },
    );
    let browser: Deno.ChildProcess | undefined;
    let devtools: DevTools | undefined;
    try {
      await waitForText(serialLog, /READY/, "the guest to get ready");
      const debugPort = freePort();
      browser = startBrowser(`http://127.0.0.1:${webPort}/`, debugPort, path.join(dir, "chr"));
      devtools = await DevTools.open(debugPort);
      const deadline = Date.now() + 60_000;
      while (Number(await devtools.eval("window.vmkitUpdates ?? 0")) < 1) {
        if (Date.now() > deadline) throw new Error("the page drew no update");
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await devtools.eval("document.title"), "QEMU (web-test)");
      // The canvas, read back as PNG, against vmkit's own screendump.
      const dataUrl = String(
        await devtools.eval("document.getElementById('screen').toDataURL('image/png')"),
      );
      const canvas = await decodePng(
        Uint8Array.from(atob(dataUrl.slice(dataUrl.indexOf(",") + 1)), (c) => c.charCodeAt(0)),
      );
      const monitor = await Deno.connect({ transport: "unix", path: monitorSock });
      const dumpFile = path.join(dir, "vmkit.ppm");
      await monitor.write(new TextEncoder().encode(`screendump ${dumpFile}\n`));
      while ((await Deno.stat(dumpFile).then((s) => s.size, () => 0)) < 720 * 400 * 3) {
        await new Promise((r) => setTimeout(r, 100));
      }
      monitor.close();
      const dump = decodePpm(await Deno.readFile(dumpFile));
      assert.deepEqual([canvas.width, canvas.height], [720, 400]);
      let differ = 0;
      for (let i = 0; i < dump.pixels.length; i++) {
        if (canvas.pixels[i] !== dump.pixels[i]) differ++;
      }
      assert.equal(differ, 0, "pixels where the browser's canvas differs from the screendump");

      // Keys typed into the page reach the guest, which echoes them on COM1.
      for (const c of "web") {
        const code = `Key${c.toUpperCase()}`;
        const vk = c.toUpperCase().charCodeAt(0);
        await devtools.call("Input.dispatchKeyEvent", {
          type: "keyDown",
          key: c,
          code,
          text: c,
          windowsVirtualKeyCode: vk,
        });
        await devtools.call("Input.dispatchKeyEvent", {
          type: "keyUp",
          key: c,
          code,
          windowsVirtualKeyCode: vk,
        });
      }
      await waitForText(serialLog, /READY\r\nweb/, "the keys typed in the browser");
    } finally {
      devtools?.close();
      if (browser) {
        browser.kill("SIGKILL");
        await browser.status;
      }
      await stopChild(vmkit);
      const err = await stderr;
      if (err.trim() !== "") console.error(err);
      await cleanup();
    }
  },
});
