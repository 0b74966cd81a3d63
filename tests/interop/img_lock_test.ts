// Image locks across vmkit and QEMU 7.2: a running VM of either kind, qemu-img and vmkit img exclude each other alike

import assert from "node:assert/strict";
import * as path from "node:path";
import {
  HAVE_QEMU_IMG,
  haveProgram,
  MAIN,
  readBytes,
  runCommand,
  type RunResult,
  runTool,
  stopChild,
  tempDir,
} from "../test_util.ts";
import { procLockBytes } from "../../plugins/protocols/test_util.ts";

const ignore = !HAVE_QEMU_IMG || !haveProgram("qemu-system-x86_64") ||
  Deno.build.os !== "linux";
const NEEDS = ignore ? " (ignored: qemu-img and qemu-system-x86_64 on Linux are needed)" : "";

/** The drives both kinds of VM hold: a qcow2 written by the guest and a raw disk. */
const DRIVES = [
  "-drive",
  "file=a.qcow2,if=virtio",
  "-drive",
  "file=r.img,format=raw,if=virtio",
];

/** Images of one case: a qcow2 with bitmaps, a raw disk, overlays on each, a small raw source. */
async function makeImages(dir: string): Promise<void> {
  const steps = [
    ["create", "-q", "-f", "qcow2", "a.qcow2", "64M"],
    ["create", "-q", "-f", "raw", "r.img", "64M"],
    ["create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2"],
    ["create", "-q", "-f", "qcow2", "-b", "r.img", "-F", "raw", "rb.qcow2"],
    ["bitmap", "--add", "a.qcow2", "bm0"],
    ["bitmap", "--add", "a.qcow2", "bm1"],
    ["create", "-q", "-f", "raw", "o.raw", "1M"],
  ];
  for (const args of steps) {
    const r = await runCommand("qemu-img", args, { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
  }
}

/** A VM started with `-S` on the drives of `dir`, ready once it holds the locks of both. */
async function startVm(
  kind: "qemu" | "vmkit",
  dir: string,
  drives: string[] = DRIVES,
): Promise<Deno.ChildProcess> {
  const args = ["-S", "-display", "none", "-nodefaults", ...drives];
  const child = kind === "qemu"
    ? new Deno.Command("qemu-system-x86_64", { args, cwd: dir, stdout: "null", stderr: "piped" })
      .spawn()
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args, "-monitor", "none"],
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).spawn();
  // Polled, not timed: the VM is ready when both images show its lock bytes.
  for (let i = 0; i < 600; i++) {
    if (
      procLockBytes(path.join(dir, "a.qcow2")).length > 0 &&
      procLockBytes(path.join(dir, "r.img")).length > 0
    ) {
      return child;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopChild(child);
  throw new Error(`${kind} VM in ${dir} never locked its drives`);
}

/** Ends a VM and drains its stderr. */
async function stopVm(child: Deno.ChildProcess, signal: Deno.Signal = "SIGKILL"): Promise<string> {
  try {
    child.kill(signal);
  } catch {
    // It ended already.
  }
  const out = await child.output();
  return new TextDecoder().decode(out.stderr);
}

/**
 * Runs `fn` with two directories of the same images, `q` held by a running QEMU and `v`
 * by a VM of `vKind`; the VMs are ended and the directories removed afterwards.
 */
async function withTwoVms(
  vKind: "qemu" | "vmkit",
  fn: (q: string, v: string) => Promise<void>,
  drives: string[] = DRIVES,
): Promise<void> {
  const q = await tempDir();
  const v = await tempDir();
  const vms: Deno.ChildProcess[] = [];
  try {
    await makeImages(q.dir);
    await makeImages(v.dir);
    vms.push(await startVm("qemu", q.dir, drives), await startVm(vKind, v.dir, drives));
    await fn(q.dir, v.dir);
  } finally {
    for (const vm of vms) await stopVm(vm);
    await q.cleanup();
    await v.cleanup();
  }
}

/** Command lines run against images a VM holds (qcow2 read-write, raw read-write). */
const AGAINST_VM: string[][] = [
  ["info", "a.qcow2"],
  ["info", "-U", "a.qcow2"],
  ["info", "r.img"],
  ["info", "--backing-chain", "b.qcow2"],
  ["info", "--image-opts", "driver=qcow2,file.filename=a.qcow2,file.locking=off"],
  ["info", "-U", "--image-opts", "driver=qcow2,file.filename=a.qcow2,force-share=off"],
  ["check", "a.qcow2"],
  ["check", "-U", "a.qcow2"],
  ["check", "-r", "all", "a.qcow2"],
  ["check", "-r", "all", "-U", "a.qcow2"],
  ["check", "--image-opts", "driver=qcow2,file.filename=a.qcow2,file.locking=off"],
  ["map", "a.qcow2"],
  ["map", "-U", "a.qcow2"],
  ["map", "r.img"],
  ["convert", "-O", "raw", "a.qcow2", "out.raw"],
  ["convert", "-U", "-O", "raw", "a.qcow2", "out.raw"],
  ["convert", "-O", "raw", "r.img", "out.raw"],
  ["convert", "-O", "raw", "b.qcow2", "out.raw"],
  ["convert", "-O", "raw", "rb.qcow2", "out.raw"],
  ["convert", "-O", "qcow2", "o.raw", "a.qcow2"],
  ["convert", "-n", "-O", "raw", "o.raw", "r.img"],
  ["commit", "b.qcow2"],
  ["resize", "a.qcow2", "+1M"],
  ["resize", "-f", "raw", "r.img", "+1M"],
  ["bitmap", "--enable", "a.qcow2", "bm1"],
  ["bitmap", "--merge", "bm0", "-b", "o.raw", "a.qcow2", "bm1"],
  ["snapshot", "-l", "a.qcow2"],
  ["snapshot", "-c", "s2", "a.qcow2"],
  ["snapshot", "-c", "s2", "-U", "a.qcow2"],
  ["compare", "a.qcow2", "r.img"],
  ["compare", "-U", "a.qcow2", "r.img"],
  ["measure", "-O", "qcow2", "a.qcow2"],
  ["amend", "-o", "compat=1.1", "a.qcow2"],
  ["rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2"],
  ["rebase", "-b", "r.img", "-F", "raw", "b.qcow2"],
  ["dd", "if=a.qcow2", "of=out.raw", "-O", "raw"],
  ["dd", "if=o.raw", "of=r.img", "-O", "raw"],
  ["create", "-f", "qcow2", "a.qcow2", "1M"],
  ["create", "-f", "raw", "r.img", "1M"],
  ["create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "nb.qcow2"],
  ["bench", "-c", "1", "a.qcow2"],
  ["bench", "-w", "-c", "1", "-U", "a.qcow2"],
];

function same(line: string[], q: RunResult, v: RunResult): void {
  const what = `qemu-img ${line.join(" ")}`;
  assert.equal(v.stderr, q.stderr, `${what}: stderr`);
  assert.equal(v.code, q.code, `${what}: exit code`);
  assert.equal(v.stdout, q.stdout, `${what}: stdout`);
}

Deno.test({
  name:
    `vmkit img answers as qemu-img while a qemu-system-x86_64 holds the images (locks, -U, locking=off)${NEEDS}`,
  ignore,
  fn: () =>
    withTwoVms("qemu", async (q, v) => {
      for (const line of AGAINST_VM) {
        same(
          line,
          await runTool("qemu-img", line, q),
          await runTool("vmkit", line, v),
        );
      }
      // The held images are byte for byte what they are beside qemu-img's refusals, and
      // both VMs still hold the same lock bytes.
      for (const f of ["a.qcow2", "r.img", "b.qcow2"]) {
        assert.deepEqual(readBytes(path.join(v, f)), readBytes(path.join(q, f)), f);
        assert.deepEqual(procLockBytes(path.join(v, f)), procLockBytes(path.join(q, f)), f);
      }
    }),
});

/** What real qemu-img is asked while a VM of either kind runs. */
const QEMU_IMG_AGAINST_VM: string[][] = [
  ["info", "a.qcow2"],
  ["info", "-U", "a.qcow2"],
  ["check", "-r", "all", "a.qcow2"],
  ["map", "r.img"],
  ["convert", "-O", "raw", "r.img", "out.raw"],
  ["convert", "-O", "raw", "b.qcow2", "out.raw"],
  ["commit", "b.qcow2"],
  ["resize", "-f", "raw", "r.img", "+1M"],
  ["snapshot", "-c", "s2", "a.qcow2"],
  ["bitmap", "--enable", "a.qcow2", "bm1"],
  ["create", "-f", "raw", "r.img", "1M"],
  ["dd", "if=o.raw", "of=r.img", "-O", "raw"],
];

Deno.test({
  name:
    `a running vmkit system-x86_64 holds the lock bytes QEMU holds and qemu-img answers it alike${NEEDS}`,
  ignore,
  fn: () =>
    withTwoVms("vmkit", async (q, v) => {
      for (const f of ["a.qcow2", "r.img"]) {
        assert.deepEqual(procLockBytes(path.join(v, f)), procLockBytes(path.join(q, f)), f);
      }
      for (const line of QEMU_IMG_AGAINST_VM) {
        same(
          line,
          await runTool("qemu-img", line, q),
          await runTool("qemu-img", line, v),
        );
      }
      // A second VM on the same disk is refused by both, with the same words.
      const second = ["-S", "-display", "none", "-nodefaults", ...DRIVES.slice(0, 2)];
      const qq = await runCommand("qemu-system-x86_64", second, { cwd: q });
      const vv = await runCommand(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "system-x86_64",
        ...second,
        "-monitor",
        "none",
      ], { cwd: v });
      assert.notEqual(qq.code, 0);
      assert.equal(vv.code, qq.code);
      assert.equal(
        vv.stderr.replace(/^vmkit: /, ""),
        qq.stderr.replace(/^qemu-system-x86_64: /, ""),
      );
      assert.match(vv.stderr, /Failed to get "write" lock\nIs another process using the image/);
    }),
});

/** The same two disks as {@linkcode DRIVES}, as -blockdev nodes under virtio-blk devices. */
const BLOCKDEVS = [
  ["driver=file,node-name=f,filename=a.qcow2", "driver=qcow2,node-name=d,file=f"],
  ["driver=file,node-name=rf,filename=r.img", "driver=raw,node-name=rd,file=rf"],
].flatMap(([file, format]) => ["-blockdev", file, "-blockdev", format]).concat(
  ["-device", "virtio-blk-pci,drive=d", "-device", "virtio-blk-pci,drive=rd"],
);

Deno.test({
  name: `-blockdev drives under devices hold the lock bytes QEMU's hold${NEEDS}`,
  ignore,
  fn: () =>
    withTwoVms("vmkit", (q, v) => {
      assert.deepEqual(procLockBytes(path.join(q, "a.qcow2")), [100, 101, 103, 201, 203]);
      assert.deepEqual(procLockBytes(path.join(q, "r.img")), [100, 101, 201]);
      for (const f of ["a.qcow2", "r.img"]) {
        assert.deepEqual(procLockBytes(path.join(v, f)), procLockBytes(path.join(q, f)), f);
      }
      return Promise.resolve();
    }, BLOCKDEVS),
});

Deno.test({
  name: `two vmkit processes exclude each other and -U lets a vmkit reader through${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    let vm: Deno.ChildProcess | undefined;
    try {
      await makeImages(dir);
      vm = await startVm("vmkit", dir);
      const refused = await runTool("vmkit", ["check", "-r", "all", "a.qcow2"], dir);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        `qemu-img: Could not open 'a.qcow2': Failed to get "write" lock\n` +
          "Is another process using the image [a.qcow2]?\n",
      );
      const reader = await runTool("vmkit", ["info", "-U", "a.qcow2"], dir);
      assert.equal(reader.code, 0, reader.stderr);
      assert.match(reader.stdout, /^image: a\.qcow2\nfile format: qcow2\n/);
      const raw = await runTool("vmkit", ["convert", "-U", "-O", "raw", "r.img", "x.raw"], dir);
      assert.equal(raw.code, 0, raw.stderr);
    } finally {
      if (vm) await stopVm(vm);
      await cleanup();
    }
  },
});

for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"] as const) {
  Deno.test({
    name: `vmkit system-x86_64's image locks are gone once it ends by ${signal}${NEEDS}`,
    ignore,
    async fn() {
      const { dir, cleanup } = await tempDir();
      try {
        await makeImages(dir);
        const vm = await startVm("vmkit", dir);
        assert.deepEqual(procLockBytes(path.join(dir, "a.qcow2")), [100, 101, 103, 201, 203]);
        assert.deepEqual(procLockBytes(path.join(dir, "r.img")), [100, 101, 201]);
        await stopVm(vm, signal);
        assert.deepEqual(procLockBytes(path.join(dir, "a.qcow2")), []);
        assert.deepEqual(procLockBytes(path.join(dir, "r.img")), []);
        const r = await runTool("qemu-img", ["check", "-r", "all", "a.qcow2"], dir);
        assert.equal(r.code, 0, r.stderr);
      } finally {
        await cleanup();
      }
    },
  });
}

Deno.test({
  name:
    `vmkit without --allow-ffi goes on unlocked (locking=auto) and refuses file.locking=on${NEEDS}`,
  ignore,
  async fn() {
    const { dir, cleanup } = await tempDir();
    let vm: Deno.ChildProcess | undefined;
    try {
      await makeImages(dir);
      vm = await startVm("qemu", dir);
      const noFfi = (...args: string[]) =>
        runCommand(Deno.execPath(), [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--quiet",
          MAIN,
          "img",
          ...args,
        ], { cwd: dir });
      const info = await noFfi("info", "a.qcow2");
      assert.equal(info.code, 0, info.stderr);
      const on = await noFfi(
        "info",
        "--image-opts",
        "driver=qcow2,file.filename=a.qcow2,file.locking=on",
      );
      assert.equal(on.code, 1);
      assert.match(
        on.stderr,
        /File lock requested but vmkit cannot take OFD locks without Deno FFI/,
      );
      // With FFI, the same command is refused as qemu-img refuses it.
      const locked = await runTool("vmkit", ["info", "a.qcow2"], dir);
      assert.equal(locked.code, 1);
      assert.match(locked.stderr, /Failed to get shared "write" lock/);
    } finally {
      if (vm) await stopVm(vm);
      await cleanup();
    }
  },
});
