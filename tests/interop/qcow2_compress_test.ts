// qcow2 compressed clusters against qemu-io's: the same bytes from the same data, by zlib and zstd

import assert from "node:assert/strict";
import * as path from "node:path";
import { compressCluster } from "../../plugins/formats/qcow2/compress.ts";
import { Layout } from "../../plugins/formats/qcow2/layout.ts";
import { haveProgram, MAIN, runCommand, tempDir } from "../test_util.ts";
import { textLike } from "./differential_fixtures.ts";

const haveQemuIo = haveProgram("qemu-io") && haveProgram("qemu-img");

Deno.test({
  name: "compressCluster() writes the bytes qemu-io's `write -c` writes (zlib and zstd)" +
    (haveQemuIo ? "" : " (ignored: qemu-img and qemu-io are not installed)"),
  ignore: !haveQemuIo,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const source = path.join(dir, "cluster.bin");
      const cluster = textLike(65536, 7);
      Deno.writeFileSync(source, cluster);
      for (const [type, name] of [[0, "zlib"], [1, "zstd"]] as const) {
        const image = path.join(dir, `${name}.qcow2`);
        for (
          const [program, args] of [
            ["qemu-img", [
              "create",
              "-q",
              "-f",
              "qcow2",
              "-o",
              `compression_type=${name}`,
              image,
              "1M",
            ]],
            ["qemu-io", ["-f", "qcow2", "-c", `write -c -s ${source} 0 64k`, image]],
          ] as const
        ) {
          const r = await runCommand(program, [...args]);
          assert.equal(r.code, 0, r.stderr);
        }
        const file = Deno.readFileSync(image);
        const v = new DataView(file.buffer);
        const l1 = Number(v.getBigUint64(40));
        const l2 = Number(v.getBigUint64(l1) & 0x00fffffffffffe00n);
        const [hi, lo] = [v.getUint32(l2), v.getUint32(l2 + 4)];
        const layout = new Layout(16, 16, false);
        const at = layout.compressedOffset(hi, lo);
        const packed = compressCluster(type, cluster, 65536)!;
        assert.deepEqual(file.subarray(at, at + packed.length), packed, `${name} bytes`);
        assert.deepEqual(layout.encodeCompressed(at, packed.length), [hi, lo], `${name} length`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "convert -c without the ffi permission falls back to node:zlib: a clean image of the same data" +
    (haveQemuIo ? "" : " (ignored: qemu-img and qemu-io are not installed)"),
  ignore: !haveQemuIo,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const source = path.join(dir, "text.raw");
      Deno.writeFileSync(source, textLike(300_000, 3));
      const theirs = path.join(dir, "q.qcow2");
      const ours = path.join(dir, "v.qcow2");
      const q = await runCommand("qemu-img", ["convert", "-c", "-O", "qcow2", source, theirs]);
      assert.equal(q.code, 0, q.stderr);
      const v = await runCommand(Deno.execPath(), [
        "run",
        "--quiet",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        MAIN,
        "img",
        "convert",
        "-c",
        "-O",
        "qcow2",
        source,
        ours,
      ]);
      assert.equal(v.code, 0, v.stderr);
      for (const args of [["compare", source, ours], ["check", ours]]) {
        const r = await runCommand("qemu-img", args);
        assert.equal(r.code, 0, `qemu-img ${args[0]}: ${r.stdout}${r.stderr}`);
      }
      // Deno's own deflate: other bytes than the system zlib's (what the fallback costs).
      assert.notDeepEqual(Deno.readFileSync(ours), Deno.readFileSync(theirs));
    } finally {
      await cleanup();
    }
  },
});
