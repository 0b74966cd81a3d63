// `-cdrom /dev/null` (a zero-size medium) and `-cdrom ""` (an empty drive): `info block` and
// SeaBIOS's CD boot attempt, vmkit against real qemu-system-x86_64 7.2 on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { tempDir } from "../test_util.ts";
import { Vm } from "./vm_util.ts";

/** `info block`'s lines for ide1-cd0, without the node number and the QOM path (vmkit names its own). */
function cdLines(infoBlock: string): string[] {
  const block = infoBlock.split("\n\n").find((b) => b.startsWith("ide1-cd0")) ?? "";
  return block.split("\n").filter((l) => l && !l.includes("Attached to:"))
    .map((l) => l.replace(/ \(#block\d+\)/, ""));
}

for (const medium of ["/dev/null", ""]) {
  Deno.test({
    name:
      `vmkit -cdrom '${medium}' shows the drive in info block and fails the CD boot as QEMU 7.2`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64"),
    async fn() {
      const { dir, cleanup } = await tempDir();
      // graphics=off: SeaBIOS writes its boot messages to the serial console.
      const args = [
        "-M",
        "pc,graphics=off",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-net",
        "none",
      ];
      const run = async (program: "vmkit" | "qemu") => {
        const vm = new Vm(
          [...args, "-cdrom", medium, "-boot", "d"],
          `${dir}/${program}.sock`,
          program,
        );
        try {
          // SeaBIOS tries the CD first (-boot d) and says why it cannot boot from it.
          const failed = await vm.waitFor(/Booting from DVD\/CD\.\.\.\r?\n(.*)\r?\n/, 120_000);
          const [info] = await vm.hmp("info block");
          await vm.hmp("quit");
          await vm.end();
          return { failed: failed[1].trim(), cd: cdLines(info) };
        } finally {
          vm.kill();
        }
      };
      try {
        const qemu = await run("qemu");
        const vmkit = await run("vmkit");
        assert.deepEqual(vmkit, qemu);
        // What QEMU 7.2 printed when this test was written, so a change in either shows.
        assert.equal(qemu.failed, "Boot failed: Could not read from CDROM (code 0003)");
        assert.deepEqual(
          qemu.cd,
          medium === "/dev/null"
            ? [
              "ide1-cd0: /dev/null (raw, read-only)",
              "    Removable device: not locked, tray closed",
              "    Cache mode:       writeback",
            ]
            : ["ide1-cd0: [not inserted]", "    Removable device: not locked, tray closed"],
        );
      } finally {
        await cleanup();
      }
    },
  });
}
