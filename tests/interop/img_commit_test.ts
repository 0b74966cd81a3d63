// Interop: `vmkit img commit` against real qemu-img on a three-image qcow2 chain

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

/** base <- mid <- top, with data in each layer and a zeroed cluster in top. */
async function chain(dir: string) {
  await ok("qemu-img", ["create", "-f", "qcow2", "base.qcow2", "4M"], dir);
  await ok("qemu-io", ["-c", "write -P 9 0 4M", "base.qcow2"], dir);
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
  await ok("qemu-img", ["convert", "-O", "raw", "mid.qcow2", "mid.raw"], dir);
}

async function assertClean(dir: string, ...files: string[]) {
  for (const f of files) await ok("qemu-img", ["check", f], dir);
}

Deno.test({
  name: `img commit copies the top into its backing file and empties it, as qemu-img does${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      const r = await ok("vmkit", ["commit", "top.qcow2"], dir);
      assert.equal(r.stdout, "Image committed.\n");
      await assertClean(dir, "top.qcow2", "mid.qcow2");
      await ok("qemu-img", ["compare", "-F", "raw", "top.qcow2", "want.raw"], dir);
      await ok("qemu-img", ["compare", "-F", "raw", "mid.qcow2", "want.raw"], dir);
      const map = await ok("qemu-img", ["map", "--output=json", "top.qcow2"], dir);
      assert.ok(JSON.parse(map.stdout).every((e: { depth: number }) => e.depth > 0), map.stdout);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img commit -b base commits the whole chain and keeps the top (-d implied)${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      const r = await ok("vmkit", ["commit", "-q", "-b", "base.qcow2", "top.qcow2"], dir);
      assert.equal(r.stdout, "");
      await assertClean(dir, "top.qcow2", "mid.qcow2", "base.qcow2");
      await ok("qemu-img", ["compare", "-F", "raw", "base.qcow2", "want.raw"], dir);
      await ok("qemu-img", ["compare", "-F", "raw", "top.qcow2", "want.raw"], dir);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: `img commit fails with qemu-img's messages and exit codes${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      await chain(dir);
      for (const args of [["base.qcow2"], ["-b", "nope", "top.qcow2"], []]) {
        const ours = await runVmkit(["commit", ...args], { cwd: dir, argv0: "qemu-img" });
        const theirs = await runCommand("qemu-img", ["commit", ...args], { cwd: dir });
        assert.equal(ours.code, theirs.code, `commit ${args.join(" ")}: ${ours.stderr}`);
        assert.equal(ours.stderr, theirs.stderr, `commit ${args.join(" ")}`);
      }
    } finally {
      await cleanup();
    }
  },
});
