// The parallels example plugin, loaded only through --plugin and judged by real qemu-img 7.2 both ways

import assert from "node:assert/strict";
import * as path from "node:path";
import { buildRegistry } from "../../cli/registry.ts";
import { BlockGraph } from "../../mod.ts";
import {
  HAVE_QEMU_IMG,
  readBytes,
  runCommand,
  runToolOk,
  runVmkit,
  tempDir,
} from "../../tests/test_util.ts";
import { examplePlugin, patternRaw, pluginImg, pluginImgOk, sameBytes } from "./test_util.ts";

const PLUGIN = examplePlugin("parallels.ts");
const ignore = !HAVE_QEMU_IMG;
if (ignore) console.log("parallels_test: qemu-img is not installed; the interop tests need it");

const vmkitImg = (args: string[], cwd: string) => pluginImg(PLUGIN, args, cwd);
const vmkitImgOk = (args: string[], cwd: string) => pluginImgOk(PLUGIN, args, cwd);

Deno.test({
  name:
    "parallels is not built in: vmkit knows it only with --plugin examples/plugins/parallels.ts",
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const without = await runVmkit(["img", "create", "-f", "parallels", "a.img", "1M"], {
        cwd: dir,
      });
      assert.equal(without.code, 1);
      assert.match(without.stderr, /Unknown file format 'parallels'/);
      const ours = await vmkitImgOk(["create", "-f", "parallels", "a.img", "1M"], dir);
      assert.equal(
        ours.stdout,
        "Formatting 'a.img', fmt=parallels size=1048576 cluster_size=1048576\n",
      );
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "parallels create writes the same bytes as qemu-img create",
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const cases: [string[], string][] = [[[], "10M"], [["-o", "cluster_size=64k"], "3M"], [
        ["-o", "cluster_size=4k"],
        "100M",
      ], [[], "1000"]];
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
        // qemu-img check says the same of both (it calls the BAT of an empty image with
        // small clusters leaked space; vmkit's check reports what qemu-img reports).
        const theirCheck = await runCommand("qemu-img", ["check", `v${i}`], { cwd: dir });
        const ourCheck = await vmkitImg(["check", `v${i}`], dir);
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
        await vmkitImgOk(
          ["convert", "-f", "raw", "-O", "parallels", "-o", o, "src.raw", "v.img"],
          dir,
        );
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
          const ours = await vmkitImgOk(cmd, dir);
          const theirs = await runToolOk("qemu-img", cmd, dir);
          const clean = (t: string) => t.replace(/^disk size: .*$/m, "");
          assert.equal(clean(ours.stdout), clean(theirs.stdout), `${o}: ${cmd.join(" ")}`);
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
      const io = (file: string, ...cmds: string[]) =>
        runToolOk("qemu-io", ["-f", "parallels", ...cmds.flatMap((c) => ["-c", c]), file], dir);
      await runToolOk("qemu-img", ["create", "-q", "-f", "parallels", "a.img", "10M"], dir);
      await io("a.img", "write -P 0x11 0 64k", "write -P 0x22 100k 300k", "write -P 0x44 9M 1k");
      await runToolOk("qemu-img", [
        "create",
        "-q",
        "-f",
        "parallels",
        "-o",
        "cluster_size=4k",
        "b.img",
        "2M",
      ], dir);
      await io("b.img", "write -P 0x34 1M 4k", "write -P 0x33 5k 10k");
      for (const image of ["a.img", "b.img"]) {
        await vmkitImgOk(["convert", "-O", "raw", image, `v-${image}.raw`], dir);
        await runToolOk("qemu-img", ["convert", "-O", "raw", image, `q-${image}.raw`], dir);
        const same = sameBytes(
          readBytes(path.join(dir, `v-${image}.raw`)),
          readBytes(path.join(dir, `q-${image}.raw`)),
        );
        assert.ok(same, `${image}: same bytes`);
        for (const cmd of [["map", "--output=json", image], ["check", image], ["info", image]]) {
          const ours = await vmkitImgOk(cmd, dir);
          const theirs = await runToolOk("qemu-img", cmd, dir);
          const clean = (t: string) => t.replace(/^disk size: .*$/m, "");
          assert.equal(clean(ours.stdout), clean(theirs.stdout), cmd.join(" "));
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
      await runToolOk("qemu-io", ["-f", "parallels", "-c", "write -P 0x66 0 4k", "t.img"], dir);
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
      const reads = [
        "read -P 0x66 0 100",
        "read -P 0x77 100 10",
        "read -P 0x66 110 90",
        "read -P 0 200 50",
        "read -P 0x66 250 3846",
        "read -P 0 100k 7",
        "read -P 0x88 102407 9000",
        "read -P 0x99 3149818 20",
      ];
      const r = await runCommand(
        "qemu-io",
        ["-f", "parallels", ...reads.flatMap((c) => ["-c", c]), "t.img"],
        { cwd: dir },
      );
      assert.doesNotMatch(r.stdout + r.stderr, /Pattern verification failed|error/i, r.stdout);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "a hostile parallels header is one clear error and leaves the file unchanged",
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await vmkitImgOk(["create", "-q", "-f", "parallels", "a.img", "1M"], dir);
      const good = readBytes(path.join(dir, "a.img"));
      const damage = [
        [28, [0, 0, 0, 0]], // zero sectors per cluster
        [28, [0, 0, 0, 0x40]], // a huge cluster
        [32, [0xff, 0xff, 0xff, 0x0f]], // a BAT far larger than the file
        [36, [0, 0, 0, 0, 1, 0, 0, 0]], // a disk larger than its BAT maps
      ] as const;
      for (const [at, bytes] of damage) {
        const bad = good.slice();
        bad.set(bytes, at);
        const file = path.join(dir, "bad.img");
        await Deno.writeFile(file, bad);
        const r = await vmkitImg(["info", "bad.img"], dir);
        assert.equal(r.code, 1, `offset ${at}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.match(r.stderr, /^vmkit: Could not open 'bad.img': /);
        assert.ok(sameBytes(readBytes(file), bad), "file unchanged");
      }
      // An image left in use is refused read-write, as QEMU refuses it, and readable read-only.
      const inuse = good.slice();
      inuse.set([0x59, 0x6e, 0x6f, 0x74], 44);
      await Deno.writeFile(path.join(dir, "inuse.img"), inuse);
      const rw = await vmkitImg(["resize", "inuse.img", "2M"], dir);
      assert.match(rw.stderr, /Image was not closed correctly; cannot be opened read\/write/);
      await vmkitImgOk(["info", "inuse.img"], dir);
    } finally {
      await cleanup();
    }
  },
});
