// Interop: `vmkit img` and real qemu-img on raw images, in both directions

import assert from "node:assert/strict";
import * as path from "node:path";
import { HAVE_QEMU_IMG, readBytes, runCommand, runVmkit, tempDir } from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG;
const NEEDS = ignore ? " (ignored: qemu-img is not installed; apt-get install qemu-utils)" : "";

async function qemuImg(args: string[], cwd: string) {
  return await runCommand("qemu-img", args, { cwd });
}

/** A raw image with data at a few places and holes between. */
async function patternRaw(file: string, bytes: number): Promise<void> {
  const f = await Deno.open(file, { write: true, create: true, truncate: true });
  await f.truncate(bytes);
  for (const at of [0, 65536 * 3, bytes / 2, bytes - 8192]) {
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(new Uint8Array(8192).map((_, i) => (i * 7 + at) & 0xff));
  }
  f.close();
}

Deno.test({
  name: `img info --output=json matches qemu-img field for field on raw${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(path.join(dir, "a.raw"), 4 << 20);
      const ours = await runVmkit(["img", "info", "--output=json", "a.raw"], { cwd: dir });
      const theirs = await qemuImg(["info", "--output=json", "a.raw"], dir);
      assert.equal(ours.code, 0, ours.stderr);
      assert.deepEqual(JSON.parse(ours.stdout), JSON.parse(theirs.stdout));
      const human = await runVmkit(["img", "info", "a.raw"], { cwd: dir });
      assert.equal(human.stdout, (await qemuImg(["info", "a.raw"], dir)).stdout);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img map matches qemu-img on a sparse raw image, human and json${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(path.join(dir, "a.raw"), 4 << 20);
      for (const output of ["human", "json"]) {
        const ours = await runVmkit(["img", "map", `--output=${output}`, "-f", "raw", "a.raw"], {
          cwd: dir,
        });
        const theirs = await qemuImg(["map", `--output=${output}`, "-f", "raw", "a.raw"], dir);
        assert.equal(ours.stdout, theirs.stdout, output);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img create -f raw writes what qemu-img info reads, with every preallocation mode${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const prealloc of ["off", "falloc", "full"]) {
        const name = `p-${prealloc}.raw`;
        const r = await runVmkit([
          "img",
          "create",
          "-f",
          "raw",
          "-o",
          `preallocation=${prealloc}`,
          name,
          "1M",
        ], {
          cwd: dir,
        });
        assert.equal(
          r.stdout,
          `Formatting '${name}', fmt=raw size=1048576 preallocation=${prealloc}\n`,
        );
        const info = JSON.parse((await qemuImg(["info", "--output=json", name], dir)).stdout);
        assert.equal(info["virtual-size"], 1048576);
        assert.equal(info.format, "raw");
        if (prealloc !== "off") assert.ok(info["actual-size"] >= 1048576, prealloc);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img convert and dd copy raw data that qemu-img compare finds identical${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(path.join(dir, "a.raw"), 4 << 20);
      const before = readBytes(path.join(dir, "a.raw"));
      let r = await runVmkit(["img", "convert", "-f", "raw", "-O", "raw", "a.raw", "b.raw"], {
        cwd: dir,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await qemuImg(["compare", "a.raw", "b.raw"], dir)).code, 0);
      r = await runVmkit([
        "img",
        "dd",
        "-f",
        "raw",
        "-O",
        "raw",
        "if=a.raw",
        "of=c.raw",
        "bs=64k",
        "count=8",
        "skip=2",
      ], {
        cwd: dir,
      });
      assert.equal(r.code, 0, r.stderr);
      await qemuImg([
        "dd",
        "-f",
        "raw",
        "-O",
        "raw",
        "if=a.raw",
        "of=d.raw",
        "bs=64k",
        "count=8",
        "skip=2",
      ], dir);
      assert.deepEqual(readBytes(path.join(dir, "c.raw")), readBytes(path.join(dir, "d.raw")));
      // Read-only commands leave the source byte-for-byte unchanged.
      assert.deepEqual(readBytes(path.join(dir, "a.raw")), before);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    `img compare agrees with qemu-img on identical, different and differently sized images${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(path.join(dir, "a.raw"), 1 << 20);
      await Deno.copyFile(path.join(dir, "a.raw"), path.join(dir, "b.raw"));
      const f = await Deno.open(path.join(dir, "b.raw"), { write: true });
      await f.seek(70000, Deno.SeekMode.Start);
      await f.write(new Uint8Array([0x42]));
      f.close();
      await Deno.copyFile(path.join(dir, "a.raw"), path.join(dir, "c.raw"));
      await Deno.truncate(path.join(dir, "c.raw"), 2 << 20);
      for (
        const [x, y, strict] of [["a.raw", "a.raw", false], ["a.raw", "b.raw", false], [
          "a.raw",
          "c.raw",
          false,
        ], [
          "a.raw",
          "c.raw",
          true,
        ]] as const
      ) {
        const args = ["compare", "-f", "raw", "-F", "raw", ...(strict ? ["-s"] : []), x, y];
        const ours = await runVmkit(["img", ...args], { cwd: dir });
        const theirs = await qemuImg(args, dir);
        assert.equal(ours.code, theirs.code, `${x} ${y} strict=${strict}`);
        assert.equal(ours.stdout, theirs.stdout, `${x} ${y} strict=${strict}`);
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img resize and measure on raw agree with qemu-img${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await patternRaw(path.join(dir, "a.raw"), 1 << 20);
      let r = await runVmkit(["img", "resize", "-f", "raw", "a.raw", "+1M"], { cwd: dir });
      assert.equal(r.stdout, "Image resized.\n");
      assert.equal(Deno.statSync(path.join(dir, "a.raw")).size, 2 << 20);
      r = await runVmkit(["img", "resize", "-f", "raw", "a.raw", "-1M"], { cwd: dir });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^vmkit: Use the --shrink option to perform a shrink operation\.\n/);
      assert.equal(Deno.statSync(path.join(dir, "a.raw")).size, 2 << 20);
      r = await runVmkit(["img", "resize", "-f", "raw", "--shrink", "a.raw", "-1M"], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(Deno.statSync(path.join(dir, "a.raw")).size, 1 << 20);
      for (
        const args of [["measure", "-O", "raw", "--size", "1G"], [
          "measure",
          "-O",
          "raw",
          "-f",
          "raw",
          "a.raw",
        ]]
      ) {
        const ours = await runVmkit(["img", ...args], { cwd: dir });
        assert.equal(ours.stdout, (await qemuImg(args, dir)).stdout, args.join(" "));
      }
    } finally {
      await cleanup();
    }
  },
});
