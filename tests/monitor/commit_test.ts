// HMP `commit DEVICE`: a running machine's qcow2 disk copies what it holds into its
// backing file, compared with qemu-system-x86_64 7.2 doing the same, and judged by real
// qemu-img check, compare and qemu-io

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCommand, tempDir } from "../test_util.ts";
import { hmpBody, session } from "./session_util.ts";

async function run(program: string, args: string[]): Promise<string> {
  const r = await runCommand(program, args);
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

Deno.test({
  name: "HMP commit copies a qcow2 disk into its backing file as qemu-system-x86_64 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64", "qemu-img", "qemu-io"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out: Record<string, string[]> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const base = path.join(dir, `${vm}-base.qcow2`);
        const top = path.join(dir, `${vm}-top.qcow2`);
        await run("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
        await run("qemu-io", ["-c", "write -P 0x41 0 64k", base]);
        await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top]);
        await run("qemu-io", [
          "-c",
          "write -P 0x42 1M 64k",
          "-c",
          "write -P 0x43 0 4k",
          "-c",
          "write -z 2M 128k",
          "-c",
          "write -P 0x44 63M 1M",
          top,
        ]);
        const sock = path.join(dir, `${vm}.sock`);
        const r = await session(vm, [
          "-S",
          "-net",
          "none",
          "-drive",
          `file=${top},if=virtio,format=qcow2`,
          "-monitor",
          `unix:${sock},server=on,wait=off`,
        ], [
          "hmp",
          sock,
          "commit nosuch",
          "commit ide1-cd0",
          "commit",
          "commit virtio0 x",
          "commit all x",
          `commit ${"a".repeat(300)}`,
          "commit virtio0",
          "quit",
        ]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        out[vm] = hmpBody(r.lines);
        // Both images are clean, the top reads as before, and the base now holds it all.
        assert.match(await run("qemu-img", ["check", base]), /No errors were found/);
        assert.match(await run("qemu-img", ["check", top]), /No errors were found/);
        assert.match(await run("qemu-img", ["compare", top, base]), /Images are identical/);
        const read = await run("qemu-io", [
          "-c",
          "read -P 0x43 0 4k",
          "-c",
          "read -P 0x41 4k 60k",
          "-c",
          "read -P 0x42 1M 64k",
          base,
        ]);
        assert.doesNotMatch(read, /Pattern verification failed/, read);
        // The top is emptied (qcow2's make_empty): everything reads from the base.
        for (const image of [top, base]) {
          const name = path.basename(image).replace(/^\w+-/, "");
          out[vm].push(`map ${name}: ${await run("qemu-img", ["map", "--output=json", image])}`);
          const check = await run("qemu-img", ["check", image]);
          out[vm].push(`check ${name}: ${check}`);
          out[vm].push(`size ${name}: ${(await Deno.stat(image)).size}`);
        }
      }
      assert.deepEqual(out.vmkit.filter((l) => !/^(QEMU|map|check|size)/.test(l)), [
        "Device 'nosuch' not found",
        "Device 'ide1-cd0' has no medium",
        "commit: block device name expected",
        'Try "help commit" for more information',
        "commit: extraneous characters at the end of line",
        'Try "help commit" for more information',
        "commit: extraneous characters at the end of line",
        'Try "help commit" for more information',
        `Device '${"a".repeat(300)}' not found`,
      ]);
      assert.deepEqual(
        out.vmkit.map((l) => l.replaceAll(dir, "DIR").replaceAll("vmkit-", "VM-")).filter((l) =>
          !l.startsWith("QEMU")
        ),
        out.qemu.map((l) => l.replaceAll(dir, "DIR").replaceAll("qemu-", "VM-")).filter((l) =>
          !l.startsWith("QEMU")
        ),
      );
    } finally {
      await cleanup();
    }
  },
});
