// HMP `info roms`: the BIOS by its file name at its address, -option-rom files and the
// Linux loader's ROM as fw_cfg files, in QEMU 7.2's lines and order, against real
// qemu-system-x86_64 7.2 on the same command line (QEMU also lists its kvmvapic.bin and
// its ACPI table blobs, which vmkit does not have)

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { tempDir } from "../test_util.ts";
import { KERNEL } from "../boot/guest_util.ts";
import { hmpBoth } from "./session_util.ts";

/** QEMU's ROMs vmkit has no counterpart of. */
const QEMU_ONLY = /^(fw=genroms\/kvmvapic\.bin|\/rom@etc\/)/;

Deno.test({
  name: "HMP info roms names the BIOS, option ROMs and the Linux loader as QEMU 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const rom = path.join(dir, "test.rom");
      const bytes = new Uint8Array(1024);
      bytes.set([0x55, 0xaa, 2, 0xcb]);
      await Deno.writeFile(rom, bytes);
      const configs = [
        ["-option-rom", rom],
        ...(await Deno.stat(KERNEL).then(() => true, () => false)
          ? [["-kernel", KERNEL, "-append", "console=ttyS0"]]
          : []),
      ];
      for (const [i, config] of configs.entries()) {
        const out = await hmpBoth(dir, `roms${i}`, ["-S", "-net", "none", ...config], [
          "info roms",
          "info roms x",
        ]);
        assert.deepEqual(out.vmkit, out.qemu.filter((l) => !QEMU_ONLY.test(l)), config[0]);
        assert.ok(
          out.vmkit.includes('addr=00000000fffc0000 size=0x040000 mem=rom name="bios-256k.bin"'),
        );
        if (i === 0) assert.ok(out.vmkit.includes(`fw=genroms/${rom} size=0x000400 name="${rom}"`));
      }
    } finally {
      await cleanup();
    }
  },
});
