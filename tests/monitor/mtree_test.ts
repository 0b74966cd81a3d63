// HMP `info mtree -f`: the flat views in QEMU 7.2's layout (FlatView headers, the
// address spaces that share a view, one line per range with `@offset` inside a region,
// the I/O root answering unassigned ports), and QEMU's answers to bad flags, against
// real qemu-system-x86_64 7.2 on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { tempDir } from "../test_util.ts";
import { hmpBoth } from "./session_util.ts";

const BAD = [
  "info mtree -",
  "info mtree -x",
  "info mtree -xyz",
  "info mtree f",
  "info mtree -fd",
  "info mtree -f x",
];

/** Lines both programs print alike: regions with the same name and place in both. */
const SHARED = [
  ' AS "memory", root: system',
  ' AS "cpu-memory-0", root: system',
  " Root memory region: system",
  ' AS "I/O", root: io',
  " Root memory region: io",
  "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic",
  "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios",
  "  0000000000000022-000000000000003f (prio 0, i/o): io @0000000000000022",
  "  0000000000000040-0000000000000043 (prio 0, i/o): pit",
  "  0000000000000060-0000000000000060 (prio 0, i/o): i8042-data",
  "  0000000000000064-0000000000000064 (prio 0, i/o): i8042-cmd",
];

Deno.test({
  name: "HMP info mtree -f prints flat views in QEMU 7.2's layout and refuses bad flags alike",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out = await hmpBoth(dir, "mtree", ["-S", "-net", "none", "-vga", "none"], [
        "info mtree -f",
        ...BAD,
      ]);
      const flat = (lines: string[]) => lines.slice(0, lines.findIndex((l) => l === BAD[0]));
      const v = flat(out.vmkit), q = flat(out.qemu);
      for (const l of SHARED) {
        assert.ok(v.includes(l), `vmkit: ${l}`);
        assert.ok(q.includes(l), `qemu: ${l}`);
      }
      assert.deepEqual(v.filter((l) => l.startsWith("FlatView")), ["FlatView #0", "FlatView #1"]);
      // Each view's ranges are in order and do not overlap; the I/O view covers every port.
      const views = v.join("\n").split(/FlatView #\d+\n/).slice(1);
      for (const view of views) {
        let next = 0;
        for (const m of view.matchAll(/^ {2}([0-9a-f]{16})-([0-9a-f]{16}) /gm)) {
          const [a, b] = [parseInt(m[1], 16), parseInt(m[2], 16)];
          assert.ok(a >= next && b >= a, m[0]);
          next = b + 1;
        }
      }
      const io = views[1].match(/^ {2}([0-9a-f]{16})-([0-9a-f]{16}) /gm)!;
      assert.match(io[0], /^ {2}0{16}-/);
      assert.match(io.at(-1)!, /-000000000000ffff $/);
      // Bad flags and words: QEMU's messages.
      const rest = (lines: string[]) => lines.slice(lines.findIndex((l) => l === BAD[0]));
      assert.deepEqual(rest(out.vmkit), rest(out.qemu));
    } finally {
      await cleanup();
    }
  },
});
