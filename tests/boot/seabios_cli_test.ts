// Boot tests through the command line: SeaBIOS to its boot menu, and a boot sector the test builds

import { SEABIOS, skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { bootSector, bootSectorOverlay, NEEDS_BIOS, runVmkitUntil } from "./boot_util.ts";
import { tempDir } from "../test_util.ts";

Deno.test({
  name:
    `vmkit system-x86_64 -nographic -m 128 prints the SeaBIOS banner and its boot attempts${NEEDS_BIOS}`,
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const out = await runVmkitUntil(
      ["system-x86_64", "-nographic", "-m", "128"],
      /No bootable device|Booting from Hard Disk/,
      60_000,
    );
    assert.match(out, /SeaBIOS \(version [^)]+\)/, out);
    assert.match(out, /Booting from (Hard Disk|Floppy)\.\.\./, out);
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 boots a disk whose boot sector the test built and shows its message${NEEDS_BIOS}`,
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = path.join(dir, "boot.raw");
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("vmkit boot sector test: hello"));
      await Deno.writeFile(disk, image);
      const out = await runVmkitUntil(
        [
          "system-x86_64",
          "-nographic",
          "-m",
          "64",
          "-drive",
          `file=${disk},format=raw,if=ide,index=0,media=disk`,
        ],
        /vmkit boot sector test: hello/,
        60_000,
      );
      assert.match(out, /Booting from Hard Disk\.\./, out);
      assert.match(out, /vmkit boot sector test: hello/, out);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 boots from a qcow2 overlay whose backing file holds the boot sector${NEEDS_BIOS}`,
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const top = await bootSectorOverlay(
        dir,
        "booted through qcow2 and its backing file",
        1 << 20,
      );
      const out = await runVmkitUntil(
        [
          "system-x86_64",
          "-nographic",
          "-m",
          "64",
          "-drive",
          `file=${top},format=qcow2,if=ide,cache=writethrough`,
        ],
        /booted through qcow2 and its backing file/,
        60_000,
      );
      assert.match(out, /booted through qcow2 and its backing file/, out);
    } finally {
      await cleanup();
    }
  },
});
