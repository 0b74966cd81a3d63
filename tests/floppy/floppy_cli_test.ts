// -fda, -fdb and -drive if=floppy on the command line: `info block`'s floppy lines and the refusal
// of a third unit, vmkit against real qemu-system-i386 7.2 on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { runCommand, runVmkit, tempDir } from "../test_util.ts";
import { Vm } from "../monitor/vm_util.ts";

/** The floppy drives of `info block`, without node numbers and QOM paths (vmkit names its own). */
function floppyBlocks(infoBlock: string): string[] {
  return infoBlock.split("\n\n").filter((b) => b.startsWith("floppy"))
    .map((b) =>
      b.split("\n").filter((l) => l && !l.includes("Attached to:"))
        .map((l) => l.replace(/ \(#block\d+\)/, "")).join("\n")
    );
}

/** A 1.44 MB image `a.img` and a 720 KB image `b.img` in `dir`, both blank. */
async function floppyImages(dir: string): Promise<{ a: string; b: string }> {
  const a = `${dir}/a.img`, b = `${dir}/b.img`;
  await Deno.writeFile(a, new Uint8Array(1474560));
  await Deno.writeFile(b, new Uint8Array(737280));
  return { a, b };
}

Deno.test({
  name: "vmkit -fda/-fdb/-drive if=floppy list the floppy drives in info block as QEMU 7.2",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const { a, b } = await floppyImages(dir);
      const lines: string[][] = [
        [],
        ["-nodefaults"],
        ["-drive", "if=floppy"],
        ["-fda", a, "-fdb", b],
        ["-drive", `if=floppy,index=1,format=raw,file=${b}`],
        ["-drive", `if=floppy,format=raw,readonly=on,file=${a}`],
      ];
      for (const extra of lines) {
        const args = ["-M", "pc", "-S", "-display", "none", "-net", "none", ...extra];
        const info = async (program: "vmkit" | "qemu") => {
          const vm = new Vm(args, `${dir}/${program}.sock`, program);
          try {
            const [text] = await vm.hmp("info block");
            await vm.hmp("quit");
            await vm.end();
            return floppyBlocks(text);
          } finally {
            vm.kill();
          }
        };
        assert.deepEqual(await info("vmkit"), await info("qemu"), extra.join(" "));
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "vmkit eject and change on a floppy drive (no tray) show in info block as QEMU 7.2",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const { a, b } = await floppyImages(dir);
      const args = ["-M", "pc", "-S", "-display", "none", "-net", "none", "-drive"];
      const steps = async (program: "vmkit" | "qemu") => {
        const vm = new Vm(
          [...args, `if=floppy,format=raw,file=${a}`],
          `${dir}/${program}.sock`,
          program,
        );
        try {
          const out = await vm.hmp(
            "eject floppy0",
            "info block",
            `change floppy0 ${b} raw`,
            "info block",
          );
          await vm.hmp("quit");
          await vm.end();
          return [out[0], floppyBlocks(out[1]), out[2], floppyBlocks(out[3])];
        } finally {
          vm.kill();
        }
      };
      const qemu = await steps("qemu");
      assert.deepEqual(await steps("vmkit"), qemu);
      assert.deepEqual(qemu[1], [
        "floppy0: [not inserted]\n    Removable device: not locked, tray closed",
      ]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "vmkit -drive if=floppy,index=2 is refused with QEMU 7.2's message",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386"),
  async fn() {
    const args = ["-drive", "if=floppy,index=2", "-display", "none", "-S"];
    const qemu = await runCommand("qemu-system-i386", args);
    const vmkit = await runVmkit(["system-i386", ...args]);
    assert.notEqual(vmkit.code, 0);
    const message = (text: string) => text.trim().split("\n")[0].replace(/^[^:]+: /, "");
    assert.equal(message(vmkit.stderr), message(qemu.stderr));
  },
});

Deno.test({
  name:
    "vmkit names a missing image by the option that gave it (-fda, -hda, -cdrom, bare, -drive) as QEMU 7.2",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const gone = `${dir}/gone.img`;
      for (
        const line of [
          ["-fda", gone],
          ["-fdb", gone],
          ["-hda", gone],
          ["-cdrom", gone],
          [gone],
          ["-drive", `file=${gone},if=floppy`],
        ]
      ) {
        const args = [...line, "-display", "none", "-S"];
        const qemu = await runCommand("qemu-system-i386", args);
        const vmkit = await runVmkit(["system-i386", ...args]);
        assert.notEqual(vmkit.code, 0);
        const message = (text: string) => text.trim().split("\n").at(-1)!.replace(/^[^:]+: /, "");
        assert.equal(message(vmkit.stderr), message(qemu.stderr), line.join(" "));
      }
    } finally {
      await cleanup();
    }
  },
});
