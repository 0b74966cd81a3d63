// `-cpu help` and `-cpu` errors of `vmkit system-x86_64`/`system-i386` against real qemu-system-*

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { runCommand, runVmkit } from "../test_util.ts";

Deno.test({
  name: "vmkit system-x86_64 -cpu help prints byte for byte what qemu-system-x86_64 7.2 prints",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const qemu = await runCommand("qemu-system-x86_64", ["-cpu", "help"]);
    const vmkit = await runVmkit(["system-x86_64", "-cpu", "help"]);
    assert.equal(vmkit.code, 0, vmkit.stderr);
    assert.equal(vmkit.stdout, qemu.stdout);
    assert.equal((await runVmkit(["system-x86_64", "-cpu", "?"])).stdout, qemu.stdout);
    const i386 = await runCommand("qemu-system-i386", ["-cpu", "help"]);
    assert.equal((await runVmkit(["system-i386", "-cpu", "help"])).stdout, i386.stdout);
  },
});

Deno.test({
  name:
    "vmkit system-x86_64 and system-i386 -cpu refuse an unknown model, flag or value with QEMU's message",
  ignore: skipUnless(import.meta, "qemu-system-x86_64", "qemu-system-i386"),
  async fn() {
    for (const target of ["x86_64", "i386"]) {
      for (
        const cpu of [
          "pentium9",
          "qemu64,+nosuch",
          "qemu64,-nosuch",
          "qemu64,nosuch=on",
          "qemu64,sse2=maybe",
          "qemu64,family=x",
          "qemu64,level=x",
          "qemu64,vendor=abc",
        ]
      ) {
        const args = ["-cpu", cpu, "-M", "pc", "-display", "none", "-S", "-nodefaults"];
        const qemu = await runCommand(`qemu-system-${target}`, ["-accel", "tcg", ...args]);
        const vmkit = await runVmkit([`system-${target}`, ...args]);
        const message = (text: string) => text.trim().split("\n")[0].replace(/^[^:]+: /, "");
        assert.notEqual(qemu.code, 0, cpu);
        assert.notEqual(vmkit.code, 0, cpu);
        assert.equal(message(vmkit.stderr), message(qemu.stderr), `${target} ${cpu}`);
      }
    }
  },
});
