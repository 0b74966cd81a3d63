// RDMSR/WRMSR against QEMU: the probe kernel of msr.ts on QEMU 7.2 TCG and the vmkit interpreter

import assert from "node:assert/strict";
import { skipUnless } from "../skip.ts";
import { compareDumps, parseDump, runImage } from "./harness.ts";
import { MSR_PROBES, msrProbeSource } from "./msr.ts";
import { assemble } from "./program.ts";

for (const cpu of ["qemu32", "qemu32,+nx"]) {
  Deno.test({
    name: `cpu_diff: every MSR probe reads, writes and reads back as on QEMU (-cpu ${cpu})`,
    ignore: skipUnless(import.meta, "qemu-system-x86_64", "nasm"),
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "vmkit-msr-" });
      try {
        const bin = await assemble(msrProbeSource(), dir);
        const args = ["-cpu", cpu];
        const qemu = parseDump((await runImage("qemu", bin, dir, 60_000, args)).text, "pm32");
        const vmkit = parseDump((await runImage("interp", bin, dir, 60_000, args)).text, "pm32");
        assert.equal(qemu.problem, null);
        assert.equal(vmkit.problem, null);
        // QEMU's TCG raises no #GP from RDMSR/WRMSR, known MSR or not.
        assert.deepEqual(qemu.exceptions, []);
        const view = new DataView(qemu.data.buffer);
        const stored = (k: number) => view.getBigUint64(16 * k + 8, true);
        const k = (name: string) => MSR_PROBES.findIndex((p) => p[0] === name);
        assert.equal(stored(k("KernelGS base")), 0xffff800000003000n, "a 64-bit store");
        assert.deepEqual(compareDumps(qemu, vmkit, "pm32", 0), []);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
