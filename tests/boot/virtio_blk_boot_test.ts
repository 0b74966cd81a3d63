// SeaBIOS boots from a virtio-blk disk (a qcow2 overlay on a raw base) next to virtio-net and a balloon

import { SEABIOS, skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { bootSector, bootSectorOverlay, NEEDS_BIOS, runVmkitUntil } from "./boot_util.ts";
import { tempDir } from "../test_util.ts";

Deno.test({
  name:
    `vmkit system-x86_64 boots a virtio-blk qcow2 overlay through SeaBIOS's virtio driver${NEEDS_BIOS}`,
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const top = await bootSectorOverlay(dir, "hello from a virtio-blk boot sector", 4 << 20);
      const out = await runVmkitUntil(
        [
          "system-x86_64",
          "-nographic",
          "-M",
          "pc",
          "-m",
          "256",
          "-drive",
          `file=${top},if=virtio,format=qcow2`,
          "-net",
          "nic,model=virtio",
          "-net",
          "user",
          "-device",
          "virtio-balloon",
        ],
        /hello from a virtio-blk boot sector/,
        90_000,
      );
      assert.match(out, /SeaBIOS \(version/, out);
      assert.match(out, /Booting from Hard Disk\.\./, out);
      assert.match(out, /hello from a virtio-blk boot sector/, out);
      assert.doesNotMatch(out, /warning/, out);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `vmkit system-x86_64 boots -device virtio-blk-pci,disable-modern=on through the legacy interface${NEEDS_BIOS}`,
  ignore: skipUnless(import.meta, SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("hello over legacy virtio"));
      const disk = path.join(dir, "disk.raw");
      await Deno.writeFile(disk, image);
      const out = await runVmkitUntil(
        [
          "system-x86_64",
          "-nographic",
          "-nodefaults",
          "-m",
          "64",
          "-drive",
          `file=${disk},format=raw,if=none,id=d0,cache=writethrough`,
          "-device",
          "virtio-blk-pci,drive=d0,disable-modern=on",
        ],
        /hello over legacy virtio/,
        90_000,
      );
      assert.match(out, /hello over legacy virtio/, out);
    } finally {
      await cleanup();
    }
  },
});
