// HMP `info qtree`: each PCI function's properties (the PCIDevice part every QEMU PCI
// device has: addr, romfile, romsize, rombar, multifunction...) and its class and BAR
// lines, and each ISA device's qdev properties (iobase, irq, dma...) on the bridge's isa.0,
// are QEMU 7.2's for the same device, against real qemu-system-x86_64 7.2 on the same
// command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCommand, tempDir } from "../test_util.ts";
import { hmpBoth } from "./session_util.ts";

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
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
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
        "virtio-balloon,id=bal",
      ], ["info qtree", "info qtree x"]);
      // Each PCI function's device line, the qdev id -device gave included, is QEMU's.
      const pciDevs = (lines: string[]) => lines.filter((l) => /^ {6}dev: /.test(l)).sort();
      assert.deepEqual(pciDevs(out.vmkit), pciDevs(out.qemu));
      assert.ok(out.vmkit.includes('      dev: virtio-balloon-pci, id "bal"'));
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

/** The devices on the system bus, each as its own lines (its child buses left out). */
function systemDevices(lines: string[]): string[][] {
  const out: string[][] = [];
  let inside = false;
  for (const l of lines) {
    if (l.startsWith("  dev: ")) {
      out.push([l]);
      inside = true;
    } else if (!l.startsWith("    ") || l.startsWith("    bus: ")) inside = false;
    else if (inside) out[out.length - 1].push(l);
  }
  return out;
}

/** The devices on isa.0, each as its lines (gpio lines and nested buses included), in the order listed. */
function isaDevices(lines: string[]): string[][] {
  const start = lines.indexOf("        bus: isa.0");
  const out: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith("          ")) break;
    if (l.startsWith("          dev: ")) out.push([]);
    out[out.length - 1].push(l);
  }
  return out;
}

Deno.test({
  name: "HMP info qtree lists the ISA devices on isa.0 with QEMU 7.2's qdev properties",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const a = path.join(dir, "a.img"), b = path.join(dir, "b.img");
      await Deno.writeFile(a, new Uint8Array(1440 << 10));
      await Deno.writeFile(b, new Uint8Array(1 << 20));
      const out = await hmpBoth(dir, "qtree-isa", [
        "-S",
        "-chardev",
        "null,id=dbg",
        "-device",
        "isa-debugcon,iobase=0x402,chardev=dbg,id=dcon",
        "-device",
        "isa-debug-exit,id=dx",
        "-drive",
        `file=${a},if=floppy,format=raw`,
        "-drive",
        `file=${b},if=floppy,index=1,format=raw`,
        "-serial",
        "null",
        "-serial",
        "null",
        "-device",
        "isa-serial,id=com3",
      ], ["info qtree"]);
      const v = isaDevices(out.vmkit), q = isaDevices(out.qemu);
      const models = v.map((d) => d[0].trim()).sort();
      assert.deepEqual(models, [
        'dev: i8042, id ""',
        'dev: i8257, id ""',
        'dev: i8257, id ""',
        'dev: isa-debug-exit, id "dx"',
        'dev: isa-debugcon, id "dcon"',
        'dev: isa-fdc, id ""',
        'dev: isa-i8259, id ""',
        'dev: isa-i8259, id ""',
        'dev: isa-pit, id ""',
        'dev: isa-serial, id ""',
        'dev: isa-serial, id ""',
        'dev: isa-serial, id "com3"',
        'dev: mc146818rtc, id ""',
      ]);
      // Each of vmkit's ISA devices, qdev id, gpio lines, properties and floppy drives
      // included, is one of QEMU's, line for line (QEMU has more: port92, vmport, vmmouse,
      // pcspk, parallel).
      const theirs = q.map((d) => d.join("\n"));
      for (const d of v) assert.ok(theirs.includes(d.join("\n")), d.join("\n"));
      // On the system bus too: the ioapic with its gpio and mmio lines, the PCI host, fw_cfg_io.
      const qSystem = systemDevices(out.qemu).map((d) => d.join("\n"));
      const vSystem = systemDevices(out.vmkit);
      assert.deepEqual(vSystem.map((d) => d[0]).sort(), [
        '  dev: fw_cfg_io, id ""',
        '  dev: i440FX-pcihost, id ""',
        '  dev: ioapic, id ""',
      ]);
      for (const d of vSystem) assert.ok(qSystem.includes(d.join("\n")), d.join("\n"));
      // Both i8259s, both i8257s and both serial ports in QEMU's order.
      for (const model of ["isa-i8259", "i8257", "isa-serial"]) {
        const of = (list: string[][]) => list.filter((d) => d[0].includes(`dev: ${model},`));
        assert.deepEqual(of(v), of(q), model);
      }
    } finally {
      await cleanup();
    }
  },
});
