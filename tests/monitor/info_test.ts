// The monitor's inspection commands on the guide's devices (a qcow2 virtio disk, a CD,
// virtio-net on user networking, virtio-balloon), vmkit against real qemu-system-x86_64
// 7.2 on the same command line, both stopped at the reset vector (-S) so the state agrees

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { runCommand, tempDir } from "../test_util.ts";
import { parse, session, shape } from "./session_util.ts";
import { ISO } from "../boot/guest_util.ts";

const UUID = "4a1b2c3d-0011-2233-4455-66778899aabb";
const INFOS = [
  "info block",
  "info cpus",
  "info uuid",
  "info blockstats",
  "info network",
  "info balloon",
  "info pic",
  "info irq",
  "info lapic",
  "info roms",
  "info qtree",
  "info mtree",
  "balloon 0",
  "balloon 100",
  "info balloon",
  "balloon",
  "balloon abc",
  "balloon 1G",
  "info lapic 5",
];
const QUERIES = [
  '{"execute": "qmp_capabilities"}',
  '{"execute": "query-block"}',
  '{"execute": "query-blockstats"}',
  '{"execute": "query-cpus-fast"}',
  '{"execute": "query-pci"}',
  '{"execute": "query-uuid"}',
  '{"execute": "query-balloon"}',
  '{"execute": "balloon", "arguments": {"value": 134217728}}',
  '{"execute": "balloon", "arguments": {"value": 0}}',
  '{"execute": "balloon", "arguments": {"value": "x"}}',
  '{"execute": "balloon"}',
  '{"execute": "query-balloon"}',
  '{"execute": "quit"}',
];

/** An object with its keys sorted, to compare as JSON text. */
function shapeSorted(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}

/** The guide's devices on a stopped machine: a qcow2 virtio disk, the CD, virtio-net, a balloon. */
function guideDevices(disk: string): string[] {
  return [
    "-S",
    "-m",
    "256",
    "-uuid",
    UUID,
    "-drive",
    `file=${disk},if=virtio,format=qcow2`,
    "-cdrom",
    ISO,
    "-net",
    "nic,model=virtio,macaddr=52:54:00:05:11:11",
    "-net",
    "user",
    "-device",
    "virtio-balloon",
  ];
}

/** Each command's output lines: the text between its prompt's echo line and the next prompt. */
function byCommand(text: string, commands: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  text.split("(qemu) ").slice(1).forEach((segment, i) => {
    if (i >= commands.length) return;
    const body = segment.slice(segment.indexOf("\n") + 1);
    out[commands[i]] = body.split("\n").map((l) => l.replace(/\r$/, "")).slice(0, -1);
  });
  return out;
}

