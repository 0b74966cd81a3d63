// The parallels example plugin, loaded only through --plugin and judged by real qemu-img 7.2 both ways

import assert from "node:assert/strict";
import * as path from "node:path";
import { buildRegistry } from "../../cli/registry.ts";
import { BlockGraph } from "../../mod.ts";
import { HAVE_QEMU_IMG, readBytes, runCommand, runToolOk, tempDir } from "../../tests/test_util.ts";
import {
  assertHostileHeadersRefused,
  assertOnlyThroughPlugin,
  assertQemuIoReads,
  assertReadsLikeQemuImg,
  assertSameAsQemuImg,
  examplePlugin,
  patternRaw,
  pluginImg,
  pluginImgOk,
  sameBytes,
} from "./test_util.ts";

const PLUGIN = examplePlugin("parallels.ts");
const ignore = !HAVE_QEMU_IMG;
if (ignore) console.log("parallels_test: qemu-img is not installed; the interop tests need it");

const vmkitImgOk = (args: string[], cwd: string) => pluginImgOk(PLUGIN, args, cwd);
const qemuIo = (dir: string, file: string, ...cmds: string[]) =>
  runToolOk("qemu-io", ["-f", "parallels", ...cmds.flatMap((c) => ["-c", c]), file], dir);

Deno.test("parallels is not built in: vmkit knows it only with --plugin examples/plugins/parallels.ts", () =>
  assertOnlyThroughPlugin(
    PLUGIN,
    "parallels",
    "Formatting 'a.img', fmt=parallels size=1048576 cluster_size=1048576\n",
  ));

Deno.test({
  name: "parallels create writes the same bytes as qemu-img create, and both tools check it alike",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const cases: [string[], string][] = [
        [[], "10M"],
        [["-o", "cluster_size=64k"], "3M"],
        [["-o", "cluster_size=4k"], "100M"],
        [[], "1000"],
      ];
      for (const [i, [opts, size]] of cases.entries()) {
        const what = [...opts, size].join(" ");
        const ours = await vmkitImgOk(["create", "-f", "parallels", ...opts, `v${i}`, size], dir);
        const theirs = await runToolOk(
          "qemu-img",
          ["create", "-f", "parallels", ...opts, `q${i}`, size],
          dir,
        );
        assert.equal(ours.stdout.replace(`v${i}`, `q${i}`), theirs.stdout, what);
        const same = sameBytes(
          readBytes(path.join(dir, `v${i}`)),
          readBytes(path.join(dir, `q${i}`)),
        );
        assert.ok(same, `${what}: same file`);
        // qemu-img calls the BAT of an empty image with small clusters leaked space;
        // vmkit's check reports what qemu-img reports, exit code included.
        const theirCheck = await runCommand("qemu-img", ["check", `v${i}`], { cwd: dir });
        const ourCheck = await pluginImg(PLUGIN, ["check", `v${i}`], dir);
        assert.equal(ourCheck.code, theirCheck.code, `${what}: check exit code`);
        assert.equal(ourCheck.stdout, theirCheck.stdout, `${what}: check`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "parallels images vmkit writes pass qemu-img check and compare equal to their source",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(dir, "src.raw", 8 << 20);
      for (const o of ["cluster_size=1M", "cluster_size=64k", "cluster_size=4k"]) {
        const convert = ["convert", "-f", "raw", "-O", "parallels", "-o", o, "src.raw", "v.img"];
        await vmkitImgOk(convert, dir);
        const check = await runToolOk("qemu-img", ["check", "v.img"], dir);
        assert.match(check.stdout, /No errors were found on the image/);
        await runToolOk(
          "qemu-img",
          ["compare", "-f", "raw", "-F", "parallels", "src.raw", "v.img"],
          dir,
        );
        for (
          const cmd of [["check", "v.img"], ["info", "v.img"], ["map", "--output=json", "v.img"]]
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
  name: "parallels images qemu-img creates and qemu-io writes read back in vmkit as in qemu-img",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const create = (...args: string[]) =>
        runToolOk("qemu-img", ["create", "-q", "-f", "parallels", ...args], dir);
      await create("a.img", "10M");
      await qemuIo(
        dir,
        "a.img",
        "write -P 0x11 0 64k",
        "write -P 0x22 100k 300k",
        "write -P 0x44 9M 1k",
      );
      await create("-o", "cluster_size=4k", "b.img", "2M");
      await qemuIo(dir, "b.img", "write -P 0x34 1M 4k", "write -P 0x33 5k 10k");
      for (const image of ["a.img", "b.img"]) {
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
  name: "parallels partial writes through the plugin's node leave a clean image qemu-io reads back",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await runToolOk("qemu-img", [
        "create",
        "-q",
        "-f",
        "parallels",
        "-o",
        "cluster_size=4k",
        "t.img",
        "4M",
      ], dir);
      await qemuIo(dir, "t.img", "write -P 0x66 0 4k");
      // The same loader --plugin uses.
      const registry = await buildRegistry([PLUGIN]);
      const node = await new BlockGraph(registry).openImage(path.join(dir, "t.img"), {});
      assert.equal(node.driver, "parallels");
      await Promise.all([
        node.write(100, new Uint8Array(10).fill(0x77)),
        node.write((100 << 10) + 7, new Uint8Array(9000).fill(0x88)),
        node.write((3 << 20) + 4090, new Uint8Array(20).fill(0x99)),
      ]);
      await node.writeZeroes(200, 50);
      await node.close();
      assert.match((await runToolOk("qemu-img", ["check", "t.img"], dir)).stdout, /No errors/);
      await assertQemuIoReads("parallels", "t.img", [
        "read -P 0x66 0 100",
        "read -P 0x77 100 10",
        "read -P 0x66 110 90",
        "read -P 0 200 50",
        "read -P 0x66 250 3846",
        "read -P 0 100k 7",
        "read -P 0x88 102407 9000",
        "read -P 0x99 3149818 20",
      ], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test("a hostile parallels header is one clear error and leaves the file unchanged", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await vmkitImgOk(["create", "-q", "-f", "parallels", "a.img", "1M"], dir);
    const good = readBytes(path.join(dir, "a.img"));
    await assertHostileHeadersRefused(PLUGIN, good, [
      [28, [0, 0, 0, 0]], // zero sectors per cluster
      [28, [0, 0, 0, 0x40]], // a huge cluster
      [32, [0xff, 0xff, 0xff, 0x0f]], // a BAT far larger than the file
      [36, [0, 0, 0, 0, 1, 0, 0, 0]], // a disk larger than its BAT maps
    ], dir);
    // An image left in use is refused read-write, as QEMU refuses it, and readable read-only.
    const inuse = good.slice();
    inuse.set([0x59, 0x6e, 0x6f, 0x74], 44);
    await Deno.writeFile(path.join(dir, "inuse.img"), inuse);
    const rw = await pluginImg(PLUGIN, ["resize", "inuse.img", "2M"], dir);
    assert.match(rw.stderr, /Image was not closed correctly; cannot be opened read\/write/);
    await vmkitImgOk(["info", "inuse.img"], dir);
  } finally {
    await cleanup();
  }
});
