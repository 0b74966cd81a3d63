// The monitor's media commands as a Linux guest sees them: blockdev-change-medium swaps
// the disc the guest mounts, eject leaves it without one (DEVICE_TRAY_MOVED each time)

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { haveProgram, runCommand, tempDir } from "../test_util.ts";
import {
  BOOT_TIMEOUT_MS,
  INITRD,
  ISO,
  ISO_MARKER_TEXT,
  KERNEL,
  missingFiles,
  SHELL_PROMPT,
} from "../boot/guest_util.ts";
import { QmpClient, shellGuestArgs, Vm } from "./vm_util.ts";

const whyNot = missingFiles([KERNEL, INITRD, ISO]) ||
  (haveProgram("xorriso") ? "" : "xorriso is not installed (it makes the second disc)");

Deno.test({
  name: "a Linux guest mounts the disc blockdev-change-medium put in and finds none after eject",
  ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
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
      const qmpPath = path.join(dir, "qmp.sock");
      vm = new Vm(
        shellGuestArgs({ memMiB: 256, quiet: true, devices: ["-cdrom", ISO], qmp: qmpPath }),
        path.join(dir, "hmp.sock"),
      );
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

      // QEMU's quit: the run ends at once, with QMP's SHUTDOWN.
      assert.deepEqual(await qmp.execute("quit"), { return: {} });
      const r = await vm.end();
      assert.equal(r.code, 0, r.stderr);
      const shutdown = qmp.events.find((e) => e.event === "SHUTDOWN");
      assert.deepEqual(shutdown?.data, { guest: false, reason: "host-qmp-quit" });
    } finally {
      qmp?.close();
      vm?.kill();
      await cleanup();
    }
  },
});