Deno.test({
  name:
    "HMP info cpus, uuid, blockstats, network, balloon, pic, irq, lapic, roms, qtree and mtree " +
    "keep QEMU 7.2's layouts on the same devices",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64", "qemu-img"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out: Record<string, Record<string, string[]>> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const disk = path.join(dir, `${vm}.qcow2`);
        const made = await runCommand("qemu-img", ["create", "-f", "qcow2", disk, "64M"]);
        assert.equal(made.code, 0, made.stderr);
        const sock = path.join(dir, `${vm}-hmp.sock`);
        const r = await session(vm, [
          ...guideDevices(disk),
          "-monitor",
          `unix:${sock},server=on,wait=off`,
        ], ["hmp", sock, ...INFOS, "quit"]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        out[vm] = byCommand(r.lines.join("\n"), INFOS);
      }
      const v = out.vmkit, q = out.qemu;
      // block: QEMU's lines for the drives both have (node names and device paths are
      // each program's own; QEMU adds its empty sd0).
      const blocks = (lines: string[]) =>
        lines.join("\n").split("\n\n").slice(0, 2).map((b) =>
          b.replace(/ \(#block\d+\):/, " (#N):").replace(/(Attached to: +)\S+/, "$1P")
        );
      assert.match(v["info block"][0], /^virtio0 \(#block\d+\): .*vmkit\.qcow2 \(qcow2\)$/);
      assert.deepEqual(
        blocks(v["info block"]),
        blocks(q["info block"]).map((b) => b.replace("qemu.qcow2", "vmkit.qcow2")),
      );
      // cpus: the one CPU, current, and the host thread that runs it.
      assert.match(v["info cpus"][0], /^\* CPU #0: thread_id=\d+$/);
      assert.equal(v["info cpus"].length, q["info cpus"].length);
      assert.deepEqual(v["info uuid"], [UUID]);
      assert.deepEqual(v["info uuid"], q["info uuid"]);
      // blockstats: QEMU's counters in its order, for the drives both have (QEMU adds its
      // empty sd0); -S, so no request has run in either.
      const stats = (lines: string[]) =>
        new Map(lines.filter((l) => l).map((l) => [l.split(":")[0], l]));
      const vs = stats(v["info blockstats"]), qs = stats(q["info blockstats"]);
      assert.deepEqual([...vs.keys()], ["virtio0", "ide1-cd0", "floppy0"]);
      for (const [dev, line] of vs) assert.equal(line, qs.get(dev), dev);
      // network: the hub and its two ports, QEMU's lines; the user backend QEMU names
      // itself (#net and random digits) is vmkit's user.0 (network_test.ts has more).
      assert.deepEqual(v["info network"], [
        "hub 0",
        " \\ hub0port1: user.0: index=0,type=user,net=10.0.2.0,restrict=off",
        " \\ hub0port0: virtio-net-pci.0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:05:11:11",
      ]);
      assert.deepEqual(
        v["info network"],
        q["info network"].map((l) => l.replace(/#net\d+/, "user.0")),
      );
      assert.deepEqual(v["info balloon"].slice(0, 1), ["balloon: actual=256"]);
      assert.deepEqual(v["info balloon"], q["info balloon"]);
      // pic: the IOAPIC's table and both i8259s at reset, line for line.
      assert.equal(v["info pic"].length, 29);
      assert.deepEqual(v["info pic"], q["info pic"]);
      // irq: QEMU's two providers in its order; the counts follow each board's own reset
      // (QEMU's PIT raises IRQ 0 once before the guest runs, vmkit's does not).
      const headers = (lines: string[]) => lines.filter((l) => l.startsWith("IRQ statistics"));
      assert.deepEqual(headers(v["info irq"]), [
        "IRQ statistics for ioapic:",
        "IRQ statistics for isa-i8259:",
      ]);
      assert.deepEqual(headers(v["info irq"]), headers(q["info irq"]));
      for (const l of [...v["info irq"], ...q["info irq"]]) {
        assert.match(l, /^(IRQ statistics for [\w-]+:|[ \d]\d: \d+)$/);
      }
      // lapic: CPU 0's, every LVT masked at reset (lapic_test.ts has more).
      assert.match(v["info lapic"][0], /^dumping local APIC state for CPU 0 $/);
      assert.deepEqual(v["info lapic"], q["info lapic"]);
      // roms: the BIOS by file name where QEMU loads it (QEMU adds kvmvapic.bin and its
      // ACPI blobs; roms_test.ts has more).
      const bios = (lines: string[]) => lines.find((l) => l.startsWith("addr=00000000fffc0000"));
      assert.equal(
        bios(v["info roms"]),
        'addr=00000000fffc0000 size=0x040000 mem=rom name="bios-256k.bin"',
      );
      assert.equal(bios(v["info roms"]), bios(q["info roms"]));
      // qtree: the same PCI functions with the same identity lines (vmkit lists no qdev
      // properties and no child buses).
      const classes = (lines: string[]) =>
        lines.filter((l) => /^ +class /.test(l)).map((l) => l.trim()).sort();
      assert.deepEqual(v["info qtree"].slice(0, 2), ["bus: main-system-bus", "  type System"]);
      const qClasses = classes(q["info qtree"]);
      for (const c of classes(v["info qtree"])) assert.ok(qClasses.includes(c), c);
      assert.equal(classes(v["info qtree"]).length, 8);
      assert.ok(v["info qtree"].includes("    bus: pci.0"));
      // mtree: the two address spaces and their roots; the port ranges QEMU also has.
      for (const m of [v["info mtree"], q["info mtree"]]) {
        assert.ok(m.includes("address-space: memory"));
        assert.ok(m.includes("  0000000000000000-ffffffffffffffff (prio 0, i/o): system"));
        assert.ok(m.includes("address-space: I/O"));
        assert.ok(m.includes("  0000000000000000-000000000000ffff (prio 0, i/o): io"));
      }
      const ranges = (lines: string[]) =>
        lines.slice(lines.indexOf("address-space: I/O")).map((l) => l.trim().split(" ")[0]);
      for (const r of ["0000000000000040-0000000000000043", "0000000000000cfc-0000000000000cff"]) {
        assert.ok(ranges(v["info mtree"]).includes(r), r);
        assert.ok(ranges(q["info mtree"]).includes(r), r);
      }
      // balloon: 0 is refused in QEMU's words; 100 is asked of a guest that never ran.
      assert.deepEqual(v["balloon 0"], ["Error: Parameter 'target' expects a size"]);
      assert.deepEqual(v["balloon 0"], q["balloon 0"]);
      assert.deepEqual(v["balloon 100"], q["balloon 100"]);
      // Argument errors in the words of QEMU's argument parser.
      for (const c of ["balloon", "balloon abc", "balloon 1G", "info lapic 5"]) {
        assert.deepEqual(v[c], q[c], c);
      }
      assert.deepEqual(v["balloon abc"], [
        "invalid char 'a' in expression",
        'Try "help balloon" for more information',
      ]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "QMP query-block, query-blockstats, query-cpus-fast, query-pci, query-uuid, " +
    "query-balloon and balloon answer as qemu-system-x86_64 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64", "qemu-img"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const results: Record<string, ReturnType<typeof parse>> = {};
      const disk = path.join(dir, "disk.qcow2");
      const made = await runCommand("qemu-img", ["create", "-f", "qcow2", disk, "64M"]);
      assert.equal(made.code, 0, made.stderr);
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-qmp.sock`);
        const r = await session(vm, [
          ...guideDevices(disk),
          "-qmp",
          `unix:${sock},server=on,wait=off`,
        ], ["qmp", sock, ...QUERIES]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        results[vm] = parse(r.lines);
      }
      const v = results.vmkit.replies, q = results.qemu.replies;
      assert.equal(v.length, q.length);
      // Same success or failure and error class, request by request.
      for (let i = 0; i < q.length; i++) {
        const ve = v[i].error as { class: string; desc: string } | undefined;
        const qe = q[i].error as { class: string; desc: string } | undefined;
        assert.equal(ve?.class, qe?.class, `reply ${i}: ${JSON.stringify(v[i]).slice(0, 300)}`);
        assert.equal(ve?.desc, qe?.desc, `reply ${i}`);
      }
      // query-block: the drives both have, with the same fields and the same image facts.
      type Entry = Record<string, unknown>;
      const byDevice = (list: unknown) =>
        new Map((list as Entry[]).map((e) => [e.device as string, e]));
      const vb = byDevice(v[1].return), qb = byDevice(q[1].return);
      assert.deepEqual([...vb.keys()], ["virtio0", "ide1-cd0", "floppy0"]);
      for (const [dev, e] of vb) {
        const qe = qb.get(dev)!;
        assert.deepEqual(shape(e), shape(qe), dev);
        const strip = (x: Entry) => {
          const ins = { ...(x.inserted as Entry) };
          delete ins["node-name"];
          return { ...x, qdev: typeof x.qdev, inserted: ins };
        };
        assert.deepEqual(strip(e), strip(qe), dev);
      }
      // query-blockstats: QEMU's counters (QEMU adds the protocol node as `parent`).
      const vst = byDevice(v[2].return), qst = byDevice(q[2].return);
      for (const [dev, e] of vst) {
        assert.deepEqual(e.stats, (qst.get(dev) as Entry).stats, dev);
      }
      // query-cpus-fast: the same CPU, topology and QOM path; the thread is each program's.
      const cpu = (r: Entry) => ({ ...(r.return as Entry[])[0], "thread-id": 0 });
      assert.deepEqual(cpu(v[3]), cpu(q[3]));
      // query-pci: the same functions, IDs and classes, and the BARs (vmkit's balloon has a
      // smaller legacy BAR 0, and virtio-net no ROM BAR 6 unless it boots from the network).
      const fns = (r: Entry) => ((r.return as Entry[])[0].devices as Entry[]);
      const key = (d: Entry) => `${d.slot}.${d.function}`;
      const qp = new Map(fns(q[4]).map((d) => [key(d), d]));
      assert.deepEqual(fns(v[4]).map(key), fns(q[4]).map(key));
      for (const d of fns(v[4])) {
        const qd = qp.get(key(d))!;
        assert.deepEqual(d.class_info, qd.class_info, key(d));
        assert.deepEqual(d.id, qd.id, key(d));
        assert.equal(d.irq_pin, qd.irq_pin, key(d));
        // Each BAR vmkit has, QEMU has alike (vmkit's virtio devices have no MSI-X BAR 1).
        const qRegions = (qd.regions as Entry[]).map((r) => JSON.stringify(shapeSorted(r)));
        for (const r of d.regions as Entry[]) {
          if (key(d) === "4.0" && r.bar === 0) continue;
          assert.ok(
            qRegions.includes(JSON.stringify(shapeSorted(r))),
            `${key(d)} ${JSON.stringify(r)}`,
          );
        }
        if (Number(d.slot) < 3) assert.deepEqual(d.regions, qd.regions, key(d));
        assert.deepEqual(shape(d), shape(qd), key(d));
      }
      assert.deepEqual(v[5], q[5]); // query-uuid
      assert.deepEqual(v[5].return, { UUID });
      assert.deepEqual(v[6], { return: { actual: 256 * 2 ** 20 } });
      assert.deepEqual(v[6], q[6]);
      assert.deepEqual(v.slice(7), q.slice(7));
    } finally {
      await cleanup();
    }
  },
});
