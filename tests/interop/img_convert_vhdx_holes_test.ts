// Interop: `img convert` of vhdx images whose zeroes are file holes or unallocated blocks, against qemu-img

import assert from "node:assert/strict";
import * as path from "node:path";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  readBytes,
  runCommand,
  runVmkit,
  tempDir,
} from "../test_util.ts";

const HAVE_QEMU_IO = haveProgram("qemu-io");
const ignore = !HAVE_QEMU_IMG || !HAVE_QEMU_IO;
const NEEDS = ignore
  ? " (ignored: qemu-img and qemu-io are not installed; apt-get install qemu-utils)"
  : "";
if (ignore) console.log(`img_convert_vhdx_holes_test: skipping${NEEDS}`);

const MiB = 1 << 20;

async function ok(program: string, args: string[], cwd: string) {
  const r = program === "vmkit"
    ? await runVmkit(["img", ...args], { cwd })
    : await runCommand(program, args, { cwd });
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/**
 * Writes of every alignment around the 4 KiB sparse grid: data, zeroes written as data
 * (`write -P 0`, which qemu-img keeps as data in the file) and untouched ranges that
 * stay holes in the vhdx file inside allocated blocks, plus blocks never allocated.
 */
const QEMU_IO_WRITES = [
  "write -P 0x11 0 1K", // data, then a hole to the end of the 1 MiB block
  "write -P 0x22 1M 5K", // data ending off the 4 KiB grid
  "write -P 0x33 1060K 3K", // a hole of 31 KiB between two data runs
  "write -P 0 2M 64K", // zeroes as data
  "write -P 0x44 2112K 512", // one sector after the written zeroes
  "write -P 0x55 3M 1K", // then 1 MiB untouched ...
  "write -P 0x66 5M 1M", // ... and block 4 never allocated
  "write -P 0x77 7167K 1K", // data at the very end of the image
];

Deno.test({
  name: `img convert of vhdx holes and unallocated blocks writes what qemu-img writes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await ok("qemu-img", ["create", "-f", "vhdx", "-o", "block_size=1M", "h.vhdx", "7M"], dir);
      await ok(
        "qemu-io",
        ["-f", "vhdx", ...QEMU_IO_WRITES.flatMap((w) => ["-c", w]), "h.vhdx"],
        dir,
      );
      // qemu-img also lays its zeroes out as holes: a converted bench-like image.
      await ok("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", "h.vhdx", "h.raw"], dir);
      await ok("qemu-img", ["convert", "-f", "raw", "-O", "vhdx", "h.raw", "q.vhdx"], dir);
      // The same images with every hole written out as zeroes: vmkit reads and scans them.
      for (const name of ["h.vhdx", "q.vhdx"]) {
        await Deno.writeFile(path.join(dir, `dense-${name}`), readBytes(path.join(dir, name)));
      }
      const mapOf = async (f: string) =>
        (await ok("qemu-img", ["map", "--output=json", "-f", "raw", f], dir)).stdout;
      const cases: [string, string[]][] = [
        ["default", []],
        ["-S 3072", ["-S", "3072"]],
        ["-S 64k", ["-S", "64k"]],
        ["-S 0", ["-S", "0"]],
      ];
      for (const src of ["h.vhdx", "q.vhdx"]) {
        for (const [label, opts] of cases) {
          const what = `${src} ${label}`;
          const out = (tag: string) => path.join(dir, `out-${tag}.raw`);
          for (const tag of ["q", "v", "dense"]) await Deno.remove(out(tag)).catch(() => {});
          await ok("qemu-img", ["convert", ...opts, "-f", "vhdx", "-O", "raw", src, out("q")], dir);
          await ok("vmkit", ["convert", ...opts, "-f", "vhdx", "-O", "raw", src, out("v")], dir);
          await ok("vmkit", [
            "convert",
            ...opts,
            "-f",
            "vhdx",
            "-O",
            "raw",
            `dense-${src}`,
            out("dense"),
          ], dir);
          assert.deepEqual(readBytes(out("v")), readBytes(out("q")), `bytes of ${what}`);
          // Skipping the holes unread leaves the same ranges unwritten as reading and
          // scanning them does.
          assert.equal(await mapOf(out("v")), await mapOf(out("dense")), `allocation of ${what}`);
          // And as qemu-img, whose sparse scan vmkit follows for multiples of 4 KiB (a
          // -S off that grid allocates differently: docs/img-performance.md).
          if (label !== "-S 3072") {
            assert.equal(
              await mapOf(out("v")),
              await mapOf(out("q")),
              `qemu's allocation of ${what}`,
            );
          }
        }
        // Into an existing image that does not read as zero (-n): zero runs are written.
        const q = path.join(dir, "n-q.raw");
        const v = path.join(dir, "n-v.raw");
        for (const f of [q, v]) {
          await Deno.writeFile(f, new Uint8Array(7 * MiB).fill(0xee));
        }
        await ok("qemu-img", ["convert", "-n", "-f", "vhdx", "-O", "raw", src, q], dir);
        await ok("vmkit", ["convert", "-n", "-f", "vhdx", "-O", "raw", src, v], dir);
        assert.deepEqual(readBytes(v), readBytes(q), `bytes of ${src} -n`);
      }
      // map still shows everything as data, as qemu-img does for vhdx.
      const theirs = await ok("qemu-img", ["map", "--output=json", "h.vhdx"], dir);
      const ours = await ok("vmkit", ["map", "--output=json", "h.vhdx"], dir);
      assert.equal(ours.stdout, theirs.stdout);
    } finally {
      await cleanup();
    }
  },
});
