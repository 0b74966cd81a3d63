// Real QEMU as the display oracle: run a guest until a log file says it is ready, then take its HMP screendump

import { stopChild } from "../test_util.ts";
import assert from "node:assert/strict";
import * as path from "node:path";

/**
 * Runs `qemu-system-x86_64 args` with `-display none` and an HMP monitor on a unix
 * socket in `dir`, waits until `readyFile` matches `ready`, then has the monitor write
 * `screendump dumpFile` of `width`x`height` pixels and stops QEMU.
 */
export async function qemuScreendump(options: {
  args: string[];
  dir: string;
  readyFile: string;
  ready: RegExp;
  dumpFile: string;
  width: number;
  height: number;
  /** Also `screendump FILE -f png` into this file, right after the PPM. */
  pngFile?: string;
}): Promise<void> {
  const socket = path.join(options.dir, "monitor.sock");
  const child = new Deno.Command("qemu-system-x86_64", {
    args: [
      ...options.args,
      "-display",
      "none",
      "-monitor",
      `unix:${socket},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const deadline = Date.now() + 60_000;
    let text = "";
    while (Date.now() < deadline && !options.ready.test(text)) {
      await new Promise((r) => setTimeout(r, 200));
      text = await Deno.readTextFile(options.readyFile).catch(() => "");
    }
    assert.match(text, options.ready, "the QEMU guest did not get ready");
    const conn = await Deno.connect({ transport: "unix", path: socket });
    try {
      const png = options.pngFile ? `screendump ${options.pngFile} -f png\n` : "";
      await conn.write(new TextEncoder().encode(`screendump ${options.dumpFile}\n${png}`));
      // The dump is complete when the file has its header and all the pixels.
      const header = `P6\n${options.width} ${options.height}\n255\n`;
      const want = header.length + options.width * options.height * 3;
      while (Date.now() < deadline) {
        const size = await Deno.stat(options.dumpFile).then((s) => s.size, () => 0);
        const pngSize = options.pngFile
          ? await Deno.stat(options.pngFile).then((s) => s.size, () => 0)
          : 1;
        if (size >= want && pngSize > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // QEMU writes the PNG through libpng in one go after creating it: give it a moment.
      if (options.pngFile) await new Promise((r) => setTimeout(r, 500));
    } finally {
      conn.close();
    }
  } finally {
    await stopChild(child);
    await stderr;
  }
}
