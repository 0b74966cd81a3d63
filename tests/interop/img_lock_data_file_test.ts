// Image locks on the files a format opens beside its image (vmdk extents, a qcow2 data_file), against qemu-io

import assert from "node:assert/strict";
import * as path from "node:path";
import { BlockGraph } from "../../core/block/graph.ts";
import { buildRegistry } from "../../cli/registry.ts";
import { lockLibc } from "../../plugins/protocols/_lock.ts";
import { procLockBytes } from "../../plugins/protocols/test_util.ts";
import { haveProgram, MAIN, runCommand, runTool, stopChild, tempDir } from "../test_util.ts";

const ignore = !haveProgram("qemu-img") || !haveProgram("qemu-io") || lockLibc() === null;
const NEEDS = ignore ? " (ignored: qemu-img, qemu-io and FFI on Linux are needed)" : "";

/** An image with a file of guest data beside it: the image, that file, how qemu-img makes it. */
interface Case {
  label: string;
  image: string;
  format: string;
  child: string;
  create: string[];
}

const CASES: readonly Case[] = [
  {
    label: "vmdk extent",
    image: "e.vmdk",
    format: "vmdk",
    child: "e-f001.vmdk",
    create: ["create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat", "e.vmdk", "8M"],
  },
  {
    label: "qcow2 data_file",
    image: "d.qcow2",
    format: "qcow2",
    child: "d.data",
    create: ["create", "-q", "-f", "qcow2", "-o", "data_file=d.data", "d.qcow2", "8M"],
  },
];

/** qemu-io holding `image` open (read-only with -r) until its stdin closes. */
async function holdWithQemuIo(
  dir: string,
  c: Case,
  readOnly: boolean,
): Promise<{ stop: () => Promise<void> }> {
  const args = [...(readOnly ? ["-r"] : []), "-f", c.format, c.image];
  const child = new Deno.Command("qemu-io", {
    args,
    cwd: dir,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    await child.stdin.close();
    await child.status;
  };
  for (let i = 0; i < 200 && procLockBytes(path.join(dir, c.child)).length === 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  if (procLockBytes(path.join(dir, c.child)).length === 0) {
    await stop();
    throw new Error(`qemu-io ${args.join(" ")} took no lock on ${c.child}`);
  }
  return { stop };
}

for (const c of CASES) {
  Deno.test({
    name:
      `BlockGraph.openImage() locks a ${c.label} with QEMU's bytes, read-write and read-only${NEEDS}`,
    ignore,
    fn: async () => {
      const { dir, cleanup } = await tempDir();
      try {
        assert.equal((await runCommand("qemu-img", c.create, { cwd: dir })).code, 0);
        const graph = new BlockGraph(await buildRegistry());
        for (const readOnly of [false, true]) {
          const held = await holdWithQemuIo(dir, c, readOnly);
          const qemu = [
            procLockBytes(path.join(dir, c.image)),
            procLockBytes(path.join(dir, c.child)),
          ];
          await held.stop();
          // Read-write: 100, 101, 103 held on both, 201 and 203 denied on the image but
          // only 203 on the data file; read-only: 100 held, 203 denied on the data file.
          assert.deepEqual(qemu[1], readOnly ? [100, 203] : [100, 101, 103, 203]);
          const node = await graph.openImage(path.join(dir, c.image), {
            format: c.format,
            readOnly,
          });
          try {
            assert.deepEqual(
              [procLockBytes(path.join(dir, c.image)), procLockBytes(path.join(dir, c.child))],
              qemu,
            );
          } finally {
            await node.close();
          }
          assert.deepEqual(procLockBytes(path.join(dir, c.child)), [], "closing drops the locks");
        }
      } finally {
        await cleanup();
      }
    },
  });

  Deno.test({
    name:
      `BlockGraph.openImage() of a ${c.label} refuses and is refused on that file as QEMU is${NEEDS}`,
    ignore,
    fn: async () => {
      const { dir, cleanup } = await tempDir();
      try {
        assert.equal((await runCommand("qemu-img", c.create, { cwd: dir })).code, 0);
        const resize = ["resize", "-f", "raw", c.child, "16M"];
        // qemu-io holds the image: both tools are refused the resize of its data file.
        const held = await holdWithQemuIo(dir, c, false);
        let answers;
        try {
          answers = [await runTool("qemu-img", resize, dir), await runTool("vmkit", resize, dir)];
        } finally {
          await held.stop();
        }
        assert.notEqual(answers[0].code, 0);
        assert.match(answers[0].stderr, /Failed to get "resize" lock/);
        assert.deepEqual(answers[1], answers[0]);
        // vmkit holds the image: real qemu-img is refused the same way.
        const graph = new BlockGraph(await buildRegistry());
        const node = await graph.openImage(path.join(dir, c.image), { format: c.format });
        try {
          const r = await runTool("qemu-img", resize, dir);
          assert.deepEqual(r, answers[0]);
        } finally {
          await node.close();
        }
        // Nobody holds it: the resize goes through, and the image is untouched by the refusals.
        assert.equal((await runTool("qemu-img", resize, dir)).code, 0);
        assert.equal(Deno.statSync(path.join(dir, c.child)).size, 16 << 20);
      } finally {
        await cleanup();
      }
    },
  });
}

const noVm = ignore || !haveProgram("qemu-system-x86_64");

Deno.test({
  name: `system-x86_64 locks a guest disk's vmdk extent and qcow2 data_file as QEMU does${
    noVm ? " (ignored: qemu-system-x86_64, qemu-img, qemu-io and FFI on Linux are needed)" : ""
  }`,
  ignore: noVm,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    try {
      for (const c of CASES) {
        assert.equal((await runCommand("qemu-img", c.create, { cwd: dir })).code, 0);
      }
      const files = CASES.flatMap((c) => [c.image, c.child]).map((f) => path.join(dir, f));
      const args = ["-S", "-display", "none", "-nodefaults"];
      for (const c of CASES) args.push("-drive", `file=${c.image},if=virtio`);
      const held: number[][][] = [];
      for (const kind of ["qemu", "vmkit"]) {
        const child = new Deno.Command(kind === "qemu" ? "qemu-system-x86_64" : Deno.execPath(), {
          args: kind === "qemu"
            ? args
            : ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args, "-monitor", "none"],
          cwd: dir,
          stdout: "null",
          stderr: "null",
        }).spawn();
        try {
          // The devices take their disks' permissions after the open, which locked less:
          // ready once every file is denied to writers (or after a minute).
          for (let i = 0; i < 1200 && !files.every((f) => procLockBytes(f).includes(201)); i++) {
            await new Promise((r) => setTimeout(r, 50));
          }
          held.push(files.map(procLockBytes));
        } finally {
          await stopChild(child);
        }
      }
      // A guest disk denies writers and resizers on the extent and data file too.
      assert.deepEqual(held[0], files.map(() => [100, 101, 103, 201, 203]));
      assert.deepEqual(held[1], held[0]);
    } finally {
      await cleanup();
    }
  },
});
