// The qed example plugin, loaded only through --plugin and judged by real qemu-img 7.2 both ways

import assert from "node:assert/strict";
import * as path from "node:path";
import { buildRegistry } from "../../cli/registry.ts";
import { BlockGraph } from "../../mod.ts";
import { HAVE_QEMU_IMG, readBytes, runToolOk, tempDir } from "../../tests/test_util.ts";
import {
  assertHostileHeadersRefused,
  assertOnlyThroughPlugin,
  assertQemuIoReads,
  assertReadsLikeQemuImg,
  assertSameAsQemuImg,
  examplePlugin,
  patternRaw,
  pluginImgOk,
  sameBytes,
} from "./test_util.ts";

const PLUGIN = examplePlugin("qed.ts");
const ignore = !HAVE_QEMU_IMG;
if (ignore) console.log("qed_test: qemu-img is not installed; the interop tests need it");

const vmkitImgOk = (args: string[], cwd: string) => pluginImgOk(PLUGIN, args, cwd);
const qemuIo = (dir: string, file: string, ...cmds: string[]) =>
  runToolOk("qemu-io", ["-f", "qed", ...cmds.flatMap((c) => ["-c", c]), file], dir);

Deno.test("qed is not built in: vmkit knows it only with --plugin examples/plugins/qed.ts", () =>
  assertOnlyThroughPlugin(
    PLUGIN,
    "qed",
    "Formatting 'a.img', fmt=qed size=1048576 cluster_size=65536\n",
  ));

