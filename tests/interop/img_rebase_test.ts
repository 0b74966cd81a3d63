// Interop: `vmkit img rebase` (safe, unsafe, flatten) judged by real qemu-img

import assert from "node:assert/strict";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  runCommand,
  runToolOk,
  runVmkit,
  tempDir,
} from "../test_util.ts";

const ignore = !HAVE_QEMU_IMG || !haveProgram("qemu-io");
const NEEDS = ignore ? " (ignored: qemu-img/qemu-io missing; apt-get install qemu-utils)" : "";

const ok = runToolOk;

/** base <- mid <- top with data in each layer; want.raw is the top's guest view. */
async function chain(dir: string) {
  await ok("qemu-img", ["create", "-f", "qcow2", "base.qcow2", "4M"], dir);
  await ok("qemu-io", ["-c", "write -P 9 0 2M", "base.qcow2"], dir);
  await ok(
    "qemu-img",
    ["create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "mid.qcow2"],
    dir,
  );
  await ok(
    "qemu-img",
    ["create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2"],
    dir,
  );
  await ok("qemu-io", ["-c", "write -P 1 0 64k", "-c", "write -P 3 3M 100k", "mid.qcow2"], dir);
  await ok("qemu-io", ["-c", "write -P 2 1M 64k", "-c", "write -z 2M 64k", "top.qcow2"], dir);
  await ok("qemu-img", ["convert", "-O", "raw", "top.qcow2", "want.raw"], dir);
}

async function backingOf(file: string, dir: string) {
  const info = await ok("qemu-img", ["info", "--output=json", file], dir);
  const j = JSON.parse(info.stdout);
  return [j["backing-filename"], j["backing-filename-format"]];
}

Deno.test({
  name: `img rebase keeps the guest view when the backing changes or is removed${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      await ok("vmkit", ["rebase", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2"], dir);
      assert.deepEqual(await backingOf("top.qcow2", dir), ["base.qcow2", "qcow2"]);
      await ok("qemu-img", ["check", "top.qcow2"], dir);
      await ok("qemu-img", ["compare", "-F", "raw", "top.qcow2", "want.raw"], dir);
      await ok("vmkit", ["rebase", "-q", "-b", "", "top.qcow2"], dir);
      assert.deepEqual(await backingOf("top.qcow2", dir), [undefined, undefined]);
      await ok("qemu-img", ["check", "top.qcow2"], dir);
      await ok("qemu-img", ["compare", "-F", "raw", "top.qcow2", "want.raw"], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img rebase -u rewrites only the header, as qemu-img does${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      for (const tool of ["vmkit", "qemu-img"]) {
        const file = `${tool}.qcow2`;
        await Deno.copyFile(`${dir}/top.qcow2`, `${dir}/${file}`);
        await ok(tool, ["rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", file], dir);
      }
      assert.deepEqual(await backingOf("vmkit.qcow2", dir), ["base.qcow2", "qcow2"]);
      const ours = await Deno.readFile(`${dir}/vmkit.qcow2`);
      const theirs = await Deno.readFile(`${dir}/qemu-img.qcow2`);
      assert.deepEqual(ours, theirs);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img rebase fails with qemu-img's messages and exit codes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      const cases = [["top.qcow2"], ["-b", "nope.qcow2", "top.qcow2"], [
        "-u",
        "-b",
        "base.qcow2",
        "top.qcow2",
      ]];
      for (const args of cases) {
        const ours = await runVmkit(["rebase", ...args], { cwd: dir, argv0: "qemu-img" });
        const theirs = await runCommand("qemu-img", ["rebase", ...args], { cwd: dir });
        assert.equal(ours.code, theirs.code, `rebase ${args.join(" ")}: ${ours.stderr}`);
        assert.equal(ours.stderr, theirs.stderr, `rebase ${args.join(" ")}`);
      }
    } finally {
      await cleanup();
    }
  },
});
