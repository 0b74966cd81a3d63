// `-cpu help` and `-cpu` errors of `vmkit system-x86_64` against real qemu-system-x86_64

import assert from "node:assert/strict";
import { haveProgram, runCommand, runVmkit } from "../test_util.ts";

const QEMU = haveProgram("qemu-system-x86_64");
if (!QEMU) console.log("cli_test: skipped: qemu-system-x86_64 is not installed");

Deno.test({
  name: "vmkit system-x86_64 -cpu help prints byte for byte what qemu-system-x86_64 7.2 prints",
  ignore: !QEMU,
  async fn() {
    const qemu = await runCommand("qemu-system-x86_64", ["-cpu", "help"]);
    const vmkit = await runVmkit(["system-x86_64", "-cpu", "help"]);
    assert.equal(vmkit.code, 0, vmkit.stderr);
    assert.equal(vmkit.stdout, qemu.stdout);
    assert.equal((await runVmkit(["system-x86_64", "-cpu", "?"])).stdout, qemu.stdout);
  },
});

Deno.test({
  name: "vmkit system-x86_64 -cpu refuses an unknown model, flag or value with QEMU's message",
  ignore: !QEMU,
  async fn() {
    for (
      const cpu of [
        "pentium9",
        "qemu64,+nosuch",
        "qemu64,-nosuch",
        "qemu64,nosuch=on",
        "qemu64,sse2=maybe",
      ]
    ) {
      const args = ["-cpu", cpu, "-M", "pc", "-display", "none", "-S", "-nodefaults"];
      const qemu = await runCommand("qemu-system-x86_64", ["-accel", "tcg", ...args]);
      const vmkit = await runVmkit(["system-x86_64", ...args]);
      const message = (text: string) => text.trim().split("\n")[0].replace(/^[^:]+: /, "");
      assert.notEqual(qemu.code, 0, cpu);
      assert.notEqual(vmkit.code, 0, cpu);
      assert.equal(message(vmkit.stderr), message(qemu.stderr), cpu);
    }
  },
});
