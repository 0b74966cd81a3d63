// savevm and -loadvm on a running Linux guest: the guest counts on its serial console
// and writes each count to its virtio disk; vmkit saves it into the qcow2 disk with the
// monitor's savevm and quits; a new vmkit started with -loadvm continues the count where
// the snapshot was taken, answers its shell, and real qemu-img lists and checks the disk

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { haveProgram, runCommand, tempDir } from "../test_util.ts";
import { shellGuestArgs, Vm } from "./vm_util.ts";
import { BOOT_TIMEOUT_MS, INITRD, KERNEL, missingFiles, SHELL_PROMPT } from "../boot/guest_util.ts";

const whyNot = missingFiles([KERNEL, INITRD]) ||
  (haveProgram("qemu-img") ? "" : "qemu-img is not installed");

function counts(text: string): number[] {
  return [...text.matchAll(/COUNT-(\d+)\r?\n/g)].map((m) => Number(m[1]));
}

Deno.test({
  name:
    "savevm then -loadvm: a Linux guest counting on its console continues the count in a new vmkit",
  ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
  async fn() {
    if (whyNot) return;
    const { dir, cleanup } = await tempDir();
    const disk = path.join(dir, "disk.qcow2");
    const vms: Vm[] = [];
    try {
      const made = await runCommand("qemu-img", ["create", "-f", "qcow2", disk, "64M"]);
      assert.equal(made.code, 0, made.stderr);
      const args = shellGuestArgs({
        memMiB: 256,
        quiet: true,
        noReboot: true,
        devices: ["-drive", `file=${disk},if=virtio,format=qcow2`],
      });
      const first = new Vm(args, path.join(dir, "m1.sock"));
      vms.push(first);
      await first.waitFor(SHELL_PROMPT, BOOT_TIMEOUT_MS);
      // The count runs in the background: each step is on the console and, through
      // virtio-blk with fsync, at the start of the disk.
      await first.type(
        "(i=0; while true; do i=$((i+1)); echo DISK-$i | dd of=/dev/vda conv=fsync " +
          "2>/dev/null; echo COUNT-$i; sleep 1; done) &\n",
      );
      await first.waitFor(/COUNT-3\r?\n/, 120_000);
      const [saved] = await first.hmp("savevm counting");
      assert.equal(saved, "", "savevm prints nothing on success");
      const seenAtSave = Math.max(...counts(first.text));
      const [info] = await first.hmp("info snapshots");
      assert.match(info, /^List of snapshots present on all disks:\nID +TAG +VM SIZE +DATE/);
      assert.match(info, /\n-- +counting +\d/);
      // It keeps counting after the save, then quits.
      await first.waitFor(new RegExp(`COUNT-${seenAtSave + 2}\\r?\\n`), 120_000);
      await first.hmp("quit");
      const r1 = await first.end();
      assert.equal(r1.code, 0, r1.stderr);
      const before = counts(first.text);

      // qemu-img sees the snapshot with its VM state, and a clean image.
      const list = await runCommand("qemu-img", ["snapshot", "-l", disk]);
      assert.equal(list.code, 0, list.stderr);
      const row = list.stdout.split("\n").find((l) => /^\d+ +counting /.test(l));
      assert.ok(row, list.stdout);
      const vmSize = row!.split(/ +/).slice(2, 4).join(" ");
      assert.notEqual(vmSize, "0 B", `VM SIZE of ${row}`);
      assert.match(row!, / \d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d\d:\d\d:\d\d\.\d{3} /);
      const check = await runCommand("qemu-img", ["check", disk]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /No errors were found on the image/);

      // A new vmkit resumes the snapshot: no boot, the count goes on from the save.
      const second = new Vm([...args, "-loadvm", "counting"], path.join(dir, "m2.sock"));
      vms.push(second);
      await second.waitFor(/COUNT-\d+\r?\n[\s\S]*COUNT-\d+\r?\n[\s\S]*COUNT-\d+\r?\n/, 180_000);
      const after = counts(second.text);
      assert.doesNotMatch(second.text, /SeaBIOS|Linux version|VMKIT-GUEST-READY/);
      assert.ok(after[0] >= 4 && after[0] <= seenAtSave + 1, `${before} then ${after}`);
      for (let i = 1; i < after.length; i++) assert.equal(after[i], after[i - 1] + 1);
      // Its shell still answers (serial input and interrupts work after the restore).
      await second.type("echo ALIVE-$((6*7))\n");
      await second.waitFor(/ALIVE-42/, 60_000);
      // Stop the count, let the last write land, and read the disk from the host.
      await second.type("kill %1; sync; echo STOPPED\n");
      await second.waitFor(/STOPPED\r?\n/, 60_000);
      const last = Math.max(...counts(second.text));
      await second.hmp("quit");
      const r2 = await second.end();
      assert.equal(r2.code, 0, r2.stderr);
      const read = await runCommand("qemu-io", ["-f", "qcow2", "-c", "read -v 0 16", disk]);
      // qemu-io's dump: "00000000:  44 49 53 4b 2d 36 0a 00 ...  DISK.6.."; the hex is exact.
      const hexBytes =
        (read.stdout.split("\n")[0].match(/^[0-9a-f]+: +((?:[0-9a-f]{2} ?)+)/)?.[1] ??
          "").trim().split(" ").map((h) => parseInt(h, 16));
      const onDisk = new TextDecoder().decode(new Uint8Array(hexBytes)).split("\n")[0];
      assert.ok(
        onDisk === `DISK-${last}` || onDisk === `DISK-${last - 1}`,
        `${read.stdout} after count ${last}`,
      );
    } finally {
      for (const vm of vms) vm.kill();
      await cleanup();
    }
  },
});
