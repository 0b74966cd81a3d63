// HMP `info block DEVICE`: only that drive (after the blank line QEMU prints when it is not
// the first drive), nothing for an unknown name; vmkit against real qemu-system-x86_64 7.2
// on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { tempDir } from "../test_util.ts";
import { Vm } from "./vm_util.ts";

const COMMANDS = [
  "info block ide0-hd0",
  "info block ide1-cd0",
  "info block floppy0",
  "info block nosuch",
];

/** Without the node numbers and QOM paths (vmkit names its own). */
const normal = (text: string) =>
  text.replace(/ \(#block\d+\)/g, "").replace(/Attached to: +\S+/g, "Attached to: PATH")
    .replace(/\r/g, "");

Deno.test({
  name: "HMP info block DEVICE prints that drive only, as qemu-system-x86_64 7.2 does",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = `${dir}/disk.raw`;
      await Deno.writeFile(disk, new Uint8Array(1 << 20));
      const args = ["-S", "-display", "none", "-net", "none"];
      args.push("-drive", `file=${disk},format=raw,if=ide`, "-cdrom", "/dev/null");
      const run = async (program: "vmkit" | "qemu") => {
        const vm = new Vm(args, `${dir}/${program}.sock`, program);
        try {
          const out = await vm.hmp(...COMMANDS);
          await vm.hmp("quit");
          await vm.end();
          return out.map((o) => normal(o.replaceAll(disk, "DISK")));
        } finally {
          vm.kill();
        }
      };
      const qemu = await run("qemu");
      const vmkit = await run("vmkit");
      // What QEMU 7.2 printed when this test was written.
      assert.deepEqual(qemu, [
        "ide0-hd0: DISK (raw)\n    Attached to: PATH\n    Cache mode:       writeback\n",
        "\nide1-cd0: /dev/null (raw, read-only)\n    Attached to: PATH\n" +
        "    Removable device: not locked, tray closed\n    Cache mode:       writeback\n",
        "\nfloppy0: [not inserted]\n    Attached to: PATH\n" +
        "    Removable device: not locked, tray closed\n",
        "",
      ]);
      assert.deepEqual(vmkit, qemu);
    } finally {
      await cleanup();
    }
  },
});
