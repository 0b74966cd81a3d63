// Boot tests of -smp: SeaBIOS counts the CPUs itself with INIT/SIPI, as under real QEMU

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, tempDir } from "../test_util.ts";
import { debugLogUntil } from "./boot_util.ts";

const BIOS = "/usr/share/seabios/bios-256k.bin";
const QEMU = "qemu-system-x86_64";

function isFile(file: string): boolean {
  try {
    return Deno.statSync(file).isFile;
  } catch {
    return false;
  }
}

const haveQemu = (() => {
  try {
    return new Deno.Command(QEMU, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();
const NEEDS = isFile(BIOS) ? "" : ` (ignored: ${BIOS} is missing; apt-get install seabios)`;
const NEEDS_QEMU = haveQemu
  ? ""
  : ` (ignored: ${QEMU} is missing; apt-get install qemu-system-x86)`;

/** SeaBIOS's CPU count line, e.g. `Found 2 cpu(s) max supported 4 cpu(s)`. */
const FOUND = /Found \d+ cpu\(s\) max supported \d+ cpu\(s\)/;

/** Runs `program args` until SeaBIOS's debug log counts the CPUs; returns the log. */
function debugLogUntilCpuCount(
  program: string,
  args: string[],
  log: string,
  timeoutMs: number,
): Promise<string> {
  return debugLogUntil(program, args, log, FOUND, timeoutMs);
}

function vmkitArgs(smp: string): string[] {
  return ["run", "-A", "--quiet", MAIN, "system-x86_64", "-nographic", "-M", "pc", "-smp", smp];
}

for (
  const [smp, line] of [
    ["2", "Found 2 cpu(s) max supported 2 cpu(s)"],
    ["4", "Found 4 cpu(s) max supported 4 cpu(s)"],
    ["2,maxcpus=4", "Found 2 cpu(s) max supported 4 cpu(s)"],
  ]
) {
  Deno.test({
    name: `vmkit system-x86_64 -smp ${smp}: SeaBIOS starts every AP and says '${line}'${NEEDS}`,
    ignore: skipUnless(import.meta, { ok: NEEDS === "", missing: NEEDS }),
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        const log = path.join(dir, "debugcon.log");
        const text = await debugLogUntilCpuCount(Deno.execPath(), vmkitArgs(smp), log, 120_000);
        assert.ok(text.includes(line), text);
        // Each AP announces its APIC ID as it runs SeaBIOS's handle_smp.
        const started = [...text.matchAll(/handle_smp: apic_id=0x([0-9a-f]+)/g)]
          .map((m) => Number.parseInt(m[1], 16)).sort((a, b) => a - b);
        const cpus = Number(line.match(/Found (\d+)/)![1]);
        assert.deepEqual(started, Array.from({ length: cpus - 1 }, (_, i) => i + 1), text);
      } finally {
        await cleanup();
      }
    },
  });
}

Deno.test({
  name:
    `vmkit system-x86_64 -smp 2 gives SeaBIOS the same CPU count line as QEMU${NEEDS}${NEEDS_QEMU}`,
  ignore: NEEDS !== "" || skipUnless(import.meta, { ok: haveQemu, missing: NEEDS_QEMU }),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const common = ["-nographic", "-M", "pc", "-smp", "2,maxcpus=3"];
      const ours = await debugLogUntilCpuCount(
        Deno.execPath(),
        ["run", "-A", "--quiet", MAIN, "system-x86_64", ...common],
        path.join(dir, "vmkit.log"),
        120_000,
      );
      const theirs = await debugLogUntilCpuCount(
        QEMU,
        ["-accel", "tcg", "-display", "none", ...common],
        path.join(dir, "qemu.log"),
        60_000,
      );
      assert.equal(ours.match(FOUND)?.[0], theirs.match(FOUND)?.[0], `${ours}\n---\n${theirs}`);
      assert.equal(ours.match(FOUND)?.[0], "Found 2 cpu(s) max supported 3 cpu(s)");
    } finally {
      await cleanup();
    }
  },
});

for (
  const [smp, message] of [
    [
      "3,sockets=2,cores=2",
      "Invalid CPU topology: product of the hierarchy must match maxcpus: sockets (2) * dies (1) * cores (2) * threads (0) != maxcpus (3)",
    ],
    [
      "4,maxcpus=2",
      "Invalid CPU topology: maxcpus must be equal to or greater than smp: sockets (1) * dies (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)",
    ],
    ["300", "Invalid SMP CPUs 300. The max CPUs supported by machine 'pc-i440fx-7.2' is 255"],
  ]
) {
  Deno.test(`vmkit system-x86_64 -smp ${smp} fails with QEMU's message and exit code 1`, async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: vmkitArgs(smp),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.equal(stderr, `vmkit: ${message}\n`);
    if (haveQemu) {
      const q = await new Deno.Command(QEMU, {
        args: ["-M", "pc", "-display", "none", "-S", "-smp", smp],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(q.stderr), `${QEMU}: ${message}\n`);
    }
  });
}
