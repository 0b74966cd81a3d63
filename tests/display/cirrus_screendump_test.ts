// Cirrus SVGA against real QEMU: a nasm guest sets each depth's VBE mode through vgabios-cirrus.bin, runs BitBLTs, write modes 4/5 and the hardware cursor; both screendumps must be equal

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { decodePpm, DISPLAY } from "../../core/display.ts";
import type { CirrusVga } from "../../plugins/devices/vga/mod.ts";
import { tempDir } from "../test_util.ts";
import { runDiskGuest, skipWithoutQemuAndFirmware } from "./disk_guest.ts";
import { qemuScreendump } from "./qemu_screen.ts";
import { qemuDiskGuestArgs } from "./vnc_util.ts";

const SKIP = skipWithoutQemuAndFirmware("vgabios-cirrus.bin", ["nasm"]);
const DONE = /CIRRUS-DONE/;

/** Assembles testdata/cirrus_blt.asm for one depth (`doubleScan`: -DDOUBLESCAN). */
function assemble(bpp: number, out: string, doubleScan = false): void {
  const source = new URL("./testdata/cirrus_blt.asm", import.meta.url).pathname;
  const defines = [`-DBPP=${bpp}`, ...(doubleScan ? ["-DDOUBLESCAN"] : [])];
  const r = new Deno.Command("nasm", { args: ["-f", "bin", ...defines, "-o", out, source] })
    .outputSync();
  if (!r.success) throw new Error(`nasm failed: ${new TextDecoder().decode(r.stderr)}`);
}

/** Runs the guest on vmkit with `-vga cirrus` and writes its screendump to `dump`. */
async function runVmkit(disk: Uint8Array, dump: string): Promise<CirrusVga> {
  const { machine } = await runDiskGuest(disk, "cirrus", DONE);
  await machine.findService(DISPLAY)!.screendump(dump);
  return machine.devices.find((d) => d.model === "cirrus-vga") as CirrusVga;
}

const CASES = [
  ...[8, 15, 16, 24, 32].map((bpp) => ({ bpp, doubleScan: false })),
  ...[8, 15, 16, 24, 32].map((bpp) => ({ bpp, doubleScan: true })),
];

for (const { bpp, doubleScan } of CASES) {
  const what = doubleScan
    ? "the same picture with double scan and a line compare, cursor off,"
    : "fills, copies, ROPs, colour expansion, patterns, system-to-screen and the cursor";
  Deno.test({
    name: `CirrusVga at ${bpp} bpp: ${what} match QEMU 7.2's screendump${SKIP}`,
    ignore: skipUnless(import.meta, { ok: SKIP === "", missing: SKIP }),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const disk = path.join(dir, "disk.img");
        assemble(bpp, disk, doubleScan);
        const oursFile = path.join(dir, "vmkit.ppm");
        const vga = await runVmkit(await Deno.readFile(disk), oursFile);
        assert.equal(vga.console.mode, "svga");
        assert.equal(vga.core.bpp(), bpp);

        const theirsFile = path.join(dir, "qemu.ppm");
        const serialLog = path.join(dir, "serial.log");
        await qemuScreendump({
          args: qemuDiskGuestArgs("cirrus", disk, serialLog),
          dir,
          readyFile: serialLog,
          ready: DONE,
          dumpFile: theirsFile,
          width: 640,
          height: 480,
        });
        if (Deno.env.get("VMKIT_KEEP_DUMPS")) {
          await Deno.copyFile(
            oursFile,
            `${Deno.env.get("VMKIT_KEEP_DUMPS")}/cirrus${bpp}${doubleScan ? "ds" : ""}-vmkit.ppm`,
          );
          await Deno.copyFile(
            theirsFile,
            `${Deno.env.get("VMKIT_KEEP_DUMPS")}/cirrus${bpp}${doubleScan ? "ds" : ""}-qemu.ppm`,
          );
        }
        const a = decodePpm(await Deno.readFile(oursFile));
        const b = decodePpm(await Deno.readFile(theirsFile));
        assert.deepEqual([a.width, a.height], [640, 480]);
        assert.deepEqual([b.width, b.height], [640, 480]);
        assert.ok(new Set(a.pixels).size > 200, "the guest's picture is drawn");
        const wrong: string[] = [];
        for (let i = 0; i < a.pixels.length; i++) {
          if (a.pixels[i] !== b.pixels[i] && wrong.length < 10) {
            wrong.push(
              `(${i % 640},${Math.floor(i / 640)}) ${a.pixels[i].toString(16)} != ${
                b.pixels[i].toString(16)
              }`,
            );
          }
        }
        let diff = 0;
        for (let i = 0; i < a.pixels.length; i++) if (a.pixels[i] !== b.pixels[i]) diff++;
        assert.equal(diff, 0, `pixels that differ from QEMU's screendump: ${wrong.join(", ")}`);
      } finally {
        await cleanup();
      }
    },
  });
}
