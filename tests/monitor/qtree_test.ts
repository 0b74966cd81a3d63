// HMP `info qtree`: each PCI function's properties (the PCIDevice part every QEMU PCI
// device has: addr, romfile, romsize, rombar, multifunction...) and its class and BAR
// lines are QEMU 7.2's for the same device at the same address, against real
// qemu-system-x86_64 7.2 on the same command line

import assert from "node:assert/strict";
import * as path from "node:path";
import { runCommand, tempDir } from "../test_util.ts";
import { HAVE_PYTHON, HAVE_QEMU, hmpBoth } from "./session_util.ts";

/** Each PCI function's lines (8 spaces in) by its `addr = XX.Y`. */
function byAddress(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const l of lines) {
    if (/^ {6}dev: /.test(l)) current = undefined;
    const m = /^ {8}addr = ([0-9a-f]{2}\.\d)$/.exec(l);
    if (m) out.set(m[1], current = []);
    if (current && /^ {8}\S/.test(l)) current.push(l);
  }
  return out;
}

Deno.test({
  name: "HMP info qtree gives each PCI function QEMU 7.2's PCI properties and identity lines",
  ignore: !(HAVE_PYTHON && HAVE_QEMU),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const disk = path.join(dir, "disk.qcow2");
      const made = await runCommand("qemu-img", ["create", "-f", "qcow2", disk, "16M"]);
      assert.equal(made.code, 0, made.stderr);
      const out = await hmpBoth(dir, "qtree", [
        "-S",
        "-net",
        "nic",
        "-net",
        "user",
        "-drive",
        `file=${disk},if=virtio,format=qcow2,file.locking=off`,
        "-device",
        "virtio-balloon",
      ], ["info qtree", "info qtree x"]);
      const v = byAddress(out.vmkit), q = byAddress(out.qemu);
      assert.deepEqual([...v.keys()].sort(), [...q.keys()].sort());
      assert.deepEqual(v.get("01.0")!.slice(0, 5), [
        "        addr = 01.0",
        '        romfile = ""',
        "        romsize = 4294967295 (0xffffffff)",
        "        rombar = 1 (0x1)",
        "        multifunction = true",
      ]);
      for (const [addr, lines] of v) {
        const theirs = q.get(addr)!;
        // vmkit's property and class lines are QEMU's, in QEMU's order (QEMU has more
        // properties). The BARs differ where docs/monitor.md says (virtio's MSI-X BAR,
        // the balloon's I/O BAR size, NIC ROM BARs); info_test compares them.
        const own = lines.filter((l) => !l.startsWith("        bar "));
        const at = own.map((l) => theirs.indexOf(l));
        assert.ok(at.every((i) => i >= 0), `${addr}: ${own.filter((_, i) => at[i] < 0)}`);
        assert.deepEqual(at, [...at].sort((a, b) => a - b), addr);
      }
      const tail = (lines: string[]) => lines.slice(lines.indexOf("info qtree x"));
      assert.deepEqual(tail(out.vmkit), tail(out.qemu));
    } finally {
      await cleanup();
    }
  },
});
