// The monitor's media and power commands as a Linux guest sees them: blockdev-change-medium
// swaps the disc the guest mounts, eject leaves it without one (DEVICE_TRAY_MOVED each
// time), and system_powerdown's ACPI power button reaches Linux's button driver, which
// the guest answers by powering off

import assert from "node:assert/strict";
import * as path from "node:path";
import { haveProgram, runCommand, tempDir } from "../test_util.ts";
import {
  BOOT_TIMEOUT_MS,
  GUESTS,
  INITRD,
  ISO,
  ISO_MARKER_TEXT,
  KERNEL,
  missingFiles,
  SHELL_PROMPT,
} from "../boot/guest_util.ts";
import { QmpClient, Vm } from "./vm_util.ts";

const DEBS = path.join(GUESTS, "debs");

function kernelDeb(): string | undefined {
  try {
    return [...Deno.readDirSync(DEBS)].map((e) => e.name)
      .find((n) => n.startsWith("linux-image-") && n.endsWith(".deb"));
  } catch {
    return undefined;
  }
}

const whyNot = missingFiles([KERNEL, INITRD, ISO]) ||
  (kernelDeb() ? "" : `no linux-image deb in ${DEBS}: run tools/fetch_guests.sh`) ||
  ["xorriso", "cpio", "dpkg-deb"].filter((p) => !haveProgram(p)).map((p) => `${p} is not installed`)
    .join(", ");

/**
 * The test initramfs with the kernel's ACPI button and evdev modules appended as a
 * second cpio archive (Linux unpacks concatenated archives in order).
 */
async function initrdWithButton(dir: string): Promise<string> {
  const root = path.join(dir, "extra");
  const unpacked = path.join(dir, "deb");
  await Deno.mkdir(path.join(root, "lib", "modules"), { recursive: true });
  await Deno.mkdir(unpacked);
  const tar = await runCommand("sh", [
    "-c",
    `dpkg-deb --fsys-tarfile '${path.join(DEBS, kernelDeb()!)}' | tar -x -C '${unpacked}' ` +
    "--wildcards '*/drivers/acpi/button.ko' '*/drivers/input/evdev.ko'",
  ]);
  assert.equal(tar.code, 0, tar.stderr);
  const found = await runCommand("find", [unpacked, "-name", "*.ko"]);
  for (const ko of found.stdout.trim().split("\n")) {
    await Deno.copyFile(ko, path.join(root, "lib", "modules", path.basename(ko)));
  }
  const cpio = path.join(dir, "extra.cpio");
  const made = await runCommand("sh", [
    "-c",
    `cd '${root}' && find lib | cpio -o -H newc -R 0:0 --quiet > '${cpio}'`,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const combined = path.join(dir, "initrd-button");
  // The kernel finds an uncompressed archive only at a 4-byte boundary; zeroes pad to it.
  const a = await Deno.readFile(INITRD), b = await Deno.readFile(cpio);
  const at = Math.ceil(a.length / 4) * 4;
  const out = new Uint8Array(at + b.length);
  out.set(a);
  out.set(b, at);
  await Deno.writeFile(combined, out);
  return combined;
}

Deno.test({
  name: "a Linux guest sees change and eject on its CD-ROM and powers off on system_powerdown",
  ignore: whyNot !== "",
  async fn() {
    if (whyNot) return;
    const { dir, cleanup } = await tempDir();
    let vm: Vm | undefined;
    let qmp: QmpClient | undefined;
    try {
      const discDir = path.join(dir, "disc");
      await Deno.mkdir(discDir);
      await Deno.writeTextFile(path.join(discDir, "VMKIT-ISO.TXT"), "SECOND-DISC-MARKER\n");
      const iso2 = path.join(dir, "second.iso");
      const x = await runCommand("xorriso", ["-as", "mkisofs", "-quiet", "-o", iso2, discDir]);
      assert.equal(x.code, 0, x.stderr);
      const initrd = await initrdWithButton(dir);
      const qmpPath = path.join(dir, "qmp.sock");
      vm = new Vm([
        "-M",
        "pc",
        "-m",
        "256",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        KERNEL,
        "-initrd",
        initrd,
        "-append",
        "console=ttyS0 panic=-1 quiet guest.shell=1",
        "-cdrom",
        ISO,
        "-net",
        "none",
        "-qmp",
        `unix:${qmpPath},server=on,wait=off`,
      ], path.join(dir, "hmp.sock"));
      qmp = await QmpClient.connect(qmpPath);
      await vm.waitFor(SHELL_PROMPT, BOOT_TIMEOUT_MS);
      const readDisc = async (tag: string) => {
        const from = vm!.text.length;
        await vm!.type(
          "mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null && cat /mnt/VMKIT-ISO.TXT && " +
            `umount /mnt || echo NO-MEDIUM; echo ${tag}-DONE\n`,
        );
        // The lines between the command's echo and its end marker (kernel messages may
        // come between them too).
        const m = await vm!.waitFor(new RegExp(`\\n([\\s\\S]*?)\\r?\\n${tag}-DONE`), 180_000, from);
        return m[1].split(/\r?\n/).map((l) => l.trim());
      };
      const one = (lines: string[], want: string) =>
        assert.ok(lines.includes(want), `${want} not in ${JSON.stringify(lines)}`);
      one(await readDisc("FIRST"), ISO_MARKER_TEXT);

      const changed = await qmp.execute("blockdev-change-medium", {
        device: "ide1-cd0",
        filename: iso2,
        format: "raw",
      });
      assert.deepEqual(changed, { return: {} });
      one(await readDisc("SECOND"), "SECOND-DISC-MARKER");

      assert.deepEqual(await qmp.execute("eject", { device: "ide1-cd0" }), { return: {} });
      const third = await readDisc("THIRD");
      one(third, "NO-MEDIUM");
      assert.ok(!third.includes("SECOND-DISC-MARKER"));
      const trays = qmp.events.filter((e) => e.event === "DEVICE_TRAY_MOVED")
        .map((e) => (e.data as Record<string, unknown>)["tray-open"]);
      assert.deepEqual(trays, [true, false, true]);

      // The power button: Linux's ACPI button driver turns it into a key on an input
      // device; the guest powers off when it reads one.
      await vm.type(
        "insmod /lib/modules/evdev.ko; insmod /lib/modules/button.ko; " +
          "for e in /sys/class/input/event*; do grep -q 'Power Button' $e/device/name && " +
          "ev=/dev/input/${e##*/}; done; echo BUTTON-$ev; " +
          "(dd if=$ev bs=16 count=1 of=/dev/null 2>/dev/null; echo POWER-BUTTON-PRESSED; " +
          "poweroff -f) &\n",
      );
      await vm.waitFor(/BUTTON-\/dev\/input\/event\d+/, 120_000);
      assert.deepEqual(await qmp.execute("system_powerdown"), { return: {} });
      await vm.waitFor(/POWER-BUTTON-PRESSED/, 180_000);
      const r = await vm.end();
      assert.equal(r.code, 0, r.stderr);
      const names = qmp.events.map((e) => e.event);
      assert.ok(names.includes("POWERDOWN"), names.join());
      const shutdown = qmp.events.find((e) => e.event === "SHUTDOWN");
      assert.deepEqual(shutdown?.data, { guest: true, reason: "guest-shutdown" });
    } finally {
      qmp?.close();
      vm?.kill();
      await cleanup();
    }
  },
});
