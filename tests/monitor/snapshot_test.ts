// savevm, loadvm, delvm and info snapshots over HMP: QEMU 7.2's answers without a disk
// that can hold a snapshot, and a qcow2 disk that real qemu-img lists and checks

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, runCommand, tempDir } from "../test_util.ts";
import { hmpBody, session } from "./session_util.ts";

Deno.test({
  name: "HMP savevm, loadvm, delvm and info snapshots answer as QEMU 7.2 without a snapshot disk",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const raw = path.join(dir, "r.raw");
      await Deno.writeFile(raw, new Uint8Array(1 << 20));
      const out: Record<string, string[]> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const body: string[] = [];
        for (const drive of [[], ["-drive", `file=${raw},format=raw`]]) {
          const sock = path.join(dir, `${vm}-sn.sock`);
          const r = await session(
            vm,
            ["-net", "none", ...drive, "-monitor", `unix:${sock},server=on,wait=off`],
            ["hmp", sock, "savevm x", "info snapshots", "loadvm x", "delvm x", "quit"],
          );
          assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
          body.push(...hmpBody(r.lines));
        }
        out[vm] = body;
      }
      assert.deepEqual(out.vmkit, out.qemu);
      assert.deepEqual(out.vmkit.slice(0, 3), [
        "Error: no block device can store vmstate for snapshot",
        "no block device can store vmstate for snapshot",
        "Error: no block device can store vmstate for snapshot",
      ]);
      assert.equal(
        out.vmkit[3],
        "Error: Device 'ide0-hd0' is writable but does not support snapshots",
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "savevm into a qcow2 disk: qemu-img lists the VM state and checks clean; -loadvm resumes it",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = path.join(dir, "d.qcow2");
      const made = await runCommand("qemu-img", ["create", "-f", "qcow2", disk, "64M"]);
      assert.equal(made.code, 0, made.stderr);
      const sock = path.join(dir, "s.sock");
      const args = ["-net", "none", "-drive", `file=${disk},format=qcow2`];
      const r = await session("vmkit", [...args, "-monitor", `unix:${sock},server=on,wait=off`], [
        "hmp",
        sock,
        "info snapshots",
        "savevm first",
        "stop",
        "savevm second",
        "info status",
        "info snapshots",
        "loadvm nosuch",
        "delvm first",
        "loadvm second",
        "info status",
        "quit",
      ]);
      assert.equal(r.vmCode, 0, r.vmErr);
      const body = hmpBody(r.lines);
      assert.equal(body[0], "There is no snapshot available.");
      assert.equal(body[1], "VM status: paused");
      assert.equal(body[2], "List of snapshots present on all disks:");
      // QEMU's header, then one row per snapshot with "--" for the ID.
      assert.equal(
        body[3],
        "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT",
      );
      assert.match(
        body[4],
        /^-- {8}first +[\d.]+ [KMG]iB \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d\d:\d\d:\d\d\.\d{3} {11}$/,
      );
      assert.equal(body[4].search(/\d{4}-/), 36, "the DATE column ends where QEMU's does");
      assert.match(body[5], /^-- {8}second /);
      assert.equal(body[6], "Error: Snapshot 'nosuch' does not exist in one or more devices");
      // loadvm on a paused machine leaves it paused, as QEMU.
      assert.equal(body[7], "VM status: paused");

      const list = await runCommand("qemu-img", ["snapshot", "-l", disk]);
      assert.equal(list.code, 0, list.stderr);
      const rows = list.stdout.trim().split("\n").slice(2);
      assert.equal(rows.length, 1, list.stdout);
      assert.match(rows[0], /^2 +second +\d+(\.\d+)? [KM]iB \d{4}-/);
      const check = await runCommand("qemu-img", ["check", disk]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /No errors were found on the image/);

      // -loadvm at start: the machine runs from the snapshot; a missing one is an error.
      const sock2 = path.join(dir, "s2.sock");
      const r2 = await session(
        "vmkit",
        [...args, "-loadvm", "second", "-monitor", `unix:${sock2},server=on,wait=off`],
        ["hmp", sock2, "info status", "quit"],
      );
      assert.equal(r2.vmCode, 0, r2.vmErr);
      assert.deepEqual(hmpBody(r2.lines), ["VM status: running"]);
      const bad = await runCommand(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "system-x86_64",
        "-display",
        "none",
        ...args,
        "-loadvm",
        "nosuch",
      ]);
      assert.equal(bad.code, 1);
      assert.equal(bad.stderr, "vmkit: Snapshot 'nosuch' does not exist in one or more devices\n");
      const after = await runCommand("qemu-img", ["check", disk]);
      assert.equal(after.code, 0, after.stdout + after.stderr);
    } finally {
      await cleanup();
    }
  },
});
