// The example format plugins under the names vmkit answers to: qemu-img (with --plugin and
// VMKIT_PLUGINS) and qemu-system-x86_64, which boots a guest from a qed disk

import { SEABIOS, skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { bootSector, HAVE_BIOS, runProgramUntil } from "../../tests/boot/boot_util.ts";
import { HAVE_QEMU_IMG, MAIN, runToolOk, runVmkit, tempDir } from "../../tests/test_util.ts";
import { examplePlugin } from "./test_util.ts";

const QED = examplePlugin("qed.ts");
const PARALLELS = examplePlugin("parallels.ts");
const NO_QEMU_IMG = HAVE_QEMU_IMG
  ? ""
  : " (ignored: qemu-img is missing; apt-get install qemu-utils)";
const withoutDiskSize = (t: string) => t.replace(/^disk size: .*$/m, "");

Deno.test({
  name:
    `vmkit started as qemu-img loads the example formats from --plugin and VMKIT_PLUGINS${NO_QEMU_IMG}`,
  ignore: skipUnless(import.meta, "qemu-img"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const asQemuImg = (args: string[], env?: Record<string, string>) =>
        runVmkit(args, { cwd: dir, argv0: "qemu-img", env });
      const created = await asQemuImg(["--plugin", QED, "create", "-f", "qed", "a.qed", "3M"]);
      assert.equal(created.code, 0, created.stderr);
      const info = await asQemuImg(["--plugin", QED, "info", "a.qed"]);
      assert.equal(info.code, 0, info.stderr);
      const real = await runToolOk("qemu-img", ["info", "a.qed"], dir);
      assert.equal(withoutDiskSize(info.stdout), withoutDiskSize(real.stdout));

      const env = { VMKIT_PLUGINS: `${QED}:${PARALLELS}` };
      const made = await asQemuImg(["create", "-f", "parallels", "b.hdd", "4M"], env);
      assert.equal(made.code, 0, made.stderr);
      const check = await asQemuImg(["check", "b.hdd"], env);
      assert.equal(check.code, 0, check.stderr);
      await runToolOk("qemu-img", ["check", "-f", "parallels", "b.hdd"], dir);
      // Without the plugin the name is unknown, as in a qemu-img built without the driver.
      const bare = await asQemuImg(["create", "-f", "qed", "c.qed", "1M"]);
      assert.notEqual(bare.code, 0);
      assert.match(bare.stderr, /^qemu-img: .*qed/);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "vmkit started as qemu-system-x86_64 boots a boot sector from a qed disk given by --plugin" +
    NO_QEMU_IMG + (HAVE_BIOS ? "" : " (ignored: no SeaBIOS; apt-get install seabios)"),
  ignore: skipUnless(import.meta, "qemu-img", SEABIOS),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const image = new Uint8Array(1 << 20);
      image.set(bootSector("... booted from a qed disk"));
      await Deno.writeFile(path.join(dir, "boot.raw"), image);
      // Real qemu-img writes the qed image; the plugin reads it inside the guest's IDE disk.
      await runToolOk("qemu-img", ["convert", "-O", "qed", "boot.raw", "boot.qed"], dir);
      const program = path.join(dir, "qemu-system-x86_64");
      await Deno.symlink(Deno.execPath(), program);
      const until = /booted from a qed disk/;
      const out = await runProgramUntil(
        program,
        [
          "run",
          "-A",
          "--quiet",
          MAIN,
          "--plugin",
          QED,
          "-m",
          "64",
          "-nographic",
          "-nodefaults",
          "-serial",
          "stdio",
          "-drive",
          `file=${path.join(dir, "boot.qed")},format=qed,if=ide`,
        ],
        until,
        120_000,
      );
      assert.match(out, until, out);
    } finally {
      await cleanup();
    }
  },
});