Deno.test({
  name: "qed create writes the same bytes as qemu-img create, with and without a backing file",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await Deno.writeFile(path.join(dir, "base.raw"), new Uint8Array(1 << 20));
      // qemu-img 7.2 creates table_size=1 images but cannot open them (its table offset
      // check rejects a one-cluster table), so the cases keep table_size >= 2.
      const cases: [string[], string[]][] = [
        [[], ["10M"]],
        [["-o", "cluster_size=4k,table_size=2"], ["3M"]],
        [["-o", "cluster_size=1M,table_size=16"], ["1G"]],
        [["-b", "base.raw", "-F", "raw"], []],
      ];
      for (const [i, [opts, size]] of cases.entries()) {
        const what = [...opts, ...size].join(" ");
        const ours = await vmkitImgOk(["create", "-f", "qed", ...opts, `v${i}.qed`, ...size], dir);
        const theirs = await runToolOk(
          "qemu-img",
          ["create", "-f", "qed", ...opts, `q${i}.qed`, ...size],
          dir,
        );
        assert.equal(ours.stdout.replace(`v${i}`, `q${i}`), theirs.stdout, what);
        assert.ok(
          sameBytes(readBytes(path.join(dir, `v${i}.qed`)), readBytes(path.join(dir, `q${i}.qed`))),
          `${what}: same file`,
        );
        await runToolOk("qemu-img", ["check", `v${i}.qed`], dir);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "qed images vmkit writes pass qemu-img check and compare equal to their source",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(dir, "src.raw", 8 << 20);
      for (const o of ["cluster_size=64k", "cluster_size=4k,table_size=2"]) {
        await vmkitImgOk(["convert", "-f", "raw", "-O", "qed", "-o", o, "src.raw", "v.qed"], dir);
        const check = await runToolOk("qemu-img", ["check", "v.qed"], dir);
        assert.match(check.stdout, /No errors were found on the image/);
        await runToolOk("qemu-img", ["compare", "-f", "raw", "-F", "qed", "src.raw", "v.qed"], dir);
        // vmkit's own check, info and map say what qemu-img says of the same file.
        for (
          const cmd of [["check", "v.qed"], ["info", "v.qed"], ["map", "--output=json", "v.qed"]]
        ) {
          await assertSameAsQemuImg(PLUGIN, cmd, dir);
        }
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "qed images qemu-img creates and qemu-io writes read back in vmkit as in qemu-img",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(dir, "base.raw", 4 << 20);
      const create = (...args: string[]) =>
        runToolOk("qemu-img", ["create", "-q", "-f", "qed", ...args], dir);
      await create("plain.qed", "10M");
      await qemuIo(
        dir,
        "plain.qed",
        "write -P 0x11 0 64k",
        "write -P 0x22 100k 300k",
        "write -z 1M 64k",
        "write -P 0x44 9M 1k",
      );
      await create("-o", "cluster_size=4k", "small.qed", "2M");
      await qemuIo(dir, "small.qed", "write -P 0x33 5k 10k", "write -P 0x34 1M 4k");
      await create("-b", "base.raw", "-F", "raw", "top.qed");
      await qemuIo(dir, "top.qed", "write -P 0x55 8k 4k", "write -z 64k 64k");
      for (const image of ["plain.qed", "small.qed", "top.qed"]) {
        await assertReadsLikeQemuImg(PLUGIN, image, dir);
        for (const cmd of [["map", "--output=json", image], ["check", image], ["info", image]]) {
          await assertSameAsQemuImg(PLUGIN, cmd, dir);
        }
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "qed partial writes through the plugin's node keep a qemu-img-clean image with the right bytes",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(dir, "base.raw", 4 << 20);
      const create = ["create", "-q", "-f", "qed", "-b", "base.raw", "-F", "raw"];
      await runToolOk("qemu-img", [...create, "-o", "cluster_size=4k", "t.qed"], dir);
      await qemuIo(dir, "t.qed", "write -P 0x66 0 4k");
      // The same loader --plugin uses.
      const registry = await buildRegistry([PLUGIN]);
      const node = await new BlockGraph(registry).openImage(path.join(dir, "t.qed"), {});
      assert.equal(node.driver, "qed");
      await Promise.all([
        node.write(100, new Uint8Array(10).fill(0x77)), // inside an allocated cluster
        node.write((100 << 10) + 7, new Uint8Array(9000).fill(0x88)), // over backing data
        node.write((3 << 20) + 4090, new Uint8Array(20).fill(0x99)), // across two clusters
      ]);
      await node.writeZeroes(8192, 4096);
      await node.close();
      assert.match((await runToolOk("qemu-img", ["check", "t.qed"], dir)).stdout, /No errors/);
      await assertQemuIoReads("qed", "t.qed", [
        "read -P 0x66 0 100",
        "read -P 0x77 100 10",
        "read -P 0x66 110 3986",
        "read -P 0 8192 4096",
        "read -P 0x22 100k 7",
        "read -P 0x88 102407 9000",
        "read -P 0x99 3149818 20",
      ], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test("a hostile qed header is one clear error and leaves the file unchanged", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await vmkitImgOk(["create", "-q", "-f", "qed", "a.qed", "1M"], dir);
    await assertHostileHeadersRefused(PLUGIN, readBytes(path.join(dir, "a.qed")), [
      [4, [0x00, 0x00, 0x00, 0x80]], // cluster size 2 GiB
      [8, [0x03, 0, 0, 0]], // table size 3
      [16, [0x00, 0x01, 0, 0]], // an unknown feature bit
      [40, [0, 0, 0, 0x10]], // the L1 table far past the end of the file
      [48, [1, 0, 0, 0]], // an image size that is not a multiple of 512
    ], dir);
  } finally {
    await cleanup();
  }
});

Deno.test("a guest cannot turn a probed raw disk into a qed image once the plugin is loaded", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await vmkitImgOk(["create", "-q", "-f", "qed", "a.qed", "1M"], dir);
    const header = readBytes(path.join(dir, "a.qed")).subarray(0, 512);
    await Deno.writeFile(path.join(dir, "disk.img"), new Uint8Array(1 << 20));
    const registry = await buildRegistry([PLUGIN]);
    const node = await new BlockGraph(registry).openImage(path.join(dir, "disk.img"), {});
    assert.equal(node.restrictsBlockZero, true);
    await assert.rejects(node.write(0, header), /would probe as qed: Operation not permitted/);
    await node.close();
    assert.ok(sameBytes(readBytes(path.join(dir, "disk.img")), new Uint8Array(1 << 20)));
  } finally {
    await cleanup();
  }
});
